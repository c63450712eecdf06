//! The store's operations, written once against [`Sql`] so that every backend runs the same
//! statements and the same decisions. Writes expect to run inside one transaction.

use crate::domain::event::{self, EventFacts};
use crate::domain::observation::{Observation, Source};
use crate::domain::state::{self, Current, Decision, Status};
use crate::store::sql::{args, Arg, Dialect, Sql};
use crate::store::{
    ms, EventRow, FrontendReturnRecord, FrontendReturnResult, HistoryRow, InquiryDone, InquiryRecorded, InvoiceRow,
    NewInvoice, QuarantineOutcome, QuarantineRow, Quarantined, ReconcileStats, RecordResult, ReplaySelector,
    StoreError, Timing,
};

/// The columns of `InvoiceRow`, in its order.
macro_rules! invoice_columns {
    () => {
        "merchant_id, invoice_no, status, amount_minor, currency, exponent, origin, trusted, sequence, \
        resp_code, resp_desc, tran_ref, notified_at, returned_at, needs_review, expires_at, next_inquiry_at, \
        inquiry_attempts, last_inquiry_at, created_at, updated_at"
    };
}

/// The columns of `EventRow`, in its order.
macro_rules! event_columns {
    () => {
        "seq, event_id, merchant_id, invoice_no, sequence, event_type, body, created_at, published_at, attempts, \
        last_error, claimed_until, traceparent"
    };
}
pub(crate) use event_columns;
pub(crate) use invoice_columns;

/// Selects one invoice (`$1` merchant, `$2` invoice), then `$lock`.
macro_rules! select_invoice {
    ($lock:literal) => {
        concat!("SELECT ", invoice_columns!(), " FROM invoices WHERE merchant_id = $1 AND invoice_no = $2", $lock)
    };
}

/// Claims unpublished events in order, with `$lock` on the rows chosen.
macro_rules! claim_events {
    ($lock:literal) => {
        concat!(
            "UPDATE events SET claimed_until = $1, claimed_by = $2 WHERE seq IN (",
            "SELECT seq FROM events WHERE published_at IS NULL AND (claimed_until IS NULL OR claimed_until < $3) ",
            "ORDER BY seq LIMIT $4",
            $lock,
            ") RETURNING ",
            event_columns!()
        )
    };
}

/// Leases due invoices, earliest first, with `$lock` on the rows chosen.
macro_rules! claim_due_invoices {
    ($lock:literal) => {
        concat!(
            "UPDATE invoices SET lease_owner = $1, lease_until = $2 WHERE (merchant_id, invoice_no) IN (",
            "SELECT merchant_id, invoice_no FROM invoices WHERE next_inquiry_at IS NOT NULL AND next_inquiry_at <= $3 ",
            "AND (lease_until IS NULL OR lease_until < $3) AND trusted = $5 ORDER BY next_inquiry_at LIMIT $4",
            $lock,
            ") RETURNING ",
            invoice_columns!()
        )
    };
}

const SELECT_INVOICE: &str = select_invoice!("");

/// SQLite: no row locks, the single writer serialises every write.
pub const SQLITE: Dialect = Dialect {
    lock_invoice: SELECT_INVOICE,
    claim_events: claim_events!(""),
    claim_due_invoices: claim_due_invoices!(""),
    skip_locked: "",
    fold_gauges: None,
    quarantine_exists: "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'quarantine'",
};

/// PostgreSQL: row locks, and claims that skip rows another replica holds.
pub const POSTGRES: Dialect = Dialect {
    lock_invoice: select_invoice!(" FOR UPDATE"),
    claim_events: claim_events!(" FOR UPDATE SKIP LOCKED"),
    claim_due_invoices: claim_due_invoices!(" FOR UPDATE SKIP LOCKED"),
    skip_locked: " FOR UPDATE SKIP LOCKED",
    fold_gauges: Some(crate::store::operator::FOLD_GAUGES_POSTGRES),
    quarantine_exists:
        "SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'quarantine'",
};

const INSERT_HISTORY: &str = "INSERT INTO history (merchant_id, invoice_no, kind, dedupe_key, resp_code, resp_desc, raw, \
    normalized, received_at, outcome) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (dedupe_key) DO NOTHING \
    RETURNING id";

/// Inserts an invoice unless it exists: `$1` merchant, `$2` invoice, `$3` amount, `$4` currency,
/// `$5` exponent, `$6` origin, `$7` trusted, `$8` expiry, `$9` first inquiry, `$10` now.
macro_rules! insert_invoice {
    () => {
        "INSERT INTO invoices (merchant_id, invoice_no, status, amount_minor, currency, exponent, origin, trusted, \
        sequence, expires_at, next_inquiry_at, created_at, updated_at) \
        VALUES ($1, $2, 'pending', $3, $4, $5, $6, $7, 0, $8, $9, $10, $10) ON CONFLICT (merchant_id, invoice_no) "
    };
}

const INSERT_INVOICE_IF_ABSENT: &str = concat!(insert_invoice!(), "DO NOTHING");

/// Like `INSERT_INVOICE_IF_ABSENT`, but also locks an existing row (a no-op update) and returns
/// the invoice either way.
const UPSERT_INVOICE_LOCKED: &str =
    concat!(insert_invoice!(), "DO UPDATE SET merchant_id = excluded.merchant_id RETURNING ", invoice_columns!());

const INSERT_EVENT: &str =
    "INSERT INTO events (event_id, merchant_id, invoice_no, sequence, event_type, body, created_at, traceparent) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (event_id) DO NOTHING";

/// Records `obs` and applies it; see `Store::record_observation`.
pub async fn apply_observation<C: Sql>(
    c: &mut C,
    obs: &Observation,
    raw: Option<&str>,
    dedupe_key: Option<&str>,
    timing: Timing,
    now: i64,
) -> Result<RecordResult, StoreError> {
    // Create the invoice if this observation is the first news of it, and lock it, in one
    // statement: concurrent observations of one invoice apply one after the other.
    let amount = obs.amount.as_ref();
    let rows = c
        .invoices(
            UPSERT_INVOICE_LOCKED,
            args![
                &obs.merchant_id,
                &obs.invoice_no,
                amount.map(|a| a.minor),
                amount.map(|a| a.currency.as_str()),
                amount.map(|a| a.exponent as i32),
                obs.source.as_str(),
                obs.source != Source::FrontendReturn,
                now + ms(timing.payment_window),
                now + ms(timing.grace),
                now,
            ],
        )
        .await?;
    let row =
        rows.into_iter().next().ok_or_else(|| StoreError::Corrupt("the invoice upsert returned no row".into()))?;
    let before = row.status()?;
    let registered = row.amount();
    // Trust comes only from a verified payment fact: a signed notification, or a signed inquiry
    // answer that reports a payment. An invoice known only from a browser return stays untrusted
    // otherwise, and an untrusted invoice changes no state and publishes nothing.
    let trusted = row.trusted
        || match obs.source {
            Source::BackendNotification => true,
            Source::Inquiry => obs.class().reports_payment(),
            Source::FrontendReturn => false,
        };
    let current = Current { status: before, amount: registered.clone(), sequence: row.sequence };
    let decision = if trusted { state::decide(Some(&current), obs.class(), amount) } else { Decision::NoChange };

    let predicted = match decision {
        Decision::Transition { to } => format!("applied:{}", to.as_str()),
        Decision::Anomaly(r) => format!("anomaly:{}", r.as_str()),
        Decision::NoChange => "no_change".to_string(),
    };
    let normalized = serde_json::to_string(obs).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let inserted = c
        .integers(
            INSERT_HISTORY,
            args![
                &obs.merchant_id,
                &obs.invoice_no,
                obs.source.as_str(),
                dedupe_key,
                &obs.resp_code,
                &obs.resp_desc,
                raw,
                normalized.as_str(),
                now,
                predicted.as_str(),
            ],
        )
        .await?;
    let Some(history_id) = inserted.and_then(|r| r.first().copied().flatten()) else {
        // Stored before: nothing changes (the upsert above touched no column).
        return Ok(RecordResult {
            duplicate: true,
            decision: Decision::NoChange,
            status: before,
            events: 0,
            anomaly: None,
        });
    };

    let mut status = before;
    let mut sequence = row.sequence;
    let mut events = 0;
    let mut anomaly = None;
    let mut needs_review = row.needs_review;
    let (event_type, reason) = match decision {
        Decision::NoChange => (None, None),
        Decision::Transition { to } => (Some(to.event_type()), None),
        Decision::Anomaly(r) => (Some(state::EventType::Anomaly), Some(r)),
    };
    if let Some(event_type) = event_type {
        let next_status = match decision {
            Decision::Transition { to } => to,
            _ => before,
        };
        let ev = event::build(&EventFacts {
            merchant_id: &obs.merchant_id,
            invoice_no: &obs.invoice_no,
            event_type,
            status: next_status,
            previous_status: Some(before),
            sequence: sequence + 1,
            amount: amount.or(registered.as_ref()),
            observation: Some(obs),
            reason,
            source: obs.source.as_str(),
            now_ms: now,
        });
        if insert_event(c, &ev).await? {
            events = 1;
            sequence += 1;
            status = next_status;
            if let Some(r) = reason {
                anomaly = Some(r);
                needs_review |= r.stops_reconciliation();
            }
        }
    }

    let final_now = status.is_final() || needs_review;
    let next_inquiry_at = if final_now { None } else { row.next_inquiry_at.or(Some(now + ms(timing.grace))) };
    let notified_at = match obs.source {
        Source::BackendNotification => row.notified_at.or(Some(now)),
        _ => row.notified_at,
    };
    let (amount_minor, currency, exponent) = match (&registered, amount) {
        (Some(r), _) => (Some(r.minor), Some(r.currency.as_str()), Some(r.exponent as i32)),
        (None, Some(a)) => (Some(a.minor), Some(a.currency.as_str()), Some(a.exponent as i32)),
        (None, None) => (None, None, None),
    };
    c.execute(
        "UPDATE invoices SET status = $3, sequence = $4, resp_code = $5, resp_desc = $6, tran_ref = COALESCE($7, tran_ref), \
         notified_at = $8, needs_review = $9, next_inquiry_at = $10, trusted = $11, amount_minor = $12, currency = $13, \
         exponent = $14, updated_at = $15 WHERE merchant_id = $1 AND invoice_no = $2",
        args![
            &obs.merchant_id,
            &obs.invoice_no,
            status.as_str(),
            sequence,
            &obs.resp_code,
            &obs.resp_desc,
            &obs.tran_ref,
            notified_at,
            needs_review,
            next_inquiry_at,
            trusted,
            amount_minor,
            currency,
            exponent,
            now,
        ],
    )
    .await?;

    if let (Decision::Anomaly(r), 0) = (decision, events) {
        // The same anomaly was recorded before: say so in this observation's history.
        let outcome = format!("anomaly_repeated:{}", r.as_str());
        c.execute("UPDATE history SET outcome = $1 WHERE id = $2", args![outcome.as_str(), history_id]).await?;
    }
    Ok(RecordResult { duplicate: false, decision, status, events, anomaly })
}

async fn lock_invoice<C: Sql>(
    c: &mut C,
    merchant_id: &str,
    invoice_no: &str,
) -> Result<Option<InvoiceRow>, StoreError> {
    Ok(c.invoices(C::DIALECT.lock_invoice, args![merchant_id, invoice_no]).await?.into_iter().next())
}

/// Writes an event unless one with the same id exists; `true` when written.
async fn insert_event<C: Sql>(c: &mut C, ev: &event::NewEvent) -> Result<bool, StoreError> {
    let id = ev.id.to_string();
    let written = c
        .execute(
            INSERT_EVENT,
            args![
                id.as_str(),
                &ev.merchant_id,
                &ev.invoice_no,
                ev.sequence,
                ev.event_type.as_str(),
                &ev.body,
                ev.created_at_ms,
                &ev.traceparent
            ],
        )
        .await?;
    Ok(written == 1)
}

/// Registers an invoice; `true` when the merchant's registration is new. An invoice known only
/// from an untrusted browser return is adopted: the merchant's amount, currency and payment window
/// apply, and reconciliation is scheduled from now as for a new invoice.
pub async fn register_invoice<C: Sql>(
    c: &mut C,
    inv: &NewInvoice,
    timing: Timing,
    now: i64,
) -> Result<bool, StoreError> {
    let expires_at = inv.expires_at_ms.unwrap_or(now + ms(timing.payment_window));
    let exponent = Some(inv.amount.exponent as i32);
    let created = c
        .execute(
            INSERT_INVOICE_IF_ABSENT,
            args![
                &inv.merchant_id,
                &inv.invoice_no,
                inv.amount.minor,
                &inv.amount.currency,
                exponent,
                inv.origin,
                true,
                expires_at,
                now + ms(timing.grace),
                now,
            ],
        )
        .await?
        == 1;
    if created {
        return Ok(true);
    }
    let adopted = c
        .execute(
            "UPDATE invoices SET trusted = TRUE, origin = $3, amount_minor = $4, currency = $5, exponent = $6, \
             expires_at = $7, next_inquiry_at = $8, inquiry_attempts = 0, last_inquiry_at = NULL, created_at = $9, \
             updated_at = $9 WHERE merchant_id = $1 AND invoice_no = $2 AND trusted = FALSE",
            args![
                &inv.merchant_id,
                &inv.invoice_no,
                inv.origin,
                inv.amount.minor,
                &inv.amount.currency,
                exponent,
                expires_at,
                now + ms(timing.grace),
                now
            ],
        )
        .await?;
    Ok(adopted == 1)
}

pub async fn select_invoice<C: Sql>(
    c: &mut C,
    merchant_id: &str,
    invoice_no: &str,
) -> Result<Option<InvoiceRow>, StoreError> {
    Ok(c.invoices(SELECT_INVOICE, args![merchant_id, invoice_no]).await?.into_iter().next())
}

/// Up to `limit` history rows of an invoice with ids after `after_id`, oldest first.
pub async fn select_history<C: Sql>(
    c: &mut C,
    merchant_id: &str,
    invoice_no: &str,
    after_id: i64,
    limit: i64,
) -> Result<Vec<HistoryRow>, StoreError> {
    c.history(
        "SELECT id, kind, resp_code, resp_desc, outcome, raw, normalized, received_at FROM history \
         WHERE merchant_id = $1 AND invoice_no = $2 AND id > $3 ORDER BY id LIMIT $4",
        args![merchant_id, invoice_no, after_id, limit],
    )
    .await
}

pub async fn select_events<C: Sql>(
    c: &mut C,
    merchant_id: &str,
    invoice_no: &str,
) -> Result<Vec<EventRow>, StoreError> {
    c.events(
        concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE merchant_id = $1 AND invoice_no = $2 ORDER BY sequence"
        ),
        args![merchant_id, invoice_no],
    )
    .await
}

pub async fn claim_events<C: Sql>(
    c: &mut C,
    owner: &str,
    limit: i64,
    lease_ms: i64,
    now: i64,
) -> Result<Vec<EventRow>, StoreError> {
    let mut rows = c.events(C::DIALECT.claim_events, args![now + lease_ms, owner, now, limit]).await?;
    rows.sort_by_key(|r| r.seq);
    Ok(rows)
}

/// `seq IN (…)` for row ids that come from the database itself (integers, never caller text).
fn seq_list(seqs: &[i64]) -> String {
    seqs.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

pub async fn mark_published<C: Sql>(c: &mut C, seqs: &[i64], now: i64) -> Result<(), StoreError> {
    let sql = format!(
        "UPDATE events SET published_at = $1, claimed_until = NULL, claimed_by = NULL, attempts = attempts + 1 \
         WHERE seq IN ({})",
        seq_list(seqs)
    );
    c.execute(&sql, args![now]).await?;
    Ok(())
}

pub async fn release_events<C: Sql>(c: &mut C, seqs: &[i64], error: &str) -> Result<(), StoreError> {
    let sql = format!(
        "UPDATE events SET claimed_until = NULL, claimed_by = NULL, attempts = attempts + 1, last_error = $1 \
         WHERE seq IN ({})",
        seq_list(seqs)
    );
    c.execute(&sql, args![error]).await?;
    Ok(())
}

/// Column `i` of an integer row.
fn column(row: &[Option<i64>], i: usize) -> Option<i64> {
    row.get(i).copied().flatten()
}

/// The first column of the first row of an integer query.
async fn scalar<C: Sql>(c: &mut C, sql: &str, args: &[Arg<'_>]) -> Result<Option<i64>, StoreError> {
    Ok(c.integers(sql, args).await?.and_then(|row| column(&row, 0)))
}

pub async fn replay<C: Sql>(c: &mut C, selector: &ReplaySelector) -> Result<u64, StoreError> {
    match selector {
        ReplaySelector::Invoice { merchant_id, invoice_no } => {
            c.execute(
                "UPDATE events SET published_at = NULL, claimed_until = NULL, claimed_by = NULL, last_error = NULL \
                 WHERE merchant_id = $1 AND invoice_no = $2 AND published_at IS NOT NULL",
                args![merchant_id, invoice_no],
            )
            .await
        }
        ReplaySelector::Range { from_ms, to_ms, merchant_id } => {
            c.execute(
                "UPDATE events SET published_at = NULL, claimed_until = NULL, claimed_by = NULL, last_error = NULL \
                 WHERE created_at >= $1 AND created_at < $2 AND ($3 IS NULL OR merchant_id = $3) AND published_at IS NOT NULL",
                args![*from_ms, *to_ms, merchant_id],
            )
            .await
        }
    }
}

/// How many published events `selector` names (what a replay would requeue).
pub async fn count_replay<C: Sql>(c: &mut C, selector: &ReplaySelector) -> Result<u64, StoreError> {
    let n = match selector {
        ReplaySelector::Invoice { merchant_id, invoice_no } => {
            scalar(
                c,
                "SELECT COUNT(*) FROM events WHERE merchant_id = $1 AND invoice_no = $2 AND published_at IS NOT NULL",
                args![merchant_id, invoice_no],
            )
            .await?
        }
        ReplaySelector::Range { from_ms, to_ms, merchant_id } => {
            scalar(
                c,
                "SELECT COUNT(*) FROM events WHERE created_at >= $1 AND created_at < $2 AND ($3 IS NULL OR merchant_id = $3) \
                 AND published_at IS NOT NULL",
                args![*from_ms, *to_ms, merchant_id],
            )
            .await?
        }
    };
    Ok(u64::try_from(n.unwrap_or(0)).unwrap_or(0))
}

/// Records a browser return; see `Store::record_frontend_return`.
pub async fn record_frontend_return<C: Sql>(
    c: &mut C,
    ret: &FrontendReturnRecord,
    timing: Timing,
    now: i64,
) -> Result<FrontendReturnResult, StoreError> {
    let existing = lock_invoice(c, &ret.merchant_id, &ret.invoice_no).await?;
    let created = match &existing {
        Some(_) => false,
        None if !ret.may_create => return Ok(FrontendReturnResult::default()),
        None => {
            // Only invoices learned from browser returns within the time they are kept count.
            let untrusted = scalar(
                c,
                "SELECT COUNT(*) FROM invoices WHERE merchant_id = $1 AND trusted = FALSE \
                 AND origin = 'frontend_return' AND created_at >= $2",
                args![&ret.merchant_id, now - ms(ret.untrusted_ttl)],
            )
            .await?
            .unwrap_or(0);
            if untrusted >= ret.max_untrusted {
                return Ok(FrontendReturnResult { limited: true, ..FrontendReturnResult::default() });
            }
            c.execute(
                INSERT_INVOICE_IF_ABSENT,
                args![
                    &ret.merchant_id,
                    &ret.invoice_no,
                    None::<i64>,
                    None::<&str>,
                    None::<i32>,
                    Source::FrontendReturn.as_str(),
                    false,
                    now + ms(timing.payment_window),
                    now + ms(ret.after_return),
                    now,
                ],
            )
            .await?;
            true
        }
    };
    let returns = scalar(
        c,
        "SELECT COUNT(*) FROM history WHERE merchant_id = $1 AND invoice_no = $2 AND kind = 'frontend_return'",
        args![&ret.merchant_id, &ret.invoice_no],
    )
    .await?
    .unwrap_or(0);
    let recorded = returns < ret.max_returns
        && c.integers(
            "INSERT INTO history (merchant_id, invoice_no, kind, dedupe_key, resp_code, resp_desc, raw, received_at) \
             VALUES ($1, $2, 'frontend_return', $3, $4, $5, $6, $7) ON CONFLICT (dedupe_key) DO NOTHING RETURNING id",
            args![&ret.merchant_id, &ret.invoice_no, &ret.dedupe_key, &ret.resp_code, &ret.resp_desc, &ret.raw, now],
        )
        .await?
        .is_some();
    if recorded {
        // Note the customer's return; for a trusted pending invoice, bring its next inquiry forward
        // (the return also starts one at once; this is the fallback if that one cannot run).
        let soon = now + ms(ret.after_return);
        c.execute(
            "UPDATE invoices SET returned_at = COALESCE(returned_at, $3), updated_at = $3, \
             next_inquiry_at = CASE WHEN trusted = TRUE AND status = 'pending' AND needs_review = FALSE \
                 AND (next_inquiry_at IS NULL OR next_inquiry_at > $4) THEN $4 ELSE next_inquiry_at END \
             WHERE merchant_id = $1 AND invoice_no = $2",
            args![&ret.merchant_id, &ret.invoice_no, now, soon],
        )
        .await?;
    }
    let (status, trusted, needs_review) = match (existing, created) {
        (Some(row), _) => (Some(row.status()?), row.trusted, row.needs_review),
        (None, true) => (Some(Status::Pending), false, false),
        (None, false) => (None, false, false),
    };
    Ok(FrontendReturnResult { status, trusted, needs_review, created, recorded, limited: false })
}

/// Leases one invoice for an inquiry now, if it is trusted, pending, not under review and not
/// leased by anyone else; see `Store::lease_invoice`.
pub async fn lease_invoice<C: Sql>(
    c: &mut C,
    merchant_id: &str,
    invoice_no: &str,
    owner: &str,
    lease_ms: i64,
    now: i64,
) -> Result<Option<InvoiceRow>, StoreError> {
    let sql = concat!(
        "UPDATE invoices SET lease_owner = $3, lease_until = $4 WHERE merchant_id = $1 AND invoice_no = $2 ",
        "AND trusted = TRUE AND status = 'pending' AND needs_review = FALSE ",
        "AND (lease_until IS NULL OR lease_until < $5) RETURNING ",
        invoice_columns!()
    );
    Ok(c.invoices(sql, args![merchant_id, invoice_no, owner, now + lease_ms, now]).await?.into_iter().next())
}

/// Gives a leased invoice back without an inquiry, due again at `next_at`.
pub async fn postpone_inquiry<C: Sql>(
    c: &mut C,
    merchant_id: &str,
    invoice_no: &str,
    next_at: i64,
) -> Result<(), StoreError> {
    c.execute(
        "UPDATE invoices SET lease_owner = NULL, lease_until = NULL, next_inquiry_at = $3 \
         WHERE merchant_id = $1 AND invoice_no = $2 AND next_inquiry_at IS NOT NULL",
        args![merchant_id, invoice_no, next_at],
    )
    .await?;
    Ok(())
}

/// Deletes up to `limit` invoices learned only from browser returns and created before `before`,
/// with their history (they never have events); returns how many.
pub async fn prune_untrusted<C: Sql>(c: &mut C, before: i64, limit: i64) -> Result<u64, StoreError> {
    let sql = concat!(
        "DELETE FROM invoices WHERE trusted = FALSE AND created_at < $1 AND (merchant_id, invoice_no) IN (",
        "SELECT merchant_id, invoice_no FROM invoices WHERE trusted = FALSE AND created_at < $1 ",
        "ORDER BY created_at LIMIT $2) RETURNING ",
        invoice_columns!()
    );
    let deleted = c.invoices(sql, args![before, limit]).await?;
    for row in &deleted {
        c.execute(
            "DELETE FROM history WHERE merchant_id = $1 AND invoice_no = $2",
            args![&row.merchant_id, &row.invoice_no],
        )
        .await?;
    }
    Ok(deleted.len() as u64)
}

/// Claims invoices due for an inquiry; see `Store::claim_due_invoices`.
pub async fn claim_due_invoices<C: Sql>(
    c: &mut C,
    owner: &str,
    limit: i64,
    lease_ms: i64,
    trusted: bool,
    now: i64,
) -> Result<Vec<InvoiceRow>, StoreError> {
    let mut rows = c.invoices(C::DIALECT.claim_due_invoices, args![owner, now + lease_ms, now, limit, trusted]).await?;
    rows.sort_by_key(|r| r.next_inquiry_at);
    Ok(rows)
}

/// Records the outcome of one inquiry; see `Store::record_inquiry`.
pub async fn record_inquiry<C: Sql>(
    c: &mut C,
    done: &InquiryDone,
    timing: Timing,
    now: i64,
) -> Result<InquiryRecorded, StoreError> {
    let mut result = None;
    if let Some(obs) = &done.observation {
        result = Some(apply_observation(c, obs, done.raw.as_deref(), None, timing, now).await?);
    }
    let row = lock_invoice(c, &done.merchant_id, &done.invoice_no)
        .await?
        .ok_or_else(|| StoreError::Corrupt("inquired invoice is not stored".into()))?;
    let mut status = row.status()?;
    let mut expired = false;
    // Only a trusted invoice expires: one known only from a browser return stays invisible.
    if done.expire && row.trusted && status == Status::Pending && !row.needs_review {
        let ev = event::build(&EventFacts {
            merchant_id: &row.merchant_id,
            invoice_no: &row.invoice_no,
            event_type: state::EventType::Expired,
            status: Status::Expired,
            previous_status: Some(Status::Pending),
            sequence: row.sequence + 1,
            amount: row.amount().as_ref(),
            observation: None,
            reason: None,
            source: Source::Inquiry.as_str(),
            now_ms: now,
        });
        if insert_event(c, &ev).await? {
            c.execute(
                "UPDATE invoices SET status = 'expired', sequence = sequence + 1, updated_at = $3 \
                 WHERE merchant_id = $1 AND invoice_no = $2",
                args![&row.merchant_id, &row.invoice_no, now],
            )
            .await?;
            status = Status::Expired;
            expired = true;
        }
    }
    // An untrusted invoice gets one inquiry; if that found no payment, it is not inquired again.
    let still_due = status == Status::Pending && !row.needs_review && row.trusted;
    c.execute(
        "UPDATE invoices SET inquiry_attempts = inquiry_attempts + 1, last_inquiry_at = $3, lease_owner = NULL, \
         lease_until = NULL, next_inquiry_at = $4 WHERE merchant_id = $1 AND invoice_no = $2",
        args![&done.merchant_id, &done.invoice_no, now, if still_due { done.next_at } else { None }],
    )
    .await?;
    Ok(InquiryRecorded { status, expired, applied: result })
}

pub async fn reconcile_stats<C: Sql>(c: &mut C, now: i64, give_up_before: i64) -> Result<ReconcileStats, StoreError> {
    // Each statement reads one of the partial indexes on scheduled invoices.
    let scheduled = "FROM invoices WHERE next_inquiry_at IS NOT NULL";
    let due = scalar(c, &format!("SELECT COUNT(*) {scheduled} AND next_inquiry_at <= $1"), args![now]).await?;
    let oldest = scalar(c, &format!("SELECT created_at {scheduled} ORDER BY created_at LIMIT 1"), args![]).await?;
    let unresolved =
        scalar(c, &format!("SELECT COUNT(*) {scheduled} AND created_at < $1"), args![give_up_before]).await?;
    Ok(ReconcileStats { due: due.unwrap_or(0), oldest_created_at_ms: oldest, unresolved: unresolved.unwrap_or(0) })
}

/// The columns of `QuarantineRow`, in its order.
macro_rules! quarantine_columns {
    () => {
        "id, kind, merchant_id, invoice_no, dedupe_key, raw, error, received_at, released_at, release_outcome"
    };
}

/// Puts a refused notification in quarantine (once per dedupe key) and, with `anomaly` and when
/// the invoice is stored, writes its `payment.anomaly` (`unprocessable`) event.
pub async fn quarantine<C: Sql>(
    c: &mut C,
    q: &Quarantined,
    anomaly: bool,
    now: i64,
) -> Result<QuarantineOutcome, StoreError> {
    let inserted = c
        .execute(
            "INSERT INTO quarantine (kind, merchant_id, invoice_no, dedupe_key, raw, error, received_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (dedupe_key) DO NOTHING",
            args![q.kind, &q.merchant_id, &q.invoice_no, &q.dedupe_key, &q.raw, &q.error, q.received_at_ms],
        )
        .await?
        == 1;
    let mut event = false;
    if let (true, true, Some(invoice_no)) = (inserted, anomaly, &q.invoice_no) {
        if let Some(row) = lock_invoice(c, &q.merchant_id, invoice_no).await? {
            let status = row.status()?;
            let ev = event::build(&EventFacts {
                merchant_id: &row.merchant_id,
                invoice_no: &row.invoice_no,
                event_type: state::EventType::Anomaly,
                status,
                previous_status: Some(status),
                sequence: row.sequence + 1,
                amount: row.amount().as_ref(),
                observation: q.observation.as_ref(),
                reason: Some(state::AnomalyReason::Unprocessable),
                source: q.kind,
                now_ms: now,
            });
            if insert_event(c, &ev).await? {
                c.execute(
                    "UPDATE invoices SET sequence = sequence + 1, updated_at = $3 WHERE merchant_id = $1 AND invoice_no = $2",
                    args![&row.merchant_id, &row.invoice_no, now],
                )
                .await?;
                event = true;
            }
        }
    }
    Ok(QuarantineOutcome { new: inserted, anomaly: event })
}

/// Quarantined notifications, oldest first: those still held, or all.
pub async fn select_quarantine<C: Sql>(c: &mut C, include_released: bool) -> Result<Vec<QuarantineRow>, StoreError> {
    c.quarantine(
        concat!(
            "SELECT ",
            quarantine_columns!(),
            " FROM quarantine WHERE ($1 OR released_at IS NULL) ORDER BY id LIMIT 1000"
        ),
        args![include_released],
    )
    .await
}

/// One quarantined notification.
pub async fn select_quarantined<C: Sql>(c: &mut C, id: i64) -> Result<Option<QuarantineRow>, StoreError> {
    let rows =
        c.quarantine(concat!("SELECT ", quarantine_columns!(), " FROM quarantine WHERE id = $1"), args![id]).await?;
    Ok(rows.into_iter().next())
}

/// Marks a quarantined notification released with what releasing it did; `false` if it was not
/// held (unknown or released before).
pub async fn release_quarantined<C: Sql>(c: &mut C, id: i64, outcome: &str, now: i64) -> Result<bool, StoreError> {
    Ok(c.execute(
        "UPDATE quarantine SET released_at = $2, release_outcome = $3 WHERE id = $1 AND released_at IS NULL",
        args![id, now, outcome],
    )
    .await?
        == 1)
}

/// Releases the invoice leases of `owner` (scheduled invoices only: a lease is only taken on them).
pub async fn release_leases<C: Sql>(c: &mut C, owner: &str) -> Result<u64, StoreError> {
    c.execute(
        "UPDATE invoices SET lease_owner = NULL, lease_until = NULL \
         WHERE next_inquiry_at IS NOT NULL AND lease_owner = $1",
        args![owner],
    )
    .await
}
