//! Server-side printing: `meta.k8s.io/v1` `Table` responses for `kubectl get`, with CRD
//! `additionalPrinterColumns` evaluated by a small JSONPath subset (`.a.b`, `[0]`, `[*]`,
//! `[?(@.k=="v")]`).

use serde_json::{json, Value};

use crate::admission::Target;

/// What each row carries in `object` (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// `PartialObjectMetadata` (the default).
    #[default]
    Metadata,
    /// The full object.
    Object,
    /// Nothing.
    None,
}

impl IncludeObject {
    /// From the query parameter.
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("Object") => IncludeObject::Object,
            Some("None") => IncludeObject::None,
            _ => IncludeObject::Metadata,
        }
    }
}

/// Whether the Accept header asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').any(|part| part.contains("as=Table") && part.contains("g=meta.k8s.io"))
}

/// A column: (name, type, JSONPath or a computed field, description).
struct Column {
    name: String,
    kind: String,
    path: String,
    priority: i64,
}

fn col(name: &str, kind: &str, path: &str) -> Column {
    Column { name: name.into(), kind: kind.into(), path: path.into(), priority: 0 }
}

fn columns(t: &Target) -> Vec<Column> {
    let age = col("Age", "date", ".metadata.creationTimestamp");
    let mut cols = vec![col("Name", "string", ".metadata.name")];
    if let Some(custom) = &t.rt.custom {
        match custom.columns.get(&t.version) {
            Some(defined) => cols.extend(defined.iter().map(|c| Column {
                name: c.get("name").and_then(Value::as_str).unwrap_or("").into(),
                kind: c.get("type").and_then(Value::as_str).unwrap_or("string").into(),
                path: c.get("jsonPath").and_then(Value::as_str).unwrap_or("").into(),
                priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
            })),
            None => cols.push(age),
        }
        return cols;
    }
    match t.rt.key().as_str() {
        "namespaces" => cols.push(col("Status", "string", ".status.phase")),
        "secrets" => {
            cols.push(col("Type", "string", ".type"));
            cols.push(col("Data", "integer", "#data"));
        }
        "configmaps" => cols.push(col("Data", "integer", "#data")),
        "jobs.batch" => {
            cols.push(col("Status", "string", "#jobstatus"));
            cols.push(col("Completions", "string", "#completions"));
        }
        "leases.coordination.k8s.io" => cols.push(col("Holder", "string", ".spec.holderIdentity")),
        _ => {}
    }
    cols.push(age);
    cols
}

/// Converts objects to a Table.
pub fn table(t: &Target, items: &[Value], rv: &str, include: IncludeObject) -> Value {
    let cols = columns(t);
    let defs: Vec<Value> = cols
        .iter()
        .map(|c| {
            let mut d =
                json!({"name": c.name, "type": c.kind, "format": "", "description": c.name, "priority": c.priority});
            if c.name == "Name" {
                d["format"] = json!("name");
            }
            d
        })
        .collect();
    let rows: Vec<Value> = items.iter().map(|obj| row(&cols, obj, include)).collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv},
        "columnDefinitions": defs,
        "rows": rows,
    })
}

fn row(cols: &[Column], obj: &Value, include: IncludeObject) -> Value {
    let cells: Vec<Value> = cols.iter().map(|c| cell(c, obj)).collect();
    let mut r = json!({"cells": cells});
    match include {
        IncludeObject::Object => r["object"] = obj.clone(),
        IncludeObject::Metadata => {
            r["object"] = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
            })
        }
        IncludeObject::None => {}
    }
    r
}

fn cell(c: &Column, obj: &Value) -> Value {
    match c.path.as_str() {
        "#data" => json!(obj.get("data").and_then(Value::as_object).map_or(0, |m| m.len())),
        "#jobstatus" => json!(job_status(obj)),
        "#completions" => json!(format!(
            "{}/{}",
            obj.pointer("/status/succeeded").and_then(Value::as_i64).unwrap_or(0),
            obj.pointer("/spec/completions").and_then(Value::as_i64).unwrap_or(1)
        )),
        path => {
            let found = jsonpath(obj, path);
            let v = match found.len() {
                0 => return Value::Null,
                1 => found[0].clone(),
                _ => json!(found.iter().map(|v| plain(v)).collect::<Vec<_>>().join(",")),
            };
            if c.kind == "date" {
                v.as_str().map_or(Value::Null, |s| json!(age(s)))
            } else {
                v
            }
        }
    }
}

fn job_status(obj: &Value) -> &'static str {
    let conds = obj.pointer("/status/conditions").and_then(Value::as_array);
    let has = |t: &str| {
        conds.into_iter().flatten().any(|c| {
            c.get("type").and_then(Value::as_str) == Some(t) && c.get("status").and_then(Value::as_str) == Some("True")
        })
    };
    if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else {
        "Running"
    }
}

fn plain(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), String::from)
}

/// A human duration since an RFC 3339 timestamp, like kubectl's (`5s`, `3m2s`, `4h`, `2d`).
pub fn age(ts: &str) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(ts) else {
        return "<invalid>".into();
    };
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 3 * 3600 => format!("{}m", s / 60),
        s if s < 8 * 3600 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// Evaluates a JSONPath subset; returns every match.
pub fn jsonpath<'a>(obj: &'a Value, path: &str) -> Vec<&'a Value> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}').trim_start_matches('$');
    let mut current = vec![obj];
    for step in steps(path) {
        let mut next = Vec::new();
        for v in current {
            match &step {
                Step::Field(f) => next.extend(v.get(f.as_str())),
                Step::Index(i) => next.extend(v.as_array().and_then(|a| a.get(*i))),
                Step::All => next.extend(v.as_array().into_iter().flatten()),
                Step::Filter(k, want) => next.extend(
                    v.as_array()
                        .into_iter()
                        .flatten()
                        .filter(|e| e.get(k.as_str()).map(plain).as_deref() == Some(want.as_str())),
                ),
            }
        }
        current = next;
    }
    current
}

enum Step {
    Field(String),
    Index(usize),
    All,
    Filter(String, String),
}

fn steps(path: &str) -> Vec<Step> {
    let mut out = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            rest = r;
            continue;
        }
        if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').unwrap_or(r.len());
            let inner = &r[..end];
            rest = r.get(end + 1..).unwrap_or("");
            if inner == "*" {
                out.push(Step::All);
            } else if let Ok(i) = inner.parse() {
                out.push(Step::Index(i));
            } else if let Some(f) = inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')')) {
                if let Some((k, v)) = f.split_once("==") {
                    out.push(Step::Filter(k.trim().into(), v.trim().trim_matches(['"', '\'']).into()));
                }
            }
            continue;
        }
        let end = rest.find(['.', '[']).unwrap_or(rest.len());
        out.push(Step::Field(rest[..end].to_string()));
        rest = &rest[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonpath_subset() {
        let o = json!({"status": {"conditions": [{"type": "A", "status": "False"}, {"type": "Ready", "status": "True"}]},
            "spec": {"items": [{"n": 1}, {"n": 2}]}});
        assert_eq!(jsonpath(&o, ".status.conditions[?(@.type==\"Ready\")].status"), vec![&json!("True")]);
        assert_eq!(jsonpath(&o, ".spec.items[1].n"), vec![&json!(2)]);
        assert_eq!(jsonpath(&o, ".spec.items[*].n").len(), 2);
        assert!(jsonpath(&o, ".missing.x").is_empty());
    }

    #[test]
    fn accept_header_detection() {
        assert!(wants_table("application/json;as=Table;v=v1;g=meta.k8s.io,application/json"));
        assert!(!wants_table("application/json"));
    }
}
