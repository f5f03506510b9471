//! Gemini request ⇄ IR. The model is not part of a Gemini body (it is in the URL); decoding
//! reads an optional top-level `model` that the HTTP layer (or a Code Assist envelope) supplies.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use crate::convert::build::{put, put_list};
use crate::convert::error::ConvertError;
use crate::convert::ir::{
    Effort, ImageSource, Message, Part, Reasoning, Request, ResponseFormat, Role, Tool, ToolCall, ToolChoice,
    ToolResult,
};
use crate::convert::json::{
    arguments_object, as_obj, field, opt_array, opt_bool, opt_f64, opt_i64, opt_obj, opt_str, opt_u64, req_str,
    string_or_list, to_text, Obj,
};
use crate::convert::media;
use crate::convert::model::strip_models_prefix;
use crate::convert::request_util::push_message;
use crate::convert::schema;

/// Largest budget every thinking Gemini model accepts (2.5 Flash).
const MAX_THINKING_BUDGET: u64 = 24576;

/// Field lookup accepting the proto-JSON snake_case spelling too.
fn alias<'a>(o: &'a Obj, camel: &str, snake: &str) -> Option<&'a Value> {
    field(o, camel).or_else(|| field(o, snake))
}

fn alias_obj<'a>(o: &'a Obj, camel: &str, snake: &str) -> Result<Option<&'a Obj>, ConvertError> {
    match alias(o, camel, snake) {
        None => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(ConvertError::wrong_type(camel, "an object")),
    }
}

pub(crate) fn decode(body: &Value) -> Result<Request, ConvertError> {
    let outer = as_obj(body, "body")?;
    // Code Assist envelope: `{"model", "project", "request": {...}}`.
    let o = match opt_obj(outer, "request", "")? {
        Some(inner) if !outer.contains_key("contents") => inner,
        _ => outer,
    };
    let mut req = Request {
        model: strip_models_prefix(opt_str(outer, "model", "")?.unwrap_or_default()).to_string(),
        stream: opt_bool(outer, "stream", "")?.unwrap_or(false),
        system: decode_system(alias(o, "systemInstruction", "system_instruction"))?,
        ..Request::default()
    };
    if let Some(g) = alias_obj(o, "generationConfig", "generation_config")? {
        decode_generation_config(g, &mut req)?;
    }
    if let Some(tc) = alias_obj(o, "toolConfig", "tool_config")? {
        req.tool_choice = decode_tool_config(tc)?;
    }
    if field(o, "contents").is_none() {
        return Err(ConvertError::Missing("contents".into()));
    }
    let mut calls = CallIds::default();
    for (i, c) in opt_array(o, "contents", "")?.iter().enumerate() {
        let path = format!("contents[{i}]");
        let c = as_obj(c, &path)?;
        let role = match opt_str(c, "role", &path)? {
            Some("model") => Role::Assistant,
            _ => Role::User,
        };
        let mut parts = Vec::new();
        for (j, p) in opt_array(c, "parts", &path)?.iter().enumerate() {
            parts.extend(decode_part(p, &format!("{path}.parts[{j}]"), &mut calls)?);
        }
        push_message(&mut req.messages, role, parts);
    }
    for (i, t) in opt_array(o, "tools", "")?.iter().enumerate() {
        decode_tool_group(t, &format!("tools[{i}]"), &mut req.tools)?;
    }
    Ok(req)
}

/// Gemini calls may lack ids: responses are paired with the oldest unanswered call of the
/// same name, and both get a generated id.
#[derive(Default)]
struct CallIds {
    next: usize,
    pending: Vec<(String, String)>,
}

impl CallIds {
    fn call(&mut self, name: &str, id: Option<&str>) -> String {
        let id = id.map_or_else(|| format!("call_{}", self.next), str::to_string);
        self.next += 1;
        self.pending.push((id.clone(), name.to_string()));
        id
    }

    fn response(&mut self, name: &str, id: Option<&str>) -> String {
        let pos = match id {
            Some(id) => self.pending.iter().position(|(i, _)| i == id),
            None => self.pending.iter().position(|(_, n)| n == name),
        };
        match (pos, id) {
            (Some(p), _) => self.pending.remove(p).0,
            (None, Some(id)) => id.to_string(),
            (None, None) => {
                self.next += 1;
                format!("call_{}", self.next - 1)
            }
        }
    }
}

fn decode_system(v: Option<&Value>) -> Result<Vec<String>, ConvertError> {
    match v {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Object(o)) => {
            let mut out = Vec::new();
            for (i, p) in opt_array(o, "parts", "systemInstruction")?.iter().enumerate() {
                let path = format!("systemInstruction.parts[{i}]");
                if let Some(t) = opt_str(as_obj(p, &path)?, "text", &path)? {
                    out.push(t.to_string());
                }
            }
            Ok(out)
        }
        Some(_) => Err(ConvertError::wrong_type("systemInstruction", "an object")),
    }
}

fn decode_part(v: &Value, path: &str, calls: &mut CallIds) -> Result<Option<Part>, ConvertError> {
    let p = as_obj(v, path)?;
    if let Some(t) = opt_str(p, "text", path)? {
        if opt_bool(p, "thought", path)? == Some(true) {
            return Ok(Some(Part::Thinking {
                text: t.to_string(),
                signature: opt_str(p, "thoughtSignature", path)?.map(str::to_string),
            }));
        }
        return Ok((!t.is_empty()).then(|| Part::Text(t.to_string())));
    }
    if let Some(d) = alias_obj(p, "inlineData", "inline_data")? {
        let dpath = format!("{path}.inlineData");
        let media_type = match opt_str(d, "mimeType", &dpath)? {
            Some(m) => m,
            None => req_str(d, "mime_type", &dpath)?,
        };
        return Ok(Some(Part::Image(ImageSource::Base64 {
            media_type: media_type.to_string(),
            data: req_str(d, "data", &dpath)?.to_string(),
        })));
    }
    if let Some(f) = alias_obj(p, "fileData", "file_data")? {
        let fpath = format!("{path}.fileData");
        let uri = match opt_str(f, "fileUri", &fpath)? {
            Some(u) => u,
            None => req_str(f, "file_uri", &fpath)?,
        };
        return Ok(Some(Part::Image(ImageSource::Url(uri.to_string()))));
    }
    if let Some(fc) = alias_obj(p, "functionCall", "function_call")? {
        let fpath = format!("{path}.functionCall");
        let name = req_str(fc, "name", &fpath)?;
        return Ok(Some(Part::ToolCall(ToolCall {
            id: calls.call(name, opt_str(fc, "id", &fpath)?),
            name: name.to_string(),
            arguments: to_text(field(fc, "args").unwrap_or(&json!({}))),
        })));
    }
    if let Some(fr) = alias_obj(p, "functionResponse", "function_response")? {
        let fpath = format!("{path}.functionResponse");
        let name = req_str(fr, "name", &fpath)?;
        return Ok(Some(Part::ToolResult(ToolResult {
            call_id: calls.response(name, opt_str(fr, "id", &fpath)?),
            name: Some(name.to_string()),
            content: vec![Part::Text(response_text(field(fr, "response")))],
            is_error: false,
        })));
    }
    // executableCode, codeExecutionResult, videoMetadata…: nothing to map them to.
    tracing::debug!(path, "dropping Gemini part without a convertible field");
    Ok(None)
}

/// `{"content": "…"}` (as we encode it) unwraps to the text; other objects stay JSON text.
fn response_text(v: Option<&Value>) -> String {
    match v {
        None => String::new(),
        Some(Value::Object(m)) if m.len() == 1 => match m.get("content").or_else(|| m.get("result")) {
            Some(Value::String(s)) => s.clone(),
            _ => to_text(&Value::Object(m.clone())),
        },
        Some(other) => to_text(other),
    }
}

fn decode_tool_group(v: &Value, path: &str, tools: &mut Vec<Tool>) -> Result<(), ConvertError> {
    let t = as_obj(v, path)?;
    let decls = match alias(t, "functionDeclarations", "function_declarations") {
        Some(Value::Array(a)) => a,
        Some(_) => return Err(ConvertError::wrong_type(format!("{path}.functionDeclarations"), "an array")),
        // googleSearch, codeExecution, urlContext… run inside Gemini.
        None => {
            let kind = t.keys().next().cloned().unwrap_or_default();
            return Err(ConvertError::invalid_value(path, format!("{kind:?}")));
        }
    };
    for (i, d) in decls.iter().enumerate() {
        let dpath = format!("{path}.functionDeclarations[{i}]");
        let d = as_obj(d, &dpath)?;
        tools.push(Tool {
            name: req_str(d, "name", &dpath)?.to_string(),
            description: opt_str(d, "description", &dpath)?.map(str::to_string),
            parameters: field(d, "parametersJsonSchema")
                .or_else(|| field(d, "parameters"))
                .cloned()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
        });
    }
    Ok(())
}

fn decode_tool_config(tc: &Obj) -> Result<Option<ToolChoice>, ConvertError> {
    let path = "toolConfig.functionCallingConfig";
    let Some(f) = alias_obj(tc, "functionCallingConfig", "function_calling_config")? else {
        return Ok(None);
    };
    let allowed = string_or_list(f, "allowedFunctionNames", path)?;
    let choice = match opt_str(f, "mode", path)?.unwrap_or("AUTO") {
        "ANY" | "VALIDATED" => match allowed.as_slice() {
            [only] => ToolChoice::Tool(only.clone()),
            _ => ToolChoice::Required,
        },
        "NONE" => ToolChoice::None,
        "AUTO" | "MODE_UNSPECIFIED" => ToolChoice::Auto,
        other => return Err(ConvertError::invalid_value(format!("{path}.mode"), format!("{other:?}"))),
    };
    Ok(Some(choice))
}

fn decode_generation_config(g: &Obj, req: &mut Request) -> Result<(), ConvertError> {
    let p = "generationConfig";
    let num = |camel: &str, snake: &str| -> Result<Option<f64>, ConvertError> {
        Ok(opt_f64(g, camel, p)?.or(opt_f64(g, snake, p)?))
    };
    req.temperature = num("temperature", "temperature")?;
    req.top_p = num("topP", "top_p")?;
    req.presence_penalty = num("presencePenalty", "presence_penalty")?;
    req.frequency_penalty = num("frequencyPenalty", "frequency_penalty")?;
    req.top_k = opt_f64(g, "topK", p)?.map(|k| k.max(0.0) as u64);
    req.max_tokens = opt_u64(g, "maxOutputTokens", p)?.or(opt_u64(g, "max_output_tokens", p)?);
    req.seed = opt_i64(g, "seed", p)?;
    req.stop = string_or_list(g, "stopSequences", p)?;
    if opt_str(g, "responseMimeType", p)? == Some("application/json") {
        let schema = field(g, "responseJsonSchema").or_else(|| field(g, "responseSchema"));
        req.response_format = Some(match schema {
            Some(s) => ResponseFormat::JsonSchema { name: "response".into(), schema: s.clone(), strict: None },
            None => ResponseFormat::JsonObject,
        });
    }
    if let Some(t) = alias_obj(g, "thinkingConfig", "thinking_config")? {
        let tp = "generationConfig.thinkingConfig";
        let budget = opt_i64(t, "thinkingBudget", tp)?;
        let level = opt_str(t, "thinkingLevel", tp)?.map(str::to_ascii_lowercase);
        let include = opt_bool(t, "includeThoughts", tp)?.unwrap_or(false);
        req.reasoning = match budget {
            Some(0) => None,
            Some(b) if b > 0 => Some(Reasoning { effort: None, budget_tokens: u64::try_from(b).ok() }),
            _ if include || level.is_some() => {
                Some(Reasoning { effort: level.as_deref().and_then(Effort::parse), budget_tokens: None })
            }
            _ => None,
        };
    }
    Ok(())
}

pub(crate) fn encode(req: &Request) -> Value {
    let mut out = Map::new();
    out.insert("contents".into(), Value::Array(encode_contents(&req.messages)));
    if !req.system.is_empty() {
        out.insert("systemInstruction".into(), json!({"parts": [{"text": req.system.join("\n\n")}]}));
    }
    if !req.tools.is_empty() {
        let decls: Vec<Value> = req.tools.iter().map(encode_tool).collect();
        out.insert("tools".into(), json!([{"functionDeclarations": decls}]));
    }
    put(&mut out, "toolConfig", req.tool_choice.as_ref().map(encode_tool_choice));
    let config = encode_generation_config(req);
    if !config.is_empty() {
        out.insert("generationConfig".into(), Value::Object(config));
    }
    Value::Object(out)
}

fn encode_contents(messages: &[Message]) -> Vec<Value> {
    let mut names: HashMap<&str, &str> = HashMap::new();
    let mut out = Vec::new();
    for m in messages {
        let mut parts = Vec::new();
        let mut trailing = Vec::new();
        for p in &m.parts {
            match p {
                Part::ToolCall(tc) => {
                    names.insert(&tc.id, &tc.name);
                    parts.push(json!({"functionCall": {"name": tc.name, "args": arguments_object(&tc.arguments)}}));
                }
                Part::ToolResult(r) => {
                    let name = r.name.as_deref().or_else(|| names.get(r.call_id.as_str()).copied());
                    parts.push(encode_tool_result(r, name.unwrap_or_default()));
                    // Function responses carry no images; they follow as their own parts.
                    trailing
                        .extend(r.content.iter().filter(|c| matches!(c, Part::Image(_))).filter_map(encode_input_part));
                }
                other => parts.extend(encode_input_part(other)),
            }
        }
        parts.append(&mut trailing);
        if parts.is_empty() {
            continue;
        }
        let role = match m.role {
            Role::User => "user",
            Role::Assistant => "model",
        };
        out.push(json!({"role": role, "parts": parts}));
    }
    out
}

/// Text and images; thinking is not replayed (Gemini keeps its own thought signatures).
fn encode_input_part(p: &Part) -> Option<Value> {
    match p {
        Part::Text(t) if !t.is_empty() => Some(json!({"text": t})),
        Part::Image(ImageSource::Base64 { media_type, data }) => {
            Some(json!({"inlineData": {"mimeType": media_type, "data": data}}))
        }
        Part::Image(ImageSource::Url(url)) => Some(json!({
            "fileData": {"mimeType": media::guess_media_type(url), "fileUri": url}
        })),
        _ => None,
    }
}

fn encode_tool_result(r: &ToolResult, name: &str) -> Value {
    let text = r.text();
    let mut response = match serde_json::from_str::<Value>(&text) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({"content": text}),
    };
    if r.is_error {
        response = json!({"error": response});
    }
    json!({"functionResponse": {"name": name, "response": response}})
}

fn encode_tool(t: &Tool) -> Value {
    let mut d = Map::new();
    d.insert("name".into(), t.name.clone().into());
    put(&mut d, "description", t.description.clone());
    // Gemini rejects an OBJECT schema without properties: a no-argument tool omits it.
    let has_props = t.parameters.get("properties").and_then(Value::as_object).is_some_and(|p| !p.is_empty());
    if has_props {
        d.insert("parameters".into(), schema::for_gemini(&t.parameters));
    }
    Value::Object(d)
}

fn encode_tool_choice(c: &ToolChoice) -> Value {
    let config = match c {
        ToolChoice::Auto => json!({"mode": "AUTO"}),
        ToolChoice::None => json!({"mode": "NONE"}),
        ToolChoice::Required => json!({"mode": "ANY"}),
        ToolChoice::Tool(n) => json!({"mode": "ANY", "allowedFunctionNames": [n]}),
    };
    json!({"functionCallingConfig": config})
}

fn encode_generation_config(req: &Request) -> Map<String, Value> {
    let mut g = Map::new();
    put(&mut g, "maxOutputTokens", req.max_tokens);
    put(&mut g, "temperature", req.temperature);
    put(&mut g, "topP", req.top_p);
    put(&mut g, "topK", req.top_k);
    put(&mut g, "presencePenalty", req.presence_penalty);
    put(&mut g, "frequencyPenalty", req.frequency_penalty);
    put(&mut g, "seed", req.seed);
    put_list(&mut g, "stopSequences", req.stop.iter().map(|s| json!(s)).collect());
    match &req.response_format {
        Some(ResponseFormat::JsonObject) => {
            g.insert("responseMimeType".into(), "application/json".into());
        }
        Some(ResponseFormat::JsonSchema { schema: s, .. }) => {
            g.insert("responseMimeType".into(), "application/json".into());
            g.insert("responseSchema".into(), schema::for_gemini(s));
        }
        None => {}
    }
    if let Some(r) = req.reasoning {
        g.insert(
            "thinkingConfig".into(),
            json!({"includeThoughts": true, "thinkingBudget": r.budget().min(MAX_THINKING_BUDGET)}),
        );
    }
    g
}
