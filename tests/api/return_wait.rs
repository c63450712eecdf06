//! The customer sees the real result: a browser return for a registered pending invoice inquires
//! at once and the redirect waits briefly for a final status. pgw-sim drops its notifications, so
//! only the inquiry can tell.

use std::time::{Duration, Instant};

use pgw_relay::sim::Scenario;

use crate::helpers::*;
use crate::seed_flow::Flow;

const CARD: &str = "28052010234224845229";

fn status_of(target: &url::Url) -> String {
    target.query_pairs().find(|(k, _)| k == "status").map(|(_, v)| v.into_owned()).unwrap_or_default()
}

/// Creates a token for a new invoice, sets its scenario, pays with `outcome`; the page's report.
async fn paid(flow: &Flow, scenario: Scenario, outcome: &str) -> (String, serde_json::Value) {
    let inv = invoice_no();
    let url = flow.web_payment_url(&inv, CARD).await;
    flow.scenario(&inv, scenario);
    let report = flow.pay(&url, outcome, CARD).await;
    assert_eq!(report["notification"]["delivery"], "dropped");
    (inv, report)
}

fn dropped() -> Scenario {
    Scenario { drop: true, ..Scenario::default() }
}

#[tokio::test]
async fn the_redirect_carries_the_result_of_the_inquiry_made_at_the_return() {
    for backend in BACKENDS {
        let mut flow = Flow::start(backend, "").await;
        for (outcome, status, event) in
            [("success", "succeeded", "payment.succeeded"), ("decline", "failed", "payment.failed")]
        {
            let (inv, report) = paid(&flow, dropped(), outcome).await;
            let started = Instant::now();
            let target = flow.browser_returns(&report).await;
            assert_eq!(status_of(&target), status, "{backend:?} {outcome}");
            assert!(started.elapsed() < Duration::from_secs(3), "answered within the wait");
            let messages = flow.broker.take_exactly(1, Duration::from_secs(10), Duration::from_millis(300)).await;
            assert_eq!(messages[0].body["type"], event);
            assert_eq!(messages[0].body["data"]["source"], "inquiry");
            assert_eq!(flow.sim.control().inquiry_count("JT01", &inv), 1);
        }
        assert_eq!(
            flow.app.metric(r#"pgw_relay_frontend_return_wait_seconds_count{outcome="final"}"#).await,
            2.0,
            "{backend:?}"
        );
        flow.stop().await;
    }
}

#[tokio::test]
async fn a_gateway_slower_than_the_wait_gives_pending_then_the_answer_still_lands() {
    let flow = Flow::start(Backend::Sqlite, "[frontend_return]\nwait_for_result = \"1s\"\n").await;
    let (inv, report) =
        paid(&flow, Scenario { drop: true, inquiry_delay_ms: 2500, ..Scenario::default() }, "success").await;
    let started = Instant::now();
    let target = flow.browser_returns(&report).await;
    let waited = started.elapsed();
    assert_eq!(status_of(&target), "pending");
    assert!(waited >= Duration::from_millis(900) && waited < Duration::from_millis(2000), "waited {waited:?}");
    // The inquiry goes on after the browser has left.
    wait_for_status(&flow.app, &inv, "succeeded", Duration::from_secs(6)).await;
    assert_eq!(flow.app.metric(r#"pgw_relay_frontend_return_wait_seconds_count{outcome="timed_out"}"#).await, 1.0);
    flow.stop().await;
}

#[tokio::test]
async fn concurrent_returns_for_one_invoice_share_one_inquiry() {
    let flow = Flow::start(Backend::Postgres, "").await;
    let (inv, report) =
        paid(&flow, Scenario { drop: true, inquiry_delay_ms: 500, ..Scenario::default() }, "success").await;
    let returns = (0..5).map(|_| flow.browser_returns(&report));
    let targets = futures_util::future::join_all(returns).await;
    for target in &targets {
        assert_eq!(status_of(target), "succeeded");
    }
    assert_eq!(flow.sim.control().inquiry_count("JT01", &inv), 1, "five returns, one inquiry");
    flow.stop().await;
}

#[tokio::test]
async fn unknown_and_final_invoices_are_redirected_without_waiting() {
    let flow = Flow::start(Backend::Sqlite, "").await;
    // Unknown: redirected at once, and no inquiry yet (its one inquiry comes later, budgeted).
    let unknown = invoice_no();
    let report = serde_json::json!({
        "frontendReturnUrl": format!("{}/2c2p/frontend-return?merchantID=JT01", flow.app.public),
        "paymentResponse": base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            serde_json::json!({"invoiceNo": unknown, "respCode": "2000"}).to_string()
        ),
    });
    flow.sim.control().set_scenario(
        pgw_relay::sim::Scope::invoice("JT01", &unknown),
        Scenario { inquiry_delay_ms: 3000, ..Scenario::default() },
    );
    let started = Instant::now();
    assert_eq!(status_of(&flow.browser_returns(&report).await), "pending");
    assert!(started.elapsed() < Duration::from_millis(500), "took {:?}", started.elapsed());
    // Final already (the notification was delivered): redirected at once, no inquiry.
    let inv = invoice_no();
    let url = flow.web_payment_url(&inv, CARD).await;
    let report = flow.pay(&url, "success", CARD).await;
    let started = Instant::now();
    assert_eq!(status_of(&flow.browser_returns(&report).await), "succeeded");
    assert!(started.elapsed() < Duration::from_millis(500));
    assert_eq!(flow.sim.control().inquiry_count("JT01", &inv), 0);
    assert_eq!(flow.app.metric(r#"pgw_relay_frontend_return_wait_seconds_count{outcome="not_waited"}"#).await, 2.0);
    flow.stop().await;
}

#[tokio::test]
async fn with_the_wait_off_the_inquiry_still_starts_at_the_return() {
    let flow = Flow::start(Backend::Sqlite, "[frontend_return]\nwait_for_result = \"0s\"\n").await;
    let (inv, report) = paid(&flow, dropped(), "success").await;
    assert_eq!(status_of(&flow.browser_returns(&report).await), "pending");
    // Nothing else inquires within 5 s (grace is 5 min): only the inquiry the return started.
    wait_for_status(&flow.app, &inv, "succeeded", Duration::from_secs(5)).await;
    flow.stop().await;
}
