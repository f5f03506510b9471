//! Associative lists: lists whose elements are identified by key fields (`x-kubernetes-list-type:
//! map` in a CRD schema; `containers` by `name`, `conditions` by `type`, ... in the built-in kinds).
//! Server-side apply merges them per element and tracks ownership per element field, with path
//! segments in the `FieldsV1` form `k:{"name":"main"}`. Every other list is atomic.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::admission::Target;

/// Where list keys come from for one resource type.
#[derive(Debug, Clone, Copy)]
pub enum ListKeys<'a> {
    /// The built-in kinds' merge keys.
    Builtin,
    /// A CRD version's `openAPIV3Schema`.
    Schema(&'a Value),
    /// No associative lists (a CRD version without a schema).
    Atomic,
}

/// The key of an element segment.
const ELEMENT: &str = "k:";

impl<'a> ListKeys<'a> {
    /// The list keys for a request's type and version.
    pub fn for_target(t: &'a Target) -> Self {
        match &t.rt.custom {
            None => ListKeys::Builtin,
            Some(c) => c.schemas.get(&t.version).map_or(ListKeys::Atomic, ListKeys::Schema),
        }
    }

    /// The key fields of the list at `path`, if it is associative.
    pub fn keys(&self, path: &[String]) -> Option<Vec<String>> {
        match self {
            ListKeys::Atomic => None,
            ListKeys::Builtin => builtin_keys(path.last()?),
            ListKeys::Schema(root) => schema_keys(root, path),
        }
    }
}

fn builtin_keys(field: &str) -> Option<Vec<String>> {
    let key = match field {
        "containers" | "initContainers" | "ephemeralContainers" | "env" | "volumes" | "imagePullSecrets" => "name",
        "volumeMounts" => "mountPath",
        "ownerReferences" => "uid",
        "conditions" => "type",
        _ => return None,
    };
    Some(vec![key.to_string()])
}

fn schema_keys(root: &Value, path: &[String]) -> Option<Vec<String>> {
    let mut schema = root;
    for seg in path {
        schema = if seg.starts_with(ELEMENT) {
            schema.get("items")?
        } else {
            match schema.get("properties").and_then(|p| p.get(seg)) {
                Some(s) => s,
                None => schema.get("additionalProperties").filter(|a| a.is_object())?,
            }
        };
    }
    if schema.get("x-kubernetes-list-type").and_then(Value::as_str) != Some("map") {
        return None;
    }
    let keys: Vec<String> = schema
        .get("x-kubernetes-list-map-keys")?
        .as_array()?
        .iter()
        .filter_map(|k| k.as_str().map(String::from))
        .collect();
    (!keys.is_empty()).then_some(keys)
}

/// The path segment naming `item` in a list keyed by `keys`, or `None` if the item lacks a key.
pub fn segment(item: &Value, keys: &[String]) -> Option<String> {
    let mut id = BTreeMap::new();
    for k in keys {
        id.insert(k.as_str(), item.get(k)?);
    }
    Some(format!("{ELEMENT}{}", serde_json::to_string(&id).ok()?))
}

/// The key field names of a `k:{...}` segment (empty for other segments).
pub fn segment_keys(seg: &str) -> Vec<String> {
    match seg.strip_prefix(ELEMENT).map(serde_json::from_str::<Value>) {
        Some(Ok(Value::Object(id))) => id.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// Whether a path segment names a list element.
pub fn is_element(seg: &str) -> bool {
    seg.starts_with(ELEMENT)
}

/// Whether `item` is the element a `k:{...}` segment names.
pub fn matches(item: &Value, seg: &str) -> bool {
    let Some(Ok(Value::Object(id))) = seg.strip_prefix(ELEMENT).map(serde_json::from_str::<Value>) else {
        return false;
    };
    id.iter().all(|(k, v)| item.get(k) == Some(v))
}

/// Deep merge for apply: maps merge recursively, associative lists merge per element, everything
/// else is replaced.
pub fn merge(target: &mut Value, patch: &Value, path: &mut Vec<String>, keys: &ListKeys<'_>) {
    if let (Value::Object(t), Value::Object(p)) = (&mut *target, patch) {
        return merge_maps(t, p, path, keys);
    }
    if let (Value::Array(t), Value::Array(p), Some(ks)) = (&mut *target, patch, keys.keys(path)) {
        return merge_elements(t, p, &ks, path, keys);
    }
    *target = patch.clone();
}

fn merge_elements(t: &mut Vec<Value>, p: &[Value], ks: &[String], path: &mut Vec<String>, keys: &ListKeys<'_>) {
    for item in p {
        let Some(seg) = segment(item, ks) else {
            t.push(item.clone());
            continue;
        };
        match t.iter_mut().find(|e| matches(e, &seg)) {
            Some(existing) => {
                path.push(seg);
                merge(existing, item, path, keys);
                path.pop();
            }
            None => t.push(item.clone()),
        }
    }
}

fn merge_maps(t: &mut Map<String, Value>, p: &Map<String, Value>, path: &mut Vec<String>, keys: &ListKeys<'_>) {
    for (k, v) in p {
        match t.get_mut(k) {
            Some(existing) => {
                path.push(k.clone());
                merge(existing, v, path, keys);
                path.pop();
            }
            None => {
                t.insert(k.clone(), v.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn schema_map_lists_are_found_through_items_and_properties() {
        let schema = json!({"properties": {"status": {"properties": {"conditions": {
            "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
            "items": {"properties": {"type": {"type": "string"}}}}}}}});
        let keys = ListKeys::Schema(&schema);
        let path = |s: &str| s.split('.').map(String::from).collect::<Vec<_>>();
        assert_eq!(keys.keys(&path("status.conditions")), Some(vec!["type".to_string()]));
        assert_eq!(keys.keys(&path("status")), None);
        assert_eq!(ListKeys::Builtin.keys(&path("spec.template.spec.containers")), Some(vec!["name".into()]));
    }

    #[test]
    fn merges_elements_by_key() {
        let mut t = json!({"c": [{"type": "A", "s": 1}, {"type": "B", "s": 1}]});
        let p = json!({"c": [{"type": "B", "s": 2}, {"type": "C", "s": 3}]});
        merge(&mut t, &p, &mut Vec::new(), &ListKeys::Builtin);
        // `c` is not a built-in associative list: replaced.
        assert_eq!(t, p);
        let mut t = json!({"conditions": [{"type": "A", "s": 1}, {"type": "B", "s": 1}]});
        let p = json!({"conditions": [{"type": "B", "s": 2}, {"type": "C", "s": 3}]});
        merge(&mut t, &p, &mut Vec::new(), &ListKeys::Builtin);
        assert_eq!(t["conditions"], json!([{"type": "A", "s": 1}, {"type": "B", "s": 2}, {"type": "C", "s": 3}]));
        let seg = segment(&json!({"type": "B", "x": 1}), &["type".to_string()]).unwrap();
        assert_eq!(seg, r#"k:{"type":"B"}"#);
        assert!(matches(&json!({"type": "B"}), &seg) && !matches(&json!({"type": "A"}), &seg));
    }
}
