//! The loop: claim due invoices (bounded batch, leased), inquire each under a concurrency limit and
//! `reconcile.max_rps`, record the answer and the next attempt in one transaction.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::domain::observation::{Observation, Source};
use crate::gateway::{GatewayClient, GatewayError};
use crate::metrics::Metrics;
use crate::protocol::resp_code::CodeClass;
use crate::reconcile::policy::{self, InvoiceTimes};
use crate::store::{now_ms, InquiryDone, InvoiceRow, Store, StoreError, Timing};

/// After this many gateway failures in a row within one tick, the rest of the batch is
/// rescheduled without calling the gateway.
const OUTAGE_THRESHOLD: usize = 5;

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
    pub result: String,
    #[serde(rename = "respCode")]
    pub resp_code: Option<String>,
    #[serde(rename = "respDesc")]
    pub resp_desc: Option<String>,
    pub expired: bool,
    /// When the next inquiry is scheduled, if any (Unix ms).
    #[serde(skip)]
    pub next_at: Option<i64>,
}

/// Runs inquiries.
#[derive(Clone)]
pub struct Reconciler {
    store: Store,
    gateway: GatewayClient,
    config: Arc<Config>,
    metrics: Metrics,
    limiter: Arc<DefaultDirectRateLimiter>,
    owner: String,
    wake: Arc<Notify>,
    /// Cancelled at shutdown: inquiries not started yet are skipped (their leases released).
    stopping: CancellationToken,
}

impl Reconciler {
    /// A reconciler; `owner` names this replica in leases.
    pub fn new(store: Store, gateway: GatewayClient, config: Arc<Config>, metrics: Metrics) -> Self {
        let rps = NonZeroU32::new(config.settings.reconcile.max_rps).unwrap_or(NonZeroU32::MIN);
        let owner = format!(
            "{}-{}-{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "pgw-relay".into()),
            std::process::id(),
            &uuid::Uuid::now_v7().simple().to_string()[24..]
        );
        Reconciler {
            store,
            gateway,
            config,
            metrics,
            limiter: Arc::new(RateLimiter::direct(Quota::per_second(rps))),
            owner,
            wake: Arc::new(Notify::new()),
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
        loop {
            if last_stats.elapsed() >= Duration::from_secs(10) {
                self.refresh_stats().await;
                last_stats = Instant::now();
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
    pub async fn tick(&self) -> usize {
        let r = &self.config.settings.reconcile;
        let rows = match self.store.claim_due_invoices(&self.owner, r.batch as i64, r.lease).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "reconciliation could not claim invoices");
                return 0;
            }
        };
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
                        Ok(report) if report.result == "transport_error" => {
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

    async fn inquire_row(&self, row: &InvoiceRow, skip_gateway: bool) -> Result<InquiryReport, StoreError> {
        let settings = &self.config.settings.reconcile;
        let times = InvoiceTimes {
            created_at: row.created_at,
            expires_at: row.expires_at,
            attempts: u32::try_from(row.inquiry_attempts).unwrap_or(0),
        };
        let key = format!("{}/{}", row.merchant_id, row.invoice_no);
        let Some(merchant) = self.config.merchant(&row.merchant_id) else {
            // A merchant removed from the configuration: keep the invoice, try again much later.
            let next_at = now_ms() + crate::store::ms(settings.max_backoff);
            return self.finish(row, None, None, Some(next_at), false, "request_error", None).await;
        };
        let answer = if skip_gateway {
            Err(GatewayError::Transport("skipped during a gateway outage".into()))
        } else {
            self.limiter.until_ready().await;
            self.gateway.inquiry(merchant, &row.invoice_no).await
        };
        let now = now_ms();
        match answer {
            Ok(answer) => {
                match Observation::from_payment_result(
                    &answer.result,
                    Source::Inquiry,
                    &merchant.id,
                    merchant.timezone,
                    now,
                ) {
                    Ok(obs) if obs.invoice_no == row.invoice_no => {
                        let class = obs.class();
                        let step = policy::next_step(Some(class), times, now, settings, &key);
                        let label = class.as_str();
                        let code = (Some(obs.resp_code.clone()), obs.resp_desc.clone());
                        self.finish(row, Some(obs), Some(answer.token), step.next_at, step.expire, label, Some(code))
                            .await
                    }
                    Ok(_) | Err(_) => {
                        tracing::error!(merchant = %merchant.id, invoice = %row.invoice_no, "inquiry answer is for another invoice or malformed");
                        let step = policy::next_step(None, times, now, settings, &key);
                        self.finish(row, None, None, step.next_at, false, "indeterminate", None).await
                    }
                }
            }
            Err(GatewayError::Rejected { code, desc }) => {
                let step = policy::next_step(Some(CodeClass::RequestError), times, now, settings, &key);
                self.finish(row, None, None, step.next_at, false, "request_error", Some((Some(code), Some(desc)))).await
            }
            Err(e) => {
                let step = policy::next_step(None, times, now, settings, &key);
                let label = if matches!(e, GatewayError::BadSignature | GatewayError::Malformed(_)) {
                    "indeterminate"
                } else {
                    "transport_error"
                };
                self.finish(row, None, None, step.next_at, false, label, None).await
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn finish(
        &self,
        row: &InvoiceRow,
        observation: Option<Observation>,
        raw: Option<String>,
        next_at: Option<i64>,
        expire: bool,
        result: &str,
        code: Option<(Option<String>, Option<String>)>,
    ) -> Result<InquiryReport, StoreError> {
        self.metrics.inquiries.with_label_values(&[result]).inc();
        let r = &self.config.settings.reconcile;
        let timing = Timing { grace: r.grace, payment_window: r.default_payment_window };
        let recorded = self
            .store
            .record_inquiry(
                InquiryDone {
                    merchant_id: row.merchant_id.clone(),
                    invoice_no: row.invoice_no.clone(),
                    observation,
                    raw,
                    next_at,
                    expire,
                },
                timing,
            )
            .await?;
        if let Some(applied) = &recorded.applied {
            if let Some(reason) = applied.anomaly {
                self.metrics.anomalies.with_label_values(&[reason.as_str()]).inc();
                tracing::error!(merchant = %row.merchant_id, invoice = %row.invoice_no, reason = reason.as_str(), "payment anomaly from inquiry");
            }
        }
        let (resp_code, resp_desc) = code.unwrap_or((None, None));
        tracing::info!(
            merchant = %row.merchant_id,
            invoice = %row.invoice_no,
            result,
            status = recorded.status.as_str(),
            expired = recorded.expired,
            "inquiry recorded"
        );
        Ok(InquiryReport {
            merchant_id: row.merchant_id.clone(),
            invoice_no: row.invoice_no.clone(),
            status: recorded.status.as_str().to_string(),
            result: result.to_string(),
            resp_code,
            resp_desc,
            expired: recorded.expired,
            next_at,
        })
    }

    async fn refresh_stats(&self) {
        match self.store.reconcile_stats(self.config.settings.reconcile.give_up_after).await {
            Ok(stats) => {
                self.metrics.reconcile_backlog.set(stats.due);
                self.metrics
                    .reconcile_oldest_pending_age_seconds
                    .set(stats.oldest_created_at_ms.map(|t| (now_ms() - t).max(0) / 1000).unwrap_or(0));
                self.metrics.reconcile_unresolved.set(stats.unresolved);
            }
            Err(e) => tracing::warn!(error = %e, "reconciliation stats unavailable"),
        }
    }
}
