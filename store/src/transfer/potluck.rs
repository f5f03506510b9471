//! The reference's `api-potluck-keys.json` (`{keys: {"maki_…": {id, name, createdAt, dailyLimit,
//! todayUsage, totalUsage, lastResetDate, lastUsedAt, enabled, bonusRemaining}}}`) as client
//! keys: stored by SHA-256 of the key text (the text itself is never written), with their counts.
//! The reference counts days in Beijing time; so do the imported keys.

use serde_json::Value;

use crate::client_key::{ClientKey, ClientKeyUsage};

/// Where the reference keeps its keys.
pub const KEYS_FILE: &str = "api-potluck-keys.json";
/// The reference plugin's other file (credential contributions), which poolgate does not model.
pub const DATA_FILE: &str = "api-potluck-data.json";
/// The reference's day boundary: UTC+8.
const TZ_MINUTES: i32 = 480;

/// One imported key: `(hash, settings, counters)`.
pub type Imported = (String, ClientKey, ClientKeyUsage);

fn day_of(ms: i64) -> i64 {
    (ms + i64::from(TZ_MINUTES) * 60_000).div_euclid(86_400_000)
}

fn date_day(date: &str) -> Option<i64> {
    let d = chrono::NaiveDate::parse_from_str(date.trim(), "%Y-%m-%d").ok()?;
    Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp().div_euclid(86_400))
}

fn created_ms(v: Option<&Value>) -> i64 {
    v.and_then(Value::as_str)
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map_or(0, |d| d.timestamp_millis())
}

fn count(entry: &Value, field: &str) -> Result<i64, String> {
    match entry.get(field) {
        None | Some(Value::Null) => Ok(0),
        Some(v) => v.as_i64().filter(|n| *n >= 0).ok_or_else(|| format!("{field} is not a count")),
    }
}

/// Converts one entry; `Err` says what is wrong with it (never quoting the key).
pub fn import_key(text: &str, entry: &Value, now_ms: i64) -> Result<Imported, String> {
    if text.trim().is_empty() {
        return Err("empty key".into());
    }
    if !entry.is_object() {
        return Err("not a JSON object".into());
    }
    let daily = match entry.get("dailyLimit") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_i64().filter(|n| *n >= 0).ok_or("dailyLimit is not a count")?),
    };
    let hash = ClientKey::hash(text);
    let key = ClientKey {
        // Stable across runs, so a second migration finds the same ids.
        id: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, hash.as_bytes()).to_string(),
        name: entry.get("name").and_then(Value::as_str).unwrap_or("imported key").to_string(),
        enabled: entry.get("enabled").and_then(Value::as_bool).unwrap_or(true),
        daily_limit: daily,
        bonus: count(entry, "bonusRemaining")?,
        timezone_offset_minutes: TZ_MINUTES,
        prefix: text.chars().take(12).collect(),
        created_at: created_ms(entry.get("createdAt")),
        ..ClientKey::default()
    };
    let today = day_of(now_ms);
    let counted_today = entry.get("lastResetDate").and_then(Value::as_str).and_then(date_day) == Some(today);
    let usage = ClientKeyUsage {
        day: today,
        today_usage: if counted_today { count(entry, "todayUsage")? } else { 0 },
        total_usage: count(entry, "totalUsage")?,
        ..ClientKeyUsage::default()
    };
    Ok((hash, key, usage))
}

/// An entry that did not convert: `(masked key, reason)`.
pub type Refused = (String, String);

/// Every entry of the file's `keys` object, converted or refused.
pub fn import_file(v: &Value, now_ms: i64) -> Result<(Vec<Imported>, Vec<Refused>), String> {
    let keys = v.get("keys").and_then(Value::as_object).ok_or("no \"keys\" object")?;
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for (text, entry) in keys {
        match import_key(text, entry, now_ms) {
            Ok(k) => ok.push(k),
            Err(e) => bad.push((format!("{}…", text.chars().take(7).collect::<String>()), e)),
        }
    }
    Ok((ok, bad))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reference_entries_become_hashed_keys_with_their_counts() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-25T10:00:00Z").expect("time").timestamp_millis();
        let file = json!({"keys": {
            "maki_abcdefghijklmnopqrstuvwxyz012345": {"id": "maki_abcdefghijklmnopqrstuvwxyz012345", "name": "Alice",
                "createdAt": "2026-01-01T00:00:00.000Z", "dailyLimit": 500, "todayUsage": 12, "totalUsage": 340,
                "lastResetDate": "2026-01-25", "lastUsedAt": null, "enabled": true, "bonusRemaining": 300},
            "maki_old": {"name": "Bob", "dailyLimit": 10, "todayUsage": 9, "totalUsage": 9, "lastResetDate": "2026-01-20", "enabled": false},
            "maki_bad": {"dailyLimit": "lots"}
        }});
        let (ok, bad) = import_file(&file, now).expect("parses");
        assert_eq!(ok.len(), 2);
        assert_eq!(bad.len(), 1);
        assert!(!bad[0].0.contains("maki_bad"), "the key is masked in errors: {}", bad[0].0);
        let (hash, alice, usage) = ok.iter().find(|(_, k, _)| k.name == "Alice").expect("alice");
        assert_eq!(hash, &ClientKey::hash("maki_abcdefghijklmnopqrstuvwxyz012345"));
        assert_eq!((alice.daily_limit, alice.bonus, alice.enabled), (Some(500), 300, true));
        assert_eq!((usage.today_usage, usage.total_usage), (12, 340));
        assert!(!serde_json::to_string(alice).expect("json").contains("maki_abcdefghijklmnopqrstuvwxyz012345"));
        let (_, bob, usage) = ok.iter().find(|(_, k, _)| k.name == "Bob").expect("bob");
        assert_eq!((bob.enabled, usage.today_usage, usage.total_usage), (false, 0, 9), "an old day starts at zero");
        assert_eq!(import_file(&json!({"keys": {}}), now).expect("ok").0.len(), 0);
        assert!(import_file(&json!([]), now).is_err());
    }
}
