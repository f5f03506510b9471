//! Gemini unary response ⇄ IR.

use serde_json::{json, Value};

use super::{
    decode_output_part, encode_output_part, finish_from_str, finish_to_str, unwrap_envelope, usage_from_json,
    usage_to_json,
};
use crate::convert::error::ConvertError;
use crate::convert::ids;
use crate::convert::ir::{FinishReason, Response};
use crate::convert::json::{arr, as_obj, obj, text};

pub(crate) fn decode(body: &Value) -> Result<Response, ConvertError> {
    let o = unwrap_envelope(as_obj(body, "response")?);
    if !o.contains_key("candidates") && !o.contains_key("promptFeedback") {
        return Err(ConvertError::Missing("candidates".into()));
    }
    let mut resp = Response {
        id: text(o, "responseId").unwrap_or_default().to_string(),
        model: text(o, "modelVersion").unwrap_or_default().to_string(),
        usage: obj(o, "usageMetadata").map(usage_from_json).unwrap_or_default(),
        ..Response::default()
    };
    let candidate = arr(o, "candidates").first().and_then(Value::as_object);
    let Some(c) = candidate else {
        // No candidate: the prompt itself was blocked.
        let blocked = obj(o, "promptFeedback").is_some_and(|f| f.contains_key("blockReason"));
        resp.finish = Some(if blocked { FinishReason::ContentFilter } else { FinishReason::Stop });
        return Ok(resp);
    };
    let mut next_call = 0;
    let parts = obj(c, "content").map(|content| arr(content, "parts")).unwrap_or(&[]);
    resp.parts =
        parts.iter().filter_map(Value::as_object).filter_map(|p| decode_output_part(p, &mut next_call)).collect();
    resp.finish = text(c, "finishReason").map(finish_from_str);
    Ok(resp)
}

pub(crate) fn encode(resp: &Response) -> Value {
    let parts: Vec<Value> = resp.parts.iter().filter_map(encode_output_part).collect();
    let finish = resp.finish.as_ref().map_or("STOP", finish_to_str);
    let id = if resp.id.is_empty() { ids::fresh("resp-") } else { resp.id.clone() };
    json!({
        "candidates": [{
            "content": {"role": "model", "parts": parts},
            "finishReason": finish,
            "index": 0,
        }],
        "usageMetadata": usage_to_json(&resp.usage),
        "modelVersion": resp.model,
        "responseId": id,
    })
}
