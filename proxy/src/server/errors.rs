//! Errors answered by the gateway itself, always in the client protocol's own shape.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::convert::{error_body, Protocol};

/// An error response before or instead of any upstream answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), retry_after: None }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, message)
    }
    pub fn unauthorized() -> Self {
        Self::new(401, "Invalid or missing API key")
    }

    /// The response in `protocol`'s error shape.
    pub fn into_response_for(self, protocol: Protocol) -> Response {
        json_error(protocol, self.status, &self.message, self.retry_after)
    }
}

/// `status` + `message` in `protocol`'s error shape.
pub fn json_error(protocol: Protocol, status: u16, message: &str, retry_after: Option<u64>) -> Response {
    let (status, body) = error_body(protocol, status, message);
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (code, axum::Json(body)).into_response();
    if let Some(secs) = retry_after {
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            resp.headers_mut().insert("retry-after", v);
        }
    }
    resp
}
