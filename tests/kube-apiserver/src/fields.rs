//! Managed fields: which field manager owns which fields, kept in `metadata.managedFields` in the
//! real `FieldsV1` format.
//!
//! Ownership is tracked per leaf of the object's map structure (`spec.a.b`) and, inside
//! associative lists (see `listkeys.rs`), per element field (`status.conditions.k:{"type":"Ready"}.status`).
//! Other lists are atomic: one leaf each (sets, `v:` entries, are not modelled).

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use crate::listkeys::{self, ListKeys};
use crate::meta;

/// A field path: the map keys from the object root.
pub type FieldPath = Vec<String>;

/// Which part of an object a write may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The whole object (types without a status subresource).
    All,
    /// Everything but `status` (main resource of a type with a status subresource).
    NoStatus,
    /// Only `status` (the status subresource).
    Status,
}

impl Scope {
    /// The `subresource` recorded in managed fields.
    pub fn subresource(self) -> Option<&'static str> {
        (self == Scope::Status).then_some("status")
    }
}

/// Metadata fields that clients own; the rest of `metadata` is system-managed.
const OWNED_METADATA: &[&str] = &["labels", "annotations", "finalizers", "ownerReferences"];

/// The leaf paths of an object that a write in `scope` can own.
pub fn leaves(obj: &Value, scope: Scope, keys: &ListKeys<'_>) -> BTreeSet<FieldPath> {
    let mut out = BTreeSet::new();
    let Some(map) = obj.as_object() else {
        return out;
    };
    for (k, v) in map {
        let in_scope = match scope {
            Scope::All => true,
            Scope::NoStatus => k != "status",
            Scope::Status => k == "status",
        };
        if !in_scope || k == "apiVersion" || k == "kind" {
            continue;
        }
        if k == "metadata" {
            for field in OWNED_METADATA {
                if let Some(fv) = v.get(*field) {
                    collect(fv, vec![k.clone(), field.to_string()], keys, &mut out);
                }
            }
        } else {
            collect(v, vec![k.clone()], keys, &mut out);
        }
    }
    out
}

fn collect(v: &Value, path: FieldPath, keys: &ListKeys<'_>, out: &mut BTreeSet<FieldPath>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                let mut p = path.clone();
                p.push(k.clone());
                collect(child, p, keys, out);
            }
        }
        Value::Array(items) if !items.is_empty() => match element_segments(items, &path, keys) {
            Some(segments) => {
                for (seg, item) in segments.into_iter().zip(items) {
                    let mut p = path.clone();
                    p.push(seg);
                    collect(item, p, keys, out);
                }
            }
            None => {
                out.insert(path);
            }
        },
        _ => {
            out.insert(path);
        }
    }
}

/// The element segments of an associative list, or `None` if the list is atomic (or an element
/// lacks its keys, which makes the real server treat it as invalid; here it is atomic).
fn element_segments(items: &[Value], path: &[String], keys: &ListKeys<'_>) -> Option<Vec<String>> {
    let ks = keys.keys(path)?;
    items.iter().map(|item| listkeys::segment(item, &ks)).collect()
}

/// Whether one path is a prefix of the other (they name overlapping parts of the object).
pub fn overlaps(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// One `metadata.managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Field manager.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// `status` for status-subresource writes.
    pub subresource: Option<String>,
    /// apiVersion of the write.
    pub api_version: String,
    /// Time of the last write.
    pub time: String,
    /// Owned leaf paths.
    pub fields: BTreeSet<FieldPath>,
}

impl Entry {
    /// Whether this entry is the one a write by `manager`/`operation` in `scope` updates.
    pub fn is_for(&self, manager: &str, operation: &str, scope: Scope) -> bool {
        self.manager == manager && self.operation == operation && self.subresource.as_deref() == scope.subresource()
    }
}

/// Reads the entries of an object.
pub fn read(obj: &Value) -> Vec<Entry> {
    let Some(list) = obj.pointer("/metadata/managedFields").and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|e| {
            let s = |k: &str| e.get(k).and_then(Value::as_str).map(String::from);
            let mut fields = BTreeSet::new();
            if let Some(f) = e.get("fieldsV1") {
                from_fields_v1(f, Vec::new(), &mut fields);
            }
            Some(Entry {
                manager: s("manager")?,
                operation: s("operation").unwrap_or_else(|| "Update".into()),
                subresource: s("subresource"),
                api_version: s("apiVersion").unwrap_or_default(),
                time: s("time").unwrap_or_default(),
                fields,
            })
        })
        .collect()
}

/// Writes entries back, dropping empty ones (as the real server does).
pub fn write(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(&e.fields),
            });
            if let Some(sub) = &e.subresource {
                v["subresource"] = json!(sub);
            }
            v
        })
        .collect();
    if list.is_empty() {
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("managedFields");
        }
    } else {
        meta::set_meta(obj, "managedFields", Value::Array(list));
    }
}

/// `{"f:spec": {"f:replicas": {}}}` from leaf paths.
pub fn to_fields_v1(fields: &BTreeSet<FieldPath>) -> Value {
    let mut root = Map::new();
    for path in fields {
        let mut cur = &mut root;
        for key in path {
            let name = if listkeys::is_element(key) { key.clone() } else { format!("f:{key}") };
            let next = cur.entry(name).or_insert_with(|| Value::Object(Map::new()));
            if !next.is_object() {
                *next = Value::Object(Map::new());
            }
            cur = next.as_object_mut().expect("just made an object");
        }
    }
    Value::Object(root)
}

fn from_fields_v1(v: &Value, path: FieldPath, out: &mut BTreeSet<FieldPath>) {
    let children: Vec<(&String, &Value)> = v
        .as_object()
        .map(|m| m.iter().filter(|(k, _)| k.starts_with("f:") || listkeys::is_element(k)).collect())
        .unwrap_or_default();
    if children.is_empty() {
        if !path.is_empty() {
            out.insert(path);
        }
        return;
    }
    for (k, child) in children {
        let mut p = path.clone();
        p.push(k.strip_prefix("f:").unwrap_or(k).to_string());
        from_fields_v1(child, p, out);
    }
}

/// Records a non-apply write (create, update, patch) by `manager`: it takes ownership of every
/// field whose value it changed, other managers lose those fields, and removed fields are
/// forgotten. Updates never conflict.
pub fn track_update(
    old: Option<&Value>,
    new: &mut Value,
    manager: &str,
    scope: Scope,
    api_version: &str,
    keys: &ListKeys<'_>,
) {
    let mut entries = old.map(read).unwrap_or_default();
    let changed: BTreeSet<FieldPath> = leaves(new, scope, keys)
        .into_iter()
        .filter(|p| old.and_then(|o| meta::value_at(o, p)) != meta::value_at(new, p))
        .collect();
    for e in &mut entries {
        let own = e.is_for(manager, "Update", scope);
        e.fields.retain(|p| meta::value_at(new, p).is_some() && (own || !changed.iter().any(|c| overlaps(c, p))));
    }
    if !changed.is_empty() {
        match entries.iter_mut().find(|e| e.is_for(manager, "Update", scope)) {
            Some(e) => {
                e.fields.extend(changed);
                e.time = meta::now();
                e.api_version = api_version.to_string();
            }
            None => entries.push(Entry {
                manager: manager.to_string(),
                operation: "Update".into(),
                subresource: scope.subresource().map(String::from),
                api_version: api_version.to_string(),
                time: meta::now(),
                fields: changed,
            }),
        }
    }
    write(new, &entries);
}

/// Managed fields with timestamps blanked, to tell a no-op write from a real one.
pub fn without_times(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(list) = o.pointer_mut("/metadata/managedFields").and_then(Value::as_array_mut) {
        for e in list {
            if let Some(m) = e.as_object_mut() {
                m.remove("time");
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> FieldPath {
        s.split('.').map(String::from).collect()
    }

    #[test]
    fn leaves_respect_scope_and_metadata() {
        let obj = json!({
            "apiVersion": "v1", "kind": "X",
            "metadata": {"name": "a", "labels": {"k": "v"}, "uid": "u"},
            "spec": {"a": {"b": 1}, "l": [1], "e": {}},
            "status": {"s": 1}
        });
        let all = leaves(&obj, Scope::All, &ListKeys::Builtin);
        assert!(all.contains(&p("metadata.labels.k")));
        assert!(all.contains(&p("spec.a.b")));
        assert!(all.contains(&p("spec.l")));
        assert!(all.contains(&p("spec.e")));
        assert!(all.contains(&p("status.s")));
        assert!(!all.iter().any(|x| x[0] == "apiVersion" || x.ends_with(&["uid".to_string()])));
        assert!(!leaves(&obj, Scope::NoStatus, &ListKeys::Builtin).contains(&p("status.s")));
        assert_eq!(leaves(&obj, Scope::Status, &ListKeys::Builtin).len(), 1);
    }

    #[test]
    fn fields_v1_round_trips() {
        let set: BTreeSet<FieldPath> = [p("spec.a.b"), p("spec.c"), p("metadata.labels.x")].into();
        let v = to_fields_v1(&set);
        assert_eq!(v["f:spec"]["f:a"]["f:b"], json!({}));
        let mut back = BTreeSet::new();
        from_fields_v1(&v, Vec::new(), &mut back);
        assert_eq!(back, set);
    }

    #[test]
    fn update_takes_changed_fields_from_others() {
        let mut old = json!({"spec": {"a": 1, "b": 2}});
        track_update(None, &mut old, "first", Scope::All, "v1", &ListKeys::Builtin);
        let mut new = json!({"metadata": old["metadata"].clone(), "spec": {"a": 5, "b": 2}});
        track_update(Some(&old), &mut new, "second", Scope::All, "v1", &ListKeys::Builtin);
        let entries = read(&new);
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].fields, [p("spec.b")].into());
        assert_eq!(entries[1].manager, "second");
        assert_eq!(entries[1].fields, [p("spec.a")].into());
    }
}
