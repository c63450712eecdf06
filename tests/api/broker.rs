//! The outbox relay against a real RabbitMQ and real SQLite / PostgreSQL databases.
//!
//! Needs RabbitMQ on `PGW_TEST_AMQP_URL` (default `amqp://guest:guest@127.0.0.1:5672/%2f`),
//! PostgreSQL on `PGW_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`, a
//! role allowed to create databases) and `rabbitmqctl` for the connection-drop test. Every test
//! uses its own exchange, queues and database, so tests run in parallel; the only disturbance is
//! closing the test's own connection, never a broker restart.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use pgw_relay::broker::{Broker, BrokerHandle};
use pgw_relay::config::{BrokerSettings, DatabaseSettings};
use pgw_relay::domain::observation::{Observation, Source};
use pgw_relay::metrics::Metrics;
use pgw_relay::protocol::payment_result::PaymentResult;
use pgw_relay::store::{now_ms, EventRow, ReplaySelector, Store, Timing};
use secrecy::SecretString;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const MERCHANT: &str = "JT01";

use crate::event_schema::{assert_valid_event_text, assert_valid_message};
use crate::helpers::{self, amqp_url, Backend};

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::now_v7().simple())
}

fn timing() -> Timing {
    Timing { grace: Duration::from_secs(300), payment_window: Duration::from_secs(1800) }
}

// ---------------------------------------------------------------------------------------------
// Databases

/// A migrated test database (dropped with it) and a store on it.
struct TestDb {
    url: String,
    store: Store,
    _db: helpers::TestDb,
}

fn database_settings(url: &str) -> DatabaseSettings {
    DatabaseSettings {
        url: SecretString::from(url.to_string()),
        migrate_on_start: true,
        max_connections: 8,
        write_batch: 64,
        group_writers: 1,
    }
}

impl TestDb {
    async fn new(backend: Backend) -> TestDb {
        let db = helpers::TestDb::new(backend).await;
        let store = Store::connect(&database_settings(&db.url)).await.unwrap();
        store.migrate().await.unwrap();
        TestDb { url: db.url.clone(), store, _db: db }
    }

    /// Another store on the same database (as a second replica would have).
    async fn second_store(&self) -> Store {
        Store::connect(&database_settings(&self.url)).await.unwrap()
    }
}

/// Records a verified backend notification of `MERCHANT`.
async fn record(store: &Store, invoice: &str, code: &str, tran_ref: &str) {
    let json = format!(
        r#"{{"merchantID":"{MERCHANT}","invoiceNo":"{invoice}","amount":"230.87","currencyCode":"THB",
            "tranRef":"{tran_ref}","referenceNo":"ref-{tran_ref}","transactionDateTime":"20260101120000",
            "accountNo":"411111XXXXXX1111","respCode":"{code}","respDesc":"test"}}"#
    );
    let result: PaymentResult = serde_json::from_str(&json).unwrap();
    let obs = Observation::from_payment_result(
        &result,
        Source::BackendNotification,
        MERCHANT,
        "+07:00".parse().unwrap(),
        now_ms(),
    )
    .unwrap();
    let res = store
        .record_observation(obs, Some(json), Some(format!("{MERCHANT}/{invoice}/{code}/{tran_ref}")), timing())
        .await
        .unwrap();
    assert_eq!(res.events, 1, "the observation should write one event");
}

async fn events(store: &Store, invoices: &[String]) -> Vec<EventRow> {
    let mut all = Vec::new();
    for inv in invoices {
        all.extend(store.events_of(MERCHANT, inv).await.unwrap());
    }
    all.iter().for_each(|e| assert_valid_event_text(&e.body));
    all
}

// ---------------------------------------------------------------------------------------------
// Relay

fn settings(url: &str, exchange: &str, default_queue: &str) -> BrokerSettings {
    BrokerSettings {
        url: SecretString::from(url.to_string()),
        exchange: exchange.to_string(),
        default_queue: default_queue.to_string(),
        connection_name: unique("pgw-relay-test"),
        operation_timeout: Duration::from_secs(5),
        reconnect_min_backoff: Duration::from_millis(100),
        reconnect_max_backoff: Duration::from_secs(1),
        publish_batch: 64,
        poll_interval: Duration::from_millis(500),
        claim_lease: Duration::from_secs(20),
        default_queue_type: pgw_relay::config::QueueType::Classic,
        dead_letter_exchange: String::new(),
    }
}

struct Relay {
    handle: BrokerHandle,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
    metrics: Metrics,
    connection_name: String,
}

impl Relay {
    fn start(settings: BrokerSettings, store: Store) -> Relay {
        let wake = Arc::new(Notify::new());
        let shutdown = CancellationToken::new();
        let metrics = Metrics::new();
        let connection_name = settings.connection_name.clone();
        let handle =
            Broker::spawn(settings, store, metrics.clone(), wake.clone(), shutdown.clone(), Duration::from_secs(2));
        Relay { handle, wake, shutdown, metrics, connection_name }
    }

    /// Starts a relay and waits until it is connected to the broker.
    async fn connected(settings: BrokerSettings, store: Store) -> Relay {
        let relay = Relay::start(settings, store);
        relay.wait_connected().await;
        relay
    }

    async fn wait_connected(&self) {
        let h = self.handle.clone();
        wait_for("the relay to connect", Duration::from_secs(10), || {
            let h = h.clone();
            async move { h.is_connected() }
        })
        .await;
    }

    fn confirms(&self, result: &str) -> u64 {
        self.metrics.publish_confirms.with_label_values(&[result]).get()
    }

    fn published(&self, event_type: &str) -> u64 {
        self.metrics.events_published.with_label_values(&[event_type]).get()
    }

    /// Requests shutdown and returns how long the relay took to stop.
    async fn stop(self) -> Duration {
        let started = Instant::now();
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(15), self.handle.stopped()).await.expect("the relay stops in time");
        started.elapsed()
    }
}

async fn wait_for<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Test consumer

pub(crate) struct Message {
    pub(crate) routing_key: String,
    pub(crate) properties: lapin::BasicProperties,
    pub(crate) body: serde_json::Value,
    pub(crate) at: Instant,
}

impl Message {
    pub(crate) fn message_id(&self) -> String {
        self.properties.message_id().as_ref().map(|s| s.to_string()).unwrap_or_default()
    }
}

pub(crate) struct TestBroker {
    connection: Connection,
    channel: Channel,
    exchange: String,
    queue: String,
    consumer: Option<lapin::Consumer>,
}

impl TestBroker {
    /// Declares `exchange` exactly as the relay does (durable topic, no arguments).
    pub(crate) async fn new(exchange: &str) -> TestBroker {
        let connection = Connection::connect(
            &amqp_url(),
            ConnectionProperties::default().with_connection_name(unique("test-consumer").into()),
        )
        .await
        .unwrap();
        let channel = connection.create_channel().await.unwrap();
        channel
            .exchange_declare(
                exchange.into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() },
                FieldTable::default(),
            )
            .await
            .unwrap();
        TestBroker { connection, channel, exchange: exchange.to_string(), queue: unique("test-queue"), consumer: None }
    }

    /// Declares the test queue, binds it with `payment.#` and starts consuming.
    pub(crate) async fn bind(&mut self) {
        self.channel
            .queue_declare(
                self.queue.clone().into(),
                // Gone with the test's connection even if the test fails half-way.
                QueueDeclareOptions { auto_delete: true, ..QueueDeclareOptions::default() },
                FieldTable::default(),
            )
            .await
            .unwrap();
        self.channel
            .queue_bind(
                self.queue.clone().into(),
                self.exchange.clone().into(),
                "payment.#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let consumer = self
            .channel
            .basic_consume(
                self.queue.clone().into(),
                "".into(),
                BasicConsumeOptions { no_ack: true, ..BasicConsumeOptions::default() },
                FieldTable::default(),
            )
            .await
            .unwrap();
        self.consumer = Some(consumer);
    }

    pub(crate) async fn next(&mut self, within: Duration) -> Option<Message> {
        let consumer = self.consumer.as_mut().expect("bound");
        match tokio::time::timeout(within, consumer.next()).await {
            Ok(Some(Ok(d))) => {
                let message = Message {
                    routing_key: d.routing_key.to_string(),
                    body: serde_json::from_slice(&d.data).expect("the body is JSON"),
                    properties: d.properties,
                    at: Instant::now(),
                };
                assert_valid_message(&message.routing_key, &message.properties, &message.body);
                Some(message)
            }
            Ok(Some(Err(e))) => panic!("consumer failed: {e}"),
            Ok(None) | Err(_) => None,
        }
    }

    /// Takes `n` messages (within `within`), then checks that nothing else arrives for `quiet`.
    pub(crate) async fn take_exactly(&mut self, n: usize, within: Duration, quiet: Duration) -> Vec<Message> {
        let until = Instant::now() + within;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let left = until.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Some(m) => out.push(m),
                None => panic!("got {} of {n} messages in {within:?}", out.len()),
            }
        }
        if let Some(extra) = self.next(quiet).await {
            panic!("unexpected extra message {} ({})", extra.message_id(), extra.routing_key);
        }
        out
    }

    /// Messages ready in `queue` (passive declare).
    async fn depth(&self, queue: &str) -> u32 {
        let ch = self.connection.create_channel().await.unwrap();
        let q = ch
            .queue_declare(
                queue.into(),
                QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let _ = ch.close(200, "done".into()).await;
        q.message_count()
    }

    pub(crate) async fn cleanup(self, extra_queues: &[&str]) {
        drop(self.consumer);
        for q in std::iter::once(self.queue.as_str()).chain(extra_queues.iter().copied()) {
            let _ = self.channel.queue_delete(q.into(), QueueDeleteOptions::default()).await;
        }
        let _ = self.channel.exchange_delete(self.exchange.clone().into(), ExchangeDeleteOptions::default()).await;
        let _ = self.connection.close(200, "test done".into()).await;
    }
}

fn assert_unique_ids(messages: &[Message]) -> HashSet<String> {
    let ids: HashSet<String> = messages.iter().map(Message::message_id).collect();
    assert_eq!(ids.len(), messages.len(), "an event was delivered twice");
    ids
}

/// Each stored event of `invoices` was delivered exactly once, and nothing else was.
async fn assert_delivered_once(messages: &[Message], store: &Store, invoices: &[String]) {
    let ids = assert_unique_ids(messages);
    let stored: HashSet<String> = events(store, invoices).await.into_iter().map(|r| r.event_id).collect();
    assert_eq!(ids, stored);
}

/// A fresh test exchange and a consumer with its queue bound to it.
async fn bound_broker() -> (String, TestBroker) {
    let exchange = unique("test.payments");
    let mut broker = TestBroker::new(&exchange).await;
    broker.bind().await;
    (exchange, broker)
}

/// An address on loopback where nothing listens.
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("amqp://guest:guest@127.0.0.1:{port}/%2f")
}

async fn rabbitmqctl(args: &[&str]) -> std::process::Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new("rabbitmqctl").args(&args).output().expect("rabbitmqctl runs")
    })
    .await
    .unwrap()
}

/// Closes the broker connection named `name` with `rabbitmqctl close_connection`.
async fn close_connection_named(name: &str) {
    let needle = format!("\"connection_name\",\"{name}\"");
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let out = rabbitmqctl(&["-q", "list_connections", "name", "pid", "client_properties"]).await;
        let text = String::from_utf8_lossy(&out.stdout);
        let pid = text.lines().find(|l| l.contains(&needle)).and_then(|l| l.split('\t').nth(1)).map(str::to_string);
        if let Some(pid) = pid {
            let out = rabbitmqctl(&["-q", "close_connection", &pid, "test"]).await;
            assert!(
                out.status.success(),
                "rabbitmqctl close_connection failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            return;
        }
        assert!(Instant::now() < until, "connection {name} not listed by rabbitmqctl:\n{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Postgres).await;
                }
            )*
        }
    };
}

on_both_backends!(
    one_observation_becomes_one_confirmed_message,
    events_wait_in_the_outbox_while_the_broker_is_unreachable,
    events_recorded_while_the_connection_is_down_go_out_after_reconnecting,
    unroutable_events_stay_unpublished_until_a_queue_is_bound,
    replayed_events_are_published_again_with_the_same_ids,
);

// ---------------------------------------------------------------------------------------------
// 1. One observation → exactly one message with every property.

async fn one_observation_becomes_one_confirmed_message(backend: Backend) {
    let db = TestDb::new(backend).await;
    let exchange = unique("test.payments");
    let default_queue = unique("test.payments.all");
    let mut broker = TestBroker::new(&exchange).await;
    broker.bind().await;
    let relay = Relay::connected(settings(&amqp_url(), &exchange, &default_queue), db.store.clone()).await;

    let invoice = unique("inv");
    let accepted = Instant::now();
    record(&db.store, &invoice, "0000", "T1").await;
    relay.wake.notify_one();
    let messages = broker.take_exactly(1, Duration::from_secs(10), Duration::from_millis(500)).await;
    let m = &messages[0];
    let latency = m.at - accepted;
    eprintln!("{backend:?}: record -> consumed in {latency:?}");

    let p = &m.properties;
    let id = m.message_id();
    assert!(!id.is_empty());
    assert_eq!(m.routing_key, "payment.succeeded");
    assert_eq!(p.kind().as_ref().map(|s| s.as_str()), Some("payment.succeeded"));
    assert_eq!(*p.delivery_mode(), Some(2));
    assert_eq!(p.content_type().as_ref().map(|s| s.as_str()), Some("application/cloudevents+json"));
    assert_eq!(p.app_id().as_ref().map(|s| s.as_str()), Some("pgw-relay"));
    let ts = p.timestamp().expect("timestamp set");
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap();
    assert!(ts <= now && now - ts < 60, "timestamp {ts} is now ({now})");

    let body = &m.body;
    assert_eq!(body["specversion"], "1.0");
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["type"], m.routing_key.as_str());
    assert_eq!(body["source"], format!("pgw-relay/{MERCHANT}"));
    assert_eq!(body["subject"], invoice.as_str());
    assert!(body["time"].is_string());
    assert_eq!(body["datacontenttype"], "application/json");
    assert_eq!(body["data"]["sequence"], 1);
    assert_eq!(body["data"]["invoiceNo"], invoice.as_str());
    assert_eq!(body["data"]["status"], "succeeded");

    let rows = events(&db.store, std::slice::from_ref(&invoice)).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].event_id, id);
    // The body on the wire is the stored body, byte for byte.
    assert_eq!(serde_json::from_str::<serde_json::Value>(&rows[0].body).unwrap(), m.body);
    let store = db.store.clone();
    wait_for("the row to be marked published", Duration::from_secs(5), || {
        let store = store.clone();
        let invoice = invoice.clone();
        async move { store.events_of(MERCHANT, &invoice).await.unwrap()[0].published_at.is_some() }
    })
    .await;
    assert_eq!(relay.published("payment.succeeded"), 1);
    assert_eq!(relay.confirms("ack"), 1);
    assert_eq!(relay.metrics.publish_confirm_duration.get_sample_count(), 1);
    assert_eq!(relay.metrics.broker_connected.get(), 1);
    // The relay declared and bound the default queue: it holds the event too.
    let depth_queue = default_queue.clone();
    wait_for("the default queue to hold the event", Duration::from_secs(5), || {
        let q = depth_queue.clone();
        let b = &broker;
        async move { b.depth(&q).await == 1 }
    })
    .await;
    let m = relay.metrics.clone();
    wait_for("the backlog gauge to reach 0", Duration::from_secs(5), || {
        let m = m.clone();
        async move { m.outbox_backlog.get() == 0 }
    })
    .await;

    let took = relay.stop().await;
    eprintln!("{backend:?}: graceful stop took {took:?}");
    broker.cleanup(&[&default_queue]).await;
    drop(db);
}

// ---------------------------------------------------------------------------------------------
// 2. Broker unreachable at start: rows wait; a relay with the right URL publishes each once.

async fn events_wait_in_the_outbox_while_the_broker_is_unreachable(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (exchange, mut broker) = bound_broker().await;

    let down = Relay::start(settings(&closed_port_url(), &exchange, ""), db.store.clone());
    let invoices: Vec<String> = (0..5).map(|_| unique("inv")).collect();
    for inv in &invoices {
        record(&db.store, inv, "0000", "T1").await;
        down.wake.notify_one();
    }
    let m = down.metrics.clone();
    wait_for("the backlog gauge to show 5", Duration::from_secs(5), || {
        let m = m.clone();
        async move { m.outbox_backlog.get() == 5 }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!down.handle.is_connected());
    assert_eq!(down.metrics.broker_connected.get(), 0);
    let rows = events(&db.store, &invoices).await;
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().all(|r| r.published_at.is_none()));
    // Nothing was even claimed without a connection.
    assert!(rows.iter().all(|r| r.attempts == 0));
    let took = down.stop().await;
    eprintln!("{backend:?}: stop with the broker unreachable took {took:?}");
    assert!(took < Duration::from_secs(4), "the flush bound is respected");

    let up = Relay::start(settings(&amqp_url(), &exchange, ""), db.store.clone());
    let started = Instant::now();
    let messages = broker.take_exactly(5, Duration::from_secs(10), Duration::from_millis(1000)).await;
    eprintln!(
        "{backend:?}: 5 waiting events published {:?} after the new relay started",
        messages.last().unwrap().at - started
    );
    assert_delivered_once(&messages, &db.store, &invoices).await;
    assert!(up.handle.is_connected());
    up.stop().await;
    let rows = events(&db.store, &invoices).await;
    assert!(rows.iter().all(|r| r.published_at.is_some()));
    broker.cleanup(&[]).await;
    drop(db);
}

// ---------------------------------------------------------------------------------------------
// 3. The broker closes the relay's connection: events recorded meanwhile go out after reconnect.

async fn events_recorded_while_the_connection_is_down_go_out_after_reconnecting(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (exchange, mut broker) = bound_broker().await;
    let relay = Relay::connected(settings(&amqp_url(), &exchange, ""), db.store.clone()).await;

    let before: Vec<String> = (0..5).map(|_| unique("inv")).collect();
    for inv in &before {
        record(&db.store, inv, "0000", "T1").await;
        relay.wake.notify_one();
    }
    let mut messages = broker.take_exactly(5, Duration::from_secs(10), Duration::from_millis(200)).await;
    assert_eq!(relay.metrics.broker_reconnects.get(), 0);

    close_connection_named(&relay.connection_name).await;
    let closed_at = Instant::now();
    // Record while the relay notices the loss and reconnects.
    let during: Vec<String> = (0..20).map(|_| unique("inv")).collect();
    for inv in &during {
        record(&db.store, inv, "0000", "T2").await;
        relay.wake.notify_one();
    }
    messages.extend(broker.take_exactly(20, Duration::from_secs(20), Duration::from_millis(1000)).await);
    eprintln!("{backend:?}: connection closed -> 20 events published in {:?}", messages.last().unwrap().at - closed_at);
    assert!(relay.metrics.broker_reconnects.get() >= 1);
    assert!(relay.handle.is_connected());
    let all: Vec<String> = before.iter().chain(&during).cloned().collect();
    assert_delivered_once(&messages, &db.store, &all).await;
    let store = db.store.clone();
    wait_for("every row to be marked published", Duration::from_secs(5), || {
        let store = store.clone();
        let all = all.clone();
        async move { events(&store, &all).await.iter().all(|r| r.published_at.is_some()) }
    })
    .await;
    relay.stop().await;
    broker.cleanup(&[]).await;
    drop(db);
}

// ---------------------------------------------------------------------------------------------
// 4. Unroutable: returned events stay unpublished until a queue is bound.

/// Records three events the broker will refuse, waits until each was refused with `result`
/// (`returned` or `nack`), and checks that none is marked published.
async fn record_three_rejected(db: &TestDb, relay: &Relay, result: &'static str) -> Vec<String> {
    let invoices: Vec<String> = (0..3).map(|_| unique("inv")).collect();
    for inv in &invoices {
        record(&db.store, inv, "0000", "T1").await;
        relay.wake.notify_one();
    }
    let m = relay.metrics.clone();
    wait_for(&format!("3 {result}"), Duration::from_secs(10), || {
        let m = m.clone();
        async move { m.publish_confirms.with_label_values(&[result]).get() >= 3 }
    })
    .await;
    let rows = events(&db.store, &invoices).await;
    assert!(rows.iter().all(|r| r.published_at.is_none()));
    assert_eq!(relay.published("payment.succeeded"), 0);
    invoices
}

async fn unroutable_events_stay_unpublished_until_a_queue_is_bound(backend: Backend) {
    let db = TestDb::new(backend).await;
    let exchange = unique("test.payments");
    // The exchange exists, but no queue is bound to it.
    let mut broker = TestBroker::new(&exchange).await;
    let relay = Relay::connected(settings(&amqp_url(), &exchange, ""), db.store.clone()).await;

    let invoices = record_three_rejected(&db, &relay, "returned").await;
    // Backing off, not hot-looping: a couple of seconds see only a handful of attempts.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let returned = relay.confirms("returned");
    eprintln!("{backend:?}: {returned} returns of 3 unroutable events in ~2 s");
    assert!(returned <= 3 * 8, "unroutable events are retried with backoff");
    assert!(relay.handle.is_connected(), "a return does not drop the connection");

    let bound_at = Instant::now();
    broker.bind().await;
    let messages = broker.take_exactly(3, Duration::from_secs(10), Duration::from_millis(1000)).await;
    eprintln!("{backend:?}: queue bound -> 3 events published in {:?}", messages.last().unwrap().at - bound_at);
    assert_delivered_once(&messages, &db.store, &invoices).await;
    let store = db.store.clone();
    wait_for("every row to be marked published", Duration::from_secs(5), || {
        let store = store.clone();
        let invoices = invoices.clone();
        async move { events(&store, &invoices).await.iter().all(|r| r.published_at.is_some() && r.attempts >= 2) }
    })
    .await;
    relay.stop().await;
    broker.cleanup(&[]).await;
    drop(db);
}

// ---------------------------------------------------------------------------------------------
// 6. Replay: the same event ids are published again.

async fn replayed_events_are_published_again_with_the_same_ids(backend: Backend) {
    let db = TestDb::new(backend).await;
    let (exchange, mut broker) = bound_broker().await;
    let relay = Relay::connected(settings(&amqp_url(), &exchange, ""), db.store.clone()).await;

    let invoice = unique("inv");
    let other = unique("inv");
    record(&db.store, &invoice, "0001", "T1").await;
    record(&db.store, &invoice, "0000", "T1").await;
    record(&db.store, &other, "0000", "T9").await;
    relay.wake.notify_one();
    let first = broker.take_exactly(3, Duration::from_secs(10), Duration::from_millis(300)).await;
    let first_ids: HashMap<String, String> = first
        .iter()
        .filter(|m| m.body["subject"] == invoice.as_str())
        .map(|m| (m.message_id(), m.routing_key.clone()))
        .collect();
    assert_eq!(first_ids.len(), 2);
    let store = db.store.clone();
    wait_for("every row to be marked published", Duration::from_secs(5), || {
        let store = store.clone();
        let all = vec![invoice.clone(), other.clone()];
        async move { events(&store, &all).await.iter().all(|r| r.published_at.is_some()) }
    })
    .await;

    let replayed = db
        .store
        .replay(ReplaySelector::Invoice { merchant_id: MERCHANT.to_string(), invoice_no: invoice.clone() })
        .await
        .unwrap();
    assert_eq!(replayed, 2);
    relay.wake.notify_one();
    let again = broker.take_exactly(2, Duration::from_secs(10), Duration::from_millis(1000)).await;
    let again_ids: HashMap<String, String> = again.iter().map(|m| (m.message_id(), m.routing_key.clone())).collect();
    assert_eq!(again_ids, first_ids, "the same ids and types, nothing else");
    // In order: pending (sequence 1) before succeeded (sequence 2).
    assert_eq!(again[0].body["data"]["sequence"], 1);
    assert_eq!(again[1].body["data"]["sequence"], 2);
    relay.stop().await;
    broker.cleanup(&[]).await;
    drop(db);
}

// ---------------------------------------------------------------------------------------------
// 5. Two relays on one PostgreSQL database: every event is published exactly once.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_on_one_postgres_database_publish_each_event_once() {
    const EVENTS: usize = 500;
    let db = TestDb::new(Backend::Postgres).await;
    let (exchange, mut broker) = bound_broker().await;
    let mut s = settings(&amqp_url(), &exchange, "");
    s.publish_batch = 25;
    let a = Relay::start(s.clone(), db.store.clone());
    s.connection_name = unique("pgw-relay-test");
    let b = Relay::start(s, db.second_store().await);
    a.wait_connected().await;
    b.wait_connected().await;

    let started = Instant::now();
    let invoices: Vec<String> = (0..EVENTS).map(|_| unique("inv")).collect();
    let mut writers = Vec::new();
    for chunk in invoices.chunks(50) {
        let store = db.store.clone();
        let chunk = chunk.to_vec();
        let (wa, wb) = (a.wake.clone(), b.wake.clone());
        writers.push(tokio::spawn(async move {
            for inv in chunk {
                record(&store, &inv, "0000", "T1").await;
                wa.notify_one();
                wb.notify_one();
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let recorded = started.elapsed();
    let messages = broker.take_exactly(EVENTS, Duration::from_secs(60), Duration::from_secs(2)).await;
    let took = messages.last().unwrap().at - started;
    assert_delivered_once(&messages, &db.store, &invoices).await;
    let (pa, pb) = (a.published("payment.succeeded"), b.published("payment.succeeded"));
    eprintln!(
        "two relays: {EVENTS} events recorded in {recorded:?}, all consumed after {took:?}; \
         relay A published {pa}, relay B {pb}"
    );
    assert_eq!(pa + pb, EVENTS as u64);
    a.stop().await;
    b.stop().await;
    broker.cleanup(&[]).await;
    drop(db);
}

// ---------------------------------------------------------------------------------------------
// Graceful shutdown flushes what is left.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_flushes_events_recorded_before_it() {
    let db = TestDb::new(Backend::Sqlite).await;
    let (exchange, mut broker) = bound_broker().await;
    let mut s = settings(&amqp_url(), &exchange, "");
    // Without a wake-up the relay would only look again after a minute.
    s.poll_interval = Duration::from_secs(60);
    let relay = Relay::connected(s, db.store.clone()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let invoices: Vec<String> = (0..10).map(|_| unique("inv")).collect();
    for inv in &invoices {
        record(&db.store, inv, "0000", "T1").await;
    }
    let took = relay.stop().await;
    eprintln!("shutdown with 10 events waiting took {took:?}");
    let messages = broker.take_exactly(10, Duration::from_secs(5), Duration::from_millis(300)).await;
    assert_unique_ids(&messages);
    let rows = events(&db.store, &invoices).await;
    assert!(rows.iter().all(|r| r.published_at.is_some()));
    broker.cleanup(&[]).await;
    drop(db);
}

// ---------------------------------------------------------------------------------------------
// Nacked events stay unpublished until the broker accepts them.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nacked_events_stay_unpublished_until_the_broker_accepts_them() {
    let db = TestDb::new(Backend::Sqlite).await;
    let (exchange, mut broker) = bound_broker().await;
    // A second bound queue that refuses every message: the broker nacks the publishes.
    let full = unique("test-full");
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), lapin::types::AMQPValue::LongInt(0));
    args.insert("x-overflow".into(), lapin::types::AMQPValue::LongString("reject-publish".into()));
    broker.channel.queue_declare(full.clone().into(), QueueDeclareOptions::default(), args).await.unwrap();
    broker
        .channel
        .queue_bind(
            full.clone().into(),
            exchange.clone().into(),
            "payment.#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let relay = Relay::connected(settings(&amqp_url(), &exchange, ""), db.store.clone()).await;

    let invoices = record_three_rejected(&db, &relay, "nack").await;
    assert!(relay.handle.is_connected(), "a nack does not drop the connection");

    // Remove the refusing queue: the retries are accepted.
    broker.channel.queue_delete(full.clone().into(), QueueDeleteOptions::default()).await.unwrap();
    let removed_at = Instant::now();
    // The good queue got a copy of each nacked attempt (the broker nacks when any queue
    // refuses), so count distinct ids until the rows are marked published.
    let store = db.store.clone();
    let all = invoices.clone();
    wait_for("every row to be marked published", Duration::from_secs(10), || {
        let store = store.clone();
        let all = all.clone();
        async move { events(&store, &all).await.iter().all(|r| r.published_at.is_some()) }
    })
    .await;
    eprintln!("refusing queue removed -> 3 nacked events published in {:?}", removed_at.elapsed());
    let mut ids = HashSet::new();
    while let Some(m) = broker.next(Duration::from_millis(500)).await {
        ids.insert(m.message_id());
    }
    let stored: HashSet<String> = events(&db.store, &invoices).await.into_iter().map(|r| r.event_id).collect();
    assert_eq!(ids, stored);
    assert_eq!(relay.published("payment.succeeded"), 3);
    relay.stop().await;
    broker.cleanup(&[]).await;
    drop(db);
}

// ---------------------------------------------------------------------------------------------
// A network that silently drops everything: confirms time out, the relay reconnects.

/// A TCP proxy to the broker that can blackhole traffic (read and discard, like a dead network
/// path) and then heal (cut every proxied connection, forward normally again).
struct Proxy {
    port: u16,
    blackhole: Arc<std::sync::atomic::AtomicBool>,
    pumps: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    acceptor: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: std::net::SocketAddr) -> Proxy {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let blackhole = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let pumps: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (bh, ps) = (blackhole.clone(), pumps.clone());
        let acceptor = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = tokio::net::TcpStream::connect(upstream).await else {
                    continue;
                };
                let (mut ri, mut wi) = inbound.into_split();
                let (mut ro, mut wo) = outbound.into_split();
                let (b1, b2) = (bh.clone(), bh.clone());
                let up = tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(n) = ri.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        if !b1.load(Ordering::SeqCst) && wo.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
                let down = tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(n) = ro.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        if !b2.load(Ordering::SeqCst) && wi.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
                ps.lock().unwrap().extend([up, down]);
            }
        });
        Proxy { port, blackhole, pumps, acceptor }
    }

    fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    fn blackhole(&self) {
        self.blackhole.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn heal(&self) {
        for pump in self.pumps.lock().unwrap().drain(..) {
            pump.abort();
        }
        self.blackhole.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.acceptor.abort();
        for pump in self.pumps.lock().unwrap().drain(..) {
            pump.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirms_that_never_come_time_out_and_the_relay_reconnects() {
    let db = TestDb::new(Backend::Sqlite).await;
    let (exchange, mut broker) = bound_broker().await;
    let upstream = url::Url::parse(&amqp_url()).unwrap();
    let upstream =
        std::net::SocketAddr::new(upstream.host_str().unwrap().parse().unwrap(), upstream.port().unwrap_or(5672));
    let proxy = Proxy::start(upstream).await;
    let mut s = settings(&proxy.url(), &exchange, "");
    s.operation_timeout = Duration::from_millis(1000);
    let relay = Relay::connected(s, db.store.clone()).await;

    let before: Vec<String> = (0..3).map(|_| unique("inv")).collect();
    for inv in &before {
        record(&db.store, inv, "0000", "T1").await;
        relay.wake.notify_one();
    }
    let mut messages = broker.take_exactly(3, Duration::from_secs(10), Duration::from_millis(200)).await;

    proxy.blackhole();
    let during: Vec<String> = (0..5).map(|_| unique("inv")).collect();
    for inv in &during {
        record(&db.store, inv, "0000", "T2").await;
        relay.wake.notify_one();
    }
    let m = relay.metrics.clone();
    wait_for("a confirm timeout", Duration::from_secs(10), || {
        let m = m.clone();
        async move { m.publish_confirms.with_label_values(&["timeout"]).get() >= 1 }
    })
    .await;
    let h = relay.handle.clone();
    wait_for("the relay to report the broker down", Duration::from_secs(5), || {
        let h = h.clone();
        async move { !h.is_connected() }
    })
    .await;
    let rows = events(&db.store, &during).await;
    assert!(rows.iter().all(|r| r.published_at.is_none()));
    // Connection attempts through the dead path time out too; nothing is lost meanwhile.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!relay.handle.is_connected());

    let healed_at = Instant::now();
    proxy.heal();
    messages.extend(broker.take_exactly(5, Duration::from_secs(20), Duration::from_millis(1000)).await);
    eprintln!("network healed -> 5 events published in {:?}", messages.last().unwrap().at - healed_at);
    let all: Vec<String> = before.iter().chain(&during).cloned().collect();
    assert_delivered_once(&messages, &db.store, &all).await;
    assert!(relay.metrics.broker_reconnects.get() >= 1);
    relay.stop().await;
    drop(proxy);
    broker.cleanup(&[]).await;
    drop(db);
}

// ---------------------------------------------------------------------------------------------
// 7. The default queue: quorum by default, dead letters for consumers' rejects, and a queue of
// another type left as it is.

/// Declares `queue` with `x-queue-type` = `kind` (and a dead-letter exchange) on a fresh channel:
/// `Ok` when the broker agrees that is what the queue is.
async fn declare_as(connection: &Connection, queue: &str, kind: &str, dlx: Option<&str>) -> Result<(), lapin::Error> {
    use lapin::types::AMQPValue;
    let ch = connection.create_channel().await.unwrap();
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), AMQPValue::LongString(kind.into()));
    if let Some(dlx) = dlx {
        args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(dlx.into()));
    }
    let res = ch.queue_declare(queue.into(), QueueDeclareOptions::durable(), args).await.map(|_| ());
    let _ = ch.close(200, "done".into()).await;
    res
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_queue_is_a_quorum_queue_whose_rejects_reach_the_dead_letter_queue() {
    use lapin::options::{BasicGetOptions, BasicRejectOptions};
    let db = TestDb::new(Backend::Sqlite).await;
    let exchange = unique("test.payments");
    let queue = unique("test.all");
    let dlx = unique("test.dead");
    let dead = format!("{queue}.dead");
    let mut s = settings(&amqp_url(), &exchange, &queue);
    s.default_queue_type = pgw_relay::config::QueueType::Quorum;
    s.dead_letter_exchange = dlx.clone();
    let relay = Relay::connected(s, db.store.clone()).await;
    let broker = TestBroker::new(&exchange).await;

    // The broker refuses to call it classic: it is a quorum queue (so is the dead-letter queue).
    let err = declare_as(&broker.connection, &queue, "classic", Some(&dlx)).await.expect_err("a quorum queue");
    assert!(err.to_string().contains("PRECONDITION_FAILED"), "{err}");
    declare_as(&broker.connection, &queue, "quorum", Some(&dlx)).await.expect("declared as quorum");
    declare_as(&broker.connection, &dead, "quorum", None).await.expect("the dead-letter queue is quorum too");

    let invoice = unique("inv");
    record(&db.store, &invoice, "0000", "T1").await;
    relay.wake.notify_one();
    let ch = broker.connection.create_channel().await.unwrap();
    let mut delivery = None;
    let until = Instant::now() + Duration::from_secs(10);
    while delivery.is_none() && Instant::now() < until {
        delivery = ch.basic_get(queue.clone().into(), BasicGetOptions::default()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let delivery = delivery.expect("the event reaches the default queue");
    let id = delivery.properties.message_id().as_ref().map(|s| s.to_string());
    // A consumer that cannot handle it rejects it without requeueing: it is kept, not lost.
    delivery.reject(BasicRejectOptions { requeue: false }).await.unwrap();
    let mut dead_letter = None;
    let until = Instant::now() + Duration::from_secs(10);
    while dead_letter.is_none() && Instant::now() < until {
        dead_letter = ch.basic_get(dead.clone().into(), BasicGetOptions { no_ack: true }).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dead_letter = dead_letter.expect("the rejected message reaches the dead-letter queue");
    assert_eq!(dead_letter.properties.message_id().as_ref().map(|s| s.to_string()), id);
    relay.stop().await;
    let _ = ch.exchange_delete(dlx.into(), ExchangeDeleteOptions::default()).await;
    broker.cleanup(&[&queue, &dead]).await;
    drop(db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_classic_default_queue_is_kept_and_still_receives_events() {
    let db = TestDb::new(Backend::Sqlite).await;
    let exchange = unique("test.payments");
    let queue = unique("test.all");
    let broker = TestBroker::new(&exchange).await;
    declare_as(&broker.connection, &queue, "classic", None).await.expect("a classic queue from an older version");
    let mut s = settings(&amqp_url(), &exchange, &queue);
    s.default_queue_type = pgw_relay::config::QueueType::Quorum;
    let relay = Relay::connected(s, db.store.clone()).await;
    let invoice = unique("inv");
    record(&db.store, &invoice, "0000", "T1").await;
    relay.wake.notify_one();
    let store = db.store.clone();
    wait_for("the event to be published", Duration::from_secs(10), || {
        let store = store.clone();
        let invoice = invoice.clone();
        async move { events(&store, &[invoice]).await.iter().all(|r| r.published_at.is_some()) }
    })
    .await;
    assert_eq!(broker.depth(&queue).await, 1, "the classic queue is bound and got the event");
    relay.stop().await;
    broker.cleanup(&[&queue]).await;
    drop(db);
}
