//! `pgw-bench reconcile-tick`: the cost of one reconciliation claim on a large table. A fresh
//! database gets many pending invoices scheduled in the future plus a few due now; each tick
//! claims the due ones with `Store::claim_due_invoices` and then releases their leases so the
//! next tick finds them again. Run at two table sizes: the time per tick must not follow the size.

use std::time::{Duration, Instant};

use anyhow::Context;
use pgw_relay::store::now_ms;
use serde::Serialize;
use sqlx::{Connection, PgConnection, SqliteConnection};

use crate::db::{BenchDb, DbArgs, StoreKind};
use crate::stats::{fmt_ms, fmt_rate, Latency};

/// Rows per bulk-insert transaction while filling.
const FILL_CHUNK: usize = 50_000;
const OWNER: &str = "pgw-bench";
const LEASE: Duration = Duration::from_secs(120);
/// `reconcile.give_up_after` default, for the stats query.
const GIVE_UP_AFTER: Duration = Duration::from_secs(48 * 3600);

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    db: DbArgs,
    /// Pending invoices scheduled in the future (not due): the large part of the table.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
    invoices: u64,
    /// Invoices due now; each tick claims this many (the claim's limit).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    due: u64,
    /// Timed ticks per table size (after one untimed warm-up tick).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    ticks: u64,
    /// A second, smaller table size to compare with; 0 skips it.
    #[arg(long, value_name = "INVOICES", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
    compare: u64,
    /// Print the results as JSON instead of the summary.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct SizeReport {
    future_invoices: usize,
    due_invoices: usize,
    fill_seconds: f64,
    /// `claim_due_invoices(limit = due)`, per tick.
    tick: Latency,
    /// `reconcile_stats` (the loop refreshes its gauges with it every 10 s), per call.
    stats_refresh: Latency,
}

#[derive(Debug, Serialize)]
struct Report {
    store: &'static str,
    ticks: usize,
    sizes: Vec<SizeReport>,
    /// Median tick at the largest size ÷ at the smallest.
    median_ratio: Option<f64>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut sizes: Vec<usize> = vec![args.invoices as usize];
    if args.compare > 0 && args.compare != args.invoices {
        sizes.insert(0, args.compare as usize);
        sizes.sort_unstable();
    }
    let mut reports = Vec::new();
    for future in sizes {
        if !args.json {
            eprintln!("filling {} future + {} due invoices…", fmt_rate(future as f64), args.due);
        }
        let db = BenchDb::create(&args.db).await?;
        let result = measure(&args, &db, future).await;
        db.remove().await;
        reports.push(result?);
    }
    let median_ratio = match (reports.first(), reports.last()) {
        (Some(small), Some(large)) if reports.len() > 1 => Some(large.tick.p50_ms / small.tick.p50_ms.max(1e-9)),
        _ => None,
    };
    let report = Report { store: args.db.store.as_str(), ticks: args.ticks as usize, sizes: reports, median_ratio };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_summary(&report, args.due as usize);
    }
    Ok(())
}

async fn measure(args: &Args, db: &BenchDb, future: usize) -> anyhow::Result<SizeReport> {
    let due = args.due as usize;
    let store = db.store(&args.db, 4, 256).await?;
    let mut direct = Direct::connect(args.db.store, &db.url).await?;

    let filling = Instant::now();
    let now = now_ms();
    // Future invoices: due in an hour or later. Due ones: scheduled in the last ten minutes.
    direct.fill("F", future, now + 3_600_000, now).await?;
    direct.fill("D", due, now - 600_000, now).await?;
    direct.analyze().await?;
    let fill_seconds = filling.elapsed().as_secs_f64();

    let tick = || async {
        let started = Instant::now();
        let rows = store.claim_due_invoices(OWNER, due as i64, LEASE, true).await?;
        let elapsed = started.elapsed();
        anyhow::ensure!(rows.len() == due, "a tick claimed {} invoices, expected {due}", rows.len());
        anyhow::Ok(elapsed)
    };
    tick().await?;
    direct.release_due().await?;
    let mut times = Vec::with_capacity(args.ticks as usize);
    for _ in 0..args.ticks {
        times.push(tick().await?);
        direct.release_due().await?;
    }
    let mut stats_times = Vec::new();
    for _ in 0..args.ticks.min(5) {
        let started = Instant::now();
        store.reconcile_stats(GIVE_UP_AFTER).await?;
        stats_times.push(started.elapsed());
    }
    direct.close().await;
    Ok(SizeReport {
        future_invoices: future,
        due_invoices: due,
        fill_seconds,
        tick: Latency::of(times),
        stats_refresh: Latency::of(stats_times),
    })
}

/// A plain connection for bulk setup, beside the store under test.
enum Direct {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

const SQLITE_FILL: &str = "WITH RECURSIVE n(i) AS (SELECT $1 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $2) \
    INSERT INTO invoices (merchant_id, invoice_no, status, amount_minor, currency, exponent, origin, trusted, \
    sequence, expires_at, next_inquiry_at, created_at, updated_at) \
    SELECT 'JT01', $3 || printf('%09d', i), 'pending', 100000, 'SGD', 2, 'registered', TRUE, 0, $4 + 1800000, $4 + i, $5, $5 \
    FROM n";

const POSTGRES_FILL: &str = "INSERT INTO invoices (merchant_id, invoice_no, status, amount_minor, currency, exponent, \
    origin, trusted, sequence, expires_at, next_inquiry_at, created_at, updated_at) \
    SELECT 'JT01', $3 || lpad(i::text, 9, '0'), 'pending', 100000, 'SGD', 2, 'registered', TRUE, 0, $4 + 1800000, $4 + i, $5, $5 \
    FROM generate_series($1::bigint, $2::bigint - 1) AS i";

/// Clears the leases of the due invoices (named `D…`), so they are due again.
const RELEASE_DUE: &str = "UPDATE invoices SET lease_owner = NULL, lease_until = NULL \
    WHERE merchant_id = 'JT01' AND invoice_no >= 'D' AND invoice_no < 'E'";

impl Direct {
    async fn connect(kind: StoreKind, url: &str) -> anyhow::Result<Direct> {
        Ok(match kind {
            StoreKind::Sqlite => {
                use std::str::FromStr;
                let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?.busy_timeout(Duration::from_secs(10));
                Direct::Sqlite(SqliteConnection::connect_with(&options).await.context("cannot open the SQLite file")?)
            }
            StoreKind::Postgres => {
                Direct::Postgres(PgConnection::connect(url).await.context("cannot connect to the run's database")?)
            }
        })
    }

    /// Inserts `count` pending invoices `{prefix}000000000…`, the n-th scheduled at `first_due + n`
    /// (ms), in transactions of [`FILL_CHUNK`] rows.
    async fn fill(&mut self, prefix: &str, count: usize, first_due: i64, now: i64) -> anyhow::Result<()> {
        let mut start = 0;
        while start < count {
            let end = (start + FILL_CHUNK).min(count);
            let (from, to) = (start as i64, end as i64);
            match self {
                Direct::Sqlite(c) => {
                    let mut tx = c.begin().await?;
                    let q = sqlx::query(SQLITE_FILL).bind(from).bind(to).bind(prefix).bind(first_due).bind(now);
                    q.execute(&mut *tx).await.context("bulk insert")?;
                    tx.commit().await?;
                }
                Direct::Postgres(c) => {
                    let mut tx = c.begin().await?;
                    let q = sqlx::query(POSTGRES_FILL).bind(from).bind(to).bind(prefix).bind(first_due).bind(now);
                    q.execute(&mut *tx).await.context("bulk insert")?;
                    tx.commit().await?;
                }
            }
            start = end;
        }
        Ok(())
    }

    /// Planner statistics and a vacuumed table, as a long-running database has them; otherwise
    /// autovacuum would process the freshly filled table during the ticks (PostgreSQL only).
    async fn analyze(&mut self) -> anyhow::Result<()> {
        if let Direct::Postgres(c) = self {
            sqlx::query("VACUUM ANALYZE invoices").execute(&mut *c).await?;
        }
        Ok(())
    }

    async fn release_due(&mut self) -> anyhow::Result<()> {
        match self {
            Direct::Sqlite(c) => {
                sqlx::query(RELEASE_DUE).execute(&mut *c).await?;
            }
            Direct::Postgres(c) => {
                sqlx::query(RELEASE_DUE).execute(&mut *c).await?;
            }
        }
        Ok(())
    }

    async fn close(self) {
        let _ = match self {
            Direct::Sqlite(c) => c.close().await,
            Direct::Postgres(c) => c.close().await,
        };
    }
}

fn print_summary(r: &Report, due: usize) {
    println!(
        "pgw-bench reconcile-tick: {}, claim_due_invoices(limit {due}) with {due} due, {} timed ticks per size \
         (after 1 warm-up)",
        r.store, r.ticks
    );
    println!();
    println!(
        "{:<26} {:>8} {:>10} {:>10} {:>10} {:>10}   {:>14}",
        "invoices in the table", "fill", "tick p50", "tick p99", "min", "max", "stats refresh"
    );
    for s in &r.sizes {
        println!(
            "{:<26} {:>8} {:>10} {:>10} {:>10} {:>10}   {:>14}",
            format!("{} future + {}", fmt_rate(s.future_invoices as f64), s.due_invoices),
            format!("{:.2} s", s.fill_seconds),
            fmt_ms(s.tick.p50_ms),
            fmt_ms(s.tick.p99_ms),
            fmt_ms(s.tick.min_ms),
            fmt_ms(s.tick.max_ms),
            fmt_ms(s.stats_refresh.p50_ms),
        );
    }
    if let Some(ratio) = r.median_ratio {
        println!();
        println!(
            "median tick, largest ÷ smallest table: {ratio:.2} (table {:.0}× larger)",
            r.sizes.last().map(|l| l.future_invoices).unwrap_or(0) as f64
                / r.sizes.first().map(|s| s.future_invoices.max(1)).unwrap_or(1) as f64
        );
    }
    println!("stats refresh: Store::reconcile_stats (median of up to 5 calls); the loop runs it every 10 s.");
}
