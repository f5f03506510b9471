//! Anthropic Messages unary response ⇄ IR.

use serde_json::{json, Value};

use super::{finish_from_str, finish_to_json, tool_id, usage_from_json, usage_to_json};
use crate::convert::error::ConvertError;
use crate::convert::ids;
use crate::convert::ir::{Part, Response, ToolCall};
use crate::convert::json::{arguments_object, arr, as_obj, obj, text, to_text};

pub(crate) fn decode(body: &Value) -> Result<Response, ConvertError> {
    let o = as_obj(body, "response")?;
    if o.get("content").and_then(Value::as_array).is_none() {
        return Err(ConvertError::Missing("content".into()));
    }
    let mut parts = Vec::new();
    for b in arr(o, "content").iter().filter_map(Value::as_object) {
        match text(b, "type") {
            Some("text") => parts.push(Part::Text(text(b, "text").unwrap_or_default().to_string())),
            Some("thinking") => parts.push(Part::Thinking {
                text: text(b, "thinking").unwrap_or_default().to_string(),
                signature: text(b, "signature").map(str::to_string),
            }),
            Some("tool_use") => parts.push(Part::ToolCall(ToolCall {
                id: text(b, "id").unwrap_or_default().to_string(),
                name: text(b, "name").unwrap_or_default().to_string(),
                arguments: b.get("input").map_or_else(|| "{}".to_string(), to_text),
            })),
            other => tracing::debug!(block = ?other, "dropping Anthropic content block"),
        }
    }
    Ok(Response {
        id: text(o, "id").unwrap_or_default().to_string(),
        model: text(o, "model").unwrap_or_default().to_string(),
        created: None,
        parts,
        finish: text(o, "stop_reason").map(|r| finish_from_str(r, text(o, "stop_sequence"))),
        usage: obj(o, "usage").map(usage_from_json).unwrap_or_default(),
    })
}

pub(crate) fn encode(resp: &Response) -> Value {
    let content: Vec<Value> = resp
        .parts
        .iter()
        .filter_map(|p| match p {
            Part::Text(t) => Some(json!({"type": "text", "text": t})),
            Part::Thinking { text, signature } => Some(json!({
                "type": "thinking",
                "thinking": text,
                "signature": signature.as_deref().unwrap_or_default(),
            })),
            Part::ToolCall(tc) => Some(json!({
                "type": "tool_use",
                "id": tool_id(&tc.id),
                "name": tc.name,
                "input": arguments_object(&tc.arguments),
            })),
            _ => None,
        })
        .collect();
    let (stop_reason, stop_sequence) = resp.finish.as_ref().map_or(("end_turn", Value::Null), finish_to_json);
    let id = if resp.id.is_empty() { ids::fresh("msg_") } else { resp.id.clone() };
    json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": resp.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage_to_json(&resp.usage),
    })
}
