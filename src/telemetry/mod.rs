//! Logs and traces. Logs are JSON lines in production (carrying the `trace_id` and `span_id` of
//! the span they were written in, when tracing is on) and readable text locally; `RUST_LOG`
//! overrides the configured filter. Never log secrets, tokens or raw bodies.
//!
//! Traces are OpenTelemetry spans exported over OTLP/HTTP when `telemetry.otlp_endpoint` is set:
//! one per notification (HTTP to commit), per publish batch and per inquiry, under each request's
//! span. Their W3C trace context travels with the events they cause, to the AMQP messages'
//! `traceparent` header ([`propagation`]).

mod export;
pub mod propagation;

pub use export::provider as tracer_provider;

use std::sync::OnceLock;

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::dispatcher::WeakDispatch;
use tracing::Dispatch;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{fmt, EnvFilter, Layer, Registry};

use crate::config::{LogFormat, LogSettings, TelemetrySettings};

/// The installed subscriber, for reading the OpenTelemetry ids of a span while logging.
static DISPATCH: OnceLock<WeakDispatch> = OnceLock::new();

/// Why tracing could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("OpenTelemetry export cannot be set up: {0}")]
pub struct TelemetryError(String);

/// The running tracer; [`Telemetry::shutdown`] exports the spans still buffered.
#[must_use = "dropping it without shutdown loses the spans not exported yet"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports what is buffered and stops the exporter. Blocks up to `telemetry.export_timeout`:
    /// call it off the async workers (`spawn_blocking`) or after the runtime stopped.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            if let Err(e) = provider.shutdown() {
                tracing::warn!(error = %e, "spans could not all be exported at shutdown");
            }
        }
    }
}

/// Installs the global subscriber for logs only; a second call (tests) is a no-op.
pub fn init(settings: &LogSettings) {
    let _ = install(settings, None);
}

/// Installs the global subscriber for logs and, when `telemetry.otlp_endpoint` is set, traces
/// exported over OTLP/HTTP. The exporter sends on `runtime` (it must outlive the returned value's
/// [`Telemetry::shutdown`]).
pub fn init_with_traces(
    log: &LogSettings,
    telemetry: &TelemetrySettings,
    runtime: &tokio::runtime::Handle,
) -> Result<Telemetry, TelemetryError> {
    let provider = if telemetry.enabled() { Some(export::provider(telemetry, runtime.clone())?) } else { None };
    install(log, provider.as_ref());
    Ok(Telemetry { provider })
}

fn install(settings: &LogSettings, provider: Option<&SdkTracerProvider>) -> bool {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.filter));
    // Spans are traced whatever the log filter says: the project's own spans at info and above.
    let traces = provider.map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("pgw-relay"))
            .with_filter(Targets::new().with_target("pgw_relay", LevelFilter::INFO))
    });
    let logs = match settings.format {
        LogFormat::Json => json_logs().with_filter(filter).boxed(),
        LogFormat::Pretty => fmt::layer().compact().with_filter(filter).boxed(),
    };
    let dispatch = Dispatch::new(Registry::default().with(traces).with(logs));
    let weak = dispatch.downgrade();
    if tracing::dispatcher::set_global_default(dispatch).is_err() {
        return false;
    }
    let _ = DISPATCH.set(weak);
    true
}

/// One JSON object per line: timestamp, level, target, the event's fields at the top level, the
/// current span's fields under `span`, and the OpenTelemetry `trace_id` / `span_id` of that span
/// when it is traced.
fn json_logs<S>() -> json_subscriber::JsonLayer<S, fn() -> std::io::Stdout>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let mut layer = json_subscriber::JsonLayer::stdout();
    layer
        .with_timer("timestamp", fmt::time::SystemTime)
        .with_level("level")
        .with_flattened_event()
        .with_target("target")
        .with_current_span("span");
    layer.add_from_span("trace_id", |span| span_ids(&span.id()).map(|(trace, _)| trace));
    layer.add_from_span("span_id", |span| span_ids(&span.id()).map(|(_, span)| span));
    layer
}

/// The OpenTelemetry trace and span id (hex) of a span, if it is traced.
fn span_ids(id: &tracing::span::Id) -> Option<(String, String)> {
    let dispatch = DISPATCH.get()?.upgrade()?;
    let cx = tracing_opentelemetry::get_otel_context(id, &dispatch)?;
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| (sc.trace_id().to_string(), sc.span_id().to_string()))
}
