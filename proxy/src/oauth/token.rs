//! Reading provider-native token JSON: times in the units each provider writes, and the
//! fields a refresh keeps.

use serde_json::{Map, Value};

/// A time written as epoch ms, epoch s, a digit string, ISO 8601 or `YYYY-MM-DD HH:mm` (UTC),
/// as epoch ms. Numbers below 10^11 are seconds (the year 5138 in ms).
pub fn time_ms(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_f64().filter(|f| f.is_finite() && *f > 0.0).map(scale),
        Value::String(s) => {
            let s = s.trim();
            if let Ok(f) = s.parse::<f64>() {
                return (f.is_finite() && f > 0.0).then(|| scale(f));
            }
            if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
                return Some(t.timestamp_millis());
            }
            chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M")
                .or_else(|_| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S"))
                .ok()
                .map(|t| t.and_utc().timestamp_millis())
        }
        _ => None,
    }
}

fn scale(f: f64) -> i64 {
    if f < 1e11 {
        (f * 1000.0) as i64
    } else {
        f as i64
    }
}

/// The first of `names` holding a non-empty string.
pub fn str_field<'a>(token: &'a Value, names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|n| token.get(*n).and_then(Value::as_str).filter(|s| !s.is_empty()))
}

/// `old` with `new`'s fields laid over it: a refresh answer replaces what it carries and keeps
/// everything else the file had (ids, project, fields the reference's own tools read).
pub fn merged(old: &Value, new: Map<String, Value>) -> Value {
    let mut out = old.as_object().cloned().unwrap_or_default();
    for (k, v) in new {
        if !v.is_null() {
            out.insert(k, v);
        }
    }
    Value::Object(out)
}

/// ISO time `ms` epoch milliseconds from now.
pub fn iso_in(ms: i64) -> String {
    let at = chrono::Utc::now() + chrono::Duration::milliseconds(ms);
    poolgate_store::time::iso(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_in_every_unit_the_providers_write() {
        assert_eq!(time_ms(&json!(1767225600000i64)), Some(1767225600000));
        assert_eq!(time_ms(&json!(1767225600)), Some(1767225600000));
        assert_eq!(time_ms(&json!("1767225600000")), Some(1767225600000));
        assert_eq!(time_ms(&json!("2026-01-01T00:00:00.000Z")), Some(1767225600000));
        assert_eq!(time_ms(&json!("2026-01-01 00:00")), Some(1767225600000));
        assert_eq!(time_ms(&json!("soon")), None);
        assert_eq!(time_ms(&json!(null)), None);
        assert_eq!(time_ms(&json!(-5)), None);
    }

    #[test]
    fn merge_keeps_what_the_answer_leaves_out() {
        let old = json!({"refresh_token": "r1", "project": "p", "access_token": "a1"});
        let new = json!({"access_token": "a2", "refresh_token": null}).as_object().cloned().unwrap_or_default();
        assert_eq!(merged(&old, new), json!({"refresh_token": "r1", "project": "p", "access_token": "a2"}));
    }
}
