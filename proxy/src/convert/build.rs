//! Small helpers for building JSON objects in encoders.

use serde_json::{Map, Value};

/// Inserts `key` only when `value` is `Some`.
pub(crate) fn put<T: Into<Value>>(m: &mut Map<String, Value>, key: &str, value: Option<T>) {
    if let Some(v) = value {
        m.insert(key.to_string(), v.into());
    }
}

/// Inserts `key` only when the list is non-empty.
pub(crate) fn put_list(m: &mut Map<String, Value>, key: &str, list: Vec<Value>) {
    if !list.is_empty() {
        m.insert(key.to_string(), Value::Array(list));
    }
}
