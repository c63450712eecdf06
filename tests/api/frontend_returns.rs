//! `GET|POST /2c2p/frontend-return`: recorded, never trusted, redirected with the trusted status.

use base64::Engine;
use serde_json::{json, Value};

use crate::helpers::*;

fn payment_response(invoice: &str) -> String {
    let json = json!({"locale": null, "invoiceNo": invoice, "channelCode": "CC", "respCode": "2000",
        "respDesc": "Transaction is completed, please do payment inquiry request for full payment information."});
    base64::engine::general_purpose::STANDARD.encode(json.to_string())
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn post_return(app: &TestApp, query: &str, value: &str) -> reqwest::Response {
    no_redirects()
        .post(format!("{}/2c2p/frontend-return{query}", app.public))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", "https://sandbox-pgw-ui.2c2p.com")
        .body(format!("paymentResponse={}", urlencode(value)))
        .send()
        .await
        .unwrap()
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn location(res: &reqwest::Response) -> url::Url {
    url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap()
}

#[tokio::test]
async fn a_browser_2000_is_recorded_but_never_turns_into_succeeded() {
    for backend in BACKENDS {
        // The gateway is unreachable: the inquiry the return starts fails and changes nothing.
        let mut opts = Options::new(backend);
        opts.extra_toml = "[gateway]\nbase_url = \"http://127.0.0.1:9\"\ntimeout = \"2s\"\n".into();
        let app = spawn_app(opts).await;
        let inv = invoice_no();
        app.register_invoice(&inv, "5.00").await;
        let res = post_return(&app, "?merchantID=JT01", &payment_response(&inv)).await;
        assert_eq!(res.status(), 303, "{backend:?}");
        let target = location(&res);
        assert_eq!(target.host_str(), Some("shop.example"));
        assert_eq!(target.path(), "/payment/result");
        let pairs: Vec<(String, String)> = target.query_pairs().into_owned().collect();
        assert_eq!(pairs, [("invoiceNo".to_string(), inv.clone()), ("status".to_string(), "pending".to_string())]);

        let body = app.invoice("JT01", &inv).await;
        assert_eq!(body["status"], "pending");
        assert!(body["customerReturnedAt"].is_string());
        assert!(body["events"].as_array().unwrap().is_empty(), "a browser return publishes nothing");
        let history = body["history"].as_array().unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!(history[0]["kind"], "frontend_return");
        assert_eq!(history[0]["respCode"], "2000");
        // The return inquired at once; the failed inquiry falls back to the backoff schedule.
        assert_eq!(body["inquiryAttempts"], 1, "{backend:?}");
        assert!(body["nextInquiryAt"].is_string(), "still scheduled");
        app.stop().await;
    }
}

#[tokio::test]
async fn the_redirect_carries_the_status_from_the_verified_notification() {
    let app = spawn_app(Options::new(Backend::Sqlite)).await;
    let inv = invoice_no();
    assert_eq!(app.post_notification(&sign_jt01(&notification(&inv, "4005", json!(5), "9"))).await.status(), 200);
    // The return claims 2000 (flow completed); the relay knows the payment failed.
    let res = post_return(&app, "", &payment_response(&inv)).await;
    assert_eq!(res.status(), 303);
    assert!(location(&res).query().unwrap().ends_with("status=failed"));
    // GET with the query string works the same.
    let res = no_redirects()
        .get(format!(
            "{}/2c2p/frontend-return?merchantID=JT01&paymentResponse={}",
            app.public,
            urlencode(&payment_response(&inv))
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert!(location(&res).query().unwrap().ends_with("status=failed"));
    app.stop().await;
}

#[tokio::test]
async fn undecodable_returns_get_a_400_page_and_store_nothing() {
    let app = spawn_app(Options::new(Backend::Sqlite)).await;
    for value in
        ["", "%%%not-base64%%%", "aGVsbG8", &base64::engine::general_purpose::STANDARD.encode("{\"invoiceNo\":\"\"}")]
    {
        let res = post_return(&app, "?merchantID=JT01", value).await;
        assert_eq!(res.status(), 400, "{value}");
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    }
    let res = post_return(&app, "?merchantID=NOPE", &payment_response("X1")).await;
    assert_eq!(res.status(), 400, "unknown merchant");
    assert_eq!(app.get_invoice("JT01", "X1").await.status(), 404);
    assert_eq!(app.metric(r#"pgw_relay_notifications_received_total{kind="frontend",outcome="malformed"}"#).await, 4.0);
    app.stop().await;
}

#[tokio::test]
async fn without_merchant_id_the_merchant_that_knows_the_invoice_is_used() {
    let app = spawn_app(Options::new(Backend::Sqlite)).await;
    let inv = invoice_no();
    app.register_invoice(&inv, "5.00").await;
    let res = post_return(&app, "", &payment_response(&inv)).await;
    assert_eq!(res.status(), 303);
    // Two merchants are configured and neither knows this one: 400.
    let res = post_return(&app, "", &payment_response(&invoice_no())).await;
    assert_eq!(res.status(), 400);
    app.stop().await;
}

#[tokio::test]
async fn strangers_cannot_grow_the_database_or_flood_the_gateway() {
    let mut opts = Options::new(Backend::Sqlite);
    opts.extra_toml = "[frontend_return]\ninquiries_per_second = 1\nburst = 3\nmax_untrusted_invoices = 2\n".into();
    let app = spawn_app(opts).await;
    let unknown: Vec<String> = (0..3).map(|_| invoice_no()).collect();
    for inv in &unknown {
        let res = post_return(&app, "?merchantID=JT01", &payment_response(inv)).await;
        assert_eq!(res.status(), 303, "the browser is always sent on");
        assert!(location(&res).query().unwrap().ends_with("status=pending"));
    }
    // The first two unknown invoices are registered as untrusted; the cap stops the third.
    let first = app.invoice("JT01", &unknown[0]).await;
    assert_eq!(first["trusted"], false);
    assert_eq!(first["origin"], "frontend_return");
    assert_eq!(first["amount"], Value::Null, "no amount is invented");
    assert_eq!(app.get_invoice("JT01", &unknown[1]).await.status(), 200);
    assert_eq!(app.get_invoice("JT01", &unknown[2]).await.status(), 404);
    // The burst of 3 is used up: the next return is not recorded at all.
    let res = post_return(&app, "?merchantID=JT01", &payment_response(&unknown[0])).await;
    assert_eq!(res.status(), 303);
    assert_eq!(app.invoice("JT01", &unknown[0]).await["history"].as_array().unwrap().len(), 1);
    assert_eq!(
        app.metric(r#"pgw_relay_notifications_received_total{kind="frontend",outcome="rate_limited"}"#).await,
        1.0
    );
    // A verified notification later makes the untrusted invoice trusted.
    assert_eq!(
        app.post_notification(&sign_jt01(&notification(&unknown[0], "0000", json!(5), "1"))).await.status(),
        200
    );
    let body = app.invoice("JT01", &unknown[0]).await;
    assert_eq!(body["trusted"], true);
    assert_eq!(body["status"], "succeeded");
    assert_eq!(body["amount"]["minor"], 500);
    app.stop().await;
}
