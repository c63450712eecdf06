//! The internal listener: health, readiness, metrics and bearer-token auth.

use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn v1_needs_a_configured_bearer_token() {
    let app = spawn_app(Options::new(Backend::Sqlite)).await;
    let url = format!("{}/v1/invoices/JT01/NOPE", app.internal);
    let none = app.client.get(&url).send().await.unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(none.json::<Value>().await.unwrap()["error"], "unauthorized");
    let wrong = app.client.get(&url).bearer_auth("not-the-token").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let right = app.client.get(&url).bearer_auth(API_TOKEN).send().await.unwrap();
    assert_eq!(right.status(), 404);
    assert_eq!(right.json::<Value>().await.unwrap()["error"], "not_found");
    app.stop().await;
}

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    for backend in BACKENDS {
        let app = spawn_app(Options::new(backend)).await;
        let health = app.client.get(format!("{}/healthz", app.internal)).send().await.unwrap();
        assert_eq!(health.status(), 200);
        let ready = app.client.get(format!("{}/readyz", app.internal)).send().await.unwrap();
        assert_eq!(ready.status(), 200, "{backend:?}");
        let body: Value = ready.json().await.unwrap();
        assert_eq!(body["store"]["ok"], true);
        assert_eq!(body["outbox"]["backlog"], 0);
        assert!(body["broker"]["connected"].is_boolean());
        let metrics = app.metrics().await;
        for name in [
            "pgw_relay_notifications_received_total",
            "pgw_relay_invoices",
            "pgw_relay_outbox_backlog",
            "pgw_relay_broker_connected",
            "pgw_relay_build_info",
            "pgw_relay_http_request_duration_seconds_bucket",
        ] {
            assert!(metrics.contains(name), "{backend:?}: {name} missing");
        }
        app.stop().await;
    }
}

#[tokio::test]
async fn the_public_listener_serves_only_the_gateway_endpoints() {
    let app = spawn_app(Options::new(Backend::Sqlite)).await;
    for path in ["/metrics", "/healthz", "/v1/invoices/JT01/X"] {
        let res = app.client.get(format!("{}{path}", app.public)).send().await.unwrap();
        assert_eq!(res.status(), 404, "{path} must not be public");
    }
    app.stop().await;
}
