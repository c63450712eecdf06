//! Data integrity end to end, on SQLite and PostgreSQL: no card number stored, returned or
//! published however it is written or wherever it is; strict amounts; a bad character or a
//! refused write never turns into an endless retry; quarantined notifications released.

use std::time::{Duration, Instant};

use base64::Engine;
use pgw_relay::sim::Scenario;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::{json, Value};

use crate::broker::TestBroker;
use crate::helpers::*;
use crate::seed_flow::Flow;

const PAN: &str = "4111111111111111";

/// The digits of `text` with separators dropped and every Unicode digit read as ASCII: a card
/// number shows up here however it was written.
fn digits_only(text: &str) -> String {
    text.chars()
        .filter_map(|c| match c.to_digit(10) {
            Some(d) => char::from_digit(d, 10),
            None if ('\u{FF10}'..='\u{FF19}').contains(&c) => char::from_digit(c as u32 - 0xFF10, 10),
            None if c.is_whitespace() || matches!(c, '.' | '-' | '/') => None,
            None => Some('_'),
        })
        .collect()
}

/// Every string in `v`, JWT claims segments decoded (audit copies are base64).
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            let parts: Vec<&str> = s.split('.').collect();
            if parts.len() == 3 {
                if let Ok(claims) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(parts[1]) {
                    if let Ok(claims) = serde_json::from_slice::<Value>(&claims) {
                        strings(&claims, out);
                    }
                }
            }
            out.push(s.clone());
        }
        Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
        Value::Object(m) => m.iter().for_each(|(k, v)| {
            out.push(k.clone());
            strings(v, out)
        }),
        _ => out.push(v.to_string()),
    }
}

/// Asserts that no string of `v` (decoded audit copies included) holds `pan`.
fn assert_no_card(v: &Value, pan: &str, what: &str) {
    let mut all = Vec::new();
    strings(v, &mut all);
    for s in all {
        assert!(!digits_only(&s).contains(pan), "{what} holds the card number: {s:?}");
    }
}

async fn app_with_broker(backend: Backend) -> (TestApp, TestBroker) {
    let exchange = test_exchange();
    let mut broker = TestBroker::new(&exchange).await;
    broker.bind().await;
    let mut opts = Options::new(backend);
    opts.exchange = Some(exchange);
    (spawn_app(opts).await, broker)
}

#[tokio::test]
async fn a_card_number_is_masked_however_it_is_written_and_wherever_it_is() {
    let cases = [
        ("accountNo", "4111.1111.1111.1111"),
        ("accountNo", "4111111111111111/1230"),
        ("accountNo", "card 4111111111111111"),
        ("accountNo", "4111\t1111\t1111\t1111"),
        ("accountNo", "４１１１１１１１１１１１１１１１"),
        ("userDefined1", "4111111111111111"),
        ("respDesc", "Declined for card 4111 1111 1111 1111"),
        ("cardNumber", "4111111111111111"),
        ("AccountNo", "4111-1111-1111-1111"),
    ];
    for backend in BACKENDS {
        let (app, mut broker) = app_with_broker(backend).await;
        for (i, (claim, value)) in cases.iter().enumerate() {
            let inv = invoice_no();
            let mut claims = notification(&inv, "0000", json!("100.00"), &format!("T{i}"));
            claims[*claim] = json!(value);
            let res = app.post_notification(&sign_jt01(&claims)).await;
            assert_eq!(res.status(), 200, "{backend:?} {claim}={value:?}");
            let invoice = app.invoice("JT01", &inv).await;
            assert_eq!(invoice["status"], "succeeded");
            assert_no_card(&invoice, PAN, &format!("{backend:?} GET invoice for {claim}={value:?}"));
            let published = broker.take_exactly(1, Duration::from_secs(10), Duration::from_millis(50)).await;
            assert_no_card(&published[0].body, PAN, &format!("{backend:?} event for {claim}={value:?}"));
            if *claim == "accountNo" {
                let masked = published[0].body["data"]["maskedPan"].as_str().unwrap();
                assert!(masked.contains("411111XXXXXX1111"), "{value:?}: {masked}");
            }
            let raw = invoice["history"][0]["raw"].as_str().unwrap();
            assert!(raw.ends_with(".redacted"), "the audit copy is re-encoded: {raw}");
        }
        app.stop().await;
        broker.cleanup(&[]).await;
    }
}

#[tokio::test]
async fn an_inquiry_answer_with_a_full_card_number_is_stored_and_published_masked() {
    const FAST: &str = "[reconcile]\ninterval = \"100ms\"\ngrace = \"300ms\"\nafter_return = \"100ms\"\n";
    for backend in BACKENDS {
        // pgw-sim sends this stored card's accountNo in full, as a buggy gateway would.
        let mut flow = Flow::start_with_cards(backend, FAST, &[("28052010234224845229", PAN)]).await;
        let inv = invoice_no();
        let url = flow.web_payment_url(&inv, "28052010234224845229").await;
        flow.scenario(&inv, Scenario { drop: true, ..Scenario::default() });
        flow.pay(&url, "success", "28052010234224845229").await;
        let until = Instant::now() + Duration::from_secs(15);
        let invoice = loop {
            let body = flow.app.invoice("JT01", &inv).await;
            if body["status"] == "succeeded" {
                break body;
            }
            assert!(Instant::now() < until, "{backend:?}: not settled by inquiry: {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let inquiry = invoice["history"].as_array().unwrap().iter().find(|h| h["kind"] == "inquiry").unwrap();
        assert!(inquiry["raw"].as_str().unwrap().ends_with(".redacted"), "{inquiry}");
        assert_eq!(inquiry["observation"]["maskedPan"], "411111XXXXXX1111");
        assert_no_card(&invoice, PAN, &format!("{backend:?} GET invoice"));
        let published = flow.broker.take_exactly(1, Duration::from_secs(10), Duration::from_millis(50)).await;
        assert_eq!(published[0].body["data"]["source"], "inquiry");
        assert_no_card(&published[0].body, PAN, &format!("{backend:?} event"));
        flow.stop().await;
    }
}

#[tokio::test]
async fn a_browser_return_is_recorded_without_card_numbers_or_control_characters() {
    for backend in BACKENDS {
        let app = spawn_app(Options::new(backend)).await;
        let inv = invoice_no();
        app.register_invoice(&inv, "100.00").await;
        let response = json!({"invoiceNo": inv, "respCode": "2000", "respDesc": "card 4111 1111 1111 1111\u{0}"});
        let encoded = base64::engine::general_purpose::STANDARD.encode(response.to_string());
        let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let res = browser
            .post(format!("{}/2c2p/frontend-return", app.public))
            .form(&[("paymentResponse", encoded.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303, "{backend:?}");
        let invoice = app.invoice("JT01", &inv).await;
        let ret = &invoice["history"][0];
        assert_eq!(ret["kind"], "frontend_return");
        assert_eq!(ret["respDesc"], "card 411111XXXXXX1111", "{backend:?}: {ret}");
        assert_no_card(&invoice, PAN, &format!("{backend:?} GET invoice"));
        app.stop().await;
    }
}

#[tokio::test]
async fn a_nul_in_a_signed_notification_is_removed_on_both_stores_instead_of_answering_503() {
    for backend in BACKENDS {
        let app = spawn_app(Options::new(backend)).await;
        let inv = invoice_no();
        let mut claims = notification(&inv, "0000", json!("100.00"), "N1");
        claims["respDesc"] = json!("a\u{0}b");
        claims["userDefined2"] = json!("line\r\none\u{1b}[0m\ttab");
        let res = app.post_notification(&sign_jt01(&claims)).await;
        assert_eq!(res.status(), 200, "{backend:?}: {}", res.text().await.unwrap());
        let invoice = app.invoice("JT01", &inv).await;
        assert_eq!(invoice["status"], "succeeded");
        assert_eq!(invoice["respDesc"], "ab", "{backend:?}");
        assert_eq!(invoice["history"][0]["observation"]["userDefined"][1], "line\none[0m\ttab");
        app.stop().await;
    }
}

#[tokio::test]
async fn a_malformed_amount_or_a_lone_amount_or_currency_is_refused_and_changes_nothing() {
    for backend in BACKENDS {
        let app = spawn_app(Options::new(backend)).await;
        let inv = invoice_no();
        app.register_invoice(&inv, "100.00").await;
        let mut cases: Vec<(&str, Value)> = Vec::new();
        let base = notification(&inv, "0000", json!("100.00"), "M1");
        let mut no_currency = base.clone();
        no_currency.as_object_mut().unwrap().remove("currencyCode");
        cases.push(("no currencyCode", no_currency));
        let mut no_amount = base.clone();
        no_amount.as_object_mut().unwrap().remove("amount");
        cases.push(("no amount", no_amount));
        for amount in [
            json!([1]),
            json!({"value": "100.00"}),
            json!("1000.0000000000000000000000000001"),
            json!("0.00000000000000000000000000001"),
            json!("1_000"),
            json!("1e2"),
            json!("-100.00"),
        ] {
            let mut c = base.clone();
            c["amount"] = amount;
            cases.push(("amount", c));
        }
        for (what, claims) in cases {
            let res = app.post_notification(&sign_jt01(&claims)).await;
            assert_eq!(res.status(), 400, "{backend:?} {what}: {claims}");
            assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_notification");
        }
        let invoice = app.invoice("JT01", &inv).await;
        assert_eq!(invoice["status"], "pending", "{backend:?}: {invoice}");
        assert!(invoice["history"].as_array().unwrap().is_empty());
        app.stop().await;
    }
}

async fn quarantine_list(app: &TestApp) -> Vec<Value> {
    let res = app.client.get(format!("{}/v1/quarantine", app.internal)).bearer_auth(API_TOKEN).send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.json::<Value>().await.unwrap()["quarantined"].as_array().unwrap().clone()
}

async fn release(app: &TestApp, id: i64) -> reqwest::Response {
    app.client.post(format!("{}/v1/quarantine/{id}/release", app.internal)).bearer_auth(API_TOKEN).send().await.unwrap()
}

#[tokio::test]
async fn a_notification_the_store_refuses_is_quarantined_answered_200_and_released_later() {
    for backend in BACKENDS {
        let (app, mut broker) = app_with_broker(backend).await;
        let inv = invoice_no();
        app.register_invoice(&inv, "100.00").await;
        let lift_statement = refuse_history_of(backend, &app.db_url, &inv).await;
        let mut claims = notification(&inv, "0000", json!("100.00"), "Q1");
        claims["userDefined1"] = json!("4111111111111111");
        let token = sign_jt01(&claims);
        for _ in 0..2 {
            let res = app.post_notification(&token).await;
            assert_eq!(res.status(), 200, "{backend:?}: the gateway must stop retrying");
            assert_eq!(res.json::<Value>().await.unwrap()["status"], "quarantined");
        }
        let held = quarantine_list(&app).await;
        assert_eq!(held.len(), 1, "{backend:?}: one entry per notification: {held:?}");
        assert_eq!(held[0]["invoiceNo"], inv.as_str());
        assert!(held[0]["error"].as_str().unwrap().contains("refuse"), "{backend:?}: {}", held[0]["error"]);
        assert_no_card(&held[0], PAN, "the quarantine entry");
        assert_eq!(app.metric(r#"pgw_relay_quarantined_total{kind="backend"}"#).await, 1.0);
        assert_eq!(app.metric(r#"pgw_relay_anomalies_total{reason="unprocessable"}"#).await, 1.0);
        let anomaly = broker.take_exactly(1, Duration::from_secs(10), Duration::from_millis(50)).await;
        assert_eq!(anomaly[0].body["type"], "payment.anomaly");
        assert_eq!(anomaly[0].body["data"]["reason"], "unprocessable");
        assert_eq!(app.invoice("JT01", &inv).await["status"], "pending");

        let id = held[0]["id"].as_i64().unwrap();
        let refused = release(&app, id).await;
        assert_eq!(refused.status(), 409, "{backend:?}: still refused while the cause is there");
        lift(backend, &app.db_url, &lift_statement).await;
        let released = release(&app, id).await;
        assert_eq!(released.status(), 200, "{backend:?}");
        assert_eq!(released.json::<Value>().await.unwrap()["outcome"], "applied:succeeded");
        assert_eq!(app.invoice("JT01", &inv).await["status"], "succeeded");
        let succeeded = broker.take_exactly(1, Duration::from_secs(10), Duration::from_millis(50)).await;
        assert_eq!(succeeded[0].body["type"], "payment.succeeded");
        assert!(quarantine_list(&app).await.is_empty());
        assert_eq!(release(&app, id).await.status(), 409, "released once");
        let again = app.post_notification(&token).await;
        assert_eq!(again.json::<Value>().await.unwrap()["status"], "duplicate");
        app.stop().await;
        broker.cleanup(&[]).await;
    }
}

/// Claims with a card number planted in a random claim (known or not, nested or not), written
/// in a random way.
fn planted_claims() -> impl Strategy<Value = (Value, String)> {
    let separator = prop_oneof![Just(""), Just(" "), Just("-"), Just("."), Just("/"), Just("\t"), Just(" - ")];
    let pan = prop_oneof![Just(PAN), Just("5555555555554444"), Just("378282246310005"), Just("6011111111111117")];
    let claim = prop_oneof![
        Just("accountNo"),
        Just("cardNo"),
        Just("respDesc"),
        Just("userDefined1"),
        Just("userDefined5"),
        Just("cardNumber"),
        Just("AccountNo"),
        Just("x.nested"),
    ];
    let text = "[a-zA-Z ]{0,8}";
    (pan, separator, claim, text, text, any::<bool>()).prop_map(|(pan, sep, claim, before, after, full_width)| {
        let mut written: String = pan
            .chars()
            .collect::<Vec<_>>()
            .chunks(4)
            .map(|c| c.iter().collect::<String>())
            .collect::<Vec<_>>()
            .join(sep);
        if full_width {
            written = written
                .chars()
                .map(|c| c.to_digit(10).map(|d| char::from_u32(0xFF10 + d).unwrap()).unwrap_or(c))
                .collect();
        }
        let value = format!("{before} {written} {after}");
        let mut claims = notification(&invoice_no(), "0000", json!("100.00"), "P1");
        if claim == "cardNo" {
            // The 4.1 spelling of accountNo: one or the other.
            claims.as_object_mut().unwrap().remove("accountNo");
        }
        match claim.split_once('.') {
            Some((outer, inner)) => claims[outer] = json!({ inner: [value] }),
            None => claims[claim] = json!(value),
        }
        (claims, pan.to_string())
    })
}

#[tokio::test]
async fn property_a_card_number_planted_anywhere_is_never_stored_returned_or_published() {
    let (app, mut broker) = app_with_broker(Backend::Sqlite).await;
    let mut runner = TestRunner::new(ProptestConfig { cases: 24, ..ProptestConfig::default() });
    let strategy = planted_claims();
    let cases: Vec<(Value, String)> =
        (0..runner.config().cases).map(|_| strategy.new_tree(&mut runner).unwrap().current()).collect();
    for (claims, pan) in cases {
        let res = app.post_notification(&sign_jt01(&claims)).await;
        assert_eq!(res.status(), 200, "{claims}");
        let invoice = app.invoice("JT01", claims["invoiceNo"].as_str().unwrap()).await;
        assert_no_card(&invoice, &pan, &format!("GET invoice for {claims}"));
        let published = broker.take_exactly(1, Duration::from_secs(10), Duration::from_millis(20)).await;
        assert_no_card(&published[0].body, &pan, &format!("event for {claims}"));
    }
    app.stop().await;
    broker.cleanup(&[]).await;
}

/// A gateway that answers every Payment Inquiry with `claims` signed with JT01's key (as a buggy
/// gateway could); its base URL.
fn gateway_answering(claims: Value) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let body = json!({ "payload": sign_jt01(&claims) }).to_string();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            // Read the head and the body announced by Content-Length.
            loop {
                let n = stream.read(&mut buf).unwrap_or(0);
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request);
                if let Some(head_end) = text.find("\r\n\r\n") {
                    let length = text[..head_end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string())
                        })
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    if request.len() >= head_end + 4 + length || n == 0 {
                        break;
                    }
                } else if n == 0 {
                    break;
                }
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn an_inquiry_answer_with_a_lone_or_malformed_amount_is_indeterminate_never_a_result() {
    for backend in BACKENDS {
        for (what, edit) in [
            ("no currencyCode", json!({"currencyCode": null})),
            ("no amount", json!({"amount": null})),
            ("amount [1]", json!({"amount": [1]})),
            ("amount 1_000", json!({"amount": "1_000"})),
        ] {
            let inv = invoice_no();
            let mut claims = notification(&inv, "0000", json!("100.00"), "I1");
            for (k, v) in edit.as_object().unwrap() {
                if v.is_null() {
                    claims.as_object_mut().unwrap().remove(k);
                } else {
                    claims[k] = v.clone();
                }
            }
            let mut opts = Options::new(backend);
            opts.extra_toml = format!("[gateway]\nbase_url = \"{}\"\ntimeout = \"5s\"\n", gateway_answering(claims));
            let app = spawn_app(opts).await;
            app.register_invoice(&inv, "100.00").await;
            let res = app
                .client
                .post(format!("{}/v1/invoices/JT01/{inv}/reconcile", app.internal))
                .bearer_auth(API_TOKEN)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "{backend:?} {what}");
            let report: Value = res.json().await.unwrap();
            assert_eq!(report["result"], "indeterminate", "{backend:?} {what}: {report}");
            let invoice = app.invoice("JT01", &inv).await;
            assert_eq!(invoice["status"], "pending", "{backend:?} {what}: {invoice}");
            assert!(invoice["events"].as_array().unwrap().is_empty(), "{backend:?} {what}");
            app.stop().await;
        }
    }
}
