//! OpenAI Responses request ⇄ IR.

use serde_json::{json, Map, Value};

use crate::convert::build::{put, put_list};
use crate::convert::error::ConvertError;
use crate::convert::ir::{
    join_text, Effort, Message, Part, Reasoning, Request, ResponseFormat, Role, Tool, ToolCall, ToolChoice, ToolResult,
};
use crate::convert::json::{as_obj, field, opt_array, opt_bool, opt_f64, opt_obj, opt_str, opt_u64, req_str, Obj};
use crate::convert::media;
use crate::convert::request_util::{
    decode_json_schema_format, decode_openai_content, decode_openai_tool_choice, push_message,
};

pub(crate) fn decode(body: &Value) -> Result<Request, ConvertError> {
    let o = as_obj(body, "body")?;
    // Server-side conversation state exists only at the Responses upstream.
    if field(o, "previous_response_id").is_some() {
        return Err(ConvertError::Unsupported("previous_response_id".into()));
    }
    let mut req = Request {
        model: opt_str(o, "model", "")?.unwrap_or_default().to_string(),
        max_tokens: opt_u64(o, "max_output_tokens", "")?,
        temperature: opt_f64(o, "temperature", "")?,
        top_p: opt_f64(o, "top_p", "")?,
        stream: opt_bool(o, "stream", "")?.unwrap_or(false),
        user: opt_str(o, "user", "")?.map(str::to_string),
        parallel_tool_calls: opt_bool(o, "parallel_tool_calls", "")?,
        tool_choice: decode_openai_tool_choice(field(o, "tool_choice"), tool_choice_function)?,
        ..Request::default()
    };
    if let Some(i) = opt_str(o, "instructions", "")? {
        req.system.push(i.to_string());
    }
    if let Some(r) = opt_obj(o, "reasoning", "")? {
        req.reasoning = opt_str(r, "effort", "reasoning")?
            .and_then(Effort::parse)
            .map(|e| Reasoning { effort: Some(e), budget_tokens: None });
    }
    if let Some(t) = opt_obj(o, "text", "")? {
        if let Some(f) = opt_obj(t, "format", "text")? {
            req.response_format = decode_format(f)?;
        }
    }
    match field(o, "input") {
        None => return Err(ConvertError::Missing("input".into())),
        Some(Value::String(s)) => push_message(&mut req.messages, Role::User, vec![Part::Text(s.clone())]),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                decode_item(item, &format!("input[{i}]"), &mut req)?;
            }
        }
        Some(_) => return Err(ConvertError::wrong_type("input", "a string or an array of items")),
    }
    for (i, t) in opt_array(o, "tools", "")?.iter().enumerate() {
        req.tools.push(decode_tool(t, &format!("tools[{i}]"))?);
    }
    Ok(req)
}

fn decode_item(v: &Value, path: &str, req: &mut Request) -> Result<(), ConvertError> {
    let it = as_obj(v, path)?;
    match opt_str(it, "type", path)?.unwrap_or("message") {
        "message" => decode_message(it, path, req),
        "function_call" => {
            let call = ToolCall {
                id: req_str(it, "call_id", path)?.to_string(),
                name: req_str(it, "name", path)?.to_string(),
                arguments: opt_str(it, "arguments", path)?.unwrap_or("{}").to_string(),
            };
            push_message(&mut req.messages, Role::Assistant, vec![Part::ToolCall(call)]);
            Ok(())
        }
        "function_call_output" => {
            let content = match field(it, "output") {
                Some(Value::String(s)) => vec![Part::Text(s.clone())],
                other => decode_openai_content(other, &format!("{path}.output"), decode_part)?,
            };
            let result =
                ToolResult { call_id: req_str(it, "call_id", path)?.to_string(), name: None, content, is_error: false };
            push_message(&mut req.messages, Role::User, vec![Part::ToolResult(result)]);
            Ok(())
        }
        "reasoning" => {
            let summary: Vec<String> = opt_array(it, "summary", path)?
                .iter()
                .filter_map(|s| s.get("text").and_then(Value::as_str).map(str::to_string))
                .collect();
            if !summary.is_empty() {
                let part = Part::Thinking { text: summary.join("\n\n"), signature: None };
                push_message(&mut req.messages, Role::Assistant, vec![part]);
            }
            Ok(())
        }
        other => Err(ConvertError::invalid_value(format!("{path}.type"), format!("{other:?}"))),
    }
}

fn decode_message(it: &Obj, path: &str, req: &mut Request) -> Result<(), ConvertError> {
    let parts = decode_openai_content(field(it, "content"), &format!("{path}.content"), decode_part)?;
    match req_str(it, "role", path)? {
        "system" | "developer" => req.system.push(join_text(&parts)),
        "user" => push_message(&mut req.messages, Role::User, parts),
        "assistant" => push_message(&mut req.messages, Role::Assistant, parts),
        other => return Err(ConvertError::invalid_value(format!("{path}.role"), format!("{other:?}"))),
    }
    Ok(())
}

fn decode_part(v: &Value, path: &str) -> Result<Part, ConvertError> {
    let p = as_obj(v, path)?;
    match req_str(p, "type", path)? {
        "input_text" | "output_text" | "text" => Ok(Part::Text(req_str(p, "text", path)?.to_string())),
        "refusal" => Ok(Part::Text(req_str(p, "refusal", path)?.to_string())),
        "input_image" => {
            let url = opt_str(p, "image_url", path)?
                .ok_or_else(|| ConvertError::Unsupported(format!("{path} without image_url (file_id)")))?;
            Ok(Part::Image(media::from_url(url)))
        }
        other => Err(ConvertError::invalid_value(format!("{path}.type"), format!("{other:?}"))),
    }
}

fn decode_tool(v: &Value, path: &str) -> Result<Tool, ConvertError> {
    let t = as_obj(v, path)?;
    match req_str(t, "type", path)? {
        "function" => Ok(Tool {
            name: req_str(t, "name", path)?.to_string(),
            description: opt_str(t, "description", path)?.map(str::to_string),
            parameters: field(t, "parameters").cloned().unwrap_or_else(|| json!({"type": "object", "properties": {}})),
        }),
        // web_search, file_search, computer_use… are hosted tools.
        other => Err(ConvertError::invalid_value(format!("{path}.type"), format!("{other:?}"))),
    }
}

/// `{"type": "function", "name": …}`; hosted tools cannot be forced elsewhere.
fn tool_choice_function(o: &Obj) -> Result<String, ConvertError> {
    match req_str(o, "type", "tool_choice")? {
        "function" => Ok(req_str(o, "name", "tool_choice")?.to_string()),
        other => Err(ConvertError::invalid_value("tool_choice.type", format!("{other:?}"))),
    }
}

fn decode_format(f: &Obj) -> Result<Option<ResponseFormat>, ConvertError> {
    let path = "text.format";
    match req_str(f, "type", path)? {
        "text" => Ok(None),
        "json_object" => Ok(Some(ResponseFormat::JsonObject)),
        "json_schema" => Ok(Some(decode_json_schema_format(f, path)?)),
        other => Err(ConvertError::invalid_value("text.format.type", format!("{other:?}"))),
    }
}

pub(crate) fn encode(req: &Request) -> Value {
    let mut out = Map::new();
    out.insert("model".into(), req.model.clone().into());
    if !req.system.is_empty() {
        out.insert("instructions".into(), req.system.join("\n\n").into());
    }
    out.insert("input".into(), Value::Array(encode_input(&req.messages)));
    put(&mut out, "max_output_tokens", req.max_tokens);
    put(&mut out, "temperature", req.temperature);
    put(&mut out, "top_p", req.top_p);
    put(&mut out, "user", req.user.clone());
    put_list(&mut out, "tools", req.tools.iter().map(encode_tool).collect());
    put(&mut out, "tool_choice", req.tool_choice.as_ref().map(encode_tool_choice));
    put(&mut out, "parallel_tool_calls", req.parallel_tool_calls);
    put(&mut out, "reasoning", req.reasoning.map(|r| json!({"effort": r.effort().as_str()})));
    put(&mut out, "text", req.response_format.as_ref().map(|f| json!({"format": encode_format(f)})));
    if !req.stop.is_empty() {
        tracing::debug!("Responses API has no stop sequences; dropping them");
    }
    // The client cannot refer back to a stored response through another protocol.
    out.insert("store".into(), false.into());
    if req.stream {
        out.insert("stream".into(), true.into());
    }
    Value::Object(out)
}

fn encode_input(messages: &[Message]) -> Vec<Value> {
    let mut out = Vec::new();
    for m in messages {
        match m.role {
            Role::User => encode_user(m, &mut out),
            Role::Assistant => encode_assistant(m, &mut out),
        }
    }
    out
}

fn encode_user(m: &Message, out: &mut Vec<Value>) {
    let mut content = Vec::new();
    for p in &m.parts {
        match p {
            Part::ToolResult(r) => {
                out.push(json!({"type": "function_call_output", "call_id": r.call_id, "output": r.text()}));
                content.extend(r.content.iter().filter_map(encode_input_part).filter(is_image));
            }
            other => content.extend(encode_input_part(other)),
        }
    }
    if !content.is_empty() {
        out.push(json!({"type": "message", "role": "user", "content": content}));
    }
}

fn is_image(v: &Value) -> bool {
    v.get("type").and_then(Value::as_str) == Some("input_image")
}

fn encode_input_part(p: &Part) -> Option<Value> {
    match p {
        Part::Text(t) => Some(json!({"type": "input_text", "text": t})),
        Part::Image(src) => Some(json!({"type": "input_image", "image_url": media::to_url(src)})),
        _ => None,
    }
}

/// Assistant text becomes message items and tool calls `function_call` items, in order;
/// thinking is dropped (Responses only accepts its own encrypted reasoning items).
fn encode_assistant(m: &Message, out: &mut Vec<Value>) {
    let mut text = String::new();
    let flush = |text: &mut String, out: &mut Vec<Value>| {
        if !text.is_empty() {
            out.push(json!({
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": std::mem::take(text)}],
            }));
        }
    };
    for p in &m.parts {
        match p {
            Part::Text(t) => text.push_str(t),
            Part::ToolCall(tc) => {
                flush(&mut text, out);
                out.push(json!({
                    "type": "function_call",
                    "call_id": tc.id,
                    "name": tc.name,
                    "arguments": tc.arguments,
                }));
            }
            _ => {}
        }
    }
    flush(&mut text, out);
}

fn encode_tool(t: &Tool) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), "function".into());
    m.insert("name".into(), t.name.clone().into());
    put(&mut m, "description", t.description.clone());
    m.insert("parameters".into(), t.parameters.clone());
    // Responses defaults to strict schemas, which most client schemas do not satisfy.
    m.insert("strict".into(), false.into());
    Value::Object(m)
}

fn encode_tool_choice(c: &ToolChoice) -> Value {
    match c {
        ToolChoice::Auto => "auto".into(),
        ToolChoice::None => "none".into(),
        ToolChoice::Required => "required".into(),
        ToolChoice::Tool(name) => json!({"type": "function", "name": name}),
    }
}

fn encode_format(f: &ResponseFormat) -> Value {
    match f {
        ResponseFormat::JsonObject => json!({"type": "json_object"}),
        ResponseFormat::JsonSchema { name, schema, strict } => {
            let mut m = Map::new();
            m.insert("type".into(), "json_schema".into());
            m.insert("name".into(), name.clone().into());
            m.insert("schema".into(), schema.clone());
            put(&mut m, "strict", *strict);
            Value::Object(m)
        }
    }
}
