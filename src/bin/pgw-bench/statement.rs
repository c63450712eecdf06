//! `pgw-bench statement-cost`: the fixed cost of one statement through the database driver on
//! this machine (`SELECT 1`, one after the other, from a task on the service's runtime, as the
//! SQLite writer issues its statements). A write that needs k statements in sequence cannot take
//! less than k times this.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use sqlx::{Connection, PgConnection, SqliteConnection};

use crate::db::{BenchDb, DbArgs, StoreKind};
use crate::stats::{fmt_ms, fmt_rate, Latency};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    db: DbArgs,
    /// Statements to time (after 200 untimed).
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    count: u64,
    /// Print the results as JSON instead of the summary.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    store: &'static str,
    statements: usize,
    per_second: f64,
    latency: Latency,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let db = BenchDb::create(&args.db).await?;
    let count = args.count as usize;
    let kind = args.db.store;
    let url = db.url.clone();
    // On a runtime worker, like the store's writer task.
    let result = tokio::spawn(async move { time_statements(kind, &url, count).await }).await;
    db.remove().await;
    let (times, elapsed) = result.context("the timing task failed")??;
    let report = Report {
        store: kind.as_str(),
        statements: count,
        per_second: count as f64 / elapsed.as_secs_f64().max(1e-9),
        latency: Latency::of(times),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let l = &report.latency;
        println!(
            "pgw-bench statement-cost: {}, {} × SELECT 1 one after the other: {} /s; per statement mean {}, p50 {}, \
             p99 {}, max {}",
            report.store,
            fmt_rate(count as f64),
            fmt_rate(report.per_second),
            fmt_ms(l.mean_ms),
            fmt_ms(l.p50_ms),
            fmt_ms(l.p99_ms),
            fmt_ms(l.max_ms)
        );
    }
    Ok(())
}

async fn time_statements(kind: StoreKind, url: &str, count: usize) -> anyhow::Result<(Vec<Duration>, Duration)> {
    let mut times = Vec::with_capacity(count);
    let started;
    match kind {
        StoreKind::Sqlite => {
            use std::str::FromStr;
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
            let mut conn = SqliteConnection::connect_with(&options).await?;
            for _ in 0..200 {
                sqlx::query("SELECT 1").execute(&mut conn).await?;
            }
            started = Instant::now();
            for _ in 0..count {
                let t = Instant::now();
                sqlx::query("SELECT 1").execute(&mut conn).await?;
                times.push(t.elapsed());
            }
            let _ = conn.close().await;
        }
        StoreKind::Postgres => {
            let mut conn = PgConnection::connect(url).await?;
            for _ in 0..200 {
                sqlx::query("SELECT 1").execute(&mut conn).await?;
            }
            started = Instant::now();
            for _ in 0..count {
                let t = Instant::now();
                sqlx::query("SELECT 1").execute(&mut conn).await?;
                times.push(t.elapsed());
            }
            let _ = conn.close().await;
        }
    }
    Ok((times, started.elapsed()))
}
