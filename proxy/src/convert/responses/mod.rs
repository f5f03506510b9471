//! OpenAI Responses (`/v1/responses`).

pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod stream_decode;
pub(crate) mod stream_encode;

use serde_json::{json, Value};

use super::ir::{FinishReason, Usage};
use super::json::{count, obj, text, Obj};

pub(crate) fn usage_to_json(u: &Usage) -> Value {
    json!({
        "input_tokens": u.input(),
        "input_tokens_details": {"cached_tokens": u.cached_input_tokens.unwrap_or(0)},
        "output_tokens": u.output(),
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens.unwrap_or(0)},
        "total_tokens": u.total(),
    })
}

pub(crate) fn usage_from_json(u: &Obj) -> Usage {
    Usage {
        input_tokens: count(Some(u), "input_tokens"),
        output_tokens: count(Some(u), "output_tokens"),
        cached_input_tokens: count(obj(u, "input_tokens_details"), "cached_tokens"),
        cache_creation_input_tokens: None,
        reasoning_tokens: count(obj(u, "output_tokens_details"), "reasoning_tokens"),
    }
}

/// Finish reason from a response object's `status` and `incomplete_details`.
pub(crate) fn finish_from_response(r: &Obj) -> Option<FinishReason> {
    match text(r, "status")? {
        "incomplete" => {
            let reason = obj(r, "incomplete_details").and_then(|d| text(d, "reason"));
            Some(match reason {
                Some("content_filter") => FinishReason::ContentFilter,
                _ => FinishReason::Length,
            })
        }
        _ => Some(FinishReason::Stop),
    }
}

/// `(status, incomplete_details)` for a finish reason.
pub(crate) fn finish_to_status(f: Option<&FinishReason>) -> (&'static str, Value) {
    match f {
        Some(FinishReason::Length) => ("incomplete", json!({"reason": "max_output_tokens"})),
        Some(FinishReason::ContentFilter) => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    }
}

/// A Responses `response` object.
pub(crate) struct ResponseObject<'a> {
    pub id: &'a str,
    pub model: &'a str,
    pub created_at: i64,
    pub status: &'a str,
    pub incomplete_details: Value,
    pub output: Vec<Value>,
    pub usage: Option<&'a Usage>,
}

impl ResponseObject<'_> {
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": self.status,
            "error": null,
            "incomplete_details": self.incomplete_details,
            "model": self.model,
            "output": self.output,
            "parallel_tool_calls": true,
            "tool_choice": "auto",
            "tools": [],
            "usage": self.usage.map(usage_to_json),
        })
    }
}

/// Item ids derived from the response id, so that a response's ids are stable and distinct.
pub(crate) fn item_id(prefix: &str, response_id: &str, n: usize) -> String {
    let base: String =
        response_id.rsplit('_').next().unwrap_or_default().chars().filter(char::is_ascii_alphanumeric).collect();
    format!("{prefix}_{base}_{n}")
}
