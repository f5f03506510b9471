//! Field-by-field comparison of JSON values. Differences are reported by path and kind only:
//! values may be credentials, so they are never part of a message.

use serde_json::Value;

/// Every difference between `source` and `stored`, as `path: what` lines (empty when equal).
pub fn json_diff(source: &Value, stored: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk("$", source, stored, &mut out);
    out
}

fn walk(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                let p = format!("{path}.{k}");
                match y.get(k) {
                    Some(vb) => walk(&p, va, vb, out),
                    None => out.push(format!("{p}: missing in Redis")),
                }
            }
            for k in y.keys().filter(|k| !x.contains_key(*k)) {
                out.push(format!("{path}.{k}: in Redis but not in the source"));
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                out.push(format!("{path}: {} items in the source, {} in Redis", x.len(), y.len()));
            }
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                walk(&format!("{path}[{i}]"), va, vb, out);
            }
        }
        (Value::Number(x), Value::Number(y)) if x != y => {
            // 1 and 1.0 are different JSON texts for Node and Go readers: report them.
            out.push(format!("{path}: number differs"));
        }
        _ if kind(a) != kind(b) => out.push(format!("{path}: {} in the source, {} in Redis", kind(a), kind(b))),
        _ if a != b => out.push(format!("{path}: value differs")),
        _ => {}
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reports_paths_never_values() {
        let a = json!({"k": "secret-1", "n": 1, "arr": [1, 2], "o": {"x": null}, "gone": true});
        let b = json!({"k": "secret-2", "n": 1.0, "arr": [1], "o": {"x": 0}, "extra": 1});
        let d = json_diff(&a, &b);
        assert_eq!(
            d,
            vec![
                "$.k: value differs",
                "$.n: number differs",
                "$.arr: 2 items in the source, 1 in Redis",
                "$.o.x: null in the source, number in Redis",
                "$.gone: missing in Redis",
                "$.extra: in Redis but not in the source",
            ]
        );
        assert!(d.iter().all(|l| !l.contains("secret")));
        assert!(json_diff(&a, &a).is_empty());
    }
}
