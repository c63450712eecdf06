//! SQL text used by several operations, and the statements whose text differs per backend.

use crate::store::sql::Dialect;

/// The columns of `InvoiceRow`, in its order.
macro_rules! invoice_columns_sql {
    () => {
        "merchant_id, invoice_no, status, amount_minor, currency, exponent, origin, trusted, sequence, \
        resp_code, resp_desc, tran_ref, notified_at, returned_at, needs_review, expires_at, next_inquiry_at, \
        inquiry_attempts, last_inquiry_at, created_at, updated_at"
    };
}

/// The columns of `EventRow`, in its order.
macro_rules! event_columns_sql {
    () => {
        "seq, event_id, merchant_id, invoice_no, sequence, event_type, body, created_at, published_at, attempts, \
        last_error, claimed_until, traceparent"
    };
}
pub(crate) use event_columns_sql;
pub(crate) use invoice_columns_sql;

/// Selects one invoice (`$1` merchant, `$2` invoice), then `$lock`.
macro_rules! select_invoice_sql {
    ($lock:literal) => {
        concat!("SELECT ", invoice_columns_sql!(), " FROM invoices WHERE merchant_id = $1 AND invoice_no = $2", $lock)
    };
}

/// Claims unpublished events in order, with `$lock` on the rows chosen.
macro_rules! claim_events_sql {
    ($lock:literal) => {
        concat!(
            "UPDATE events SET claimed_until = $1, claimed_by = $2 WHERE seq IN (",
            "SELECT seq FROM events WHERE published_at IS NULL AND (claimed_until IS NULL OR claimed_until < $3) ",
            "ORDER BY seq LIMIT $4",
            $lock,
            ") RETURNING ",
            event_columns_sql!()
        )
    };
}

/// Leases due invoices, earliest first, with `$lock` on the rows chosen.
macro_rules! claim_due_invoices_sql {
    ($lock:literal) => {
        concat!(
            "UPDATE invoices SET lease_owner = $1, lease_until = $2 WHERE (merchant_id, invoice_no) IN (",
            "SELECT merchant_id, invoice_no FROM invoices WHERE next_inquiry_at IS NOT NULL AND next_inquiry_at <= $3 ",
            "AND (lease_until IS NULL OR lease_until < $3) AND trusted = $5 ORDER BY next_inquiry_at LIMIT $4",
            $lock,
            ") RETURNING ",
            invoice_columns_sql!()
        )
    };
}

pub(crate) const SELECT_INVOICE: &str = select_invoice_sql!("");

/// SQLite: no row locks, the single writer serialises every write.
pub const SQLITE: Dialect = Dialect {
    lock_invoice: SELECT_INVOICE,
    claim_events: claim_events_sql!(""),
    claim_due_invoices: claim_due_invoices_sql!(""),
    skip_locked: "",
    fold_gauges: None,
    quarantine_exists: "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'quarantine'",
};

/// PostgreSQL: row locks, and claims that skip rows another replica holds.
pub const POSTGRES: Dialect = Dialect {
    lock_invoice: select_invoice_sql!(" FOR UPDATE"),
    claim_events: claim_events_sql!(" FOR UPDATE SKIP LOCKED"),
    claim_due_invoices: claim_due_invoices_sql!(" FOR UPDATE SKIP LOCKED"),
    skip_locked: " FOR UPDATE SKIP LOCKED",
    fold_gauges: Some(crate::store::operator::FOLD_GAUGES_POSTGRES),
    quarantine_exists:
        "SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'quarantine'",
};

pub(crate) const INSERT_HISTORY: &str = "INSERT INTO history (merchant_id, invoice_no, kind, dedupe_key, resp_code, resp_desc, raw, \
    normalized, received_at, outcome) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (dedupe_key) DO NOTHING \
    RETURNING id";

/// Inserts an invoice unless it exists: `$1` merchant, `$2` invoice, `$3` amount, `$4` currency,
/// `$5` exponent, `$6` origin, `$7` trusted, `$8` expiry, `$9` first inquiry, `$10` now.
macro_rules! insert_invoice_sql {
    () => {
        "INSERT INTO invoices (merchant_id, invoice_no, status, amount_minor, currency, exponent, origin, trusted, \
        sequence, expires_at, next_inquiry_at, created_at, updated_at) \
        VALUES ($1, $2, 'pending', $3, $4, $5, $6, $7, 0, $8, $9, $10, $10) ON CONFLICT (merchant_id, invoice_no) "
    };
}

pub(crate) const INSERT_INVOICE_IF_ABSENT: &str = concat!(insert_invoice_sql!(), "DO NOTHING");

/// Like `INSERT_INVOICE_IF_ABSENT`, but also locks an existing row (a no-op update) and returns
/// the invoice either way.
pub(crate) const UPSERT_INVOICE_LOCKED: &str = concat!(
    insert_invoice_sql!(),
    "DO UPDATE SET merchant_id = excluded.merchant_id RETURNING ",
    invoice_columns_sql!()
);

pub(crate) const INSERT_EVENT: &str =
    "INSERT INTO events (event_id, merchant_id, invoice_no, sequence, event_type, body, created_at, traceparent) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (event_id) DO NOTHING";
