//! Records `pgw_relay_http_request_duration_seconds{route,method,status}` for every request, with
//! the route pattern (never the raw path, so scanners cannot create series).

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, Error};

use crate::http::AppState;

/// Middleware timing each request.
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".to_string());
    let method = req.method().as_str().to_string();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let result = next.call(req).await;
    if let Some(state) = state {
        let status = match &result {
            Ok(res) => res.status().as_u16(),
            Err(e) => e.as_response_error().status_code().as_u16(),
        };
        state
            .metrics
            .http_request_duration
            .with_label_values(&[route.as_str(), method.as_str(), &status.to_string()])
            .observe(started.elapsed().as_secs_f64());
    }
    result
}
