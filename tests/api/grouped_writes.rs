//! Notifications arriving together are written in groups (one transaction for many, on both
//! stores); each must still get the answer and the effect it would get alone.

use futures_util::future::join_all;
use serde_json::{json, Value};
use sqlx::Connection;

use crate::helpers::*;

#[tokio::test]
async fn notifications_sent_together_get_the_answers_and_effects_they_would_get_alone() {
    // PostgreSQL also with two group writers (`database.group_writers`), whose groups commit side
    // by side.
    for (backend, writers) in BACKENDS.map(|b| (b, 1)).into_iter().chain([(Backend::Postgres, 2)]) {
        let mut opts = Options::new(backend);
        opts.database_extra = format!("group_writers = {writers}");
        let app = spawn_app(opts).await;
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
            assert_eq!(res.status(), 200, "{backend:?} ({writers} writers): {inv}");
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
            assert_eq!(answers_for(inv), expected, "{backend:?} ({writers} writers): {inv}");
            let doc = app.invoice("JT01", inv).await;
            assert_eq!(doc["status"], "succeeded", "{backend:?} ({writers} writers): {doc}");
            assert_eq!(
                doc["history"].as_array().unwrap().len(),
                1,
                "{backend:?} ({writers} writers): a duplicate is stored once"
            );
            assert_eq!(doc["events"].as_array().unwrap().len(), 1, "{backend:?} ({writers} writers): {doc}");
        }
        for inv in &twice {
            assert_eq!(answers_for(inv), ["accepted", "accepted"], "{backend:?} ({writers} writers): {inv}");
            let doc = app.invoice("JT01", inv).await;
            assert_eq!(doc["status"], "succeeded", "{backend:?} ({writers} writers): whatever the order: {doc}");
            assert_eq!(doc["history"].as_array().unwrap().len(), 2, "{backend:?} ({writers} writers): {doc}");
            // payment.pending first if the pending notification came first, then payment.succeeded.
            let types: Vec<&str> =
                doc["events"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
            assert!(
                types == ["payment.succeeded"] || types == ["payment.pending", "payment.succeeded"],
                "{backend:?} ({writers} writers): {doc}"
            );
        }
        assert_eq!(
            answers_for(&refused),
            ["quarantined"],
            "{backend:?} ({writers} writers): the refusal reaches its own request only"
        );
        assert_eq!(
            app.get_invoice("JT01", &refused).await.status(),
            404,
            "{backend:?} ({writers} writers): nothing of it is stored"
        );

        // The kept gauges agree with the tables.
        let url = &app.db_url;
        let succeeded =
            scalar(backend, url, "SELECT COUNT(*) FROM invoices WHERE trusted AND status = 'succeeded'").await;
        assert_eq!(succeeded, 46, "{backend:?} ({writers} writers)");
        let metrics = app.metrics().await;
        assert_eq!(
            metric_value(&metrics, "pgw_relay_invoices{status=\"succeeded\"}"),
            46.0,
            "{backend:?} ({writers} writers)"
        );
        assert_eq!(
            metric_value(&metrics, "pgw_relay_invoices{status=\"pending\"}"),
            0.0,
            "{backend:?} ({writers} writers)"
        );
        let events = scalar(backend, url, "SELECT COUNT(*) FROM events").await;
        assert!((46..=52).contains(&events), "{backend:?} ({writers} writers): {events} events");
        let unpublished = scalar(backend, url, "SELECT COUNT(*) FROM events WHERE published_at IS NULL").await;
        assert_eq!(unpublished, events, "{backend:?} ({writers} writers): the broker is unreachable in this test");
        assert_eq!(
            metric_value(&metrics, "pgw_relay_outbox_backlog"),
            events as f64,
            "{backend:?} ({writers} writers)"
        );
        lift(backend, url, &lift_statement).await;
        app.stop().await;
    }
}

/// Invoices the store holds already (registered, or known only from a browser return) are written
/// once per group, and each leaves the gauge it was counted under for its new status.
#[tokio::test]
async fn notifications_for_stored_invoices_move_each_invoice_and_the_gauges_once() {
    for backend in BACKENDS {
        let app = spawn_app(Options::new(backend)).await;
        let url = &app.db_url;
        // 20 registered invoices (trusted, pending), 5 known only from a browser return (untrusted:
        // not counted), and 5 new ones.
        let registered: Vec<String> = (0..20).map(|_| invoice_no()).collect();
        for inv in &registered {
            app.register_invoice(inv, "25.00").await;
        }
        let untrusted: Vec<String> = (0..5).map(|_| invoice_no()).collect();
        for inv in &untrusted {
            let insert = format!(
                "INSERT INTO invoices (merchant_id, invoice_no, status, origin, trusted, sequence, created_at, updated_at) \
                 VALUES ('JT01', '{inv}', 'pending', 'frontend_return', FALSE, 0, 1, 1)"
            );
            lift(backend, url, &insert).await;
        }
        let fresh: Vec<String> = (0..5).map(|_| invoice_no()).collect();
        assert_eq!(app.metric("pgw_relay_invoices{status=\"pending\"}").await, 20.0, "{backend:?}");

        let mut sends: Vec<(String, String)> = Vec::new();
        for inv in registered.iter().chain(&untrusted) {
            sends.push((inv.clone(), sign_jt01(&notification(inv, "0000", json!("25.00"), "S"))));
        }
        for inv in &fresh {
            sends.push((inv.clone(), sign_jt01(&notification(inv, "0001", json!("25.00"), "P"))));
        }
        let client = &app;
        join_all(sends.iter().map(|(inv, token)| async move {
            let res = client.post_notification(token).await;
            assert_eq!(res.status(), 200, "{backend:?}: {inv}");
            assert_eq!(res.json::<Value>().await.unwrap()["status"], "accepted", "{backend:?}: {inv}");
        }))
        .await;

        for inv in registered.iter().chain(&untrusted) {
            let doc = app.invoice("JT01", inv).await;
            assert_eq!(doc["status"], "succeeded", "{backend:?}: {doc}");
            assert_eq!(doc["amount"]["minor"], 2500, "{backend:?}: {doc}");
            assert_eq!(doc["events"].as_array().unwrap().len(), 1, "{backend:?}: {doc}");
        }
        for inv in &fresh {
            let doc = app.invoice("JT01", inv).await;
            assert_eq!(doc["status"], "pending", "{backend:?}: {doc}");
            assert_eq!(doc["origin"], "backend_notification", "{backend:?}: {doc}");
            assert_eq!(doc["events"].as_array().unwrap().len(), 1, "{backend:?}: {doc}");
        }
        let count = |status: &'static str| {
            let sql = format!("SELECT COUNT(*) FROM invoices WHERE trusted AND status = '{status}'");
            async move { scalar(backend, url, &sql).await }
        };
        assert_eq!((count("succeeded").await, count("pending").await), (25, 5), "{backend:?}");
        let metrics = app.metrics().await;
        assert_eq!(metric_value(&metrics, "pgw_relay_invoices{status=\"succeeded\"}"), 25.0, "{backend:?}");
        assert_eq!(metric_value(&metrics, "pgw_relay_invoices{status=\"pending\"}"), 5.0, "{backend:?}");
        assert_eq!(metric_value(&metrics, "pgw_relay_outbox_backlog"), 30.0, "{backend:?}");
        app.stop().await;
    }
}

/// PostgreSQL: a notification for an invoice that another transaction is creating waits for that
/// transaction, then applies to the invoice as it stored it; the gauges count the invoice once.
#[tokio::test]
async fn a_notification_for_an_invoice_being_created_elsewhere_applies_to_it_as_stored() {
    let backend = Backend::Postgres;
    let app = spawn_app(Options::new(backend)).await;
    let inv = invoice_no();
    let mut other = sqlx::PgConnection::connect(&app.db_url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut other).await.unwrap();
    sqlx::query(
        "INSERT INTO invoices (merchant_id, invoice_no, status, amount_minor, currency, exponent, origin, trusted, \
         sequence, next_inquiry_at, created_at, updated_at) VALUES ('JT01', $1, 'pending', 2500, 'SGD', 2, 'registered', \
         TRUE, 0, 1, 1, 1)",
    )
    .bind(&inv)
    .execute(&mut other)
    .await
    .unwrap();

    let token = sign_jt01(&notification(&inv, "0000", json!("25.00"), "S"));
    let (client, public) = (app.client.clone(), app.public.clone());
    let answer = tokio::spawn(async move {
        client
            .post(format!("{public}/2c2p/backend-notification"))
            .header("content-type", "application/json; charset=utf-8")
            .body(json!({ "payload": token }).to_string())
            .send()
            .await
            .unwrap()
    });
    // The group's upsert waits on the uncommitted invoice's key.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(!answer.is_finished(), "the notification waits for the other transaction");
    sqlx::query("COMMIT").execute(&mut other).await.unwrap();

    let res = answer.await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "accepted");
    let doc = app.invoice("JT01", &inv).await;
    assert_eq!(doc["status"], "succeeded", "{doc}");
    assert_eq!(doc["origin"], "registered", "the invoice as the other transaction stored it: {doc}");
    assert_eq!(doc["history"].as_array().unwrap().len(), 1, "{doc}");
    assert_eq!(doc["events"].as_array().unwrap().len(), 1, "{doc}");
    let metrics = app.metrics().await;
    assert_eq!(metric_value(&metrics, "pgw_relay_invoices{status=\"succeeded\"}"), 1.0);
    assert_eq!(metric_value(&metrics, "pgw_relay_invoices{status=\"pending\"}"), 0.0);
    assert_eq!(metric_value(&metrics, "pgw_relay_outbox_backlog"), 1.0);
    app.stop().await;
}
