//! PostgreSQL: observations recorded in groups. Writer tasks each take the observations
//! waiting (at most `database.write_batch`) and record them in one transaction of two statements
//! over arrays (`unnest`): the locked upsert of the invoices, then, once each observation is
//! planned in memory exactly as when it is recorded alone ([`ops::apply_observation`]), one
//! statement that writes the history rows, the events and the invoice updates; then `COMMIT`.
//!
//! A group holds each invoice once and locks its invoices in key order, so two groups (of this
//! replica or another) never wait on each other in a cycle; a later observation of an invoice
//! already in the group is recorded alone after the group commits. If anything in a group fails,
//! the group is rolled back and each observation is recorded again alone, so an error reaches only
//! the request that caused it. Every caller is answered after the commit that holds its write.

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::{Connection, PgConnection, PgPool, Postgres};
use tokio::runtime::Handle;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot, Mutex};

use crate::clock::{ms, now_ms};
use crate::domain::event::NewEvent;
use crate::domain::money::Money;
use crate::domain::observation::{Observation, Source};
use crate::domain::origin::Origin;
use crate::domain::plan::{self, Plan, Settled};
use crate::store::ops::{self, invoice_columns_sql};
use crate::store::{InvoiceRow, RecordResult, StoreError, Timing};

/// Observations waiting for a writer.
type Queue = Arc<Mutex<mpsc::Receiver<Pending>>>;

/// One observation to record, and where to answer.
struct Pending {
    obs: Observation,
    raw: Option<String>,
    dedupe_key: Option<String>,
    timing: Timing,
    reply: oneshot::Sender<Result<RecordResult, StoreError>>,
}

impl Pending {
    fn key(&self) -> (&str, &str) {
        (self.obs.merchant_id.as_str(), self.obs.invoice_no.as_str())
    }
}

/// Hands observations to the group writers. The writers end when every handle is dropped.
#[derive(Clone)]
pub struct GroupWriter {
    queue: mpsc::Sender<Pending>,
}

impl GroupWriter {
    /// Starts `writers` writer tasks on `runtime`, each recording groups of at most `max_group`.
    /// With `keep_connections`, a busy writer keeps its pool connection from group to group.
    pub fn start(
        pool: PgPool,
        runtime: &Handle,
        writers: usize,
        max_group: usize,
        keep_connections: bool,
    ) -> GroupWriter {
        let max_group = max_group.max(1);
        let (queue, waiting) = mpsc::channel(max_group * 4);
        let waiting: Queue = Arc::new(Mutex::new(waiting));
        for _ in 0..writers.max(1) {
            runtime.spawn(writer_task(pool.clone(), waiting.clone(), max_group, keep_connections));
        }
        GroupWriter { queue }
    }

    /// Records `obs` in the next group; see `Store::record_observation`.
    pub async fn record(
        &self,
        obs: Observation,
        raw: Option<String>,
        dedupe_key: Option<String>,
        timing: Timing,
    ) -> Result<RecordResult, StoreError> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending { obs, raw, dedupe_key, timing, reply };
        self.queue
            .send(pending)
            .await
            .map_err(|_| StoreError::Unavailable("the PostgreSQL writers have stopped".into()))?;
        answer.await.map_err(|_| StoreError::Unavailable("the PostgreSQL writer dropped the write".into()))?
    }
}

/// Takes what is waiting (one writer at a time), records it, and goes back for more. A writer
/// keeps its connection while work keeps waiting (no pool round trip per group) and gives it back
/// when the queue is empty (or at once, without `keep_connection`).
async fn writer_task(pool: PgPool, waiting: Queue, max_group: usize, keep_connection: bool) {
    let mut held: Option<PoolConnection<Postgres>> = None;
    loop {
        let mut group = Vec::with_capacity(max_group);
        {
            let mut waiting = waiting.lock().await;
            let first = match waiting.try_recv() {
                Ok(first) => first,
                Err(TryRecvError::Disconnected) => return,
                Err(TryRecvError::Empty) => {
                    held = None;
                    match waiting.recv().await {
                        Some(first) => first,
                        None => return,
                    }
                }
            };
            group.push(first);
            while group.len() < max_group {
                match waiting.try_recv() {
                    Ok(next) => group.push(next),
                    Err(_) => break,
                }
            }
        }
        record_group(&pool, &mut held, group).await;
        if !keep_connection {
            held = None;
        }
    }
}

/// The held connection, or a new one from the pool.
async fn held_connection<'c>(
    pool: &PgPool,
    held: &'c mut Option<PoolConnection<Postgres>>,
) -> Result<&'c mut PgConnection, StoreError> {
    Ok(match held {
        Some(conn) => conn,
        None => held.insert(pool.acquire().await?),
    })
}

/// Records a group and answers every caller in it.
async fn record_group(pool: &PgPool, held: &mut Option<PoolConnection<Postgres>>, mut group: Vec<Pending>) {
    // Key order (stable: repeats of an invoice keep their order of arrival).
    group.sort_by(|a, b| a.key().cmp(&b.key()));
    let (mut first, mut repeats) = (Vec::with_capacity(group.len()), Vec::new());
    for pending in group {
        match first.last() {
            Some(previous) if Pending::key(previous) == pending.key() => repeats.push(pending),
            _ => first.push(pending),
        }
    }
    let written = match held_connection(pool, held).await {
        Ok(conn) => write_group(conn, &first, now_ms()).await,
        Err(e) => Err(e),
    };
    if written.is_err() {
        // Whatever failed, the next group starts on a connection the pool has checked.
        *held = None;
    }
    match written {
        Ok(results) => {
            for (pending, result) in first.into_iter().zip(results) {
                let _ = pending.reply.send(Ok(result));
            }
        }
        Err(e) => {
            tracing::debug!(error = %e.chain(), observations = first.len(), "group rolled back; recording each alone");
            repeats.splice(0..0, first);
        }
    }
    for pending in repeats {
        let result = match held_connection(pool, held).await {
            Ok(conn) => record_alone(conn, &pending).await,
            Err(e) => Err(e),
        };
        if result.is_err() {
            *held = None;
        }
        let _ = pending.reply.send(result);
    }
}

/// One observation in a transaction of its own, on the writer's connection (a writer never holds
/// two, so a small pool cannot leave it waiting for itself).
async fn record_alone(conn: &mut PgConnection, p: &Pending) -> Result<RecordResult, StoreError> {
    let mut tx = conn.begin().await?;
    let result =
        ops::apply_observation(&mut *tx, &p.obs, p.raw.as_deref(), p.dedupe_key.as_deref(), p.timing, now_ms()).await?;
    tx.commit().await?;
    Ok(result)
}

/// Creates the invoices that are new and locks every invoice of the group, in key order: `$1`…`$9`
/// arrays of merchant, invoice, amount, currency, exponent, origin, trusted, expiry and first
/// inquiry; `$10` now.
const UPSERT_INVOICES: &str = concat!(
    "INSERT INTO invoices (merchant_id, invoice_no, status, amount_minor, currency, exponent, origin, trusted, \
     sequence, expires_at, next_inquiry_at, created_at, updated_at) \
     SELECT m, i, 'pending', a, c, e, o, t, 0, x, n, $10, $10 \
     FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::int4[], $6::text[], $7::bool[], $8::int8[], \
     $9::int8[]) WITH ORDINALITY AS u(m, i, a, c, e, o, t, x, n, k) ORDER BY k \
     ON CONFLICT (merchant_id, invoice_no) DO UPDATE SET merchant_id = excluded.merchant_id RETURNING ",
    invoice_columns_sql!()
);

/// Writes what the plans say in one statement: the history rows (those whose `dedupe_key` is
/// stored already are skipped: duplicates), the planned events of the others (those stored already,
/// same id, are skipped), and each of their invoices as settled with the event written (`_w`) or
/// not (`_n`). Returns, per observation written, its history id and whether its event was new.
/// `$30` now, `$31` the origins. The invoices are written back with an upsert on their key: it
/// always finds the row (locked by [`UPSERT_INVOICES`]) and, unlike an `UPDATE … FROM` join, reaches
/// it through the primary key whatever the planner's statistics say (on a young table the join
/// used another index that starts with the merchant, reading all of the merchant's invoices per
/// row).
const WRITE_PLANS: &str = "WITH u AS (\
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
    $8::text[], $9::text[], $10::text[], $11::int8[], $12::text[], $13::text[], $14::int8[], $15::text[], \
    $16::text[], $17::int8[], $18::bool[], $19::int8[], $20::text[], $21::int4[], $22::text[], $23::text[], \
    $24::int8[], $25::int8[], $26::bool[], $27::bool[], $28::int8[], $29::int8[], $31::text[]) \
    AS u(m, i, kind, dedupe_key, resp_code, resp_desc, raw, normalized, outcome, event_id, event_sequence, \
    event_type, body, event_created, traceparent, tran_ref, notified_at, trusted, amount_minor, currency, exponent, \
    status_w, status_n, sequence_w, sequence_n, review_w, review_n, next_w, next_n, origin)), \
  h AS (INSERT INTO history (merchant_id, invoice_no, kind, dedupe_key, resp_code, resp_desc, raw, normalized, \
    received_at, outcome) SELECT m, i, kind, dedupe_key, resp_code, resp_desc, raw, normalized, $30, outcome FROM u \
    ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, merchant_id, invoice_no), \
  e AS (INSERT INTO events (event_id, merchant_id, invoice_no, sequence, event_type, body, created_at, traceparent) \
    SELECT u.event_id, u.m, u.i, u.event_sequence, u.event_type, u.body, u.event_created, u.traceparent \
    FROM u JOIN h ON h.merchant_id = u.m AND h.invoice_no = u.i WHERE u.event_id IS NOT NULL \
    ON CONFLICT (event_id) DO NOTHING RETURNING merchant_id, invoice_no), \
  s AS (SELECT u.*, e.invoice_no IS NOT NULL AS written FROM u JOIN h ON h.merchant_id = u.m AND h.invoice_no = u.i \
    LEFT JOIN e ON e.merchant_id = u.m AND e.invoice_no = u.i), \
  w AS (INSERT INTO invoices AS v (merchant_id, invoice_no, origin, status, sequence, needs_review, next_inquiry_at, \
    resp_code, resp_desc, tran_ref, notified_at, trusted, amount_minor, currency, exponent, created_at, updated_at) \
    SELECT s.m, s.i, s.origin, \
    CASE WHEN s.written THEN s.status_w ELSE s.status_n END, \
    CASE WHEN s.written THEN s.sequence_w ELSE s.sequence_n END, \
    CASE WHEN s.written THEN s.review_w ELSE s.review_n END, \
    CASE WHEN s.written THEN s.next_w ELSE s.next_n END, \
    s.resp_code, s.resp_desc, s.tran_ref, s.notified_at, s.trusted, s.amount_minor, s.currency, s.exponent, $30, $30 \
    FROM s ON CONFLICT (merchant_id, invoice_no) DO UPDATE SET status = excluded.status, sequence = excluded.sequence, \
    needs_review = excluded.needs_review, next_inquiry_at = excluded.next_inquiry_at, resp_code = excluded.resp_code, \
    resp_desc = excluded.resp_desc, tran_ref = COALESCE(excluded.tran_ref, v.tran_ref), \
    notified_at = excluded.notified_at, trusted = excluded.trusted, amount_minor = excluded.amount_minor, \
    currency = excluded.currency, exponent = excluded.exponent, updated_at = excluded.updated_at \
    RETURNING v.merchant_id) \
  SELECT h.id, h.merchant_id, h.invoice_no, s.written FROM h JOIN s ON s.m = h.merchant_id AND s.i = h.invoice_no";

/// Says in the history that an anomaly was recorded before (see `Settled::corrected_outcome`).
const CORRECT_OUTCOMES: &str =
    "UPDATE history AS h SET outcome = u.outcome FROM unnest($1::int8[], $2::text[]) AS u(id, outcome) WHERE h.id = u.id";

/// Records `group` (each invoice once, in key order) in one transaction; one result per
/// observation, in order.
async fn write_group(conn: &mut PgConnection, group: &[Pending], now: i64) -> Result<Vec<RecordResult>, StoreError> {
    let mut tx = conn.begin().await?;

    let amounts: Vec<Option<&Money>> = group.iter().map(|p| p.obs.amount.as_ref()).collect();
    let rows: Vec<InvoiceRow> = sqlx::query_as(UPSERT_INVOICES)
        .bind(group.iter().map(|p| p.obs.merchant_id.as_str()).collect::<Vec<_>>())
        .bind(group.iter().map(|p| p.obs.invoice_no.as_str()).collect::<Vec<_>>())
        .bind(amounts.iter().map(|a| a.map(Money::minor)).collect::<Vec<_>>())
        .bind(amounts.iter().map(|a| a.map(|a| a.currency().code())).collect::<Vec<_>>())
        .bind(amounts.iter().map(|a| a.map(|a| a.exponent() as i32)).collect::<Vec<_>>())
        .bind(group.iter().map(|p| Origin::from(p.obs.source).as_str()).collect::<Vec<_>>())
        .bind(group.iter().map(|p| p.obs.source != Source::FrontendReturn).collect::<Vec<_>>())
        .bind(group.iter().map(|p| now + ms(p.timing.payment_window)).collect::<Vec<_>>())
        .bind(group.iter().map(|p| now + ms(p.timing.grace)).collect::<Vec<_>>())
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
    let rows: HashMap<(&str, &str), &InvoiceRow> =
        rows.iter().map(|r| ((r.merchant_id.as_str(), r.invoice_no.as_str()), r)).collect();
    let loaded: Vec<&InvoiceRow> = group
        .iter()
        .map(|p| rows.get(&p.key()).copied())
        .collect::<Option<_>>()
        .ok_or_else(|| StoreError::Corrupt("the invoice upsert returned fewer rows than it was given".into()))?;
    let plans: Vec<Plan> = group
        .iter()
        .zip(&loaded)
        .map(|(p, row)| Ok(plan::plan(ops::loaded_invoice(row)?, &p.obs, ms(p.timing.grace), now)))
        .collect::<Result<_, StoreError>>()?;

    let normalized: Vec<String> = group
        .iter()
        .map(|p| serde_json::to_string(&p.obs))
        .collect::<Result<_, _>>()
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let events: Vec<Option<&NewEvent>> = plans.iter().map(|p| p.event.as_ref()).collect();
    let settled: Vec<(Settled, Settled)> = plans.iter().map(|p| (p.settle(true), p.settle(false))).collect();
    let kept: Vec<Option<&Money>> = plans.iter().map(|p| p.amount.as_ref()).collect();
    let obs = || group.iter().map(|p| &p.obs);
    let stored: Vec<(i64, String, String, bool)> = sqlx::query_as(WRITE_PLANS)
        .bind(obs().map(|o| o.merchant_id.as_str()).collect::<Vec<_>>())
        .bind(obs().map(|o| o.invoice_no.as_str()).collect::<Vec<_>>())
        .bind(obs().map(|o| o.source.as_str()).collect::<Vec<_>>())
        .bind(group.iter().map(|p| p.dedupe_key.as_deref()).collect::<Vec<_>>())
        .bind(obs().map(|o| o.resp_code.as_str()).collect::<Vec<_>>())
        .bind(obs().map(|o| o.resp_desc.as_deref()).collect::<Vec<_>>())
        .bind(group.iter().map(|p| p.raw.as_deref()).collect::<Vec<_>>())
        .bind(&normalized)
        .bind(plans.iter().map(|p| p.outcome.to_string()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.map(|e| e.id.to_string())).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.map(|e| e.sequence)).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.map(|e| e.event_type.as_str())).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.map(|e| e.body.as_str())).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.map(|e| e.created_at_ms)).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.and_then(|e| e.traceparent.as_deref())).collect::<Vec<_>>())
        .bind(obs().map(|o| o.tran_ref.as_deref()).collect::<Vec<_>>())
        .bind(settled.iter().map(|(w, _)| w.notified_at).collect::<Vec<_>>())
        .bind(plans.iter().map(|p| p.trusted).collect::<Vec<_>>())
        .bind(kept.iter().map(|a| a.map(Money::minor)).collect::<Vec<_>>())
        .bind(kept.iter().map(|a| a.map(|a| a.currency().code())).collect::<Vec<_>>())
        .bind(kept.iter().map(|a| a.map(|a| a.exponent() as i32)).collect::<Vec<_>>())
        .bind(settled.iter().map(|(w, _)| w.status.as_str()).collect::<Vec<_>>())
        .bind(settled.iter().map(|(_, n)| n.status.as_str()).collect::<Vec<_>>())
        .bind(settled.iter().map(|(w, _)| w.sequence).collect::<Vec<_>>())
        .bind(settled.iter().map(|(_, n)| n.sequence).collect::<Vec<_>>())
        .bind(settled.iter().map(|(w, _)| w.needs_review).collect::<Vec<_>>())
        .bind(settled.iter().map(|(_, n)| n.needs_review).collect::<Vec<_>>())
        .bind(settled.iter().map(|(w, _)| w.next_inquiry_at).collect::<Vec<_>>())
        .bind(settled.iter().map(|(_, n)| n.next_inquiry_at).collect::<Vec<_>>())
        .bind(now)
        .bind(obs().map(|o| Origin::from(o.source).as_str()).collect::<Vec<_>>())
        .fetch_all(&mut *tx)
        .await?;
    // Per observation written: its history id and whether its event was new. Absent: stored
    // before, a duplicate that changes nothing.
    let stored: HashMap<(&str, &str), (i64, bool)> =
        stored.iter().map(|(id, m, i, written)| ((m.as_str(), i.as_str()), (*id, *written))).collect();

    let mut results = Vec::with_capacity(group.len());
    let mut corrections: (Vec<i64>, Vec<String>) = (Vec::new(), Vec::new());
    for (((p, plan), row), (if_written, if_not)) in group.iter().zip(&plans).zip(&loaded).zip(&settled) {
        let Some(&(id, written)) = stored.get(&p.key()) else {
            results.push(RecordResult::duplicate(row.status));
            continue;
        };
        let settled = if written { if_written } else { if_not };
        if let Some(corrected) = settled.corrected_outcome {
            corrections.0.push(id);
            corrections.1.push(corrected.to_string());
        }
        results.push(RecordResult::applied(plan, settled));
    }
    if !corrections.0.is_empty() {
        sqlx::query(CORRECT_OUTCOMES).bind(&corrections.0).bind(&corrections.1).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(results)
}
