//! Bearer-token check for `/v1/*`, compared in constant time against every configured token.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::http::error::ApiError;
use crate::http::AppState;

/// Rejects requests without `Authorization: Bearer <configured token>` with 401.
pub async fn require_bearer(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let presented = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let name = match (state, presented) {
        (Some(state), Some(token)) => token_name(&state, token),
        _ => None,
    };
    let Some(name) = name else {
        return Err(ApiError::unauthorized("unauthorized", "a valid bearer token is required").into());
    };
    let changes = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().clone();
    req.extensions_mut().insert(TokenName(name.clone()));
    let res = next.call(req).await?;
    if changes {
        // The audit trail of changes: who (the token's name, never the token) asked for what.
        tracing::info!(token = %name, %method, route = %route, status = res.status().as_u16(), "internal API action");
    }
    Ok(res)
}

/// The configured name of the token that authorised a request (in its extensions).
#[derive(Debug, Clone)]
pub struct TokenName(pub String);

/// The name of the configured token equal to `presented`, if any. Compares SHA-256 digests so
/// neither content nor length leaks through timing, and checks every token.
fn token_name(state: &AppState, presented: &str) -> Option<String> {
    use secrecy::ExposeSecret;
    let presented = Sha256::digest(presented.as_bytes());
    let mut found = None;
    for token in &state.config.internal_tokens {
        let expected = Sha256::digest(token.token.expose_secret().as_bytes());
        if bool::from(expected.ct_eq(&presented)) {
            found = found.or(Some(token.name.clone()));
        }
    }
    found
}

/// The token name of a request that passed [`require_bearer`] (`unknown` otherwise).
pub fn token_of(req: &actix_web::HttpRequest) -> String {
    use actix_web::HttpMessage;
    req.extensions().get::<TokenName>().map(|t| t.0.clone()).unwrap_or_else(|| "unknown".to_string())
}
