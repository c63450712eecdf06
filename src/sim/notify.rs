//! Backend notification delivery: `POST {backendReturnUrl}` with `{"payload": "<JWT>"}`, in the
//! background, retried on transport errors and non-2xx answers (`notify_attempts`, backoff
//! `notify_backoff` doubling: 1 s, 2 s by default). 2C2P's real retry policy is undocumented.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::oneshot;

use super::ledger::DeliveryAttempt;
use super::state::{InvoiceKey, SimState};

/// A notification (one or two copies of the same body) waiting to be sent.
pub(crate) struct NotifyJob {
    /// The reset generation the job belongs to; a reset abandons it.
    pub generation: u64,
    pub key: InvoiceKey,
    /// Ledger ids of the copies, sent one after the other.
    pub ids: Vec<u64>,
    pub url: String,
    /// The JSON body.
    pub body: String,
    pub delay: Duration,
    /// Set by `reorder`: wait for the release (or `reorder_hold`).
    pub hold: Option<oneshot::Receiver<()>>,
    /// Told the result of the very first attempt.
    pub first: Option<oneshot::Sender<FirstAttempt>>,
}

/// The result of the first delivery attempt.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FirstAttempt {
    pub status: Option<u16>,
    pub delivered: bool,
}

/// Runs `fut` on the simulator's runtime (falls back to the current Tokio runtime).
pub(crate) fn spawn_background<F: Future<Output = ()> + Send + 'static>(state: &SimState, fut: F) {
    if let Some(handle) = state.spawner.get() {
        handle.spawn(fut);
        return;
    }
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(fut);
    }
}

/// Starts delivering `job` in the background.
pub(crate) fn spawn(state: Arc<SimState>, job: NotifyJob) {
    let s = state.clone();
    spawn_background(&state, run(s, job));
}

async fn run(state: Arc<SimState>, mut job: NotifyJob) {
    if let Some(hold) = job.hold.take() {
        tokio::select! {
            _ = hold => {}
            _ = tokio::time::sleep(state.config.reorder_hold) => {}
        }
    }
    if !job.delay.is_zero() {
        tokio::time::sleep(job.delay).await;
    }
    let attempts = state.config.notify_attempts.max(1);
    for id in job.ids.clone() {
        for attempt in 0..attempts {
            if attempt > 0 {
                let factor = 1u32 << (attempt - 1).min(16);
                tokio::time::sleep(state.config.notify_backoff.saturating_mul(factor)).await;
            }
            if state.generation() != job.generation {
                return;
            }
            let at = Utc::now();
            let started = Instant::now();
            let sent = state
                .http
                .post(&job.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json; charset=utf-8")
                .body(job.body.clone())
                .send()
                .await;
            let (status, error) = match sent {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    // Read (and discard) the answer so the connection can be reused.
                    let _ = resp.bytes().await;
                    (Some(status), None)
                }
                Err(e) => (None, Some(e.to_string())),
            };
            let delivered = status.is_some_and(|s| (200..300).contains(&s));
            let finished = delivered || attempt + 1 == attempts;
            tracing::info!(
                merchant = %job.key.0, invoice = %job.key.1, notification = id, attempt = attempt + 1,
                status = ?status, error = ?error, "backend notification attempt"
            );
            let record = DeliveryAttempt {
                at,
                status,
                error,
                elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            };
            state.record_attempt(&job.key, id, record, delivered, finished);
            if let Some(tx) = job.first.take() {
                let _ = tx.send(FirstAttempt { status, delivered });
            }
            if delivered {
                break;
            }
        }
    }
}
