//! The outbox: claiming events for a relay, marking them published or giving them back, and
//! replays.

use crate::store::ops::scalar;
use crate::store::sql::{args, Sql};
use crate::store::{EventRow, ReplaySelector, StoreError};

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

/// Marks `seqs` published (none: nothing to mark), then claims the next batch; see
/// `Store::mark_and_claim`.
pub async fn mark_and_claim<C: Sql>(
    c: &mut C,
    seqs: &[i64],
    owner: &str,
    limit: i64,
    lease_ms: i64,
    now: i64,
) -> Result<Vec<EventRow>, StoreError> {
    if !seqs.is_empty() {
        mark_published(c, seqs, now).await?;
    }
    claim_events(c, owner, limit, lease_ms, now).await
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
