//! Unknown keys: a typo in a key is an error naming the closest known key, never ignored.

use crate::config::{
    BrokerSettings, ConfigError, DatabaseSettings, FrontendReturnSettings, GatewaySettings, InternalApiSettings,
    LogSettings, MerchantSettings, ReconcileSettings, RetentionSettings, ServerSettings, Settings, TelemetrySettings,
};

/// The error for an unknown key (as `serde_ignored` spells its path, `merchants.0.x`): the key
/// as the files spell it, the environment variable it came from if one did, and the closest
/// known key of the same section.
pub(super) fn unknown_key(path: &str, use_environment: bool) -> ConfigError {
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
