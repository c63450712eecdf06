//! The RabbitMQ side of a run: a consumer on the service's exchange (a fresh exclusive queue
//! bound with `payment.#`; receive time of every event of this run, recognised by the run's
//! invoice-number prefix in the CloudEvent `subject`; checks of each message's shape), the sink
//! queue used without a consumer, and the removal of the run's exchange.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
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
    /// Messages of this run that break the documented event format (docs/events.md), with the
    /// first few reasons.
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

/// A queue that takes every event and keeps none (`x-max-length = 0`): the service's publisher
/// runs as in production (routed, confirmed) while nothing accumulates and nothing is consumed
/// in this process.
pub struct Sink {
    connection: Connection,
}

impl Sink {
    pub async fn bind(url: &str, exchange: &str) -> anyhow::Result<Sink> {
        let mut arguments = FieldTable::default();
        arguments.insert("x-max-length".into(), AMQPValue::LongInt(0));
        let (connection, _, _) = bind_queue(url, exchange, arguments).await?;
        Ok(Sink { connection })
    }

    pub async fn close(self) {
        let _ = self.connection.close(200, "done".into()).await;
    }
}

/// Deletes a run's exchange (after the service stopped publishing to it).
pub async fn delete_exchange(url: &str, exchange: &str) -> anyhow::Result<()> {
    let connection = Connection::connect(url, ConnectionProperties::default().with_connection_name("pgw-bench".into()))
        .await
        .context("cannot connect to RabbitMQ")?;
    let channel = connection.create_channel().await.context("cannot open an AMQP channel")?;
    let deleted = channel.exchange_delete(exchange.into(), ExchangeDeleteOptions::default()).await;
    let _ = connection.close(200, "done".into()).await;
    deleted.with_context(|| format!("cannot delete exchange `{exchange}`"))
}

/// Connects and binds a new exclusive queue to `exchange` with `payment.#`. The exchange must
/// exist: wait until the service's publisher is connected (it declares the exchange first).
async fn bind_queue(
    url: &str,
    exchange: &str,
    arguments: FieldTable,
) -> anyhow::Result<(Connection, lapin::Channel, ShortString)> {
    let connection = Connection::connect(url, ConnectionProperties::default().with_connection_name("pgw-bench".into()))
        .await
        .context("cannot connect to RabbitMQ")?;
    let channel = connection.create_channel().await.context("cannot open an AMQP channel")?;
    let passive = ExchangeDeclareOptions { passive: true, ..Default::default() };
    channel
        .exchange_declare(exchange.into(), ExchangeKind::Topic, passive, FieldTable::default())
        .await
        .with_context(|| format!("exchange `{exchange}` does not exist"))?;
    let options = QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() };
    let queue = channel.queue_declare("".into(), options, arguments).await.context("cannot declare a queue")?;
    let name = queue.name().clone();
    channel
        .queue_bind(
            name.clone(),
            exchange.into(),
            "payment.#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .context("cannot bind the queue")?;
    Ok((connection, channel, name))
}

/// Binds a new exclusive queue to `exchange` and consumes it, keeping the messages of this run
/// (invoice numbers starting with `prefix`).
pub async fn subscribe(url: String, exchange: String, prefix: String) -> anyhow::Result<Subscription> {
    let (connection, channel, queue) = bind_queue(&url, &exchange, FieldTable::default()).await?;
    let mut consumer = channel
        .basic_consume(
            queue,
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

/// Recognises a message of this run and checks the documented event format (docs/events.md):
/// CloudEvents JSON, `type` equal to the routing key, AMQP `message_id` equal to the event `id`, a
/// `time`.
fn check(delivery: &lapin::message::Delivery, prefix: &str) -> Check {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(&delivery.data) else {
        return Check::Foreign;
    };
    let Some(index) = body["subject"].as_str().and_then(|s| s.strip_prefix(prefix)).and_then(|n| n.parse().ok()) else {
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
