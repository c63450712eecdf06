//! The published documents (docs/asyncapi.yaml, docs/openapi.json) are valid and describe what the
//! service does. The checking tools come from scripts/doc-tools.sh (scripts/test.sh runs it).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where scripts/doc-tools.sh installed the tools.
pub fn doc_tools() -> PathBuf {
    let dir = std::env::var_os("PGW_RELAY_DOC_TOOLS").map(PathBuf::from).unwrap_or_else(|| {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache"));
        cache.join("pgw-relay/doc-tools")
    });
    assert!(
        dir.join("bin/st").exists(),
        "the document checking tools are not installed in {}: run scripts/doc-tools.sh",
        dir.display()
    );
    dir
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_asyncapi_document_is_valid_asyncapi_3_and_names_the_event_schemas() {
    let tools = doc_tools();
    let out = Command::new(tools.join("bin/python"))
        .current_dir(repo())
        .arg("scripts/check-asyncapi.py")
        .arg(tools.join("node_modules/@asyncapi/specs/schemas/3.0.0-without-$id.json"))
        .arg("docs/asyncapi.yaml")
        .output()
        .expect("run check-asyncapi.py");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("6 event types, 0 problem(s)"), "{text}");
}

#[test]
fn the_committed_openapi_document_is_the_generated_one() {
    let generated = pgw_relay::http::openapi::to_json();
    let path = repo().join("docs/openapi.json");
    if std::env::var_os("PGW_RELAY_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).expect("write docs/openapi.json");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json differs from the code's document: regenerate it with \
         `cargo run -- openapi > docs/openapi.json` (or PGW_RELAY_UPDATE_OPENAPI=1 cargo test --test api openapi)"
    );
}

/// Runs schemathesis against one listener's operations (`tag`); its output on failure.
fn schemathesis(schema_url: &str, base_url: &str, tag: &str) -> Result<String, String> {
    let tools = doc_tools();
    let reports = tempfile::tempdir().unwrap();
    let out = Command::new(tools.join("bin/st"))
        .current_dir(reports.path())
        .args(["run", schema_url, "--url", base_url, "--include-tag", tag])
        .args(["--header", &format!("Authorization: Bearer {}", crate::helpers::API_TOKEN)])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_schema_conformance,response_headers_conformance",
        ])
        .args(["--phases", "examples,coverage,fuzzing", "--max-examples", "40", "--seed", "20261130"])
        .args(["--workers", "2", "--request-timeout", "20", "--no-color"])
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .expect("run schemathesis");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_service_serves_its_document_and_answers_as_it_says() {
    use crate::helpers::*;
    use pgw_relay::sim::{SimConfig, SimMerchant, SimServer};
    use serde_json::json;

    let sim = SimServer::start(SimConfig::ephemeral(vec![SimMerchant::new("JT01", JT01_KEY)
        .with_card("28052010234224845229", "411111XXXXXX1111")
        .with_timezone("+08:00")]))
    .expect("pgw-sim starts");
    let mut opts = Options::new(Backend::Sqlite);
    opts.extra_toml = format!("[gateway]\nbase_url = \"{}\"\ntimeout = \"5s\"\n", sim.base_url());
    let app = spawn_app(opts).await;

    let served = app.client.get(format!("{}/openapi.json", app.internal)).send().await.unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.text().await.unwrap(), pgw_relay::http::openapi::to_json(), "served as generated");

    // The document's example invoice exists, with history and an event, so examples reach 200s.
    app.register_invoice("INV-1001", "1000.00").await;
    let claims = notification("INV-1001", "0000", json!("1000.00"), "70001");
    assert_eq!(app.post_notification(&sign_jt01(&claims)).await.status(), 200);

    let schema_url = format!("{}/openapi.json", app.internal);
    let started = std::time::Instant::now();
    let runs = [(app.public.clone(), "public"), (app.internal.clone(), "internal")];
    for (base, tag) in runs {
        let url = schema_url.clone();
        let result = tokio::task::spawn_blocking(move || schemathesis(&url, &base, tag)).await.unwrap();
        match result {
            Ok(text) => {
                let summary: Vec<&str> =
                    text.lines().filter(|l| l.contains("test cases") || l.contains("passed")).collect();
                eprintln!("schemathesis {tag}: {}", summary.join(" | "));
            }
            Err(text) => panic!("schemathesis found responses that break docs/openapi.json ({tag}):\n{text}"),
        }
    }
    eprintln!("schemathesis took {:?}", started.elapsed());
    app.stop().await;
    sim.stop().await;
}

#[tokio::test]
async fn a_query_that_does_not_fit_is_the_documented_json_400() {
    use crate::helpers::*;
    let app = spawn_app(Options::new(Backend::Sqlite)).await;
    // Found by schemathesis: an integer beyond i64 in `limit`.
    let res = app
        .client
        .get(format!("{}/v1/invoices/JT01/INV-1/history?limit=9223372036854775808", app.internal))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    assert_eq!(res.json::<serde_json::Value>().await.unwrap()["error"], "malformed");
    // Found by schemathesis: a path id beyond i64 names nothing; the documented JSON 404.
    let res = app
        .client
        .post(format!("{}/v1/quarantine/9223372036854775808/release", app.internal))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    assert_eq!(res.json::<serde_json::Value>().await.unwrap()["error"], "not_found");
    app.stop().await;
}

#[tokio::test]
async fn the_typed_token_request_passes_other_2c2p_fields_through() {
    use crate::helpers::*;
    use crate::seed_flow::{Flow, CARD_A};
    use serde_json::json;
    let flow = Flow::start(Backend::Sqlite, "").await;
    let inv = invoice_no();
    let res = flow
        .app
        .client
        .post(format!("{}/v1/payment-tokens", flow.app.internal))
        .bearer_auth(API_TOKEN)
        .json(&json!({
            "invoiceNo": inv, "description": "item 1", "amount": "12.5", "currencyCode": "SGD",
            "customerToken": [CARD_A], "merchantID": "JT01",
            "userDefined1": "order-42", "locale": "th", "tokenize": true,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let sent = flow.sim.control().ledger("JT01", &inv).expect("2C2P got the request");
    assert_eq!(sent.user_defined[0].as_deref(), Some("order-42"));
    assert_eq!(sent.locale.as_deref(), Some("th"));
    assert!(sent.tokenize);
    assert_eq!(sent.customer_tokens, vec![CARD_A.to_string()]);
    assert_eq!((sent.amount.minor, sent.amount.currency.as_str()), (1250, "SGD"), "sent at the currency's precision");
    assert!(sent.backend_return_url.is_some_and(|u| u.ends_with("/2c2p/backend-notification")), "filled from config");
    flow.stop().await;
}
