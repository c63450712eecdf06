//! Store errors, classified by whether trying the same thing again can help.

/// The error underneath a [`StoreError`], kept for its message and source chain.
pub type Cause = std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>;

/// A storage failure, classified by whether trying the same thing again can help.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The store could not do it now (the writer stopped, a task was lost): transient.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The database could not be reached or was busy (connection lost, pool timeout, lock busy,
    /// I/O, out of resources): transient, the same write may succeed later.
    #[error("storage unavailable: {0}")]
    Transient(#[source] Cause),
    /// The database refused this write (a data error, a constraint the code did not expect, a
    /// statement or type error): permanent, the same write fails again.
    #[error("storage refused the write: {0}")]
    Permanent(#[source] Cause),
    /// What is stored does not make sense (a bug): permanent.
    #[error("invalid stored data: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether trying again later may succeed (answer `503` and `Retry-After`).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Transient(_))
    }

    /// The message with its whole source chain, for logs and the quarantine (the message
    /// already holds the first cause's).
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self).and_then(|cause| cause.source());
        while let Some(e) = source {
            text.push_str(": ");
            text.push_str(&e.to_string());
            source = e.source();
        }
        text
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        use sqlx::Error as E;
        let transient = match &e {
            E::Io(_) | E::Tls(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed | E::Protocol(_) => true,
            E::Database(db) => match db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
                Some(pg) => postgres_code_is_transient(pg.code()),
                None => db.code().and_then(|c| c.parse::<i32>().ok()).is_some_and(sqlite_code_is_transient),
            },
            _ => false,
        };
        let cause: Cause = std::sync::Arc::new(e);
        if transient {
            StoreError::Transient(cause)
        } else {
            StoreError::Permanent(cause)
        }
    }
}

/// SQLSTATE classes that say "not now" rather than "not this": connection exceptions (08),
/// transaction rollbacks such as serialization failures and deadlocks (40), insufficient
/// resources (53), operator intervention such as a shutdown (57), system errors (58), and a
/// lock that is not available (55P03).
pub(crate) fn postgres_code_is_transient(code: &str) -> bool {
    matches!(code.get(..2), Some("08" | "40" | "53" | "57" | "58")) || code == "55P03"
}

/// SQLite primary result codes that say "not now": BUSY (5), LOCKED (6), NOMEM (7), IOERR (10),
/// FULL (13), CANTOPEN (14), PROTOCOL (15). The code may be an extended one (primary + 256·n).
pub(crate) fn sqlite_code_is_transient(code: i32) -> bool {
    matches!(code & 0xff, 5 | 6 | 7 | 10 | 13 | 14 | 15)
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Unavailable(format!("migration failed: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_errors_are_classified_by_whether_a_retry_can_help() {
        for code in ["08006", "40001", "40P01", "53300", "57P01", "58030", "55P03"] {
            assert!(postgres_code_is_transient(code), "{code}");
        }
        for code in ["22021", "23505", "23514", "42703", "P0001", "XX000"] {
            assert!(!postgres_code_is_transient(code), "{code}");
        }
        // BUSY, LOCKED, IOERR_WRITE (778), FULL; CONSTRAINT_TRIGGER (1811), CONSTRAINT_UNIQUE (2067).
        for code in [5, 6, 778, 13] {
            assert!(sqlite_code_is_transient(code), "{code}");
        }
        for code in [1811, 2067, 19, 20] {
            assert!(!sqlite_code_is_transient(code), "{code}");
        }
        let pool = StoreError::from(sqlx::Error::PoolTimedOut);
        assert!(pool.is_transient());
        let bug = StoreError::from(sqlx::Error::RowNotFound);
        assert!(!bug.is_transient());
        assert!(bug.chain().contains("no rows"), "{}", bug.chain());
        assert!(std::error::Error::source(&bug).is_some(), "the cause is kept as the source");
    }
}
