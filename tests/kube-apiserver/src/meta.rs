//! Small helpers over JSON objects: metadata accessors, timestamps, names, paths.

use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::listkeys;

/// Now, as an RFC 3339 timestamp with second precision (the format of `metav1.Time`).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A fresh object UID.
pub fn new_uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Five lowercase alphanumerics, as `generateName` appends.
pub fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    uuid::Uuid::new_v4().as_bytes().iter().take(5).map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect()
}

/// `metadata.<field>` as a string.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

/// The object's name (empty if missing).
pub fn name(obj: &Value) -> &str {
    meta_str(obj, "name").unwrap_or("")
}

/// The object's uid (empty if missing).
pub fn uid(obj: &Value) -> &str {
    meta_str(obj, "uid").unwrap_or("")
}

/// `metadata` as a mutable map, created if absent or not an object.
pub fn metadata_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let map = obj.as_object_mut().expect("just made an object");
    let meta = map.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut().expect("just made an object")
}

/// Sets `metadata.<field>`.
pub fn set_meta(obj: &mut Value, field: &str, value: Value) {
    metadata_mut(obj).insert(field.to_string(), value);
}

/// `metadata.finalizers` as strings.
pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|f| f.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

/// Whether `metadata.deletionTimestamp` is set.
pub fn is_deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null())
}

/// `metadata.labels` as (key, value) pairs.
pub fn labels(obj: &Value) -> Map<String, Value> {
    obj.pointer("/metadata/labels").and_then(Value::as_object).cloned().unwrap_or_default()
}

/// `metadata.ownerReferences` uids.
pub fn owner_uids(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|r| r.get("uid").and_then(Value::as_str).map(String::from)).collect())
        .unwrap_or_default()
}

/// Checks a DNS-1123 subdomain (object names) or label (namespace names).
pub fn validate_name(name: &str, label_only: bool) -> Result<(), String> {
    let max = if label_only { 63 } else { 253 };
    if name.is_empty() {
        return Err("name or generateName is required".into());
    }
    if name.len() > max {
        return Err(format!("must be no more than {max} characters"));
    }
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || (c == '.' && !label_only);
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !name.chars().all(ok_char) || !alnum(name.chars().next()) || !alnum(name.chars().last()) {
        let what = if label_only {
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
        } else {
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        };
        return Err(what.into());
    }
    Ok(())
}

/// A dotted path (`spec.a.b`) looked up in an object.
pub fn dotted<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').filter(|s| !s.is_empty()).try_fold(obj, |v, k| v.get(k))
}

/// Parses a request body as JSON, or as YAML when the content type says so.
pub fn parse_body(body: &[u8], content_type: &str) -> ApiResult<Value> {
    if content_type.contains("protobuf") || content_type.contains("cbor") {
        // Typed clients (kubectl's `create secret`, client-go) may send protobuf; only JSON and YAML
        // are understood here.
        return Err(ApiError::UnsupportedMediaType(format!(
            "the body of the request was in an unsupported format ({content_type}); use application/json"
        )));
    }
    if content_type.contains("yaml") {
        serde_norway::from_slice::<Value>(body).map_err(|e| ApiError::BadRequest(format!("error decoding YAML: {e}")))
    } else {
        serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("error decoding request body: {e}")))
    }
}

/// A value at a field path: map keys, and `k:{...}` segments for associative list elements.
pub fn value_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(obj, |v, k| match v {
        Value::Array(items) if listkeys::is_element(k) => items.iter().find(|e| listkeys::matches(e, k)),
        _ => v.as_object()?.get(k),
    })
}

/// Removes the value at a field path (no-op if absent).
pub fn remove_at(obj: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = obj;
    for k in parents {
        let next = match cur {
            Value::Array(items) if listkeys::is_element(k) => items.iter_mut().find(|e| listkeys::matches(e, k)),
            Value::Object(m) => m.get_mut(k),
            _ => None,
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match cur {
        Value::Array(items) if listkeys::is_element(last) => items.retain(|e| !listkeys::matches(e, last)),
        Value::Object(m) => {
            m.remove(last);
        }
        _ => {}
    }
}

/// Deep merge of maps: `patch` wins, maps merge recursively, everything else is replaced.
pub fn deep_merge(target: &mut Value, patch: &Value) {
    match (target.as_object_mut(), patch.as_object()) {
        (Some(t), Some(p)) => {
            for (k, v) in p {
                match t.get_mut(k) {
                    Some(existing) if existing.is_object() && v.is_object() => deep_merge(existing, v),
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        _ => *target = patch.clone(),
    }
}

/// Removes `null` values from maps, recursively (apply configurations treat null as unset).
pub fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_follow_dns_rules() {
        assert!(validate_name("a-b.c", false).is_ok());
        assert!(validate_name("a.b", true).is_err());
        assert!(validate_name("-a", false).is_err());
        assert!(validate_name("A", false).is_err());
        assert!(validate_name("", false).is_err());
    }

    #[test]
    fn deep_merge_merges_maps_and_replaces_lists() {
        let mut t = json!({"a": {"b": 1, "c": [1, 2]}, "d": 1});
        deep_merge(&mut t, &json!({"a": {"c": [3], "e": 2}}));
        assert_eq!(t, json!({"a": {"b": 1, "c": [3], "e": 2}, "d": 1}));
    }

    #[test]
    fn random_suffix_is_five_chars() {
        assert_eq!(random_suffix().len(), 5);
    }
}
