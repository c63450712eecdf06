//! How the configuration is shown (`pgw-relay check-config`): every key, secrets `[redacted]`;
//! and the one list form of tokens.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};

use crate::config::Config;

pub(super) fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SecretString>, D::Error> {
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

pub(super) fn show_url<S: serde::Serializer>(url: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact_url(url.expose_secret()))
}

pub(super) fn show_endpoint<S: serde::Serializer>(url: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&redact_url(url))
}

pub(super) fn show_secret<S: serde::Serializer>(secret: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(if secret.is_some() { "[redacted]" } else { "" })
}

pub(super) fn show_secrets<S: serde::Serializer>(secrets: &[SecretString], s: S) -> Result<S::Ok, S::Error> {
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
