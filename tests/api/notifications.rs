//! `POST /2c2p/backend-notification` end to end, on SQLite and PostgreSQL.

use base64::Engine;
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn a_signed_notification_is_stored_with_its_event_on_both_backends() {
    for backend in BACKENDS {
        let app = spawn_app(Options::new(backend)).await;
        let inv = invoice_no();
        let res = app.post_notification(&sign_jt01(&notification(&inv, "0000", json!(230.87), "2868821"))).await;
        assert_eq!(res.status(), 200, "{backend:?}");
        assert_eq!(res.json::<Value>().await.unwrap()["status"], "accepted");

        let body = app.invoice("JT01", &inv).await;
        assert_eq!(body["status"], "succeeded", "{backend:?}");
        assert_eq!(body["amount"], json!({"minor": 23087, "currency": "SGD", "exponent": 2, "value": "230.87"}));
        assert_eq!(body["respCode"], "0000");
        assert_eq!(body["tranRef"], "2868821");
        assert_eq!(body["history"].as_array().unwrap().len(), 1);
        assert_eq!(body["history"][0]["kind"], "backend_notification");
        assert_eq!(body["history"][0]["outcome"], "applied:succeeded");
        assert_eq!(body["history"][0]["observation"]["transactionTime"], "2026-11-27T08:05:08+08:00");
        let events = body["events"].as_array().unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["type"], "payment.succeeded");
        assert_eq!(events[0]["sequence"], 1);
        assert_eq!(
            app.metric(r#"pgw_relay_notifications_received_total{kind="backend",outcome="accepted"}"#).await,
            1.0
        );
        assert_eq!(app.metric(r#"pgw_relay_invoices{status="succeeded"}"#).await, 1.0);
        app.stop().await;
    }
}

#[tokio::test]
async fn the_real_4_1_sandbox_notification_is_accepted() {
    let vectors: Vec<Value> = serde_json::from_str(include_str!("../data/2c2p-vectors.json")).unwrap();
    let real = vectors.iter().find(|v| v["decoded_payload"]["merchantID"] == REAL_MERCHANT).unwrap();
    let app = spawn_app(Options::new(Backend::Sqlite)).await;
    let res = app.post_notification(real["jwt"].as_str().unwrap()).await;
    assert_eq!(res.status(), 200);
    let body = app.invoice(REAL_MERCHANT, "pay1").await;
    assert_eq!(body["status"], "succeeded");
    assert_eq!(body["amount"]["minor"], 100000);
    assert_eq!(body["amount"]["currency"], "SGD");
    let obs = &body["history"][0]["observation"];
    assert_eq!(obs["maskedPan"], "411111XXXXXX1111");
    assert_eq!(obs["customerToken"], Value::Null, "an empty cardToken is absent, not invented");
    assert_eq!(obs["transactionTime"], "2022-04-01T13:53:59+08:00");
    app.stop().await;
}

#[tokio::test]
async fn amounts_as_strings_and_numbers_and_the_4_1_spelling_normalise_alike() {
    let app = spawn_app(Options::new(Backend::Sqlite)).await;
    for amount in [json!("1000.00"), json!(1000), json!(1000.0), json!("000000001000.00000")] {
        let inv = invoice_no();
        let mut claims = notification(&inv, "0000", amount.clone(), "1");
        let obj = claims.as_object_mut().unwrap();
        let pan = obj.remove("accountNo").unwrap();
        obj.insert("cardNo".into(), pan);
        let token = obj.remove("customerToken").unwrap();
        obj.insert("cardToken".into(), token);
        obj.insert("approvalCode".into(), Value::Null);
        obj.insert("someFutureField".into(), json!({"nested": true}));
        let res = app.post_notification(&sign_jt01(&claims)).await;
        assert_eq!(res.status(), 200, "{amount}");
        let body = app.invoice("JT01", &inv).await;
        assert_eq!(body["amount"]["minor"], 100000, "{amount}");
        let obs = &body["history"][0]["observation"];
        assert_eq!(obs["maskedPan"], "411111XXXXXX1111");
        assert_eq!(obs["customerToken"], "28052010234224845229");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_full_card_number_is_masked_before_it_is_stored() {
    let app = spawn_app(Options::new(Backend::Sqlite)).await;
    let inv = invoice_no();
    let mut claims = notification(&inv, "0000", json!(1), "7");
    claims["accountNo"] = json!("4111111111111111");
    assert_eq!(app.post_notification(&sign_jt01(&claims)).await.status(), 200);
    let body = app.invoice("JT01", &inv).await;
    assert_eq!(body["history"][0]["observation"]["maskedPan"], "411111XXXXXX1111");
    assert!(!body.to_string().contains("4111111111111111"));
    let raw = body["history"][0]["raw"].as_str().expect("audit copy kept");
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw.split('.').nth(1).unwrap()).unwrap();
    let claims = String::from_utf8(claims).unwrap();
    assert!(claims.contains("411111XXXXXX1111") && !claims.contains("4111111111111111"), "{claims}");
    app.stop().await;
}

#[tokio::test]
async fn a_duplicate_answers_200_and_stores_no_second_event() {
    for backend in BACKENDS {
        let app = spawn_app(Options::new(backend)).await;
        let inv = invoice_no();
        let token = sign_jt01(&notification(&inv, "0000", json!("10.00"), "55"));
        assert_eq!(app.post_notification(&token).await.status(), 200);
        let res = app.post_notification(&token).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.json::<Value>().await.unwrap()["status"], "duplicate");
        let body = app.invoice("JT01", &inv).await;
        assert_eq!(body["events"].as_array().unwrap().len(), 1, "{backend:?}");
        assert_eq!(body["history"].as_array().unwrap().len(), 1, "{backend:?}");
        assert_eq!(
            app.metric(r#"pgw_relay_notifications_received_total{kind="backend",outcome="duplicate"}"#).await,
            1.0
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn pending_then_success_then_late_pending_is_monotonic() {
    let app = spawn_app(Options::new(Backend::Sqlite)).await;
    let inv = invoice_no();
    for (code, tran) in [("0001", "1"), ("0000", "1"), ("0001", "2")] {
        assert_eq!(app.post_notification(&sign_jt01(&notification(&inv, code, json!(5), tran))).await.status(), 200);
    }
    let body = app.invoice("JT01", &inv).await;
    assert_eq!(body["status"], "succeeded");
    let types: Vec<&str> = body["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["payment.pending", "payment.succeeded"]);
    app.stop().await;
}

#[tokio::test]
async fn a_conflicting_final_state_is_an_anomaly_not_an_overwrite() {
    for backend in BACKENDS {
        let app = spawn_app(Options::new(backend)).await;
        let inv = invoice_no();
        assert_eq!(app.post_notification(&sign_jt01(&notification(&inv, "0000", json!(5), "1"))).await.status(), 200);
        assert_eq!(app.post_notification(&sign_jt01(&notification(&inv, "4005", json!(5), "2"))).await.status(), 200);
        let body = app.invoice("JT01", &inv).await;
        assert_eq!(body["status"], "succeeded", "{backend:?}");
        let types: Vec<&str> = body["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["payment.succeeded", "payment.anomaly"]);
        assert_eq!(app.metric(r#"pgw_relay_anomalies_total{reason="conflict"}"#).await, 1.0);
        app.stop().await;
    }
}

#[tokio::test]
async fn concurrent_notifications_for_one_invoice_apply_one_final_state() {
    for backend in BACKENDS {
        let app = std::sync::Arc::new(spawn_app(Options::new(backend)).await);
        let inv = invoice_no();
        let mut tasks = Vec::new();
        for i in 0..24 {
            let (code, tran) = if i % 2 == 0 { ("0000", format!("s{i}")) } else { ("4005", format!("f{i}")) };
            let token = sign_jt01(&notification(&inv, code, json!(5), &tran));
            let app = app.clone();
            tasks.push(tokio::spawn(async move { app.post_notification(&token).await.status() }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 200);
        }
        let body = app.invoice("JT01", &inv).await;
        let status = body["status"].as_str().unwrap().to_string();
        assert!(status == "succeeded" || status == "failed", "{backend:?}: {status}");
        let events = body["events"].as_array().unwrap();
        let finals: Vec<&Value> = events.iter().filter(|e| e["type"] != "payment.anomaly").collect();
        assert_eq!(finals.len(), 1, "{backend:?}: exactly one final event, got {events:?}");
        assert_eq!(finals[0]["type"], format!("payment.{status}"));
        let sequences: Vec<i64> = events.iter().map(|e| e["sequence"].as_i64().unwrap()).collect();
        let expected: Vec<i64> = (1..=sequences.len() as i64).collect();
        assert_eq!(sequences, expected, "{backend:?}: sequences strictly increase without gaps");
        assert_eq!(app.history("JT01", &inv).await.len(), 24);
        match std::sync::Arc::try_unwrap(app) {
            Ok(app) => app.stop().await,
            Err(_) => panic!("app still shared"),
        }
    }
}

/// Every bad input gets its 4xx, a JSON error, a counter, and changes nothing.
#[tokio::test]
async fn bad_input_is_rejected_with_a_clear_error_and_stores_nothing() {
    for backend in BACKENDS {
        let app = spawn_app(Options::new(backend)).await;
        let inv = invoice_no();
        let claims = notification(&inv, "0000", json!(5), "1");
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let good = sign_jt01(&claims);
        let parts: Vec<&str> = good.split('.').collect();
        let none_alg = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), parts[1]);
        let hs512 = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(JT01_KEY.as_bytes()),
        )
        .unwrap();
        let tampered = format!("{}.{}.{}", parts[0], b64(&claims.to_string().replace("0000", "0001")), parts[2]);
        let mut unknown = claims.clone();
        unknown["merchantID"] = json!("NOPE99");
        let mut no_invoice = claims.clone();
        no_invoice.as_object_mut().unwrap().remove("invoiceNo");
        let mut bad_amount = claims.clone();
        bad_amount["amount"] = json!("12.345");
        let huge = json!({ "payload": "x".repeat(70 * 1024) }).to_string();
        // Correctly signed with JT01's key, but the header asks for an unencoded payload (RFC 7797).
        let crit_header = b64(r#"{"alg":"HS256","typ":"JWT","crit":["b64"],"b64":false}"#);
        let crit_input = format!("{crit_header}.{}", parts[1]);
        let crit_sig = jsonwebtoken::crypto::sign(
            crit_input.as_bytes(),
            &jsonwebtoken::EncodingKey::from_secret(JT01_KEY.as_bytes()),
            jsonwebtoken::Algorithm::HS256,
        )
        .unwrap();
        let crit = format!("{crit_input}.{crit_sig}");

        let cases: Vec<(&str, String, u16, &str)> = vec![
            ("not json", "hello".into(), 400, "malformed"),
            ("no payload field", json!({"token": good}).to_string(), 400, "malformed"),
            ("payload not a JWT", json!({"payload": "abc"}).to_string(), 400, "malformed"),
            ("unknown merchant", json!({"payload": sign_jt01(&unknown)}).to_string(), 401, "bad_signature"),
            ("crit header", json!({"payload": crit}).to_string(), 401, "bad_signature"),
            (
                "wrong key",
                json!({"payload": pgw_relay::protocol::jwt::sign(&claims, "wrong")}).to_string(),
                401,
                "bad_signature",
            ),
            ("tampered claims", json!({"payload": tampered}).to_string(), 401, "bad_signature"),
            ("alg none", json!({"payload": none_alg}).to_string(), 401, "bad_signature"),
            ("HS512", json!({"payload": hs512}).to_string(), 401, "bad_signature"),
            ("missing invoiceNo", json!({"payload": sign_jt01(&no_invoice)}).to_string(), 400, "invalid_notification"),
            ("amount too precise", json!({"payload": sign_jt01(&bad_amount)}).to_string(), 400, "invalid_notification"),
            ("oversize", huge, 413, "too_large"),
        ];
        for (name, body, status, code) in cases {
            let res = app.post_notification_body(body).await;
            assert_eq!(res.status().as_u16(), status, "{backend:?} {name}");
            let err: Value = res.json().await.unwrap_or_else(|_| panic!("{name}: JSON error body"));
            assert_eq!(err["error"], code, "{backend:?} {name}");
            assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()), "{name}");
            assert!(!err.to_string().contains(JT01_KEY), "{name}: never echo the key");
        }
        assert_eq!(app.get_invoice("JT01", &inv).await.status(), 404, "{backend:?}: nothing stored");
        assert_eq!(app.get_invoice("NOPE99", &inv).await.status(), 404);
        let metrics = app.metrics().await;
        assert_eq!(
            metric_value(&metrics, r#"pgw_relay_notifications_received_total{kind="backend",outcome="bad_signature"}"#),
            5.0
        );
        assert_eq!(
            metric_value(
                &metrics,
                r#"pgw_relay_notifications_received_total{kind="backend",outcome="unknown_merchant"}"#
            ),
            1.0,
            "the metric still tells an unknown merchant apart"
        );
        assert_eq!(
            metric_value(&metrics, r#"pgw_relay_notifications_received_total{kind="backend",outcome="too_large"}"#),
            1.0
        );
        assert!(!metrics.contains(&inv), "metrics never carry invoice numbers");
        app.stop().await;
    }
}

#[tokio::test]
async fn the_previous_key_is_accepted_during_rotation() {
    let mut opts = Options::new(Backend::Sqlite);
    opts.extra_toml = r#"
[[merchants]]
id = "ROT1"
secret_key = "the-new-key-0000000000000000000"
previous_secret_key = "the-old-key-1111111111111111111"
"#
    .into();
    let app = spawn_app(opts).await;
    for (key, status) in
        [("the-old-key-1111111111111111111", 200), ("the-new-key-0000000000000000000", 200), ("another", 401)]
    {
        let inv = invoice_no();
        let mut claims = notification(&inv, "0000", json!(5), key);
        claims["merchantID"] = json!("ROT1");
        let res = app.post_notification(&pgw_relay::protocol::jwt::sign(&claims, key)).await;
        assert_eq!(res.status().as_u16(), status, "{key}");
    }
    app.stop().await;
}

#[tokio::test]
async fn storage_down_answers_503_so_the_gateway_retries() {
    let mut opts = Options::new(Backend::Postgres);
    opts.db_url = Some("postgres://postgres@127.0.0.1:1/none".into());
    opts.migrate = false;
    let app = spawn_app(opts).await;
    let inv = invoice_no();
    let res = app.post_notification(&sign_jt01(&notification(&inv, "0000", json!(5), "1"))).await;
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "5", "a transient failure says when to retry");
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "store_unavailable");
    let ready = app.client.get(format!("{}/readyz", app.internal)).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    app.stop().await;
}

/// An unknown merchant must not be distinguishable from a bad signature: same status, same body.
#[tokio::test]
async fn unknown_merchant_answers_exactly_like_a_bad_signature() {
    let app = spawn_app(Options::new(Backend::Sqlite)).await;
    let mut claims = notification(&invoice_no(), "0000", json!("1000.00"), "1");
    let wrong_key = pgw_relay::protocol::jwt::sign(&claims, "not-the-key");
    claims["merchantID"] = json!("NOPE99");
    let unknown = sign_jt01(&claims);
    let a = app.post_notification_body(json!({ "payload": wrong_key }).to_string()).await;
    let b = app.post_notification_body(json!({ "payload": unknown }).to_string()).await;
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (401, 401));
    assert_eq!(a.text().await.unwrap(), b.text().await.unwrap());
    app.stop().await;
}
