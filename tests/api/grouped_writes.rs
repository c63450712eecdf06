//! Notifications arriving together are written in groups (one transaction for many, on both
//! stores); each must still get the answer and the effect it would get alone.

use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn notifications_sent_together_get_the_answers_and_effects_they_would_get_alone() {
    for backend in BACKENDS {
        let app = spawn_app(Options::new(backend)).await;
        // 40 invoices paid once; the first 8 of those notifications sent twice; 6 invoices with a
        // pending and a success notification at once; one the store refuses.
        let once: Vec<String> = (0..40).map(|_| invoice_no()).collect();
        let twice: Vec<String> = (0..6).map(|_| invoice_no()).collect();
        let refused = invoice_no();
        let lift_statement = refuse_history_of(backend, &app.db_url, &refused).await;

        let mut sends: Vec<(String, String)> = Vec::new();
        for (n, inv) in once.iter().enumerate() {
            let token = sign_jt01(&notification(inv, "0000", json!("25.00"), &format!("T{n}")));
            if n < 8 {
                sends.push((inv.clone(), token.clone()));
            }
            sends.push((inv.clone(), token));
        }
        for inv in &twice {
            sends.push((inv.clone(), sign_jt01(&notification(inv, "0001", json!("25.00"), "P"))));
            sends.push((inv.clone(), sign_jt01(&notification(inv, "0000", json!("25.00"), "S"))));
        }
        sends.push((refused.clone(), sign_jt01(&notification(&refused, "0000", json!("25.00"), "R"))));

        let client = &app;
        let answers = join_all(sends.iter().map(|(inv, token)| async move {
            let res = client.post_notification(token).await;
            assert_eq!(res.status(), 200, "{backend:?}: {inv}");
            (inv.clone(), res.json::<Value>().await.unwrap()["status"].as_str().unwrap().to_owned())
        }))
        .await;

        let answers_for = |inv: &str| {
            let mut a: Vec<&str> = answers.iter().filter(|(i, _)| i == inv).map(|(_, s)| s.as_str()).collect();
            a.sort();
            a
        };
        for (n, inv) in once.iter().enumerate() {
            let expected = if n < 8 { vec!["accepted", "duplicate"] } else { vec!["accepted"] };
            assert_eq!(answers_for(inv), expected, "{backend:?}: {inv}");
            let doc = app.invoice("JT01", inv).await;
            assert_eq!(doc["status"], "succeeded", "{backend:?}: {doc}");
            assert_eq!(doc["history"].as_array().unwrap().len(), 1, "{backend:?}: a duplicate is stored once");
            assert_eq!(doc["events"].as_array().unwrap().len(), 1, "{backend:?}: {doc}");
        }
        for inv in &twice {
            assert_eq!(answers_for(inv), ["accepted", "accepted"], "{backend:?}: {inv}");
            let doc = app.invoice("JT01", inv).await;
            assert_eq!(doc["status"], "succeeded", "{backend:?}: whatever the order: {doc}");
            assert_eq!(doc["history"].as_array().unwrap().len(), 2, "{backend:?}: {doc}");
            // payment.pending first if the pending notification came first, then payment.succeeded.
            let types: Vec<&str> =
                doc["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
            assert!(
                types == ["payment.succeeded"] || types == ["payment.pending", "payment.succeeded"],
                "{backend:?}: {doc}"
            );
        }
        assert_eq!(answers_for(&refused), ["quarantined"], "{backend:?}: the refusal reaches its own request only");
        assert_eq!(app.get_invoice("JT01", &refused).await.status(), 404, "{backend:?}: nothing of it is stored");

        // The kept gauges agree with the tables.
        let url = &app.db_url;
        let succeeded =
            scalar(backend, url, "SELECT COUNT(*) FROM invoices WHERE trusted AND status = 'succeeded'").await;
        assert_eq!(succeeded, 46, "{backend:?}");
        let metrics = app.metrics().await;
        assert_eq!(metric_value(&metrics, "pgw_relay_invoices{status=\"succeeded\"}"), 46.0, "{backend:?}");
        assert_eq!(metric_value(&metrics, "pgw_relay_invoices{status=\"pending\"}"), 0.0, "{backend:?}");
        let events = scalar(backend, url, "SELECT COUNT(*) FROM events").await;
        assert!((46..=52).contains(&events), "{backend:?}: {events} events");
        let unpublished = scalar(backend, url, "SELECT COUNT(*) FROM events WHERE published_at IS NULL").await;
        assert_eq!(unpublished, events, "{backend:?}: the broker is unreachable in this test");
        assert_eq!(metric_value(&metrics, "pgw_relay_outbox_backlog"), events as f64, "{backend:?}");
        lift(backend, url, &lift_statement).await;
        app.stop().await;
    }
}
