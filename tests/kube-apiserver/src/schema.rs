//! Custom resources against their CRD's structural `openAPIV3Schema`: pruning of unknown fields,
//! defaulting, and validation of `type`, `required`, `enum`, `nullable`, numeric bounds, string and
//! list lengths. Not implemented: `pattern`, `format`, CEL (`x-kubernetes-validations`),
//! `oneOf`/`anyOf`/`allOf`/`not`, list-type uniqueness.

use serde_json::Value;

use crate::error::Cause;

/// Prunes, defaults and validates `obj` in place; returns the validation failures.
pub fn process(obj: &mut Value, schema: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let Some(map) = obj.as_object_mut() else {
        causes.push(cause("FieldValueTypeInvalid", "", "must be an object".into()));
        return causes;
    };
    let props = schema.get("properties").and_then(Value::as_object);
    let preserve = preserves_unknown(schema);
    // apiVersion, kind and metadata are never pruned or validated against the schema.
    map.retain(|k, _| {
        matches!(k.as_str(), "apiVersion" | "kind" | "metadata") || preserve || props.is_some_and(|p| p.contains_key(k))
    });
    apply_defaults(map, schema);
    for (k, prop) in props.into_iter().flatten() {
        if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
            continue;
        }
        if let Some(v) = map.get_mut(k) {
            walk(v, prop, k, &mut causes);
        }
    }
    check_required(map, schema, "", &mut causes);
    causes
}

fn cause(reason: &str, field: &str, message: String) -> Cause {
    Cause { reason: reason.into(), message, field: field.into() }
}

fn preserves_unknown(schema: &Value) -> bool {
    schema.get("x-kubernetes-preserve-unknown-fields").and_then(Value::as_bool) == Some(true)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn apply_defaults(map: &mut serde_json::Map<String, Value>, schema: &Value) {
    for (k, prop) in schema.get("properties").and_then(Value::as_object).into_iter().flatten() {
        let nullable = prop.get("nullable").and_then(Value::as_bool) == Some(true);
        if map.get(k).is_some_and(|v| v.is_null() && !nullable) {
            map.remove(k);
        }
        if !map.contains_key(k) {
            if let Some(d) = prop.get("default") {
                map.insert(k.clone(), d.clone());
            }
        }
    }
}

fn check_required(map: &serde_json::Map<String, Value>, schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    for req in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
        if let Some(k) = req.as_str() {
            if !map.contains_key(k) {
                causes.push(cause("FieldValueRequired", &join(path, k), "Required value".into()));
            }
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_ok(v: &Value, schema: &Value) -> bool {
    if schema.get("x-kubernetes-int-or-string").and_then(Value::as_bool) == Some(true) {
        return v.is_string() || type_name(v) == "integer";
    }
    match schema.get("type").and_then(Value::as_str) {
        None => true,
        Some("number") => v.is_number(),
        Some(t) => type_name(v) == t,
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}...", s.chars().take(77).collect::<String>())
    } else {
        s
    }
}

/// Validates (and prunes/defaults below) one value.
fn walk(v: &mut Value, schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    if v.is_null() {
        if schema.get("nullable").and_then(Value::as_bool) != Some(true) {
            causes.push(cause(
                "FieldValueTypeInvalid",
                path,
                format!(
                    "Invalid value: \"null\": {path} in body must be of type {}: \"null\"",
                    schema.get("type").and_then(Value::as_str).unwrap_or("object")
                ),
            ));
        }
        return;
    }
    if !type_ok(v, schema) {
        let want = schema.get("type").and_then(Value::as_str).unwrap_or("integer or string");
        let got = type_name(v);
        causes.push(cause(
            "FieldValueTypeInvalid",
            path,
            format!("Invalid value: \"{got}\": {path} in body must be of type {want}: \"{got}\""),
        ));
        return;
    }
    check_enum(v, schema, path, causes);
    check_bounds(v, schema, path, causes);
    match v {
        Value::Object(map) => walk_object(map, schema, path, causes),
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(item, item_schema, &format!("{path}[{i}]"), causes);
                }
            }
        }
        _ => {}
    }
}

fn walk_object(map: &mut serde_json::Map<String, Value>, schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    let props = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties");
    let embedded = schema.get("x-kubernetes-embedded-resource").and_then(Value::as_bool) == Some(true);
    if !preserves_unknown(schema) && additional.is_none() {
        map.retain(|k, _| {
            props.is_some_and(|p| p.contains_key(k))
                || (embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata"))
        });
    }
    apply_defaults(map, schema);
    for (k, child) in map.iter_mut() {
        let child_path = join(path, k);
        if let Some(prop) = props.and_then(|p| p.get(k)) {
            walk(child, prop, &child_path, causes);
        } else if let Some(add) = additional.filter(|a| a.is_object()) {
            walk(child, add, &child_path, causes);
        }
    }
    check_required(map, schema, path, causes);
}

fn check_enum(v: &Value, schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    let Some(allowed) = schema.get("enum").and_then(Value::as_array) else {
        return;
    };
    if !allowed.contains(v) {
        let list: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
        causes.push(cause(
            "FieldValueNotSupported",
            path,
            format!("Unsupported value: {}: supported values: {}", short(v), list.join(", ")),
        ));
    }
}

fn check_bounds(v: &Value, schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    let num = |k: &str| schema.get(k).and_then(Value::as_f64);
    let mut fail = |msg: String| {
        causes.push(cause("FieldValueInvalid", path, format!("Invalid value: {}: {path} in body {msg}", short(v))))
    };
    if let Some(x) = v.as_f64() {
        if let Some(min) = num("minimum").filter(|m| x < *m) {
            fail(format!("should be greater than or equal to {min}"));
        }
        if let Some(max) = num("maximum").filter(|m| x > *m) {
            fail(format!("should be less than or equal to {max}"));
        }
    }
    let len = match v {
        Value::String(s) => Some((s.chars().count() as f64, "Length", "chars")),
        Value::Array(a) => Some((a.len() as f64, "Items", "items")),
        Value::Object(m) => Some((m.len() as f64, "Properties", "properties")),
        _ => None,
    };
    if let Some((n, suffix, unit)) = len {
        if let Some(min) = num(&format!("min{suffix}")).filter(|m| n < *m) {
            fail(format!("should be at least {min} {unit} long"));
        }
        if let Some(max) = num(&format!("max{suffix}")).filter(|m| n > *m) {
            fail(format!("may not be more than {max} {unit} long"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["name"],
                    "properties": {
                        "name": {"type": "string", "minLength": 1},
                        "replicas": {"type": "integer", "default": 1, "minimum": 0},
                        "mode": {"type": "string", "enum": ["a", "b"]},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "port": {"x-kubernetes-int-or-string": true}
                    }
                },
                "status": {"type": "object", "properties": {"ok": {"type": "boolean"}}}
            }
        })
    }

    #[test]
    fn prunes_and_defaults() {
        let mut obj = json!({
            "apiVersion": "x/v1", "kind": "K", "metadata": {"name": "n"},
            "spec": {"name": "n", "unknown": 1, "free": {"any": {"thing": 1}}, "labels": {"a": "b"}, "port": "http"},
            "junk": true
        });
        assert!(process(&mut obj, &schema()).is_empty());
        assert_eq!(obj.get("junk"), None);
        assert_eq!(obj["spec"].get("unknown"), None);
        assert_eq!(obj["spec"]["replicas"], 1);
        assert_eq!(obj["spec"]["free"]["any"]["thing"], 1);
        assert_eq!(obj["spec"]["labels"]["a"], "b");
    }

    #[test]
    fn reports_type_required_enum_and_bounds() {
        let mut obj = json!({"spec": {"replicas": "x", "mode": "c", "labels": {"a": 1}}});
        let causes = process(&mut obj, &schema());
        let fields: Vec<(&str, &str)> = causes.iter().map(|c| (c.field.as_str(), c.reason.as_str())).collect();
        assert!(fields.contains(&("spec.replicas", "FieldValueTypeInvalid")), "{fields:?}");
        assert!(fields.contains(&("spec.mode", "FieldValueNotSupported")), "{fields:?}");
        assert!(fields.contains(&("spec.name", "FieldValueRequired")), "{fields:?}");
        assert!(fields.contains(&("spec.labels.a", "FieldValueTypeInvalid")), "{fields:?}");
        let mut neg = json!({"spec": {"name": "", "replicas": -1}});
        let causes = process(&mut neg, &schema());
        assert_eq!(causes.len(), 2, "{causes:?}");
    }
}
