//! Publishing the outbox to RabbitMQ (docs/events.md): a durable topic exchange, routing key = event
//! type, CloudEvents JSON bodies, persistent messages published `mandatory` with publisher
//! confirms. Only a confirm without a return counts as published; everything else stays in the
//! outbox and is retried with backoff, across broker outages and restarts of the service.
//!
//! [`Broker::spawn`] starts the relay in the background and returns a [`BrokerHandle`] for
//! readiness reports and shutdown.

pub mod backoff;
pub mod publisher;
pub mod relay;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::BrokerSettings;
use crate::metrics::Metrics;
use crate::store::Store;

pub use publisher::{BrokerError, PublishOutcome, Publisher};
pub use relay::OutboxRelay;

/// Starts the outbox relay.
pub struct Broker;

impl Broker {
    /// Spawns the relay on the current Tokio runtime and returns at once: connecting happens in
    /// the background, so the caller starts even while the broker is down.
    ///
    /// `wake` is notified (`notify_one`) after each commit that wrote an event, so events go out
    /// within milliseconds; without it the relay polls every `poll_interval`. When `shutdown` is
    /// cancelled, the relay finishes its batch in flight, publishes what is left for at most
    /// `flush_timeout`, and closes the connection; [`BrokerHandle::stopped`] then returns.
    pub fn spawn(
        settings: BrokerSettings,
        store: Store,
        metrics: Metrics,
        wake: Arc<Notify>,
        shutdown: CancellationToken,
        flush_timeout: Duration,
    ) -> BrokerHandle {
        let connected = Arc::new(AtomicBool::new(false));
        let done = CancellationToken::new();
        let relay = OutboxRelay::new(settings, store, metrics, wake, connected.clone());
        let flush_by = relay.flush_by();
        // Dropped when the task ends, even by a panic.
        let guard = done.clone().drop_guard();
        tokio::spawn(async move {
            let _guard = guard;
            relay.run(shutdown, flush_timeout).await;
        });
        BrokerHandle { connected, done, flush_by }
    }
}

/// A handle on the running relay. Cheap to clone.
#[derive(Clone)]
pub struct BrokerHandle {
    connected: Arc<AtomicBool>,
    done: CancellationToken,
    flush_by: relay::FlushBy,
}

impl BrokerHandle {
    /// True while the broker connection and the publishing channel are open (for `/readyz`).
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }

    /// Makes the final flush end by `deadline` (call before cancelling the relay's shutdown).
    pub fn flush_by(&self, deadline: std::time::Instant) {
        *self.flush_by.lock().unwrap_or_else(|e| e.into_inner()) = Some(deadline);
    }

    /// Waits until the relay task has ended (after shutdown was requested).
    pub async fn stopped(self) {
        self.done.cancelled().await;
    }
}
