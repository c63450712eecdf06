//! PostgreSQL backend: one transaction per write, row locks (`FOR UPDATE`) per invoice and
//! `FOR UPDATE SKIP LOCKED` claims so several replicas share the outbox.

use std::time::Duration;

use futures_util::future::BoxFuture;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgConnection, PgPool};

use crate::config::DatabaseSettings;
use crate::store::now_ms;

#[allow(dead_code)]
type Db = sqlx::Postgres;
type Conn = PgConnection;
type Backend = PgStore;

const SELECT_INVOICE_LOCKED: &str = "SELECT merchant_id, invoice_no, status, amount_minor, currency, exponent, origin, trusted, sequence, \
    resp_code, resp_desc, tran_ref, notified_at, returned_at, needs_review, expires_at, next_inquiry_at, \
    inquiry_attempts, last_inquiry_at, created_at, updated_at FROM invoices WHERE merchant_id = $1 AND invoice_no = $2 FOR UPDATE";

const CLAIM_EVENTS: &str = "UPDATE events SET claimed_until = $1, claimed_by = $2 WHERE seq IN (\
    SELECT seq FROM events WHERE published_at IS NULL AND (claimed_until IS NULL OR claimed_until < $3) ORDER BY seq LIMIT $4 \
    FOR UPDATE SKIP LOCKED) \
    RETURNING seq, event_id, merchant_id, invoice_no, sequence, event_type, body, created_at, published_at, attempts";

const CLAIM_DUE_INVOICES: &str =
    "UPDATE invoices SET lease_owner = $1, lease_until = $2 WHERE (merchant_id, invoice_no) IN (\
    SELECT merchant_id, invoice_no FROM invoices WHERE next_inquiry_at IS NOT NULL AND next_inquiry_at <= $3 \
    AND (lease_until IS NULL OR lease_until < $3) ORDER BY next_inquiry_at LIMIT $4 FOR UPDATE SKIP LOCKED) \
    RETURNING merchant_id, invoice_no, status, amount_minor, currency, exponent, origin, trusted, sequence, \
    resp_code, resp_desc, tran_ref, notified_at, returned_at, needs_review, expires_at, next_inquiry_at, \
    inquiry_attempts, last_inquiry_at, created_at, updated_at";

include!("ops.rs");

/// The PostgreSQL store.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Builds a lazy pool: the first query connects.
    pub fn connect(url: &str, settings: &DatabaseSettings) -> Result<Self, StoreError> {
        let options: PgConnectOptions = url.parse()?;
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections)
            .acquire_timeout(Duration::from_secs(3))
            .connect_lazy_with(options.application_name("pgw-relay"));
        Ok(PgStore { pool })
    }

    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: for<'c> FnOnce(&'c mut PgConnection) -> BoxFuture<'c, Result<T, StoreError>>,
    {
        let mut tx = self.pool.begin().await?;
        let value = f(&mut tx).await?;
        tx.commit().await?;
        Ok(value)
    }

    async fn read(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, StoreError> {
        Ok(self.pool.acquire().await?)
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("migrations/postgres").run(&self.pool).await?;
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
