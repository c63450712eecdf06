//! `--traces`: the service records OpenTelemetry spans (every trace sampled) and exports them over
//! OTLP/HTTP, as with `[telemetry] otlp_endpoint` set, to a stand-in collector in this process that
//! answers `200` and counts what arrives. Compared with a run without it, this is what tracing
//! costs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use pgw_relay::config::TelemetrySettings;
use serde::Serialize;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// What the stand-in collector received.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Received {
    pub export_requests: u64,
    pub bytes: u64,
}

/// An OTLP/HTTP endpoint that accepts every export and counts it.
pub struct Collector {
    pub endpoint: String,
    requests: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
    handle: ServerHandle,
}

impl Collector {
    /// Listens on a free loopback port, on the current runtime.
    pub fn start() -> anyhow::Result<Collector> {
        let (requests, bytes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (r, b) = (requests.clone(), bytes.clone());
        let server = HttpServer::new(move || {
            let (r, b) = (r.clone(), b.clone());
            App::new().route(
                "/v1/traces",
                web::post().to(move |body: web::Bytes| {
                    r.fetch_add(1, Ordering::Relaxed);
                    b.fetch_add(body.len() as u64, Ordering::Relaxed);
                    async { HttpResponse::Ok().content_type("application/x-protobuf").finish() }
                }),
            )
        })
        .workers(1)
        .disable_signals()
        .bind("127.0.0.1:0")
        .context("the collector stand-in cannot listen")?;
        let endpoint = format!("http://{}", server.addrs()[0]);
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(Collector { endpoint, requests, bytes, handle })
    }

    pub fn received(&self) -> Received {
        Received { export_requests: self.requests.load(Ordering::Relaxed), bytes: self.bytes.load(Ordering::Relaxed) }
    }

    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

/// Installs the run's subscriber: the service's logs as JSON on stderr (so `--json` output stays
/// clean) and, with `traces`, the OpenTelemetry layer exporting as the service does.
pub fn install(log_filter: &str, traces: Option<&TelemetrySettings>) -> anyhow::Result<Option<SdkTracerProvider>> {
    let provider = match traces {
        Some(settings) => Some(pgw_relay::telemetry::tracer_provider(settings, tokio::runtime::Handle::current())?),
        None => None,
    };
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("pgw-relay"))
            .with_filter(Targets::new().with_target("pgw_relay", LevelFilter::INFO))
    });
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(log_filter));
    let logs = tracing_subscriber::fmt::layer().json().flatten_event(true).with_writer(std::io::stderr);
    let _ = tracing_subscriber::registry().with(otel).with(logs.with_filter(filter)).try_init();
    Ok(provider)
}
