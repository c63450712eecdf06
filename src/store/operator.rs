//! What operators look at: invoice and outbox lists (keyset pages, newest first), one event
//! replayed, and the gauges scrapes read. Written once against [`Sql`] like `ops.rs`.

use crate::store::ops::{event_columns_sql, invoice_columns_sql};
use crate::store::sql::{args, Arg, Sql};
use crate::store::{EventRow, InvoiceRow, StoreError};

/// Where a page of invoices starts: the last item of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceCursor {
    pub created_at: i64,
    pub merchant_id: String,
    pub invoice_no: String,
}

/// Which invoices `GET /v1/invoices` lists.
#[derive(Debug, Clone, Default)]
pub struct InvoiceFilter {
    pub merchant_id: Option<String>,
    pub status: Option<String>,
    pub needs_review: Option<bool>,
    /// Created at or after (Unix ms).
    pub created_from: Option<i64>,
    /// Created before (Unix ms).
    pub created_to: Option<i64>,
    /// Only invoices after this one in the listing order.
    pub after: Option<InvoiceCursor>,
    pub limit: i64,
}

/// Which outbox rows `GET /v1/events` lists.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub merchant_id: Option<String>,
    pub invoice_no: Option<String>,
    pub published: Option<bool>,
    /// Only rows with a smaller outbox sequence (the previous page's last).
    pub before_seq: Option<i64>,
    pub limit: i64,
}

/// Gauge values kept in the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Trusted invoices per state.
    pub invoices: Vec<(String, i64)>,
    /// Unpublished events.
    pub outbox_backlog: i64,
    /// Unpublished events whose last attempt failed (returned, nacked, timed out).
    pub outbox_parked: i64,
    /// Creation time of the first unpublished event in outbox order.
    pub oldest_unpublished_at: Option<i64>,
}

/// Folds at most 100,000 appended deltas into `gauge_counts` in one statement (PostgreSQL).
pub const FOLD_GAUGES_POSTGRES: &str = "WITH moved AS (DELETE FROM gauge_deltas WHERE id IN \
    (SELECT id FROM gauge_deltas ORDER BY id LIMIT 100000) RETURNING name, delta) \
    INSERT INTO gauge_counts (name, n) SELECT name, SUM(delta) FROM moved GROUP BY name ORDER BY name \
    ON CONFLICT (name) DO UPDATE SET n = gauge_counts.n + excluded.n";

/// Builds `WHERE …` with numbered placeholders.
struct Conditions<'a> {
    sql: Vec<String>,
    args: Vec<Arg<'a>>,
}

impl<'a> Conditions<'a> {
    fn new() -> Self {
        Conditions { sql: Vec::new(), args: Vec::new() }
    }

    /// Adds `template` with each `?` replaced by the next placeholder, binding `values` in order.
    fn push(&mut self, template: &str, values: &[Arg<'a>]) {
        let mut text = String::new();
        let mut values = values.iter();
        for ch in template.chars() {
            if ch == '?' {
                self.args.push(*values.next().expect("one value per placeholder"));
                text.push_str(&format!("${}", self.args.len()));
            } else {
                text.push(ch);
            }
        }
        self.sql.push(text);
    }

    fn clause(&self) -> String {
        if self.sql.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.sql.join(" AND "))
        }
    }
}

/// A page of invoices, newest first; see `Store::list_invoices`.
pub async fn list_invoices<C: Sql>(c: &mut C, f: &InvoiceFilter) -> Result<Vec<InvoiceRow>, StoreError> {
    let mut w = Conditions::new();
    if let Some(m) = &f.merchant_id {
        w.push("merchant_id = ?", &[Arg::from(m)]);
    }
    if let Some(s) = &f.status {
        w.push("status = ?", &[Arg::from(s)]);
    }
    if let Some(r) = f.needs_review {
        w.push("needs_review = ?", &[Arg::from(r)]);
    }
    if let Some(t) = f.created_from {
        w.push("created_at >= ?", &[Arg::from(t)]);
    }
    if let Some(t) = f.created_to {
        w.push("created_at < ?", &[Arg::from(t)]);
    }
    if let Some(k) = &f.after {
        w.push(
            "(created_at, merchant_id, invoice_no) < (?, ?, ?)",
            &[Arg::from(k.created_at), Arg::from(&k.merchant_id), Arg::from(&k.invoice_no)],
        );
    }
    let mut args = w.args.clone();
    args.push(Arg::from(f.limit));
    let sql = format!(
        "SELECT {} FROM invoices{} ORDER BY created_at DESC, merchant_id DESC, invoice_no DESC LIMIT ${}",
        invoice_columns_sql!(),
        w.clause(),
        args.len()
    );
    c.invoices(&sql, &args).await
}

/// A page of outbox rows, newest first; see `Store::list_events`.
pub async fn list_events<C: Sql>(c: &mut C, f: &EventFilter) -> Result<Vec<EventRow>, StoreError> {
    let mut w = Conditions::new();
    if let Some(m) = &f.merchant_id {
        w.push("merchant_id = ?", &[Arg::from(m)]);
    }
    if let Some(i) = &f.invoice_no {
        w.push("invoice_no = ?", &[Arg::from(i)]);
    }
    match f.published {
        Some(true) => w.push("published_at IS NOT NULL", &[]),
        Some(false) => w.push("published_at IS NULL", &[]),
        None => {}
    }
    if let Some(seq) = f.before_seq {
        w.push("seq < ?", &[Arg::from(seq)]);
    }
    let mut args = w.args.clone();
    args.push(Arg::from(f.limit));
    let sql =
        format!("SELECT {} FROM events{} ORDER BY seq DESC LIMIT ${}", event_columns_sql!(), w.clause(), args.len());
    c.events(&sql, &args).await
}

/// Marks one published event unpublished so the relay sends it again; `None` when no event has
/// this id, else whether it was requeued (an unpublished one is already on its way).
pub async fn replay_event<C: Sql>(c: &mut C, event_id: &str) -> Result<Option<bool>, StoreError> {
    let requeued = c
        .execute(
            "UPDATE events SET published_at = NULL, claimed_until = NULL, claimed_by = NULL, last_error = NULL \
             WHERE event_id = $1 AND published_at IS NOT NULL",
            args![event_id],
        )
        .await?;
    if requeued == 1 {
        return Ok(Some(true));
    }
    let exists = c.integers("SELECT seq FROM events WHERE event_id = $1", args![event_id]).await?.is_some();
    Ok(exists.then_some(false))
}

/// Reads the gauges (folding appended deltas first where writers append them).
pub async fn gauges<C: Sql>(c: &mut C) -> Result<Gauges, StoreError> {
    if let Some(fold) = C::DIALECT.fold_gauges {
        c.execute(fold, args![]).await?;
    }
    let rows = c
        .counts(
            "SELECT name, CAST(SUM(n) AS BIGINT) FROM (SELECT name, n FROM gauge_counts \
             UNION ALL SELECT name, delta AS n FROM gauge_deltas) g GROUP BY name",
            args![],
        )
        .await?;
    let mut g = Gauges::default();
    for (name, n) in rows {
        match name.as_str() {
            "outbox:backlog" => g.outbox_backlog = n,
            "outbox:parked" => g.outbox_parked = n,
            other => {
                if let Some(status) = other.strip_prefix("invoices:") {
                    g.invoices.push((status.to_string(), n));
                }
            }
        }
    }
    let oldest =
        c.integers("SELECT created_at FROM events WHERE published_at IS NULL ORDER BY seq LIMIT 1", args![]).await?;
    g.oldest_unpublished_at = oldest.and_then(|r| r.first().copied().flatten());
    Ok(g)
}
