//! Anthropic Messages (`/v1/messages`).

pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod stream_decode;
pub(crate) mod stream_encode;

use serde_json::{json, Value};

use super::ir::{FinishReason, Usage};
use super::json::{count, Obj};

/// Anthropic's `max_tokens` is mandatory; used when the client did not set a limit.
pub(crate) const DEFAULT_MAX_TOKENS: u64 = 8192;

pub(crate) fn finish_from_str(reason: &str, stop_sequence: Option<&str>) -> FinishReason {
    match reason {
        "max_tokens" | "model_context_window_exceeded" => FinishReason::Length,
        "tool_use" => FinishReason::ToolCalls,
        "stop_sequence" => FinishReason::StopSequence(stop_sequence.map(str::to_string)),
        "refusal" => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    }
}

/// `(stop_reason, stop_sequence)`.
pub(crate) fn finish_to_json(f: &FinishReason) -> (&'static str, Value) {
    match f {
        FinishReason::Stop => ("end_turn", Value::Null),
        FinishReason::StopSequence(s) => ("stop_sequence", json!(s)),
        FinishReason::Length => ("max_tokens", Value::Null),
        FinishReason::ToolCalls => ("tool_use", Value::Null),
        FinishReason::ContentFilter => ("refusal", Value::Null),
    }
}

/// Anthropic's `input_tokens` excludes cache reads and writes; the IR total includes them.
pub(crate) fn usage_from_json(u: &Obj) -> Usage {
    let cached = count(Some(u), "cache_read_input_tokens");
    let created = count(Some(u), "cache_creation_input_tokens");
    Usage {
        input_tokens: count(Some(u), "input_tokens")
            .map(|n| n.saturating_add(cached.unwrap_or(0)).saturating_add(created.unwrap_or(0))),
        output_tokens: count(Some(u), "output_tokens"),
        cached_input_tokens: cached,
        cache_creation_input_tokens: created,
        reasoning_tokens: None,
    }
}

pub(crate) fn usage_to_json(u: &Usage) -> Value {
    let cached = u.cached_input_tokens.unwrap_or(0);
    let created = u.cache_creation_input_tokens.unwrap_or(0);
    json!({
        "input_tokens": u.input().saturating_sub(cached).saturating_sub(created),
        "cache_creation_input_tokens": created,
        "cache_read_input_tokens": cached,
        "output_tokens": u.output(),
    })
}

/// Anthropic requires tool-use ids to match `^[a-zA-Z0-9_-]+$`.
pub(crate) fn tool_id(id: &str) -> String {
    let s: String =
        id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect();
    if s.is_empty() {
        "toolu_".to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_totals_include_cache() {
        let u = usage_from_json(
            json!({"input_tokens": 10, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 5, "output_tokens": 3})
                .as_object()
                .unwrap(),
        );
        assert_eq!(u.input_tokens, Some(115));
        assert_eq!(u.cached_input_tokens, Some(100));
        assert_eq!(usage_to_json(&u)["input_tokens"], 10);
    }

    #[test]
    fn tool_ids_are_sanitised() {
        assert_eq!(tool_id("call:1/a"), "call_1_a");
        assert_eq!(tool_id(""), "toolu_");
    }
}
