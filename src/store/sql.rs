//! What the store's operations need from a connection. Each operation in `ops.rs` is written once
//! against [`Sql`] and runs on a PostgreSQL or SQLite connection of sqlx, and on the SQLite
//! writer's own synchronous connection (`sqlite_writer.rs`).
//!
//! Statements use `$1`, `$2`, … placeholders on every backend; an argument list binds `$n` to its
//! n-th element, however often and in whatever order the placeholders appear.

use std::future::Future;

use crate::store::{EventRow, HistoryRow, InvoiceRow, QuarantineRow, StoreError};

/// One statement argument.
#[derive(Debug, Clone, Copy)]
pub enum Arg<'a> {
    I64(Option<i64>),
    I32(Option<i32>),
    Text(Option<&'a str>),
    Bool(bool),
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::I64(Some(v))
    }
}
impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Arg::I64(v)
    }
}
impl From<Option<i32>> for Arg<'_> {
    fn from(v: Option<i32>) -> Self {
        Arg::I32(v)
    }
}
impl From<bool> for Arg<'_> {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}
impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(Some(v))
    }
}
impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(Some(v))
    }
}
impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Arg::Text(v)
    }
}
impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(v: &'a Option<String>) -> Self {
        Arg::Text(v.as_deref())
    }
}

impl<'a> From<&'a crate::domain::ids::MerchantId> for Arg<'a> {
    fn from(v: &'a crate::domain::ids::MerchantId) -> Self {
        Arg::Text(Some(v.as_str()))
    }
}
impl<'a> From<&'a crate::domain::ids::InvoiceNo> for Arg<'a> {
    fn from(v: &'a crate::domain::ids::InvoiceNo) -> Self {
        Arg::Text(Some(v.as_str()))
    }
}

/// `args![a, b, …]`: an argument list, each value converted with `Arg::from`.
macro_rules! args {
    ($($v:expr),* $(,)?) => {
        &[$($crate::store::sql::Arg::from($v)),*]
    };
}
pub(crate) use args;

/// The statements whose text differs between the backends.
#[derive(Debug)]
pub struct Dialect {
    /// Selects one invoice (`$1` merchant, `$2` invoice) and locks it until the transaction ends.
    pub lock_invoice: &'static str,
    /// Claims unpublished events: `$1` lease end, `$2` owner, `$3` now, `$4` limit.
    pub claim_events: &'static str,
    /// Leases invoices due for an inquiry: `$1` owner, `$2` lease end, `$3` now, `$4` limit.
    pub claim_due_invoices: &'static str,
    /// Appended to a selection of rows to delete: lock them, skipping rows others hold.
    pub skip_locked: &'static str,
    /// Folds the gauge deltas writers appended into `gauge_counts` (none where triggers update
    /// the counts directly).
    pub fold_gauges: Option<&'static str>,
    /// One integer: whether a `quarantine` table exists.
    pub quarantine_exists: &'static str,
}

/// A connection the store's operations run on, inside a transaction for writes.
pub trait Sql: Send {
    /// This backend's statements.
    const DIALECT: &'static Dialect;

    /// Runs a statement; the number of rows it changed.
    fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Runs a statement returning invoice rows.
    fn invoices(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> impl Future<Output = Result<Vec<InvoiceRow>, StoreError>> + Send;

    /// Runs a statement returning event rows.
    fn events(&mut self, sql: &str, args: &[Arg<'_>])
        -> impl Future<Output = Result<Vec<EventRow>, StoreError>> + Send;

    /// Runs a statement returning history rows.
    fn history(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> impl Future<Output = Result<Vec<HistoryRow>, StoreError>> + Send;

    /// Runs a statement returning quarantine rows.
    fn quarantine(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> impl Future<Output = Result<Vec<QuarantineRow>, StoreError>> + Send;

    /// The first row of a statement whose columns are all integers (ids, counts, times).
    fn integers(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> impl Future<Output = Result<Option<Vec<Option<i64>>>, StoreError>> + Send;

    /// Rows of a text column and a count.
    fn counts(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> impl Future<Output = Result<Vec<(String, i64)>, StoreError>> + Send;
}

/// Binds `args` to a sqlx query in order (sqlx maps `$n` to the n-th binding on both backends).
pub(crate) fn bind<'q, DB>(
    mut query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    args: &'q [Arg<'q>],
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    DB: sqlx::Database,
    Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<i32>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for arg in args {
        query = match *arg {
            Arg::I64(v) => query.bind(v),
            Arg::I32(v) => query.bind(v),
            Arg::Text(v) => query.bind(v),
            Arg::Bool(v) => query.bind(v),
        };
    }
    query
}

/// `Sql` for a sqlx connection type (`$conn`) of database `$db` with `$dialect`; invoked by each
/// backend (`postgres.rs`, `sqlite.rs`) with its dialect.
macro_rules! sqlx_sql {
    ($conn:ty, $db:ty, $dialect:expr) => {
        impl $crate::store::sql::Sql for $conn {
            const DIALECT: &'static $crate::store::sql::Dialect = $dialect;

            async fn execute(
                &mut self,
                sql: &str,
                args: &[$crate::store::sql::Arg<'_>],
            ) -> Result<u64, $crate::store::StoreError> {
                Ok($crate::store::sql::bind::<$db>(sqlx::query(sql), args).execute(self).await?.rows_affected())
            }

            async fn invoices(
                &mut self,
                sql: &str,
                args: &[$crate::store::sql::Arg<'_>],
            ) -> Result<Vec<$crate::store::InvoiceRow>, $crate::store::StoreError> {
                let rows = $crate::store::sql::bind::<$db>(sqlx::query(sql), args).fetch_all(self).await?;
                Ok(rows
                    .iter()
                    .map(<$crate::store::InvoiceRow as sqlx::FromRow<_>>::from_row)
                    .collect::<Result<_, _>>()?)
            }

            async fn events(
                &mut self,
                sql: &str,
                args: &[$crate::store::sql::Arg<'_>],
            ) -> Result<Vec<$crate::store::EventRow>, $crate::store::StoreError> {
                let rows = $crate::store::sql::bind::<$db>(sqlx::query(sql), args).fetch_all(self).await?;
                Ok(rows
                    .iter()
                    .map(<$crate::store::EventRow as sqlx::FromRow<_>>::from_row)
                    .collect::<Result<_, _>>()?)
            }

            async fn history(
                &mut self,
                sql: &str,
                args: &[$crate::store::sql::Arg<'_>],
            ) -> Result<Vec<$crate::store::HistoryRow>, $crate::store::StoreError> {
                let rows = $crate::store::sql::bind::<$db>(sqlx::query(sql), args).fetch_all(self).await?;
                Ok(rows
                    .iter()
                    .map(<$crate::store::HistoryRow as sqlx::FromRow<_>>::from_row)
                    .collect::<Result<_, _>>()?)
            }

            async fn quarantine(
                &mut self,
                sql: &str,
                args: &[$crate::store::sql::Arg<'_>],
            ) -> Result<Vec<$crate::store::QuarantineRow>, $crate::store::StoreError> {
                let rows = $crate::store::sql::bind::<$db>(sqlx::query(sql), args).fetch_all(self).await?;
                Ok(rows
                    .iter()
                    .map(<$crate::store::QuarantineRow as sqlx::FromRow<_>>::from_row)
                    .collect::<Result<_, _>>()?)
            }

            async fn integers(
                &mut self,
                sql: &str,
                args: &[$crate::store::sql::Arg<'_>],
            ) -> Result<Option<Vec<Option<i64>>>, $crate::store::StoreError> {
                let Some(row) = $crate::store::sql::bind::<$db>(sqlx::query(sql), args).fetch_optional(self).await?
                else {
                    return Ok(None);
                };
                Ok(Some(
                    (0..sqlx::Row::len(&row))
                        .map(|i| sqlx::Row::try_get::<Option<i64>, _>(&row, i))
                        .collect::<Result<_, _>>()?,
                ))
            }

            async fn counts(
                &mut self,
                sql: &str,
                args: &[$crate::store::sql::Arg<'_>],
            ) -> Result<Vec<(String, i64)>, $crate::store::StoreError> {
                let rows = $crate::store::sql::bind::<$db>(sqlx::query(sql), args).fetch_all(self).await?;
                Ok(rows.iter().map(<(String, i64) as sqlx::FromRow<_>>::from_row).collect::<Result<_, _>>()?)
            }
        }
    };
}
pub(crate) use sqlx_sql;
