//! The AMQP side of the outbox: one connection, one confirm-mode channel, the declared topology,
//! and pipelined publishing with per-message outcomes.
//!
//! Failure handling is crash-only: whatever goes wrong (connect, declare, publish, confirm error
//! or timeout), the connection is dropped and the next [`Publisher::connect`] builds everything
//! again after a capped exponential backoff. The outbox stays the source of truth, so nothing that
//! was not confirmed is ever considered sent. The default queue and its dead letters are declared
//! in `topology`.

mod topology;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Event, ExchangeKind};
use secrecy::ExposeSecret;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::timeout;

use crate::broker::backoff::retry_delay;
use crate::config::BrokerSettings;
use crate::metrics::Metrics;
use crate::store::EventRow;
use crate::telemetry::propagation;

/// Routing key pattern of the default queue's binding: every payment event.
pub const DEFAULT_BINDING: &str = "payment.#";
/// `content_type` of every message (CloudEvents structured mode).
pub const CONTENT_TYPE: &str = "application/cloudevents+json";
/// `app_id` of every message.
pub const APP_ID: &str = "pgw-relay";

/// A broker operation that failed. The message never contains the broker URL.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BrokerError {
    /// The operation did not finish within `operation_timeout`.
    #[error("{0} timed out")]
    Timeout(&'static str),
    /// The broker or the network refused the operation.
    #[error("{0} failed: {1}")]
    Amqp(&'static str, String),
    /// No connection is open.
    #[error("not connected to the broker")]
    NotConnected,
}

/// What happened to one published event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishOutcome {
    /// Routed and confirmed by the broker (`basic.ack` without a return).
    Published,
    /// Unroutable: the broker returned it (`basic.return`, e.g. 312 NO_ROUTE) before acking.
    Returned { code: u16, text: String },
    /// The broker refused responsibility (`basic.nack`).
    Nacked,
    /// The channel or connection failed before a confirm arrived (or the publish was not sent).
    Failed(String),
    /// No confirm within the timeout.
    TimedOut,
}

impl PublishOutcome {
    /// The `result` label of `publish_confirms`.
    pub fn label(&self) -> &'static str {
        match self {
            PublishOutcome::Published => "ack",
            PublishOutcome::Returned { .. } => "returned",
            PublishOutcome::Nacked => "nack",
            PublishOutcome::Failed(_) => "error",
            PublishOutcome::TimedOut => "timeout",
        }
    }

    /// Why the event is still unpublished (stored as the outbox row's last error).
    pub fn reason(&self) -> String {
        match self {
            PublishOutcome::Published => "published".to_string(),
            PublishOutcome::Returned { code, text } => format!("returned by the broker: {code} {text}"),
            PublishOutcome::Nacked => "nacked by the broker".to_string(),
            PublishOutcome::Failed(e) => format!("publish failed: {e}"),
            PublishOutcome::TimedOut => "no publisher confirm in time".to_string(),
        }
    }
}

/// An open connection with its publishing channel.
struct Link {
    connection: Connection,
    channel: Channel,
    /// Forwards connection errors to [`Publisher::lost`]; aborted with the link.
    watcher: JoinHandle<()>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

/// The publishing end of the outbox relay. Owned by one task; not shared.
pub struct Publisher {
    settings: BrokerSettings,
    metrics: Metrics,
    connected: Arc<AtomicBool>,
    client_id: String,
    link: Option<Link>,
    /// Consecutive connect failures and connection losses since the last good connection.
    failures: u32,
    /// Set after a failure, so that the next successful connection counts as a reconnect.
    recovering: bool,
    lost: Arc<Notify>,
}

impl Publisher {
    /// A publisher that is not connected yet. `connected` mirrors the connection state for
    /// readiness reports; `client_id` is sent as a client property to tell replicas apart.
    pub fn new(settings: BrokerSettings, metrics: Metrics, connected: Arc<AtomicBool>, client_id: String) -> Publisher {
        metrics.broker_connected.set(0);
        connected.store(false, Ordering::SeqCst);
        Publisher {
            settings,
            metrics,
            connected,
            client_id,
            link: None,
            failures: 0,
            recovering: false,
            lost: Arc::new(Notify::new()),
        }
    }

    /// Notified when the broker reports a connection error, so an idle relay reconnects at once.
    pub fn lost(&self) -> Arc<Notify> {
        self.lost.clone()
    }

    /// True while the connection and the publishing channel are open. Notices a connection that
    /// died while idle and drops it.
    pub fn check(&mut self) -> bool {
        let alive = match &self.link {
            Some(link) => link.connection.status().connected() && link.channel.status().connected(),
            None => return false,
        };
        if !alive {
            tracing::warn!("broker connection lost");
            self.drop_link();
        }
        alive
    }

    /// How long to wait before the next connection attempt: 0 for the first one, then doubling
    /// from `reconnect_min_backoff` up to `reconnect_max_backoff`, with jitter (50–100 %).
    pub fn next_delay(&self) -> Duration {
        if self.failures == 0 {
            return Duration::ZERO;
        }
        retry_delay(&self.settings, self.failures - 1)
    }

    /// One connection attempt: connect, declare the topology, open the confirm-mode channel.
    /// Every step is bounded by `operation_timeout`.
    pub async fn connect(&mut self) -> Result<(), BrokerError> {
        self.drop_link();
        match self.open().await {
            Ok(link) => {
                self.link = Some(link);
                self.failures = 0;
                if self.recovering {
                    self.metrics.broker_reconnects.inc();
                    self.recovering = false;
                }
                self.set_connected(true);
                tracing::info!(
                    exchange = %self.settings.exchange,
                    queue = %self.settings.default_queue,
                    "connected to the broker"
                );
                Ok(())
            }
            Err(e) => {
                self.failures = self.failures.saturating_add(1);
                self.recovering = true;
                tracing::warn!(error = %e, attempt = self.failures, "cannot connect to the broker");
                Err(e)
            }
        }
    }

    async fn open(&self) -> Result<Link, BrokerError> {
        let s = &self.settings;
        let properties = ConnectionProperties::default()
            .with_connection_name(s.connection_name.clone().into())
            .with_client_property("pgw_relay_owner".into(), self.client_id.clone().into());
        let connection = self.op("connect", Connection::connect(s.url.expose_secret(), properties)).await?;
        let watcher = tokio::spawn(watch(connection.events_listener(), self.lost.clone()));

        // Declarations on their own channel: a refused declaration closes only that channel.
        let setup = self.op("channel.open", connection.create_channel()).await?;
        let durable = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
        self.op(
            "exchange.declare",
            setup.exchange_declare(s.exchange.clone().into(), ExchangeKind::Topic, durable, FieldTable::default()),
        )
        .await?;
        if !s.default_queue.is_empty() {
            self.declare_default_queue(&connection, setup).await?;
        } else {
            let _ = timeout(s.operation_timeout, setup.close(200, "topology declared".into())).await;
        }

        let channel = self.op("channel.open", connection.create_channel()).await?;
        self.op("confirm.select", channel.confirm_select(ConfirmSelectOptions::default())).await?;
        Ok(Link { connection, channel, watcher })
    }

    /// Publishes `rows` pipelined (mandatory, persistent, routing key = event type) and awaits
    /// every confirm. Returns one outcome per row, in order. Each call is bounded by
    /// `operation_timeout` and by `deadline`. An error or a timeout drops the connection.
    pub async fn publish(&mut self, rows: &[EventRow], deadline: Instant) -> Vec<PublishOutcome> {
        let mut outcomes: Vec<Option<PublishOutcome>> = vec![None; rows.len()];
        let Some(link) = &self.link else {
            return vec![PublishOutcome::Failed(BrokerError::NotConnected.to_string()); rows.len()];
        };
        let channel = link.channel.clone();
        let exchange = self.settings.exchange.clone();
        let op_timeout = self.settings.operation_timeout;
        let bound = |now: Instant| op_timeout.min(deadline.saturating_duration_since(now));
        let mandatory = BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() };
        let timestamp = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
        // An event carries the trace context of what caused it; one stored without (tracing was
        // off then, or an expiry) continues this batch's trace instead.
        let batch_trace = propagation::current_traceparent();

        let mut pending = FuturesUnordered::new();
        // When each row was handed to the channel; `None` if it never was.
        let mut starts: Vec<Option<Instant>> = vec![None; rows.len()];
        for (i, row) in rows.iter().enumerate() {
            let mut properties = BasicProperties::default()
                .with_message_id(row.event_id.clone().into())
                .with_delivery_mode(2)
                .with_content_type(CONTENT_TYPE.into())
                .with_type(row.event_type.clone().into())
                .with_timestamp(timestamp)
                .with_app_id(APP_ID.into());
            if let Some(traceparent) = row.traceparent.as_deref().or(batch_trace.as_deref()) {
                let mut headers = FieldTable::default();
                headers.insert(propagation::TRACEPARENT.into(), AMQPValue::LongString(traceparent.into()));
                properties = properties.with_headers(headers);
            }
            let started = Instant::now();
            let result = timeout(
                bound(started),
                channel.basic_publish(
                    exchange.clone().into(),
                    row.event_type.clone().into(),
                    mandatory,
                    row.body.as_bytes(),
                    properties,
                ),
            )
            .await;
            match result {
                Ok(Ok(confirm)) => {
                    starts[i] = Some(started);
                    pending.push(async move { (i, started, confirm.await) });
                }
                Ok(Err(e)) => {
                    self.record(&mut outcomes, i, started, PublishOutcome::Failed(e.to_string()));
                    break;
                }
                Err(_) => {
                    self.record(&mut outcomes, i, started, PublishOutcome::TimedOut);
                    break;
                }
            }
        }

        let now = Instant::now();
        let wait_until = tokio::time::Instant::from_std(now + bound(now));
        while let Ok(Some((i, started, result))) = tokio::time::timeout_at(wait_until, pending.next()).await {
            let outcome = match result {
                Ok(Confirmation::Ack(None)) => PublishOutcome::Published,
                Ok(Confirmation::Ack(Some(returned))) => {
                    PublishOutcome::Returned { code: returned.reply_code, text: returned.reply_text.to_string() }
                }
                Ok(Confirmation::Nack(_)) => PublishOutcome::Nacked,
                Ok(Confirmation::NotRequested) => {
                    PublishOutcome::Failed("the channel is not in confirm mode".to_string())
                }
                Err(e) => PublishOutcome::Failed(e.to_string()),
            };
            self.record(&mut outcomes, i, started, outcome);
        }
        drop(pending);

        let mut broken = false;
        let mut result = Vec::with_capacity(rows.len());
        for (slot, started) in outcomes.into_iter().zip(starts) {
            let outcome = match (slot, started) {
                (Some(o), _) => o,
                (None, Some(started)) => {
                    // Handed to the channel, but no confirm before the deadline.
                    self.count(&PublishOutcome::TimedOut, started);
                    PublishOutcome::TimedOut
                }
                (None, None) => PublishOutcome::Failed("not sent: the connection failed".to_string()),
            };
            broken |= matches!(outcome, PublishOutcome::Failed(_) | PublishOutcome::TimedOut);
            result.push(outcome);
        }
        if broken {
            tracing::warn!("publishing failed; dropping the broker connection");
            self.drop_link();
        }
        result
    }

    fn record(&self, outcomes: &mut [Option<PublishOutcome>], i: usize, started: Instant, o: PublishOutcome) {
        self.count(&o, started);
        outcomes[i] = Some(o);
    }

    /// Counts one outcome in `publish_confirms` and `publish_confirm_duration`.
    fn count(&self, o: &PublishOutcome, started: Instant) {
        self.metrics.publish_confirms.with_label_values(&[o.label()]).inc();
        self.metrics.publish_confirm_duration.observe(started.elapsed().as_secs_f64());
    }

    /// Closes the channel and the connection cleanly (`200 shutdown`), each bounded by
    /// `operation_timeout`.
    pub async fn close(&mut self) {
        if let Some(link) = self.link.take() {
            let t = self.settings.operation_timeout;
            if link.channel.status().connected() {
                let _ = timeout(t, link.channel.close(200, "shutdown".into())).await;
            }
            if link.connection.status().connected() {
                match timeout(t, link.connection.close(200, "shutdown".into())).await {
                    Ok(Ok(())) => tracing::info!("broker connection closed"),
                    Ok(Err(e)) => tracing::warn!(error = %e, "closing the broker connection"),
                    Err(_) => tracing::warn!("closing the broker connection timed out"),
                }
            }
        }
        self.set_connected(false);
    }

    fn drop_link(&mut self) {
        if self.link.take().is_some() {
            self.failures = self.failures.saturating_add(1);
            self.recovering = true;
        }
        self.set_connected(false);
    }

    fn set_connected(&self, up: bool) {
        self.connected.store(up, Ordering::SeqCst);
        self.metrics.broker_connected.set(i64::from(up));
    }

    async fn op<T>(
        &self,
        what: &'static str,
        fut: impl std::future::Future<Output = lapin::Result<T>>,
    ) -> Result<T, BrokerError> {
        match timeout(self.settings.operation_timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(BrokerError::Amqp(what, e.to_string())),
            Err(_) => Err(BrokerError::Timeout(what)),
        }
    }
}

/// Wakes `lost` on every connection error the IO loop reports.
async fn watch(events: impl futures_util::Stream<Item = Event> + Send, lost: Arc<Notify>) {
    let mut events = std::pin::pin!(events);
    while let Some(event) = events.next().await {
        if let Event::Error(e) = event {
            tracing::debug!(error = %e, "broker connection event");
            lost.notify_one();
        }
    }
}
