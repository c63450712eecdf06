// Store operations written once against `Db`/`Conn` and compiled into both backend modules with
// `include!`. The including module defines `Backend` (its store type, with `write` for one
// transaction and `read` for a pooled connection), `Db`, `Conn`, `SELECT_INVOICE_LOCKED` and
// `CLAIM_EVENTS`, `CLAIM_DUE_INVOICES` (the only dialect differences).

use crate::domain::event::{self, EventFacts};
use crate::domain::observation::{Observation, Source};
use crate::domain::state::{self, Current, Decision, Status};
use crate::store::{
    ms, EventRow, FrontendReturnRecord, FrontendReturnResult, HistoryRow, InquiryDone, InquiryRecorded, InvoiceRow, NewInvoice,
    OutboxStats, ReconcileStats, RecordResult, ReplaySelector, StoreError, Timing,
};

const INVOICE_COLUMNS: &str = "merchant_id, invoice_no, status, amount_minor, currency, exponent, origin, trusted, sequence, \
    resp_code, resp_desc, tran_ref, notified_at, returned_at, needs_review, expires_at, next_inquiry_at, \
    inquiry_attempts, last_inquiry_at, created_at, updated_at";

const INSERT_HISTORY: &str = "INSERT INTO history (merchant_id, invoice_no, kind, dedupe_key, resp_code, resp_desc, raw, normalized, \
    received_at, outcome) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (dedupe_key) DO NOTHING RETURNING id";

const INSERT_INVOICE_IF_ABSENT: &str = "INSERT INTO invoices (merchant_id, invoice_no, status, amount_minor, currency, exponent, origin, trusted, \
    sequence, expires_at, next_inquiry_at, created_at, updated_at) \
    VALUES ($1, $2, 'pending', $3, $4, $5, $6, $7, 0, $8, $9, $10, $10) ON CONFLICT (merchant_id, invoice_no) DO NOTHING";

/// Like `INSERT_INVOICE_IF_ABSENT`, but also locks an existing row (a no-op update) and returns
/// the invoice either way.
const UPSERT_INVOICE_LOCKED: &str = "INSERT INTO invoices (merchant_id, invoice_no, status, amount_minor, currency, exponent, origin, trusted, \
    sequence, expires_at, next_inquiry_at, created_at, updated_at) \
    VALUES ($1, $2, 'pending', $3, $4, $5, $6, $7, 0, $8, $9, $10, $10) \
    ON CONFLICT (merchant_id, invoice_no) DO UPDATE SET merchant_id = excluded.merchant_id \
    RETURNING merchant_id, invoice_no, status, amount_minor, currency, exponent, origin, trusted, sequence, \
    resp_code, resp_desc, tran_ref, notified_at, returned_at, needs_review, expires_at, next_inquiry_at, \
    inquiry_attempts, last_inquiry_at, created_at, updated_at";

const INSERT_EVENT: &str = "INSERT INTO events (event_id, merchant_id, invoice_no, sequence, event_type, body, created_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (event_id) DO NOTHING";

/// Records `obs` and applies it; see `Store::record_observation`.
async fn apply_observation(
    conn: &mut Conn,
    obs: &Observation,
    raw: Option<&str>,
    dedupe_key: Option<&str>,
    timing: Timing,
    now: i64,
) -> Result<RecordResult, StoreError> {
    // Create the invoice if this observation is the first news of it, and lock it, in one
    // statement: concurrent observations of one invoice apply one after the other.
    let amount = obs.amount.as_ref();
    let row = sqlx::query_as::<_, InvoiceRow>(UPSERT_INVOICE_LOCKED)
        .bind(&obs.merchant_id)
        .bind(&obs.invoice_no)
        .bind(amount.map(|a| a.minor))
        .bind(amount.map(|a| a.currency.as_str()))
        .bind(amount.map(|a| a.exponent as i32))
        .bind(obs.source.as_str())
        .bind(obs.source != Source::FrontendReturn)
        .bind(now + ms(timing.payment_window))
        .bind(now + ms(timing.grace))
        .bind(now)
        .fetch_one(&mut *conn)
        .await?;
    let before = row.status()?;
    let registered = row.amount();
    let current = Current { status: before, amount: registered.clone(), sequence: row.sequence };
    let decision = state::decide(Some(&current), obs.class(), amount);

    let predicted = match decision {
        Decision::Transition { to } => format!("applied:{}", to.as_str()),
        Decision::Anomaly(r) => format!("anomaly:{}", r.as_str()),
        Decision::NoChange => "no_change".to_string(),
    };
    let normalized = serde_json::to_string(obs).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let history_id: Option<i64> = sqlx::query_scalar(INSERT_HISTORY)
        .bind(&obs.merchant_id)
        .bind(&obs.invoice_no)
        .bind(obs.source.as_str())
        .bind(dedupe_key)
        .bind(&obs.resp_code)
        .bind(&obs.resp_desc)
        .bind(raw)
        .bind(&normalized)
        .bind(now)
        .bind(&predicted)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(history_id) = history_id else {
        // Stored before: nothing changes (the upsert above touched no column).
        return Ok(RecordResult { duplicate: true, decision: Decision::NoChange, status: before, events: 0, anomaly: None });
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
        if insert_event(conn, &ev).await? {
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
    let trusted = row.trusted || obs.source != Source::FrontendReturn;
    let (amount_minor, currency, exponent) = match (&registered, amount) {
        (Some(r), _) => (Some(r.minor), Some(r.currency.clone()), Some(r.exponent as i32)),
        (None, Some(a)) => (Some(a.minor), Some(a.currency.clone()), Some(a.exponent as i32)),
        (None, None) => (None, None, None),
    };
    sqlx::query(
        "UPDATE invoices SET status = $3, sequence = $4, resp_code = $5, resp_desc = $6, tran_ref = COALESCE($7, tran_ref), \
         notified_at = $8, needs_review = $9, next_inquiry_at = $10, trusted = $11, amount_minor = $12, currency = $13, \
         exponent = $14, updated_at = $15 WHERE merchant_id = $1 AND invoice_no = $2",
    )
    .bind(&obs.merchant_id)
    .bind(&obs.invoice_no)
    .bind(status.as_str())
    .bind(sequence)
    .bind(&obs.resp_code)
    .bind(&obs.resp_desc)
    .bind(&obs.tran_ref)
    .bind(notified_at)
    .bind(needs_review)
    .bind(next_inquiry_at)
    .bind(trusted)
    .bind(amount_minor)
    .bind(currency)
    .bind(exponent)
    .bind(now)
    .execute(&mut *conn)
    .await?;

    if let (Decision::Anomaly(r), 0) = (decision, events) {
        // The same anomaly was recorded before: say so in this observation's history.
        sqlx::query("UPDATE history SET outcome = $1 WHERE id = $2")
            .bind(format!("anomaly_repeated:{}", r.as_str()))
            .bind(history_id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(RecordResult { duplicate: false, decision, status, events, anomaly })
}

async fn lock_invoice(conn: &mut Conn, merchant_id: &str, invoice_no: &str) -> Result<Option<InvoiceRow>, StoreError> {
    Ok(sqlx::query_as::<_, InvoiceRow>(SELECT_INVOICE_LOCKED)
        .bind(merchant_id)
        .bind(invoice_no)
        .fetch_optional(&mut *conn)
        .await?)
}

/// Writes an event unless one with the same id exists; `true` when written.
async fn insert_event(conn: &mut Conn, ev: &event::NewEvent) -> Result<bool, StoreError> {
    let done = sqlx::query(INSERT_EVENT)
        .bind(ev.id.to_string())
        .bind(&ev.merchant_id)
        .bind(&ev.invoice_no)
        .bind(ev.sequence)
        .bind(ev.event_type.as_str())
        .bind(&ev.body)
        .bind(ev.created_at_ms)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Registers an invoice; an invoice known only from an untrusted browser return is upgraded.
async fn register_invoice(conn: &mut Conn, inv: &NewInvoice, timing: Timing, now: i64) -> Result<bool, StoreError> {
    let expires_at = inv.expires_at_ms.unwrap_or(now + ms(timing.payment_window));
    let created = sqlx::query(INSERT_INVOICE_IF_ABSENT)
        .bind(&inv.merchant_id)
        .bind(&inv.invoice_no)
        .bind(inv.amount.minor)
        .bind(&inv.amount.currency)
        .bind(inv.amount.exponent as i32)
        .bind(inv.origin)
        .bind(true)
        .bind(expires_at)
        .bind(now + ms(timing.grace))
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected()
        == 1;
    if !created {
        sqlx::query(
            "UPDATE invoices SET trusted = TRUE, origin = $3, amount_minor = $4, currency = $5, exponent = $6, \
             expires_at = $7, updated_at = $8 WHERE merchant_id = $1 AND invoice_no = $2 AND trusted = FALSE",
        )
        .bind(&inv.merchant_id)
        .bind(&inv.invoice_no)
        .bind(inv.origin)
        .bind(inv.amount.minor)
        .bind(&inv.amount.currency)
        .bind(inv.amount.exponent as i32)
        .bind(expires_at)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(created)
}

async fn select_invoice(conn: &mut Conn, merchant_id: &str, invoice_no: &str) -> Result<Option<InvoiceRow>, StoreError> {
    let sql = format!("SELECT {INVOICE_COLUMNS} FROM invoices WHERE merchant_id = $1 AND invoice_no = $2");
    Ok(sqlx::query_as::<_, InvoiceRow>(&sql)
        .bind(merchant_id)
        .bind(invoice_no)
        .fetch_optional(&mut *conn)
        .await?)
}

async fn select_history(conn: &mut Conn, merchant_id: &str, invoice_no: &str) -> Result<Vec<HistoryRow>, StoreError> {
    Ok(sqlx::query_as::<_, HistoryRow>(
        "SELECT id, kind, resp_code, resp_desc, outcome, raw, normalized, received_at FROM history \
         WHERE merchant_id = $1 AND invoice_no = $2 ORDER BY id",
    )
    .bind(merchant_id)
    .bind(invoice_no)
    .fetch_all(&mut *conn)
    .await?)
}

const EVENT_COLUMNS: &str =
    "seq, event_id, merchant_id, invoice_no, sequence, event_type, body, created_at, published_at, attempts";

async fn select_events(conn: &mut Conn, merchant_id: &str, invoice_no: &str) -> Result<Vec<EventRow>, StoreError> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE merchant_id = $1 AND invoice_no = $2 ORDER BY sequence");
    Ok(sqlx::query_as::<_, EventRow>(&sql)
        .bind(merchant_id)
        .bind(invoice_no)
        .fetch_all(&mut *conn)
        .await?)
}

async fn claim_events(conn: &mut Conn, owner: &str, limit: i64, lease_ms: i64, now: i64) -> Result<Vec<EventRow>, StoreError> {
    let mut rows = sqlx::query_as::<_, EventRow>(CLAIM_EVENTS)
        .bind(now + lease_ms)
        .bind(owner)
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    rows.sort_by_key(|r| r.seq);
    Ok(rows)
}

/// `seq IN (…)` for row ids that come from the database itself (integers, never caller text).
fn seq_list(seqs: &[i64]) -> String {
    seqs.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

async fn mark_published(conn: &mut Conn, seqs: &[i64], now: i64) -> Result<(), StoreError> {
    let sql = format!(
        "UPDATE events SET published_at = $1, claimed_until = NULL, claimed_by = NULL, attempts = attempts + 1 \
         WHERE seq IN ({})",
        seq_list(seqs)
    );
    sqlx::query(&sql).bind(now).execute(&mut *conn).await?;
    Ok(())
}

async fn release_events(conn: &mut Conn, seqs: &[i64], error: &str) -> Result<(), StoreError> {
    let sql = format!(
        "UPDATE events SET claimed_until = NULL, claimed_by = NULL, attempts = attempts + 1, last_error = $1 \
         WHERE seq IN ({})",
        seq_list(seqs)
    );
    sqlx::query(&sql).bind(error).execute(&mut *conn).await?;
    Ok(())
}

async fn outbox_stats(conn: &mut Conn) -> Result<OutboxStats, StoreError> {
    let (backlog, oldest): (i64, Option<i64>) =
        sqlx::query_as("SELECT COUNT(*), MIN(created_at) FROM events WHERE published_at IS NULL")
            .fetch_one(&mut *conn)
            .await?;
    Ok(OutboxStats { backlog, oldest_created_at_ms: oldest })
}

async fn replay(conn: &mut Conn, selector: &ReplaySelector) -> Result<u64, StoreError> {
    let done = match selector {
        ReplaySelector::Invoice { merchant_id, invoice_no } => {
            sqlx::query(
                "UPDATE events SET published_at = NULL, claimed_until = NULL, claimed_by = NULL \
                 WHERE merchant_id = $1 AND invoice_no = $2 AND published_at IS NOT NULL",
            )
            .bind(merchant_id)
            .bind(invoice_no)
            .execute(&mut *conn)
            .await?
        }
        ReplaySelector::Range { from_ms, to_ms, merchant_id } => {
            sqlx::query(
                "UPDATE events SET published_at = NULL, claimed_until = NULL, claimed_by = NULL \
                 WHERE created_at >= $1 AND created_at < $2 AND ($3 IS NULL OR merchant_id = $3) AND published_at IS NOT NULL",
            )
            .bind(from_ms)
            .bind(to_ms)
            .bind(merchant_id.as_deref())
            .execute(&mut *conn)
            .await?
        }
    };
    Ok(done.rows_affected())
}

async fn count_by_status(conn: &mut Conn) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(sqlx::query_as("SELECT status, COUNT(*) FROM invoices GROUP BY status")
        .fetch_all(&mut *conn)
        .await?)
}

/// Records a browser return; see `Store::record_frontend_return`.
async fn record_frontend_return(
    conn: &mut Conn,
    ret: &FrontendReturnRecord,
    timing: Timing,
    now: i64,
) -> Result<FrontendReturnResult, StoreError> {
    let existing = lock_invoice(conn, &ret.merchant_id, &ret.invoice_no).await?;
    let created = match &existing {
        Some(_) => false,
        None => {
            let (untrusted,): (i64,) =
                sqlx::query_as("SELECT COUNT(*) FROM invoices WHERE merchant_id = $1 AND trusted = FALSE")
                    .bind(&ret.merchant_id)
                    .fetch_one(&mut *conn)
                    .await?;
            if untrusted >= ret.max_untrusted {
                return Ok(FrontendReturnResult { status: None, created: false, limited: true });
            }
            sqlx::query(INSERT_INVOICE_IF_ABSENT)
                .bind(&ret.merchant_id)
                .bind(&ret.invoice_no)
                .bind(None::<i64>)
                .bind(None::<String>)
                .bind(None::<i32>)
                .bind("frontend_return")
                .bind(false)
                .bind(now + ms(timing.payment_window))
                .bind(now + ms(ret.after_return))
                .bind(now)
                .execute(&mut *conn)
                .await?;
            true
        }
    };
    sqlx::query(
        "INSERT INTO history (merchant_id, invoice_no, kind, resp_code, resp_desc, raw, received_at) \
         VALUES ($1, $2, 'frontend_return', $3, $4, $5, $6)",
    )
    .bind(&ret.merchant_id)
    .bind(&ret.invoice_no)
    .bind(&ret.resp_code)
    .bind(&ret.resp_desc)
    .bind(&ret.raw)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    // Bring the next inquiry forward unless the invoice is settled or under review.
    let soon = now + ms(ret.after_return);
    sqlx::query(
        "UPDATE invoices SET returned_at = COALESCE(returned_at, $3), updated_at = $3, \
         next_inquiry_at = CASE WHEN status = 'pending' AND needs_review = FALSE \
             THEN (CASE WHEN next_inquiry_at IS NULL OR next_inquiry_at > $4 THEN $4 ELSE next_inquiry_at END) \
             ELSE NULL END \
         WHERE merchant_id = $1 AND invoice_no = $2",
    )
    .bind(&ret.merchant_id)
    .bind(&ret.invoice_no)
    .bind(now)
    .bind(soon)
    .execute(&mut *conn)
    .await?;
    let row = lock_invoice(conn, &ret.merchant_id, &ret.invoice_no).await?;
    let status = match row {
        Some(r) => Some(r.status()?),
        None => None,
    };
    Ok(FrontendReturnResult { status, created, limited: false })
}

/// Claims invoices due for an inquiry; see `Store::claim_due_invoices`.
async fn claim_due_invoices(conn: &mut Conn, owner: &str, limit: i64, lease_ms: i64, now: i64) -> Result<Vec<InvoiceRow>, StoreError> {
    let mut rows = sqlx::query_as::<_, InvoiceRow>(CLAIM_DUE_INVOICES)
        .bind(owner)
        .bind(now + lease_ms)
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    rows.sort_by_key(|r| r.next_inquiry_at);
    Ok(rows)
}

/// Records the outcome of one inquiry; see `Store::record_inquiry`.
async fn record_inquiry(conn: &mut Conn, done: &InquiryDone, timing: Timing, now: i64) -> Result<InquiryRecorded, StoreError> {
    let mut result = None;
    if let Some(obs) = &done.observation {
        result = Some(apply_observation(conn, obs, done.raw.as_deref(), None, timing, now).await?);
    }
    let row = lock_invoice(conn, &done.merchant_id, &done.invoice_no)
        .await?
        .ok_or_else(|| StoreError::Corrupt("inquired invoice is not stored".into()))?;
    let mut status = row.status()?;
    let mut expired = false;
    if done.expire && status == Status::Pending && !row.needs_review {
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
        if insert_event(conn, &ev).await? {
            sqlx::query(
                "UPDATE invoices SET status = 'expired', sequence = sequence + 1, updated_at = $3 \
                 WHERE merchant_id = $1 AND invoice_no = $2",
            )
            .bind(&row.merchant_id)
            .bind(&row.invoice_no)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            status = Status::Expired;
            expired = true;
        }
    }
    let still_due = status == Status::Pending && !row.needs_review;
    sqlx::query(
        "UPDATE invoices SET inquiry_attempts = inquiry_attempts + 1, last_inquiry_at = $3, lease_owner = NULL, \
         lease_until = NULL, next_inquiry_at = $4 WHERE merchant_id = $1 AND invoice_no = $2",
    )
    .bind(&done.merchant_id)
    .bind(&done.invoice_no)
    .bind(now)
    .bind(if still_due { done.next_at } else { None })
    .execute(&mut *conn)
    .await?;
    Ok(InquiryRecorded { status, expired, applied: result })
}

async fn reconcile_stats(conn: &mut Conn, now: i64, give_up_before: i64) -> Result<ReconcileStats, StoreError> {
    let (due,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM invoices WHERE next_inquiry_at IS NOT NULL AND next_inquiry_at <= $1")
        .bind(now)
        .fetch_one(&mut *conn)
        .await?;
    let (oldest, unresolved): (Option<i64>, i64) = sqlx::query_as(
        "SELECT MIN(created_at), COALESCE(SUM(CASE WHEN created_at < $1 THEN 1 ELSE 0 END), 0) FROM invoices \
         WHERE next_inquiry_at IS NOT NULL",
    )
    .bind(give_up_before)
    .fetch_one(&mut *conn)
    .await?;
    Ok(ReconcileStats { due, oldest_created_at_ms: oldest, unresolved })
}

/// The operations every backend offers, on top of its own `write` (one transaction) and `read`
/// (a pooled connection).
impl Backend {
    pub async fn record_observation(
        &self,
        obs: Observation,
        raw: Option<String>,
        dedupe_key: Option<String>,
        timing: Timing,
    ) -> Result<RecordResult, StoreError> {
        self.write(move |c| {
            let (obs, raw, dedupe_key) = (obs.clone(), raw.clone(), dedupe_key.clone());
            Box::pin(async move {
                apply_observation(c, &obs, raw.as_deref(), dedupe_key.as_deref(), timing, now_ms()).await
            })
        })
        .await
    }

    pub async fn register_invoice(&self, inv: NewInvoice, timing: Timing) -> Result<bool, StoreError> {
        self.write(move |c| {
            let inv = inv.clone();
            Box::pin(async move { register_invoice(c, &inv, timing, now_ms()).await })
        }).await
    }

    pub async fn invoice(&self, merchant_id: &str, invoice_no: &str) -> Result<Option<InvoiceRow>, StoreError> {
        select_invoice(&mut *self.read().await?, merchant_id, invoice_no).await
    }

    pub async fn history(&self, merchant_id: &str, invoice_no: &str) -> Result<Vec<HistoryRow>, StoreError> {
        select_history(&mut *self.read().await?, merchant_id, invoice_no).await
    }

    pub async fn events_of(&self, merchant_id: &str, invoice_no: &str) -> Result<Vec<EventRow>, StoreError> {
        select_events(&mut *self.read().await?, merchant_id, invoice_no).await
    }

    pub async fn claim_events(&self, owner: String, limit: i64, lease: Duration) -> Result<Vec<EventRow>, StoreError> {
        let lease_ms = crate::store::ms(lease);
        self.write(move |c| {
            let owner = owner.clone();
            Box::pin(async move { claim_events(c, &owner, limit, lease_ms, now_ms()).await })
        }).await
    }

    pub async fn mark_published(&self, seqs: Vec<i64>) -> Result<(), StoreError> {
        self.write(move |c| {
            let seqs = seqs.clone();
            Box::pin(async move { mark_published(c, &seqs, now_ms()).await })
        }).await
    }

    pub async fn release_events(&self, seqs: Vec<i64>, error: String) -> Result<(), StoreError> {
        self.write(move |c| {
            let seqs = seqs.clone(); let error = error.clone();
            Box::pin(async move { release_events(c, &seqs, &error).await })
        }).await
    }

    pub async fn outbox_stats(&self) -> Result<OutboxStats, StoreError> {
        outbox_stats(&mut *self.read().await?).await
    }

    pub async fn replay(&self, selector: ReplaySelector) -> Result<u64, StoreError> {
        self.write(move |c| {
            let selector = selector.clone();
            Box::pin(async move { replay(c, &selector).await })
        }).await
    }

    pub async fn record_frontend_return(
        &self,
        ret: FrontendReturnRecord,
        timing: Timing,
    ) -> Result<FrontendReturnResult, StoreError> {
        self.write(move |c| {
            let ret = ret.clone();
            Box::pin(async move { record_frontend_return(c, &ret, timing, now_ms()).await })
        }).await
    }

    pub async fn claim_due_invoices(
        &self,
        owner: String,
        limit: i64,
        lease: Duration,
    ) -> Result<Vec<InvoiceRow>, StoreError> {
        let lease_ms = crate::store::ms(lease);
        self.write(move |c| {
            let owner = owner.clone();
            Box::pin(async move { claim_due_invoices(c, &owner, limit, lease_ms, now_ms()).await })
        })
            .await
    }

    pub async fn record_inquiry(&self, done: InquiryDone, timing: Timing) -> Result<InquiryRecorded, StoreError> {
        self.write(move |c| {
            let done = done.clone();
            Box::pin(async move { record_inquiry(c, &done, timing, now_ms()).await })
        }).await
    }

    pub async fn reconcile_stats(&self, give_up_after: Duration) -> Result<ReconcileStats, StoreError> {
        let now = now_ms();
        reconcile_stats(&mut *self.read().await?, now, now - crate::store::ms(give_up_after)).await
    }

    pub async fn count_by_status(&self) -> Result<Vec<(String, i64)>, StoreError> {
        count_by_status(&mut *self.read().await?).await
    }
}
