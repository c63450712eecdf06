//! What an anonymous browser return can and cannot do to invoices: it never decides an invoice's
//! fate, its cost is bounded per merchant and per invoice, and it never locks customers out.

use std::time::Duration;

use base64::Engine;
use pgw_relay::sim::Scenario;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::seed_flow::Flow;

/// Reconciliation shrunk to fractions of a second; the default payment window ends almost at once,
/// so an invoice that could expire would.
const FAST: &str = r#"
[reconcile]
interval = "100ms"
grace = "300ms"
after_return = "100ms"
initial_backoff = "200ms"
max_backoff = "400ms"
give_up_after = "1s"
default_payment_window = "300ms"
lease = "2s"
"#;

fn payment_response(invoice: &str, desc: &str) -> String {
    let json = json!({"invoiceNo": invoice, "channelCode": "CC", "respCode": "2000", "respDesc": desc});
    base64::engine::general_purpose::STANDARD.encode(json.to_string())
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// A browser return by GET, as anyone can send it; returns the status it was redirected with.
async fn browser_return(public: &str, invoice: &str, desc: &str) -> String {
    let res = no_redirects()
        .get(format!(
            "{public}/2c2p/frontend-return?merchantID=JT01&paymentResponse={}",
            enc(&payment_response(invoice, desc))
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let target = url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    target.query_pairs().find(|(k, _)| k == "status").map(|(_, v)| v.into_owned()).unwrap()
}

async fn register(app: &TestApp, invoice: &str, amount: &str) -> reqwest::Response {
    let expires = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    app.client
        .post(format!("{}/v1/invoices", app.internal))
        .bearer_auth(API_TOKEN)
        .json(&json!({"merchantID": "JT01", "invoiceNo": invoice, "amount": amount, "currencyCode": "SGD",
                      "expiresAt": expires}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_browser_return_never_decides_the_fate_of_an_invoice_it_does_not_know() {
    for backend in BACKENDS {
        let mut flow = Flow::start(backend, FAST).await;
        let inv = invoice_no();
        assert_eq!(browser_return(&flow.app.public, &inv, "made up").await, "pending");
        // Its one inquiry finds nothing (2002)...
        let sim = flow.sim.control();
        let once = || async { sim.inquiry_count("JT01", &inv) == 1 };
        eventually("the inquiry", Duration::from_secs(5), once).await;
        // ...and past the payment window and give_up_after it is still not decided, nor inquired.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(sim.inquiry_count("JT01", &inv), 1, "{backend:?}: at most one inquiry");
        let body = flow.app.invoice("JT01", &inv).await;
        assert_eq!(body["trusted"], false, "{backend:?}: {body}");
        assert_eq!(body["status"], "pending", "{backend:?}: never expired");
        assert!(body["events"].as_array().unwrap().is_empty());
        assert!(flow.broker.next(Duration::from_millis(200)).await.is_none(), "nothing published");

        // The shop registers it: its amount and window apply, reconciliation starts from now.
        let res = register(&flow.app, &inv, "100.00").await;
        assert_eq!(res.status(), 201, "{backend:?}: adopted as a new registration");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["status"], "pending");
        assert_eq!(body["amount"]["minor"], 10000);
        let body = flow.app.invoice("JT01", &inv).await;
        assert_eq!(body["trusted"], true);
        assert_eq!(body["origin"], "registered");
        assert_eq!(body["inquiryAttempts"], 0);

        // The customer pays: the signed notification settles it.
        let res = flow.app.post_notification(&sign_jt01(&notification(&inv, "0000", json!("100.00"), "T1"))).await;
        assert_eq!(res.status(), 200);
        let body = flow.app.invoice("JT01", &inv).await;
        assert_eq!(body["status"], "succeeded", "{backend:?}: {body}");
        let messages = flow.broker.take_exactly(1, Duration::from_secs(10), Duration::from_millis(300)).await;
        assert_eq!(messages[0].body["type"], "payment.succeeded");
        flow.stop().await;
    }
}

#[tokio::test]
async fn the_cap_on_unknown_invoices_holds_and_each_gets_one_inquiry() {
    for backend in BACKENDS {
        let extra = format!(
            "{FAST}\n[frontend_return]\nmax_untrusted_invoices = 3\nburst = 20\ninquiries_per_second = 20\n\
             untrusted_inquiries_per_second = 20\n"
        );
        let flow = Flow::start(backend, &extra).await;
        let invoices: Vec<String> = (0..12).map(|_| invoice_no()).collect();
        for inv in &invoices {
            assert_eq!(browser_return(&flow.app.public, inv, "made up").await, "pending");
            // Let the inquiries of the earlier ones run in between.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let mut stored = 0;
        for inv in &invoices {
            if flow.app.get_invoice("JT01", inv).await.status() == 200 {
                stored += 1;
            }
        }
        assert_eq!(stored, 3, "{backend:?}: the cap holds after the inquiries ran");
        let inquiries: u64 = invoices.iter().map(|i| flow.sim.control().inquiry_count("JT01", i)).sum();
        assert_eq!(inquiries, 3, "{backend:?}: one inquiry per stored unknown invoice");
        // Returns over the cap are still redirected, and store nothing.
        assert_eq!(browser_return(&flow.app.public, &invoice_no(), "more").await, "pending");
        flow.stop().await;
    }
}

#[tokio::test]
async fn unknown_invoices_share_a_small_inquiry_budget() {
    let extra = format!("{FAST}\n[frontend_return]\nuntrusted_inquiries_per_second = 1\nburst = 20\n");
    let flow = Flow::start(Backend::Sqlite, &extra).await;
    let invoices: Vec<String> = (0..6).map(|_| invoice_no()).collect();
    for inv in &invoices {
        browser_return(&flow.app.public, inv, "made up").await;
    }
    let total = || invoices.iter().map(|i| flow.sim.control().inquiry_count("JT01", i)).sum::<u64>();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(total() <= 3, "{} inquiries in 1.3 s with a budget of 1/s", total());
    // A registered invoice is not held up by them.
    let registered = invoice_no();
    let url = flow.web_payment_url(&registered, "28052010234224845229").await;
    flow.scenario(&registered, Scenario { drop: true, ..Scenario::default() });
    flow.pay(&url, "success", "28052010234224845229").await;
    wait_for_status(&flow.app, &registered, "succeeded", Duration::from_secs(3)).await;
    eventually("every unknown invoice gets its one inquiry", Duration::from_secs(10), || async { total() == 6 }).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(total(), 6, "and no more");
    flow.stop().await;
}

#[tokio::test]
async fn returns_for_registered_invoices_never_spend_the_bucket() {
    let mut opts = Options::new(Backend::Sqlite);
    opts.extra_toml = "[gateway]\nbase_url = \"http://127.0.0.1:9\"\ntimeout = \"1s\"\n\
                       [frontend_return]\ninquiries_per_second = 1\nburst = 1\n"
        .into();
    let app = spawn_app(opts).await;
    let registered = invoice_no();
    assert_eq!(register(&app, &registered, "5.00").await.status(), 201);
    // An attacker uses up the merchant's bucket with made-up invoices.
    for _ in 0..5 {
        browser_return(&app.public, &invoice_no(), "flood").await;
    }
    assert!(
        app.metric(r#"pgw_relay_notifications_received_total{kind="frontend",outcome="rate_limited"}"#).await >= 4.0
    );
    // The real customer's return is still recorded.
    browser_return(&app.public, &registered, "Transaction is completed").await;
    let body = app.invoice("JT01", &registered).await;
    let returns = body["history"].as_array().unwrap().iter().filter(|h| h["kind"] == "frontend_return").count();
    assert_eq!(returns, 1, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn history_and_the_invoice_document_stay_bounded() {
    for backend in BACKENDS {
        let mut opts = Options::new(backend);
        opts.extra_toml = "[gateway]\nbase_url = \"http://127.0.0.1:9\"\ntimeout = \"1s\"\n".into();
        let app = spawn_app(opts).await;
        let inv = invoice_no();
        assert_eq!(register(&app, &inv, "5.00").await.status(), 201);
        let long = "x".repeat(5500);
        for i in 0..150 {
            browser_return(&app.public, &inv, &format!("{i}{long}")).await;
        }
        // Identical payloads count once.
        let twin = invoice_no();
        assert_eq!(register(&app, &twin, "5.00").await.status(), 201);
        for _ in 0..3 {
            browser_return(&app.public, &twin, "same").await;
        }
        let res = app.get_invoice("JT01", &inv).await;
        let text = res.text().await.unwrap();
        assert!(text.len() < 32 * 1024, "{backend:?}: the invoice document is {} bytes", text.len());
        let body: Value = serde_json::from_str(&text).unwrap();
        let returns: Vec<&Value> =
            body["history"].as_array().unwrap().iter().filter(|h| h["kind"] == "frontend_return").collect();
        assert_eq!(returns.len(), 5, "{backend:?}: at most max_returns_per_invoice recorded");
        for r in returns {
            assert!(r["respDesc"].as_str().unwrap().chars().count() <= 256, "free text is cut");
        }
        let twin_body = app.invoice("JT01", &twin).await;
        assert_eq!(twin_body["history"].as_array().unwrap().len(), 1, "{backend:?}: identical returns once");
        app.stop().await;
    }
}

#[tokio::test]
async fn a_long_history_is_paginated() {
    let app = spawn_app(Options::new(Backend::Postgres)).await;
    let inv = invoice_no();
    // 25 distinct verified observations (pending notifications with different references).
    for i in 0..25 {
        let res = app.post_notification(&sign_jt01(&notification(&inv, "0001", json!(5), &format!("P{i}")))).await;
        assert_eq!(res.status(), 200);
    }
    let body = app.invoice("JT01", &inv).await;
    assert_eq!(body["history"].as_array().unwrap().len(), 20, "the document inlines 20");
    let mut next = body["historyNext"].as_str().expect("a link to the rest").to_string();
    let mut seen: Vec<i64> = body["history"].as_array().unwrap().iter().map(|h| h["id"].as_i64().unwrap()).collect();
    let page_url = |link: &str| format!("{}{link}&limit=2", app.internal);
    loop {
        let res = app.client.get(page_url(&next)).bearer_auth(API_TOKEN).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let page: Value = res.json().await.unwrap();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|h| h["id"].as_i64().unwrap()));
        match page["nextCursor"].as_str() {
            Some(cursor) => next = format!("/v1/invoices/JT01/{inv}/history?cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 25);
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "oldest first, no repeats");
    let bad = app
        .client
        .get(format!("{}/v1/invoices/JT01/{inv}/history?limit=1000", app.internal))
        .bearer_auth(API_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    app.stop().await;
}
