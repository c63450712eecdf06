//! Resolution: secrets read from files, every value checked, the first bad key named.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use chrono::FixedOffset;
use secrecy::{ExposeSecret, SecretString};

use crate::config::{Config, ConfigError, InternalApiSettings, InternalToken, Merchant, Settings, MIN_RETENTION};
use crate::domain::ids::MerchantId;

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
    if settings.database.group_writers == 0 {
        return Err(ConfigError::invalid("database.group_writers", "must be at least 1"));
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
        let id = MerchantId::parse(&m.id).map_err(|_| ConfigError::invalid(key("id"), "must be 1 to 25 characters"))?;
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
            id,
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
