//! Error bodies in each client protocol's shape, and conversion of upstream errors into them.
//!
//! - OpenAI Chat / Responses: `{"error":{"message","type","param","code"}}`
//! - Anthropic: `{"type":"error","error":{"type","message"}}`
//! - Gemini: `{"error":{"code","message","status"}}`

use serde_json::{json, Value};

use super::error::ConvertError;
use super::json::{obj, text};
use super::protocol::Protocol;

/// The HTTP status and body to send a client of `client` for an error.
pub fn error_body(client: Protocol, status: u16, message: &str) -> (u16, Value) {
    let status = client_status(client, status);
    let body = match client {
        Protocol::OpenAiChat | Protocol::OpenAiResponses => json!({
            "error": {"message": message, "type": openai_type(status), "param": null, "code": null}
        }),
        Protocol::Anthropic => json!({
            "type": "error",
            "error": {"type": anthropic_type(status), "message": message}
        }),
        Protocol::Gemini => json!({
            "error": {"code": status, "message": message, "status": gemini_status(status)}
        }),
    };
    (status, body)
}

/// A conversion failure is the client's fault: 400 in the client's shape.
pub fn conversion_error_body(client: Protocol, err: &ConvertError) -> (u16, Value) {
    error_body(client, 400, &err.to_string())
}

/// Re-shapes an upstream error response (any protocol's shape, or plain text) for the client,
/// keeping the upstream status and message.
pub fn convert_error(client: Protocol, status: u16, upstream_body: &[u8]) -> (u16, Value) {
    let message = upstream_message(upstream_body).unwrap_or_else(|| format!("upstream returned HTTP {status}"));
    error_body(client, status, &message)
}

/// The human message inside an upstream error body.
pub fn upstream_message(body: &[u8]) -> Option<String> {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    if let Some(o) = parsed.as_ref().and_then(Value::as_object) {
        let nested = obj(o, "error").and_then(|e| text(e, "message"));
        if let Some(m) = nested.or_else(|| text(o, "message")) {
            return Some(m.to_string());
        }
        if let Some(e) = text(o, "error") {
            return Some(e.to_string());
        }
    }
    // Gemini's non-SSE stream answers errors as a one-element array.
    if let Some(first) = parsed.as_ref().and_then(Value::as_array).and_then(|a| a.first()) {
        return upstream_message(first.to_string().as_bytes());
    }
    let text = String::from_utf8_lossy(body).trim().to_string();
    (!text.is_empty()).then(|| truncate(text, 1000))
}

/// At most `max` bytes, cut on a character boundary.
fn truncate(mut s: String, max: usize) -> String {
    s.truncate(s.floor_char_boundary(max));
    s
}

/// Anthropic's 529 "overloaded" is not a status other clients know.
fn client_status(client: Protocol, status: u16) -> u16 {
    match status {
        529 if client != Protocol::Anthropic => 503,
        400..=599 => status,
        _ => 500,
    }
}

fn openai_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        500..=599 => "server_error",
        _ => "invalid_request_error",
    }
}

fn anthropic_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        529 => "overloaded_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

fn gemini_status(status: u16) -> &'static str {
    match status {
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        500..=599 => "INTERNAL",
        _ => "INVALID_ARGUMENT",
    }
}

/// HTTP status implied by an error type or status string of any protocol.
pub(crate) fn status_from_kind(kind: &str) -> u16 {
    match kind {
        "invalid_request_error" | "INVALID_ARGUMENT" | "FAILED_PRECONDITION" => 400,
        "authentication_error" | "UNAUTHENTICATED" => 401,
        "permission_error" | "PERMISSION_DENIED" => 403,
        "not_found_error" | "NOT_FOUND" => 404,
        "request_too_large" => 413,
        "rate_limit_error" | "RESOURCE_EXHAUSTED" | "rate_limit_exceeded" | "insufficient_quota" => 429,
        "overloaded_error" => 529,
        "UNAVAILABLE" => 503,
        "DEADLINE_EXCEEDED" => 504,
        _ => 500,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_per_protocol() {
        let (s, b) = error_body(Protocol::OpenAiChat, 429, "slow down");
        assert_eq!(s, 429);
        assert_eq!(
            b,
            json!({"error": {"message": "slow down", "type": "rate_limit_error", "param": null, "code": null}})
        );
        let (_, b) = error_body(Protocol::Anthropic, 401, "bad key");
        assert_eq!(b, json!({"type": "error", "error": {"type": "authentication_error", "message": "bad key"}}));
        let (_, b) = error_body(Protocol::Gemini, 403, "no");
        assert_eq!(b, json!({"error": {"code": 403, "message": "no", "status": "PERMISSION_DENIED"}}));
    }

    #[test]
    fn overloaded_maps_to_503_outside_anthropic() {
        assert_eq!(error_body(Protocol::Anthropic, 529, "x").0, 529);
        assert_eq!(error_body(Protocol::OpenAiChat, 529, "x").0, 503);
        assert_eq!(error_body(Protocol::Gemini, 200, "x").0, 500);
    }

    #[test]
    fn upstream_messages_are_extracted_from_every_shape() {
        let anthropic = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        let gemini = br#"[{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED"}}]"#;
        assert_eq!(upstream_message(anthropic).as_deref(), Some("Overloaded"));
        assert_eq!(upstream_message(gemini).as_deref(), Some("Quota exceeded"));
        assert_eq!(upstream_message(b"Bad Gateway\n").as_deref(), Some("Bad Gateway"));
        assert_eq!(upstream_message(b""), None);
        let (status, body) = convert_error(Protocol::Gemini, 529, anthropic);
        assert_eq!(status, 503);
        assert_eq!(body["error"]["status"], "UNAVAILABLE");
        assert_eq!(body["error"]["message"], "Overloaded");
    }
}
