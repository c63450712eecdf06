//! Durable storage of invoices, their history and the event outbox, on SQLite (embedded default,
//! one replica) or PostgreSQL (several replicas). Both backends run the same operations
//! (`ops/`, written once against the connection interface in `sql.rs`) so they behave the
//! same; the test suite runs on both. One write has a second, set-based form: PostgreSQL records
//! backend notifications in groups (`postgres_groups.rs`), with the same plan per notification
//! (`domain/plan.rs`) and `ops::apply_observation` as its fallback, so both forms decide alike.

mod error;
mod operator;
mod ops;
mod postgres;
mod postgres_groups;
mod retention;
mod rows;
mod sql;
mod sqlite;
mod sqlite_checkpoint;
mod sqlite_rows;
mod sqlite_writer;
mod types;

use std::time::Duration;

use secrecy::ExposeSecret;

use crate::clock::ms;
/// Re-exported from [`crate::clock`], where every layer reads the time.
pub use crate::clock::now_ms;
use crate::config::DatabaseSettings;
use crate::domain::ids::InvoiceKey;
use crate::domain::observation::Observation;

pub(crate) use error::sqlite_code_is_transient;
pub use error::{Cause, StoreError};
pub use operator::{EventFilter, Gauges, InvoiceCursor, InvoiceFilter};
pub use retention::Pruned;
pub use rows::{EventRow, HistoryRow, InvoiceRow, QuarantineRow};
pub use types::{
    FrontendReturnRecord, FrontendReturnResult, InquiryDone, InquiryRecorded, NewInvoice, OutboxStats,
    QuarantineOutcome, Quarantined, ReconcileStats, RecordResult, ReplaySelector, Timing,
};

/// The store: one of the two backends.
#[derive(Clone)]
pub enum Store {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

macro_rules! dispatch {
    ($self:expr, $s:ident => $call:expr) => {
        match $self {
            Store::Sqlite($s) => $call,
            Store::Postgres($s) => $call,
        }
    };
}

/// `in_transaction!(self, |c, now| ops::f(c, …, now))`: runs the operation in one transaction (on SQLite,
/// the writer's current group) and answers after the commit.
macro_rules! in_transaction {
    ($self:expr, |$c:ident, $now:ident| $op:expr) => {
        match $self {
            Store::Sqlite(s) => s.write(move |$c, $now| sqlite_writer::run_now($op)).await,
            Store::Postgres(s) => s.write(move |$c, $now| Box::pin(async move { $op.await })).await,
        }
    };
}

/// `on_reader!(self, |c| ops::f(c, …))`: runs the operation on a pooled connection.
macro_rules! on_reader {
    ($self:expr, |$c:ident| $op:expr) => {
        match $self {
            Store::Sqlite(s) => {
                let mut conn = s.read().await?;
                let $c = &mut *conn;
                $op.await
            }
            Store::Postgres(s) => s.read(move |$c| Box::pin(async move { $op.await })).await,
        }
    };
}

impl Store {
    /// Connects (lazily for PostgreSQL, so the service starts while the database is down) and
    /// creates the SQLite file and its folder if needed. PostgreSQL work runs on the calling
    /// runtime.
    pub async fn connect(settings: &DatabaseSettings) -> Result<Store, StoreError> {
        let url = settings.url.expose_secret();
        if url.starts_with("sqlite:") {
            Ok(Store::Sqlite(sqlite::SqliteStore::connect(url, settings).await?))
        } else {
            Ok(Store::Postgres(postgres::PgStore::connect(url, settings)?))
        }
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Applies the embedded migrations of this backend.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        dispatch!(self, s => s.migrate().await)
    }

    /// Answers when the store can serve (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        dispatch!(self, s => s.ping().await)
    }

    /// Records an observation, applies the state machine and writes the event it causes, all in
    /// one transaction (on SQLite the writer's current group; on PostgreSQL a group writer's, see
    /// `postgres_groups.rs`). With `dedupe_key`, a second call with the same key changes nothing.
    pub async fn record_observation(
        &self,
        obs: Observation,
        raw: Option<String>,
        dedupe_key: Option<String>,
        timing: Timing,
    ) -> Result<RecordResult, StoreError> {
        match self {
            Store::Sqlite(s) => {
                s.write(move |c, now| {
                    sqlite_writer::run_now(ops::apply_observation(
                        c,
                        &obs,
                        raw.as_deref(),
                        dedupe_key.as_deref(),
                        timing,
                        now,
                    ))
                })
                .await
            }
            Store::Postgres(s) => s.observations().record(obs, raw, dedupe_key, timing).await,
        }
    }

    /// Registers an invoice; `Ok(true)` when new, `Ok(false)` when already known.
    pub async fn register_invoice(&self, invoice: NewInvoice, timing: Timing) -> Result<bool, StoreError> {
        in_transaction!(self, |c, now| ops::register_invoice(c, &invoice, timing, now))
    }

    /// One invoice.
    pub async fn invoice(&self, merchant_id: &str, invoice_no: &str) -> Result<Option<InvoiceRow>, StoreError> {
        let (merchant_id, invoice_no) = (merchant_id.to_owned(), invoice_no.to_owned());
        on_reader!(self, |c| ops::select_invoice(c, &merchant_id, &invoice_no))
    }

    /// Up to `limit` observations recorded for an invoice after history id `after_id` (0: from
    /// the first), oldest first.
    pub async fn history(
        &self,
        merchant_id: &str,
        invoice_no: &str,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<HistoryRow>, StoreError> {
        let (merchant_id, invoice_no) = (merchant_id.to_owned(), invoice_no.to_owned());
        on_reader!(self, |c| ops::select_history(c, &merchant_id, &invoice_no, after_id, limit))
    }

    /// The events of an invoice, by sequence.
    pub async fn events_of(&self, merchant_id: &str, invoice_no: &str) -> Result<Vec<EventRow>, StoreError> {
        let (merchant_id, invoice_no) = (merchant_id.to_owned(), invoice_no.to_owned());
        on_reader!(self, |c| ops::select_events(c, &merchant_id, &invoice_no))
    }

    /// Claims up to `limit` unpublished events for `owner` for `lease`, oldest first. Rows claimed
    /// by another live relay are skipped.
    pub async fn claim_events(&self, owner: &str, limit: i64, lease: Duration) -> Result<Vec<EventRow>, StoreError> {
        let (owner, lease_ms) = (owner.to_owned(), ms(lease));
        in_transaction!(self, |c, now| ops::claim_events(c, &owner, limit, lease_ms, now))
    }

    /// Marks events as published (the broker confirmed them).
    pub async fn mark_published(&self, seqs: Vec<i64>) -> Result<(), StoreError> {
        if seqs.is_empty() {
            return Ok(());
        }
        in_transaction!(self, |c, now| ops::mark_published(c, &seqs, now))
    }

    /// Marks `seqs` published and claims the next batch for `owner`, in one transaction: a publish
    /// cycle costs one commit. The rows being marked are still leased to `owner`, so the claim
    /// cannot return them; if anything fails, neither happens.
    pub async fn mark_and_claim(
        &self,
        seqs: Vec<i64>,
        owner: &str,
        limit: i64,
        lease: Duration,
    ) -> Result<Vec<EventRow>, StoreError> {
        let (owner, lease_ms) = (owner.to_owned(), ms(lease));
        in_transaction!(self, |c, now| ops::mark_and_claim(c, &seqs, &owner, limit, lease_ms, now))
    }

    /// Gives claimed events back for a later attempt, noting why.
    pub async fn release_events(&self, seqs: Vec<i64>, error: String) -> Result<(), StoreError> {
        if seqs.is_empty() {
            return Ok(());
        }
        in_transaction!(self, |c, _now| ops::release_events(c, &seqs, &error))
    }

    /// Unpublished events: how many, and the oldest's creation time (from the kept gauges).
    pub async fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        let g = self.gauges().await?;
        Ok(OutboxStats { backlog: g.outbox_backlog, oldest_created_at_ms: g.oldest_unpublished_at })
    }

    /// The gauges kept in the store; a few rows, however large the tables are.
    pub async fn gauges(&self) -> Result<Gauges, StoreError> {
        on_reader!(self, |c| operator::gauges(c))
    }

    /// A page of invoices, newest first.
    pub async fn list_invoices(&self, filter: InvoiceFilter) -> Result<Vec<InvoiceRow>, StoreError> {
        on_reader!(self, |c| operator::list_invoices(c, &filter))
    }

    /// A page of outbox rows, newest first.
    pub async fn list_events(&self, filter: EventFilter) -> Result<Vec<EventRow>, StoreError> {
        on_reader!(self, |c| operator::list_events(c, &filter))
    }

    /// Publishes one event again: `None` when unknown, `Some(false)` when it is not published yet.
    pub async fn replay_event(&self, event_id: &str) -> Result<Option<bool>, StoreError> {
        let event_id = event_id.to_owned();
        in_transaction!(self, |c, _now| operator::replay_event(c, &event_id))
    }

    /// How many events a replay would requeue.
    pub async fn count_replay(&self, selector: ReplaySelector) -> Result<u64, StoreError> {
        on_reader!(self, |c| ops::count_replay(c, &selector))
    }

    /// Settled invoices last changed before `before_ms` that a prune would delete now.
    pub async fn count_prunable(&self, before_ms: i64) -> Result<u64, StoreError> {
        on_reader!(self, |c| retention::count_prunable(c, before_ms))
    }

    /// Deletes one batch (at most `limit`) of settled invoices last changed before `before_ms`,
    /// with their history and events; see `retention.rs` for what is never deleted.
    pub async fn prune_settled(&self, before_ms: i64, limit: i64) -> Result<Pruned, StoreError> {
        in_transaction!(self, |c, _now| retention::prune_settled(c, before_ms, limit))
    }

    /// Marks the selected events unpublished so the relay sends them again with their ids.
    pub async fn replay(&self, selector: ReplaySelector) -> Result<u64, StoreError> {
        in_transaction!(self, |c, _now| ops::replay(c, &selector))
    }

    /// Records a browser return (at most `max_returns` per invoice, identical ones once): history,
    /// "customer returned", and for a trusted pending invoice the next inquiry brought forward to
    /// `after_return`. An unknown invoice is stored as untrusted when `may_create` and the
    /// merchant's cap allow, with its one inquiry due after `after_return`.
    pub async fn record_frontend_return(
        &self,
        ret: FrontendReturnRecord,
        timing: Timing,
    ) -> Result<FrontendReturnResult, StoreError> {
        in_transaction!(self, |c, now| ops::record_frontend_return(c, &ret, timing, now))
    }

    /// Leases up to `limit` invoices whose next inquiry is due to `owner` for `lease`. Invoices
    /// leased by another live replica are skipped; a crashed replica's leases expire.
    /// `trusted` picks registered (or verified) invoices, else those known only from browser
    /// returns.
    pub async fn claim_due_invoices(
        &self,
        owner: &str,
        limit: i64,
        lease: Duration,
        trusted: bool,
    ) -> Result<Vec<InvoiceRow>, StoreError> {
        let (owner, lease_ms) = (owner.to_owned(), ms(lease));
        in_transaction!(self, |c, now| ops::claim_due_invoices(c, &owner, limit, lease_ms, trusted, now))
    }

    /// Leases one trusted, pending invoice that no one else holds, for an inquiry now; `None` if
    /// it is not in that state or is leased.
    pub async fn lease_invoice(
        &self,
        key: &InvoiceKey,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<InvoiceRow>, StoreError> {
        let (key, owner, lease_ms) = (key.clone(), owner.to_owned(), ms(lease));
        in_transaction!(self, |c, now| ops::lease_invoice(c, &key.merchant_id, &key.invoice_no, &owner, lease_ms, now))
    }

    /// Releases a leased invoice without inquiring, due again at `next_at` (Unix ms).
    pub async fn postpone_inquiry(&self, merchant_id: &str, invoice_no: &str, next_at: i64) -> Result<(), StoreError> {
        let (merchant_id, invoice_no) = (merchant_id.to_owned(), invoice_no.to_owned());
        in_transaction!(self, |c, _now| ops::postpone_inquiry(c, &merchant_id, &invoice_no, next_at))
    }

    /// Deletes up to `limit` invoices known only from browser returns that are older than `ttl`,
    /// with their history; returns how many.
    pub async fn prune_untrusted(&self, ttl: Duration, limit: i64) -> Result<u64, StoreError> {
        in_transaction!(self, |c, now| ops::prune_untrusted(c, now - ms(ttl), limit))
    }

    /// Applies an inquiry's answer (like a notification, source `inquiry`), expires the invoice
    /// when asked and still pending, schedules the next attempt and releases the lease.
    pub async fn record_inquiry(&self, done: InquiryDone, timing: Timing) -> Result<InquiryRecorded, StoreError> {
        in_transaction!(self, |c, now| ops::record_inquiry(c, &done, timing, now))
    }

    /// Releases every invoice lease held by `owner`; how many.
    pub async fn release_leases(&self, owner: &str) -> Result<u64, StoreError> {
        let owner = owner.to_owned();
        in_transaction!(self, |c, _now| ops::release_leases(c, &owner))
    }

    /// Reconciliation backlog figures.
    pub async fn reconcile_stats(&self, give_up_after: Duration) -> Result<ReconcileStats, StoreError> {
        let now = now_ms();
        let give_up_before = now - ms(give_up_after);
        on_reader!(self, |c| ops::reconcile_stats(c, now, give_up_before))
    }

    /// Keeps a refused notification in quarantine with a `payment.anomaly` (`unprocessable`)
    /// event when its invoice is stored; if the event cannot be written, the notification alone.
    pub async fn quarantine(&self, q: Quarantined) -> Result<QuarantineOutcome, StoreError> {
        let first = q.clone();
        match in_transaction!(self, |c, now| ops::quarantine(c, &first, true, now)) {
            Err(e) if !e.is_transient() => {
                tracing::warn!(error = %e.chain(), "no anomaly event for a quarantined notification");
                in_transaction!(self, |c, now| ops::quarantine(c, &q, false, now))
            }
            other => other,
        }
    }

    /// Quarantined notifications, oldest first (at most 1,000): those held, or all.
    pub async fn quarantined(&self, include_released: bool) -> Result<Vec<QuarantineRow>, StoreError> {
        on_reader!(self, |c| ops::select_quarantine(c, include_released))
    }

    /// One quarantined notification.
    pub async fn quarantined_one(&self, id: i64) -> Result<Option<QuarantineRow>, StoreError> {
        on_reader!(self, |c| ops::select_quarantined(c, id))
    }

    /// Marks a quarantined notification released; `false` when it was not held.
    pub async fn release_quarantined(&self, id: i64, outcome: String) -> Result<bool, StoreError> {
        in_transaction!(self, |c, now| ops::release_quarantined(c, id, &outcome, now))
    }
}
