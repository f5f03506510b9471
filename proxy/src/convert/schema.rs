//! JSON-schema clean-up for Gemini function declarations, which accept only an OpenAPI 3.0
//! subset: unknown keywords (`$schema`, `additionalProperties`, …) make Gemini reject the call.

use serde_json::{Map, Value};

const DROPPED: &[&str] = &[
    "$schema",
    "$id",
    "$ref",
    "$defs",
    "$comment",
    "definitions",
    "additionalProperties",
    "unevaluatedProperties",
    "patternProperties",
    "dependentRequired",
    "dependentSchemas",
    "propertyNames",
    "default",
    "examples",
    "const",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "strict",
];

/// Returns a copy of `schema` that Gemini's `parameters` accepts.
pub(crate) fn for_gemini(schema: &Value) -> Value {
    match schema {
        Value::Object(m) => Value::Object(clean_object(m)),
        Value::Array(a) => Value::Array(a.iter().map(for_gemini).collect()),
        other => other.clone(),
    }
}

fn clean_object(m: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in m {
        if DROPPED.contains(&k.as_str()) {
            continue;
        }
        match (k.as_str(), v) {
            // `properties` maps names to schemas: clean the schemas, keep every name.
            ("properties", Value::Object(props)) => {
                let cleaned = props.iter().map(|(n, s)| (n.clone(), for_gemini(s))).collect();
                out.insert(k.clone(), Value::Object(cleaned));
            }
            // `"type": ["string", "null"]` → `"type": "string", "nullable": true`.
            ("type", Value::Array(types)) => {
                let mut non_null = types.iter().filter(|t| t.as_str() != Some("null"));
                if let Some(first) = non_null.next() {
                    out.insert("type".into(), first.clone());
                }
                if types.iter().any(|t| t.as_str() == Some("null")) {
                    out.insert("nullable".into(), Value::Bool(true));
                }
            }
            _ => {
                out.insert(k.clone(), for_gemini(v));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn drops_unsupported_keywords_but_keeps_property_names() {
        let s = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "default": {"type": ["string", "null"], "default": "x"},
                "n": {"type": "integer", "exclusiveMinimum": 0}
            },
            "required": ["n"]
        });
        assert_eq!(
            for_gemini(&s),
            json!({
                "type": "object",
                "properties": {
                    "default": {"type": "string", "nullable": true},
                    "n": {"type": "integer"}
                },
                "required": ["n"]
            })
        );
    }
}
