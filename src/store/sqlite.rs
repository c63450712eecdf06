//! SQLite backend: WAL, `synchronous = FULL`, one writer task that groups concurrent writes into
//! one transaction (one fsync) with a savepoint per write, and a pool of readers.

use std::path::Path;
use std::str::FromStr;
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

type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
type Job = Box<dyn for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, (bool, Completion)> + Send>;

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
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, StoreError>> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            Box::pin(async move {
                let result = f(conn).await;
                let ok = result.is_ok();
                let done: Completion = Box::new(move |commit| {
                    let _ = reply.send(commit.and(result));
                });
                (ok, done)
            })
        });
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

/// Takes every queued write (up to `max_batch`), runs each in its own savepoint inside one
/// transaction, commits once, then answers all of them.
async fn writer_loop(mut conn: SqliteConnection, mut jobs: mpsc::Receiver<Job>, max_batch: usize) {
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    loop {
        if jobs.recv_many(&mut batch, max_batch).await == 0 {
            return;
        }
        let mut done: Vec<Completion> = Vec::with_capacity(batch.len());
        let outcome = run_batch(&mut conn, batch.drain(..), &mut done).await;
        if let Err(e) = &outcome {
            tracing::error!(error = %e, writes = done.len(), "SQLite group commit failed");
        }
        for complete in done {
            complete(outcome.clone());
        }
    }
}

async fn run_batch(
    conn: &mut SqliteConnection,
    jobs: impl Iterator<Item = Job>,
    done: &mut Vec<Completion>,
) -> Result<(), StoreError> {
    let mut tx = conn.begin().await?;
    for job in jobs {
        let mut savepoint = tx.begin().await?;
        let (ok, complete) = job(&mut savepoint).await;
        if ok {
            savepoint.commit().await?;
        } else {
            savepoint.rollback().await?;
        }
        done.push(complete);
    }
    tx.commit().await?;
    Ok(())
}
