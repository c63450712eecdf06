//! Bodies of the probes: health and readiness.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /healthz`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: String,
}

/// `GET /readyz`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    /// `ready`, `store_unavailable` or `draining`.
    #[schema(pattern = "^(ready|store_unavailable|draining)$")]
    pub status: String,
    pub store: ReadinessStore,
    pub broker: ReadinessBroker,
    /// Null when the store could not be asked.
    pub outbox: Option<ReadinessOutbox>,
}

/// The store part of [`Readiness`].
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReadinessStore {
    /// `sqlite` or `postgres`.
    pub backend: String,
    pub ok: bool,
}

/// The broker part of [`Readiness`].
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReadinessBroker {
    pub connected: bool,
}

/// The outbox part of [`Readiness`].
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReadinessOutbox {
    /// Events not yet published.
    pub backlog: i64,
    /// Age of the oldest unpublished event, if any.
    #[serde(rename = "oldestAgeSeconds")]
    pub oldest_age_seconds: Option<i64>,
}
