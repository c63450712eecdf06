//! `POST /2c2p/backend-notification`: verify the JWT, normalise, store durably, then answer 200.

use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::ExposeSecret;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::domain::observation::{MaskedPan, Observation, Source};
use crate::http::body::read_limited;
use crate::http::error::ApiError;
use crate::http::AppState;
use crate::protocol::jwt::{self, JwtError, KeyUsed};
use crate::protocol::payment_result::PaymentResult;
use crate::store::now_ms;

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
        (status = 200, description = "Stored (`accepted`) or stored before (`duplicate`).", body = crate::http::api_types::NotificationAck),
        (status = 400, description = "`malformed` body or JWT, or `invalid_notification` claims; nothing stored.", body = crate::http::api_types::ErrorBody),
        (status = 401, description = "`bad_signature`: not verified with a configured merchant's key; nothing stored.", body = crate::http::api_types::ErrorBody),
        (status = 408, description = "`request_timeout`: the body did not arrive in time.", body = crate::http::api_types::ErrorBody),
        (status = 413, description = "`too_large`: over `server.max_body_bytes`.", body = crate::http::api_types::ErrorBody),
        (status = 503, description = "`store_unavailable`: nothing stored; 2C2P retries.", body = crate::http::api_types::ErrorBody),
    )
)]
pub async fn backend_notification(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let result = accept(&req, payload, &state).await;
    let outcome = match &result {
        Ok(Accepted { duplicate: true }) => "duplicate",
        Ok(_) => "accepted",
        Err(e) => e.outcome,
    };
    state.metrics.notification("backend", outcome);
    match result {
        Ok(Accepted { duplicate }) => Ok(HttpResponse::Ok().json(serde_json::json!({
            "status": if duplicate { "duplicate" } else { "accepted" }
        }))),
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

struct Accepted {
    duplicate: bool,
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
    let (result, key_used) = jwt::verify::<PaymentResult>(
        token,
        merchant.secret_key.expose_secret(),
        merchant.previous_secret_key.as_ref().map(|k| k.expose_secret()),
    )
    .map_err(jwt_error)?;
    if key_used == KeyUsed::Previous {
        tracing::info!(merchant = %merchant.id, "notification verified with the previous secret key");
    }
    let obs = Observation::from_payment_result(
        &result,
        Source::BackendNotification,
        &merchant.id,
        merchant.timezone,
        now_ms(),
    )
    .map_err(|e| ApiError::bad_request("invalid_notification", e.to_string()))?;
    let dedupe_key = dedupe_key(&merchant.id, token);
    let audit = audit_copy(token, &result);
    let (invoice_no, resp_code) = (obs.invoice_no.clone(), obs.resp_code.clone());
    let recorded = state.store.record_observation(obs, Some(audit), Some(dedupe_key), state.timing()).await?;
    if recorded.events > 0 {
        state.outbox_wake.notify_one();
    }
    if let Some(reason) = recorded.anomaly {
        state.metrics.anomalies.with_label_values(&[reason.as_str()]).inc();
        tracing::error!(merchant = %merchant.id, invoice = %invoice_no, resp_code = %resp_code, reason = reason.as_str(), "payment anomaly");
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
    Ok(Accepted { duplicate: recorded.duplicate })
}

/// The token as received, for audit; if it carried a full card number, its claims are stored
/// re-encoded with the number masked (and the signature dropped, as it no longer applies).
fn audit_copy(token: &str, result: &PaymentResult) -> String {
    let Some(pan) = result.account_no.as_deref() else {
        return token.to_string();
    };
    let masked = MaskedPan::new(pan);
    if masked.as_str() == pan {
        return token.to_string();
    }
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = token.split('.');
    let header = parts.next().unwrap_or_default();
    let claims = parts
        .next()
        .and_then(|c| b64.decode(c).ok())
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .map(|mut v| {
            for field in ["accountNo", "cardNo", "pan"] {
                if let Some(slot) = v.get_mut(field) {
                    *slot = serde_json::Value::String(masked.as_str().to_string());
                }
            }
            v
        })
        .unwrap_or_default();
    format!("{header}.{}.redacted", b64.encode(claims.to_string()))
}

/// The same notification (same merchant, same signed claims) always gives the same key.
fn dedupe_key(merchant_id: &str, token: &str) -> String {
    let claims = token.split('.').nth(1).unwrap_or(token);
    let digest = Sha256::digest(format!("{merchant_id}.{claims}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("bn:{hex}")
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
