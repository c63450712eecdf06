//! The JSON error every caller-caused failure answers: `{"error": "<code>", "message": "<text>"}`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

/// An error answered to the caller. `message` is for humans and never carries secrets.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// 2C2P's own `respCode`/`respDesc` when the gateway refused something.
    pub gateway: Option<(String, String)>,
    /// What metrics and logs call this failure; usually `code`, but finer where the answer must
    /// not tell the caller more (an unknown merchant answers like a bad signature).
    pub outcome: &'static str,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), gateway: None, outcome: code }
    }

    /// Counts and logs this failure as `outcome` while answering with `code`.
    pub fn counted_as(mut self, outcome: &'static str) -> Self {
        self.outcome = outcome;
        self
    }

    /// Adds 2C2P's response code and description to the answer.
    pub fn with_gateway_code(mut self, code: &str, desc: &str) -> Self {
        self.gateway = Some((code.to_string(), desc.to_string()));
        self
    }

    /// 400.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 503: the store could not be reached; the caller should retry.
    pub fn store_unavailable() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", "storage is unavailable, retry later")
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut body = serde_json::json!({ "error": self.code, "message": self.message });
        if let Some((code, desc)) = &self.gateway {
            body["respCode"] = serde_json::json!(code);
            body["respDesc"] = serde_json::json!(desc);
        }
        HttpResponse::build(self.status).json(body)
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        tracing::error!(error = %e, "store error");
        ApiError::store_unavailable()
    }
}
