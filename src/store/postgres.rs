//! PostgreSQL backend: one transaction per write, row locks (`FOR UPDATE`) per invoice and
//! `FOR UPDATE SKIP LOCKED` claims so several replicas share the outbox and the reconciliation.
//! Observations (the bulk of the writes) go through the group writers of `postgres_groups.rs`.
//!
//! Every database call runs on the runtime that connected the store (the service's main
//! runtime): pool connections then belong to a runtime that outlives the HTTP workers, so the
//! outbox can still be flushed after the listeners have stopped.

use std::future::Future;
use std::time::Duration;

use futures_util::future::BoxFuture;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool};
use tokio::runtime::Handle;

use crate::clock::now_ms;
use crate::config::DatabaseSettings;
use crate::store::postgres_groups::GroupWriter;
use crate::store::StoreError;

/// The PostgreSQL store.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    runtime: Handle,
    observations: GroupWriter,
}

impl PgStore {
    /// Builds a lazy pool (the first query connects) bound to the current runtime.
    pub fn connect(url: &str, settings: &DatabaseSettings) -> Result<Self, StoreError> {
        let options: PgConnectOptions = url.parse()?;
        let runtime = Handle::try_current()
            .map_err(|e| StoreError::Unavailable(format!("the PostgreSQL store needs a Tokio runtime: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(Duration::from_secs(3))
            .connect_lazy_with(options.application_name("pgw-relay"));
        // `database.group_writers`, at most a quarter of the pool so that reads, the relay and the
        // reconciliation keep connections. Fewer writers make larger groups, and PostgreSQL's cost
        // per notification is mostly per transaction at moderate rates (docs/benchmark.md).
        let writers = settings.group_writers.min(settings.max_connections as usize / 4).max(1);
        // Busy writers keep their connections only if that leaves at least as many to the rest.
        let keep = settings.max_connections as usize >= 2 * writers;
        let observations = GroupWriter::start(pool.clone(), &runtime, writers, settings.write_batch, keep);
        Ok(PgStore { pool, runtime, observations })
    }

    /// Runs `write` (given the connection and the time, Unix ms) in one transaction.
    pub async fn write<T, F>(&self, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut PgConnection, i64) -> BoxFuture<'c, Result<T, StoreError>> + Send + 'static,
    {
        let pool = self.pool.clone();
        self.run(async move {
            let mut tx = pool.begin().await?;
            let value = write(&mut tx, now_ms()).await?;
            tx.commit().await?;
            Ok(value)
        })
        .await
    }

    /// The group writers that record observations (`postgres_groups.rs`).
    pub fn observations(&self) -> &GroupWriter {
        &self.observations
    }

    /// Runs `read` on a pooled connection.
    pub async fn read<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut PgConnection) -> BoxFuture<'c, Result<T, StoreError>> + Send + 'static,
    {
        let pool = self.pool.clone();
        self.run(async move { read(&mut *pool.acquire().await?).await }).await
    }

    async fn run<T: Send + 'static>(
        &self,
        task: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.runtime
            .spawn(task)
            .await
            .map_err(|e| StoreError::Unavailable(format!("the database task did not finish: {e}")))?
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        let pool = self.pool.clone();
        self.run(async move { Ok(sqlx::migrate!("migrations/postgres").run(&pool).await?) }).await
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.read(|c| Box::pin(async move { Ok(sqlx::query("SELECT 1").execute(c).await.map(|_| ())?) })).await
    }
}

crate::store::sql::sqlx_sql!(sqlx::PgConnection, sqlx::Postgres, &crate::store::ops::POSTGRES);
