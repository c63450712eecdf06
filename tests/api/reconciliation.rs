//! Reconciliation through Payment Inquiry, with pgw-sim as the gateway, the real RabbitMQ, and
//! SQLite and PostgreSQL. Durations are shrunk so a test takes seconds.

use std::time::{Duration, Instant};

use pgw_relay::sim::{Outcome, Scenario};
use serde_json::Value;
use sqlx::Connection;

use crate::helpers::*;
use crate::seed_flow::Flow;

const FAST: &str = r#"
[reconcile]
interval = "100ms"
grace = "300ms"
after_return = "100ms"
initial_backoff = "200ms"
max_backoff = "400ms"
give_up_after = "3s"
default_payment_window = "1s"
lease = "2s"
"#;

async fn token(flow: &Flow, inv: &str) -> String {
    flow.web_payment_url(inv, "28052010234224845229").await
}

fn drop_notifications(flow: &Flow, inv: &str) {
    flow.scenario(inv, Scenario { drop: true, ..Scenario::default() });
}

#[tokio::test]
async fn a_dropped_notification_is_settled_by_inquiry_and_the_late_notification_adds_nothing() {
    for backend in BACKENDS {
        let mut flow = Flow::start(backend, FAST).await;
        let inv = invoice_no();
        let url = token(&flow, &inv).await;
        // Held, not dropped: it is delivered after the inquiry has settled the invoice.
        flow.scenario(&inv, Scenario { reorder: true, ..Scenario::default() });
        flow.pay(&url, "success", "28052010234224845229").await;
        let body = wait_for_status(&flow.app, &inv, "succeeded", Duration::from_secs(10)).await;
        assert_eq!(body["history"].as_array().unwrap().last().unwrap()["kind"], "inquiry");
        let first = flow.broker.take_exactly(1, Duration::from_secs(5), Duration::from_millis(200)).await;
        assert_eq!(first[0].body["type"], "payment.succeeded");
        assert_eq!(first[0].body["data"]["source"], "inquiry");
        assert_eq!(first[0].body["data"]["respCode"], "0000");
        // The same fact arrives as a notification: stored, but no second event.
        assert_eq!(flow.sim.control().release("JT01", &inv), 1);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(flow.broker.next(Duration::from_millis(300)).await.is_none(), "{backend:?}: one event per fact");
        let body = flow.app.invoice("JT01", &inv).await;
        assert!(body["history"].as_array().unwrap().iter().any(|h| h["kind"] == "backend_notification"));
        assert_eq!(body["events"].as_array().unwrap().len(), 1);
        flow.stop().await;
    }
}

#[tokio::test]
async fn pending_answers_are_retried_until_the_payment_completes() {
    let mut flow = Flow::start(Backend::Sqlite, FAST).await;
    let inv = invoice_no();
    let url = token(&flow, &inv).await;
    drop_notifications(&flow, &inv);
    flow.scenario(&inv, Scenario { drop: true, pending_for_n: 3, ..Scenario::default() });
    flow.pay(&url, "success", "28052010234224845229").await;
    wait_for_status(&flow.app, &inv, "succeeded", Duration::from_secs(10)).await;
    assert!(flow.sim.control().inquiry_count("JT01", &inv) >= 4);
    let events = flow.broker.take_exactly(2, Duration::from_secs(5), Duration::from_millis(300)).await;
    let types: Vec<&str> = events.iter().map(|m| m.body["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["payment.pending", "payment.succeeded"]);
    assert_eq!(events[1].body["data"]["sequence"], 2);
    flow.stop().await;
}

#[tokio::test]
async fn a_decline_found_by_inquiry_fails_the_invoice() {
    let mut flow = Flow::start(Backend::Postgres, FAST).await;
    let inv = invoice_no();
    let url = token(&flow, &inv).await;
    drop_notifications(&flow, &inv);
    flow.pay(&url, "decline", "28052010234224845229").await;
    wait_for_status(&flow.app, &inv, "failed", Duration::from_secs(10)).await;
    let events = flow.broker.take_exactly(1, Duration::from_secs(5), Duration::from_millis(200)).await;
    assert_eq!(events[0].body["data"]["respCode"], "4005");
    flow.stop().await;
}

#[tokio::test]
async fn nothing_paid_expires_after_the_window_and_pending_after_give_up() {
    for backend in BACKENDS {
        let mut flow = Flow::start(backend, FAST).await;
        // Never paid: 2002 until the 1 s window ends, then expired.
        let unpaid = invoice_no();
        token(&flow, &unpaid).await;
        // Paid with a method that stays pending (0001) until give_up_after (3 s): expired.
        let stuck = invoice_no();
        let url = token(&flow, &stuck).await;
        drop_notifications(&flow, &stuck);
        flow.pay(&url, "pending", "28052010234224845229").await;

        let body = wait_for_status(&flow.app, &unpaid, "expired", Duration::from_secs(10)).await;
        assert!(body["history"].as_array().unwrap().iter().any(|h| h["respCode"] == "2002"));
        wait_for_status(&flow.app, &stuck, "expired", Duration::from_secs(15)).await;
        let events = flow.broker.take_exactly(3, Duration::from_secs(5), Duration::from_millis(300)).await;
        let mut seen: Vec<(String, String)> = events
            .iter()
            .map(|m| (m.body["subject"].as_str().unwrap().to_string(), m.body["type"].as_str().unwrap().to_string()))
            .collect();
        seen.sort();
        let mut want = vec![
            (unpaid.clone(), "payment.expired".to_string()),
            (stuck.clone(), "payment.pending".to_string()),
            (stuck.clone(), "payment.expired".to_string()),
        ];
        want.sort();
        assert_eq!(seen, want, "{backend:?}");
        flow.stop().await;
    }
}

#[tokio::test]
async fn gateway_errors_change_nothing_and_back_off() {
    let mut flow = Flow::start(Backend::Sqlite, FAST).await;
    let inv = invoice_no();
    let url = token(&flow, &inv).await;
    flow.pay(&url, "success", "28052010234224845229").await;
    let _ = flow.broker.take_exactly(1, Duration::from_secs(5), Duration::from_millis(100)).await;
    // A second invoice, paid but never notified, while the gateway misbehaves.
    let inv = invoice_no();
    let url = token(&flow, &inv).await;
    flow.scenario(&inv, Scenario { drop: true, unsigned_error: Some("9042".into()), ..Scenario::default() });
    flow.pay(&url, "success", "28052010234224845229").await;
    let watch = Duration::from_secs(3);
    tokio::time::sleep(watch).await;
    let unsigned = flow.sim.control().inquiry_count("JT01", &inv);
    // Every 100 ms without backoff would be ~27 calls; 200 ms doubling to a 400 ms cap is ~7.
    assert!((2..=10).contains(&unsigned), "{unsigned} inquiries in {watch:?}");
    assert_eq!(flow.app.invoice("JT01", &inv).await["status"], "pending", "an unsigned error body is not a result");
    // 5xx next.
    flow.scenario(&inv, Scenario { drop: true, fail_5xx_for_n: 3, ..Scenario::default() });
    let body = wait_for_status(&flow.app, &inv, "succeeded", Duration::from_secs(10)).await;
    assert_eq!(body["events"].as_array().unwrap().len(), 1);
    let metrics = flow.app.metrics().await;
    assert!(
        metric_value(&metrics, r#"pgw_relay_gateway_errors_total{api="payment_inquiry",kind="unsigned_error"}"#) >= 2.0
    );
    assert!(
        metric_value(&metrics, r#"pgw_relay_gateway_errors_total{api="payment_inquiry",kind="http_status"}"#) >= 1.0
    );
    assert!(metric_value(&metrics, r#"pgw_relay_inquiries_total{result="succeeded"}"#) >= 1.0);
    flow.stop().await;
}

#[tokio::test]
async fn a_notification_arriving_mid_backoff_stops_the_inquiries() {
    let flow = Flow::start(Backend::Sqlite, FAST).await;
    let inv = invoice_no();
    let url = token(&flow, &inv).await;
    flow.scenario(&inv, Scenario { reorder: true, pending_for_n: 1000, ..Scenario::default() });
    flow.pay(&url, "success", "28052010234224845229").await;
    let until = Instant::now() + Duration::from_secs(5);
    while flow.sim.control().inquiry_count("JT01", &inv) < 2 {
        assert!(Instant::now() < until, "reconciliation never inquired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    flow.sim.control().release("JT01", &inv);
    let body = wait_for_status(&flow.app, &inv, "succeeded", Duration::from_secs(5)).await;
    assert_eq!(body["nextInquiryAt"], Value::Null);
    let count = flow.sim.control().inquiry_count("JT01", &inv);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(flow.sim.control().inquiry_count("JT01", &inv), count, "no inquiry after the notification settled it");
    flow.stop().await;
}

#[tokio::test]
async fn an_amount_that_differs_from_the_registered_invoice_stops_reconciliation() {
    let mut flow = Flow::start(Backend::Sqlite, FAST).await;
    let inv = invoice_no();
    flow.app.register_invoice(&inv, "999.00").await;
    let url = token(&flow, &inv).await; // the gateway charges 1000.00
    drop_notifications(&flow, &inv);
    flow.pay(&url, "success", "28052010234224845229").await;
    let events = flow.broker.take_exactly(1, Duration::from_secs(10), Duration::from_millis(300)).await;
    assert_eq!(events[0].body["type"], "payment.anomaly");
    assert_eq!(events[0].body["data"]["reason"], "amount_mismatch");
    let body = flow.app.invoice("JT01", &inv).await;
    assert_eq!(body["status"], "pending");
    assert_eq!(body["needsReview"], true);
    assert_eq!(body["nextInquiryAt"], Value::Null);
    let count = flow.sim.control().inquiry_count("JT01", &inv);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(flow.sim.control().inquiry_count("JT01", &inv), count);
    assert_eq!(flow.app.metric(r#"pgw_relay_anomalies_total{reason="amount_mismatch"}"#).await, 1.0);
    flow.stop().await;
}

#[tokio::test]
async fn a_crashed_replicas_lease_expires_and_the_work_is_picked_up() {
    let flow = Flow::start(Backend::Postgres, FAST).await;
    let inv = invoice_no();
    let url = token(&flow, &inv).await;
    drop_notifications(&flow, &inv);
    // Another replica leased this invoice and died.
    let mut db = sqlx::PgConnection::connect(&flow.app.db_url).await.unwrap();
    let until = chrono::Utc::now().timestamp_millis() + 1500;
    sqlx::query("UPDATE invoices SET lease_owner = 'crashed-replica', lease_until = $1 WHERE invoice_no = $2")
        .bind(until)
        .bind(&inv)
        .execute(&mut db)
        .await
        .unwrap();
    flow.sim.control().pay("JT01", &inv, Outcome::Success).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(flow.sim.control().inquiry_count("JT01", &inv), 0, "leased to another replica");
    wait_for_status(&flow.app, &inv, "succeeded", Duration::from_secs(5)).await;
    assert_eq!(flow.sim.control().inquiry_count("JT01", &inv), 1);
    let _ = url;
    flow.stop().await;
}

#[tokio::test]
async fn two_relays_on_one_postgres_database_never_inquire_one_invoice_twice() {
    let flow = Flow::start(Backend::Postgres, FAST).await;
    let mut opts = Options::new(Backend::Postgres);
    opts.db_url = Some(flow.app.db_url.clone());
    opts.extra_toml = format!("[gateway]\nbase_url = \"{}\"\n{FAST}", flow.sim.base_url());
    let second = spawn_app(opts).await;
    let mut invoices = Vec::new();
    for _ in 0..40 {
        let inv = invoice_no();
        token(&flow, &inv).await;
        drop_notifications(&flow, &inv);
        flow.sim.control().pay("JT01", &inv, Outcome::Success).await.unwrap();
        invoices.push(inv);
    }
    for inv in &invoices {
        wait_for_status(&flow.app, inv, "succeeded", Duration::from_secs(15)).await;
    }
    for inv in &invoices {
        assert_eq!(flow.sim.control().inquiry_count("JT01", inv), 1, "{inv} inquired by both replicas");
        assert_eq!(flow.app.invoice("JT01", inv).await["events"].as_array().unwrap().len(), 1);
    }
    let inquired_by_second = metric_value(&second.metrics().await, r#"pgw_relay_inquiries_total{result="succeeded"}"#);
    let inquired_by_first = metric_value(&flow.app.metrics().await, r#"pgw_relay_inquiries_total{result="succeeded"}"#);
    assert_eq!(inquired_by_first + inquired_by_second, 40.0);
    second.stop().await;
    flow.stop().await;
}

#[tokio::test]
async fn an_inquiry_can_be_run_on_demand() {
    let flow = Flow::start(Backend::Sqlite, "[reconcile]\nenabled = false\n").await;
    let inv = invoice_no();
    token(&flow, &inv).await;
    drop_notifications(&flow, &inv);
    flow.sim.control().pay("JT01", &inv, Outcome::Cancel).await.unwrap();
    let url = |i: &str| format!("{}/v1/invoices/JT01/{i}/reconcile", flow.app.internal);
    let res = flow.app.client.post(url(&inv)).bearer_auth(API_TOKEN).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["status"], "cancelled");
    assert_eq!(report["respCode"], "0003");
    let res = flow.app.client.post(url("UNKNOWN1")).bearer_auth(API_TOKEN).send().await.unwrap();
    assert_eq!(res.status(), 404);
    flow.stop().await;
}
