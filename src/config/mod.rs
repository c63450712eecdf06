//! Configuration: layered loading with the `config` crate, secrets from files, validation that
//! names the offending key, and a redacted rendering for `pgw-relay check-config`.
//!
//! Layers, later wins: the embedded `config/default.toml`, `config/default.toml` on disk,
//! `config/<PGW_RELAY_ENV>.toml`, every `--config FILE` (or `PGW_RELAY_CONFIG`, comma separated),
//! then `PGW_RELAY__<SECTION>__<KEY>` environment variables.
//!
//! [`sections`] holds the types of the TOML sections, [`load`](fn@load) the layering, `known_keys`
//! the refusal of unknown keys, [`resolve`] the validation and secrets, `display` the redacted
//! rendering, [`duration`] the one serde form of durations.

mod display;
pub mod duration;
mod known_keys;
mod load;
mod resolve;
pub mod sections;
#[cfg(test)]
mod tests;

use std::fmt;

use chrono::FixedOffset;

use crate::domain::ids::MerchantId;
use secrecy::SecretString;

pub use display::{redact_url, redacted};
pub use load::{load, load_str, load_with_overrides, Sources};
pub use resolve::resolve;
pub use sections::*;

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
    pub(crate) fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid { key: key.into(), message: message.into() }
    }
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

/// A merchant with its secrets resolved and its settings parsed.
#[derive(Clone)]
pub struct Merchant {
    pub id: MerchantId,
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
        self.merchants.iter().find(|m| m.id.as_str() == id)
    }
}
