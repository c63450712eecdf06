//! Bearer-token check for `/v1/*`, compared in constant time against every configured token.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, Error};
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
    let allowed = match (state, presented) {
        (Some(state), Some(token)) => token_matches(&state, token),
        _ => false,
    };
    if !allowed {
        return Err(ApiError::unauthorized("unauthorized", "a valid bearer token is required").into());
    }
    next.call(req).await
}

/// Compares SHA-256 digests so neither content nor length leaks through timing; checks all tokens.
fn token_matches(state: &AppState, presented: &str) -> bool {
    use secrecy::ExposeSecret;
    let presented = Sha256::digest(presented.as_bytes());
    let mut any = subtle::Choice::from(0u8);
    for token in &state.config.internal_tokens {
        let expected = Sha256::digest(token.expose_secret().as_bytes());
        any |= expected.ct_eq(&presented);
    }
    bool::from(any)
}
