//! Retention: deleting settled invoices, with their history and events, in bounded batches.
//! Never a pending invoice, one under review, one with an unpublished event, or one a held
//! quarantined notification refers to (when the store has a quarantine).

use crate::store::ops::invoice_columns_sql;
use crate::store::sql::{args, Sql};
use crate::store::StoreError;

/// What one prune batch deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pruned {
    pub invoices: u64,
    pub history: u64,
    pub events: u64,
}

impl std::ops::AddAssign for Pruned {
    fn add_assign(&mut self, o: Pruned) {
        self.invoices += o.invoices;
        self.history += o.history;
        self.events += o.events;
    }
}

/// The invoices that may go (`i`): settled, trusted, not under review, unchanged since `$1`,
/// every event published, and no held quarantined notification for them.
async fn prunable<C: Sql>(c: &mut C) -> Result<String, StoreError> {
    let quarantine = c.integers(C::DIALECT.quarantine_exists, args![]).await?;
    let has_quarantine = quarantine.and_then(|r| r.first().copied().flatten()).unwrap_or(0) > 0;
    let guard = if has_quarantine {
        " AND NOT EXISTS (SELECT 1 FROM quarantine q WHERE q.merchant_id = i.merchant_id \
         AND (q.invoice_no IS NULL OR q.invoice_no = i.invoice_no) AND q.released_at IS NULL)"
    } else {
        ""
    };
    Ok(format!(
        "FROM invoices i WHERE status <> 'pending' AND trusted = TRUE AND needs_review = FALSE AND updated_at < $1 \
         AND NOT EXISTS (SELECT 1 FROM events e WHERE e.merchant_id = i.merchant_id \
         AND e.invoice_no = i.invoice_no AND e.published_at IS NULL){guard}"
    ))
}

/// How many invoices a prune with this cut-off would delete now.
pub async fn count_prunable<C: Sql>(c: &mut C, before: i64) -> Result<u64, StoreError> {
    let sql = format!("SELECT COUNT(*) {}", prunable(c).await?);
    let n = c.integers(&sql, args![before]).await?.and_then(|r| r.first().copied().flatten()).unwrap_or(0);
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Deletes up to `limit` prunable invoices last changed before `before`, oldest first, with
/// their history and events. Runs in one transaction; on PostgreSQL rows another transaction
/// holds are skipped (and a change to one makes it recent, so it stays).
pub async fn prune_settled<C: Sql>(c: &mut C, before: i64, limit: i64) -> Result<Pruned, StoreError> {
    let sql = format!(
        "DELETE FROM invoices WHERE (merchant_id, invoice_no) IN (SELECT merchant_id, invoice_no {} \
         ORDER BY updated_at LIMIT $2{}) RETURNING {}",
        prunable(c).await?,
        C::DIALECT.skip_locked,
        invoice_columns_sql!()
    );
    let deleted = c.invoices(&sql, args![before, limit]).await?;
    let mut pruned = Pruned { invoices: deleted.len() as u64, ..Pruned::default() };
    for row in &deleted {
        let key = args![&row.merchant_id, &row.invoice_no];
        pruned.events += c.execute("DELETE FROM events WHERE merchant_id = $1 AND invoice_no = $2", key).await?;
        pruned.history += c.execute("DELETE FROM history WHERE merchant_id = $1 AND invoice_no = $2", key).await?;
    }
    Ok(pruned)
}
