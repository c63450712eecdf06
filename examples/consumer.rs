//! A consumer of pgw-relay's payment events that does it right; copy it as a starting point.
//!
//! ```sh
//! AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f CONSUMER_QUEUE=shop.payments \
//! CONSUMER_DB=sqlite://shop-payments.db cargo run --example consumer
//! ```
//!
//! What it does, and why (docs/events.md, "Consuming safely"):
//! - declares **its own durable queue** bound to the `pgw.payments` exchange, so nothing is lost
//!   while it is down and no other consumer competes for its messages;
//! - **dedupes by `message_id`** (the CloudEvent `id`) in a table that survives restarts: delivery
//!   is at least once, and a replay or a redelivery brings the same id again;
//! - **orders by `data.sequence` per invoice**: a late event with a lower sequence is recorded but
//!   never overwrites a newer state;
//! - does its work (here: a `payments` projection and an `anomalies` list) and the dedupe record in
//!   **one transaction**, and **acknowledges only after the commit**: a crash before the ack means a
//!   redelivery, which the dedupe table turns into a no-op;
//! - rejects (without requeue) a message it can never process, and requeues one it could not
//!   process now (its database unavailable).

use std::future::Future;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::Row;

/// Where to consume from and where to keep state.
#[derive(Debug, Clone)]
pub struct Settings {
    pub amqp_url: String,
    /// pgw-relay's exchange (`broker.exchange`, default `pgw.payments`).
    pub exchange: String,
    /// This consumer's own durable queue.
    pub queue: String,
    /// Routing keys to bind (`payment.#` = every event type).
    pub bindings: Vec<String>,
    /// The consumer's SQLite database, e.g. `sqlite://shop-payments.db`.
    pub database_url: String,
    /// Messages in flight (unacknowledged) at once.
    pub prefetch: u16,
}

impl Settings {
    /// From `AMQP_URL`, `PGW_EXCHANGE`, `CONSUMER_QUEUE`, `CONSUMER_DB`, with local defaults.
    pub fn from_env() -> Settings {
        let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_string());
        Settings {
            amqp_url: var("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
            exchange: var("PGW_EXCHANGE", "pgw.payments"),
            queue: var("CONSUMER_QUEUE", "shop.payments"),
            bindings: vec!["payment.#".to_string()],
            database_url: var("CONSUMER_DB", "sqlite://shop-payments.db"),
            prefetch: 32,
        }
    }
}

/// What handling one message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The event moved the invoice's state forward.
    Applied,
    /// The invoice already has a newer event (higher `sequence`): recorded, state untouched.
    Stale,
    /// This `message_id` was handled before (a redelivery or a replay): nothing done.
    Duplicate,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Stale => "stale",
            Outcome::Duplicate => "duplicate",
        }
    }
}

/// Why a message was not handled.
#[derive(Debug)]
pub enum HandleError {
    /// It can never be handled (not a pgw-relay event): reject it, do not requeue.
    Poison(String),
    /// It could not be handled now (the database): requeue it.
    Retry(sqlx::Error),
}

impl From<sqlx::Error> for HandleError {
    fn from(e: sqlx::Error) -> Self {
        HandleError::Retry(e)
    }
}

/// The consumer's state: what it has processed and what it knows of each invoice.
#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

/// One invoice as this consumer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub status: String,
    pub sequence: i64,
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
    pub last_event_id: String,
}

/// The fields of an event this consumer uses.
struct Event {
    id: String,
    event_type: String,
    merchant_id: String,
    invoice_no: String,
    status: String,
    sequence: i64,
    amount_minor: Option<i64>,
    currency: Option<String>,
    reason: Option<String>,
}

impl Event {
    fn parse(body: &[u8]) -> Result<Event, HandleError> {
        let v: Value = serde_json::from_slice(body).map_err(|e| HandleError::Poison(format!("not JSON: {e}")))?;
        let text = |value: &Value, what: &str| {
            value.as_str().map(str::to_string).ok_or_else(|| HandleError::Poison(format!("{what} is missing")))
        };
        let data = &v["data"];
        Ok(Event {
            id: text(&v["id"], "id")?,
            event_type: text(&v["type"], "type")?,
            merchant_id: text(&data["merchantID"], "data.merchantID")?,
            invoice_no: text(&data["invoiceNo"], "data.invoiceNo")?,
            status: text(&data["status"], "data.status")?,
            sequence: data["sequence"]
                .as_i64()
                .ok_or_else(|| HandleError::Poison("data.sequence is missing".to_string()))?,
            // Money is an integer of minor units; never read `value` into a float.
            amount_minor: data["amount"]["minor"].as_i64(),
            currency: data["amount"]["currency"].as_str().map(str::to_string),
            reason: data["reason"].as_str().map(str::to_string),
        })
    }
}

impl Store {
    /// Opens (creating if needed) the database and its tables.
    pub async fn open(url: &str) -> Result<Store, sqlx::Error> {
        let options = url
            .parse::<SqliteConnectOptions>()?
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Full);
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
        for ddl in [
            "CREATE TABLE IF NOT EXISTS processed_messages (
                 message_id TEXT PRIMARY KEY, outcome TEXT NOT NULL, deliveries INTEGER NOT NULL,
                 processed_at TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS payments (
                 merchant_id TEXT NOT NULL, invoice_no TEXT NOT NULL, status TEXT NOT NULL,
                 sequence INTEGER NOT NULL, amount_minor INTEGER, currency TEXT, last_event_id TEXT NOT NULL,
                 PRIMARY KEY (merchant_id, invoice_no))",
            "CREATE TABLE IF NOT EXISTS anomalies (
                 event_id TEXT PRIMARY KEY, merchant_id TEXT NOT NULL, invoice_no TEXT NOT NULL,
                 reason TEXT NOT NULL, sequence INTEGER NOT NULL)",
        ] {
            sqlx::query(ddl).execute(&pool).await?;
        }
        Ok(Store { pool })
    }

    /// Handles one message in one transaction: the dedupe record and the work commit together.
    pub async fn handle(&self, message_id: Option<&str>, body: &[u8]) -> Result<Outcome, HandleError> {
        let event = Event::parse(body)?;
        let message_id = message_id.unwrap_or(&event.id);
        let mut tx = self.pool.begin().await?;
        // The first delivery inserts the row; every later one only counts itself.
        let deliveries: i64 = sqlx::query_scalar(
            "INSERT INTO processed_messages (message_id, outcome, deliveries, processed_at) \
             VALUES (?1, '', 1, datetime('now')) \
             ON CONFLICT (message_id) DO UPDATE SET deliveries = deliveries + 1 RETURNING deliveries",
        )
        .bind(message_id)
        .fetch_one(&mut *tx)
        .await?;
        if deliveries > 1 {
            tx.commit().await?;
            return Ok(Outcome::Duplicate);
        }
        if event.event_type == "payment.anomaly" {
            // A person must look at it, whatever its order.
            sqlx::query(
                "INSERT INTO anomalies (event_id, merchant_id, invoice_no, reason, sequence) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (event_id) DO NOTHING",
            )
            .bind(&event.id)
            .bind(&event.merchant_id)
            .bind(&event.invoice_no)
            .bind(event.reason.as_deref().unwrap_or("unknown"))
            .bind(event.sequence)
            .execute(&mut *tx)
            .await?;
        }
        // Only a higher sequence moves the invoice forward.
        let moved = sqlx::query(
            "INSERT INTO payments (merchant_id, invoice_no, status, sequence, amount_minor, currency, last_event_id) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
             ON CONFLICT (merchant_id, invoice_no) DO UPDATE SET status = excluded.status, \
               sequence = excluded.sequence, amount_minor = COALESCE(excluded.amount_minor, payments.amount_minor), \
               currency = COALESCE(excluded.currency, payments.currency), last_event_id = excluded.last_event_id \
             WHERE excluded.sequence > payments.sequence",
        )
        .bind(&event.merchant_id)
        .bind(&event.invoice_no)
        .bind(&event.status)
        .bind(event.sequence)
        .bind(event.amount_minor)
        .bind(&event.currency)
        .bind(&event.id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let outcome = if moved { Outcome::Applied } else { Outcome::Stale };
        sqlx::query("UPDATE processed_messages SET outcome = ?2 WHERE message_id = ?1")
            .bind(message_id)
            .bind(outcome.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// The invoice's current state as this consumer knows it.
    pub async fn payment(&self, merchant_id: &str, invoice_no: &str) -> Result<Option<Payment>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT status, sequence, amount_minor, currency, last_event_id FROM payments \
             WHERE merchant_id = ?1 AND invoice_no = ?2",
        )
        .bind(merchant_id)
        .bind(invoice_no)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| Payment {
            status: r.get(0),
            sequence: r.get(1),
            amount_minor: r.get(2),
            currency: r.get(3),
            last_event_id: r.get(4),
        }))
    }

    /// What handling `message_id` did the first time (`applied` or `stale`), if it was handled.
    pub async fn outcome(&self, message_id: &str) -> Result<Option<String>, sqlx::Error> {
        sqlx::query_scalar("SELECT outcome FROM processed_messages WHERE message_id = ?1")
            .bind(message_id)
            .fetch_optional(&self.pool)
            .await
    }

    /// How many deliveries were handled, duplicates included.
    pub async fn deliveries(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COALESCE(SUM(deliveries), 0) FROM processed_messages").fetch_one(&self.pool).await
    }

    /// How many distinct messages were handled.
    pub async fn processed(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT COUNT(*) FROM processed_messages").fetch_one(&self.pool).await
    }
}

/// Declares the exchange (as pgw-relay does: durable topic), this consumer's durable queue and its
/// bindings. Idempotent.
pub async fn declare(channel: &Channel, settings: &Settings) -> lapin::Result<()> {
    channel
        .exchange_declare(
            settings.exchange.clone().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_declare(
            settings.queue.clone().into(),
            QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() },
            FieldTable::default(),
        )
        .await?;
    for key in &settings.bindings {
        channel
            .queue_bind(
                settings.queue.clone().into(),
                settings.exchange.clone().into(),
                key.clone().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}

/// Consumes until `shutdown` completes or the connection fails. Every message is acknowledged only
/// after its transaction committed.
pub async fn run(settings: &Settings, store: &Store, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let connection = Connection::connect(
        &settings.amqp_url,
        ConnectionProperties::default().with_connection_name(format!("consumer-{}", settings.queue).into()),
    )
    .await?;
    let channel = connection.create_channel().await?;
    declare(&channel, settings).await?;
    channel.basic_qos(settings.prefetch, BasicQosOptions::default()).await?;
    let mut consumer = channel
        .basic_consume(
            settings.queue.clone().into(),
            "".into(),
            BasicConsumeOptions::default(), // manual acknowledgements
            FieldTable::default(),
        )
        .await?;
    tokio::pin!(shutdown);
    let result = loop {
        let delivery = tokio::select! {
            () = &mut shutdown => break Ok(()),
            next = consumer.next() => match next {
                Some(Ok(d)) => d,
                Some(Err(e)) => break Err(e.into()),
                None => break Err(anyhow::anyhow!("the broker closed the consumer")),
            },
        };
        if let Err(e) = process(store, &delivery).await {
            break Err(e);
        }
    };
    // Unacknowledged messages go back to the queue when the channel closes.
    let _ = channel.close(200, "consumer stopping".into()).await;
    let _ = connection.close(200, "consumer stopping".into()).await;
    result
}

async fn process(store: &Store, delivery: &Delivery) -> anyhow::Result<()> {
    let message_id = delivery.properties.message_id().as_ref().map(|s| s.to_string());
    match store.handle(message_id.as_deref(), &delivery.data).await {
        Ok(outcome) => {
            println!(
                "{} {} {}{}",
                delivery.routing_key,
                message_id.as_deref().unwrap_or("-"),
                outcome.as_str(),
                if delivery.redelivered { " (redelivered)" } else { "" }
            );
            delivery.ack(BasicAckOptions::default()).await?;
        }
        Err(HandleError::Poison(why)) => {
            eprintln!("rejecting message {}: {why}", message_id.as_deref().unwrap_or("-"));
            delivery.reject(BasicRejectOptions { requeue: false }).await?;
        }
        Err(HandleError::Retry(e)) => {
            eprintln!("cannot handle message now ({e}); requeued");
            tokio::time::sleep(Duration::from_secs(1)).await;
            delivery.nack(BasicNackOptions { requeue: true, ..BasicNackOptions::default() }).await?;
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env();
    let store = Store::open(&settings.database_url).await?;
    let mut backoff = Duration::from_millis(500);
    loop {
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        match run(&settings, &store, stop).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                eprintln!("consumer stopped: {e}; reconnecting in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}
