//! Redis connection settings: environment over the config file's `redis` block over defaults,
//! parsed in this one place.

use std::time::Duration;

use serde_json::Value;

use crate::error::{Result, StoreError};
use crate::keys::DEFAULT_PREFIX;

/// Default bound of the degraded-mode write queue.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1000;

/// Everything needed to reach Redis. `Debug` redacts the password.
#[derive(Clone, PartialEq)]
pub struct RedisSettings {
    pub enabled: bool,
    pub url: Option<String>,
    pub host: String,
    pub port: u16,
    pub password: Option<String>,
    pub db: i64,
    pub key_prefix: String,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub queue_capacity: usize,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            url: None,
            host: "localhost".into(),
            port: 6379,
            password: None,
            db: 0,
            key_prefix: DEFAULT_PREFIX.into(),
            connect_timeout: Duration::from_millis(5000),
            command_timeout: Duration::from_millis(1000),
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
        }
    }
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("enabled", &self.enabled)
            .field("url", &self.redacted_url())
            .field("db", &self.db)
            .field("key_prefix", &self.key_prefix)
            .finish_non_exhaustive()
    }
}

/// `true`/`1`/`yes`/`on` and `false`/`0`/`no`/`off`, case-insensitive; one rule everywhere.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// What [`redact_url`] shows for a value it cannot parse (the value itself is never shown).
pub const UNPARSEABLE_URL: &str = "<unparseable URL, not shown>";

/// Replaces the password (and a user-only secret) of a `redis://` URL with `***`.
///
/// Redaction does not trust the value to be well formed: it shows only what it recognised
/// (scheme, host, port, database), masks everything before the last `@` and any query, and
/// returns [`UNPARSEABLE_URL`] for a value it cannot parse, so a password in a malformed URL (or
/// a value that is not a URL at all) is never echoed.
pub fn redact_url(url: &str) -> String {
    let url = url.trim();
    let Some((scheme, rest)) = url.split_once("://") else {
        return UNPARSEABLE_URL.to_string();
    };
    let scheme_ok = !scheme.is_empty()
        && scheme.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !scheme_ok {
        return UNPARSEABLE_URL.to_string();
    }
    let (userinfo, hostpart) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    let (hostpart, query) = match hostpart.split_once('?') {
        Some((h, _)) => (h, "?***"),
        None => (hostpart, ""),
    };
    let (authority, path) = hostpart.split_at(hostpart.find('/').unwrap_or(hostpart.len()));
    let plain = |s: &str| s.chars().all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c));
    let host_ok = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']').is_some_and(|(h, port)| {
            h.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
                && (port.is_empty() || port.strip_prefix(':').is_some_and(|p| p.chars().all(|c| c.is_ascii_digit())))
        }),
        None => {
            let (host, port) = authority.split_once(':').unwrap_or((authority, ""));
            plain(host) && port.chars().all(|c| c.is_ascii_digit()) && (authority.contains(':') != port.is_empty())
        }
    };
    let path_ok = path.chars().all(|c| c.is_ascii_alphanumeric() || "/-._~".contains(c));
    if !host_ok || !path_ok || (authority.is_empty() && path.is_empty()) {
        return UNPARSEABLE_URL.to_string();
    }
    let masked = match userinfo {
        None => String::new(),
        Some(u) => match u.split_once(':') {
            Some((user, _)) if plain(user) => format!("{user}:***@"),
            Some(_) => "***:***@".to_string(),
            None => "***@".to_string(),
        },
    };
    format!("{scheme}://{masked}{authority}{path}{query}")
}

impl RedisSettings {
    /// Resolves settings from the process environment and an optional config.json value.
    pub fn from_env(config: Option<&Value>) -> Result<Self> {
        Self::resolve(|k| std::env::var(k).ok(), config)
    }

    /// Same, with the environment given as a lookup (for tests).
    pub fn resolve(env: impl Fn(&str) -> Option<String>, config: Option<&Value>) -> Result<Self> {
        let mut s = Self::default();
        let file = config.and_then(|c| c.get("redis")).cloned().unwrap_or(Value::Null);
        let fstr = |k: &str| file.get(k).and_then(|v| v.as_str().map(str::to_string));
        let fnum = |k: &str| file.get(k).and_then(Value::as_u64);

        s.url = env("REDIS_URL").filter(|v| !v.is_empty()).or_else(|| fstr("url"));
        if let Some(h) = env("REDIS_HOST").or_else(|| fstr("host")) {
            s.host = h;
        }
        if let Some(p) = env("REDIS_PORT").or_else(|| fnum("port").map(|n| n.to_string())) {
            s.port = p.parse().map_err(|_| StoreError::Invalid(format!("REDIS_PORT {p:?} is not a port")))?;
        }
        s.password = env("REDIS_PASSWORD").filter(|v| !v.is_empty()).or_else(|| fstr("password"));
        if let Some(d) = env("REDIS_DB").or_else(|| fnum("db").map(|n| n.to_string())) {
            s.db = d
                .parse()
                .ok()
                .filter(|n| (0..=15).contains(n))
                .ok_or_else(|| StoreError::Invalid(format!("REDIS_DB {d:?} is not a database number 0-15")))?;
        }
        if let Some(p) = env("REDIS_KEY_PREFIX").or_else(|| fstr("keyPrefix")) {
            s.key_prefix = p;
        }
        if let Some(ms) = fnum("connectTimeout") {
            s.connect_timeout = Duration::from_millis(ms);
        }
        if let Some(ms) = fnum("commandTimeout") {
            s.command_timeout = Duration::from_millis(ms);
        }
        if let Some(n) = env("REDIS_QUEUE_CAPACITY").and_then(|v| v.parse().ok()) {
            s.queue_capacity = n;
        }
        let env_enabled = match env("REDIS_ENABLED") {
            Some(v) => Some(parse_bool(&v).ok_or_else(|| {
                StoreError::Invalid(format!("REDIS_ENABLED {v:?} is not a boolean (true/false/1/0)"))
            })?),
            None => None,
        };
        let file_enabled = file.get("enabled").and_then(Value::as_bool);
        // A URL given in the environment switches Redis on unless REDIS_ENABLED says otherwise.
        s.enabled =
            env_enabled.or(env("REDIS_URL").filter(|v| !v.is_empty()).map(|_| true)).or(file_enabled).unwrap_or(false);
        Ok(s)
    }

    /// The URL to connect with (may contain the password: never log it, use `redacted_url`).
    pub fn connection_url(&self) -> String {
        if let Some(url) = &self.url {
            return url.clone();
        }
        let auth = self.password.as_ref().map(|p| format!(":{}@", encode_userinfo(p))).unwrap_or_default();
        format!("redis://{auth}{}:{}/{}", self.host, self.port, self.db)
    }

    pub fn redacted_url(&self) -> String {
        redact_url(&self.connection_url())
    }
}

fn encode_userinfo(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn env_wins_over_config_file_over_defaults() {
        let cfg = json!({"redis": {"enabled": true, "host": "filehost", "port": 7000, "keyPrefix": "f:"}});
        let s = RedisSettings::resolve(env(&[("REDIS_HOST", "envhost")]), Some(&cfg)).expect("ok");
        assert!(s.enabled);
        assert_eq!((s.host.as_str(), s.port, s.key_prefix.as_str()), ("envhost", 7000, "f:"));
        let s = RedisSettings::resolve(env(&[("REDIS_ENABLED", "FALSE")]), Some(&cfg)).expect("ok");
        assert!(!s.enabled);
        let s = RedisSettings::resolve(env(&[]), None).expect("ok");
        assert!(!s.enabled);
        assert_eq!(s.key_prefix, "aiclient:");
    }

    #[test]
    fn url_enables_and_bad_values_are_named() {
        let s = RedisSettings::resolve(env(&[("REDIS_URL", "redis://127.0.0.1:1/2")]), None).expect("ok");
        assert!(s.enabled);
        let e = RedisSettings::resolve(env(&[("REDIS_ENABLED", "maybe")]), None).expect_err("bad");
        assert!(e.to_string().contains("REDIS_ENABLED"));
        let e = RedisSettings::resolve(env(&[("REDIS_DB", "99")]), None).expect_err("bad");
        assert!(e.to_string().contains("REDIS_DB"));
    }

    #[test]
    fn passwords_never_show() {
        assert_eq!(redact_url("redis://:hunter2@h:6379/0"), "redis://:***@h:6379/0");
        assert_eq!(redact_url("redis://user:hunter2@h/0"), "redis://user:***@h/0");
        assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
        assert_eq!(redact_url("rediss://[::1]:6380/2"), "rediss://[::1]:6380/2");
        assert_eq!(redact_url("redis://:pa/ss@h:6379/0"), "redis://:***@h:6379/0", "a '/' in the password");
        assert_eq!(redact_url("redis://:p@ss@h"), "redis://:***@h");
        assert_eq!(redact_url("redis://h/0?password=hunter2"), "redis://h/0?***");
        // Malformed values and non-URLs are never echoed.
        for bad in ["redis:/:SOMEPASSWORD@127.0.0.1:6379/0", "sk-the-api-key", "redis://h ost:1", "", "://x"] {
            let shown = redact_url(bad);
            assert_eq!(shown, UNPARSEABLE_URL, "{bad:?} -> {shown:?}");
        }
        let s = RedisSettings { password: Some("p@ss word".into()), ..Default::default() };
        assert!(s.connection_url().contains("p%40ss%20word"));
        assert!(!s.redacted_url().contains("ss"));
        assert!(!format!("{s:?}").contains("word"));
    }
}
