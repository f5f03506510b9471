//! OpenAI Chat unary response ⇄ IR.

use serde_json::{json, Map, Value};

use super::{finish_from_str, finish_to_str, usage_from_json, usage_to_json};
use crate::convert::build::{put, put_list};
use crate::convert::error::ConvertError;
use crate::convert::ir::{Part, Response, ToolCall};
use crate::convert::json::{arr, as_obj, obj, text, Obj};
use crate::convert::media;

pub(crate) fn decode(body: &Value) -> Result<Response, ConvertError> {
    let o = as_obj(body, "response")?;
    let choices = o.get("choices").and_then(Value::as_array).ok_or_else(|| ConvertError::Missing("choices".into()))?;
    let mut resp = Response {
        id: text(o, "id").unwrap_or_default().to_string(),
        model: text(o, "model").unwrap_or_default().to_string(),
        created: o.get("created").and_then(Value::as_i64),
        usage: obj(o, "usage").map(usage_from_json).unwrap_or_default(),
        ..Response::default()
    };
    // Only the first choice is converted: no other protocol has `n > 1`.
    if let Some(choice) = choices.first().and_then(Value::as_object) {
        resp.finish = text(choice, "finish_reason").map(finish_from_str);
        if let Some(msg) = obj(choice, "message") {
            resp.parts = decode_message(msg);
        }
    }
    Ok(resp)
}

fn decode_message(msg: &Obj) -> Vec<Part> {
    let mut parts = Vec::new();
    let reasoning = text(msg, "reasoning_content").or_else(|| text(msg, "reasoning"));
    if let Some(t) = reasoning.filter(|t| !t.is_empty()) {
        parts.push(Part::Thinking { text: t.to_string(), signature: None });
    }
    match msg.get("content") {
        Some(Value::String(s)) if !s.is_empty() => parts.push(Part::Text(s.clone())),
        Some(Value::Array(items)) => parts.extend(
            items
                .iter()
                .filter_map(Value::as_object)
                .filter_map(|p| text(p, "text"))
                .map(|t| Part::Text(t.to_string())),
        ),
        _ => {}
    }
    if let Some(r) = text(msg, "refusal").filter(|r| !r.is_empty()) {
        parts.push(Part::Text(r.to_string()));
    }
    for img in arr(msg, "images").iter().filter_map(Value::as_object) {
        if let Some(url) = obj(img, "image_url").and_then(|u| text(u, "url")).filter(|u| !u.is_empty()) {
            parts.push(Part::Image(media::from_url(url)));
        }
    }
    for tc in arr(msg, "tool_calls").iter().filter_map(Value::as_object) {
        let f = obj(tc, "function");
        parts.push(Part::ToolCall(ToolCall {
            id: text(tc, "id").unwrap_or_default().to_string(),
            name: f.and_then(|f| text(f, "name")).unwrap_or_default().to_string(),
            arguments: f.and_then(|f| text(f, "arguments")).unwrap_or("{}").to_string(),
        }));
    }
    parts
}

pub(crate) fn encode(resp: &Response, created: i64) -> Value {
    let mut text_out = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    let mut images = Vec::new();
    for p in &resp.parts {
        match p {
            Part::Text(t) => text_out.push_str(t),
            // Not in OpenAI's schema: the field OpenRouter and others give image-model answers in.
            Part::Image(src) => images.push(json!({"type": "image_url", "image_url": {"url": media::to_url(src)}})),
            Part::Thinking { text, .. } => reasoning.push_str(text),
            Part::ToolCall(tc) => calls.push(json!({
                "id": tc.id,
                "type": "function",
                "function": {"name": tc.name, "arguments": tc.arguments},
            })),
            _ => {}
        }
    }
    let mut msg = Map::new();
    msg.insert("role".into(), "assistant".into());
    msg.insert("content".into(), if text_out.is_empty() && !calls.is_empty() { Value::Null } else { text_out.into() });
    // Not in OpenAI's schema, but the de-facto field (DeepSeek, vLLM) clients read thinking from.
    put(&mut msg, "reasoning_content", (!reasoning.is_empty()).then_some(reasoning));
    put_list(&mut msg, "tool_calls", calls);
    put_list(&mut msg, "images", images);
    json!({
        "id": resp.id,
        "object": "chat.completion",
        "created": resp.created.unwrap_or(created),
        "model": resp.model,
        "choices": [{
            "index": 0,
            "message": msg,
            "logprobs": null,
            "finish_reason": resp.finish.as_ref().map(finish_to_str).unwrap_or("stop"),
        }],
        "usage": usage_to_json(&resp.usage),
    })
}
