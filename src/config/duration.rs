//! The one serde form of durations in configuration files (`"5s"`, `"30m"`, `"250ms"`), for
//! pgw-relay's and pgw-sim's settings alike: `#[serde(with = "duration")]`.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Reads a human-readable duration (surrounding whitespace ignored).
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(text.trim())
        .map_err(|e| serde::de::Error::custom(format!("`{text}` is not a duration such as 5s or 1m ({e})")))
}

/// Writes a duration the way it is read (`"1h 30m"`).
pub fn serialize<S: Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*value).to_string())
}
