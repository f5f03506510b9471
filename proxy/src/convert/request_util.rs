//! Helpers shared by request decoders.

use serde_json::{json, Value};

use super::error::ConvertError;
use super::ir::{Message, Part, ResponseFormat, Role, ToolChoice};
use super::json::{field, opt_bool, opt_str, Obj};

/// Appends parts as a message, merging into the previous message when it has the same role
/// (consecutive OpenAI `tool` messages must become one Anthropic user turn, and Anthropic and
/// Gemini want alternating roles).
pub(crate) fn push_message(messages: &mut Vec<Message>, role: Role, parts: Vec<Part>) {
    if parts.is_empty() {
        return;
    }
    match messages.last_mut() {
        Some(last) if last.role == role => last.parts.extend(parts),
        _ => messages.push(Message { role, parts }),
    }
}

/// OpenAI `content` (Chat and Responses): a string, an array of parts read by `decode_part`, or
/// null.
pub(crate) fn decode_openai_content(
    v: Option<&Value>,
    path: &str,
    decode_part: fn(&Value, &str) -> Result<Part, ConvertError>,
) -> Result<Vec<Part>, ConvertError> {
    match v {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(if s.is_empty() { Vec::new() } else { vec![Part::Text(s.clone())] }),
        Some(Value::Array(items)) => {
            items.iter().enumerate().map(|(i, p)| decode_part(p, &format!("{path}[{i}]"))).collect()
        }
        Some(_) => Err(ConvertError::wrong_type(path, "a string or an array of content parts")),
    }
}

/// OpenAI `tool_choice` (Chat and Responses): `"auto"`, `"none"`, `"required"`, or an object
/// naming one function, whose name `function_name` reads.
pub(crate) fn decode_openai_tool_choice(
    v: Option<&Value>,
    function_name: fn(&Obj) -> Result<String, ConvertError>,
) -> Result<Option<ToolChoice>, ConvertError> {
    let choice = match v {
        None => return Ok(None),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            other => return Err(ConvertError::invalid_value("tool_choice", format!("{other:?}"))),
        },
        Some(Value::Object(o)) => ToolChoice::Tool(function_name(o)?),
        Some(_) => return Err(ConvertError::wrong_type("tool_choice", "a string or an object")),
    };
    Ok(Some(choice))
}

/// An OpenAI JSON schema response format (`name`, `schema`, `strict`) found at `path`.
pub(crate) fn decode_json_schema_format(o: &Obj, path: &str) -> Result<ResponseFormat, ConvertError> {
    Ok(ResponseFormat::JsonSchema {
        name: opt_str(o, "name", path)?.unwrap_or("response").to_string(),
        schema: field(o, "schema").cloned().unwrap_or_else(|| json!({})),
        strict: opt_bool(o, "strict", path)?,
    })
}
