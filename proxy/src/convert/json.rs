//! Checked access to `serde_json::Value`s: wrong shapes become [`ConvertError`]s naming the
//! field path, never panics.

use serde_json::{Map, Value};

use super::error::ConvertError;

pub(crate) type Obj = Map<String, Value>;

pub(crate) fn as_obj<'a>(v: &'a Value, path: &str) -> Result<&'a Obj, ConvertError> {
    v.as_object().ok_or_else(|| ConvertError::wrong_type(path, "an object"))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Present and non-null.
pub(crate) fn field<'a>(o: &'a Obj, key: &str) -> Option<&'a Value> {
    o.get(key).filter(|v| !v.is_null())
}

pub(crate) fn opt_str<'a>(o: &'a Obj, key: &str, path: &str) -> Result<Option<&'a str>, ConvertError> {
    match field(o, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ConvertError::wrong_type(join(path, key), "a string")),
    }
}

pub(crate) fn req_str<'a>(o: &'a Obj, key: &str, path: &str) -> Result<&'a str, ConvertError> {
    opt_str(o, key, path)?.ok_or_else(|| ConvertError::Missing(join(path, key)))
}

pub(crate) fn opt_obj<'a>(o: &'a Obj, key: &str, path: &str) -> Result<Option<&'a Obj>, ConvertError> {
    match field(o, key) {
        None => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(ConvertError::wrong_type(join(path, key), "an object")),
    }
}

/// A missing or null array reads as empty.
pub(crate) fn opt_array<'a>(o: &'a Obj, key: &str, path: &str) -> Result<&'a [Value], ConvertError> {
    match field(o, key) {
        None => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(ConvertError::wrong_type(join(path, key), "an array")),
    }
}

pub(crate) fn opt_bool(o: &Obj, key: &str, path: &str) -> Result<Option<bool>, ConvertError> {
    match field(o, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ConvertError::wrong_type(join(path, key), "a boolean")),
    }
}

pub(crate) fn opt_f64(o: &Obj, key: &str, path: &str) -> Result<Option<f64>, ConvertError> {
    match field(o, key) {
        None => Ok(None),
        Some(v) => v.as_f64().map(Some).ok_or_else(|| ConvertError::wrong_type(join(path, key), "a number")),
    }
}

pub(crate) fn opt_u64(o: &Obj, key: &str, path: &str) -> Result<Option<u64>, ConvertError> {
    match field(o, key) {
        None => Ok(None),
        Some(v) => {
            v.as_u64().map(Some).ok_or_else(|| ConvertError::wrong_type(join(path, key), "a non-negative integer"))
        }
    }
}

pub(crate) fn opt_i64(o: &Obj, key: &str, path: &str) -> Result<Option<i64>, ConvertError> {
    match field(o, key) {
        None => Ok(None),
        Some(v) => v.as_i64().map(Some).ok_or_else(|| ConvertError::wrong_type(join(path, key), "an integer")),
    }
}

/// Lenient token-count read for upstream responses: anything but a non-negative integer is
/// treated as absent (usage must never fail a response).
pub(crate) fn count(o: Option<&Obj>, key: &str) -> Option<u64> {
    o.and_then(|m| m.get(key)).and_then(Value::as_u64)
}

/// Lenient string read for upstream responses.
pub(crate) fn text<'a>(o: &'a Obj, key: &str) -> Option<&'a str> {
    o.get(key).and_then(Value::as_str)
}

/// Lenient object read for upstream responses.
pub(crate) fn obj<'a>(o: &'a Obj, key: &str) -> Option<&'a Obj> {
    o.get(key).and_then(Value::as_object)
}

/// Lenient array read for upstream responses.
pub(crate) fn arr<'a>(o: &'a Obj, key: &str) -> &'a [Value] {
    o.get(key).and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[])
}

/// `"stop": "x"` or `"stop": ["x", "y"]`.
pub(crate) fn string_or_list(o: &Obj, key: &str, path: &str) -> Result<Vec<String>, ConvertError> {
    match field(o, key) {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ConvertError::wrong_type(format!("{}[{i}]", join(path, key)), "a string"))
            })
            .collect(),
        Some(_) => Err(ConvertError::wrong_type(join(path, key), "a string or an array of strings")),
    }
}

/// Parses tool-call argument text into a JSON object. Upstreams and clients sometimes send
/// empty or broken argument text; that becomes `{}` (logged) rather than failing the call.
pub(crate) fn arguments_object(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return Value::Object(Map::new());
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        Ok(other) => {
            tracing::warn!("tool arguments are not an object; wrapping as {{\"value\": …}}");
            let mut m = Map::new();
            m.insert("value".into(), other);
            Value::Object(m)
        }
        Err(e) => {
            tracing::warn!(error = %e, "tool arguments are not valid JSON; sending {{}}");
            Value::Object(Map::new())
        }
    }
}

/// Serialises a JSON value to text (arguments, tool outputs). Cannot fail for `Value`.
pub(crate) fn to_text(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}
