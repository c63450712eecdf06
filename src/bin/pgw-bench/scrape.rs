//! `pgw-bench scrape`: what a Prometheus scrape (`GET /metrics`) and a readiness probe
//! (`GET /readyz`) cost with many invoices stored. A fresh database is filled with bulk SQL
//! (invoices in every state, one event per settled invoice, a few unpublished), the service is
//! started in this process, and both endpoints are timed over HTTP at two table sizes. For
//! comparison it also times the full-table count a scrape used to run.

use std::time::{Duration, Instant};

use anyhow::Context;
use pgw_relay::config::Sources;
use pgw_relay::startup::Application;
use pgw_relay::store::now_ms;
use serde::Serialize;
use sqlx::{Connection, PgConnection, SqliteConnection};

use crate::db::{BenchDb, DbArgs, StoreKind};
use crate::stats::{fmt_ms, fmt_rate, Latency};

/// Rows per bulk-insert transaction while filling.
const FILL_CHUNK: i64 = 50_000;
/// Events left unpublished (the outbox backlog the gauges report).
const UNPUBLISHED: i64 = 100;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    db: DbArgs,
    /// Invoices in the large table.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    invoices: u64,
    /// Invoices in the small table to compare with; 0 skips it.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
    compare: u64,
    /// Timed scrapes per endpoint and size (after 3 untimed ones).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    scrapes: u64,
    /// Print the results as JSON instead of the summary.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct SizeReport {
    invoices: i64,
    events: i64,
    fill_seconds: f64,
    metrics: Latency,
    readyz: Latency,
    /// The statements `/metrics` ran per scrape before the kept counts (for comparison).
    full_count: Latency,
}

#[derive(Debug, Serialize)]
struct Report {
    store: &'static str,
    scrapes: u64,
    sizes: Vec<SizeReport>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut sizes = vec![args.invoices as i64];
    if args.compare > 0 && args.compare != args.invoices {
        sizes.insert(0, args.compare as i64);
        sizes.sort_unstable();
    }
    let mut reports = Vec::new();
    for n in sizes {
        if !args.json {
            eprintln!("filling {} invoices…", fmt_rate(n as f64));
        }
        let db = BenchDb::create(&args.db).await?;
        let result = measure(&args, &db, n).await;
        db.remove().await;
        reports.push(result?);
    }
    let report = Report { store: args.db.store.as_str(), scrapes: args.scrapes, sizes: reports };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_summary(&report);
    }
    Ok(())
}

async fn measure(args: &Args, db: &BenchDb, n: i64) -> anyhow::Result<SizeReport> {
    let store = db.store(&args.db, 4, 256).await?;
    let mut direct = Direct::connect(args.db.store, &db.url).await?;
    let filling = Instant::now();
    let events = direct.fill(n).await?;
    // The relay folds the counters every second; do what it would have done by now.
    while direct.pending_deltas().await? > 0 {
        store.gauges().await?;
    }
    // Autovacuum would have cleared the folded rows while a real table grew this large.
    direct.vacuum().await?;
    let fill_seconds = filling.elapsed().as_secs_f64();
    let gauges = store.gauges().await?;
    let trusted: i64 = gauges.invoices.iter().map(|(_, c)| c).sum();
    anyhow::ensure!(trusted == n, "the kept counts say {trusted} invoices, the table has {n}");
    let backlog = (n + 8).min(UNPUBLISHED * 10) / 10;
    anyhow::ensure!(
        gauges.outbox_backlog == backlog,
        "the kept backlog is {}, expected {backlog}",
        gauges.outbox_backlog
    );

    let service = start(db).await?;
    let client = reqwest::Client::new();
    let time = |path: &'static str| {
        let (client, url) = (client.clone(), format!("http://{}{path}", service.1));
        async move {
            let mut times = Vec::new();
            for i in 0..args.scrapes + 3 {
                let started = Instant::now();
                let res = client.get(&url).send().await?;
                anyhow::ensure!(res.status().is_success(), "{path} answered {}", res.status());
                res.bytes().await?;
                if i >= 3 {
                    times.push(started.elapsed());
                }
            }
            anyhow::Ok(Latency::of(times))
        }
    };
    let metrics = time("/metrics").await?;
    let readyz = time("/readyz").await?;
    service.0.cancel();
    let mut full = Vec::new();
    for _ in 0..args.scrapes.min(10) {
        let started = Instant::now();
        direct.full_count().await?;
        full.push(started.elapsed());
    }
    direct.close().await;
    Ok(SizeReport { invoices: n, events, fill_seconds, metrics, readyz, full_count: Latency::of(full) })
}

/// Starts the service on loopback (broker and gateway unreachable, reconciliation off); the
/// shutdown token and the internal address.
async fn start(db: &BenchDb) -> anyhow::Result<(tokio_util::sync::CancellationToken, std::net::SocketAddr)> {
    let file = db.dir.join("scrape.toml");
    let toml = format!(
        r#"
[server]
public_addr = "127.0.0.1:0"
internal_addr = "127.0.0.1:0"
shutdown_timeout = "1s"
[log]
filter = "error"
[database]
url = "{}"
[broker]
url = "amqp://guest:guest@127.0.0.1:9/%2f"
default_queue = ""
[gateway]
base_url = "http://127.0.0.1:9"
[reconcile]
enabled = false
"#,
        db.url
    );
    std::fs::write(&file, toml).with_context(|| format!("cannot write {}", file.display()))?;
    let sources = Sources { dir: Some(db.dir.clone()), env_name: None, files: vec![file], use_environment: false };
    let config = pgw_relay::config::load(&sources)?;
    let app = Application::build(config).await.context("the service did not start")?;
    let (internal, token) = (app.internal_addr(), app.shutdown_token());
    tokio::spawn(app.run_until_stopped());
    Ok((token, internal))
}

enum Direct {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

/// Invoice `i`: one in ten pending, the rest settled (mostly succeeded).
const STATUS: &str =
    "CASE i % 10 WHEN 0 THEN 'pending' WHEN 8 THEN 'failed' WHEN 9 THEN 'cancelled' ELSE 'succeeded' END";

fn invoices_sql(kind: StoreKind) -> String {
    let (series, number) = match kind {
        StoreKind::Sqlite => {
            ("WITH RECURSIVE n(i) AS (SELECT $1 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $2) ", "printf('S%09d', i)")
        }
        StoreKind::Postgres => ("", "'S' || lpad(i::text, 9, '0')"),
    };
    let from = match kind {
        StoreKind::Sqlite => "FROM n",
        StoreKind::Postgres => "FROM generate_series($1::bigint, $2::bigint - 1) AS i",
    };
    format!(
        "{series}INSERT INTO invoices (merchant_id, invoice_no, status, amount_minor, currency, exponent, origin, \
         trusted, sequence, created_at, updated_at) \
         SELECT 'JT01', {number}, {STATUS}, 100000, 'SGD', 2, 'registered', TRUE, 1, $3 - i, $3 - i {from}"
    )
}

fn events_sql(kind: StoreKind) -> String {
    let (series, number, from) = match kind {
        StoreKind::Sqlite => (
            "WITH RECURSIVE n(i) AS (SELECT $1 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $2) ",
            "printf('S%09d', i)",
            "FROM n",
        ),
        StoreKind::Postgres => {
            ("", "'S' || lpad(i::text, 9, '0')", "FROM generate_series($1::bigint, $2::bigint - 1) AS i")
        }
    };
    format!(
        "{series}INSERT INTO events (event_id, merchant_id, invoice_no, sequence, event_type, body, created_at, \
         published_at) SELECT 'bench-' || {number}, 'JT01', {number}, 1, 'payment.succeeded', '{{}}', $3 - i, \
         CASE WHEN i % 10 = 1 AND i < {UNPUBLISHED} * 10 THEN NULL ELSE $3 END {from} WHERE i % 10 <> 0"
    )
}

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

    /// Inserts `n` invoices and one event per settled one; the number of events.
    async fn fill(&mut self, n: i64) -> anyhow::Result<i64> {
        let now = now_ms();
        let kind = match self {
            Direct::Sqlite(_) => StoreKind::Sqlite,
            Direct::Postgres(_) => StoreKind::Postgres,
        };
        for sql in [invoices_sql(kind), events_sql(kind)] {
            let mut start = 0;
            while start < n {
                let end = (start + FILL_CHUNK).min(n);
                match self {
                    Direct::Sqlite(c) => {
                        let q = sqlx::query(&sql).bind(start).bind(end).bind(now);
                        q.execute(&mut *c).await.context("bulk insert")?;
                    }
                    Direct::Postgres(c) => {
                        let q = sqlx::query(&sql).bind(start).bind(end).bind(now);
                        q.execute(&mut *c).await.context("bulk insert")?;
                    }
                }
                start = end;
            }
        }
        if let Direct::Postgres(c) = self {
            sqlx::query("VACUUM ANALYZE").execute(&mut *c).await?;
        }
        // Invoice i has an event unless i % 10 == 0.
        Ok(n - (n + 9) / 10)
    }

    /// Vacuums the counters' delta table (PostgreSQL).
    async fn vacuum(&mut self) -> anyhow::Result<()> {
        if let Direct::Postgres(c) = self {
            sqlx::query("VACUUM gauge_deltas").execute(&mut *c).await?;
        }
        Ok(())
    }

    async fn pending_deltas(&mut self) -> anyhow::Result<i64> {
        const SQL: &str = "SELECT COUNT(*) FROM gauge_deltas";
        Ok(match self {
            Direct::Sqlite(c) => sqlx::query_scalar(SQL).fetch_one(&mut *c).await?,
            Direct::Postgres(c) => sqlx::query_scalar(SQL).fetch_one(&mut *c).await?,
        })
    }

    /// What every scrape used to run: counts over the whole invoice table and the outbox.
    async fn full_count(&mut self) -> anyhow::Result<()> {
        const BY_STATUS: &str = "SELECT status, COUNT(*) FROM invoices WHERE trusted = TRUE GROUP BY status";
        const OUTBOX: &str = "SELECT COUNT(*), MIN(created_at) FROM events WHERE published_at IS NULL";
        match self {
            Direct::Sqlite(c) => {
                sqlx::query(BY_STATUS).fetch_all(&mut *c).await?;
                sqlx::query(OUTBOX).fetch_all(&mut *c).await?;
            }
            Direct::Postgres(c) => {
                sqlx::query(BY_STATUS).fetch_all(&mut *c).await?;
                sqlx::query(OUTBOX).fetch_all(&mut *c).await?;
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

fn print_summary(r: &Report) {
    println!("pgw-bench scrape: {}, {} timed requests per endpoint and size (after 3 untimed)", r.store, r.scrapes);
    println!();
    println!(
        "{:<12} {:>9} {:>13} {:>13} {:>13} {:>13}   {:>16}",
        "invoices", "fill", "/metrics p50", "/metrics p99", "/readyz p50", "/readyz p99", "full count p50"
    );
    for s in &r.sizes {
        println!(
            "{:<12} {:>9} {:>13} {:>13} {:>13} {:>13}   {:>16}",
            fmt_rate(s.invoices as f64),
            format!("{:.1} s", s.fill_seconds),
            fmt_ms(s.metrics.p50_ms),
            fmt_ms(s.metrics.p99_ms),
            fmt_ms(s.readyz.p50_ms),
            fmt_ms(s.readyz.p99_ms),
            fmt_ms(s.full_count.p50_ms),
        );
    }
    println!();
    println!("full count: the GROUP BY status and outbox COUNT a scrape ran before the kept counts.");
}
