//! Named internal tokens: every change is logged with the name of the token that asked for it,
//! never the token.

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn changes_are_logged_with_the_name_of_the_token_that_asked() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::new(Backend::Sqlite).await;
    let secret = "oncall-secret-token-4711";
    let token_file = dir.path().join("oncall");
    std::fs::write(&token_file, format!("{secret}\n")).unwrap();
    let config = dir.path().join("relay.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[database]
url = "{url}"
[broker]
url = "amqp://guest:guest@127.0.0.1:{closed}/%2f"
default_queue = ""
[reconcile]
enabled = false
[log]
format = "json"
filter = "info"
[internal_api]
tokens = ["{API_TOKEN}"]
[[internal_api.named_tokens]]
name = "oncall"
token_file = "{file}"
"#,
            url = db.url,
            closed = free_port(),
            file = token_file.display()
        ),
    )
    .unwrap();
    let log_path = dir.path().join("log.jsonl");
    let relay = RelayProcess::start(&config, Stdio::from(std::fs::File::create(&log_path).unwrap()), "/readyz").await;
    let internal = relay.internal.clone();
    let client = reqwest::Client::new();
    let replay = json!({"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z"});
    for token in [secret, API_TOKEN] {
        let res =
            client.post(format!("{internal}/v1/events/replay")).bearer_auth(token).json(&replay).send().await.unwrap();
        assert_eq!(res.status(), 202);
    }
    // Reading is not a change: not in the audit trail.
    let res = client.get(format!("{internal}/v1/invoices")).bearer_auth(secret).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = client.post(format!("{internal}/v1/events/replay")).bearer_auth("wrong-token-1234").json(&replay);
    assert_eq!(res.send().await.unwrap().status(), 401);
    tokio::time::sleep(Duration::from_millis(300)).await;
    relay.terminate().await;

    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(!log.contains(secret) && !log.contains(API_TOKEN), "a token leaked into the log");
    let actions: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["message"] == "internal API action")
        .collect();
    let who: Vec<(&str, &str, u64)> = actions
        .iter()
        .map(|a| (a["token"].as_str().unwrap(), a["route"].as_str().unwrap(), a["status"].as_u64().unwrap()))
        .collect();
    assert_eq!(who, vec![("oncall", "/v1/events/replay", 202), ("tokens[0]", "/v1/events/replay", 202)], "{log}");
}
