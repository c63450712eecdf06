//! The sections of the configuration as the TOML files spell them (docs/configuration.md).

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::config::display::{show_endpoint, show_secret, show_secrets, show_url, string_list};
use crate::config::duration;

/// The whole effective configuration. Serialised (`check-config`), secrets read `[redacted]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Settings {
    pub server: ServerSettings,
    pub log: LogSettings,
    pub database: DatabaseSettings,
    pub broker: BrokerSettings,
    pub gateway: GatewaySettings,
    pub reconcile: ReconcileSettings,
    pub frontend_return: FrontendReturnSettings,
    pub internal_api: InternalApiSettings,
    #[serde(default)]
    pub retention: RetentionSettings,
    #[serde(default)]
    pub telemetry: TelemetrySettings,
    #[serde(default)]
    pub merchants: Vec<MerchantSettings>,
}

/// `[server]`: the two listeners.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ServerSettings {
    pub public_addr: String,
    pub internal_addr: String,
    pub max_body_bytes: usize,
    #[serde(with = "duration")]
    pub drain_delay: Duration,
    #[serde(with = "duration")]
    pub shutdown_timeout: Duration,
    /// Deadline for reading one whole request (head and body) on either listener; a client that
    /// has not sent it by then is disconnected.
    #[serde(with = "duration")]
    pub request_timeout: Duration,
    /// Open connections each listener accepts at once; further clients wait in the kernel backlog.
    pub max_connections: usize,
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct LogSettings {
    pub format: LogFormat,
    pub filter: String,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

/// `[database]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct DatabaseSettings {
    #[serde(serialize_with = "show_url")]
    pub url: SecretString,
    pub migrate_on_start: bool,
    pub max_connections: u32,
    pub write_batch: usize,
    /// PostgreSQL: tasks that record backend notifications in groups (at most a quarter of
    /// `max_connections`, at least one).
    pub group_writers: usize,
}

/// `[broker]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct BrokerSettings {
    #[serde(serialize_with = "show_url")]
    pub url: SecretString,
    pub exchange: String,
    pub default_queue: String,
    pub connection_name: String,
    #[serde(with = "duration")]
    pub operation_timeout: Duration,
    #[serde(with = "duration")]
    pub reconnect_min_backoff: Duration,
    #[serde(with = "duration")]
    pub reconnect_max_backoff: Duration,
    pub publish_batch: usize,
    #[serde(with = "duration")]
    pub poll_interval: Duration,
    #[serde(with = "duration")]
    pub claim_lease: Duration,
    /// Type of `default_queue`: quorum (replicated, the default) or classic.
    #[serde(default)]
    pub default_queue_type: QueueType,
    /// Exchange that messages consumers reject from `default_queue` go to (`""`: none); a queue
    /// `<default_queue>.dead` is bound to it.
    #[serde(default)]
    pub dead_letter_exchange: String,
}

/// RabbitMQ queue type of the default queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueType {
    #[default]
    Quorum,
    Classic,
}

impl QueueType {
    /// The `x-queue-type` argument.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueType::Quorum => "quorum",
            QueueType::Classic => "classic",
        }
    }
}

/// `[retention]`: deleting settled invoices, their history and events after a while.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct RetentionSettings {
    /// Prune in the background every `interval`.
    pub enabled: bool,
    /// Settled invoices unchanged for this long go.
    #[serde(with = "duration")]
    pub older_than: Duration,
    #[serde(with = "duration")]
    pub interval: Duration,
    /// Invoices deleted per transaction.
    pub batch: u32,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        RetentionSettings {
            enabled: false,
            older_than: Duration::from_secs(90 * 86_400),
            interval: Duration::from_secs(3600),
            batch: 1000,
        }
    }
}

/// `[telemetry]`: OpenTelemetry traces exported over OTLP/HTTP; off while `otlp_endpoint` is empty.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct TelemetrySettings {
    /// The collector's OTLP/HTTP base URL (`http://otel-collector:4318`); spans are sent to
    /// `<otlp_endpoint>/v1/traces` as protobuf. Empty: no traces are recorded or exported.
    #[serde(serialize_with = "show_endpoint")]
    pub otlp_endpoint: String,
    /// The share of traces recorded, 0.0 to 1.0 (by trace id; a span follows its parent's choice).
    pub sample_ratio: f64,
    /// `service.name` of the exported spans.
    pub service_name: String,
    /// Bound on one export request to the collector.
    #[serde(with = "duration")]
    pub export_timeout: Duration,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        TelemetrySettings {
            otlp_endpoint: String::new(),
            sample_ratio: 1.0,
            service_name: "pgw-relay".into(),
            export_timeout: Duration::from_secs(10),
        }
    }
}

impl TelemetrySettings {
    /// Whether traces are recorded and exported.
    pub fn enabled(&self) -> bool {
        !self.otlp_endpoint.is_empty()
    }
}

/// Shortest retention allowed: settled invoices younger than this are never pruned.
pub const MIN_RETENTION: Duration = Duration::from_secs(3600);

/// `[gateway]`: where 2C2P (or pgw-sim) is.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct GatewaySettings {
    pub base_url: String,
    #[serde(with = "duration")]
    pub timeout: Duration,
}

/// `[reconcile]`: the inquiry loop.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ReconcileSettings {
    pub enabled: bool,
    #[serde(with = "duration")]
    pub interval: Duration,
    #[serde(with = "duration")]
    pub grace: Duration,
    #[serde(with = "duration")]
    pub after_return: Duration,
    #[serde(with = "duration")]
    pub initial_backoff: Duration,
    #[serde(with = "duration")]
    pub max_backoff: Duration,
    #[serde(with = "duration")]
    pub give_up_after: Duration,
    pub max_rps: u32,
    pub batch: u32,
    pub concurrency: usize,
    #[serde(with = "duration")]
    pub lease: Duration,
    #[serde(with = "duration")]
    pub default_payment_window: Duration,
}

/// `[frontend_return]`: limits on what an unsigned browser return may cause.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct FrontendReturnSettings {
    /// Browser returns for invoices the relay does not trust yet that are recorded per merchant and
    /// second (token bucket); returns for registered invoices never spend it.
    pub inquiries_per_second: u32,
    pub burst: u32,
    /// Invoices learned only from a browser return kept at once, per merchant.
    pub max_untrusted_invoices: u64,
    /// How long an invoice learned only from a browser return is kept before it is deleted.
    #[serde(with = "duration")]
    pub untrusted_ttl: Duration,
    /// Inquiries per second, per merchant and replica, spent on invoices learned only from a
    /// browser return (each gets at most one); part of `reconcile.max_rps`.
    pub untrusted_inquiries_per_second: u32,
    /// Browser returns recorded per invoice; identical payloads count once.
    pub max_returns_per_invoice: u32,
    /// Longest text kept from a browser return's free-text fields, in characters.
    pub max_text_chars: usize,
    /// How long the redirect may wait for a final status from the inquiry the return started
    /// (`0s`: never wait).
    #[serde(with = "duration")]
    pub wait_for_result: Duration,
    /// Browsers waiting for a result at once, per replica; more are redirected without waiting.
    pub max_waiting: usize,
}

/// `[internal_api]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct InternalApiSettings {
    #[serde(default, deserialize_with = "string_list", serialize_with = "show_secrets")]
    pub tokens: Vec<SecretString>,
    #[serde(default)]
    pub tokens_file: Option<PathBuf>,
    /// Tokens with a name, which is logged with every change they ask for.
    #[serde(default)]
    pub named_tokens: Vec<NamedTokenSettings>,
}

/// `[[internal_api.named_tokens]]`: `name` and `token` or `token_file`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct NamedTokenSettings {
    pub name: String,
    #[serde(default, serialize_with = "show_secret")]
    pub token: Option<SecretString>,
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

/// `[[merchants]]`: one 2C2P merchant account.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct MerchantSettings {
    pub id: String,
    #[serde(default, serialize_with = "show_secret")]
    pub secret_key: Option<SecretString>,
    #[serde(default)]
    pub secret_key_file: Option<PathBuf>,
    #[serde(default, serialize_with = "show_secret")]
    pub previous_secret_key: Option<SecretString>,
    #[serde(default)]
    pub previous_secret_key_file: Option<PathBuf>,
    #[serde(default = "default_timezone")]
    pub timezone: String,
    #[serde(default)]
    pub result_url: Option<String>,
    #[serde(default)]
    pub backend_return_url: Option<String>,
    #[serde(default)]
    pub frontend_return_url: Option<String>,
}

fn default_timezone() -> String {
    "+00:00".to_string()
}
