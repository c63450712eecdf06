//! The access log's span for each request: method and route from the same closed sets as the
//! metrics, and the path without its query string (a browser return's query carries customer data,
//! and a caller may put anything there).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::{Error, HttpMessage};
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RequestId, RootSpanBuilder};

use crate::http::request_metrics::{method_label, route_label};

/// Longest path logged; longer ones are cut (the path is caller text).
const MAX_LOGGED_PATH: usize = 200;

/// Builds the root span of each request without the query string.
pub struct AccessLog;

impl RootSpanBuilder for AccessLog {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let request_id = request.extensions().get::<RequestId>().copied();
        let path = request.path();
        let path = match path.char_indices().nth(MAX_LOGGED_PATH) {
            Some((cut, _)) => &path[..cut],
            None => path,
        };
        tracing::info_span!(
            "HTTP request",
            http.method = method_label(request.method()),
            http.route = %route_label(request),
            http.target = %path,
            http.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            request_id = %request_id.map(|id| id.to_string()).unwrap_or_default(),
            exception.message = tracing::field::Empty,
            exception.details = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(span: Span, outcome: &Result<ServiceResponse<B>, Error>) {
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}
