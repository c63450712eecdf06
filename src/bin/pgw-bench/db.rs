//! A database made for one run and removed afterwards.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use sqlx::Connection;

/// Which store to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    Sqlite,
    Postgres,
}

impl StoreKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Sqlite => "sqlite",
            StoreKind::Postgres => "postgres",
        }
    }
}

/// Where the run's database lives.
#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    /// Store backend: a temporary SQLite file, or a fresh PostgreSQL database.
    #[arg(long, value_enum)]
    pub store: StoreKind,
    /// Directory for the run's working files (configuration, SQLite database). Defaults to the
    /// system temporary directory; its file system decides what an fsync costs.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL server to create the run's database on (any existing database on it).
    #[arg(
        long,
        value_name = "URL",
        env = "PGW_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    pub postgres_url: String,
    /// Diagnostic: drop the triggers that keep the scrape gauges right after migrating, to
    /// measure what they cost every write. The service's invoice and outbox gauges are then wrong.
    #[arg(long)]
    pub without_gauge_triggers: bool,
}

/// The gauge triggers, per store (migration 0005; PostgreSQL's per statement since 0008).
const POSTGRES_GAUGE_TRIGGERS: &str = "DROP TRIGGER invoices_count_insert ON invoices; \
    DROP TRIGGER invoices_count_update ON invoices; DROP TRIGGER invoices_count_delete ON invoices; \
    DROP TRIGGER events_count_insert ON events; DROP TRIGGER events_count_update ON events; \
    DROP TRIGGER events_count_delete ON events";
const SQLITE_GAUGE_TRIGGERS: &str = "DROP TRIGGER invoices_count_insert; DROP TRIGGER invoices_count_delete; \
    DROP TRIGGER invoices_count_update; DROP TRIGGER events_count_insert; DROP TRIGGER events_count_delete; \
    DROP TRIGGER events_count_update";

/// A fresh database and the working directory of one run.
pub struct BenchDb {
    /// Connection URL for the service and the store.
    pub url: String,
    /// The run's working directory (removed with the database).
    pub dir: PathBuf,
    postgres: Option<(String, String)>,
}

impl BenchDb {
    /// PostgreSQL: transactions committed in the run's database and WAL bytes the server has
    /// written, so far (`None` on SQLite). The server publishes its counters about once a second:
    /// read after a pause.
    pub async fn postgres_counters(&self) -> anyhow::Result<Option<(i64, i64)>> {
        if self.postgres.is_none() {
            return Ok(None);
        }
        let mut c = sqlx::PgConnection::connect(&self.url).await?;
        let counters = sqlx::query_as(
            "SELECT xact_commit, (SELECT wal_bytes::bigint FROM pg_stat_wal) FROM pg_stat_database \
             WHERE datname = current_database()",
        )
        .fetch_one(&mut c)
        .await?;
        c.close().await?;
        Ok(Some(counters))
    }

    /// Creates the working directory and the database.
    pub async fn create(args: &DbArgs) -> anyhow::Result<BenchDb> {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let base = args.data_dir.clone().unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!("pgw-bench-{}", &id[id.len() - 12..]));
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        match args.store {
            StoreKind::Sqlite => {
                let url = format!("sqlite://{}", dir.join("relay.db").display());
                Ok(BenchDb { url, dir, postgres: None })
            }
            StoreKind::Postgres => {
                let name = format!("pgw_bench_{id}");
                let created = async {
                    let mut admin = sqlx::PgConnection::connect(&args.postgres_url)
                        .await
                        .with_context(|| format!("cannot connect to PostgreSQL at {}", redact(&args.postgres_url)))?;
                    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
                        .execute(&mut admin)
                        .await
                        .with_context(|| format!("cannot create database {name}"))?;
                    let _ = admin.close().await;
                    let mut url = url::Url::parse(&args.postgres_url).context("--postgres-url is not a URL")?;
                    url.set_path(&name);
                    anyhow::Ok(url.to_string())
                }
                .await;
                match created {
                    Ok(url) => Ok(BenchDb { url, dir, postgres: Some((args.postgres_url.clone(), name)) }),
                    Err(e) => {
                        let _ = std::fs::remove_dir_all(&dir);
                        Err(e)
                    }
                }
            }
        }
    }

    /// A store on the run's database with `max_connections` and `write_batch`, migrated (see
    /// [`BenchDb::migrate`]).
    pub async fn store(
        &self,
        args: &DbArgs,
        max_connections: u32,
        write_batch: usize,
    ) -> anyhow::Result<pgw_relay::store::Store> {
        let settings = pgw_relay::config::DatabaseSettings {
            url: secrecy::SecretString::from(self.url.clone()),
            migrate_on_start: true,
            max_connections,
            write_batch,
            group_writers: 1,
        };
        let store = pgw_relay::store::Store::connect(&settings).await?;
        self.migrate(args, &store).await?;
        Ok(store)
    }

    /// Migrates the run's database through `store`, then drops the gauge triggers if
    /// `--without-gauge-triggers` asks (the service's own migration at start is then a no-op).
    pub async fn migrate(&self, args: &DbArgs, store: &pgw_relay::store::Store) -> anyhow::Result<()> {
        store.migrate().await?;
        if args.without_gauge_triggers {
            use sqlx::Executor;
            match args.store {
                StoreKind::Sqlite => {
                    let mut c = sqlx::SqliteConnection::connect(&self.url).await?;
                    c.execute(SQLITE_GAUGE_TRIGGERS).await?;
                }
                StoreKind::Postgres => {
                    let mut c = sqlx::PgConnection::connect(&self.url).await?;
                    c.execute(POSTGRES_GAUGE_TRIGGERS).await?;
                }
            }
            eprintln!("pgw-bench: gauge triggers dropped (--without-gauge-triggers): the gauges are not kept");
        }
        Ok(())
    }

    /// Drops the database and removes the working directory.
    pub async fn remove(self) {
        if let Some((admin_url, name)) = &self.postgres {
            if let Ok(mut admin) = sqlx::PgConnection::connect(admin_url).await {
                let dropped =
                    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).execute(&mut admin).await;
                if let Err(e) = dropped {
                    eprintln!("pgw-bench: could not drop database {name}: {e}");
                }
                let _ = admin.close().await;
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("pgw-bench: could not remove {}: {e}", self.dir.display());
        }
    }
}

/// A URL with its password hidden.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}
