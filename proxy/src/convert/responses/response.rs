//! OpenAI Responses unary response ⇄ IR.

use serde_json::{json, Value};

use super::{finish_from_response, finish_to_status, item_id, usage_from_json, ResponseObject};
use crate::convert::error::ConvertError;
use crate::convert::ids;
use crate::convert::ir::{FinishReason, ImageSource, Part, Response, ToolCall};
use crate::convert::json::{arr, as_obj, obj, text, Obj};

pub(crate) fn decode(body: &Value) -> Result<Response, ConvertError> {
    let o = as_obj(body, "response")?;
    if o.get("output").and_then(Value::as_array).is_none() {
        return Err(ConvertError::Missing("output".into()));
    }
    let mut parts = Vec::new();
    for item in arr(o, "output").iter().filter_map(Value::as_object) {
        decode_item(item, &mut parts);
    }
    let mut resp = Response {
        id: text(o, "id").unwrap_or_default().to_string(),
        model: text(o, "model").unwrap_or_default().to_string(),
        created: o.get("created_at").and_then(Value::as_i64),
        parts,
        finish: finish_from_response(o),
        usage: obj(o, "usage").map(usage_from_json).unwrap_or_default(),
    };
    if resp.finish == Some(FinishReason::Stop) && resp.has_tool_calls() {
        resp.finish = Some(FinishReason::ToolCalls);
    }
    Ok(resp)
}

pub(crate) fn decode_item(item: &Obj, parts: &mut Vec<Part>) {
    match text(item, "type") {
        Some("message") => {
            for c in arr(item, "content").iter().filter_map(Value::as_object) {
                if let Some(t) = text(c, "text").or_else(|| text(c, "refusal")) {
                    parts.push(Part::Text(t.to_string()));
                }
            }
        }
        Some("reasoning") => {
            let summary = arr(item, "summary");
            let texts = if summary.is_empty() { arr(item, "content") } else { summary };
            let joined: Vec<&str> = texts.iter().filter_map(Value::as_object).filter_map(|s| text(s, "text")).collect();
            if !joined.is_empty() {
                parts.push(Part::Thinking { text: joined.join("\n\n"), signature: None });
            }
        }
        Some("function_call") => parts.push(Part::ToolCall(ToolCall {
            id: text(item, "call_id").unwrap_or_default().to_string(),
            name: text(item, "name").unwrap_or_default().to_string(),
            arguments: text(item, "arguments").unwrap_or("{}").to_string(),
        })),
        Some("image_generation_call") => {
            if let Some(data) = text(item, "result").filter(|d| !d.is_empty()) {
                let format = text(item, "output_format").unwrap_or("png");
                let media_type = format!("image/{format}");
                parts.push(Part::Image(ImageSource::Base64 { media_type, data: data.to_string() }));
            }
        }
        other => tracing::debug!(item = ?other, "dropping Responses output item"),
    }
}

pub(crate) fn encode(resp: &Response, created: i64) -> Value {
    let id = if resp.id.is_empty() { ids::fresh("resp_") } else { resp.id.clone() };
    let mut output: Vec<Value> = Vec::new();
    for p in &resp.parts {
        let n = output.len();
        match (p, output.last_mut()) {
            // Adjacent text parts share one message item.
            (Part::Text(t), Some(last)) if last.get("type") == Some(&json!("message")) => {
                if let Some(content) = last.get_mut("content").and_then(Value::as_array_mut) {
                    content.push(output_text(t));
                }
            }
            (Part::Text(t), _) => output.push(message_item(&item_id("msg", &id, n), vec![output_text(t)])),
            (Part::Thinking { text, .. }, _) => output.push(reasoning_item(&item_id("rs", &id, n), text)),
            (Part::ToolCall(tc), _) => output.push(json!({
                "type": "function_call",
                "id": item_id("fc", &id, n),
                "call_id": tc.id,
                "name": tc.name,
                "arguments": tc.arguments,
                "status": "completed",
            })),
            (Part::Image(ImageSource::Base64 { media_type, data }), _) => output.push(json!({
                "type": "image_generation_call",
                "id": item_id("ig", &id, n),
                "status": "completed",
                "output_format": media_type.strip_prefix("image/").unwrap_or("png"),
                "result": data,
            })),
            _ => {}
        }
    }
    let (status, incomplete_details) = finish_to_status(resp.finish.as_ref());
    ResponseObject {
        id: &id,
        model: &resp.model,
        created_at: resp.created.unwrap_or(created),
        status,
        incomplete_details,
        output,
        usage: Some(&resp.usage),
    }
    .to_json()
}

pub(crate) fn output_text(t: &str) -> Value {
    json!({"type": "output_text", "text": t, "annotations": []})
}

pub(crate) fn message_item(id: &str, content: Vec<Value>) -> Value {
    json!({"type": "message", "id": id, "status": "completed", "role": "assistant", "content": content})
}

pub(crate) fn reasoning_item(id: &str, text: &str) -> Value {
    json!({"type": "reasoning", "id": id, "summary": [{"type": "summary_text", "text": text}]})
}
