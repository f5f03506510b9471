//! OpenAI Chat request ⇄ IR.

use serde_json::{json, Map, Value};

use crate::convert::build::{put, put_list};
use crate::convert::error::ConvertError;
use crate::convert::ir::{
    join_text, Effort, Message, Part, Reasoning, Request, ResponseFormat, Role, Tool, ToolCall, ToolChoice, ToolResult,
};
use crate::convert::json::{
    as_obj, field, opt_array, opt_bool, opt_f64, opt_i64, opt_obj, opt_str, opt_u64, req_str, string_or_list, Obj,
};
use crate::convert::media;
use crate::convert::request_util::{
    decode_json_schema_format, decode_openai_content, decode_openai_tool_choice, push_message,
};

pub(crate) fn decode(body: &Value) -> Result<Request, ConvertError> {
    let o = as_obj(body, "body")?;
    let mut req = Request {
        model: opt_str(o, "model", "")?.unwrap_or_default().to_string(),
        max_tokens: match opt_u64(o, "max_completion_tokens", "")? {
            Some(n) => Some(n),
            None => opt_u64(o, "max_tokens", "")?,
        },
        temperature: opt_f64(o, "temperature", "")?,
        top_p: opt_f64(o, "top_p", "")?,
        top_k: opt_u64(o, "top_k", "")?,
        stop: string_or_list(o, "stop", "")?,
        presence_penalty: opt_f64(o, "presence_penalty", "")?,
        frequency_penalty: opt_f64(o, "frequency_penalty", "")?,
        seed: opt_i64(o, "seed", "")?,
        stream: opt_bool(o, "stream", "")?.unwrap_or(false),
        user: opt_str(o, "user", "")?.map(str::to_string),
        parallel_tool_calls: opt_bool(o, "parallel_tool_calls", "")?,
        reasoning: opt_str(o, "reasoning_effort", "")?
            .and_then(Effort::parse)
            .map(|e| Reasoning { effort: Some(e), budget_tokens: None }),
        tool_choice: decode_openai_tool_choice(field(o, "tool_choice"), tool_choice_function)?,
        response_format: decode_response_format(opt_obj(o, "response_format", "")?)?,
        ..Request::default()
    };
    let messages = opt_array(o, "messages", "")?;
    if field(o, "messages").is_none() {
        return Err(ConvertError::Missing("messages".into()));
    }
    for (i, m) in messages.iter().enumerate() {
        decode_message(m, &format!("messages[{i}]"), &mut req)?;
    }
    for (i, t) in opt_array(o, "tools", "")?.iter().enumerate() {
        req.tools.push(decode_tool(t, &format!("tools[{i}]"))?);
    }
    Ok(req)
}

fn decode_message(v: &Value, path: &str, req: &mut Request) -> Result<(), ConvertError> {
    let m = as_obj(v, path)?;
    let role = req_str(m, "role", path)?;
    let content_path = format!("{path}.content");
    match role {
        "system" | "developer" => {
            let text = join_text(&decode_openai_content(field(m, "content"), &content_path, decode_part)?);
            req.system.push(text);
        }
        "user" => {
            let parts = decode_openai_content(field(m, "content"), &content_path, decode_part)?;
            push_message(&mut req.messages, Role::User, parts);
        }
        "assistant" => {
            let mut parts = Vec::new();
            for key in ["reasoning_content", "reasoning"] {
                if let Some(t) = opt_str(m, key, path)?.filter(|t| !t.is_empty()) {
                    parts.push(Part::Thinking { text: t.to_string(), signature: None });
                    break;
                }
            }
            parts.extend(decode_openai_content(field(m, "content"), &content_path, decode_part)?);
            for (j, tc) in opt_array(m, "tool_calls", path)?.iter().enumerate() {
                parts.push(Part::ToolCall(decode_tool_call(tc, &format!("{path}.tool_calls[{j}]"))?));
            }
            push_message(&mut req.messages, Role::Assistant, parts);
        }
        "tool" => {
            let result = ToolResult {
                call_id: req_str(m, "tool_call_id", path)?.to_string(),
                name: opt_str(m, "name", path)?.map(str::to_string),
                content: decode_openai_content(field(m, "content"), &content_path, decode_part)?,
                is_error: false,
            };
            push_message(&mut req.messages, Role::User, vec![Part::ToolResult(result)]);
        }
        other => return Err(ConvertError::invalid_value(format!("{path}.role"), format!("{other:?}"))),
    }
    Ok(())
}

fn decode_part(v: &Value, path: &str) -> Result<Part, ConvertError> {
    let p = as_obj(v, path)?;
    match req_str(p, "type", path)? {
        "text" => Ok(Part::Text(req_str(p, "text", path)?.to_string())),
        "refusal" => Ok(Part::Text(req_str(p, "refusal", path)?.to_string())),
        "image_url" => {
            let url = match field(p, "image_url") {
                Some(Value::String(s)) => s.as_str(),
                Some(Value::Object(o)) => req_str(o, "url", &format!("{path}.image_url"))?,
                Some(_) => return Err(ConvertError::wrong_type(format!("{path}.image_url"), "an object")),
                None => return Err(ConvertError::Missing(format!("{path}.image_url"))),
            };
            Ok(Part::Image(media::from_url(url)))
        }
        other => Err(ConvertError::invalid_value(format!("{path}.type"), format!("{other:?}"))),
    }
}

fn decode_tool_call(v: &Value, path: &str) -> Result<ToolCall, ConvertError> {
    let tc = as_obj(v, path)?;
    let fpath = format!("{path}.function");
    let f = opt_obj(tc, "function", path)?.ok_or_else(|| ConvertError::Missing(fpath.clone()))?;
    Ok(ToolCall {
        id: req_str(tc, "id", path)?.to_string(),
        name: req_str(f, "name", &fpath)?.to_string(),
        arguments: opt_str(f, "arguments", &fpath)?.unwrap_or("{}").to_string(),
    })
}

fn decode_tool(v: &Value, path: &str) -> Result<Tool, ConvertError> {
    let t = as_obj(v, path)?;
    let kind = opt_str(t, "type", path)?.unwrap_or("function");
    if kind != "function" {
        return Err(ConvertError::invalid_value(format!("{path}.type"), format!("{kind:?}")));
    }
    let fpath = format!("{path}.function");
    let f = opt_obj(t, "function", path)?.ok_or_else(|| ConvertError::Missing(fpath.clone()))?;
    Ok(Tool {
        name: req_str(f, "name", &fpath)?.to_string(),
        description: opt_str(f, "description", &fpath)?.map(str::to_string),
        parameters: field(f, "parameters").cloned().unwrap_or_else(|| json!({"type": "object", "properties": {}})),
    })
}

/// `{"type": "function", "function": {"name": …}}`.
fn tool_choice_function(o: &Obj) -> Result<String, ConvertError> {
    let f =
        opt_obj(o, "function", "tool_choice")?.ok_or_else(|| ConvertError::Missing("tool_choice.function".into()))?;
    Ok(req_str(f, "name", "tool_choice.function")?.to_string())
}

fn decode_response_format(o: Option<&Obj>) -> Result<Option<ResponseFormat>, ConvertError> {
    let Some(o) = o else { return Ok(None) };
    match req_str(o, "type", "response_format")? {
        "text" => Ok(None),
        "json_object" => Ok(Some(ResponseFormat::JsonObject)),
        "json_schema" => {
            let path = "response_format.json_schema";
            let js = opt_obj(o, "json_schema", "response_format")?.ok_or_else(|| ConvertError::Missing(path.into()))?;
            Ok(Some(decode_json_schema_format(js, path)?))
        }
        other => Err(ConvertError::invalid_value("response_format.type", format!("{other:?}"))),
    }
}

pub(crate) fn encode(req: &Request) -> Value {
    let mut out = Map::new();
    out.insert("model".into(), req.model.clone().into());
    out.insert("messages".into(), Value::Array(encode_messages(req)));
    // Reasoning models reject `max_tokens`; older compatible servers only know it.
    let max_key = if req.reasoning.is_some() { "max_completion_tokens" } else { "max_tokens" };
    put(&mut out, max_key, req.max_tokens);
    put(&mut out, "temperature", req.temperature);
    put(&mut out, "top_p", req.top_p);
    if !req.stop.is_empty() {
        out.insert("stop".into(), json!(req.stop));
    }
    put(&mut out, "presence_penalty", req.presence_penalty);
    put(&mut out, "frequency_penalty", req.frequency_penalty);
    put(&mut out, "seed", req.seed);
    put(&mut out, "user", req.user.clone());
    put(&mut out, "reasoning_effort", req.reasoning.map(|r| r.effort().as_str()));
    put_list(&mut out, "tools", req.tools.iter().map(encode_tool).collect());
    put(&mut out, "tool_choice", req.tool_choice.as_ref().map(encode_tool_choice));
    put(&mut out, "parallel_tool_calls", req.parallel_tool_calls);
    put(&mut out, "response_format", req.response_format.as_ref().map(encode_response_format));
    if req.stream {
        out.insert("stream".into(), true.into());
        // Without this OpenAI sends no usage in streams.
        out.insert("stream_options".into(), json!({"include_usage": true}));
    }
    Value::Object(out)
}

fn encode_messages(req: &Request) -> Vec<Value> {
    let mut out = Vec::new();
    if !req.system.is_empty() {
        out.push(json!({"role": "system", "content": req.system.join("\n\n")}));
    }
    for m in &req.messages {
        match m.role {
            Role::User => encode_user(m, &mut out),
            Role::Assistant => out.push(encode_assistant(m)),
        }
    }
    out
}

/// Tool results become `role: tool` messages, which must directly follow the assistant turn;
/// remaining parts (and images from tool results, which `tool` messages cannot carry) follow as
/// one user message.
fn encode_user(m: &Message, out: &mut Vec<Value>) {
    let mut rest = Vec::new();
    for p in &m.parts {
        match p {
            Part::ToolResult(r) => {
                out.push(json!({"role": "tool", "tool_call_id": r.call_id, "content": r.text()}));
                rest.extend(r.content.iter().filter(|c| matches!(c, Part::Image(_))).cloned());
            }
            other => rest.push(other.clone()),
        }
    }
    if let Some(content) = encode_user_content(&rest) {
        out.push(json!({"role": "user", "content": content}));
    }
}

fn encode_user_content(parts: &[Part]) -> Option<Value> {
    if let [Part::Text(t)] = parts {
        return Some(Value::String(t.clone()));
    }
    let items: Vec<Value> = parts
        .iter()
        .filter_map(|p| match p {
            Part::Text(t) => Some(json!({"type": "text", "text": t})),
            Part::Image(src) => Some(json!({"type": "image_url", "image_url": {"url": media::to_url(src)}})),
            _ => None,
        })
        .collect();
    (!items.is_empty()).then_some(Value::Array(items))
}

fn encode_assistant(m: &Message) -> Value {
    let text = join_text(&m.parts);
    let calls: Vec<Value> = m
        .parts
        .iter()
        .filter_map(|p| match p {
            Part::ToolCall(tc) => Some(json!({
                "id": tc.id,
                "type": "function",
                "function": {"name": tc.name, "arguments": tc.arguments},
            })),
            _ => None,
        })
        .collect();
    let mut msg = Map::new();
    msg.insert("role".into(), "assistant".into());
    msg.insert("content".into(), if text.is_empty() && !calls.is_empty() { Value::Null } else { text.into() });
    put_list(&mut msg, "tool_calls", calls);
    Value::Object(msg)
}

fn encode_tool(t: &Tool) -> Value {
    let mut f = Map::new();
    f.insert("name".into(), t.name.clone().into());
    put(&mut f, "description", t.description.clone());
    f.insert("parameters".into(), t.parameters.clone());
    json!({"type": "function", "function": f})
}

fn encode_tool_choice(c: &ToolChoice) -> Value {
    match c {
        ToolChoice::Auto => "auto".into(),
        ToolChoice::None => "none".into(),
        ToolChoice::Required => "required".into(),
        ToolChoice::Tool(name) => json!({"type": "function", "function": {"name": name}}),
    }
}

fn encode_response_format(f: &ResponseFormat) -> Value {
    match f {
        ResponseFormat::JsonObject => json!({"type": "json_object"}),
        ResponseFormat::JsonSchema { name, schema, strict } => {
            let mut js = Map::new();
            js.insert("name".into(), name.clone().into());
            js.insert("schema".into(), schema.clone());
            put(&mut js, "strict", *strict);
            json!({"type": "json_schema", "json_schema": js})
        }
    }
}
