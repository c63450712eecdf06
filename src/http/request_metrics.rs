//! Records `pgw_relay_http_request_duration_seconds{route,method,status}` for every request. Every
//! label value comes from a closed set: the route pattern or `unmatched` (never the raw path), a
//! standard method or `other`, and the status the service itself answered, so no caller can create
//! series.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, Error};

use crate::http::AppState;

/// The method as a label: one of the standard methods, else `other`.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// The route as a label: the matched pattern (from the service's own route table), else
/// `unmatched`.
pub fn route_label(req: &ServiceRequest) -> String {
    req.match_pattern().unwrap_or_else(|| "unmatched".to_string())
}

/// Middleware timing each request.
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let route = route_label(&req);
    let method = method_label(req.method());
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
            .with_label_values(&[route.as_str(), method, &status.to_string()])
            .observe(started.elapsed().as_secs_f64());
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_share_one_label() {
        let made_up = Method::from_bytes(b"MXXXXXXXXXXXXXXXXXXXX").unwrap();
        assert_eq!(method_label(&made_up), "other");
        assert_eq!(method_label(&Method::from_bytes(b"get").unwrap()), "other");
        assert_eq!(method_label(&Method::POST), "POST");
    }
}
