//! The store's operations, written once against [`Sql`](crate::store::sql::Sql) so that every
//! backend runs the same statements and the same decisions (PostgreSQL's grouped backend
//! notifications, `store/postgres_groups.rs`, write the same rows set-wise and fall back to
//! `apply_observation`). Writes expect to run inside one transaction.
//!
//! `statements` holds the SQL text shared by several operations and the two dialects;
//! `observe` records observations and inquiry answers; `invoices` registers, reads, leases and
//! schedules invoices (browser returns too); `outbox` claims, marks and replays events;
//! `quarantine` keeps notifications the store refused.

mod invoices;
mod observe;
mod outbox;
mod quarantine;
mod statements;

pub use invoices::*;
pub use observe::*;
pub use outbox::*;
pub use quarantine::*;
pub(crate) use statements::{event_columns_sql, invoice_columns_sql, POSTGRES, SQLITE};

use crate::store::sql::{Arg, Sql};
use crate::store::StoreError;

/// Column `i` of an integer row.
pub(crate) fn column(row: &[Option<i64>], i: usize) -> Option<i64> {
    row.get(i).copied().flatten()
}

/// The first column of the first row of an integer query.
pub(crate) async fn scalar<C: Sql>(c: &mut C, sql: &str, args: &[Arg<'_>]) -> Result<Option<i64>, StoreError> {
    Ok(c.integers(sql, args).await?.and_then(|row| column(&row, 0)))
}
