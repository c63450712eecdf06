//! The load loop: `count` requests by `concurrency` workers, either back to back (closed loop:
//! each worker sends its next request when the previous answer arrives) or at a fixed arrival
//! rate (request `i` is due at `start + i / rate`; its latency counts from that due time, so a
//! slow answer that delays the requests behind it is charged to them too, rather than hidden).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;

use crate::stats::Latency;

/// The runtime the load generator's requests run on (two workers, named for the CPU report).
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(crate::cpu::LOAD_THREAD_NAME)
        .enable_all()
        .build()
        .context("cannot start the load runtime")
}

/// The size of a load, as given on the command line (`notifications`, `store-writes`).
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Notifications to send; each is for a distinct invoice.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..=5_000_000))]
    pub count: u64,
    /// Requests in flight at once (for `notifications`, HTTP/1.1 keep-alive connections).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub concurrency: u64,
    /// Stop starting requests after this long (per phase).
    #[arg(long, value_name = "SECONDS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub max_seconds: u64,
}

/// What to send and how.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub count: usize,
    pub concurrency: usize,
    /// Requests per second; `None` = closed loop.
    pub rate: Option<f64>,
    /// No request is started after this long.
    pub max_duration: Duration,
}

/// Sends request `i`; `Err` names what went wrong (grouped in the report).
pub type Request = Arc<dyn Fn(usize) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// One answered (or failed) request.
#[derive(Debug, Clone)]
pub struct Sample {
    pub index: usize,
    /// From the due time (fixed rate) or the send time (closed loop) to the end of the answer.
    pub latency: Duration,
    pub done: Instant,
    pub error: Option<String>,
}

/// The latency of the requests that started in one window of a run ([`Run::timeline`]).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Window {
    /// Seconds from the start of the run.
    pub start_s: f64,
    pub requests: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// The outcome of one load loop.
#[derive(Debug)]
pub struct Run {
    /// When the loop started (request 0's due time at a fixed rate).
    pub started: Instant,
    pub elapsed: Duration,
    pub samples: Vec<Sample>,
    /// Requests not started before `max_duration`.
    pub unsent: usize,
}

impl Run {
    pub fn succeeded(&self) -> usize {
        self.samples.iter().filter(|s| s.error.is_none()).count()
    }

    /// Successful requests per second of the loop's wall time.
    pub fn per_second(&self) -> f64 {
        self.succeeded() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Latency of the successful requests.
    pub fn latency(&self) -> Latency {
        Latency::of(self.samples.iter().filter(|s| s.error.is_none()).map(|s| s.latency))
    }

    /// The successful requests by the window of the run their latency started in (the due time at
    /// a fixed rate, the send time in a closed loop): whether slow answers are spread over the run
    /// or come in episodes.
    pub fn timeline(&self, window: Duration) -> Vec<Window> {
        let mut windows: Vec<Vec<Duration>> = Vec::new();
        for s in self.samples.iter().filter(|s| s.error.is_none()) {
            let start = s.done.checked_sub(s.latency).unwrap_or(self.started);
            let i = (start.saturating_duration_since(self.started).as_nanos() / window.as_nanos().max(1)) as usize;
            if windows.len() <= i {
                windows.resize_with(i + 1, Vec::new);
            }
            windows[i].push(s.latency);
        }
        windows
            .into_iter()
            .enumerate()
            .map(|(i, latencies)| {
                let latency = Latency::of(latencies);
                Window {
                    start_s: (window * i as u32).as_secs_f64(),
                    requests: latency.samples,
                    p50_ms: latency.p50_ms,
                    p99_ms: latency.p99_ms,
                    max_ms: latency.max_ms,
                }
            })
            .collect()
    }

    /// Failures by kind, plus requests never sent.
    pub fn errors(&self) -> BTreeMap<String, usize> {
        let mut errors = BTreeMap::new();
        for e in self.samples.iter().filter_map(|s| s.error.as_ref()) {
            *errors.entry(e.clone()).or_insert(0) += 1;
        }
        if self.unsent > 0 {
            errors.insert("not sent (time limit)".into(), self.unsent);
        }
        errors
    }
}

/// Runs the plan on the current runtime.
pub async fn run(plan: Plan, request: Request) -> Run {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + plan.max_duration;
    let workers: Vec<_> = (0..plan.concurrency.clamp(1, plan.count.max(1)))
        .map(|_| {
            let next = next.clone();
            let request = request.clone();
            tokio::spawn(async move {
                let mut samples = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= plan.count {
                        break;
                    }
                    let due = match plan.rate {
                        Some(rate) => started + Duration::from_secs_f64(i as f64 / rate),
                        None => Instant::now(),
                    };
                    if due >= deadline || Instant::now() >= deadline {
                        break;
                    }
                    if plan.rate.is_some() {
                        tokio::time::sleep_until(due.into()).await;
                    }
                    let result = request(i).await;
                    let done = Instant::now();
                    samples.push(Sample { index: i, latency: done.duration_since(due), done, error: result.err() });
                }
                samples
            })
        })
        .collect();
    let mut samples = Vec::with_capacity(plan.count);
    for worker in workers {
        match worker.await {
            Ok(mut s) => samples.append(&mut s),
            Err(e) => eprintln!("pgw-bench: a load worker failed: {e}"),
        }
    }
    let last = samples.iter().map(|s| s.done).max().unwrap_or(started);
    let unsent = plan.count.saturating_sub(samples.len());
    Run { started, elapsed: last.duration_since(started), samples, unsent }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(started: Instant, start_ms: u64, latency_ms: u64, error: Option<&str>) -> Sample {
        let latency = Duration::from_millis(latency_ms);
        let done = started + Duration::from_millis(start_ms) + latency;
        Sample { index: 0, latency, done, error: error.map(str::to_string) }
    }

    #[test]
    fn the_timeline_puts_each_request_in_the_window_it_started_in() {
        let started = Instant::now();
        // Two fast requests in the first window; one slow request that started in the second window
        // and ended in the fifth; a failure, not counted; nothing in the third and fourth.
        let samples = vec![
            sample(started, 10, 2, None),
            sample(started, 90, 4, None),
            sample(started, 150, 300, None),
            sample(started, 120, 1, Some("refused")),
        ];
        let run = Run { started, elapsed: Duration::from_millis(450), samples, unsent: 0 };
        let timeline = run.timeline(Duration::from_millis(100));
        assert_eq!(timeline.len(), 2);
        assert_eq!((timeline[0].start_s, timeline[0].requests), (0.0, 2));
        assert_eq!((timeline[0].p50_ms, timeline[0].max_ms), (2.0, 4.0));
        assert_eq!((timeline[1].start_s, timeline[1].requests), (0.1, 1));
        assert_eq!(timeline[1].p50_ms, 300.0);
    }
}
