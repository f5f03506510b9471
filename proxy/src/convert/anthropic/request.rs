//! Anthropic Messages request ⇄ IR.

use serde_json::{json, Map, Value};

use super::{tool_id, DEFAULT_MAX_TOKENS};
use crate::convert::build::{put, put_list};
use crate::convert::error::ConvertError;
use crate::convert::ir::{
    ImageSource, Message, Part, Reasoning, Request, ResponseFormat, Role, Tool, ToolCall, ToolChoice, ToolResult,
};
use crate::convert::json::{
    arguments_object, as_obj, field, opt_array, opt_bool, opt_f64, opt_obj, opt_str, opt_u64, req_str, string_or_list,
    to_text, Obj,
};
use crate::convert::request_util::push_message;

/// Anthropic's smallest accepted thinking budget.
const MIN_THINKING_BUDGET: u64 = 1024;

pub(crate) fn decode(body: &Value) -> Result<Request, ConvertError> {
    let o = as_obj(body, "body")?;
    let mut req = Request {
        model: opt_str(o, "model", "")?.unwrap_or_default().to_string(),
        max_tokens: opt_u64(o, "max_tokens", "")?,
        temperature: opt_f64(o, "temperature", "")?,
        top_p: opt_f64(o, "top_p", "")?,
        top_k: opt_u64(o, "top_k", "")?,
        stop: string_or_list(o, "stop_sequences", "")?,
        stream: opt_bool(o, "stream", "")?.unwrap_or(false),
        system: decode_system(field(o, "system"))?,
        reasoning: decode_thinking(opt_obj(o, "thinking", "")?)?,
        user: match opt_obj(o, "metadata", "")? {
            Some(m) => opt_str(m, "user_id", "metadata")?.map(str::to_string),
            None => None,
        },
        ..Request::default()
    };
    (req.tool_choice, req.parallel_tool_calls) = decode_tool_choice(opt_obj(o, "tool_choice", "")?)?;
    if field(o, "messages").is_none() {
        return Err(ConvertError::Missing("messages".into()));
    }
    for (i, m) in opt_array(o, "messages", "")?.iter().enumerate() {
        let path = format!("messages[{i}]");
        let m = as_obj(m, &path)?;
        let role = match req_str(m, "role", &path)? {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => return Err(ConvertError::invalid_value(format!("{path}.role"), format!("{other:?}"))),
        };
        let parts = decode_content(field(m, "content"), &format!("{path}.content"))?;
        push_message(&mut req.messages, role, parts);
    }
    for (i, t) in opt_array(o, "tools", "")?.iter().enumerate() {
        req.tools.push(decode_tool(t, &format!("tools[{i}]"))?);
    }
    Ok(req)
}

fn decode_system(v: Option<&Value>) -> Result<Vec<String>, ConvertError> {
    match v {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let path = format!("system[{i}]");
                Ok(req_str(as_obj(b, &path)?, "text", &path)?.to_string())
            })
            .collect(),
        Some(_) => Err(ConvertError::wrong_type("system", "a string or an array of text blocks")),
    }
}

fn decode_thinking(t: Option<&Obj>) -> Result<Option<Reasoning>, ConvertError> {
    let Some(t) = t else { return Ok(None) };
    match req_str(t, "type", "thinking")? {
        "enabled" | "adaptive" => {
            Ok(Some(Reasoning { effort: None, budget_tokens: opt_u64(t, "budget_tokens", "thinking")? }))
        }
        _ => Ok(None),
    }
}

fn decode_tool_choice(c: Option<&Obj>) -> Result<(Option<ToolChoice>, Option<bool>), ConvertError> {
    let Some(c) = c else { return Ok((None, None)) };
    let path = "tool_choice";
    let choice = match req_str(c, "type", path)? {
        "auto" => ToolChoice::Auto,
        "any" => ToolChoice::Required,
        "none" => ToolChoice::None,
        "tool" => ToolChoice::Tool(req_str(c, "name", path)?.to_string()),
        other => return Err(ConvertError::invalid_value("tool_choice.type", format!("{other:?}"))),
    };
    let parallel = opt_bool(c, "disable_parallel_tool_use", path)?.map(|d| !d);
    Ok((Some(choice), parallel))
}

fn decode_content(v: Option<&Value>, path: &str) -> Result<Vec<Part>, ConvertError> {
    match v {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(if s.is_empty() { Vec::new() } else { vec![Part::Text(s.clone())] }),
        Some(Value::Array(blocks)) => {
            let mut parts = Vec::new();
            for (i, b) in blocks.iter().enumerate() {
                if let Some(p) = decode_block(b, &format!("{path}[{i}]"))? {
                    parts.push(p);
                }
            }
            Ok(parts)
        }
        Some(_) => Err(ConvertError::wrong_type(path, "a string or an array of content blocks")),
    }
}

fn decode_block(v: &Value, path: &str) -> Result<Option<Part>, ConvertError> {
    let b = as_obj(v, path)?;
    let part = match req_str(b, "type", path)? {
        "text" => Part::Text(req_str(b, "text", path)?.to_string()),
        "image" => Part::Image(decode_image(b, path)?),
        "thinking" => Part::Thinking {
            text: req_str(b, "thinking", path)?.to_string(),
            signature: opt_str(b, "signature", path)?.map(str::to_string),
        },
        // Encrypted thinking only Anthropic itself can read.
        "redacted_thinking" => return Ok(None),
        "tool_use" => Part::ToolCall(ToolCall {
            id: req_str(b, "id", path)?.to_string(),
            name: req_str(b, "name", path)?.to_string(),
            arguments: to_text(field(b, "input").unwrap_or(&json!({}))),
        }),
        "tool_result" => Part::ToolResult(ToolResult {
            call_id: req_str(b, "tool_use_id", path)?.to_string(),
            name: None,
            content: decode_content(field(b, "content"), &format!("{path}.content"))?,
            is_error: opt_bool(b, "is_error", path)?.unwrap_or(false),
        }),
        other => return Err(ConvertError::invalid_value(format!("{path}.type"), format!("{other:?}"))),
    };
    Ok(Some(part))
}

fn decode_image(b: &Obj, path: &str) -> Result<ImageSource, ConvertError> {
    let spath = format!("{path}.source");
    let s = opt_obj(b, "source", path)?.ok_or_else(|| ConvertError::Missing(spath.clone()))?;
    match req_str(s, "type", &spath)? {
        "base64" => Ok(ImageSource::Base64 {
            media_type: req_str(s, "media_type", &spath)?.to_string(),
            data: req_str(s, "data", &spath)?.to_string(),
        }),
        "url" => Ok(ImageSource::Url(req_str(s, "url", &spath)?.to_string())),
        other => Err(ConvertError::invalid_value(format!("{spath}.type"), format!("{other:?}"))),
    }
}

fn decode_tool(v: &Value, path: &str) -> Result<Tool, ConvertError> {
    let t = as_obj(v, path)?;
    // Server tools (`web_search_…`, `bash_…`) run inside Anthropic and have no equivalent.
    if let Some(kind) = opt_str(t, "type", path)?.filter(|k| *k != "custom") {
        return Err(ConvertError::invalid_value(format!("{path}.type"), format!("{kind:?}")));
    }
    Ok(Tool {
        name: req_str(t, "name", path)?.to_string(),
        description: opt_str(t, "description", path)?.map(str::to_string),
        parameters: field(t, "input_schema").cloned().unwrap_or_else(|| json!({"type": "object", "properties": {}})),
    })
}

pub(crate) fn encode(req: &Request) -> Value {
    let mut out = Map::new();
    out.insert("model".into(), req.model.clone().into());
    let thinking = thinking_budget(req);
    let max_tokens = req.max_tokens.unwrap_or_else(|| thinking.map_or(DEFAULT_MAX_TOKENS, |b| b + DEFAULT_MAX_TOKENS));
    out.insert("max_tokens".into(), max_tokens.into());
    let system = system_text(req);
    if !system.is_empty() {
        out.insert("system".into(), system.into());
    }
    out.insert("messages".into(), Value::Array(encode_messages(&req.messages)));
    put_list(&mut out, "tools", req.tools.iter().map(encode_tool).collect());
    put(&mut out, "tool_choice", encode_tool_choice(req));
    if !req.stop.is_empty() {
        out.insert("stop_sequences".into(), json!(req.stop));
    }
    match thinking.filter(|b| *b < max_tokens) {
        // Thinking requires default sampling: Anthropic rejects temperature/top_k with it.
        Some(budget) => {
            out.insert("thinking".into(), json!({"type": "enabled", "budget_tokens": budget}));
        }
        None => {
            put(&mut out, "temperature", req.temperature);
            put(&mut out, "top_p", req.top_p);
            put(&mut out, "top_k", req.top_k);
        }
    }
    if let Some(u) = &req.user {
        out.insert("metadata".into(), json!({"user_id": u}));
    }
    if req.stream {
        out.insert("stream".into(), true.into());
    }
    Value::Object(out)
}

/// Requested budget, raised to Anthropic's minimum and kept below an explicit `max_tokens`.
fn thinking_budget(req: &Request) -> Option<u64> {
    let r = req.reasoning?;
    let budget = r.budget().max(MIN_THINKING_BUDGET);
    match req.max_tokens {
        Some(max) if budget >= max => (max > MIN_THINKING_BUDGET).then(|| max - 1),
        _ => Some(budget),
    }
}

/// Anthropic has no JSON mode; the requested format becomes a system instruction.
fn system_text(req: &Request) -> String {
    let mut parts = req.system.clone();
    match &req.response_format {
        Some(ResponseFormat::JsonObject) => parts.push("Respond only with a valid JSON object.".into()),
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            parts.push(format!("Respond only with a JSON object that matches this JSON schema: {}", to_text(schema)))
        }
        None => {}
    }
    parts.join("\n\n")
}

fn encode_messages(messages: &[Message]) -> Vec<Value> {
    messages
        .iter()
        .filter_map(|m| {
            let mut blocks: Vec<Value> = m.parts.iter().filter_map(encode_block).collect();
            // Tool results must open the user turn that answers the tool calls.
            blocks.sort_by_key(|b| b.get("type").and_then(Value::as_str) != Some("tool_result"));
            let role = match m.role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            (!blocks.is_empty()).then(|| json!({"role": role, "content": blocks}))
        })
        .collect()
}

fn encode_block(p: &Part) -> Option<Value> {
    match p {
        Part::Text(t) if t.is_empty() => None,
        Part::Text(t) => Some(json!({"type": "text", "text": t})),
        Part::Image(src) => Some(encode_image(src)),
        // Anthropic only accepts thinking it signed itself.
        Part::Thinking { text, signature: Some(sig) } => {
            Some(json!({"type": "thinking", "thinking": text, "signature": sig}))
        }
        Part::Thinking { .. } => None,
        Part::ToolCall(tc) => Some(json!({
            "type": "tool_use",
            "id": tool_id(&tc.id),
            "name": tc.name,
            "input": arguments_object(&tc.arguments),
        })),
        Part::ToolResult(r) => Some(encode_tool_result(r)),
    }
}

fn encode_image(src: &ImageSource) -> Value {
    let source = match src {
        ImageSource::Base64 { media_type, data } => {
            json!({"type": "base64", "media_type": media_type, "data": data})
        }
        ImageSource::Url(url) => json!({"type": "url", "url": url}),
    };
    json!({"type": "image", "source": source})
}

fn encode_tool_result(r: &ToolResult) -> Value {
    let has_image = r.content.iter().any(|p| matches!(p, Part::Image(_)));
    let content = if has_image {
        Value::Array(r.content.iter().filter_map(encode_block).collect())
    } else {
        Value::String(r.text())
    };
    let mut b = json!({"type": "tool_result", "tool_use_id": tool_id(&r.call_id), "content": content});
    if r.is_error {
        b["is_error"] = true.into();
    }
    b
}

fn encode_tool(t: &Tool) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), t.name.clone().into());
    put(&mut m, "description", t.description.clone());
    m.insert("input_schema".into(), t.parameters.clone());
    Value::Object(m)
}

fn encode_tool_choice(req: &Request) -> Option<Value> {
    let mut c = match req.tool_choice.as_ref() {
        Some(ToolChoice::Auto) => json!({"type": "auto"}),
        Some(ToolChoice::None) => json!({"type": "none"}),
        Some(ToolChoice::Required) => json!({"type": "any"}),
        Some(ToolChoice::Tool(name)) => json!({"type": "tool", "name": name}),
        None if req.parallel_tool_calls == Some(false) && !req.tools.is_empty() => json!({"type": "auto"}),
        None => return None,
    };
    if req.parallel_tool_calls == Some(false) && req.tool_choice != Some(ToolChoice::None) {
        c["disable_parallel_tool_use"] = true.into();
    }
    Some(c)
}
