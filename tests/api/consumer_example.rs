//! `examples/consumer.rs` against the real RabbitMQ on the seed flow's events: a duplicate
//! delivery, a restart in the middle, and a late event with a lower sequence.

use std::time::{Duration, Instant};

use lapin::options::{BasicPublishOptions, ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{Connection, ConnectionProperties};
use serde_json::json;

use crate::broker::Message;
use crate::helpers::*;
use crate::seed_flow::{Flow, CARD_A, CARD_B};

#[allow(dead_code)]
#[path = "../../examples/consumer.rs"]
mod example;

/// Publishes a captured message again, same bytes and properties, as a redelivery or a replay would.
async fn publish(channel: &lapin::Channel, exchange: &str, m: &Message) {
    channel
        .basic_publish(
            exchange.into(),
            m.routing_key.clone().into(),
            BasicPublishOptions::default(),
            &serde_json::to_vec(&m.body).unwrap(),
            m.properties.clone(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
}

async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts the example's consumer loop; stopping it is sending on the returned channel.
fn start(
    settings: &example::Settings,
    store: &example::Store,
) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (settings, store) = (settings.clone(), store.clone());
    let task = tokio::spawn(async move {
        example::run(&settings, &store, async {
            let _ = stopped.await;
        })
        .await
        .expect("the consumer runs until stopped");
    });
    (stop, task)
}

#[tokio::test]
async fn the_consumer_example_dedupes_orders_by_sequence_and_survives_a_restart() {
    // The seed flow on pgw-relay + pgw-sim: invoice A pending then succeeded, invoice B declined.
    let mut flow = Flow::start(Backend::Sqlite, "").await;
    let (a, b) = (invoice_no(), invoice_no());
    let url = flow.web_payment_url(&a, CARD_A).await;
    flow.pay(&url, "pending", CARD_A).await;
    let claims = notification(&a, "0000", json!("1000.00"), "9000001");
    assert_eq!(flow.app.post_notification(&sign_jt01(&claims)).await.status(), 200);
    let url = flow.web_payment_url(&b, CARD_B).await;
    flow.pay(&url, "decline", CARD_B).await;
    let messages = flow.broker.take_exactly(3, Duration::from_secs(10), Duration::from_millis(300)).await;
    let find = |t: &str, inv: &str| {
        messages.iter().find(|m| m.routing_key == t && m.body["subject"] == inv).unwrap_or_else(|| panic!("{t} {inv}"))
    };
    let (a_pending, a_succeeded, b_failed) =
        (find("payment.pending", &a), find("payment.succeeded", &a), find("payment.failed", &b));
    assert_eq!(
        (a_pending.body["data"]["sequence"].clone(), a_succeeded.body["data"]["sequence"].clone()),
        (json!(1), json!(2))
    );

    // The consumer on its own exchange, so the test chooses the order of delivery.
    let dir = tempfile::tempdir().unwrap();
    let settings = example::Settings {
        amqp_url: amqp_url(),
        exchange: test_exchange(),
        queue: format!("{}.consumer", test_exchange()),
        bindings: vec!["payment.#".into()],
        database_url: format!("sqlite://{}/consumer.db", dir.path().display()),
        prefetch: 8,
    };
    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default()).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel.confirm_select(Default::default()).await.unwrap();
    example::declare(&channel, &settings).await.unwrap();

    let store = example::Store::open(&settings.database_url).await.unwrap();
    let (stop, task) = start(&settings, &store);
    // The newer event first, a duplicate of it, then B.
    for m in [a_succeeded, a_succeeded, b_failed] {
        publish(&channel, &settings.exchange, m).await;
    }
    wait_until("three deliveries handled", || {
        let store = store.clone();
        async move { store.deliveries().await.unwrap() == 3 }
    })
    .await;
    assert_eq!(store.processed().await.unwrap(), 2, "the duplicate did nothing");

    // Restart in the middle: messages published while it is down wait in its durable queue.
    stop.send(()).unwrap();
    task.await.unwrap();
    assert_eq!(queue_depth(&channel, &settings.queue).await, 0, "everything handled was acknowledged");
    drop(store);
    for m in [a_pending, b_failed, a_succeeded] {
        publish(&channel, &settings.exchange, m).await;
    }
    assert_eq!(queue_depth(&channel, &settings.queue).await, 3, "kept while the consumer is down");
    let store = example::Store::open(&settings.database_url).await.unwrap();
    let (stop, task) = start(&settings, &store);
    wait_until("six deliveries handled", || {
        let store = store.clone();
        async move { store.deliveries().await.unwrap() == 6 }
    })
    .await;
    stop.send(()).unwrap();
    task.await.unwrap();
    assert_eq!(queue_depth(&channel, &settings.queue).await, 0, "nothing left unacknowledged");

    // The late pending (sequence 1) never overwrote succeeded (sequence 2).
    let paid = store.payment("JT01", &a).await.unwrap().unwrap();
    assert_eq!((paid.status.as_str(), paid.sequence), ("succeeded", 2));
    assert_eq!(paid.last_event_id, a_succeeded.message_id());
    assert_eq!((paid.amount_minor, paid.currency.as_deref()), (Some(100000), Some("SGD")));
    let declined = store.payment("JT01", &b).await.unwrap().unwrap();
    assert_eq!((declined.status.as_str(), declined.sequence), ("failed", 1));
    assert_eq!(store.outcome(&a_pending.message_id()).await.unwrap().as_deref(), Some("stale"));
    assert_eq!(store.outcome(&a_succeeded.message_id()).await.unwrap().as_deref(), Some("applied"));
    assert_eq!(store.processed().await.unwrap(), 3, "three distinct events, each handled once");

    let _ = channel.queue_delete(settings.queue.clone().into(), QueueDeleteOptions::default()).await;
    let _ = channel.exchange_delete(settings.exchange.clone().into(), ExchangeDeleteOptions::default()).await;
    let _ = connection.close(200, "test done".into()).await;
    flow.stop().await;
}

/// Messages ready in `queue`.
async fn queue_depth(channel: &lapin::Channel, queue: &str) -> u32 {
    channel
        .queue_declare(
            queue.into(),
            lapin::options::QueueDeclareOptions { passive: true, ..Default::default() },
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap()
        .message_count()
}
