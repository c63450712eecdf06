//! `pgw-bench notifications`: the real service in this process, distinct signed notifications
//! over HTTP, and in the same run `GET /healthz` at the same concurrency as the ceiling of the
//! HTTP stack on this machine.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use pgw_relay::config::Sources;
use pgw_relay::metrics::Metrics;
use pgw_relay::startup::Application;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::broker::{self, Received, Sink};
use crate::cpu::{Machine, Snapshot, Usage};
use crate::db::{BenchDb, DbArgs};
use crate::load::{self, LoadArgs, Plan, Request};
use crate::stats::{fmt_ms, fmt_rate, Latency};

/// The public sandbox merchant JT01 and its demo key.
pub const MERCHANT: &str = "JT01";
pub const MERCHANT_KEY: &str = "ECC4E54DBA738857B84A7EBC6B5DC7187B8DA68750E88AB53AAA41F548D6F2D9";
/// The service publishes to an exchange of its own for each run (same type and routing as
/// `pgw.payments`), so no queue bound elsewhere receives the run's events; it is deleted afterwards.
const EXCHANGE_PREFIX: &str = "pgw.bench.";
/// Nothing listens on port 1: the publisher keeps retrying its connection, cheaply.
const CLOSED_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:1/%2f";
/// The window of the notifications' timeline.
const TIMELINE_WINDOW: Duration = Duration::from_millis(100);

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    load: LoadArgs,
    /// Send at this fixed rate (notifications per second) instead of back to back; latency then
    /// counts from each request's scheduled send time, so queueing is not hidden.
    #[arg(long, value_name = "PER_SECOND", value_parser = parse_rate)]
    rate: Option<f64>,
    /// Also consume the events from RabbitMQ: accept-to-consumer delay and exactly-once check.
    /// (Without it the events go to a queue that keeps none, so the publisher still runs as in
    /// production.)
    #[arg(long)]
    broker: bool,
    /// Point the service's publisher at a closed port, to measure the accept path alone.
    #[arg(long, conflicts_with = "broker")]
    without_publisher: bool,
    /// RabbitMQ for the service's publisher and for --broker.
    #[arg(long, value_name = "URL", default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    amqp_url: String,
    /// Wait at most this long for the events to be published after the last answer.
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=600))]
    broker_timeout: u64,
    /// Override a service setting, e.g. `--set database.write_batch=512` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_override)]
    overrides: Vec<(String, String)>,
    /// Skip the GET /healthz ceiling measurement.
    #[arg(long)]
    no_healthz: bool,
    /// Record OpenTelemetry spans of every request (sample ratio 1) and export them over OTLP/HTTP
    /// to a stand-in collector in this process, to measure what tracing costs.
    #[arg(long)]
    traces: bool,
    /// Run this many replicas of the service in this process, on the one PostgreSQL database,
    /// each with its own listeners, pools, group writers and relay (as separate pods would be);
    /// notification i goes to replica i mod N.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=4), conflicts_with = "traces")]
    replicas: u64,
    /// Print the results as JSON instead of the summary.
    #[arg(long)]
    json: bool,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && (1.0..=1_000_000.0).contains(&r) => Ok(r),
        _ => Err(format!("`{s}` is not a rate between 1 and 1000000 per second")),
    }
}

fn parse_override(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("`{s}` is not KEY=VALUE")),
    }
}

/// One measured phase.
#[derive(Debug, Serialize)]
pub struct Phase {
    pub sent: usize,
    pub ok: usize,
    pub errors: BTreeMap<String, usize>,
    pub seconds: f64,
    pub per_second: f64,
    pub latency: Latency,
    pub cpu: Usage,
    /// CPU microseconds per answered request, by part (see [`Usage::micros_per_op`]).
    pub cpu_micros_per_request: BTreeMap<String, f64>,
}

#[derive(Debug, Serialize)]
struct BrokerReport {
    expected: usize,
    received: usize,
    missing: usize,
    duplicates: usize,
    malformed: usize,
    malformed_examples: Vec<String>,
    /// Messages of other publishers on the exchange, ignored.
    foreign: usize,
    exactly_once: bool,
    /// Consumer receive time minus the time the 200 arrived, per invoice (negative: the event
    /// arrived first).
    accept_to_consumer: Latency,
    /// From the last 200 to the last event received.
    drained_after_ms: f64,
}

/// The service's publisher, as its metrics tell (runs without --broker).
#[derive(Debug, Serialize)]
struct PublisherReport {
    expected: usize,
    /// `pgw_relay_events_published_total{type="payment.succeeded"}`: confirmed by the broker.
    published: u64,
    /// From the last 200 to the moment every accepted event was confirmed.
    drained_after_ms: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Report {
    store: &'static str,
    count: usize,
    concurrency: usize,
    replicas: u64,
    mode: &'static str,
    rate: Option<f64>,
    overrides: Vec<String>,
    machine: Machine,
    presign_seconds: f64,
    healthz: Option<Phase>,
    notifications: Phase,
    /// The notifications' latency per 100 ms of the run, by when each request started.
    notifications_timeline: Vec<load::Window>,
    /// accepted/s ÷ healthz/s.
    ratio_to_healthz: Option<f64>,
    /// PostgreSQL: transactions committed in the run's database from the start of the
    /// notifications phase until its events were published, per accepted notification.
    postgres_commits_per_notification: Option<f64>,
    /// PostgreSQL: WAL bytes the server wrote over the same time, per accepted notification.
    postgres_wal_bytes_per_notification: Option<f64>,
    publisher: Option<PublisherReport>,
    broker: Option<BrokerReport>,
    /// With `--traces`: what the collector stand-in received by the end of the run.
    traces: Option<crate::traces::Received>,
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
        print_summary(&report);
    }
    Ok(())
}

async fn measure(args: &Args, db: &BenchDb, load_rt: &tokio::runtime::Handle) -> anyhow::Result<Report> {
    let count = args.load.count as usize;
    let concurrency = args.load.concurrency as usize;
    let run_id = uuid::Uuid::now_v7().simple().to_string();
    let prefix = format!("B{}", &run_id[run_id.len() - 8..]);
    let exchange = format!("{EXCHANGE_PREFIX}{run_id}");

    let signing = Instant::now();
    let bodies: Arc<Vec<String>> = Arc::new((0..count).map(|i| signed_body(&prefix, i)).collect());
    let presign_seconds = signing.elapsed().as_secs_f64();

    anyhow::ensure!(
        args.replicas == 1 || args.db.store.as_str() == "postgres",
        "--replicas needs --store postgres: a SQLite file has one writer"
    );
    db.store(&args.db, 1, 1).await?;
    let mut services = Vec::new();
    for _ in 0..args.replicas {
        match Service::start(args, db, &exchange).await {
            Ok(service) => services.push(service),
            Err(e) => {
                for service in services {
                    service.stop().await;
                }
                return Err(e);
            }
        }
    }
    let service = &services[0];
    let measured = async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(concurrency)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(30))
            .build()
            .context("cannot build the HTTP client")?;
        let (mut subscription, mut sink) = (None, None);
        if !args.without_publisher {
            for service in &services {
                service.wait_for_broker(Duration::from_secs(15)).await?;
            }
        }
        if args.broker {
            let subscribe = broker::subscribe(args.amqp_url.clone(), exchange.clone(), prefix.clone());
            subscription = Some(load_rt.spawn(subscribe).await.context("the consumer setup task failed")??);
        } else if !args.without_publisher {
            let (url, exchange) = (args.amqp_url.clone(), exchange.clone());
            let bind = async move { Sink::bind(&url, &exchange).await };
            sink = Some(load_rt.spawn(bind).await.context("the queue setup task failed")??);
        }

        let max_duration = Duration::from_secs(args.load.max_seconds);
        let healthz = if args.no_healthz {
            None
        } else {
            let plan = Plan { count, concurrency, rate: None, max_duration };
            let request = healthz_request(client.clone(), format!("http://{}/healthz", service.internal));
            Some(phase(load_rt, plan, request).await?)
        };
        let plan = Plan { count, concurrency, rate: args.rate, max_duration };
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let counters_before = db.postgres_counters().await?;
        let urls = services.iter().map(|s| format!("http://{}/2c2p/backend-notification", s.public)).collect();
        let (notifications, run) = phase_with_run(load_rt, plan, notification_request(client, urls, bodies)).await?;

        let timeout = Duration::from_secs(args.broker_timeout);
        let broker = match subscription {
            Some(sub) => {
                let received = load_rt
                    .spawn(sub.finish(run.succeeded(), timeout, Duration::from_secs(1)))
                    .await
                    .context("the consumer task failed")??;
                Some(broker_report(&run, received))
            }
            None => None,
        };
        let publisher = match sink {
            Some(sink) => {
                let metrics: Vec<&Metrics> = services.iter().map(|s| &s.metrics).collect();
                let report = publisher_report(&metrics, &run, timeout).await;
                load_rt.spawn(sink.close()).await.ok();
                Some(report)
            }
            None => None,
        };
        // Every transaction of the phase until its events were published: the notifications',
        // the relays' and the gauges'.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let per_notification = |n: i64| n as f64 / run.succeeded().max(1) as f64;
        let (postgres_commits_per_notification, postgres_wal_bytes_per_notification) =
            match counters_before.zip(db.postgres_counters().await?) {
                Some(((commits, wal), (commits_after, wal_after))) => {
                    (Some(per_notification(commits_after - commits)), Some(per_notification(wal_after - wal)))
                }
                None => (None, None),
            };
        let ratio_to_healthz = healthz.as_ref().map(|h| notifications.per_second / h.per_second.max(1e-9));
        let traces = service.flush_traces().await;
        anyhow::Ok(Report {
            store: args.db.store.as_str(),
            count,
            concurrency,
            replicas: args.replicas,
            mode: if args.rate.is_some() { "fixed rate" } else { "closed loop" },
            rate: args.rate,
            overrides: args.overrides.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            machine: Machine::describe(),
            presign_seconds,
            healthz,
            notifications,
            notifications_timeline: run.timeline(TIMELINE_WINDOW),
            ratio_to_healthz,
            postgres_commits_per_notification,
            postgres_wal_bytes_per_notification,
            publisher,
            broker,
            traces,
        })
    }
    .await;
    for service in services {
        service.stop().await;
    }
    if !args.without_publisher {
        let (url, exchange) = (args.amqp_url.clone(), exchange.clone());
        if let Ok(Err(e)) = load_rt.spawn(async move { broker::delete_exchange(&url, &exchange).await }).await {
            eprintln!("pgw-bench: could not delete the run's exchange: {e:#}");
        }
    }
    measured
}

/// `{"payload": "<JWT>"}` for invoice `{prefix}{i}`, paid (respCode 0000).
fn signed_body(prefix: &str, i: usize) -> String {
    serde_json::json!({ "payload": pgw_relay::protocol::jwt::sign(&claims(prefix, i), MERCHANT_KEY) }).to_string()
}

/// The claims of a successful payment notification for invoice `{prefix}{i}`.
pub fn claims(prefix: &str, i: usize) -> serde_json::Value {
    serde_json::json!({
        "merchantID": MERCHANT,
        "invoiceNo": format!("{prefix}{i:07}"),
        "accountNo": "411111XXXXXX1111",
        "amount": 1000.0,
        "currencyCode": "SGD",
        "customerToken": "28052010234224845229",
        "tranRef": format!("{}", 2_000_000 + i),
        "referenceNo": "2785703",
        "approvalCode": "531484",
        "eci": "05",
        "transactionDateTime": "20261127080508",
        "agentCode": "OCBC",
        "channelCode": "VI",
        "respCode": "0000",
        "respDesc": "Success",
        "userDefined1": "bench",
    })
}

/// Posts notification i to `urls[i mod N]` (one URL per replica).
fn notification_request(client: reqwest::Client, urls: Vec<String>, bodies: Arc<Vec<String>>) -> Request {
    Arc::new(move |i| {
        let request = client
            .post(&urls[i % urls.len()])
            .header(reqwest::header::CONTENT_TYPE, "application/json; charset=utf-8")
            .body(bodies[i].clone());
        Box::pin(async move {
            let response = request.send().await.map_err(transport_error)?;
            let status = response.status();
            let body = response.bytes().await.map_err(transport_error)?;
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            match (status.as_u16(), json["status"].as_str(), json["error"].as_str()) {
                (200, Some("accepted"), _) => Ok(()),
                (200, other, _) => Err(format!("200 but status {}", other.unwrap_or("missing"))),
                (code, _, Some(error)) => Err(format!("HTTP {code} {error}")),
                (code, _, None) => Err(format!("HTTP {code}")),
            }
        })
    })
}

fn healthz_request(client: reqwest::Client, url: String) -> Request {
    Arc::new(move |_| {
        let request = client.get(&url);
        Box::pin(async move {
            let response = request.send().await.map_err(transport_error)?;
            let status = response.status();
            response.bytes().await.map_err(transport_error)?;
            if status.is_success() {
                Ok(())
            } else {
                Err(format!("HTTP {}", status.as_u16()))
            }
        })
    })
}

fn transport_error(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connection refused or reset".into()
    } else {
        format!("transport: {e}")
    }
}

async fn phase(load_rt: &tokio::runtime::Handle, plan: Plan, request: Request) -> anyhow::Result<Phase> {
    Ok(phase_with_run(load_rt, plan, request).await?.0)
}

pub async fn phase_with_run(
    load_rt: &tokio::runtime::Handle,
    plan: Plan,
    request: Request,
) -> anyhow::Result<(Phase, load::Run)> {
    let before = Snapshot::take();
    let run = load_rt.spawn(load::run(plan, request)).await.context("the load task failed")?;
    let cpu = before.until(&Snapshot::take());
    let phase = Phase {
        sent: run.samples.len(),
        ok: run.succeeded(),
        errors: run.errors(),
        seconds: run.elapsed.as_secs_f64(),
        per_second: run.per_second(),
        latency: run.latency(),
        cpu_micros_per_request: cpu.micros_per_op(run.per_second()),
        cpu,
    };
    Ok((phase, run))
}

fn broker_report(run: &load::Run, received: Received) -> BrokerReport {
    let total = run.samples.len().max(received.receipts.iter().map(|r| r.index + 1).max().unwrap_or(0));
    let mut accepted_at: Vec<Option<Instant>> = vec![None; total];
    for s in run.samples.iter().filter(|s| s.error.is_none()) {
        accepted_at[s.index] = Some(s.done);
    }
    let mut first_receipt: Vec<Option<Instant>> = vec![None; total];
    let mut duplicates = 0;
    for r in &received.receipts {
        match &mut first_receipt[r.index] {
            slot @ None => *slot = Some(r.at),
            Some(_) => duplicates += 1,
        }
    }
    let expected = accepted_at.iter().filter(|a| a.is_some()).count();
    let missing = accepted_at.iter().zip(&first_receipt).filter(|(a, r)| a.is_some() && r.is_none()).count();
    let delays: Vec<i64> = accepted_at
        .iter()
        .zip(&first_receipt)
        .filter_map(|(a, r)| Some(signed_micros(r.as_ref()?, a.as_ref()?)))
        .collect();
    let last_accept = accepted_at.iter().flatten().max();
    let last_receipt = received.receipts.iter().map(|r| r.at).max();
    let drained_after_ms = match (last_accept, last_receipt) {
        (Some(a), Some(r)) => signed_micros(&r, a) as f64 / 1000.0,
        _ => 0.0,
    };
    let received_count = received.receipts.len();
    BrokerReport {
        expected,
        received: received_count,
        missing,
        duplicates,
        malformed: received.malformed,
        malformed_examples: received.malformed_examples,
        foreign: received.foreign,
        exactly_once: missing == 0 && duplicates == 0 && received.malformed == 0 && received_count == expected,
        accept_to_consumer: Latency::of_micros(delays),
        drained_after_ms,
    }
}

/// Waits (at most `timeout`) until the publishers of the replicas (`metrics`, one per replica)
/// confirmed every accepted event.
async fn publisher_report(metrics: &[&Metrics], run: &load::Run, timeout: Duration) -> PublisherReport {
    let expected = run.succeeded();
    let published =
        || metrics.iter().map(|m| m.events_published.with_label_values(&["payment.succeeded"]).get()).sum::<u64>();
    let give_up = Instant::now() + timeout;
    while published() < expected as u64 && Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let done = Instant::now();
    let last_accept = run.samples.iter().filter(|s| s.error.is_none()).map(|s| s.done).max();
    let published = published();
    let drained_after_ms = match last_accept {
        Some(last) if published >= expected as u64 => Some(signed_micros(&done, &last) as f64 / 1000.0),
        _ => None,
    };
    PublisherReport { expected, published, drained_after_ms }
}

fn signed_micros(later: &Instant, earlier: &Instant) -> i64 {
    match later.checked_duration_since(*earlier) {
        Some(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        None => -i64::try_from(earlier.duration_since(*later).as_micros()).unwrap_or(i64::MAX),
    }
}

/// The service, started in this process.
struct Service {
    public: SocketAddr,
    internal: SocketAddr,
    metrics: Metrics,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// With `--traces`: the stand-in collector and the tracer that exports to it.
    traces: Option<(crate::traces::Collector, opentelemetry_sdk::trace::SdkTracerProvider)>,
}

impl Service {
    /// With `--traces`: exports the spans still buffered, then what the collector received.
    async fn flush_traces(&self) -> Option<crate::traces::Received> {
        let (collector, provider) = self.traces.as_ref()?;
        let provider = provider.clone();
        let _ = tokio::task::spawn_blocking(move || provider.force_flush()).await;
        Some(collector.received())
    }

    async fn start(args: &Args, db: &BenchDb, exchange: &str) -> anyhow::Result<Service> {
        let file = db.dir.join("bench.toml");
        // The gateway points at a closed loopback port: nothing here may reach the internet. No
        // default queue: events go to the queue this run binds to its own exchange (or nowhere,
        // without a publisher).
        let toml = format!(
            r#"
[server]
public_addr = "127.0.0.1:0"
internal_addr = "127.0.0.1:0"
shutdown_timeout = "10s"

[log]
format = "json"
filter = "{log_filter}"

[database]
url = "{db_url}"
migrate_on_start = true

[broker]
url = "{amqp_url}"
exchange = "{exchange}"
default_queue = ""

[gateway]
base_url = "http://127.0.0.1:9"

[[merchants]]
id = "{MERCHANT}"
secret_key = "{MERCHANT_KEY}"
timezone = "+08:00"
"#,
            db_url = db.url,
            amqp_url = if args.without_publisher { CLOSED_AMQP_URL } else { args.amqp_url.as_str() },
            // lapin logs returned message bodies at warn; without a publisher, every reconnect
            // attempt would warn.
            log_filter =
                if args.without_publisher { "warn,lapin=error,pgw_relay::broker=error" } else { "warn,lapin=error" },
        );
        std::fs::write(&file, toml).with_context(|| format!("cannot write {}", file.display()))?;
        let sources = Sources { dir: Some(db.dir.clone()), env_name: None, files: vec![file], use_environment: false };
        let overrides: Vec<(&str, ::config::Value)> =
            args.overrides.iter().map(|(k, v)| (k.as_str(), ::config::Value::from(v.as_str()))).collect();
        let config = pgw_relay::config::load_with_overrides(&sources, &overrides)?;
        let collector = if args.traces { Some(crate::traces::Collector::start()?) } else { None };
        let telemetry = collector
            .as_ref()
            .map(|c| pgw_relay::config::TelemetrySettings { otlp_endpoint: c.endpoint.clone(), ..Default::default() });
        let provider = crate::traces::install(&config.settings.log.filter, telemetry.as_ref())?;
        let traces = collector.zip(provider);
        let app = Application::build(config).await.context("the service did not start")?;
        let (public, internal) = (app.public_addr(), app.internal_addr());
        let metrics = app.state().metrics.clone();
        let shutdown = app.shutdown_token();
        let task = tokio::spawn(app.run_until_stopped());
        Ok(Service { public, internal, metrics, shutdown, task, traces })
    }

    /// Waits until the service's publisher is connected (and so has declared the exchange).
    async fn wait_for_broker(&self, timeout: Duration) -> anyhow::Result<()> {
        let give_up = Instant::now() + timeout;
        while self.metrics.broker_connected.get() != 1 {
            anyhow::ensure!(
                Instant::now() < give_up,
                "the service's publisher did not connect to RabbitMQ in {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    async fn stop(self) {
        self.shutdown.cancel();
        match tokio::time::timeout(Duration::from_secs(30), self.task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => eprintln!("pgw-bench: the service stopped with an error: {e:#}"),
            Ok(Err(e)) => eprintln!("pgw-bench: the service task failed: {e}"),
            Err(_) => eprintln!("pgw-bench: the service did not stop within 30 s"),
        }
        if let Some((collector, provider)) = self.traces {
            let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            collector.stop().await;
        }
    }
}

/// How the slow answers are spread over the run: the range of the windows' medians, and the
/// slowest window (a wide range means episodes of queueing rather than a uniform tail).
fn print_episodes(timeline: &[load::Window]) {
    let busy: Vec<&load::Window> = timeline.iter().filter(|w| w.requests > 0).collect();
    let by_p50 = |a: &&&load::Window, b: &&&load::Window| a.p50_ms.total_cmp(&b.p50_ms);
    let (Some(fastest), Some(slowest)) = (busy.iter().min_by(by_p50), busy.iter().max_by(by_p50)) else {
        return;
    };
    println!(
        "per {} ms of the run ({} windows): p50 from {} to {}; the slowest from {:.1} s, max {}",
        TIMELINE_WINDOW.as_millis(),
        busy.len(),
        fmt_ms(fastest.p50_ms),
        fmt_ms(slowest.p50_ms),
        slowest.start_s,
        fmt_ms(slowest.max_ms)
    );
}

fn print_summary(r: &Report) {
    let n = &r.notifications;
    let mode = match r.rate {
        Some(rate) => format!("fixed rate {} /s (latency from the scheduled send time)", fmt_rate(rate)),
        None => "closed loop".into(),
    };
    println!(
        "pgw-bench notifications: {}, {} distinct notifications, concurrency {}, {mode}",
        r.store,
        fmt_rate(r.count as f64),
        r.concurrency
    );
    if !r.overrides.is_empty() {
        println!("settings: {}", r.overrides.join(", "));
    }
    println!("machine: {}; service and load generator in one process", r.machine);
    if r.replicas > 1 {
        println!("replicas: {} in this process, sharing one PostgreSQL database", r.replicas);
    }
    if r.publisher.is_none() && r.broker.is_none() {
        println!("publisher: off (--without-publisher)");
    }
    println!("signed {} notifications before timing in {:.2} s", fmt_rate(r.count as f64), r.presign_seconds);
    println!();
    println!(
        "{:<16} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "", "ok", "errors", "per s", "p50", "p90", "p99", "max"
    );
    let row = |name: &str, p: &Phase| {
        println!(
            "{:<16} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}",
            name,
            fmt_rate(p.ok as f64),
            p.errors.values().sum::<usize>(),
            fmt_rate(p.per_second),
            fmt_ms(p.latency.p50_ms),
            fmt_ms(p.latency.p90_ms),
            fmt_ms(p.latency.p99_ms),
            fmt_ms(p.latency.max_ms)
        )
    };
    if let Some(h) = &r.healthz {
        row("GET /healthz", h);
    }
    row("notifications", n);
    if let Some(ratio) = r.ratio_to_healthz {
        println!("accepted/s ÷ healthz/s = {ratio:.2}");
    }
    print_episodes(&r.notifications_timeline);
    println!();
    if let Some(h) = &r.healthz {
        println!("cpu, healthz ({:.1} s):       {}", h.cpu.wall_seconds, h.cpu.line());
    }
    println!("cpu, notifications ({:.1} s): {}", n.cpu.wall_seconds, n.cpu.line());
    println!("cpu per notification:       {}", n.cpu.micros_line(n.per_second));
    if let (Some(commits), Some(wal)) = (r.postgres_commits_per_notification, r.postgres_wal_bytes_per_notification) {
        println!("PostgreSQL per notification: {commits:.3} commits, {wal:.0} WAL bytes");
    }
    if let Some(t) = &r.traces {
        println!(
            "traces: {} OTLP export requests, {} bytes received by the collector stand-in",
            t.export_requests, t.bytes
        );
    }
    if let Some(p) = &r.publisher {
        println!();
        match p.drained_after_ms {
            Some(ms) => println!(
                "publisher: {} events confirmed by RabbitMQ, the last {} after the last 200",
                fmt_rate(p.published as f64),
                fmt_ms(ms)
            ),
            None => println!(
                "publisher: only {} of {} events confirmed by RabbitMQ within --broker-timeout",
                fmt_rate(p.published as f64),
                fmt_rate(p.expected as f64)
            ),
        }
    }
    if let Some(b) = &r.broker {
        println!();
        println!(
            "broker: {}/{} events received, exactly once: {} ({} missing, {} duplicate, {} malformed{})",
            fmt_rate(b.received as f64),
            fmt_rate(b.expected as f64),
            if b.exactly_once { "yes" } else { "NO" },
            b.missing,
            b.duplicates,
            b.malformed,
            if b.foreign > 0 { format!(", {} from other publishers ignored", b.foreign) } else { String::new() }
        );
        for example in &b.malformed_examples {
            println!("  malformed: {example}");
        }
        println!(
            "accept → consumer: p50 {}, p90 {}, p99 {}, max {}; last event {} after the last 200",
            fmt_ms(b.accept_to_consumer.p50_ms),
            fmt_ms(b.accept_to_consumer.p90_ms),
            fmt_ms(b.accept_to_consumer.p99_ms),
            fmt_ms(b.accept_to_consumer.max_ms),
            fmt_ms(b.drained_after_ms)
        );
    }
    let errors: Vec<String> = r
        .healthz
        .iter()
        .map(|h| ("healthz", h))
        .chain(std::iter::once(("notifications", n)))
        .flat_map(|(name, p)| p.errors.iter().map(move |(e, c)| format!("{name}: {e} × {c}")))
        .collect();
    if !errors.is_empty() {
        println!();
        println!("errors: {}", errors.join("; "));
    }
}
