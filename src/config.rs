//! Configuration: layered loading with the `config` crate, secrets from files, validation that
//! names the offending key, and a redacted rendering for `pgw-relay check-config`.
//!
//! Layers, later wins: the embedded `config/default.toml`, `config/default.toml` on disk,
//! `config/<PGW_RELAY_ENV>.toml`, every `--config FILE` (or `PGW_RELAY_CONFIG`, comma separated),
//! then `PGW_RELAY__<SECTION>__<KEY>` environment variables.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::FixedOffset;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize};

const EMBEDDED_DEFAULTS: &str = include_str!("../config/default.toml");

/// A configuration problem, always naming the key it is about.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration could not be loaded: {0}")]
    Load(String),
    #[error("invalid configuration key `{key}`: {message}")]
    Invalid { key: String, message: String },
    /// A key no setting has: a typo would otherwise be ignored silently.
    #[error("unknown configuration key `{key}`{origin}{}", suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default())]
    Unknown { key: String, origin: String, suggestion: Option<String> },
}

impl ConfigError {
    fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid { key: key.into(), message: message.into() }
    }
}

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
    #[serde(with = "humantime_serde_compat")]
    pub drain_delay: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub shutdown_timeout: Duration,
    /// Deadline for reading one whole request (head and body) on either listener; a client that
    /// has not sent it by then is disconnected.
    #[serde(with = "humantime_serde_compat")]
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
}

/// `[broker]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct BrokerSettings {
    #[serde(serialize_with = "show_url")]
    pub url: SecretString,
    pub exchange: String,
    pub default_queue: String,
    pub connection_name: String,
    #[serde(with = "humantime_serde_compat")]
    pub operation_timeout: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub reconnect_min_backoff: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub reconnect_max_backoff: Duration,
    pub publish_batch: usize,
    #[serde(with = "humantime_serde_compat")]
    pub poll_interval: Duration,
    #[serde(with = "humantime_serde_compat")]
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
    #[serde(with = "humantime_serde_compat")]
    pub older_than: Duration,
    #[serde(with = "humantime_serde_compat")]
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
    #[serde(with = "humantime_serde_compat")]
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
    #[serde(with = "humantime_serde_compat")]
    pub timeout: Duration,
}

/// `[reconcile]`: the inquiry loop.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ReconcileSettings {
    pub enabled: bool,
    #[serde(with = "humantime_serde_compat")]
    pub interval: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub grace: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub after_return: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub initial_backoff: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub max_backoff: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub give_up_after: Duration,
    pub max_rps: u32,
    pub batch: u32,
    pub concurrency: usize,
    #[serde(with = "humantime_serde_compat")]
    pub lease: Duration,
    #[serde(with = "humantime_serde_compat")]
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
    #[serde(with = "humantime_serde_compat")]
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
    #[serde(with = "humantime_serde_compat")]
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

/// An internal API bearer token and the name logged for what it asks.
#[derive(Clone)]
pub struct InternalToken {
    /// The configured name; unnamed tokens are `tokens[i]` or `tokens_file[i]`.
    pub name: String,
    pub token: SecretString,
}

impl fmt::Debug for InternalToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InternalToken").field("name", &self.name).finish_non_exhaustive()
    }
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

/// A merchant with its secrets resolved and its settings parsed.
#[derive(Clone)]
pub struct Merchant {
    pub id: String,
    pub secret_key: SecretString,
    pub previous_secret_key: Option<SecretString>,
    pub timezone: FixedOffset,
    pub result_url: Option<url::Url>,
    pub backend_return_url: Option<String>,
    pub frontend_return_url: Option<String>,
}

impl fmt::Debug for Merchant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Merchant")
            .field("id", &self.id)
            .field("secret_key", &"[redacted]")
            .field("timezone", &self.timezone)
            .finish_non_exhaustive()
    }
}

/// Settings plus everything derived from them at load time.
#[derive(Debug, Clone)]
pub struct Config {
    pub settings: Settings,
    pub merchants: Vec<Merchant>,
    pub internal_tokens: Vec<InternalToken>,
}

impl Config {
    /// The merchant with this id, if configured.
    pub fn merchant(&self, id: &str) -> Option<&Merchant> {
        self.merchants.iter().find(|m| m.id == id)
    }
}

/// Where to read configuration from.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// Directory holding `default.toml` and `<env>.toml` (default `config`).
    pub dir: Option<PathBuf>,
    /// `PGW_RELAY_ENV`.
    pub env_name: Option<String>,
    /// Extra files, in order.
    pub files: Vec<PathBuf>,
    /// Read `PGW_RELAY__…` variables (off in tests that build configs by hand).
    pub use_environment: bool,
}

impl Sources {
    /// The sources named by the process environment plus the given `--config` files.
    pub fn from_environment(files: Vec<PathBuf>) -> Self {
        let mut all: Vec<PathBuf> = std::env::var("PGW_RELAY_CONFIG")
            .ok()
            .map(|v| v.split(',').filter(|s| !s.trim().is_empty()).map(|s| PathBuf::from(s.trim())).collect())
            .unwrap_or_default();
        all.extend(files);
        Sources {
            dir: None,
            env_name: std::env::var("PGW_RELAY_ENV").ok().filter(|s| !s.is_empty()),
            files: all,
            use_environment: true,
        }
    }
}

/// Loads, resolves and validates the configuration.
pub fn load(sources: &Sources) -> Result<Config, ConfigError> {
    load_with_overrides(sources, &[])
}

/// Like [`load`], with `key = value` overrides applied last (tests use this).
pub fn load_with_overrides(sources: &Sources, overrides: &[(&str, config::Value)]) -> Result<Config, ConfigError> {
    use config::{Environment, File, FileFormat};
    let dir = sources.dir.clone().unwrap_or_else(|| PathBuf::from("config"));
    let mut builder = config::Config::builder()
        .add_source(File::from_str(EMBEDDED_DEFAULTS, FileFormat::Toml))
        .add_source(File::from(dir.join("default.toml")).required(false));
    if let Some(env) = &sources.env_name {
        let path = dir.join(format!("{env}.toml"));
        if !path.exists() {
            return Err(ConfigError::Load(format!("PGW_RELAY_ENV={env} but {} does not exist", path.display())));
        }
        builder = builder.add_source(File::from(path));
    }
    for file in &sources.files {
        if !file.exists() {
            return Err(ConfigError::Load(format!("config file {} does not exist", file.display())));
        }
        builder = builder.add_source(File::from(file.as_path()));
    }
    if sources.use_environment {
        builder = builder.add_source(
            Environment::with_prefix("PGW_RELAY")
                .prefix_separator("__")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("internal_api.tokens"),
        );
    }
    for (key, value) in overrides {
        builder = builder.set_override(*key, value.clone()).map_err(|e| ConfigError::Load(e.to_string()))?;
    }
    settings_from(builder, sources.use_environment)
}

/// The embedded defaults with `toml` on top (no files, no environment): what the fuzz target
/// and the property tests load.
pub fn load_str(toml: &str) -> Result<Config, ConfigError> {
    use config::{File, FileFormat};
    let builder = config::Config::builder()
        .add_source(File::from_str(EMBEDDED_DEFAULTS, FileFormat::Toml))
        .add_source(File::from_str(toml, FileFormat::Toml));
    settings_from(builder, false)
}

/// Builds the layers, refuses unknown keys, resolves and validates.
fn settings_from(
    builder: config::ConfigBuilder<config::builder::DefaultState>,
    use_environment: bool,
) -> Result<Config, ConfigError> {
    let raw = builder.build().map_err(|e| ConfigError::Load(e.to_string()))?;
    let mut unknown = Vec::new();
    let settings: Settings = serde_ignored::deserialize(raw, |path| unknown.push(path.to_string()))
        .map_err(|e| ConfigError::Load(e.to_string()))?;
    if let Some(key) = unknown.into_iter().next() {
        return Err(unknown_key(&key, use_environment));
    }
    resolve(settings)
}

/// The error for an unknown key (as `serde_ignored` spells its path, `merchants.0.x`): the key
/// as the files spell it, the environment variable it came from if one did, and the closest
/// known key of the same section.
fn unknown_key(path: &str, use_environment: bool) -> ConfigError {
    let parts: Vec<&str> = path.split('.').collect();
    let mut key = String::new();
    for part in &parts {
        match part.parse::<usize>() {
            Ok(i) => key.push_str(&format!("[{i}]")),
            Err(_) => {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(part);
            }
        }
    }
    let name = parts.last().copied().unwrap_or_default();
    let section = parts.first().copied().filter(|_| parts.len() > 1).unwrap_or_default();
    let known = known_keys(section);
    let suggestion = known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(&name.replace('_', ""), &k.replace('_', "")), *k))
        .filter(|(distance, k)| *distance <= (k.len() / 3).max(2))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| {
            let prefix = &key[..key.len() - name.len()];
            format!("{prefix}{k}")
        });
    let variable = format!("PGW_RELAY__{}", parts.join("__")).to_ascii_uppercase();
    let origin = if use_environment && std::env::vars().any(|(k, _)| k.eq_ignore_ascii_case(&variable)) {
        format!(" (from {variable})")
    } else {
        String::new()
    };
    ConfigError::Unknown { key, origin, suggestion }
}

/// The keys a section accepts (the top-level sections for `""`), read from the settings types.
fn known_keys(section: &str) -> &'static [&'static str] {
    match section {
        "" => fields_of::<Settings>(),
        "server" => fields_of::<ServerSettings>(),
        "log" => fields_of::<LogSettings>(),
        "database" => fields_of::<DatabaseSettings>(),
        "broker" => fields_of::<BrokerSettings>(),
        "gateway" => fields_of::<GatewaySettings>(),
        "reconcile" => fields_of::<ReconcileSettings>(),
        "frontend_return" => fields_of::<FrontendReturnSettings>(),
        "internal_api" => fields_of::<InternalApiSettings>(),
        "merchants" => fields_of::<MerchantSettings>(),
        "retention" => fields_of::<RetentionSettings>(),
        "telemetry" => fields_of::<TelemetrySettings>(),
        _ => &[],
    }
}

/// The field names a derived `Deserialize` struct accepts, asked of the type itself.
fn fields_of<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{self, Visitor};
    struct Probe<'a>(&'a mut &'static [&'static str]);
    impl<'de> de::Deserializer<'de> for Probe<'_> {
        type Error = de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("probe"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(de::Error::custom("probe"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

/// Resolves secrets and checks every value, naming the first bad key.
pub fn resolve(settings: Settings) -> Result<Config, ConfigError> {
    validate_addr("server.public_addr", &settings.server.public_addr)?;
    validate_addr("server.internal_addr", &settings.server.internal_addr)?;
    if settings.server.drain_delay >= settings.server.shutdown_timeout {
        return Err(ConfigError::invalid(
            "server.drain_delay",
            "must be shorter than server.shutdown_timeout, the one budget that includes it",
        ));
    }
    if settings.server.max_body_bytes < 1024 {
        return Err(ConfigError::invalid("server.max_body_bytes", "must be at least 1024"));
    }
    let db_url = settings.database.url.expose_secret();
    if !(db_url.starts_with("sqlite:") || db_url.starts_with("postgres://") || db_url.starts_with("postgresql://")) {
        return Err(ConfigError::invalid("database.url", "must start with sqlite: or postgres://"));
    }
    if settings.database.max_connections == 0 {
        return Err(ConfigError::invalid("database.max_connections", "must be at least 1"));
    }
    if settings.database.write_batch == 0 {
        return Err(ConfigError::invalid("database.write_batch", "must be at least 1"));
    }
    let broker_url = settings.broker.url.expose_secret();
    if !(broker_url.starts_with("amqp://") || broker_url.starts_with("amqps://")) {
        return Err(ConfigError::invalid("broker.url", "must start with amqp:// or amqps://"));
    }
    if settings.broker.exchange.is_empty() {
        return Err(ConfigError::invalid("broker.exchange", "must not be empty"));
    }
    if settings.broker.publish_batch == 0 {
        return Err(ConfigError::invalid("broker.publish_batch", "must be at least 1"));
    }
    url::Url::parse(&settings.gateway.base_url).map_err(|e| ConfigError::invalid("gateway.base_url", e.to_string()))?;
    let r = &settings.reconcile;
    if r.max_rps == 0 {
        return Err(ConfigError::invalid("reconcile.max_rps", "must be at least 1"));
    }
    if r.initial_backoff > r.max_backoff {
        return Err(ConfigError::invalid("reconcile.initial_backoff", "must not exceed reconcile.max_backoff"));
    }
    if r.concurrency == 0 || r.batch == 0 {
        return Err(ConfigError::invalid("reconcile.concurrency", "concurrency and batch must be at least 1"));
    }
    let fr = &settings.frontend_return;
    if fr.inquiries_per_second == 0 {
        return Err(ConfigError::invalid("frontend_return.inquiries_per_second", "must be at least 1"));
    }
    if fr.untrusted_inquiries_per_second == 0 || fr.untrusted_inquiries_per_second > r.max_rps {
        return Err(ConfigError::invalid(
            "frontend_return.untrusted_inquiries_per_second",
            "must be at least 1 and at most reconcile.max_rps",
        ));
    }
    if fr.max_text_chars < 16 {
        return Err(ConfigError::invalid("frontend_return.max_text_chars", "must be at least 16"));
    }
    if fr.wait_for_result > Duration::from_secs(30) {
        return Err(ConfigError::invalid("frontend_return.wait_for_result", "must be at most 30s"));
    }
    if settings.server.request_timeout < Duration::from_millis(100) {
        return Err(ConfigError::invalid("server.request_timeout", "must be at least 100ms"));
    }
    if settings.server.max_connections == 0 {
        return Err(ConfigError::invalid("server.max_connections", "must be at least 1"));
    }

    let mut seen = HashSet::new();
    let mut merchants = Vec::with_capacity(settings.merchants.len());
    for (i, m) in settings.merchants.iter().enumerate() {
        let key = |field: &str| format!("merchants[{i}].{field}");
        if m.id.is_empty() || m.id.len() > 25 {
            return Err(ConfigError::invalid(key("id"), "must be 1 to 25 characters"));
        }
        if !seen.insert(m.id.clone()) {
            return Err(ConfigError::invalid(key("id"), format!("merchant {} is configured twice", m.id)));
        }
        let secret_key = secret_from(&key("secret_key"), m.secret_key.as_ref(), m.secret_key_file.as_deref())?
            .ok_or_else(|| ConfigError::invalid(key("secret_key"), "secret_key or secret_key_file is required"))?;
        let previous_secret_key = secret_from(
            &key("previous_secret_key"),
            m.previous_secret_key.as_ref(),
            m.previous_secret_key_file.as_deref(),
        )?;
        let timezone: FixedOffset = m
            .timezone
            .parse()
            .map_err(|_| ConfigError::invalid(key("timezone"), "must be a UTC offset such as +08:00"))?;
        let result_url = match &m.result_url {
            Some(u) if !u.is_empty() => {
                Some(url::Url::parse(u).map_err(|e| ConfigError::invalid(key("result_url"), e.to_string()))?)
            }
            _ => None,
        };
        for (field, value) in
            [("backend_return_url", &m.backend_return_url), ("frontend_return_url", &m.frontend_return_url)]
        {
            if let Some(u) = value.as_deref().filter(|u| !u.is_empty()) {
                url::Url::parse(u).map_err(|e| ConfigError::invalid(key(field), e.to_string()))?;
            }
        }
        merchants.push(Merchant {
            id: m.id.clone(),
            secret_key,
            previous_secret_key,
            timezone,
            result_url,
            backend_return_url: m.backend_return_url.clone().filter(|u| !u.is_empty()),
            frontend_return_url: m.frontend_return_url.clone().filter(|u| !u.is_empty()),
        });
    }

    let internal_tokens = internal_tokens(&settings.internal_api)?;
    let ret = &settings.retention;
    if ret.older_than < MIN_RETENTION {
        return Err(ConfigError::invalid("retention.older_than", "must be at least 1h"));
    }
    if ret.batch == 0 || ret.batch > 100_000 {
        return Err(ConfigError::invalid("retention.batch", "must be 1 to 100000"));
    }
    if ret.interval < Duration::from_secs(1) {
        return Err(ConfigError::invalid("retention.interval", "must be at least 1s"));
    }
    let tel = &settings.telemetry;
    if !(0.0..=1.0).contains(&tel.sample_ratio) {
        return Err(ConfigError::invalid("telemetry.sample_ratio", "must be between 0.0 and 1.0"));
    }
    if tel.enabled() {
        let url = url::Url::parse(&tel.otlp_endpoint)
            .map_err(|e| ConfigError::invalid("telemetry.otlp_endpoint", e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") || url.query().is_some() {
            return Err(ConfigError::invalid("telemetry.otlp_endpoint", "must be an http(s) URL without a query"));
        }
    }
    if tel.service_name.trim().is_empty() {
        return Err(ConfigError::invalid("telemetry.service_name", "must not be empty"));
    }
    if tel.export_timeout < Duration::from_millis(100) {
        return Err(ConfigError::invalid("telemetry.export_timeout", "must be at least 100ms"));
    }
    if settings.broker.dead_letter_exchange == settings.broker.exchange {
        return Err(ConfigError::invalid("broker.dead_letter_exchange", "must differ from broker.exchange"));
    }
    if !settings.broker.dead_letter_exchange.is_empty() && settings.broker.default_queue.is_empty() {
        return Err(ConfigError::invalid("broker.dead_letter_exchange", "needs broker.default_queue"));
    }

    Ok(Config { settings, merchants, internal_tokens })
}

/// Every internal API token with its name: unnamed ones from `tokens` and `tokens_file`, then
/// `named_tokens`. Names are unique; tokens are at least 8 characters.
fn internal_tokens(api: &InternalApiSettings) -> Result<Vec<InternalToken>, ConfigError> {
    let mut out: Vec<InternalToken> = api
        .tokens
        .iter()
        .filter(|t| !t.expose_secret().is_empty())
        .enumerate()
        .map(|(i, t)| InternalToken { name: format!("tokens[{i}]"), token: t.clone() })
        .collect();
    if let Some(path) = &api.tokens_file {
        let text = read_secret_file("internal_api.tokens_file", path)?;
        out.extend(text.lines().map(str::trim).filter(|l| !l.is_empty()).enumerate().map(|(i, l)| InternalToken {
            name: format!("tokens_file[{i}]"),
            token: SecretString::from(l.to_string()),
        }));
    }
    if out.iter().any(|t| t.token.expose_secret().len() < 8) {
        return Err(ConfigError::invalid("internal_api.tokens", "every token must be at least 8 characters"));
    }
    let mut names = HashSet::new();
    for (i, t) in api.named_tokens.iter().enumerate() {
        let key = |field: &str| format!("internal_api.named_tokens[{i}].{field}");
        let valid = |c: char| c.is_ascii_alphanumeric() || "-_.@".contains(c);
        if t.name.is_empty() || t.name.len() > 64 || !t.name.chars().all(valid) {
            return Err(ConfigError::invalid(key("name"), "must be 1 to 64 of A-Z a-z 0-9 - _ . @"));
        }
        if !names.insert(t.name.clone()) {
            return Err(ConfigError::invalid(key("name"), format!("{} is configured twice", t.name)));
        }
        let token = secret_from(&key("token"), t.token.as_ref(), t.token_file.as_deref())?
            .ok_or_else(|| ConfigError::invalid(key("token"), "token or token_file is required"))?;
        if token.expose_secret().len() < 8 {
            return Err(ConfigError::invalid(key("token"), "must be at least 8 characters"));
        }
        out.push(InternalToken { name: t.name.clone(), token });
    }
    Ok(out)
}

fn validate_addr(key: &str, value: &str) -> Result<(), ConfigError> {
    value
        .parse::<std::net::SocketAddr>()
        .map(|_| ())
        .map_err(|_| ConfigError::invalid(key, format!("`{value}` is not an address such as 127.0.0.1:8080")))
}

fn secret_from(
    key: &str,
    inline: Option<&SecretString>,
    file: Option<&Path>,
) -> Result<Option<SecretString>, ConfigError> {
    if let Some(path) = file.filter(|p| !p.as_os_str().is_empty()) {
        let text = read_secret_file(&format!("{key}_file"), path)?;
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(ConfigError::invalid(format!("{key}_file"), "the file is empty"));
        }
        return Ok(Some(SecretString::from(trimmed.to_string())));
    }
    Ok(inline.filter(|s| !s.expose_secret().is_empty()).cloned())
}

fn read_secret_file(key: &str, path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError::invalid(key, format!("cannot read {}: {e}", path.display())))
}

fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SecretString>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s.split(',').map(|t| SecretString::from(t.trim().to_string())).collect(),
        OneOrMany::Many(v) => v.into_iter().map(SecretString::from).collect(),
    })
}

/// Serde adapter for human-readable durations ("5s", "1h").
mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map_err(|e| serde::de::Error::custom(format!("`{text}` is not a duration such as 5s or 1m ({e})")))
    }

    pub fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*value).to_string())
    }
}

/// The effective configuration, every key of every section, as JSON with every secret replaced
/// by `[redacted]` (URL passwords included); `internal_api.tokens` lists the resolved tokens
/// (from `tokens_file` too) and each merchant shows whether a (previous) key is set.
pub fn redacted(config: &Config) -> serde_json::Value {
    let mut shown = serde_json::to_value(&config.settings).unwrap_or_default();
    // Every token by the name it is logged under; never the token.
    shown["internal_api"]["tokens"] = serde_json::json!(config
        .internal_tokens
        .iter()
        .map(|t| serde_json::json!({"name": t.name, "token": "[redacted]"}))
        .collect::<Vec<_>>());
    if let Some(merchants) = shown["merchants"].as_array_mut() {
        for (shown, m) in merchants.iter_mut().zip(&config.merchants) {
            shown["secret_key"] = serde_json::json!("[redacted]");
            shown["previous_secret_key"] =
                serde_json::json!(if m.previous_secret_key.is_some() { "[redacted]" } else { "" });
            shown["timezone"] = serde_json::json!(m.timezone.to_string());
        }
    }
    shown
}

fn show_url<S: serde::Serializer>(url: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact_url(url.expose_secret()))
}

fn show_endpoint<S: serde::Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact_url(url))
}

fn show_secret<S: serde::Serializer>(secret: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(if secret.is_some() { "[redacted]" } else { "" })
}

fn show_secrets<S: serde::Serializer>(secrets: &[SecretString], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(secrets.iter().map(|_| "[redacted]"))
}

/// Hides the password of a URL such as `postgres://user:pw@host/db`.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("[redacted]"));
            u.to_string()
        }
        _ => raw.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources() -> Sources {
        Sources { dir: Some(PathBuf::from("/nonexistent")), env_name: None, files: vec![], use_environment: false }
    }

    #[test]
    fn embedded_defaults_load() {
        let cfg = load(&sources()).expect("defaults load");
        assert_eq!(cfg.settings.server.max_body_bytes, 65536);
        assert_eq!(cfg.settings.reconcile.grace, Duration::from_secs(300));
        assert_eq!(cfg.settings.broker.exchange, "pgw.payments");
        assert!(cfg.merchants.is_empty());
    }

    #[test]
    fn bad_duration_names_the_key() {
        let err = load_with_overrides(&sources(), &[("reconcile.grace", "soon".into())]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("grace"), "{text}");
    }

    #[test]
    fn bad_address_names_the_key() {
        let err = load_with_overrides(&sources(), &[("server.public_addr", "nowhere".into())]).unwrap_err();
        assert!(err.to_string().contains("server.public_addr"), "{err}");
    }

    #[test]
    fn secrets_are_read_from_files_and_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join("jt01");
        std::fs::write(&key_path, "s3cr3t-key-from-file\n").unwrap();
        let file = dir.path().join("extra.toml");
        std::fs::write(
            &file,
            format!(
                "[[merchants]]\nid = \"JT01\"\nsecret_key_file = \"{}\"\ntimezone = \"+07:00\"\n[database]\nurl = \"postgres://u:pw@127.0.0.1/db\"\n",
                key_path.display()
            ),
        )
        .unwrap();
        let mut src = sources();
        src.files.push(file);
        let cfg = load(&src).unwrap();
        assert_eq!(cfg.merchants[0].secret_key.expose_secret(), "s3cr3t-key-from-file");
        let shown = redacted(&cfg).to_string();
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(!shown.contains(":pw@"), "{shown}");
    }

    #[test]
    fn an_unknown_key_is_an_error_naming_the_closest_known_one() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                "[[merchants]]\nid = \"JT01\"\nsecret_key = \"k\"\nprevious_secret_key_flie = \"/k\"\n",
                "merchants[0].previous_secret_key_flie",
                Some("merchants[0].previous_secret_key_file"),
            ),
            ("[reconcile]\nmaxrps = 5\n", "reconcile.maxrps", Some("reconcile.max_rps")),
            ("[servr]\npublic_addr = \"127.0.0.1:1\"\n", "servr", Some("server")),
            ("[broker]\ncompletely_unrelated = 1\n", "broker.completely_unrelated", None),
        ];
        for (i, (toml, key, suggestion)) in cases.into_iter().enumerate() {
            let file = dir.path().join(format!("{i}.toml"));
            std::fs::write(&file, toml).unwrap();
            let mut src = sources();
            src.files.push(file);
            match load(&src).unwrap_err() {
                ConfigError::Unknown { key: k, suggestion: s, .. } => {
                    assert_eq!((k.as_str(), s.as_deref()), (key, suggestion), "{toml}");
                }
                other => panic!("{toml}: {other}"),
            }
        }
    }

    #[test]
    fn every_effective_key_is_shown() {
        fn leaves(v: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(m) => {
                    for (k, v) in m {
                        leaves(v, &format!("{prefix}{k}."), out)
                    }
                }
                _ => out.push(prefix.trim_end_matches('.').to_string()),
            }
        }
        let defaults: toml_probe::Table = toml_probe::parse(EMBEDDED_DEFAULTS);
        let shown = redacted(&load(&sources()).unwrap());
        for key in defaults {
            let mut v = &shown;
            for part in key.split('.') {
                v = &v[part];
            }
            assert!(!v.is_null(), "check-config does not show `{key}`");
        }
        let mut all = Vec::new();
        leaves(&shown, "", &mut all);
        assert!(all.contains(&"broker.poll_interval".to_string()), "{all:?}");
    }

    /// The `section.key` names of a flat TOML file such as `config/default.toml`.
    mod toml_probe {
        pub type Table = Vec<String>;
        pub fn parse(text: &str) -> Table {
            let mut section = String::new();
            let mut keys = Vec::new();
            for line in text.lines().map(str::trim) {
                if line.starts_with("[[") || line.starts_with('#') || line.is_empty() {
                    continue;
                }
                if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                    section = name.to_string();
                } else if let Some((key, _)) = line.split_once('=') {
                    keys.push(format!("{section}.{}", key.trim()));
                }
            }
            keys
        }
    }

    #[test]
    fn merchant_without_key_is_rejected_by_key_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.toml");
        std::fs::write(&file, "[[merchants]]\nid = \"JT01\"\n").unwrap();
        let mut src = sources();
        src.files.push(file);
        let err = load(&src).unwrap_err();
        assert!(err.to_string().contains("merchants[0].secret_key"), "{err}");
    }

    #[test]
    fn named_tokens_are_read_from_files_and_only_their_names_are_shown() {
        let dir = tempfile::tempdir().unwrap();
        let token_path = dir.path().join("oncall");
        std::fs::write(&token_path, "oncall-token-from-file\n").unwrap();
        let file = dir.path().join("t.toml");
        std::fs::write(
            &file,
            format!(
                "[internal_api]\ntokens = [\"plain-token-123\"]\n[[internal_api.named_tokens]]\nname = \"oncall\"\n\
                 token_file = \"{}\"\n[[internal_api.named_tokens]]\nname = \"billing-job\"\ntoken = \"billing-token-456\"\n",
                token_path.display()
            ),
        )
        .unwrap();
        let mut src = sources();
        src.files.push(file);
        let cfg = load(&src).unwrap();
        let names: Vec<&str> = cfg.internal_tokens.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["tokens[0]", "oncall", "billing-job"]);
        assert_eq!(cfg.internal_tokens[1].token.expose_secret(), "oncall-token-from-file");
        let shown = format!("{} {:?}", redacted(&cfg), cfg.internal_tokens);
        for secret in ["plain-token-123", "oncall-token-from-file", "billing-token-456"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }

    #[test]
    fn bad_named_tokens_and_retention_values_name_the_key() {
        let cases = [
            ("[[internal_api.named_tokens]]\nname = \"a b\"\ntoken = \"long-enough-token\"\n", "named_tokens[0].name"),
            ("[[internal_api.named_tokens]]\nname = \"x\"\ntoken = \"short\"\n", "named_tokens[0].token"),
            ("[[internal_api.named_tokens]]\nname = \"x\"\n", "named_tokens[0].token"),
            (
                "[[internal_api.named_tokens]]\nname = \"x\"\ntoken = \"long-enough-1\"\n\
                 [[internal_api.named_tokens]]\nname = \"x\"\ntoken = \"long-enough-2\"\n",
                "named_tokens[1].name",
            ),
            ("[retention]\nolder_than = \"10m\"\n", "retention.older_than"),
            ("[retention]\nbatch = 0\n", "retention.batch"),
            ("[broker]\ndead_letter_exchange = \"pgw.payments\"\n", "broker.dead_letter_exchange"),
        ];
        for (toml, key) in cases {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("c.toml");
            std::fs::write(&file, toml).unwrap();
            let mut src = sources();
            src.files.push(file);
            let err = load(&src).unwrap_err();
            assert!(err.to_string().contains(key), "{toml}: {err}");
        }
    }

    #[test]
    fn retention_and_queue_defaults() {
        let cfg = load(&sources()).unwrap();
        assert!(!cfg.settings.retention.enabled);
        assert_eq!(cfg.settings.retention.older_than, Duration::from_secs(90 * 86_400));
        assert_eq!(cfg.settings.broker.default_queue_type, QueueType::Quorum);
        assert!(cfg.settings.broker.dead_letter_exchange.is_empty());
    }
}
