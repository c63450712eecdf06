//! `GET /v1/quarantine` and `POST /v1/quarantine/{id}/release`: the verified notifications the
//! store refused permanently, and how an operator applies one once the cause is fixed.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use base64::Engine;
use serde::Deserialize;

use crate::domain::redact;
use crate::http::error::ApiError;
use crate::http::notification::observe;
use crate::http::AppState;
use crate::protocol::payment_result::PaymentResult;
use crate::store::QuarantineRow;

/// `?all=true` lists released entries too.
#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    all: bool,
}

fn entry(row: &QuarantineRow) -> serde_json::Value {
    let time = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339());
    serde_json::json!({
        "id": row.id,
        "kind": row.kind,
        "merchantID": row.merchant_id,
        "invoiceNo": row.invoice_no,
        "error": row.error,
        "receivedAt": time(row.received_at),
        "releasedAt": row.released_at.and_then(time),
        "releaseOutcome": row.release_outcome,
        "token": row.raw,
    })
}

/// Lists the notifications held in quarantine, oldest first.
#[utoipa::path(get, path = "/v1/quarantine", tag = "internal", summary = "Quarantined notifications",
    security(("bearer" = [])),
    params(("all" = Option<bool>, Query, description = "Also list released entries.")),
    responses(
        (status = 200, description = "Held entries (all entries with `all=true`), oldest first.", body = crate::http::api_types::QuarantineList),
        (status = 400, description = "`malformed` query.", body = crate::http::api_types::ErrorBody),
        (status = 401, description = "No valid bearer token.", body = crate::http::api_types::ErrorBody),
        (status = 503, description = "`store_unavailable`.", body = crate::http::api_types::ErrorBody),
    ))]
pub async fn list(query: web::Query<ListQuery>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let rows = state.store.quarantined(query.all).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "quarantined": rows.iter().map(entry).collect::<Vec<_>>() })))
}

/// Applies a quarantined notification as if it had just been received (same dedupe key, same
/// reception time): `200` with what it did, and the entry is released; `409` with the store's
/// error if it is refused again (the entry stays held).
#[utoipa::path(post, path = "/v1/quarantine/{id}/release", tag = "internal", summary = "Apply a quarantined notification",
    security(("bearer" = [])),
    params(("id" = i64, Path, description = "The entry's id from `GET /v1/quarantine`.")),
    responses(
        (status = 200, description = "Applied (or found stored already); the entry is released.", body = crate::http::api_types::QuarantineRelease),
        (status = 401, description = "No valid bearer token.", body = crate::http::api_types::ErrorBody),
        (status = 404, description = "`not_found`: no such entry.", body = crate::http::api_types::ErrorBody),
        (status = 409, description = "`already_released`, `unknown_merchant`, `unreadable` or `still_refused` (the store refused it again; the entry stays held).", body = crate::http::api_types::ErrorBody),
        (status = 503, description = "`store_unavailable`: retry later.", body = crate::http::api_types::ErrorBody),
    ))]
pub async fn release(path: web::Path<i64>, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let row = state
        .store
        .quarantined_one(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no quarantine entry {id}")))?;
    if row.released_at.is_some() {
        return Err(ApiError::new(StatusCode::CONFLICT, "already_released", format!("entry {id} was released before")));
    }
    let merchant = state.config.merchant(&row.merchant_id).ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "unknown_merchant",
            format!("merchant {} is not configured", row.merchant_id),
        )
    })?;
    let claims = row
        .raw
        .split('.')
        .nth(1)
        .and_then(|c| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| serde_json::from_str::<PaymentResult>(&redact::json(&text)).ok())
        .ok_or_else(|| ApiError::new(StatusCode::CONFLICT, "unreadable", "the stored token cannot be read"))?;
    let obs = observe(&claims, merchant, row.received_at)?;
    let recorded = match state
        .store
        .record_observation(obs, Some(row.raw.clone()), row.dedupe_key.clone(), state.timing())
        .await
    {
        Ok(recorded) => recorded,
        Err(e) if e.is_transient() => return Err(e.into()),
        Err(e) => {
            return Err(ApiError::new(StatusCode::CONFLICT, "still_refused", e.chain()));
        }
    };
    if recorded.events > 0 {
        state.outbox_wake.notify_one();
    }
    let outcome =
        if recorded.duplicate { "duplicate".to_string() } else { format!("applied:{}", recorded.status.as_str()) };
    state.store.release_quarantined(id, outcome.clone()).await?;
    tracing::info!(id, merchant = %row.merchant_id, outcome = %outcome, "quarantined notification released");
    Ok(HttpResponse::Ok().json(serde_json::json!({ "id": id, "outcome": outcome, "status": recorded.status.as_str() })))
}
