//! `POST /2c2p/backend-notification`: verify the JWT, normalise, store durably, then answer 200.

use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::ExposeSecret;
use serde::Deserialize;

use crate::clock::now_ms;
use crate::config::Merchant;
use crate::domain::dedupe;
use crate::domain::observation::{Observation, Source};
use crate::domain::state::AnomalyReason;
use crate::http::body::read_limited;
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::protocol::jwt::{self, JwtError, KeyUsed};
use crate::protocol::payment_result::PaymentResult;
use crate::store::{Quarantined, StoreError};
use crate::telemetry::propagation;
use tracing::Instrument;

#[derive(Deserialize)]
struct Body {
    payload: String,
}

/// Handles one backend notification. Every rejection is counted and logged without secrets.
#[utoipa::path(
    post,
    path = "/2c2p/backend-notification",
    tag = "public",
    summary = "2C2P's backend notification of a payment result",
    description = "Verified (HS256 with the merchant's key), normalised and stored durably with the event it \
                   causes before `200`. A duplicate answers `200` and changes nothing.",
    request_body(content = crate::http::api_types::NotificationRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Stored (`accepted`), stored before (`duplicate`), or refused by the store for good and kept for an operator (`quarantined`).", body = crate::http::api_types::NotificationAck),
        (status = 400, description = "`malformed` body or JWT, or `invalid_notification` claims; nothing stored.", body = crate::http::api_types::ErrorBody),
        (status = 401, description = "`bad_signature`: not verified with a configured merchant's key; nothing stored.", body = crate::http::api_types::ErrorBody),
        (status = 408, description = "`request_timeout`: the body did not arrive in time.", body = crate::http::api_types::ErrorBody),
        (status = 413, description = "`too_large`: over `server.max_body_bytes`.", body = crate::http::api_types::ErrorBody),
        (status = 503, description = "`store_unavailable`: nothing stored; 2C2P retries (`Retry-After` says when).", body = crate::http::api_types::ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying."))),
    )
)]
pub async fn backend_notification(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let span = tracing::info_span!(
        "notification",
        merchant = tracing::field::Empty,
        invoice = tracing::field::Empty,
        outcome = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    let result = accept(&req, payload, &state).instrument(span.clone()).await;
    let outcome = match &result {
        Ok(accepted) => accepted.as_str(),
        Err(e) => e.outcome,
    };
    span.record("outcome", outcome);
    if matches!(&result, Err(e) if e.status.is_server_error()) {
        span.record("otel.status_code", "ERROR");
    }
    state.metrics.notification("backend", outcome);
    match result {
        Ok(accepted) => Ok(HttpResponse::Ok().json(serde_json::json!({ "status": accepted.as_str() }))),
        Err(e) => {
            if e.status.is_server_error() {
                tracing::error!(outcome, "backend notification not stored");
            } else {
                tracing::warn!(outcome, reason = %e.message, "backend notification rejected");
            }
            Err(e)
        }
    }
}

/// How a verified notification was taken in (each is answered `200`).
enum Accepted {
    Stored,
    Duplicate,
    /// The store refused it permanently: kept in quarantine so that the gateway stops retrying.
    Quarantined,
}

impl Accepted {
    fn as_str(&self) -> &'static str {
        match self {
            Accepted::Stored => "accepted",
            Accepted::Duplicate => "duplicate",
            Accepted::Quarantined => "quarantined",
        }
    }
}

async fn accept(req: &HttpRequest, payload: web::Payload, state: &AppState) -> Result<Accepted, ApiError> {
    let bytes = read_limited(req, payload, state.config.settings.server.max_body_bytes).await?;
    let body: Body = serde_json::from_slice(&bytes)
        .map_err(|_| ApiError::bad_request("malformed", "the body must be a JSON object {\"payload\": \"<JWT>\"}"))?;
    let token = body.payload.trim();
    let merchant_id = jwt::peek_merchant(token).map_err(jwt_error)?;
    // An unknown merchant answers exactly like a bad signature, so callers cannot probe which
    // merchant IDs are configured; metrics and logs keep the difference.
    let merchant = state
        .config
        .merchant(&merchant_id)
        .ok_or_else(|| ApiError::unauthorized("bad_signature", BAD_SIGNATURE).counted_as("unknown_merchant"))?;
    let verified = jwt::verify_redacted::<PaymentResult>(
        token,
        merchant.secret_key.expose_secret(),
        merchant.previous_secret_key.as_ref().map(|k| k.expose_secret()),
    )
    .map_err(jwt_error)?;
    let (result, audit) = (verified.claims, verified.audit);
    if verified.key_used == KeyUsed::Previous {
        tracing::info!(merchant = %merchant.id, "notification verified with the previous secret key");
    }
    let mut obs = observe(&result, merchant, now_ms())?;
    let span = tracing::Span::current();
    span.record("merchant", merchant.id.as_str());
    span.record("invoice", obs.invoice_no.as_str());
    obs.traceparent = propagation::current_traceparent();
    let dedupe_key = dedupe::notification_key(&merchant.id, token);
    let (invoice_no, resp_code) = (obs.invoice_no.clone(), obs.resp_code.clone());
    let stored =
        state.store.record_observation(obs.clone(), Some(audit.clone()), Some(dedupe_key.clone()), state.timing());
    let recorded = match stored.await {
        Ok(recorded) => recorded,
        Err(e) if e.is_transient() => return Err(e.into()),
        Err(e) => return quarantine(state, obs, audit, dedupe_key, e).await,
    };
    if recorded.events > 0 {
        state.outbox_wake.notify_one();
    }
    if let Some(reason) = recorded.anomaly {
        state.metrics.anomaly(reason, &merchant.id, &invoice_no, Source::BackendNotification);
    }
    tracing::info!(
        merchant = %merchant.id,
        invoice = %invoice_no,
        resp_code = %resp_code,
        status = recorded.status.as_str(),
        duplicate = recorded.duplicate,
        events = recorded.events,
        "backend notification stored"
    );
    Ok(if recorded.duplicate { Accepted::Duplicate } else { Accepted::Stored })
}

/// Normalises verified claims of `merchant`, received at `received_at_ms`.
pub(crate) fn observe(
    result: &PaymentResult,
    merchant: &Merchant,
    received_at_ms: i64,
) -> Result<Observation, ApiError> {
    Observation::from_payment_result(
        result,
        Source::BackendNotification,
        &merchant.id,
        merchant.timezone,
        received_at_ms,
    )
    .map_err(|e| ApiError::bad_request("invalid_notification", e.to_string()))
}

/// Keeps a verified notification the store refused permanently, so that nothing verified is
/// lost and the gateway stops retrying what would fail again. Only a transient failure to
/// quarantine it is answered `503`.
async fn quarantine(
    state: &AppState,
    obs: Observation,
    audit: String,
    dedupe_key: String,
    error: StoreError,
) -> Result<Accepted, ApiError> {
    let (merchant, invoice) = (obs.merchant_id.clone(), obs.invoice_no.clone());
    tracing::error!(merchant = %merchant, invoice = %invoice, error = %error.chain(), "store refused a verified notification: quarantined");
    let held = Quarantined {
        kind: Source::BackendNotification.as_str(),
        merchant_id: merchant.to_string(),
        invoice_no: Some(invoice.to_string()),
        dedupe_key: Some(dedupe_key),
        raw: audit,
        error: error.chain(),
        received_at_ms: obs.received_at_ms,
        observation: Some(obs),
    };
    let outcome = state.store.quarantine(held).await.map_err(|e| {
        tracing::error!(merchant = %merchant, invoice = %invoice, error = %e.chain(), "quarantine failed");
        ApiError::store_unavailable()
    })?;
    if outcome.new {
        state.metrics.quarantined.with_label_values(&["backend"]).inc();
    }
    if outcome.anomaly {
        state.metrics.anomaly(AnomalyReason::Unprocessable, &merchant, &invoice, Source::BackendNotification);
        state.outbox_wake.notify_one();
    }
    Ok(Accepted::Quarantined)
}

/// The answer to a token no configured key verifies (or whose merchant is not configured).
const BAD_SIGNATURE: &str = "the token signature does not verify";

fn jwt_error(e: JwtError) -> ApiError {
    match e {
        JwtError::Malformed => ApiError::bad_request("malformed", "payload is not a well-formed JWT"),
        JwtError::MissingMerchant => ApiError::bad_request("malformed", "the token carries no merchantID"),
        JwtError::InvalidClaims(m) => {
            ApiError::bad_request("malformed", format!("the token claims are not valid: {m}"))
        }
        JwtError::WrongAlgorithm => ApiError::unauthorized("bad_signature", "only HS256 tokens are accepted"),
        JwtError::BadSignature => ApiError::unauthorized("bad_signature", BAD_SIGNATURE),
        JwtError::UnsupportedHeader => ApiError::unauthorized(
            "bad_signature",
            "the token header carries parameters other than alg, typ, kid and cty",
        ),
    }
}
