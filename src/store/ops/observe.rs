//! Recording what the gateway says: one observation (load → plan → write) and one inquiry's
//! answer with the next schedule.

use crate::clock::ms;
use crate::domain::event::{self, EventFacts};
use crate::domain::money::Money;
use crate::domain::observation::{Observation, Source};
use crate::domain::origin::Origin;
use crate::domain::plan::{self, Loaded};
use crate::domain::state::{self, Status};
use crate::store::ops::statements::{INSERT_EVENT, INSERT_HISTORY, UPSERT_INVOICE_LOCKED};
use crate::store::sql::{args, Sql};
use crate::store::{InquiryDone, InquiryRecorded, InvoiceRow, RecordResult, StoreError, Timing};

/// Records `obs` and applies it; see `Store::record_observation`. Loads (creating the invoice if
/// this is the first news of it), asks [`plan`] what to do, and writes what it says.
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
                amount.map(Money::minor),
                amount.map(|a| a.currency().code()),
                amount.map(|a| a.exponent() as i32),
                Origin::from(obs.source).as_str(),
                obs.source != Source::FrontendReturn,
                now + ms(timing.payment_window),
                now + ms(timing.grace),
                now,
            ],
        )
        .await?;
    let row =
        rows.into_iter().next().ok_or_else(|| StoreError::Corrupt("the invoice upsert returned no row".into()))?;
    let plan = plan::plan(loaded_invoice(&row)?, obs, ms(timing.grace), now);

    let normalized = serde_json::to_string(obs).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let outcome = plan.outcome.to_string();
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
                outcome.as_str(),
            ],
        )
        .await?;
    let Some(history_id) = inserted.and_then(|r| r.first().copied().flatten()) else {
        // Stored before: nothing changes (the upsert above touched no column).
        return Ok(RecordResult::duplicate(row.status));
    };

    let written = match &plan.event {
        Some(ev) => insert_event(c, ev).await?,
        None => false,
    };
    let settled = plan.settle(written);
    let kept = plan.amount.as_ref();
    c.execute(
        "UPDATE invoices SET status = $3, sequence = $4, resp_code = $5, resp_desc = $6, tran_ref = COALESCE($7, tran_ref), \
         notified_at = $8, needs_review = $9, next_inquiry_at = $10, trusted = $11, amount_minor = $12, currency = $13, \
         exponent = $14, updated_at = $15 WHERE merchant_id = $1 AND invoice_no = $2",
        args![
            &obs.merchant_id,
            &obs.invoice_no,
            settled.status.as_str(),
            settled.sequence,
            &obs.resp_code,
            &obs.resp_desc,
            &obs.tran_ref,
            settled.notified_at,
            settled.needs_review,
            settled.next_inquiry_at,
            plan.trusted,
            kept.map(Money::minor),
            kept.map(|a| a.currency().code()),
            kept.map(|a| a.exponent() as i32),
            now,
        ],
    )
    .await?;

    if let Some(corrected) = settled.corrected_outcome {
        let outcome = corrected.to_string();
        c.execute("UPDATE history SET outcome = $1 WHERE id = $2", args![outcome.as_str(), history_id]).await?;
    }
    Ok(RecordResult::applied(&plan, &settled))
}

/// The invoice as the plan sees it.
pub(crate) fn loaded_invoice(row: &InvoiceRow) -> Result<Loaded, StoreError> {
    Ok(Loaded {
        status: row.status,
        trusted: row.trusted,
        amount: row.amount()?,
        sequence: row.sequence,
        needs_review: row.needs_review,
        next_inquiry_at: row.next_inquiry_at,
        notified_at: row.notified_at,
    })
}

pub(crate) async fn lock_invoice<C: Sql>(
    c: &mut C,
    merchant_id: &str,
    invoice_no: &str,
) -> Result<Option<InvoiceRow>, StoreError> {
    Ok(c.invoices(C::DIALECT.lock_invoice, args![merchant_id, invoice_no]).await?.into_iter().next())
}

/// Writes an event unless one with the same id exists; `true` when written.
pub(crate) async fn insert_event<C: Sql>(c: &mut C, ev: &event::NewEvent) -> Result<bool, StoreError> {
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
    let mut status = row.status;
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
            amount: row.amount()?.as_ref(),
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
