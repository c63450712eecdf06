//! Structured logs with `tracing`: JSON lines in production, readable text locally. `RUST_LOG`
//! overrides the configured filter. Never log secrets, tokens or raw bodies.

use tracing_subscriber::{fmt, EnvFilter};

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber; a second call (tests) is a no-op.
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.filter));
    let result = match settings.format {
        LogFormat::Json => fmt()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_env_filter(filter)
            .try_init(),
        LogFormat::Pretty => fmt().compact().with_env_filter(filter).try_init(),
    };
    let _ = result;
}
