//! The OTLP/HTTP span exporter: protobuf over the service's own `reqwest` client, sent on the
//! tokio runtime (the SDK's batch processor runs on a thread of its own and blocks on each export).
//! `opentelemetry-http` ships clients only for another major version of `reqwest` (which would add
//! a second HTTP and TLS stack to the build), hence the small [`HttpClient`] adapter below.

use std::time::Duration;

use bytes::Bytes;
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;

use crate::config::TelemetrySettings;
use crate::telemetry::TelemetryError;

/// Longest collector answer read; it is only a status (and an optional partial-success note).
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// Spans held for export at most; past it new spans are dropped (and counted by the SDK), so a
/// collector outage never grows memory without bound.
const MAX_QUEUED_SPANS: usize = 4096;

/// How often buffered spans are sent.
const EXPORT_INTERVAL: Duration = Duration::from_secs(2);

/// A tracer provider exporting to `<otlp_endpoint>/v1/traces`, sampling `sample_ratio` of new
/// traces (children follow their parent).
pub fn provider(
    settings: &TelemetrySettings,
    runtime: tokio::runtime::Handle,
) -> Result<SdkTracerProvider, TelemetryError> {
    let client = reqwest::Client::builder()
        .timeout(settings.export_timeout)
        .build()
        .map_err(|e| TelemetryError(e.to_string()))?;
    let endpoint = format!("{}/v1/traces", settings.otlp_endpoint.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(OnRuntime { client, runtime })
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .with_timeout(settings.export_timeout)
        .build()
        .map_err(|e| TelemetryError(e.to_string()))?;
    let batch = BatchConfigBuilder::default()
        .with_max_queue_size(MAX_QUEUED_SPANS)
        .with_scheduled_delay(EXPORT_INTERVAL)
        .build();
    let processor = BatchSpanProcessor::builder(exporter).with_batch_config(batch).build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(settings.sample_ratio))))
        .with_resource(Resource::builder().with_service_name(settings.service_name.clone()).build())
        .build())
}

/// Sends each export request as a task on the service's runtime and waits for it.
#[derive(Debug)]
struct OnRuntime {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for OnRuntime {
    async fn send_bytes(&self, request: http::Request<Bytes>) -> Result<http::Response<Bytes>, HttpError> {
        let (parts, body) = request.into_parts();
        let request = self.client.request(parts.method, parts.uri.to_string()).headers(parts.headers).body(body);
        let task = self.runtime.spawn(async move {
            let mut response = request.send().await?;
            let mut answer = http::Response::builder().status(response.status());
            if let Some(headers) = answer.headers_mut() {
                *headers = std::mem::take(response.headers_mut());
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                let room = MAX_RESPONSE_BYTES.saturating_sub(body.len());
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if room <= chunk.len() {
                    break;
                }
            }
            Ok::<_, HttpError>(answer.body(Bytes::from(body))?)
        });
        task.await?
    }
}
