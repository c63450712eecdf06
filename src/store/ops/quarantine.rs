//! The quarantine: verified notifications the store refused for good, kept for an operator.

use crate::domain::event::{self, EventFacts};
use crate::domain::state;
use crate::store::ops::observe::{insert_event, lock_invoice};
use crate::store::sql::{args, Sql};
use crate::store::{QuarantineOutcome, QuarantineRow, Quarantined, StoreError};

/// The columns of `QuarantineRow`, in its order.
macro_rules! quarantine_columns_sql {
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
            let status = row.status;
            let ev = event::build(&EventFacts {
                merchant_id: &row.merchant_id,
                invoice_no: &row.invoice_no,
                event_type: state::EventType::Anomaly,
                status,
                previous_status: Some(status),
                sequence: row.sequence + 1,
                amount: row.amount()?.as_ref(),
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
            quarantine_columns_sql!(),
            " FROM quarantine WHERE ($1 OR released_at IS NULL) ORDER BY id LIMIT 1000"
        ),
        args![include_released],
    )
    .await
}

/// One quarantined notification.
pub async fn select_quarantined<C: Sql>(c: &mut C, id: i64) -> Result<Option<QuarantineRow>, StoreError> {
    let rows = c
        .quarantine(concat!("SELECT ", quarantine_columns_sql!(), " FROM quarantine WHERE id = $1"), args![id])
        .await?;
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
