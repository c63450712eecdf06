//! Health, readiness and metrics of the internal listener: what probes and scrapes read.

use actix_web::{web, HttpResponse};

use crate::clock::{age_secs, age_secs_now, now_ms};
use crate::http::AppState;

/// `GET /healthz`: the process can serve.
#[utoipa::path(get, path = "/healthz", tag = "internal", summary = "Liveness",
    responses((status = 200, description = "The process serves.", body = crate::http::api_types::Health)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// Longest a scrape or readiness probe waits for the store.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// `GET /readyz`: 200 when the store answers; the body also reports broker and outbox. Reads a
/// few rows whatever the size of the tables, each store call bounded by a timeout.
#[utoipa::path(get, path = "/readyz", tag = "internal", summary = "Readiness",
    responses(
        (status = 200, description = "The store answers (a broker outage shows in the body only).", body = crate::http::api_types::Readiness),
        (status = 503, description = "The store does not answer, or the instance is draining.", body = crate::http::api_types::Readiness),
    ))]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let store_ok = tokio::time::timeout(PROBE_TIMEOUT, state.store.ping()).await.map(|r| r.is_ok()).unwrap_or(false);
    let outbox = match tokio::time::timeout(PROBE_TIMEOUT, state.store.gauges()).await {
        Ok(Ok(g)) => serde_json::json!({
            "backlog": g.outbox_backlog,
            "parked": g.outbox_parked,
            "oldestAgeSeconds": g.oldest_unpublished_at.map(|t| age_secs(t, now_ms())),
        }),
        _ => serde_json::Value::Null,
    };
    let ready = store_ok && !state.is_draining();
    let body = serde_json::json!({
        "status": if ready { "ready" } else if state.is_draining() { "draining" } else { "store_unavailable" },
        "store": { "backend": state.store.backend(), "ok": store_ok },
        "broker": { "connected": (state.broker_status)() },
        "outbox": outbox,
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// `GET /metrics`: Prometheus text format. Refreshes the store-derived gauges first from counts
/// kept in the store (a few rows, not a scan), within a timeout; on a timeout or store error the
/// previous values are served and `pgw_relay_store_gauge_errors_total` counts it.
#[utoipa::path(get, path = "/metrics", tag = "internal", summary = "Prometheus metrics",
    responses((status = 200, description = "Prometheus text exposition; every series is prefixed `pgw_relay_`.",
        content_type = "text/plain", body = String)))]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    match tokio::time::timeout(PROBE_TIMEOUT, state.store.gauges()).await {
        Ok(Ok(g)) => {
            for status in crate::domain::state::Status::ALL {
                let n = g.invoices.iter().find(|(s, _)| s == status.as_str()).map(|(_, n)| *n).unwrap_or(0);
                state.metrics.invoices.with_label_values(&[status.as_str()]).set(n);
            }
            state.metrics.outbox_backlog.set(g.outbox_backlog);
            state.metrics.outbox_parked.set(g.outbox_parked);
            state.metrics.outbox_oldest_age_seconds.set(age_secs_now(g.oldest_unpublished_at));
        }
        Ok(Err(_)) | Err(_) => state.metrics.store_gauge_errors.inc(),
    }
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(state.metrics.render())
}
