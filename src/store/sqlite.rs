//! SQLite backend: WAL with `synchronous = FULL`, one writer thread that commits concurrent
//! writes in groups (`sqlite_writer.rs`), and a pool of sqlx connections for reads and migrations.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};

use crate::config::DatabaseSettings;
use crate::store::sqlite_writer::{Writer, WriterConn};
use crate::store::StoreError;

/// The SQLite store.
#[derive(Clone)]
pub struct SqliteStore {
    readers: SqlitePool,
    writer: Writer,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and starts the writer thread.
    pub async fn connect(url: &str, settings: &DatabaseSettings) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let file = Path::new(options.get_filename()).to_path_buf();
        if let Some(parent) = file.parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", parent.display())))?;
            }
        }
        let readers = SqlitePoolOptions::new()
            .max_connections(settings.max_connections.max(2))
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        let writer = Writer::start(&file, settings.write_batch)?;
        Ok(SqliteStore { readers, writer })
    }

    /// Runs `write` in the writer's current group transaction; answers after the commit.
    pub async fn write<T, F>(&self, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&mut WriterConn, i64) -> Result<T, StoreError> + Send + 'static,
    {
        self.writer.write(write).await
    }

    /// A pooled connection for reads.
    pub async fn read(&self) -> Result<sqlx::pool::PoolConnection<Sqlite>, StoreError> {
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

crate::store::sql::sqlx_sql!(sqlx::SqliteConnection, sqlx::Sqlite, &crate::store::ops::SQLITE);
