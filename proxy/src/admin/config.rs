//! `GET/POST /api/config`, `POST /api/reload-config`: the stored config, secrets masked on the
//! way out, every known field checked on the way in (the field is named when refused), and
//! applied on every replica through the store's change feed, without a restart.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::{parse_json, Admin, AdminError, AdminResult};
use crate::server::AppState;

/// What a masked secret reads as; posted back unchanged, it keeps the stored value.
pub const MASK: &str = "******";

/// Field names that hold secrets (case-insensitive substrings).
const SECRET_WORDS: &[&str] =
    &["key", "token", "secret", "password", "passwd", "credential", "creds", "cookie", "authorization", "private"];

/// Secret by name; a `…_PATH` field names where a secret lives, not the secret.
fn is_secret_field(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| lower.contains(w)) && !lower.ends_with("_path")
}

/// A URL with its user-info removed (`http://user:pw@host` → `http://******@host`).
fn mask_userinfo(s: &str) -> Option<String> {
    let (scheme, rest) = s.split_once("://")?;
    let (auth, host) = rest.split_once('@')?;
    (!auth.contains('/')).then(|| format!("{scheme}://{MASK}@{host}"))
}

/// The config as shown to the browser: secret fields (with everything inside them) and URL
/// credentials masked, at any depth.
pub fn masked(v: &Value) -> Value {
    mask_in(v, false)
}

fn mask_in(v: &Value, secret: bool) -> Value {
    match v {
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), mask_in(v, secret || is_secret_field(k)))).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| mask_in(x, secret)).collect()),
        Value::String(s) if secret && !s.is_empty() => Value::String(MASK.into()),
        Value::String(s) => mask_userinfo(s).map_or_else(|| v.clone(), Value::String),
        _ => v.clone(),
    }
}

/// How a known field's value must look.
enum Kind {
    Int {
        min: i64,
        max: i64,
    },
    Bool,
    Text {
        non_empty: bool,
    },
    OneOf(&'static [&'static str]),
    Providers,
    IpList,
    Object,
    /// `[{old, new}]` with a non-empty `old`.
    Replacements,
}

const FIELDS: &[(&str, Kind)] = &[
    ("REQUIRED_API_KEY", Kind::Text { non_empty: true }),
    ("HOST", Kind::Text { non_empty: true }),
    ("SERVER_PORT", Kind::Int { min: 1, max: 65_535 }),
    ("MODEL_PROVIDER", Kind::Providers),
    ("MAX_ERROR_COUNT", Kind::Int { min: 0, max: 1_000_000 }),
    ("REQUEST_MAX_RETRIES", Kind::Int { min: 0, max: 100 }),
    ("REQUEST_BASE_DELAY", Kind::Int { min: 0, max: 600_000 }),
    ("CREDENTIAL_SWITCH_MAX_RETRIES", Kind::Int { min: 0, max: 100 }),
    ("RATE_LIMIT_COOLDOWN_MS", Kind::Int { min: 0, max: 86_400_000 }),
    ("RATE_LIMIT_COOLDOWN_MAX_MS", Kind::Int { min: 0, max: 86_400_000 }),
    ("MAX_REQUEST_BODY_BYTES", Kind::Int { min: 1024, max: 1 << 30 }),
    ("UPSTREAM_TIMEOUT_MS", Kind::Int { min: 100, max: 3_600_000 }),
    ("UPSTREAM_IDLE_TIMEOUT_MS", Kind::Int { min: 100, max: 3_600_000 }),
    ("QUEUE_TIMEOUT_MS", Kind::Int { min: 0, max: 3_600_000 }),
    ("REQUEST_DEADLINE_MS", Kind::Int { min: 100, max: 86_400_000 }),
    ("SHUTDOWN_GRACE_MS", Kind::Int { min: 0, max: 3_600_000 }),
    ("LOGIN_EXPIRY", Kind::Int { min: 60, max: 31_536_000 }),
    ("LOGIN_MAX_ATTEMPTS", Kind::Int { min: 1, max: 1_000 }),
    ("LOGIN_LOCKOUT_DURATION", Kind::Int { min: 0, max: 31_536_000 }),
    ("LOGIN_MIN_INTERVAL", Kind::Int { min: 0, max: 3_600_000 }),
    ("TRUST_PROXY", Kind::Bool),
    ("TRUSTED_PROXY_IPS", Kind::IpList),
    ("UI_ENABLED", Kind::Bool),
    ("USAGE_COMMIT_BEFORE_LAST_BYTE", Kind::Bool),
    ("CLIENT_KEYS_WHEN_STORE_DOWN", Kind::OneOf(&["allow", "deny"])),
    ("SYSTEM_PROMPT_MODE", Kind::OneOf(&["append", "overwrite"])),
    ("PROMPT_LOG_MODE", Kind::OneOf(&["none", "console", "file"])),
    ("SYSTEM_PROMPT_REPLACEMENTS", Kind::Replacements),
    ("SCHEDULED_HEALTH_CHECK", Kind::Object),
    ("providerFallbackChain", Kind::Object),
    ("modelFallbackMapping", Kind::Object),
];

fn as_int(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str()?.trim().parse().ok())
}

/// Checks one field; `Err` is the message shown with the field's name.
fn check(kind: &Kind, v: &Value) -> Result<(), String> {
    match kind {
        Kind::Int { min, max } => match as_int(v) {
            Some(n) if (*min..=*max).contains(&n) => Ok(()),
            Some(n) => Err(format!("{n} is outside {min}..={max}")),
            None => Err("must be an integer".into()),
        },
        Kind::Bool => match v {
            Value::Bool(_) => Ok(()),
            Value::String(s) if poolgate_store::settings::parse_bool(s).is_some() => Ok(()),
            _ => Err("must be true or false".into()),
        },
        Kind::Text { non_empty } => match v.as_str() {
            Some(s) if !non_empty || !s.trim().is_empty() => Ok(()),
            Some(_) => Err("must not be empty".into()),
            None => Err("must be a string".into()),
        },
        Kind::OneOf(allowed) => match v.as_str() {
            Some(s) if allowed.contains(&s) => Ok(()),
            _ => Err(format!("must be one of {}", allowed.join(", "))),
        },
        Kind::Providers => {
            let list: Vec<&str> = match v {
                Value::String(s) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).collect(),
                Value::Array(a) => a.iter().map(|x| x.as_str().unwrap_or("")).collect(),
                _ => return Err("must be a provider type, a comma list or an array of them".into()),
            };
            let known = |t: &str| t == crate::server::routing::AUTO || crate::providers::Registry::is_known(t);
            match list.iter().find(|t| !known(t)) {
                Some(bad) => Err(format!("unknown provider type {bad:?}")),
                None if list.is_empty() => Err("must name at least one provider type".into()),
                None => Ok(()),
            }
        }
        Kind::IpList => {
            let items: Vec<String> = match v {
                Value::Array(a) => a.iter().map(|x| x.as_str().unwrap_or("").to_string()).collect(),
                Value::String(s) => s.split(',').map(|x| x.trim().to_string()).collect(),
                _ => return Err("must be a list of IP addresses".into()),
            };
            match items.iter().find(|s| s.parse::<std::net::IpAddr>().is_err()) {
                Some(bad) => Err(format!("{bad:?} is not an IP address")),
                None => Ok(()),
            }
        }
        Kind::Object => v.is_object().then_some(()).ok_or_else(|| "must be an object".into()),
        Kind::Replacements => {
            let ok = v.as_array().is_some_and(|a| {
                a.iter().all(|r| {
                    r.get("old").and_then(Value::as_str).is_some_and(|o| !o.is_empty())
                        && r.get("new").is_none_or(Value::is_string)
                })
            });
            ok.then_some(())
                .ok_or_else(|| "must be a list of {\"old\": text, \"new\": text} with a non-empty old".into())
        }
    }
}

/// The stored config with `patch` laid over it, after checking each patched field; masked
/// values keep what is stored, `null` removes a field.
pub fn apply_patch(stored: &Map<String, Value>, patch: Map<String, Value>) -> Result<Map<String, Value>, AdminError> {
    let mut out = stored.clone();
    for (k, v) in patch {
        if k == "redis" {
            return Err(AdminError::bad_request(
                "field \"redis\": the Redis connection comes from the environment or config.json, not the admin API",
            ));
        }
        if v.as_str() == Some(MASK) {
            continue;
        }
        if v.is_null() {
            out.remove(&k);
            continue;
        }
        if let Some((_, kind)) = FIELDS.iter().find(|(name, _)| *name == k) {
            check(kind, &v).map_err(|m| AdminError::bad_request(format!("field {k:?}: {m}")))?;
        }
        out.insert(k, v);
    }
    Ok(out)
}

/// `GET /api/config`: the effective config (what this replica runs with), secrets masked.
pub async fn get_config(State(state): State<Arc<AppState>>, _admin: Admin) -> AdminResult {
    let cfg = state.config();
    Ok(Json(masked(&cfg.raw)).into_response())
}

/// `POST /api/config {field: value, …}`: checked, stored, applied everywhere.
pub async fn post_config(State(state): State<Arc<AppState>>, _admin: Admin, body: Bytes) -> AdminResult {
    let patch: Value = parse_json(&body)?;
    let Value::Object(patch) = patch else { return Err(AdminError::bad_request("the body must be a JSON object")) };
    let changed: Vec<String> = patch.keys().cloned().collect();
    let stored = match state.store.get_config().await? {
        Some(Value::Object(m)) => m,
        _ => state.file_config().and_then(|v| v.as_object().cloned()).unwrap_or_default(),
    };
    let next = apply_patch(&stored, patch)?;
    state.store.set_config(&Value::Object(next)).await?;
    state.apply_stored_config().await?;
    let restart: Vec<&String> = changed.iter().filter(|k| *k == "HOST" || *k == "SERVER_PORT").collect();
    tracing::info!(fields = ?changed, "admin: config changed");
    Ok(Json(json!({
        "success": true,
        "message": "Configuration saved and applied",
        "changed": changed,
        "restartRequired": restart,
    }))
    .into_response())
}

/// `POST /api/reload-config`: re-reads the stored config now (in file mode, config.json from
/// disk, so hand edits apply without a restart).
pub async fn reload(State(state): State<Arc<AppState>>, _admin: Admin) -> AdminResult<Response> {
    if state.store.kind() == poolgate_store::StorageKind::File {
        match crate::server::read_config_file(&state) {
            Ok(Some(v)) => {
                state.store.set_config(&v).await?;
            }
            Ok(None) => {}
            Err(e) => return Err(AdminError::bad_request(format!("config.json: {e}"))),
        }
    }
    let changed = state.apply_stored_config().await?;
    Ok(Json(json!({"success": true, "message": "Configuration reloaded", "changed": changed})).into_response())
}

/// Longest system prompt stored.
const MAX_PROMPT_BYTES: usize = 256 << 10;

/// `GET /api/system-prompt`: the stored prompt and how it is applied.
pub async fn get_system_prompt(State(state): State<Arc<AppState>>, _admin: Admin) -> AdminResult {
    let content = state.store.get_system_prompt().await?.unwrap_or_default();
    let inj = state.injection();
    let mode = match inj.mode {
        crate::convert::system_prompt::Mode::Append => "append",
        crate::convert::system_prompt::Mode::Overwrite => "overwrite",
    };
    let replacements: Vec<Value> = inj.replacements.iter().map(|(o, n)| json!({"old": o, "new": n})).collect();
    Ok(Json(json!({"content": content, "mode": mode, "replacements": replacements})).into_response())
}

#[derive(serde::Deserialize)]
struct PromptBody {
    content: String,
}

/// `POST /api/system-prompt {content}`: stored, and applied by every replica at once (an
/// empty content turns injection off). Mode and replacements are config fields.
pub async fn set_system_prompt(State(state): State<Arc<AppState>>, _admin: Admin, body: Bytes) -> AdminResult {
    let PromptBody { content } = parse_json(&body)?;
    if content.len() > MAX_PROMPT_BYTES {
        return Err(AdminError::bad_request(format!("field \"content\" is longer than {MAX_PROMPT_BYTES} bytes")));
    }
    super::done(state.store.set_system_prompt(&content).await?)?;
    state.refresh_injection().await;
    Ok(Json(json!({"success": true, "message": "System prompt saved and applied"})).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = Value> {
        crate::test_json::json_value("[A-Za-z_]{1,8}".prop_map(String::from), vec![Value::String(MASK.into())])
    }

    fn field_name() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(FIELDS.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>()),
            "[A-Za-z_]{1,12}",
        ]
    }

    proptest! {
        /// Any patch is either refused naming one of its fields, or applied field by field.
        #[test]
        fn any_patch_is_applied_or_refused_by_name(patch in prop::collection::btree_map(field_name(), json_value(), 0..6)) {
            let stored = json!({"REQUIRED_API_KEY": "kept", "MAX_ERROR_COUNT": 3}).as_object().cloned().unwrap_or_default();
            let patch: Map<String, Value> = patch.into_iter().collect();
            match apply_patch(&stored, patch.clone()) {
                Err(e) => prop_assert!(patch.keys().any(|k| e.message.contains(&format!("{k:?}"))), "{}", e.message),
                Ok(out) => {
                    for (k, v) in &patch {
                        if v.as_str() == Some(MASK) {
                            prop_assert_eq!(out.get(k), stored.get(k));
                        } else if v.is_null() {
                            prop_assert!(!out.contains_key(k));
                        } else {
                            prop_assert_eq!(out.get(k), Some(v));
                        }
                    }
                }
            }
        }

        /// Masking never panics and leaves no string of a secret-named field visible.
        #[test]
        fn masking_hides_every_secret_named_string(v in json_value(), secret in "[a-z0-9]{12}") {
            let doc = json!({"nested": v, "OPENAI_API_KEY": secret.clone(), "list": [{"refresh_token": secret.clone()}],
                "credentials": [secret.clone(), {"x": [secret.clone()]}]});
            prop_assert!(!masked(&doc).to_string().contains(&secret));
        }
    }

    #[test]
    fn secrets_are_masked_at_any_depth() {
        let cfg = json!({
            "REQUIRED_API_KEY": "sk-live", "SERVER_PORT": 3000, "PROXY_URL": "http://u:pw@proxy:8080",
            "nested": {"clientSecret": "x", "list": [{"token": "t"}]}, "GEMINI_OAUTH_CREDS_BASE64": "abc",
            "KIRO_OAUTH_CREDS_FILE_PATH": "configs/kiro/a.json",
        });
        let m = masked(&cfg);
        let text = m.to_string();
        for secret in ["sk-live", "u:pw", "\"x\"", "\"t\"", "abc"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert_eq!(m["SERVER_PORT"], 3000);
        assert_eq!(m["PROXY_URL"], "http://******@proxy:8080");
        assert_eq!(m["KIRO_OAUTH_CREDS_FILE_PATH"], "configs/kiro/a.json", "paths are not secrets");
    }

    #[test]
    fn bad_values_are_refused_with_the_field_named() {
        let stored = json!({"REQUIRED_API_KEY": "k", "SERVER_PORT": 3000}).as_object().cloned().unwrap_or_default();
        for (patch, field) in [
            (json!({"SERVER_PORT": 70000}), "SERVER_PORT"),
            (json!({"MAX_ERROR_COUNT": "many"}), "MAX_ERROR_COUNT"),
            (json!({"MODEL_PROVIDER": "nope-provider"}), "MODEL_PROVIDER"),
            (json!({"TRUST_PROXY": "perhaps"}), "TRUST_PROXY"),
            (json!({"TRUSTED_PROXY_IPS": ["10.0.0.300"]}), "TRUSTED_PROXY_IPS"),
            (json!({"redis": {"url": "redis://x"}}), "redis"),
        ] {
            let Value::Object(p) = patch else { unreachable!() };
            let e = apply_patch(&stored, p).expect_err(field);
            assert!(e.message.contains(field), "{}", e.message);
        }
        let Value::Object(p) = json!({"REQUIRED_API_KEY": MASK, "MAX_ERROR_COUNT": "5", "SERVER_PORT": null}) else {
            unreachable!()
        };
        let next = apply_patch(&stored, p).expect("valid");
        assert_eq!(next["REQUIRED_API_KEY"], "k", "a masked value keeps the stored one");
        assert_eq!(next["MAX_ERROR_COUNT"], "5");
        assert!(!next.contains_key("SERVER_PORT"));
    }
}
