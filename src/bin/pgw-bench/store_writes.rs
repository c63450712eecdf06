//! `pgw-bench store-writes`: the store alone, without HTTP. The same distinct notifications as
//! `notifications`, already verified and normalised, recorded with `Store::record_observation`
//! by `concurrency` tasks. Compared with `notifications`, it tells whether the store or the
//! HTTP path limits throughput.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::FixedOffset;
use pgw_relay::domain::observation::{Observation, Source};
use pgw_relay::protocol::payment_result::PaymentResult;
use pgw_relay::store::{now_ms, Timing};
use serde::Serialize;

use crate::cpu::Machine;
use crate::db::{BenchDb, DbArgs};
use crate::load::{LoadArgs, Plan, Request};
use crate::notifications::{claims, phase_with_run, Phase, MERCHANT, MERCHANT_KEY};
use crate::stats::{fmt_ms, fmt_rate};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    load: LoadArgs,
    /// `database.write_batch`: writes sharing one SQLite transaction at most.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    write_batch: u64,
    /// Print the results as JSON instead of the summary.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    store: &'static str,
    count: usize,
    concurrency: usize,
    write_batch: usize,
    machine: Machine,
    writes: Phase,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let db = BenchDb::create(&args.db).await?;
    let load_rt = crate::load::runtime()?;
    let result = measure(&args, &db, load_rt.handle()).await;
    load_rt.shutdown_background();
    db.remove().await;
    let report = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let w = &report.writes;
        println!(
            "pgw-bench store-writes: {}, {} distinct notifications recorded without HTTP, concurrency {}, write_batch {}",
            report.store,
            fmt_rate(report.count as f64),
            report.concurrency,
            report.write_batch
        );
        println!("machine: {}", report.machine);
        println!(
            "writes: {} ok, {} errors, {} /s; p50 {}, p90 {}, p99 {}, max {}",
            fmt_rate(w.ok as f64),
            w.errors.values().sum::<usize>(),
            fmt_rate(w.per_second),
            fmt_ms(w.latency.p50_ms),
            fmt_ms(w.latency.p90_ms),
            fmt_ms(w.latency.p99_ms),
            fmt_ms(w.latency.max_ms)
        );
        println!("cpu ({:.1} s): {}", w.cpu.wall_seconds, w.cpu.line());
        println!("cpu per write: {}", w.cpu.micros_line(w.per_second));
        for (e, c) in &w.errors {
            println!("error: {e} × {c}");
        }
    }
    Ok(())
}

async fn measure(args: &Args, db: &BenchDb, load_rt: &tokio::runtime::Handle) -> anyhow::Result<Report> {
    let count = args.load.count as usize;
    let store = db.store(&args.db, 16, args.write_batch as usize).await?;

    let run_id = uuid::Uuid::now_v7().simple().to_string();
    let prefix = format!("S{}", &run_id[run_id.len() - 8..]);
    let zone = FixedOffset::east_opt(8 * 3600).context("time zone")?;
    let mut writes = Vec::with_capacity(count);
    for i in 0..count {
        let claims = claims(&prefix, i);
        let token = pgw_relay::protocol::jwt::sign(&claims, MERCHANT_KEY);
        let result: PaymentResult = serde_json::from_value(claims)?;
        let obs = Observation::from_payment_result(&result, Source::BackendNotification, MERCHANT, zone, now_ms())?;
        writes.push((obs, token, format!("bn:{prefix}{i}")));
    }
    let writes = Arc::new(writes);
    let timing = Timing { grace: Duration::from_secs(300), payment_window: Duration::from_secs(1800) };
    // The closure gets its own handle: the store (and its SQLite threads, whose CPU time is
    // read after the phase) must outlive the load loop.
    let handle = store.clone();
    let request: Request = Arc::new(move |i| {
        let store = handle.clone();
        let (obs, raw, key) = writes[i].clone();
        Box::pin(async move {
            match store.record_observation(obs, Some(raw), Some(key), timing).await {
                Ok(r) if r.events == 1 && !r.duplicate => Ok(()),
                Ok(r) => Err(format!("recorded with {} events, duplicate {}", r.events, r.duplicate)),
                Err(e) => Err(e.to_string()),
            }
        })
    });
    let plan = Plan {
        count,
        concurrency: args.load.concurrency as usize,
        rate: None,
        max_duration: Duration::from_secs(args.load.max_seconds),
    };
    let (writes, _) = phase_with_run(load_rt, plan, request).await?;
    drop(store);
    Ok(Report {
        store: args.db.store.as_str(),
        count,
        concurrency: args.load.concurrency as usize,
        write_batch: args.write_batch as usize,
        machine: Machine::describe(),
        writes,
    })
}
