//! The outbox relay: claims unpublished events, publishes them with confirms, marks the confirmed
//! ones published and gives the others back for a later attempt.
//!
//! Several relays (replicas) may share one PostgreSQL database: the store's claim (`FOR UPDATE
//! SKIP LOCKED` plus a lease) hands each row to one relay at a time. Delivery is at least once:
//! a row whose confirm was lost, or whose lease ran out, is published again with the same
//! `message_id`, and consumers deduplicate on it.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::broker::backoff::retry_delay;
use crate::broker::publisher::{PublishOutcome, Publisher};
use crate::clock::age_secs_now;
use crate::config::BrokerSettings;
use crate::metrics::Metrics;
use crate::store::{EventRow, Store};
use crate::telemetry::propagation;

/// The outbox gauges are refreshed at most this often.
const GAUGE_INTERVAL: Duration = Duration::from_secs(1);

/// A row that failed to publish, still claimed by this relay until its retry time.
struct Parked {
    seq: i64,
    reason: String,
    until: Instant,
}

/// What one batch did.
#[derive(Debug, Default, Clone, Copy)]
struct BatchReport {
    published: usize,
    failed: usize,
}

/// The relay loop. Build it with [`OutboxRelay::new`] and drive it with [`OutboxRelay::run`]
/// (or let [`crate::broker::Broker::spawn`] do both).
pub struct OutboxRelay {
    settings: BrokerSettings,
    store: Store,
    metrics: Metrics,
    wake: Arc<Notify>,
    publisher: Publisher,
    owner: String,
    /// Failed rows waiting for their retry time. They stay claimed meanwhile, so newer rows keep
    /// flowing while an unroutable one waits.
    parked: Vec<Parked>,
    /// Confirmed by the broker but not yet marked published (the store failed).
    unmarked: Vec<(i64, String)>,
    gauges_at: Option<Instant>,
    /// Consecutive batches in which nothing was published and something failed.
    failed_batches: u32,
    /// Consecutive store failures.
    store_failures: u32,
    /// The end of the process's shutdown budget, once known: the final flush ends by then.
    flush_by: FlushBy,
}

/// The instant by which the final flush must end, shared with whoever stops the relay.
pub type FlushBy = Arc<std::sync::Mutex<Option<Instant>>>;

impl OutboxRelay {
    /// A relay that publishes the events of `store` to the broker of `settings`. `wake` is
    /// notified after each commit that wrote an event; `connected` mirrors the broker connection.
    pub fn new(
        settings: BrokerSettings,
        store: Store,
        metrics: Metrics,
        wake: Arc<Notify>,
        connected: Arc<AtomicBool>,
    ) -> OutboxRelay {
        let owner = crate::replica::owner_id();
        let publisher = Publisher::new(settings.clone(), metrics.clone(), connected, owner.clone());
        OutboxRelay {
            settings,
            store,
            metrics,
            wake,
            publisher,
            owner,
            parked: Vec::new(),
            unmarked: Vec::new(),
            gauges_at: None,
            failed_batches: 0,
            store_failures: 0,
            flush_by: FlushBy::default(),
        }
    }

    /// Where to set the instant by which the final flush must end (before cancelling `shutdown`);
    /// `flush_timeout` still bounds it.
    pub fn flush_by(&self) -> FlushBy {
        self.flush_by.clone()
    }

    /// Runs until `shutdown` is cancelled, then finishes the batch in flight, publishes what is
    /// left for at most `flush_timeout`, gives back the rows it still holds and closes the
    /// connection cleanly.
    pub async fn run(mut self, shutdown: CancellationToken, flush_timeout: Duration) {
        tracing::info!(owner = %self.owner, "outbox relay started");
        let lost = self.publisher.lost();
        while !shutdown.is_cancelled() {
            self.refresh_gauges(false).await;
            self.release_parked(false).await;
            if !self.publisher.check() {
                // What the broker confirmed before the connection went is marked first.
                if !self.mark_unmarked().await {
                    let delay = self.store_backoff();
                    self.pause(delay, &shutdown).await;
                    continue;
                }
                let delay = self.publisher.next_delay();
                if !self.pause(delay, &shutdown).await {
                    break;
                }
                tokio::select! {
                    _ = self.publisher.connect() => {}
                    _ = shutdown.cancelled() => break,
                }
                continue;
            }
            let Ok(rows) = self.mark_and_claim().await else {
                // The confirmed rows stay leased to this relay and are marked on the next round.
                let delay = self.store_backoff();
                self.pause(delay, &shutdown).await;
                continue;
            };
            if rows.is_empty() {
                self.idle(&shutdown, &lost).await;
                continue;
            }
            let report = self.process(rows, None).await;
            if report.failed > 0 && report.published == 0 {
                self.failed_batches = self.failed_batches.saturating_add(1);
                let delay = retry_delay(&self.settings, self.failed_batches - 1);
                self.pause(delay, &shutdown).await;
            } else {
                self.failed_batches = 0;
            }
        }
        self.finish(flush_timeout).await;
        tracing::info!(owner = %self.owner, "outbox relay stopped");
    }

    /// After shutdown: publish what is left within `flush_timeout`, then clean up.
    async fn finish(&mut self, flush_timeout: Duration) {
        let mut deadline = Instant::now() + flush_timeout;
        if let Some(by) = *self.flush_by.lock().unwrap_or_else(|e| e.into_inner()) {
            deadline = deadline.min(by);
        }
        // Give failed rows one more chance with the others.
        self.release_parked(true).await;
        loop {
            let now = Instant::now();
            if now >= deadline || !self.mark_unmarked().await {
                break;
            }
            let remaining = deadline - now;
            if !self.publisher.check() {
                // Nothing to flush: no need to wait for the broker.
                if matches!(self.store.outbox_stats().await, Ok(s) if s.backlog == 0) {
                    break;
                }
                let delay = self.publisher.next_delay();
                if delay >= remaining {
                    break;
                }
                tokio::time::sleep(delay).await;
                let remaining = deadline.saturating_duration_since(Instant::now());
                let _ = timeout(remaining, self.publisher.connect()).await;
                continue;
            }
            let rows = match timeout(remaining, self.claim()).await {
                Ok(Ok(rows)) if !rows.is_empty() => rows,
                _ => break,
            };
            let report = self.process(rows, Some(deadline)).await;
            if report.published == 0 {
                break;
            }
        }
        self.release_parked(true).await;
        self.mark_unmarked().await;
        self.refresh_gauges(true).await;
        self.publisher.close().await;
        let left = self.metrics.outbox_backlog.get();
        if left > 0 {
            tracing::warn!(
                backlog = left,
                "outbox not empty at shutdown; another replica or the next start publishes it"
            );
        }
    }

    async fn claim(&mut self) -> Result<Vec<EventRow>, ()> {
        let limit = i64::try_from(self.settings.publish_batch.max(1)).unwrap_or(i64::MAX);
        match self.store.claim_events(&self.owner, limit, self.settings.claim_lease).await {
            Ok(rows) => {
                self.store_failures = 0;
                Ok(rows)
            }
            Err(e) => {
                self.store_failures = self.store_failures.saturating_add(1);
                tracing::warn!(error = %e, "cannot claim outbox events");
                Err(())
            }
        }
    }

    /// Marks the rows the broker confirmed published and claims the next batch in one transaction
    /// (`Store::mark_and_claim`), so a publish cycle waits for one commit instead of two. If it
    /// fails, nothing is claimed and the confirmed rows (still leased to this relay) are marked
    /// with the next attempt.
    async fn mark_and_claim(&mut self) -> Result<Vec<EventRow>, ()> {
        let seqs: Vec<i64> = self.unmarked.iter().map(|(seq, _)| *seq).collect();
        let limit = i64::try_from(self.settings.publish_batch.max(1)).unwrap_or(i64::MAX);
        let (store, owner, lease) = (&self.store, &self.owner, self.settings.claim_lease);
        match store.mark_and_claim(seqs, owner, limit, lease).await {
            Ok(rows) => {
                self.settle_marks(Ok(()));
                self.store_failures = 0;
                Ok(rows)
            }
            Err(e) if !self.unmarked.is_empty() => {
                self.settle_marks(Err(e));
                Err(())
            }
            Err(e) => {
                self.store_failures = self.store_failures.saturating_add(1);
                tracing::warn!(error = %e, "cannot claim outbox events");
                Err(())
            }
        }
    }

    /// Publishes one claimed batch and settles every row: published, or parked for a retry. The
    /// batch is one span, linked to the spans that caused its events. Confirmed rows are marked
    /// published with the next claim ([`OutboxRelay::mark_and_claim`]).
    async fn process(&mut self, rows: Vec<EventRow>, cap: Option<Instant>) -> BatchReport {
        let span = tracing::info_span!(
            "publish_batch",
            events = rows.len(),
            published = tracing::field::Empty,
            failed = tracing::field::Empty
        );
        for cause in rows.iter().filter_map(|r| r.traceparent.as_deref()).filter_map(propagation::span_context) {
            span.add_link(cause);
        }
        let report = self.publish_batch(rows, cap).instrument(span.clone()).await;
        span.record("published", report.published);
        span.record("failed", report.failed);
        report
    }

    async fn publish_batch(&mut self, rows: Vec<EventRow>, cap: Option<Instant>) -> BatchReport {
        let claimed_at = Instant::now();
        let lease = self.settings.claim_lease;
        // Keep well inside the lease so no other relay takes these rows while we hold them.
        let mut deadline = claimed_at + (self.settings.operation_timeout * 2).min(lease / 2);
        if let Some(cap) = cap {
            deadline = deadline.min(cap);
        }
        let latest_retry = claimed_at + lease * 3 / 4;
        let outcomes = self.publisher.publish(&rows, deadline).await;

        let mut report = BatchReport::default();
        let now = Instant::now();
        for (row, outcome) in rows.iter().zip(outcomes) {
            match outcome {
                PublishOutcome::Published => {
                    report.published += 1;
                    self.unmarked.push((row.seq, row.event_type.clone()));
                }
                other => {
                    report.failed += 1;
                    match &other {
                        PublishOutcome::Returned { code, text } => tracing::warn!(
                            event_id = %row.event_id,
                            event_type = %row.event_type,
                            exchange = %self.settings.exchange,
                            code,
                            text = %text,
                            "event unroutable: no queue is bound for it"
                        ),
                        PublishOutcome::Nacked => tracing::error!(
                            event_id = %row.event_id,
                            event_type = %row.event_type,
                            "event nacked by the broker"
                        ),
                        _ => {
                            tracing::debug!(event_id = %row.event_id, reason = %other.reason(), "event not published")
                        }
                    }
                    let attempts = u32::try_from(row.attempts).unwrap_or(0);
                    let delay = retry_delay(&self.settings, attempts);
                    self.parked.push(Parked {
                        seq: row.seq,
                        reason: other.reason(),
                        until: (now + delay).min(latest_retry),
                    });
                }
            }
        }
        report
    }

    /// Marks confirmed rows published; false when the store failed (they are kept for later).
    async fn mark_unmarked(&mut self) -> bool {
        if self.unmarked.is_empty() {
            return true;
        }
        let seqs: Vec<i64> = self.unmarked.iter().map(|(seq, _)| *seq).collect();
        let marked = self.store.mark_published(seqs).await;
        let ok = self.settle_marks(marked);
        if ok {
            self.store_failures = 0;
        }
        ok
    }

    /// Counts the marked rows as published, or keeps them for the next attempt.
    fn settle_marks(&mut self, marked: Result<(), crate::store::StoreError>) -> bool {
        match marked {
            Ok(()) => {
                for (_, event_type) in self.unmarked.drain(..) {
                    self.metrics.events_published.with_label_values(&[event_type.as_str()]).inc();
                }
                true
            }
            Err(e) => {
                self.store_failures = self.store_failures.saturating_add(1);
                tracing::warn!(error = %e, rows = self.unmarked.len(), "cannot mark events published");
                false
            }
        }
    }

    /// Gives back the parked rows whose retry time has come (all of them with `all`).
    async fn release_parked(&mut self, all: bool) {
        let now = Instant::now();
        let (due, keep): (Vec<Parked>, Vec<Parked>) =
            std::mem::take(&mut self.parked).into_iter().partition(|p| all || p.until <= now);
        self.parked = keep;
        let mut by_reason: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for p in due {
            by_reason.entry(p.reason).or_default().push(p.seq);
        }
        for (reason, seqs) in by_reason {
            if let Err(e) = self.store.release_events(seqs.clone(), reason.clone()).await {
                // Keep them: retried on the next pass; their lease frees them if we stop.
                tracing::warn!(error = %e, "cannot release outbox events");
                let until = now + self.settings.reconnect_min_backoff;
                self.parked.extend(seqs.into_iter().map(|seq| Parked { seq, reason: reason.clone(), until }));
            }
        }
    }

    /// Waits for a commit notification, a connection error, the next parked retry, the poll
    /// interval or shutdown, whichever comes first; refreshes the gauges every second meanwhile.
    async fn idle(&mut self, shutdown: &CancellationToken, lost: &Notify) {
        let mut until = Instant::now() + self.settings.poll_interval;
        if let Some(next) = self.parked.iter().map(|p| p.until).min() {
            until = until.min(next);
        }
        loop {
            let now = Instant::now();
            if now >= until {
                return;
            }
            let step = (until - now).min(GAUGE_INTERVAL);
            tokio::select! {
                _ = self.wake.notified() => return,
                _ = lost.notified() => return,
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(step) => {}
            }
            self.refresh_gauges(false).await;
        }
    }

    /// Sleeps `d` (refreshing the gauges every second); false when shutdown came first.
    async fn pause(&mut self, d: Duration, shutdown: &CancellationToken) -> bool {
        let until = Instant::now() + d;
        loop {
            let now = Instant::now();
            if now >= until {
                return !shutdown.is_cancelled();
            }
            let step = (until - now).min(GAUGE_INTERVAL);
            tokio::select! {
                _ = tokio::time::sleep(step) => {}
                _ = shutdown.cancelled() => return false,
            }
            self.refresh_gauges(false).await;
        }
    }

    fn store_backoff(&self) -> Duration {
        retry_delay(&self.settings, self.store_failures.saturating_sub(1))
    }

    /// Sets `outbox_backlog`, `outbox_parked` and `outbox_oldest_age_seconds`, at most once a second.
    async fn refresh_gauges(&mut self, force: bool) {
        if !force && self.gauges_at.is_some_and(|t| t.elapsed() < GAUGE_INTERVAL) {
            return;
        }
        self.gauges_at = Some(Instant::now());
        // Also folds the gauge deltas writers appended (PostgreSQL), so scrapes stay cheap.
        match self.store.gauges().await {
            Ok(g) => {
                self.metrics.outbox_backlog.set(g.outbox_backlog);
                self.metrics.outbox_parked.set(g.outbox_parked);
                let age = age_secs_now(g.oldest_unpublished_at);
                self.metrics.outbox_oldest_age_seconds.set(age);
            }
            Err(e) => tracing::debug!(error = %e, "cannot read outbox stats"),
        }
    }
}
