//! Loading: the layers, later wins, then the refusal of unknown keys and the resolution.

use std::path::PathBuf;

use crate::config::known_keys::unknown_key;
use crate::config::resolve::resolve;
use crate::config::{Config, ConfigError, Settings};

pub(super) const EMBEDDED_DEFAULTS: &str = include_str!("../../config/default.toml");

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
