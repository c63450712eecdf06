//! A consumer on the service's exchange: a fresh exclusive queue bound with `payment.#`, receive
//! time of every event of this run (recognised by the run's invoice-number prefix in the
//! CloudEvent `subject`), and checks of each message's shape.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// One message of this run.
#[derive(Debug, Clone, Copy)]
pub struct Receipt {
    pub index: usize,
    pub at: Instant,
}

/// Everything the consumer saw.
#[derive(Debug, Default)]
pub struct Received {
    pub receipts: Vec<Receipt>,
    /// Messages of other publishers on the same exchange (other runs, other services).
    pub foreign: usize,
    /// Messages of this run that break the contract, with the first few reasons.
    pub malformed: usize,
    pub malformed_examples: Vec<String>,
}

/// A running consumer.
pub struct Subscription {
    connection: Connection,
    stop: CancellationToken,
    matched: Arc<AtomicUsize>,
    task: JoinHandle<anyhow::Result<Received>>,
}

/// How long to wait for the service's publisher to declare the exchange.
const EXCHANGE_WAIT: Duration = Duration::from_secs(15);

/// Binds a new exclusive queue to `exchange` and starts consuming. The exchange must exist
/// (the service declares it when its publisher connects); this waits a while for it.
pub async fn subscribe(url: String, exchange: String, prefix: String) -> anyhow::Result<Subscription> {
    let (exchange, wait) = (exchange.as_str(), EXCHANGE_WAIT);
    let connection = Connection::connect(&url, ConnectionProperties::default().with_connection_name("pgw-bench".into()))
        .await
        .context("cannot connect to RabbitMQ")?;
    let give_up = Instant::now() + wait;
    let channel = loop {
        let channel = connection.create_channel().await.context("cannot open an AMQP channel")?;
        let passive = ExchangeDeclareOptions { passive: true, ..Default::default() };
        match channel.exchange_declare(exchange.into(), ExchangeKind::Topic, passive, FieldTable::default()).await {
            Ok(()) => break channel,
            Err(_) if Instant::now() < give_up => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => {
                anyhow::bail!(
                    "exchange `{exchange}` does not exist after {wait:?} ({e}); does this build publish the outbox?"
                )
            }
        }
    };
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() },
            FieldTable::default(),
        )
        .await
        .context("cannot declare the consumer queue")?;
    let queue_name = queue.name().clone();
    channel
        .queue_bind(queue_name.clone(), exchange.into(), "payment.#".into(), QueueBindOptions::default(), FieldTable::default())
        .await
        .context("cannot bind the consumer queue")?;
    let mut consumer = channel
        .basic_consume(
            queue_name,
            "pgw-bench".into(),
            BasicConsumeOptions { no_ack: true, exclusive: true, ..Default::default() },
            FieldTable::default(),
        )
        .await
        .context("cannot start consuming")?;

    let stop = CancellationToken::new();
    let matched = Arc::new(AtomicUsize::new(0));
    let task = {
        let stop = stop.clone();
        let matched = matched.clone();
        tokio::spawn(async move {
            let mut received = Received::default();
            loop {
                let delivery = tokio::select! {
                    _ = stop.cancelled() => break,
                    d = consumer.next() => d,
                };
                let delivery = match delivery {
                    None => break,
                    Some(Ok(d)) => d,
                    Some(Err(e)) => return Err(anyhow::Error::new(e).context("the consumer failed")),
                };
                let at = Instant::now();
                match check(&delivery, &prefix) {
                    Check::Ours(index) => {
                        received.receipts.push(Receipt { index, at });
                        matched.fetch_add(1, Ordering::Relaxed);
                    }
                    Check::Foreign => received.foreign += 1,
                    Check::Malformed(reason) => {
                        received.malformed += 1;
                        if received.malformed_examples.len() < 3 {
                            received.malformed_examples.push(reason);
                        }
                    }
                }
            }
            Ok(received)
        })
    };
    Ok(Subscription { connection, stop, matched, task })
}

impl Subscription {
    /// Messages of this run received so far.
    pub fn matched(&self) -> usize {
        self.matched.load(Ordering::Relaxed)
    }

    /// Waits until `expected` messages arrived or `timeout` passed, then `settle` more for late
    /// duplicates, and stops.
    pub async fn finish(self, expected: usize, timeout: Duration, settle: Duration) -> anyhow::Result<Received> {
        let give_up = Instant::now() + timeout;
        while self.matched() < expected && Instant::now() < give_up {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(settle).await;
        self.stop.cancel();
        let received = self.task.await.context("the consumer task stopped")??;
        let _ = self.connection.close(200, "done".into()).await;
        Ok(received)
    }
}

enum Check {
    Ours(usize),
    Foreign,
    Malformed(String),
}

/// Recognises a message of this run and checks the contract: CloudEvents JSON, `type` equal to
/// the routing key, AMQP `message_id` equal to the event `id`, a `time`.
fn check(delivery: &lapin::message::Delivery, prefix: &str) -> Check {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(&delivery.data) else {
        return Check::Foreign;
    };
    let Some(index) = body["subject"].as_str().and_then(|s| s.strip_prefix(prefix)).and_then(|n| n.parse().ok())
    else {
        return Check::Foreign;
    };
    let routing_key = delivery.routing_key.as_str();
    let id = body["id"].as_str().unwrap_or_default();
    let message_id = delivery.properties.message_id().as_ref().map(|m| m.as_str()).unwrap_or_default();
    if body["type"].as_str() != Some(routing_key) {
        return Check::Malformed(format!("type {} sent with routing key {routing_key}", body["type"]));
    }
    if routing_key != "payment.succeeded" {
        return Check::Malformed(format!("routing key {routing_key}, expected payment.succeeded"));
    }
    if id.is_empty() || message_id != id {
        return Check::Malformed(format!("message_id `{message_id}` is not the event id `{id}`"));
    }
    if body["specversion"].as_str() != Some("1.0") || body["time"].as_str().is_none() {
        return Check::Malformed("not a CloudEvents 1.0 body with a time".into());
    }
    Check::Ours(index)
}
