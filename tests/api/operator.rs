//! The operator's side: invoice and outbox lists, replaying one event, the dry run of a range
//! replay, and the gauges behind them.

use std::time::Duration;

use serde_json::{json, Value};

use crate::broker::TestBroker;
use crate::helpers::*;

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    let res = app.client.get(format!("{}{path}", app.internal)).bearer_auth(API_TOKEN).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let res =
        app.client.post(format!("{}{path}", app.internal)).bearer_auth(API_TOKEN).json(&body).send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn register(app: &TestApp, inv: &str) -> Value {
    let body = json!({"merchantID": "JT01", "invoiceNo": inv, "amount": "10.00", "currencyCode": "SGD"});
    let (status, created) = post(app, "/v1/invoices", body).await;
    assert_eq!(status, 201, "{created}");
    created
}

async fn settle(app: &TestApp, inv: &str) {
    let res = app.post_notification(&sign_jt01(&notification(inv, "0000", json!("10.00"), inv))).await;
    assert_eq!(res.status(), 200);
}

fn numbers(page: &Value) -> Vec<String> {
    page["items"].as_array().unwrap().iter().map(|i| i["invoiceNo"].as_str().unwrap().to_string()).collect()
}

/// Follows `nextCursor` from `first` to the end; the invoice numbers in order.
async fn all_pages(app: &TestApp, path: &str, mut page: Value) -> Vec<String> {
    let mut seen = numbers(&page);
    while let Some(cursor) = page["nextCursor"].as_str() {
        let (status, next) = get(app, &format!("{path}&cursor={cursor}")).await;
        assert_eq!(status, 200, "{next}");
        seen.extend(numbers(&next));
        page = next;
    }
    seen
}

#[tokio::test]
async fn invoice_list_is_newest_first_filtered_and_stable_while_invoices_arrive() {
    for backend in BACKENDS {
        let app = spawn_app(Options::new(backend)).await;
        let mut invoices = Vec::new();
        for _ in 0..5 {
            let inv = invoice_no();
            register(&app, &inv).await;
            invoices.push(inv);
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        settle(&app, &invoices[1]).await;
        let newest_first: Vec<String> = invoices.iter().rev().cloned().collect();

        let (status, first) = get(&app, "/v1/invoices?merchantID=JT01&limit=2").await;
        assert_eq!(status, 200, "{backend:?}: {first}");
        assert_eq!(numbers(&first), newest_first[..2].to_vec(), "{backend:?}");
        assert_eq!(first["items"][0]["status"], "pending");
        assert_eq!(first["items"][0]["amount"]["minor"], 1000);
        // An invoice registered between two pages neither shifts nor repeats what follows.
        let late = invoice_no();
        register(&app, &late).await;
        let listed = all_pages(&app, "/v1/invoices?merchantID=JT01&limit=2", first).await;
        assert_eq!(listed, newest_first, "{backend:?}: every invoice once, in order");

        let (_, settled) = get(&app, "/v1/invoices?status=succeeded").await;
        assert_eq!(numbers(&settled), vec![invoices[1].clone()], "{backend:?}");
        assert_eq!(settled["items"][0]["href"], format!("/v1/invoices/JT01/{}", invoices[1]));
        let (_, review) = get(&app, "/v1/invoices?needsReview=true").await;
        assert!(numbers(&review).is_empty(), "{backend:?}");
        let (_, newest) = get(&app, "/v1/invoices?limit=1").await;
        let late_created = newest["items"][0]["createdAt"].as_str().unwrap().to_string();
        assert_eq!(numbers(&newest), vec![late.clone()]);
        let (_, from) = get(&app, &format!("/v1/invoices?createdFrom={}", url_encode(&late_created))).await;
        assert_eq!(numbers(&from), vec![late.clone()], "{backend:?}: createdFrom is inclusive");
        let (_, before) = get(&app, &format!("/v1/invoices?createdTo={}&limit=200", url_encode(&late_created))).await;
        assert_eq!(numbers(&before), newest_first, "{backend:?}: createdTo is exclusive");
        app.stop().await;
    }
}

fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn invalid_list_parameters_get_400_naming_the_parameter() {
    let app = spawn_app(Options::new(Backend::Sqlite)).await;
    let cases = [
        ("/v1/invoices?status=paid", "status"),
        ("/v1/invoices?needsReview=yes", "needsReview"),
        ("/v1/invoices?createdFrom=yesterday", "createdFrom"),
        ("/v1/invoices?createdFrom=2026-01-02T00:00:00Z&createdTo=2026-01-01T00:00:00Z", "createdTo"),
        ("/v1/invoices?limit=0", "limit"),
        ("/v1/invoices?limit=201", "limit"),
        ("/v1/invoices?limit=ten", "limit"),
        ("/v1/invoices?cursor=not-a-cursor", "cursor"),
        ("/v1/invoices?merchant=JT01", "merchant"),
        ("/v1/invoices?limit=1&limit=2", "limit"),
        ("/v1/events?published=maybe", "published"),
        ("/v1/events?cursor=-4", "cursor"),
        ("/v1/events?invoiceNo=", "invoiceNo"),
        ("/v1/events?invoiceNo=INV1", "merchantID"),
    ];
    for (path, param) in cases {
        let (status, err) = get(&app, path).await;
        assert_eq!(status, 400, "{path}: {err}");
        assert_eq!(err["error"], "invalid_query", "{path}");
        assert!(err["message"].as_str().unwrap().contains(&format!("`{param}`")), "{path}: {err}");
    }
    let res = app.client.get(format!("{}/v1/invoices", app.internal)).send().await.unwrap();
    assert_eq!(res.status(), 401, "the lists need a token");
    app.stop().await;
}

#[tokio::test]
async fn parked_events_are_listed_counted_and_replayed_one_by_one() {
    for backend in BACKENDS {
        let exchange = test_exchange();
        // The exchange exists but no queue is bound yet: every publish comes back unroutable.
        let mut broker = TestBroker::new(&exchange).await;
        let mut opts = Options::new(backend);
        opts.exchange = Some(exchange.clone());
        let app = spawn_app(opts).await;
        let inv = invoice_no();
        settle(&app, &inv).await;

        let path = format!("/v1/events?merchantID=JT01&invoiceNo={inv}&published=false");
        eventually("the event to be parked", Duration::from_secs(15), || async {
            let (_, page) = get(&app, &path).await;
            page["items"][0]["parked"] == true
        })
        .await;
        let (_, page) = get(&app, &path).await;
        let parked = &page["items"][0];
        assert_eq!(parked["type"], "payment.succeeded", "{backend:?}: {page}");
        assert!(parked["attempts"].as_i64().unwrap() >= 1, "{parked}");
        assert!(parked["lastError"].as_str().unwrap().contains("return"), "{parked}");
        assert!(parked["nextAttemptAt"].is_string(), "{parked}");
        assert!(parked["publishedAt"].is_null());
        assert_eq!(app.metric("pgw_relay_outbox_parked").await, 1.0, "{backend:?}");
        assert_eq!(app.metric("pgw_relay_outbox_backlog").await, 1.0, "{backend:?}");
        assert_eq!(app.metric("pgw_relay_invoices{status=\"succeeded\"}").await, 1.0, "{backend:?}");
        let id = parked["id"].as_str().unwrap().to_string();

        // A queue appears: the parked event goes out and leaves the unpublished list.
        broker.bind().await;
        let first = broker.next(Duration::from_secs(15)).await.expect("the parked event is delivered");
        assert_eq!(first.message_id(), id);
        eventually("the event to be marked published", Duration::from_secs(10), || async {
            let (_, page) = get(&app, &path).await;
            page["items"].as_array().unwrap().is_empty()
        })
        .await;
        let (_, all) = get(&app, &format!("/v1/events?merchantID=JT01&invoiceNo={inv}")).await;
        assert!(all["items"][0]["publishedAt"].is_string(), "{all}");
        assert_eq!(app.metric("pgw_relay_outbox_parked").await, 0.0, "{backend:?}");
        assert_eq!(app.metric("pgw_relay_outbox_backlog").await, 0.0, "{backend:?}");

        // A dry run counts and changes nothing.
        let range = json!({"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z", "dryRun": true});
        let (status, dry) = post(&app, "/v1/events/replay", range).await;
        assert_eq!((status, dry["wouldRequeue"].as_i64()), (200, Some(1)), "{backend:?}: {dry}");
        assert!(broker.next(Duration::from_millis(800)).await.is_none(), "a dry run publishes nothing");

        // One event, again, with its id.
        let (status, body) = post(&app, &format!("/v1/events/{id}/replay"), json!({})).await;
        assert_eq!((status, body["requeued"].as_i64()), (202, Some(1)), "{backend:?}: {body}");
        let again = broker.next(Duration::from_secs(10)).await.expect("the replayed event is delivered");
        assert_eq!(again.message_id(), id);
        let unknown = uuid::Uuid::new_v4();
        assert_eq!(post(&app, &format!("/v1/events/{unknown}/replay"), json!({})).await.0, 404);
        assert_eq!(post(&app, "/v1/events/not-a-uuid/replay", json!({})).await.0, 400);
        app.stop().await;
        broker.cleanup(&[]).await;
    }
}

#[tokio::test]
async fn event_list_pages_newest_first() {
    for backend in BACKENDS {
        let app = spawn_app(Options::new(backend)).await;
        let mut invoices = Vec::new();
        for _ in 0..3 {
            let inv = invoice_no();
            settle(&app, &inv).await;
            invoices.push(inv);
        }
        let (status, first) = get(&app, "/v1/events?limit=2&published=false").await;
        assert_eq!(status, 200, "{first}");
        let mut seen = numbers(&first);
        let cursor = first["nextCursor"].as_str().expect("a second page").to_string();
        let (_, second) = get(&app, &format!("/v1/events?limit=2&published=false&cursor={cursor}")).await;
        seen.extend(numbers(&second));
        assert!(second["nextCursor"].is_null());
        let newest_first: Vec<String> = invoices.iter().rev().cloned().collect();
        assert_eq!(seen, newest_first, "{backend:?}");
        assert_eq!(first["items"][0]["attempts"], 0);
        assert_eq!(first["items"][0]["parked"], false);
        app.stop().await;
    }
}
