//! The loop: claim due invoices (bounded batch, leased), inquire each under a concurrency limit and
//! `reconcile.max_rps`, record the answer and the next attempt in one transaction.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde::Serialize;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::clock::{age_secs_now, ms, now_ms};
use crate::config::Config;
use crate::domain::ids::InvoiceKey;
use crate::domain::observation::{Observation, Source};
use crate::gateway::{GatewayClient, GatewayError};
use crate::metrics::Metrics;
use crate::protocol::resp_code::CodeClass;
use crate::reconcile::outcome::{Finished, InquiryOutcome};
use crate::reconcile::policy::{self, InvoiceTimes, NextStep};
use crate::store::{InquiryDone, InvoiceRow, Store, StoreError, Timing};
use crate::telemetry::propagation;

/// After this many gateway failures in a row within one tick, the rest of the batch is
/// rescheduled without calling the gateway.
const OUTAGE_THRESHOLD: usize = 5;

/// An invoice known only from browser returns over its merchant's inquiry budget is due again
/// this much later.
const UNTRUSTED_POSTPONE: Duration = Duration::from_secs(1);

/// How often invoices known only from browser returns are looked at for deletion, and how many
/// one pass deletes at most.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
const PRUNE_BATCH: i64 = 1000;

/// Inquiries started by browser returns that are still running, per invoice.
type InFlight = Arc<Mutex<HashMap<InvoiceKey, watch::Receiver<bool>>>>;

/// What one inquiry found.
#[derive(Debug, Clone, Serialize)]
pub struct InquiryReport {
    #[serde(rename = "merchantID")]
    pub merchant_id: String,
    #[serde(rename = "invoiceNo")]
    pub invoice_no: String,
    /// The invoice's state afterwards.
    pub status: String,
    /// The gateway's answer class (`succeeded`, `pending`, `not_found`, …) or the error kind.
    pub result: InquiryOutcome,
    #[serde(rename = "respCode")]
    pub resp_code: Option<String>,
    #[serde(rename = "respDesc")]
    pub resp_desc: Option<String>,
    pub expired: bool,
}

/// Runs inquiries.
#[derive(Clone)]
pub struct Reconciler {
    store: Store,
    gateway: GatewayClient,
    config: Arc<Config>,
    metrics: Metrics,
    limiter: Arc<DefaultDirectRateLimiter>,
    /// Per merchant: inquiries of invoices known only from browser returns.
    untrusted_limiter: Arc<DefaultKeyedRateLimiter<String>>,
    owner: String,
    wake: Arc<Notify>,
    in_flight: InFlight,
    /// Cancelled at shutdown: inquiries not started yet are skipped (their leases released).
    stopping: CancellationToken,
}

impl Reconciler {
    /// A reconciler; it holds its leases under its own [`crate::replica::owner_id`].
    pub fn new(store: Store, gateway: GatewayClient, config: Arc<Config>, metrics: Metrics) -> Self {
        let rps = NonZeroU32::new(config.settings.reconcile.max_rps).unwrap_or(NonZeroU32::MIN);
        let untrusted_rps =
            NonZeroU32::new(config.settings.frontend_return.untrusted_inquiries_per_second).unwrap_or(NonZeroU32::MIN);
        let owner = crate::replica::owner_id();
        Reconciler {
            store,
            gateway,
            config,
            metrics,
            limiter: Arc::new(RateLimiter::direct(Quota::per_second(rps))),
            untrusted_limiter: Arc::new(RateLimiter::keyed(Quota::per_second(untrusted_rps))),
            owner,
            wake: Arc::new(Notify::new()),
            in_flight: Arc::default(),
            stopping: CancellationToken::new(),
        }
    }

    /// Wakes the loop before its next interval (after a browser return, for example).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Ticks every `reconcile.interval` until `shutdown`; a full batch ticks again at once.
    pub async fn run(self, shutdown: CancellationToken) {
        let settings = self.config.settings.reconcile.clone();
        let mut last_stats = Instant::now() - Duration::from_secs(3600);
        let mut last_prune = Instant::now() - PRUNE_EVERY;
        loop {
            if last_stats.elapsed() >= Duration::from_secs(10) {
                self.refresh_stats().await;
                last_stats = Instant::now();
            }
            if last_prune.elapsed() >= PRUNE_EVERY {
                self.prune_untrusted().await;
                last_prune = Instant::now();
            }
            // At shutdown the tick in flight finishes the inquiries it started (the caller bounds
            // how long by aborting this task, then releases the leases left).
            let tick = self.tick();
            tokio::pin!(tick);
            let handled = tokio::select! {
                n = &mut tick => n,
                _ = shutdown.cancelled() => {
                    self.stopping.cancel();
                    tick.await;
                    self.release_leases().await;
                    return;
                }
            };
            if handled >= settings.batch as usize {
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(settings.interval) => {},
                _ = self.wake.notified() => {},
            }
        }
    }

    /// Claims one batch of due invoices and inquires them; returns how many were handled.
    /// Registered invoices come first; invoices known only from browser returns fill what is left
    /// of the batch, each merchant's within its own small inquiry budget.
    pub async fn tick(&self) -> usize {
        let r = &self.config.settings.reconcile;
        let batch = r.batch as i64;
        let mut rows = match self.store.claim_due_invoices(&self.owner, batch, r.lease, true).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "reconciliation could not claim invoices");
                return 0;
            }
        };
        if (rows.len() as i64) < batch {
            let left = batch - rows.len() as i64;
            match self.store.claim_due_invoices(&self.owner, left, r.lease, false).await {
                Ok(untrusted) => rows.extend(self.within_untrusted_budget(untrusted).await),
                Err(e) => tracing::warn!(error = %e, "reconciliation could not claim invoices"),
            }
        }
        let count = rows.len();
        let failures = AtomicUsize::new(0);
        futures_util::stream::iter(rows)
            .for_each_concurrent(r.concurrency, |row| {
                let failures = &failures;
                async move {
                    if self.stopping.is_cancelled() {
                        return;
                    }
                    let outage = failures.load(Ordering::Relaxed) >= OUTAGE_THRESHOLD;
                    match self.inquire_row(&row, outage).await {
                        Ok(report) if report.result == InquiryOutcome::TransportError => {
                            failures.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(_) => failures.store(0, Ordering::Relaxed),
                        Err(e) => tracing::warn!(error = %e, invoice = %row.invoice_no, "inquiry result not stored"),
                    }
                }
            })
            .await;
        count
    }

    /// Keeps the untrusted invoices their merchant's budget allows and gives the rest back for a
    /// little later.
    async fn within_untrusted_budget(&self, rows: Vec<InvoiceRow>) -> Vec<InvoiceRow> {
        let mut kept = Vec::with_capacity(rows.len());
        for row in rows {
            if self.untrusted_limiter.check_key(&row.merchant_id).is_ok() {
                kept.push(row);
                continue;
            }
            let later = now_ms() + ms(UNTRUSTED_POSTPONE);
            if let Err(e) = self.store.postpone_inquiry(&row.merchant_id, &row.invoice_no, later).await {
                tracing::warn!(error = %e, "untrusted invoice could not be postponed; its lease will expire");
            }
        }
        kept
    }

    /// Starts an inquiry of a trusted, pending invoice now because its customer came back, unless
    /// one is already running for it; `start = false` only joins a running one. The returned
    /// receiver turns `true` when the inquiry's answer is recorded. The inquiry runs to its end
    /// whether or not anyone waits, counts against `reconcile.max_rps`, and takes the invoice's
    /// lease, so no replica inquires it at the same time.
    pub fn inquire_on_return(&self, key: &InvoiceKey, start: bool) -> Option<watch::Receiver<bool>> {
        let key = key.clone();
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rx) = in_flight.get(&key) {
            return Some(rx.clone());
        }
        if !start || !self.config.settings.reconcile.enabled {
            return None;
        }
        let (tx, rx) = watch::channel(false);
        in_flight.insert(key.clone(), rx.clone());
        drop(in_flight);
        let this = self.clone();
        tokio::spawn(
            async move {
                let lease = this.config.settings.reconcile.lease;
                match this.store.lease_invoice(&key, &this.owner, lease).await {
                    Ok(Some(row)) => {
                        if let Err(e) = this.inquire_row(&row, false).await {
                            tracing::warn!(error = %e, invoice = %key.invoice_no, "inquiry result not stored");
                        }
                    }
                    Ok(None) => {
                        tracing::debug!(invoice = %key.invoice_no, "invoice not pending or leased elsewhere: no inquiry")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, invoice = %key.invoice_no, "invoice could not be leased for an inquiry")
                    }
                }
                this.in_flight.lock().unwrap_or_else(|e| e.into_inner()).remove(&key);
                let _ = tx.send(true);
            }
            // A child of the browser return's request span (which may end first).
            .in_current_span(),
        );
        Some(rx)
    }

    /// Gives back every invoice this replica still leases (at shutdown), so another replica or
    /// the next start inquires them without waiting for the leases to expire.
    pub async fn release_leases(&self) {
        self.stopping.cancel();
        match self.store.release_leases(&self.owner).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(released = n, "reconciliation leases released at shutdown"),
            Err(e) => tracing::warn!(error = %e, "reconciliation leases not released; they expire"),
        }
    }

    /// Inquires one invoice now (`POST /v1/invoices/{m}/{i}/reconcile`). `Ok(None)` if unknown.
    pub async fn inquire_now(&self, merchant_id: &str, invoice_no: &str) -> Result<Option<InquiryReport>, StoreError> {
        let Some(row) = self.store.invoice(merchant_id, invoice_no).await? else { return Ok(None) };
        self.inquire_row(&row, false).await.map(Some)
    }

    /// Inquires one leased invoice and records the answer, as one span.
    async fn inquire_row(&self, row: &InvoiceRow, skip_gateway: bool) -> Result<InquiryReport, StoreError> {
        let span = tracing::info_span!(
            "inquiry",
            merchant = %row.merchant_id,
            invoice = %row.invoice_no,
            result = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        let report = self.inquire_leased(row, skip_gateway).instrument(span.clone()).await;
        match &report {
            Ok(r) => {
                span.record("result", r.result.as_str());
            }
            Err(_) => {
                span.record("otel.status_code", "ERROR");
            }
        }
        report
    }

    async fn inquire_leased(&self, row: &InvoiceRow, skip_gateway: bool) -> Result<InquiryReport, StoreError> {
        let settings = &self.config.settings.reconcile;
        let times = InvoiceTimes {
            created_at: row.created_at,
            expires_at: row.expires_at,
            attempts: u32::try_from(row.inquiry_attempts).unwrap_or(0),
        };
        let key = format!("{}/{}", row.merchant_id, row.invoice_no);
        let Some(merchant) = self.config.merchant(&row.merchant_id) else {
            // A merchant removed from the configuration: keep the invoice, try again much later.
            let step = NextStep { next_at: Some(now_ms() + ms(settings.max_backoff)), expire: false };
            return self.finish(row, InquiryOutcome::RequestError, Finished { step, ..Finished::default() }).await;
        };
        let answer = if skip_gateway {
            Err(GatewayError::Transport("skipped during a gateway outage".into()))
        } else {
            self.limiter.until_ready().await;
            self.gateway.inquiry(merchant, &row.invoice_no).await
        };
        let now = now_ms();
        let retry = |class| policy::next_step(class, times, now, settings, &key);
        let (outcome, finished) = match answer {
            Ok(answer) => {
                match Observation::from_payment_result(
                    &answer.result,
                    Source::Inquiry,
                    &merchant.id,
                    merchant.timezone,
                    now,
                ) {
                    Ok(mut obs) if obs.invoice_no == row.invoice_no => {
                        obs.traceparent = propagation::current_traceparent();
                        let class = obs.class();
                        let finished = Finished {
                            step: retry(Some(class)),
                            resp_code: Some(obs.resp_code.clone()),
                            resp_desc: obs.resp_desc.clone(),
                            observation: Some((obs, answer.token)),
                        };
                        (InquiryOutcome::Answered(class), finished)
                    }
                    Ok(_) | Err(_) => {
                        tracing::error!(merchant = %merchant.id, invoice = %row.invoice_no, "inquiry answer is for another invoice or malformed");
                        let step = NextStep { expire: false, ..retry(None) };
                        (InquiryOutcome::Indeterminate, Finished { step, ..Finished::default() })
                    }
                }
            }
            Err(GatewayError::Rejected { code, desc }) => {
                let step = NextStep { expire: false, ..retry(Some(CodeClass::RequestError)) };
                (
                    InquiryOutcome::RequestError,
                    Finished { step, resp_code: Some(code), resp_desc: Some(desc), observation: None },
                )
            }
            Err(e) => {
                let step = NextStep { expire: false, ..retry(None) };
                let outcome = if matches!(e, GatewayError::BadSignature | GatewayError::Malformed(_)) {
                    InquiryOutcome::Indeterminate
                } else {
                    InquiryOutcome::TransportError
                };
                (outcome, Finished { step, ..Finished::default() })
            }
        };
        self.finish(row, outcome, finished).await
    }

    /// Records what an inquiry learned and reports it.
    async fn finish(
        &self,
        row: &InvoiceRow,
        outcome: InquiryOutcome,
        finished: Finished,
    ) -> Result<InquiryReport, StoreError> {
        self.metrics.inquiries.with_label_values(&[outcome.as_str()]).inc();
        let timing = Timing::from(&self.config.settings.reconcile);
        let (observation, raw) = finished.observation.map_or((None, None), |(obs, raw)| (Some(obs), Some(raw)));
        let key = row.key()?;
        let recorded = self
            .store
            .record_inquiry(
                InquiryDone {
                    merchant_id: key.merchant_id,
                    invoice_no: key.invoice_no,
                    observation,
                    raw,
                    next_at: finished.step.next_at,
                    expire: finished.step.expire,
                },
                timing,
            )
            .await?;
        if let Some(applied) = &recorded.applied {
            if let Some(reason) = applied.anomaly {
                self.metrics.anomaly(reason, &row.merchant_id, &row.invoice_no, Source::Inquiry);
            }
        }
        tracing::info!(
            merchant = %row.merchant_id,
            invoice = %row.invoice_no,
            result = outcome.as_str(),
            status = recorded.status.as_str(),
            expired = recorded.expired,
            "inquiry recorded"
        );
        Ok(InquiryReport {
            merchant_id: row.merchant_id.clone(),
            invoice_no: row.invoice_no.clone(),
            status: recorded.status.as_str().to_string(),
            result: outcome,
            resp_code: finished.resp_code,
            resp_desc: finished.resp_desc,
            expired: recorded.expired,
        })
    }

    async fn prune_untrusted(&self) {
        let ttl = self.config.settings.frontend_return.untrusted_ttl;
        match self.store.prune_untrusted(ttl, PRUNE_BATCH).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "invoices known only from browser returns deleted after their ttl"),
            Err(e) => tracing::warn!(error = %e, "invoices known only from browser returns could not be pruned"),
        }
    }

    async fn refresh_stats(&self) {
        match self.store.reconcile_stats(self.config.settings.reconcile.give_up_after).await {
            Ok(stats) => {
                self.metrics.reconcile_backlog.set(stats.due);
                self.metrics.reconcile_oldest_pending_age_seconds.set(age_secs_now(stats.oldest_created_at_ms));
                self.metrics.reconcile_unresolved.set(stats.unresolved);
            }
            Err(e) => tracing::warn!(error = %e, "reconciliation stats unavailable"),
        }
    }
}
