//! The Code Assist envelope spoken by the Gemini CLI and Antigravity backends
//! (`v1internal:generateContent`): requests travel as `{"model", "project", "request"}` and
//! responses (and stream chunks) as `{"response": …}`. The converters already read the
//! response envelope; provider adapters use these helpers for the rest.

use serde_json::{json, Value};

use super::model::strip_models_prefix;

/// Wraps a Gemini request body for a Code Assist backend.
pub fn wrap_request(model: &str, project: &str, request: Value) -> Value {
    json!({"model": strip_models_prefix(model), "project": project, "request": request})
}

/// The Gemini response inside a Code Assist envelope; other values unchanged.
pub fn unwrap_response(v: &Value) -> &Value {
    match v.get("response") {
        Some(inner) if v.get("candidates").is_none() && inner.is_object() => inner,
        _ => v,
    }
}
