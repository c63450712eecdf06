//! SQLite backend: WAL, `synchronous = FULL`, one writer task that groups concurrent writes into
//! one transaction (one fsync), and a pool of readers.

use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use crate::config::DatabaseSettings;
use crate::store::now_ms;

type Db = sqlx::Sqlite;
type Conn = SqliteConnection;
type Backend = SqliteStore;

/// No row locks in SQLite: the single writer serialises every write.
const SELECT_INVOICE_LOCKED: &str =
    "SELECT merchant_id, invoice_no, status, amount_minor, currency, exponent, origin, trusted, sequence, \
    resp_code, resp_desc, tran_ref, notified_at, returned_at, needs_review, expires_at, next_inquiry_at, \
    inquiry_attempts, last_inquiry_at, created_at, updated_at FROM invoices WHERE merchant_id = $1 AND invoice_no = $2";

const CLAIM_EVENTS: &str = "UPDATE events SET claimed_until = $1, claimed_by = $2 WHERE seq IN (\
    SELECT seq FROM events WHERE published_at IS NULL AND (claimed_until IS NULL OR claimed_until < $3) ORDER BY seq LIMIT $4) \
    RETURNING seq, event_id, merchant_id, invoice_no, sequence, event_type, body, created_at, published_at, attempts";

const CLAIM_DUE_INVOICES: &str =
    "UPDATE invoices SET lease_owner = $1, lease_until = $2 WHERE (merchant_id, invoice_no) IN (\
    SELECT merchant_id, invoice_no FROM invoices WHERE next_inquiry_at IS NOT NULL AND next_inquiry_at <= $3 \
    AND (lease_until IS NULL OR lease_until < $3) ORDER BY next_inquiry_at LIMIT $4) \
    RETURNING merchant_id, invoice_no, status, amount_minor, currency, exponent, origin, trusted, sequence, \
    resp_code, resp_desc, tran_ref, notified_at, returned_at, needs_review, expires_at, next_inquiry_at, \
    inquiry_attempts, last_inquiry_at, created_at, updated_at";

include!("ops.rs");

type RunWrite = dyn for<'c> Fn(&'c mut SqliteConnection) -> BoxFuture<'c, Result<(), StoreError>> + Send + Sync;

/// One queued write. `run` may be called twice: inside a group transaction and, if that group
/// failed, again alone; it keeps its latest result for `finish`, which answers the caller once the
/// commit is known.
struct Job {
    run: Box<RunWrite>,
    finish: Box<dyn FnOnce(Result<(), StoreError>) + Send + Sync>,
}

/// The SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    readers: SqlitePool,
    writer: mpsc::Sender<Job>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and starts the writer task.
    pub async fn connect(url: &str, settings: &DatabaseSettings) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        if let Some(parent) = Path::new(options.get_filename()).parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", parent.display())))?;
            }
        }
        let writer_conn = SqliteConnection::connect_with(&options).await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(settings.max_connections.max(2))
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.read_only(false))
            .await?;
        let (tx, rx) = mpsc::channel::<Job>(settings.write_batch * 4);
        tokio::spawn(writer_loop(writer_conn, rx, settings.write_batch));
        Ok(SqliteStore { readers, writer: tx })
    }

    /// Runs `f` inside the writer's current group transaction; answers after the commit.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> Fn(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, StoreError>> + Send + Sync + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let slot: Arc<Mutex<Option<Result<T, StoreError>>>> = Arc::new(Mutex::new(None));
        let kept = slot.clone();
        let f = Arc::new(f);
        let job = Job {
            run: Box::new(move |conn| {
                let (f, slot) = (f.clone(), slot.clone());
                Box::pin(async move {
                    let result = f(conn).await;
                    let outcome = result.as_ref().map(|_| ()).map_err(Clone::clone);
                    *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
                    outcome
                })
            }),
            finish: Box::new(move |commit| {
                let result = kept
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take()
                    .unwrap_or_else(|| Err(StoreError::Unavailable("the write did not run".into())));
                let _ = reply.send(commit.and(result));
            }),
        };
        self.writer.send(job).await.map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?;
        answer.await.map_err(|_| StoreError::Unavailable("the SQLite writer dropped the write".into()))?
    }

    async fn read(&self) -> Result<sqlx::pool::PoolConnection<Db>, StoreError> {
        Ok(self.readers.acquire().await?)
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("migrations/sqlite").run(&self.readers).await?;
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.readers).await?;
        Ok(())
    }
}

/// Takes every queued write (up to `max_batch`) and runs them in one transaction, committed once
/// (one fsync for the group), then answers all of them. If any write fails, the group is rolled
/// back and each write runs again in its own transaction, so one failure never affects the others.
async fn writer_loop(mut conn: SqliteConnection, mut jobs: mpsc::Receiver<Job>, max_batch: usize) {
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    loop {
        if jobs.recv_many(&mut batch, max_batch).await == 0 {
            return;
        }
        match run_group(&mut conn, &batch).await {
            Ok(true) => {
                for job in batch.drain(..) {
                    (job.finish)(Ok(()));
                }
            }
            Ok(false) => {
                for job in batch.drain(..) {
                    let outcome = run_alone(&mut conn, &job).await;
                    (job.finish)(outcome);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, writes = batch.len(), "SQLite group commit failed");
                for job in batch.drain(..) {
                    (job.finish)(Err(e.clone()));
                }
            }
        }
    }
}

/// `Ok(true)`: every write succeeded and the group is committed; `Ok(false)`: a write failed and
/// the group was rolled back.
async fn run_group(conn: &mut SqliteConnection, jobs: &[Job]) -> Result<bool, StoreError> {
    let mut tx = conn.begin().await?;
    for job in jobs {
        if (job.run)(&mut tx).await.is_err() {
            tx.rollback().await?;
            return Ok(false);
        }
    }
    tx.commit().await?;
    Ok(true)
}

async fn run_alone(conn: &mut SqliteConnection, job: &Job) -> Result<(), StoreError> {
    let mut tx = conn.begin().await?;
    if (job.run)(&mut tx).await.is_ok() {
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    Ok(())
}
