//! OpenAI Chat Completions (`/v1/chat/completions`).

pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod stream_decode;
pub(crate) mod stream_encode;

use serde_json::{json, Value};

use super::ir::{FinishReason, Usage};
use super::json::{count, obj, Obj};

pub(crate) fn finish_to_str(f: &FinishReason) -> &'static str {
    match f {
        FinishReason::Stop | FinishReason::StopSequence(_) => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::ContentFilter => "content_filter",
    }
}

pub(crate) fn finish_from_str(s: &str) -> FinishReason {
    match s {
        "length" => FinishReason::Length,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    }
}

pub(crate) fn usage_to_json(u: &Usage) -> Value {
    let mut v = json!({
        "prompt_tokens": u.input(),
        "completion_tokens": u.output(),
        "total_tokens": u.total(),
    });
    if let Some(m) = v.as_object_mut() {
        if let Some(c) = u.cached_input_tokens {
            m.insert("prompt_tokens_details".into(), json!({ "cached_tokens": c }));
        }
        if let Some(r) = u.reasoning_tokens {
            m.insert("completion_tokens_details".into(), json!({ "reasoning_tokens": r }));
        }
    }
    v
}

pub(crate) fn usage_from_json(u: &Obj) -> Usage {
    Usage {
        input_tokens: count(Some(u), "prompt_tokens"),
        output_tokens: count(Some(u), "completion_tokens"),
        cached_input_tokens: count(obj(u, "prompt_tokens_details"), "cached_tokens"),
        cache_creation_input_tokens: None,
        reasoning_tokens: count(obj(u, "completion_tokens_details"), "reasoning_tokens"),
    }
}
