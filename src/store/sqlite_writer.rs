//! The SQLite writer: one OS thread owns the only write connection (synchronous, `rusqlite`) and
//! commits concurrent writes in groups, one transaction and one `fsync` for everything that is
//! queued, and one thread hand-off per group rather than one per statement.
//!
//! A write is a closure run inside the group's transaction. If any write of a group fails, the
//! group is rolled back and each write runs again in a transaction of its own, so one failure
//! never affects the others; closures are therefore `FnMut` and must not keep effects outside the
//! database. Every caller is answered only after the commit that holds its write.

use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{CachedStatement, Row, ToSql};
use tokio::sync::{mpsc, oneshot};

use crate::clock::now_ms;
use crate::store::sql::{Arg, Dialect, Sql};
use crate::store::sqlite_checkpoint::{Checkpointer, WRITER_AUTOCHECKPOINT_PAGES};
use crate::store::sqlite_rows::ByPosition;
use crate::store::{EventRow, HistoryRow, InvoiceRow, QuarantineRow, StoreError};

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        let transient = match &e {
            rusqlite::Error::SqliteFailure(failure, _) => crate::store::sqlite_code_is_transient(failure.extended_code),
            _ => false,
        };
        let cause: crate::store::Cause = std::sync::Arc::new(e);
        if transient {
            StoreError::Transient(cause)
        } else {
            StoreError::Permanent(cause)
        }
    }
}

/// The writer thread's connection.
pub struct WriterConn(rusqlite::Connection);

/// Runs an operation over a [`WriterConn`]: its futures are ready at once (the connection is
/// synchronous), so one poll finishes it.
pub fn run_now<T>(operation: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    match pin!(operation).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(result) => result,
        Poll::Pending => Err(StoreError::Unavailable("a SQLite write tried to wait".into())),
    }
}

impl ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match *self {
            Arg::I64(Some(v)) => ToSqlOutput::Owned(Value::Integer(v)),
            Arg::I32(Some(v)) => ToSqlOutput::Owned(Value::Integer(v.into())),
            Arg::Text(Some(v)) => ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes())),
            Arg::Bool(v) => ToSqlOutput::Owned(Value::Integer(v.into())),
            Arg::I64(None) | Arg::I32(None) | Arg::Text(None) => ToSqlOutput::Owned(Value::Null),
        })
    }
}

impl WriterConn {
    /// Opens the write connection with the readers' durability settings (WAL, `synchronous =
    /// FULL`); statement journals in memory and reads through a memory map, so that the writer
    /// rarely waits for a read. SQLite's default page cache: with a 64 MiB one, every commit
    /// walked a large page hash (docs/benchmark.md, "This round", step 5).
    fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = rusqlite::Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.set_prepared_statement_cache_capacity(64);
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY; \
             PRAGMA mmap_size = 268435456;",
        )?;
        conn.pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT_PAGES)?;
        Ok(WriterConn(conn))
    }

    /// A cached statement with `$n` bound to `args[n - 1]`.
    fn prepare(&self, sql: &str, args: &[Arg<'_>]) -> Result<CachedStatement<'_>, StoreError> {
        let mut statement = self.0.prepare_cached(sql)?;
        for index in 1..=statement.parameter_count() {
            let arg = statement
                .parameter_name(index)
                .and_then(|name| name.strip_prefix('$'))
                .and_then(|n| n.parse::<usize>().ok())
                .and_then(|n| args.get(n.checked_sub(1)?))
                .copied()
                .ok_or_else(|| StoreError::Corrupt(format!("statement parameter {index} has no argument")))?;
            statement.raw_bind_parameter(index, arg)?;
        }
        Ok(statement)
    }

    fn rows<T>(
        &self,
        sql: &str,
        args: &[Arg<'_>],
        mut map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, StoreError> {
        let mut statement = self.prepare(sql, args)?;
        let mut rows = statement.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(map(row)?);
        }
        Ok(out)
    }

    fn batch(&self, sql: &str) -> Result<(), StoreError> {
        Ok(self.0.execute_batch(sql)?)
    }
}

impl Sql for WriterConn {
    const DIALECT: &'static Dialect = &crate::store::ops::SQLITE;

    async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64, StoreError> {
        let changed = self.prepare(sql, args)?.raw_execute()?;
        Ok(changed as u64)
    }

    async fn invoices(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<InvoiceRow>, StoreError> {
        self.rows(sql, args, InvoiceRow::by_position)
    }

    async fn events(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<EventRow>, StoreError> {
        self.rows(sql, args, EventRow::by_position)
    }

    async fn quarantine(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<QuarantineRow>, StoreError> {
        self.rows(sql, args, QuarantineRow::by_position)
    }

    async fn history(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<HistoryRow>, StoreError> {
        self.rows(sql, args, HistoryRow::by_position)
    }

    async fn integers(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Option<Vec<Option<i64>>>, StoreError> {
        let rows = self.rows(sql, args, |r| (0..r.as_ref().column_count()).map(|i| r.get(i)).collect())?;
        Ok(rows.into_iter().next())
    }

    async fn counts(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<(String, i64)>, StoreError> {
        self.rows(sql, args, |r| Ok((r.get(0)?, r.get(1)?)))
    }
}

/// A queued write, type-erased for the writer's queue.
trait Job: Send {
    /// Runs the write in the current transaction and keeps its result; `false` when it failed.
    fn run(&mut self, conn: &mut WriterConn) -> bool;
    /// Answers the caller once the fate of the transaction holding the write is known.
    fn finish(self: Box<Self>, commit: Result<(), StoreError>);
}

struct Queued<T, F> {
    write: F,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for Queued<T, F>
where
    T: Send,
    F: FnMut(&mut WriterConn, i64) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, conn: &mut WriterConn) -> bool {
        let result = (self.write)(conn, now_ms());
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, commit: Result<(), StoreError>) {
        let answer = match (commit, self.result) {
            (Err(e), _) => Err(e),
            (Ok(()), Some(result)) => result,
            (Ok(()), None) => Err(StoreError::Unavailable("the write did not run".into())),
        };
        let _ = self.reply.send(answer);
    }
}

/// Hands writes to the writer thread. The thread (and the checkpoint thread) ends when every
/// handle is dropped.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Box<dyn Job>>,
    _checkpoints: Arc<Checkpointer>,
}

/// How often the checkpoint thread copies the WAL into the database file: often, so that each
/// checkpoint is small and its `fsync` holds up the writer's commits briefly (every 25 ms against
/// every 100 ms: p99 accept at 3,200/s about 9.5 ms against 15 ms; docs/benchmark.md).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(25);

impl Writer {
    /// Opens the write connection and starts the writer thread. Groups hold at most `max_batch`
    /// writes.
    pub fn start(path: &Path, max_batch: usize) -> Result<Writer, StoreError> {
        let conn = WriterConn::open(path)?;
        let max_batch = max_batch.max(1);
        let (jobs, queue) = mpsc::channel(max_batch * 4);
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer_loop(conn, queue, max_batch))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the SQLite writer: {e}")))?;
        let checkpoints = Arc::new(Checkpointer::start(path, CHECKPOINT_EVERY)?);
        Ok(Writer { jobs, _checkpoints: checkpoints })
    }

    /// Runs `write` (given the connection and the time, Unix ms) in the current group
    /// transaction; answers after the commit.
    pub async fn write<T, F>(&self, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&mut WriterConn, i64) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(Queued { write, result: None, reply });
        self.jobs.send(job).await.map_err(|_| StoreError::Unavailable("the SQLite writer has stopped".into()))?;
        answer.await.map_err(|_| StoreError::Unavailable("the SQLite writer dropped the write".into()))?
    }
}

/// Takes every queued write (up to `max_batch`), runs them in one transaction, commits once and
/// answers them all; on a failed write, falls back to one transaction per write.
fn writer_loop(mut conn: WriterConn, mut queue: mpsc::Receiver<Box<dyn Job>>, max_batch: usize) {
    let mut group: Vec<Box<dyn Job>> = Vec::with_capacity(max_batch);
    while let Some(first) = queue.blocking_recv() {
        group.push(first);
        while group.len() < max_batch {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        match run_group(&mut conn, &mut group) {
            Ok(true) => group.drain(..).for_each(|job| job.finish(Ok(()))),
            Ok(false) => {
                for mut job in group.drain(..) {
                    let commit = run_alone(&mut conn, job.as_mut());
                    job.finish(commit);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, writes = group.len(), "SQLite group commit failed");
                group.drain(..).for_each(|job| job.finish(Err(e.clone())));
            }
        }
    }
}

/// `Ok(true)`: every write succeeded and the group is committed; `Ok(false)`: a write failed and
/// the group was rolled back.
fn run_group(conn: &mut WriterConn, group: &mut [Box<dyn Job>]) -> Result<bool, StoreError> {
    conn.batch("BEGIN IMMEDIATE")?;
    for job in group.iter_mut() {
        if !job.run(conn) {
            conn.batch("ROLLBACK")?;
            return Ok(false);
        }
    }
    commit(conn)?;
    Ok(true)
}

/// Runs one write in its own transaction; a failed write is rolled back (its own result says why).
fn run_alone(conn: &mut WriterConn, job: &mut dyn Job) -> Result<(), StoreError> {
    conn.batch("BEGIN IMMEDIATE")?;
    if job.run(conn) {
        commit(conn)
    } else {
        conn.batch("ROLLBACK")
    }
}

fn commit(conn: &mut WriterConn) -> Result<(), StoreError> {
    conn.batch("COMMIT").inspect_err(|_| {
        let _ = conn.batch("ROLLBACK");
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::sql::args;

    async fn count(writer: &Writer, sql: &'static str) -> i64 {
        writer
            .write(move |c, _| run_now(c.integers(sql, args![])))
            .await
            .unwrap()
            .and_then(|row| row.first().copied().flatten())
            .unwrap()
    }

    fn writer() -> (tempfile::TempDir, Writer) {
        let dir = tempfile::tempdir().unwrap();
        let writer = Writer::start(&dir.path().join("w.db"), 64).unwrap();
        (dir, writer)
    }

    #[tokio::test]
    async fn binds_numbered_placeholders_by_number_in_any_order() {
        let (_dir, writer) = writer();
        writer
            .write(|c, _| run_now(c.execute("CREATE TABLE t (a TEXT, b INTEGER, c INTEGER)", args![])))
            .await
            .unwrap();
        let changed = writer
            .write(|c, _| {
                run_now(c.execute("INSERT INTO t (b, a, c) VALUES ($2, $1, $2 + $3)", args!["x", 40_i64, 2_i64]))
            })
            .await
            .unwrap();
        assert_eq!(changed, 1);
        let row =
            writer.write(|c, _| run_now(c.integers("SELECT b, c FROM t WHERE a = $1", args!["x"]))).await.unwrap();
        assert_eq!(row, Some(vec![Some(40), Some(42)]));
        let missing = writer.write(|c, _| run_now(c.execute("INSERT INTO t (a) VALUES ($2)", args!["only one"]))).await;
        assert!(matches!(missing, Err(StoreError::Corrupt(_))), "{missing:?}");
    }

    #[tokio::test]
    async fn committed_pages_reach_the_database_file_without_the_writer_checkpointing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let writer = Writer::start(&path, 64).unwrap();
        writer.write(|c, _| run_now(c.execute("CREATE TABLE t (v TEXT)", args![]))).await.unwrap();
        // About 500 pages: far below the writer's own checkpoint threshold.
        for _ in 0..20 {
            writer
                .write(|c, _| {
                    for _ in 0..100 {
                        run_now(c.execute("INSERT INTO t (v) VALUES (printf('%.1000c', 'x'))", args![]))?;
                    }
                    Ok(())
                })
                .await
                .unwrap();
        }
        let file_len = || std::fs::metadata(&path).unwrap().len();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while file_len() < 1_000_000 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(file_len() >= 1_000_000, "the rows are still only in the WAL: {} bytes", file_len());
    }

    #[tokio::test]
    async fn a_failed_write_leaves_the_rest_of_its_group_committed_and_nothing_of_itself() {
        let (_dir, writer) = writer();
        writer
            .write(|c, _| run_now(c.execute("CREATE TABLE t (k TEXT PRIMARY KEY, note TEXT)", args![])))
            .await
            .unwrap();
        // The first write holds the writer while the others queue up behind it as one group.
        let first = writer.write(|c, _| {
            std::thread::sleep(Duration::from_millis(200));
            run_now(c.execute("INSERT INTO t (k) VALUES ('first')", args![]))
        });
        let queued = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let good = |k: &'static str| {
                writer.write(move |c, _| run_now(c.execute("INSERT INTO t (k) VALUES ($1)", args![k])))
            };
            let bad = writer.write(|c, _| {
                run_now(c.execute("INSERT INTO t (k, note) VALUES ('half', 'must not stay')", args![]))?;
                run_now(c.execute("INSERT INTO t (k) VALUES ('first')", args![]))
            });
            tokio::join!(good("a"), bad, good("b"))
        };
        let (first, (a, bad, b)) = tokio::join!(first, queued);
        assert_eq!((first.unwrap(), a.unwrap(), b.unwrap()), (1, 1, 1));
        assert!(matches!(bad, Err(ref e @ StoreError::Permanent(_)) if e.chain().contains("UNIQUE")), "{bad:?}");
        assert_eq!(count(&writer, "SELECT COUNT(*) FROM t").await, 3);
        assert_eq!(count(&writer, "SELECT COUNT(*) FROM t WHERE k = 'half'").await, 0);
    }
}
