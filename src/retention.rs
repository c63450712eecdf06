//! Retention: `pgw-relay prune` and the optional background task (`[retention]`). Deletes settled
//! invoices unchanged for `older_than`, with their history and events, one bounded batch per
//! transaction so live traffic keeps flowing between batches.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::clock::{ms, now_ms};
use crate::config::RetentionSettings;
use crate::metrics::Metrics;
use crate::store::{Pruned, Store, StoreError};

/// What a prune did (or, dry, would do).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneReport {
    /// Invoices a dry run would delete.
    pub prunable: Option<u64>,
    pub deleted: Pruned,
    pub batches: u64,
}

/// Deletes every prunable invoice last changed more than `older_than` ago, `batch` per
/// transaction, until none is left or `stop` is cancelled. `dry_run` only counts.
pub async fn prune(
    store: &Store,
    older_than: Duration,
    batch: u32,
    dry_run: bool,
    metrics: Option<&Metrics>,
    stop: &CancellationToken,
) -> Result<PruneReport, StoreError> {
    let before = now_ms() - ms(older_than);
    if dry_run {
        return Ok(PruneReport { prunable: Some(store.count_prunable(before).await?), ..PruneReport::default() });
    }
    let mut report = PruneReport::default();
    while !stop.is_cancelled() {
        let done = store.prune_settled(before, i64::from(batch)).await?;
        report.batches += 1;
        report.deleted += done;
        if let Some(m) = metrics {
            m.retention_deleted.with_label_values(&["invoices"]).inc_by(done.invoices);
            m.retention_deleted.with_label_values(&["history"]).inc_by(done.history);
            m.retention_deleted.with_label_values(&["events"]).inc_by(done.events);
        }
        if done.invoices < u64::from(batch) {
            break;
        }
        tokio::task::yield_now().await;
    }
    Ok(report)
}

/// The background task: a prune every `interval` until `stop`.
pub async fn run(store: Store, settings: RetentionSettings, metrics: Metrics, stop: CancellationToken) {
    loop {
        match prune(&store, settings.older_than, settings.batch, false, Some(&metrics), &stop).await {
            Ok(r) if r.deleted.invoices > 0 => tracing::info!(
                invoices = r.deleted.invoices,
                history = r.deleted.history,
                events = r.deleted.events,
                "retention pruned settled invoices"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention prune failed; trying again next interval"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(settings.interval) => {}
        }
    }
}
