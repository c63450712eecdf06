//! SQLite: WAL checkpoints on a thread of their own. Copying committed pages from the WAL into the
//! database file (and its `fsync`) would otherwise run on the writer thread after a commit, every
//! `wal_autocheckpoint` pages, and hold up every write queued behind it. A passive checkpoint never
//! blocks the writer or the readers; the writer's own automatic checkpoint stays as a backstop, at
//! a higher threshold, and then finds most pages already copied.

use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use crate::store::StoreError;

/// Pages the WAL may hold before the writer checkpoints by itself (SQLite's default is 1,000).
pub const WRITER_AUTOCHECKPOINT_PAGES: u32 = 10_000;

/// The checkpoint thread; it stops when this is dropped.
pub struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

impl Checkpointer {
    /// Opens a connection of its own to `path` and runs a passive checkpoint every `every`.
    pub fn start(path: &Path, every: Duration) -> Result<Checkpointer, StoreError> {
        let conn = rusqlite::Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch("PRAGMA synchronous = FULL;")?;
        let (stop, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || loop {
                match stopped.recv_timeout(every) {
                    Err(RecvTimeoutError::Timeout) => {
                        // Busy (another checkpoint runs) or failed: the next tick tries again, and
                        // the writer's own checkpoint still bounds the WAL.
                        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                            tracing::debug!(error = %e, "WAL checkpoint did not run");
                        }
                    }
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                }
            })
            .map_err(|e| StoreError::Unavailable(format!("cannot start the SQLite checkpoint thread: {e}")))?;
        Ok(Checkpointer { _stop: stop })
    }
}
