//! Durable storage of invoices, their history and the event outbox, on SQLite (embedded default,
//! one replica) or PostgreSQL (several replicas). Both backends run the same operations
//! (`ops.rs`, written once against the connection interface in `sql.rs`) so they behave the
//! same; the test suite runs on both.

mod operator;
mod ops;
mod postgres;
mod retention;
mod rows;
mod sql;
mod sqlite;
mod sqlite_writer;

use std::time::Duration;

use secrecy::ExposeSecret;

use crate::config::DatabaseSettings;
use crate::domain::money::Money;
use crate::domain::observation::Observation;
use crate::domain::state::{AnomalyReason, Decision, Status};

pub use operator::{EventFilter, Gauges, InvoiceFilter, InvoiceKey};
pub use retention::Pruned;
pub use rows::{EventRow, HistoryRow, InvoiceRow, QuarantineRow};

/// The error underneath a [`StoreError`], kept for its message and source chain.
pub type Cause = std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>;

/// A storage failure, classified by whether trying the same thing again can help.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The store could not do it now (the writer stopped, a task was lost): transient.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The database could not be reached or was busy (connection lost, pool timeout, lock busy,
    /// I/O, out of resources): transient, the same write may succeed later.
    #[error("storage unavailable: {0}")]
    Transient(#[source] Cause),
    /// The database refused this write (a data error, a constraint the code did not expect, a
    /// statement or type error): permanent, the same write fails again.
    #[error("storage refused the write: {0}")]
    Permanent(#[source] Cause),
    /// What is stored does not make sense (a bug): permanent.
    #[error("invalid stored data: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether trying again later may succeed (answer `503` and `Retry-After`).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Transient(_))
    }

    /// The message with its whole source chain, for logs and the quarantine (the message
    /// already holds the first cause's).
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self).and_then(|cause| cause.source());
        while let Some(e) = source {
            text.push_str(": ");
            text.push_str(&e.to_string());
            source = e.source();
        }
        text
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        use sqlx::Error as E;
        let transient = match &e {
            E::Io(_) | E::Tls(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed | E::Protocol(_) => true,
            E::Database(db) => match db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                Some(pg) => postgres_code_is_transient(pg.code()),
                None => db.code().and_then(|c| c.parse::<i32>().ok()).is_some_and(sqlite_code_is_transient),
            },
            _ => false,
        };
        let cause: Cause = std::sync::Arc::new(e);
        if transient {
            StoreError::Transient(cause)
        } else {
            StoreError::Permanent(cause)
        }
    }
}

/// SQLSTATE classes that say "not now" rather than "not this": connection exceptions (08),
/// transaction rollbacks such as serialization failures and deadlocks (40), insufficient
/// resources (53), operator intervention such as a shutdown (57), system errors (58), and a
/// lock that is not available (55P03).
fn postgres_code_is_transient(code: &str) -> bool {
    matches!(code.get(..2), Some("08" | "40" | "53" | "57" | "58")) || code == "55P03"
}

/// SQLite primary result codes that say "not now": BUSY (5), LOCKED (6), NOMEM (7), IOERR (10),
/// FULL (13), CANTOPEN (14), PROTOCOL (15). The code may be an extended one (primary + 256·n).
pub(crate) fn sqlite_code_is_transient(code: i32) -> bool {
    matches!(code & 0xff, 5 | 6 | 7 | 10 | 13 | 14 | 15)
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Unavailable(format!("migration failed: {e}"))
    }
}

/// Scheduling parameters the store needs when it records something.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Wait before the first inquiry of an invoice with no backend notification.
    pub grace: Duration,
    /// Payment window assumed when none is given.
    pub payment_window: Duration,
}

/// What recording an observation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordResult {
    /// The same notification was already stored: nothing changed.
    pub duplicate: bool,
    pub decision: Decision,
    /// The invoice's state afterwards.
    pub status: Status,
    /// Events written to the outbox by this call (0 or 1).
    pub events: usize,
    /// The anomaly recorded, if a new one was.
    pub anomaly: Option<AnomalyReason>,
}

/// An invoice to register (from a payment token or the internal API).
#[derive(Debug, Clone)]
pub struct NewInvoice {
    pub merchant_id: String,
    pub invoice_no: String,
    pub amount: Money,
    /// End of the payment window, Unix ms.
    pub expires_at_ms: Option<i64>,
    /// How the relay learned of it (`payment_token`, `registered`).
    pub origin: &'static str,
}

/// Outbox backlog figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxStats {
    pub backlog: i64,
    pub oldest_created_at_ms: Option<i64>,
}

/// Which events to publish again.
#[derive(Debug, Clone)]
pub enum ReplaySelector {
    Invoice { merchant_id: String, invoice_no: String },
    Range { from_ms: i64, to_ms: i64, merchant_id: Option<String> },
}

/// A browser return to record.
#[derive(Debug, Clone)]
pub struct FrontendReturnRecord {
    pub merchant_id: String,
    pub invoice_no: String,
    /// The flow code the browser carried (never a payment result).
    pub resp_code: Option<String>,
    pub resp_desc: Option<String>,
    /// The decoded `paymentResponse` JSON, for history.
    pub raw: String,
    /// Identical returns of one invoice share this key and are recorded once.
    pub dedupe_key: String,
    /// How soon the next inquiry should run.
    pub after_return: Duration,
    /// Whether an unknown invoice may be created (as untrusted) for this return.
    pub may_create: bool,
    /// Invoices learned only from browser returns that a merchant may have at once.
    pub max_untrusted: i64,
    /// How long such invoices are kept (older ones do not count against `max_untrusted`).
    pub untrusted_ttl: Duration,
    /// Returns recorded per invoice at most.
    pub max_returns: i64,
}

/// What recording a browser return did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FrontendReturnResult {
    /// The invoice's state (`None` when it is not stored).
    pub status: Option<Status>,
    /// The invoice is trusted (registered, or a verified payment fact arrived).
    pub trusted: bool,
    /// The invoice is under review (no inquiries).
    pub needs_review: bool,
    /// The invoice was unknown and is now stored as untrusted.
    pub created: bool,
    /// The return was new for this invoice and within its cap, so it was recorded.
    pub recorded: bool,
    /// Unknown invoice not stored: the merchant's untrusted-invoice cap is reached.
    pub limited: bool,
}

/// The outcome of one inquiry, to record.
#[derive(Debug, Clone)]
pub struct InquiryDone {
    pub merchant_id: String,
    pub invoice_no: String,
    /// The verified answer, normalised (`None` when the gateway gave no payment result).
    pub observation: Option<Observation>,
    /// The signed answer, for audit.
    pub raw: Option<String>,
    /// When to inquire again if the invoice is still pending (`None` = not again).
    pub next_at: Option<i64>,
    /// Expire the invoice if it is still pending after applying the answer.
    pub expire: bool,
}

/// What recording an inquiry did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InquiryRecorded {
    pub status: Status,
    pub expired: bool,
    pub applied: Option<RecordResult>,
}

/// A verified notification the store refused permanently, to keep in quarantine.
#[derive(Debug, Clone)]
pub struct Quarantined {
    /// `backend_notification`.
    pub kind: &'static str,
    pub merchant_id: String,
    pub invoice_no: Option<String>,
    pub dedupe_key: Option<String>,
    /// The verified token as received (its redacted copy when redaction changed anything).
    pub raw: String,
    /// The store's error with its source chain.
    pub error: String,
    pub received_at_ms: i64,
    /// The normalised notification, for the anomaly event.
    pub observation: Option<Observation>,
}

/// What quarantining did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuarantineOutcome {
    /// A new quarantine entry (not the same notification again).
    pub new: bool,
    /// A `payment.anomaly` (`unprocessable`) event was written.
    pub anomaly: bool,
}

/// Reconciliation figures for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReconcileStats {
    /// Invoices due now.
    pub due: i64,
    /// Creation time of the oldest invoice still scheduled.
    pub oldest_created_at_ms: Option<i64>,
    /// Scheduled invoices older than `give_up_after`.
    pub unresolved: i64,
}

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

/// `write!(self, |c, now| ops::f(c, …, now))`: runs the operation in one transaction (on SQLite,
/// the writer's current group) and answers after the commit.
macro_rules! write {
    ($self:expr, |$c:ident, $now:ident| $op:expr) => {
        match $self {
            Store::Sqlite(s) => s.write(move |$c, $now| sqlite_writer::run_now($op)).await,
            Store::Postgres(s) => s.write(move |$c, $now| Box::pin(async move { $op.await })).await,
        }
    };
}

/// `read!(self, |c| ops::f(c, …))`: runs the operation on a pooled connection.
macro_rules! read {
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
    /// one transaction. With `dedupe_key`, a second call with the same key changes nothing.
    pub async fn record_observation(
        &self,
        obs: Observation,
        raw: Option<String>,
        dedupe_key: Option<String>,
        timing: Timing,
    ) -> Result<RecordResult, StoreError> {
        write!(self, |c, now| ops::apply_observation(c, &obs, raw.as_deref(), dedupe_key.as_deref(), timing, now))
    }

    /// Registers an invoice; `Ok(true)` when new, `Ok(false)` when already known.
    pub async fn register_invoice(&self, invoice: NewInvoice, timing: Timing) -> Result<bool, StoreError> {
        write!(self, |c, now| ops::register_invoice(c, &invoice, timing, now))
    }

    /// One invoice.
    pub async fn invoice(&self, merchant_id: &str, invoice_no: &str) -> Result<Option<InvoiceRow>, StoreError> {
        let (merchant_id, invoice_no) = (merchant_id.to_owned(), invoice_no.to_owned());
        read!(self, |c| ops::select_invoice(c, &merchant_id, &invoice_no))
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
        read!(self, |c| ops::select_history(c, &merchant_id, &invoice_no, after_id, limit))
    }

    /// The events of an invoice, by sequence.
    pub async fn events_of(&self, merchant_id: &str, invoice_no: &str) -> Result<Vec<EventRow>, StoreError> {
        let (merchant_id, invoice_no) = (merchant_id.to_owned(), invoice_no.to_owned());
        read!(self, |c| ops::select_events(c, &merchant_id, &invoice_no))
    }

    /// Claims up to `limit` unpublished events for `owner` for `lease`, oldest first. Rows claimed
    /// by another live relay are skipped.
    pub async fn claim_events(&self, owner: &str, limit: i64, lease: Duration) -> Result<Vec<EventRow>, StoreError> {
        let (owner, lease_ms) = (owner.to_owned(), ms(lease));
        write!(self, |c, now| ops::claim_events(c, &owner, limit, lease_ms, now))
    }

    /// Marks events as published (the broker confirmed them).
    pub async fn mark_published(&self, seqs: Vec<i64>) -> Result<(), StoreError> {
        if seqs.is_empty() {
            return Ok(());
        }
        write!(self, |c, now| ops::mark_published(c, &seqs, now))
    }

    /// Gives claimed events back for a later attempt, noting why.
    pub async fn release_events(&self, seqs: Vec<i64>, error: String) -> Result<(), StoreError> {
        if seqs.is_empty() {
            return Ok(());
        }
        write!(self, |c, _now| ops::release_events(c, &seqs, &error))
    }

    /// Unpublished events: how many, and the oldest's creation time (from the kept gauges).
    pub async fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        let g = self.gauges().await?;
        Ok(OutboxStats { backlog: g.outbox_backlog, oldest_created_at_ms: g.oldest_unpublished_at })
    }

    /// The gauges kept in the store; a few rows, however large the tables are.
    pub async fn gauges(&self) -> Result<Gauges, StoreError> {
        read!(self, |c| operator::gauges(c))
    }

    /// A page of invoices, newest first.
    pub async fn list_invoices(&self, filter: InvoiceFilter) -> Result<Vec<InvoiceRow>, StoreError> {
        read!(self, |c| operator::list_invoices(c, &filter))
    }

    /// A page of outbox rows, newest first.
    pub async fn list_events(&self, filter: EventFilter) -> Result<Vec<EventRow>, StoreError> {
        read!(self, |c| operator::list_events(c, &filter))
    }

    /// Publishes one event again: `None` when unknown, `Some(false)` when it is not published yet.
    pub async fn replay_event(&self, event_id: &str) -> Result<Option<bool>, StoreError> {
        let event_id = event_id.to_owned();
        write!(self, |c, _now| operator::replay_event(c, &event_id))
    }

    /// How many events a replay would requeue.
    pub async fn count_replay(&self, selector: ReplaySelector) -> Result<u64, StoreError> {
        read!(self, |c| ops::count_replay(c, &selector))
    }

    /// Settled invoices last changed before `before_ms` that a prune would delete now.
    pub async fn count_prunable(&self, before_ms: i64) -> Result<u64, StoreError> {
        read!(self, |c| retention::count_prunable(c, before_ms))
    }

    /// Deletes one batch (at most `limit`) of settled invoices last changed before `before_ms`,
    /// with their history and events; see `retention.rs` for what is never deleted.
    pub async fn prune_settled(&self, before_ms: i64, limit: i64) -> Result<Pruned, StoreError> {
        write!(self, |c, _now| retention::prune_settled(c, before_ms, limit))
    }

    /// Marks the selected events unpublished so the relay sends them again with their ids.
    pub async fn replay(&self, selector: ReplaySelector) -> Result<u64, StoreError> {
        write!(self, |c, _now| ops::replay(c, &selector))
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
        write!(self, |c, now| ops::record_frontend_return(c, &ret, timing, now))
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
        write!(self, |c, now| ops::claim_due_invoices(c, &owner, limit, lease_ms, trusted, now))
    }

    /// Leases one trusted, pending invoice that no one else holds, for an inquiry now; `None` if
    /// it is not in that state or is leased.
    pub async fn lease_invoice(
        &self,
        merchant_id: &str,
        invoice_no: &str,
        owner: &str,
        lease: Duration,
    ) -> Result<Option<InvoiceRow>, StoreError> {
        let (merchant_id, invoice_no, owner, lease_ms) =
            (merchant_id.to_owned(), invoice_no.to_owned(), owner.to_owned(), ms(lease));
        write!(self, |c, now| ops::lease_invoice(c, &merchant_id, &invoice_no, &owner, lease_ms, now))
    }

    /// Releases a leased invoice without inquiring, due again at `next_at` (Unix ms).
    pub async fn postpone_inquiry(&self, merchant_id: &str, invoice_no: &str, next_at: i64) -> Result<(), StoreError> {
        let (merchant_id, invoice_no) = (merchant_id.to_owned(), invoice_no.to_owned());
        write!(self, |c, _now| ops::postpone_inquiry(c, &merchant_id, &invoice_no, next_at))
    }

    /// Deletes up to `limit` invoices known only from browser returns that are older than `ttl`,
    /// with their history; returns how many.
    pub async fn prune_untrusted(&self, ttl: Duration, limit: i64) -> Result<u64, StoreError> {
        write!(self, |c, now| ops::prune_untrusted(c, now - ms(ttl), limit))
    }

    /// Applies an inquiry's answer (like a notification, source `inquiry`), expires the invoice
    /// when asked and still pending, schedules the next attempt and releases the lease.
    pub async fn record_inquiry(&self, done: InquiryDone, timing: Timing) -> Result<InquiryRecorded, StoreError> {
        write!(self, |c, now| ops::record_inquiry(c, &done, timing, now))
    }

    /// Releases every invoice lease held by `owner`; how many.
    pub async fn release_leases(&self, owner: &str) -> Result<u64, StoreError> {
        let owner = owner.to_owned();
        write!(self, |c, _now| ops::release_leases(c, &owner))
    }

    /// Reconciliation backlog figures.
    pub async fn reconcile_stats(&self, give_up_after: Duration) -> Result<ReconcileStats, StoreError> {
        let now = now_ms();
        let give_up_before = now - ms(give_up_after);
        read!(self, |c| ops::reconcile_stats(c, now, give_up_before))
    }

    /// Keeps a refused notification in quarantine with a `payment.anomaly` (`unprocessable`)
    /// event when its invoice is stored; if the event cannot be written, the notification alone.
    pub async fn quarantine(&self, q: Quarantined) -> Result<QuarantineOutcome, StoreError> {
        let first = q.clone();
        match write!(self, |c, now| ops::quarantine(c, &first, true, now)) {
            Err(e) if !e.is_transient() => {
                tracing::warn!(error = %e.chain(), "no anomaly event for a quarantined notification");
                write!(self, |c, now| ops::quarantine(c, &q, false, now))
            }
            other => other,
        }
    }

    /// Quarantined notifications, oldest first (at most 1,000): those held, or all.
    pub async fn quarantined(&self, include_released: bool) -> Result<Vec<QuarantineRow>, StoreError> {
        read!(self, |c| ops::select_quarantine(c, include_released))
    }

    /// One quarantined notification.
    pub async fn quarantined_one(&self, id: i64) -> Result<Option<QuarantineRow>, StoreError> {
        read!(self, |c| ops::select_quarantined(c, id))
    }

    /// Marks a quarantined notification released; `false` when it was not held.
    pub async fn release_quarantined(&self, id: i64, outcome: String) -> Result<bool, StoreError> {
        write!(self, |c, now| ops::release_quarantined(c, id, &outcome, now))
    }
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A duration in milliseconds, saturating.
pub fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_errors_are_classified_by_whether_a_retry_can_help() {
        for code in ["08006", "40001", "40P01", "53300", "57P01", "58030", "55P03"] {
            assert!(postgres_code_is_transient(code), "{code}");
        }
        for code in ["22021", "23505", "23514", "42703", "P0001", "XX000"] {
            assert!(!postgres_code_is_transient(code), "{code}");
        }
        // BUSY, LOCKED, IOERR_WRITE (778), FULL; CONSTRAINT_TRIGGER (1811), CONSTRAINT_UNIQUE (2067).
        for code in [5, 6, 778, 13] {
            assert!(sqlite_code_is_transient(code), "{code}");
        }
        for code in [1811, 2067, 19, 20] {
            assert!(!sqlite_code_is_transient(code), "{code}");
        }
        let pool = StoreError::from(sqlx::Error::PoolTimedOut);
        assert!(pool.is_transient());
        let bug = StoreError::from(sqlx::Error::RowNotFound);
        assert!(!bug.is_transient());
        assert!(bug.chain().contains("no rows"), "{}", bug.chain());
        assert!(std::error::Error::source(&bug).is_some(), "the cause is kept as the source");
    }
}
