//! Invoices: registration, reads, browser returns, leases and the inquiry schedule.

use crate::clock::ms;
use crate::domain::origin::Origin;
use crate::domain::state::Status;
use crate::store::ops::observe::lock_invoice;
use crate::store::ops::scalar;
use crate::store::ops::statements::{event_columns_sql, invoice_columns_sql, INSERT_INVOICE_IF_ABSENT, SELECT_INVOICE};
use crate::store::sql::{args, Sql};
use crate::store::{
    EventRow, FrontendReturnRecord, FrontendReturnResult, HistoryRow, InvoiceRow, NewInvoice, ReconcileStats,
    StoreError, Timing,
};

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
    let exponent = Some(inv.amount.exponent() as i32);
    let currency = inv.amount.currency().code();
    let created = c
        .execute(
            INSERT_INVOICE_IF_ABSENT,
            args![
                &inv.merchant_id,
                &inv.invoice_no,
                inv.amount.minor(),
                currency,
                exponent,
                inv.origin.as_str(),
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
                inv.origin.as_str(),
                inv.amount.minor(),
                currency,
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
            event_columns_sql!(),
            " FROM events WHERE merchant_id = $1 AND invoice_no = $2 ORDER BY sequence"
        ),
        args![merchant_id, invoice_no],
    )
    .await
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
                    Origin::FrontendReturn.as_str(),
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
        (Some(row), _) => (Some(row.status), row.trusted, row.needs_review),
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
        invoice_columns_sql!()
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
        invoice_columns_sql!()
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

pub async fn reconcile_stats<C: Sql>(c: &mut C, now: i64, give_up_before: i64) -> Result<ReconcileStats, StoreError> {
    // Each statement reads one of the partial indexes on scheduled invoices.
    let scheduled = "FROM invoices WHERE next_inquiry_at IS NOT NULL";
    let due = scalar(c, &format!("SELECT COUNT(*) {scheduled} AND next_inquiry_at <= $1"), args![now]).await?;
    let oldest = scalar(c, &format!("SELECT created_at {scheduled} ORDER BY created_at LIMIT 1"), args![]).await?;
    let unresolved =
        scalar(c, &format!("SELECT COUNT(*) {scheduled} AND created_at < $1"), args![give_up_before]).await?;
    Ok(ReconcileStats { due: due.unwrap_or(0), oldest_created_at_ms: oldest, unresolved: unresolved.unwrap_or(0) })
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
