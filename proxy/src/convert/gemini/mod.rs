//! Gemini `generateContent` / `streamGenerateContent` (also the Code Assist `{"response": …}`
//! envelope used by Gemini CLI and Antigravity backends).

pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod stream_decode;
pub(crate) mod stream_encode;

use serde_json::{json, Map, Value};

use super::build::put;
use super::ir::{FinishReason, ImageSource, Part, ToolCall, Usage};
use super::json::{arguments_object, count, obj, text, to_text, Obj};

pub(crate) fn finish_from_str(s: &str) -> FinishReason {
    match s {
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            FinishReason::ContentFilter
        }
        _ => FinishReason::Stop,
    }
}

/// Gemini has no tool-call finish reason: a turn with function calls ends with `STOP`.
pub(crate) fn finish_to_str(f: &FinishReason) -> &'static str {
    match f {
        FinishReason::Length => "MAX_TOKENS",
        FinishReason::ContentFilter => "SAFETY",
        FinishReason::Stop | FinishReason::StopSequence(_) | FinishReason::ToolCalls => "STOP",
    }
}

/// Gemini's `candidatesTokenCount` excludes thoughts; the IR output total includes them.
pub(crate) fn usage_from_json(u: &Obj) -> Usage {
    let candidates = count(Some(u), "candidatesTokenCount");
    let thoughts = count(Some(u), "thoughtsTokenCount");
    let output = match (candidates, thoughts) {
        (None, None) => None,
        (c, t) => Some(c.unwrap_or(0).saturating_add(t.unwrap_or(0))),
    };
    Usage {
        input_tokens: count(Some(u), "promptTokenCount"),
        output_tokens: output,
        cached_input_tokens: count(Some(u), "cachedContentTokenCount"),
        cache_creation_input_tokens: None,
        reasoning_tokens: thoughts,
    }
}

pub(crate) fn usage_to_json(u: &Usage) -> Value {
    let thoughts = u.reasoning_tokens.unwrap_or(0);
    let mut m = Map::new();
    m.insert("promptTokenCount".into(), u.input().into());
    m.insert("candidatesTokenCount".into(), u.output().saturating_sub(thoughts).into());
    m.insert("totalTokenCount".into(), u.total().into());
    put(&mut m, "cachedContentTokenCount", u.cached_input_tokens);
    put(&mut m, "thoughtsTokenCount", u.reasoning_tokens);
    Value::Object(m)
}

/// Code Assist backends wrap each response as `{"response": {...}}`.
pub(crate) fn unwrap_envelope(o: &Obj) -> &Obj {
    if o.contains_key("candidates") || o.contains_key("error") {
        return o;
    }
    obj(o, "response").unwrap_or(o)
}

/// One output part → IR part; `next_call` numbers calls that carry no id.
pub(crate) fn decode_output_part(p: &Obj, next_call: &mut usize) -> Option<Part> {
    if let Some(fc) = obj(p, "functionCall") {
        let n = *next_call;
        *next_call += 1;
        return Some(Part::ToolCall(ToolCall {
            id: text(fc, "id").map_or_else(|| format!("call_{n}"), str::to_string),
            name: text(fc, "name").unwrap_or_default().to_string(),
            arguments: fc.get("args").map_or_else(|| "{}".to_string(), to_text),
        }));
    }
    if let Some(d) = obj(p, "inlineData").or_else(|| obj(p, "inline_data")) {
        // Image models answer with inline image data (and sometimes text beside it).
        let media_type = text(d, "mimeType").or_else(|| text(d, "mime_type")).unwrap_or("image/png");
        let data = text(d, "data").filter(|d| !d.is_empty())?;
        return Some(Part::Image(ImageSource::Base64 { media_type: media_type.to_string(), data: data.to_string() }));
    }
    let t = text(p, "text")?;
    if p.get("thought").and_then(Value::as_bool) == Some(true) {
        return Some(Part::Thinking {
            text: t.to_string(),
            signature: text(p, "thoughtSignature").map(str::to_string),
        });
    }
    Some(Part::Text(t.to_string()))
}

/// IR output part → Gemini part.
pub(crate) fn encode_output_part(p: &Part) -> Option<Value> {
    match p {
        Part::Text(t) => Some(json!({"text": t})),
        Part::Thinking { text, signature } => {
            let mut v = json!({"text": text, "thought": true});
            if let (Some(s), Some(m)) = (signature, v.as_object_mut()) {
                m.insert("thoughtSignature".into(), s.clone().into());
            }
            Some(v)
        }
        Part::ToolCall(tc) => Some(json!({
            "functionCall": {"name": tc.name, "args": arguments_object(&tc.arguments)}
        })),
        Part::Image(ImageSource::Base64 { media_type, data }) => {
            Some(json!({"inlineData": {"mimeType": media_type, "data": data}}))
        }
        _ => None,
    }
}
