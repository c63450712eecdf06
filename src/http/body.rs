//! Reading a request body with a hard size limit (JSON 413) and the request deadline (JSON 408).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};
use futures_util::StreamExt;

use crate::http::error::ApiError;

/// Reads the whole body, answering 413 as soon as it exceeds `limit` bytes.
pub async fn read_limited(req: &HttpRequest, mut payload: web::Payload, limit: usize) -> Result<web::Bytes, ApiError> {
    let too_large =
        || ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", format!("the body exceeds {limit} bytes"));
    if let Some(len) = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if len > limit {
            return Err(too_large());
        }
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| match e {
            actix_web::error::PayloadError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the body was not received within the request deadline",
            ),
            e => ApiError::bad_request("malformed", format!("the body could not be read: {e}")),
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
