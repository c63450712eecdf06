//! `POST /v1/invoices` and the validation of `POST /v1/payment-tokens`.

use serde_json::{json, Value};

use crate::helpers::*;

async fn post(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.client.post(format!("{}{path}", app.internal)).bearer_auth(API_TOKEN).json(&body).send().await.unwrap()
}

#[tokio::test]
async fn registering_an_invoice_is_idempotent_and_publishes_nothing() {
    for backend in BACKENDS {
        let app = spawn_app(Options::new(backend)).await;
        let inv = invoice_no();
        let body = json!({"merchantID": "JT01", "invoiceNo": inv, "amount": 1000.5, "currencyCode": "THB",
            "expiresAt": "2030-01-01T00:00:00+07:00"});
        let res = post(&app, "/v1/invoices", body.clone()).await;
        assert_eq!(res.status(), 201, "{backend:?}");
        let created: Value = res.json().await.unwrap();
        assert_eq!(created["status"], "pending");
        assert_eq!(created["amount"], json!({"minor": 100050, "currency": "THB", "exponent": 2, "value": "1000.50"}));
        assert_eq!(post(&app, "/v1/invoices", body).await.status(), 200);
        let stored = app.invoice("JT01", &inv).await;
        assert_eq!(stored["expiresAt"], "2029-12-31T17:00:00.000Z");
        assert_eq!(stored["origin"], "registered");
        assert!(stored["events"].as_array().unwrap().is_empty());
        app.stop().await;
    }
}

#[tokio::test]
async fn invalid_requests_get_422_with_the_field_named() {
    let app = spawn_app(Options::new(Backend::Sqlite)).await;
    let base = json!({"merchantID": "JT01", "invoiceNo": "A1", "description": "item", "amount": "10.00", "currencyCode": "SGD"});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let cases = [
        ("invoiceNo", with("invoiceNo", json!("has space"))),
        ("invoiceNo", with("invoiceNo", json!("x".repeat(51)))),
        ("amount", with("amount", json!("10.001"))),
        ("amount", with("amount", json!("ten"))),
        ("amount", with("amount", json!(0))),
        ("currencyCode", with("currencyCode", json!("XYZ"))),
        ("merchantID", with("merchantID", json!("NOPE"))),
        ("customerToken", with("customerToken", json!("28052010234224845229"))),
        ("customerToken", with("customerToken", json!([1, 2]))),
        ("description", with("description", json!(""))),
        ("paymentExpiry", with("paymentExpiry", json!("tomorrow"))),
    ];
    for (field, body) in cases {
        let res = post(&app, "/v1/payment-tokens", body.clone()).await;
        assert_eq!(res.status(), 422, "{body}");
        let err: Value = res.json().await.unwrap();
        assert_eq!(err["error"], "invalid_request");
        assert!(err["message"].as_str().unwrap().contains(field), "{err}");
    }
    let res = post(
        &app,
        "/v1/invoices",
        json!({"merchantID": "JT01", "invoiceNo": "B1", "amount": "1", "currencyCode": "JPY", "expiresAt": "soon"}),
    )
    .await;
    assert_eq!(res.status(), 422);
    let res = app
        .client
        .post(format!("{}/v1/invoices", app.internal))
        .bearer_auth(API_TOKEN)
        .body("[1]")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    app.stop().await;
}

#[tokio::test]
async fn an_unreachable_gateway_is_a_502_and_registers_nothing() {
    let mut opts = Options::new(Backend::Sqlite);
    opts.extra_toml = "[gateway]\nbase_url = \"http://127.0.0.1:9\"\ntimeout = \"2s\"\n".into();
    let app = spawn_app(opts).await;
    let inv = invoice_no();
    let res = post(
        &app,
        "/v1/payment-tokens",
        json!({"merchantID": "JT01", "invoiceNo": inv, "description": "x", "amount": 10, "currencyCode": "SGD"}),
    )
    .await;
    assert_eq!(res.status(), 502);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "gateway_unavailable");
    assert_eq!(app.get_invoice("JT01", &inv).await.status(), 404);
    app.stop().await;
}
