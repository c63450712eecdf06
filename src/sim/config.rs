//! `SimConfig`: what pgw-sim listens on, which merchants (and keys) it knows, and the stored cards
//! of its card vault. Read from TOML by the `pgw-sim` binary; tests build it in code.

use std::collections::HashSet;
use std::time::Duration;

use chrono::FixedOffset;
use serde::{Deserialize, Serialize};

/// Why a configuration cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid pgw-sim configuration key `{key}`: {message}")]
pub struct SimConfigError {
    pub key: String,
    pub message: String,
}

impl SimConfigError {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        SimConfigError { key: key.into(), message: message.into() }
    }
}

/// The whole simulator configuration.
///
/// ```toml
/// listen = "127.0.0.1:8090"
/// public_url = "http://127.0.0.1:8090"   # optional; default derived from the bound address
/// token_ttl = "30m"
///
/// [[merchants]]
/// id = "JT01"
/// secret_key = "ECC4E54D…"
/// timezone = "+08:00"
/// currencies = ["SGD", "THB"]              # optional; empty = every currency pgw-relay knows
///
/// [[merchants.cards]]
/// token = "28052010234224845229"
/// masked_pan = "411111XXXXXX1111"
/// expiry = "20301231"                      # optional, sent as customerTokenExpiry (yyyyMMdd)
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Address to bind; port 0 picks a free port (see [`super::SimServer::base_url`]).
    pub listen: String,
    /// Base URL put in `webPaymentUrl`; default `http://<bound address>`.
    pub public_url: Option<String>,
    /// How long a `paymentToken` (and its payment page) stays usable.
    #[serde(with = "crate::config::duration")]
    pub token_ttl: Duration,
    /// HTTP worker threads.
    pub workers: usize,
    /// Only tokens listed in `[[merchants.cards]]` are valid customer tokens; otherwise any token of
    /// 16 to 20 digits is accepted as well.
    pub strict_tokens: bool,
    /// Timeout of one backend-notification attempt.
    #[serde(with = "crate::config::duration")]
    pub notify_timeout: Duration,
    /// Attempts per notification (first try included) on transport errors and non-2xx answers.
    pub notify_attempts: u32,
    /// Wait before the second attempt; doubles for each further one.
    #[serde(with = "crate::config::duration")]
    pub notify_backoff: Duration,
    /// How long a notification held by the `reorder` scenario waits for `POST /control/release`.
    #[serde(with = "crate::config::duration")]
    pub reorder_hold: Duration,
    /// The merchants the simulator serves.
    pub merchants: Vec<SimMerchant>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: "127.0.0.1:8090".to_string(),
            public_url: None,
            token_ttl: Duration::from_secs(30 * 60),
            workers: 2,
            strict_tokens: false,
            notify_timeout: Duration::from_secs(10),
            notify_attempts: 3,
            notify_backoff: Duration::from_secs(1),
            reorder_hold: Duration::from_secs(3),
            merchants: Vec::new(),
        }
    }
}

impl SimConfig {
    /// A configuration for tests: listens on `127.0.0.1:0` with the given merchants.
    pub fn ephemeral(merchants: Vec<SimMerchant>) -> Self {
        SimConfig { listen: "127.0.0.1:0".to_string(), merchants, ..SimConfig::default() }
    }

    /// Parses a TOML document (unknown keys are errors).
    pub fn from_toml(text: &str) -> Result<SimConfig, SimConfigError> {
        let config = ::config::Config::builder()
            .add_source(::config::File::from_str(text, ::config::FileFormat::Toml))
            .build()
            .map_err(|e| SimConfigError::new("(file)", e.to_string()))?;
        let parsed: SimConfig = config.try_deserialize().map_err(|e| SimConfigError::new("(file)", e.to_string()))?;
        parsed.validate()?;
        Ok(parsed)
    }

    /// Checks every key that the server relies on; the error names the key.
    pub fn validate(&self) -> Result<(), SimConfigError> {
        if self.workers == 0 {
            return Err(SimConfigError::new("workers", "must be at least 1"));
        }
        if self.notify_attempts == 0 {
            return Err(SimConfigError::new("notify_attempts", "must be at least 1"));
        }
        if self.token_ttl.is_zero() {
            return Err(SimConfigError::new("token_ttl", "must be longer than 0s"));
        }
        if let Some(url) = &self.public_url {
            match url::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                _ => return Err(SimConfigError::new("public_url", "must be an http(s) URL")),
            }
        }
        let mut ids = HashSet::new();
        for (i, m) in self.merchants.iter().enumerate() {
            let key = |k: &str| format!("merchants[{i}].{k}");
            if m.id.trim().is_empty() || m.id.len() > 25 {
                return Err(SimConfigError::new(key("id"), "must be 1 to 25 characters"));
            }
            if !ids.insert(m.id.clone()) {
                return Err(SimConfigError::new(key("id"), format!("`{}` is listed twice", m.id)));
            }
            if m.secret_key.is_empty() {
                return Err(SimConfigError::new(key("secret_key"), "must not be empty"));
            }
            if m.offset().is_none() {
                return Err(SimConfigError::new(
                    key("timezone"),
                    format!("`{}` is not an offset such as +07:00", m.timezone),
                ));
            }
            for (c, currency) in m.currencies.iter().enumerate() {
                if crate::domain::money::exponent_of(&currency.to_ascii_uppercase()).is_none() {
                    return Err(SimConfigError::new(
                        key(&format!("currencies[{c}]")),
                        format!("`{currency}` is not a supported currency"),
                    ));
                }
            }
            for (c, card) in m.cards.iter().enumerate() {
                if card.token.trim().is_empty() {
                    return Err(SimConfigError::new(key(&format!("cards[{c}].token")), "must not be empty"));
                }
                if card.masked_pan.trim().is_empty() {
                    return Err(SimConfigError::new(key(&format!("cards[{c}].masked_pan")), "must not be empty"));
                }
            }
            for (name, url) in
                [("backend_return_url", &m.backend_return_url), ("frontend_return_url", &m.frontend_return_url)]
            {
                if let Some(url) = url {
                    if url::Url::parse(url).is_err() {
                        return Err(SimConfigError::new(key(name), "must be a URL"));
                    }
                }
            }
        }
        Ok(())
    }

    /// The merchant with this id.
    pub fn merchant(&self, id: &str) -> Option<&SimMerchant> {
        self.merchants.iter().find(|m| m.id == id)
    }
}

/// One merchant: id, key, local time zone and the cards stored for its customers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimMerchant {
    pub id: String,
    /// The HS256 secret as 2C2P hands it out (used as its ASCII bytes).
    #[serde(skip_serializing)]
    pub secret_key: String,
    /// Display name on the payment page; defaults to the id.
    #[serde(default)]
    pub name: Option<String>,
    /// Accepted `currencyCode`s; empty = every currency known to [`crate::domain::money`].
    #[serde(default)]
    pub currencies: Vec<String>,
    /// Offset used for `transactionDateTime` (merchant local time, as 2C2P does).
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Used when a token request carries no `backendReturnUrl` (2C2P's merchant profile setting).
    #[serde(default)]
    pub backend_return_url: Option<String>,
    /// Used when a token request carries no `frontendReturnUrl`.
    #[serde(default)]
    pub frontend_return_url: Option<String>,
    /// The card vault: stored cards by customer token.
    #[serde(default)]
    pub cards: Vec<SimCard>,
}

fn default_timezone() -> String {
    "+07:00".to_string()
}

impl SimMerchant {
    /// A merchant with defaults (time zone +07:00, no cards, every currency).
    pub fn new(id: impl Into<String>, secret_key: impl Into<String>) -> Self {
        SimMerchant {
            id: id.into(),
            secret_key: secret_key.into(),
            name: None,
            currencies: Vec::new(),
            timezone: default_timezone(),
            backend_return_url: None,
            frontend_return_url: None,
            cards: Vec::new(),
        }
    }

    /// Adds a stored card to the vault.
    pub fn with_card(mut self, token: impl Into<String>, masked_pan: impl Into<String>) -> Self {
        self.cards.push(SimCard { token: token.into(), masked_pan: masked_pan.into(), expiry: None });
        self
    }

    /// Sets the local time zone offset (`+08:00`).
    pub fn with_timezone(mut self, offset: impl Into<String>) -> Self {
        self.timezone = offset.into();
        self
    }

    /// The parsed time zone offset.
    pub fn offset(&self) -> Option<FixedOffset> {
        self.timezone.trim().parse::<FixedOffset>().ok()
    }

    /// Whether `currency` (upper-case) is accepted for this merchant.
    pub fn accepts_currency(&self, currency: &str) -> bool {
        crate::domain::money::exponent_of(currency).is_some()
            && (self.currencies.is_empty() || self.currencies.iter().any(|c| c.eq_ignore_ascii_case(currency)))
    }
}

/// A stored card: the customer token, the masked PAN shown and sent back, and an optional expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimCard {
    pub token: String,
    /// Masked PAN such as `411111XXXXXX1111`; never a full card number.
    pub masked_pan: String,
    /// `customerTokenExpiry`, `yyyyMMdd`.
    #[serde(default)]
    pub expiry: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_config_reads_the_shipped_file() {
        let text = include_str!("../../config/pgw-sim.toml");
        let config = SimConfig::from_toml(text).unwrap();
        assert_eq!(config.listen, "127.0.0.1:8090");
        assert_eq!(config.token_ttl, Duration::from_secs(1800));
        let jt01 = config.merchant("JT01").unwrap();
        assert_eq!(jt01.offset().unwrap().local_minus_utc(), 8 * 3600);
        assert_eq!(jt01.cards.len(), 2);
        assert_eq!(jt01.cards[1].masked_pan, "520000XXXXXX0007");
    }

    #[test]
    fn sim_config_rejects_bad_keys_by_name() {
        let bad_tz = "[[merchants]]\nid = \"M\"\nsecret_key = \"k\"\ntimezone = \"Asia/Bangkok\"\n";
        assert_eq!(SimConfig::from_toml(bad_tz).unwrap_err().key, "merchants[0].timezone");
        let bad_ttl = "token_ttl = \"soon\"\n";
        assert!(SimConfig::from_toml(bad_ttl).is_err());
        let typo = "lisen = \"127.0.0.1:1\"\n";
        assert!(SimConfig::from_toml(typo).is_err());
        let twice = "[[merchants]]\nid = \"M\"\nsecret_key = \"k\"\n[[merchants]]\nid = \"M\"\nsecret_key = \"k\"\n";
        assert_eq!(SimConfig::from_toml(twice).unwrap_err().key, "merchants[1].id");
        let currency = "[[merchants]]\nid = \"M\"\nsecret_key = \"k\"\ncurrencies = [\"XXX\"]\n";
        assert_eq!(SimConfig::from_toml(currency).unwrap_err().key, "merchants[0].currencies[0]");
    }

    #[test]
    fn sim_merchant_currency_filter() {
        let mut m = SimMerchant::new("M", "k");
        assert!(m.accepts_currency("THB"));
        assert!(!m.accepts_currency("XXX"));
        m.currencies = vec!["sgd".into()];
        assert!(m.accepts_currency("SGD"));
        assert!(!m.accepts_currency("THB"));
    }
}
