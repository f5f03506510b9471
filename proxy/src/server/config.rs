//! Gateway settings: built-in defaults < config.json (the Redis copy when Redis is on) <
//! environment < command-line flags. Field names are the reference's (`REQUIRED_API_KEY`, ...);
//! poolgate's own additions are listed on [`GatewayConfig`].

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

/// Reference default API key; running with it is allowed but logged loudly.
pub const DEFAULT_API_KEY: &str = "123456";

/// Where a model falls back to (`modelFallbackMapping`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFallback {
    pub provider: String,
    pub model: String,
}

/// The settings the server itself needs.
#[derive(Clone, PartialEq)]
pub struct GatewayConfig {
    pub api_key: String,
    /// `HOST`. Without one (and without `--host`), `0.0.0.0` — or `127.0.0.1` while the key is
    /// the public default, so a fresh start cannot be used from the network by anyone.
    pub host: String,
    /// `HOST` was given (config, environment or flag).
    pub host_set: bool,
    pub port: u16,
    /// `MODEL_PROVIDER`: a string, comma list or array; the first is the default.
    pub model_providers: Vec<String>,
    pub max_error_count: i64,
    pub request_max_retries: u32,
    pub request_base_delay: Duration,
    pub credential_switch_max_retries: u32,
    /// `providerFallbackChain`: type → types tried after it (same protocol only).
    pub fallback_chain: HashMap<String, Vec<String>>,
    /// `modelFallbackMapping`: model → another provider type and model (any protocol).
    pub model_fallback: HashMap<String, ModelFallback>,
    /// `RATE_LIMIT_COOLDOWN_MS` (default 30 s): cooldown after a 429 without `Retry-After`.
    pub rate_limit_cooldown: Duration,
    /// `RATE_LIMIT_COOLDOWN_MAX_MS` (default 300 s): cap on any 429 cooldown.
    pub rate_limit_cooldown_max: Duration,
    /// poolgate: `MAX_REQUEST_BODY_BYTES` (default 32 MiB); larger bodies get 413.
    pub max_body_bytes: usize,
    /// poolgate: `UPSTREAM_TIMEOUT_MS` (default 120 s) until the upstream's response headers and
    /// for a whole unary body; past it the client gets 504.
    pub upstream_timeout: Duration,
    /// poolgate: `UPSTREAM_IDLE_TIMEOUT_MS` (default 300 s): longest silence inside a stream.
    pub stream_idle_timeout: Duration,
    /// `SCHEDULED_HEALTH_CHECK.enabled` (poolgate default: true) — periodic checks of
    /// *unhealthy* accounts, so accounts recover without an operator.
    pub health_check_enabled: bool,
    /// `SCHEDULED_HEALTH_CHECK.interval` ms (default 60 s).
    pub health_check_interval: Duration,
    /// poolgate: `QUEUE_TIMEOUT_MS` (default 60 s): longest wait for a concurrency slot.
    pub queue_timeout: Duration,
    /// poolgate: `SHUTDOWN_GRACE_MS` (default 30 s): how long in-flight requests and streams
    /// may run after SIGTERM.
    pub shutdown_grace: Duration,
    /// poolgate: `REQUEST_DEADLINE_MS` (default 300 s): the longest one client request may take
    /// across all its upstream attempts, until its answer starts (a stream) or ends (unary).
    pub request_deadline: Duration,
    /// poolgate: `USAGE_COMMIT_BEFORE_LAST_BYTE` (default true): the usage of an answer is written
    /// to the store before the answer's last bytes are sent, so a killed replica loses only
    /// answers the client never fully received.
    pub usage_commit_first: bool,
    /// poolgate: `HEADER_READ_TIMEOUT_MS` (default 5 s): longest wait for complete request headers.
    pub header_read_timeout: Duration,
    /// poolgate: `BODY_READ_TIMEOUT_MS` (default 15 s): longest pause while a request body arrives.
    pub body_read_timeout: Duration,
    /// poolgate: `MAX_HEADER_BYTES` (default 64 KiB): larger request heads get 431.
    pub max_header_bytes: usize,
    /// poolgate: `MAX_CONNECTIONS` (default 16384) open client connections per replica.
    pub max_connections: usize,
    /// poolgate: `MAX_CONNECTIONS_PER_IP` (default 0: off) open connections per client IP.
    pub max_connections_per_ip: usize,
    /// poolgate: `CLIENT_KEYS_WHEN_STORE_DOWN` (`allow`, the default, or `deny`): while Redis is
    /// unreachable, client keys this replica admitted in the last day go on against a local
    /// count that is replayed when Redis is back; with `deny` every client key gets 503.
    pub client_keys_offline_allow: bool,
    /// poolgate: `CLIENT_KEY_METRICS` (`aggregate`, the default, or `per-key`): with `per-key`
    /// the client key metrics also carry the key's name (one series per key).
    pub client_key_metrics_per_key: bool,
    /// `PROMPT_LOG_MODE` / `PROMPT_LOG_BASE_NAME`: the conversation log (off by default). Its
    /// directory is set by the server (the config directory).
    pub prompt_log: crate::prompt_log::PromptLog,
    /// Admin API and dashboard settings (`LOGIN_*`, `TRUST_PROXY`, `UI_ENABLED`).
    pub admin: crate::admin::AdminSettings,
    /// The whole config object as read, for fields other modules own.
    pub raw: Value,
}

impl std::fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("model_providers", &self.model_providers)
            .finish_non_exhaustive()
    }
}

impl GatewayConfig {
    /// Reads the reference fields of `raw`, then applies `env` overrides.
    pub fn from_value(raw: Value, env: impl Fn(&str) -> Option<String>) -> Self {
        let s = |k: &str| env(k).or_else(|| raw.get(k).and_then(Value::as_str).map(str::to_string));
        let n = |k: &str| {
            env(k)
                .and_then(|v| v.trim().parse::<i64>().ok())
                .or_else(|| raw.get(k).and_then(|v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))))
        };
        let ms =
            |k: &str, default: u64| Duration::from_millis(n(k).and_then(|v| u64::try_from(v).ok()).unwrap_or(default));
        let size = |k: &str, default: usize| n(k).and_then(|v| usize::try_from(v).ok()).unwrap_or(default);
        let hc = raw.get("SCHEDULED_HEALTH_CHECK");
        let hc_enabled = env("HEALTH_CHECK_ENABLED")
            .and_then(|v| poolgate_store::settings::parse_bool(&v))
            .or_else(|| hc.and_then(|h| h.get("enabled")).and_then(Value::as_bool))
            .unwrap_or(true);
        let hc_interval = env("HEALTH_CHECK_INTERVAL_MS")
            .and_then(|v| v.parse::<u64>().ok())
            .or_else(|| hc.and_then(|h| h.get("interval")).and_then(Value::as_u64))
            .unwrap_or(60_000);
        let model_providers = match env("MODEL_PROVIDER")
            .map(Value::String)
            .or_else(|| raw.get("MODEL_PROVIDER").cloned())
        {
            Some(Value::String(s)) => s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect(),
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(String::from).collect(),
            _ => Vec::new(),
        };
        let model_providers =
            if model_providers.is_empty() { vec!["openai-custom".to_string()] } else { model_providers };
        Self {
            api_key: s("REQUIRED_API_KEY").filter(|k| !k.is_empty()).unwrap_or_else(|| DEFAULT_API_KEY.into()),
            host: s("HOST").unwrap_or_else(|| "0.0.0.0".into()),
            host_set: s("HOST").is_some(),
            port: n("SERVER_PORT").and_then(|p| u16::try_from(p).ok()).unwrap_or(3000),
            model_providers,
            max_error_count: n("MAX_ERROR_COUNT").unwrap_or(10),
            request_max_retries: n("REQUEST_MAX_RETRIES").and_then(|v| u32::try_from(v).ok()).unwrap_or(3),
            request_base_delay: ms("REQUEST_BASE_DELAY", 1000),
            credential_switch_max_retries: n("CREDENTIAL_SWITCH_MAX_RETRIES")
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(5),
            fallback_chain: fallback_chain(raw.get("providerFallbackChain")),
            model_fallback: model_fallback(raw.get("modelFallbackMapping")),
            rate_limit_cooldown: ms("RATE_LIMIT_COOLDOWN_MS", 30_000),
            rate_limit_cooldown_max: ms("RATE_LIMIT_COOLDOWN_MAX_MS", 300_000),
            max_body_bytes: n("MAX_REQUEST_BODY_BYTES").and_then(|v| usize::try_from(v).ok()).unwrap_or(32 << 20),
            upstream_timeout: ms("UPSTREAM_TIMEOUT_MS", 120_000),
            stream_idle_timeout: ms("UPSTREAM_IDLE_TIMEOUT_MS", 300_000),
            health_check_enabled: hc_enabled,
            health_check_interval: Duration::from_millis(hc_interval.max(100)),
            queue_timeout: ms("QUEUE_TIMEOUT_MS", 60_000),
            shutdown_grace: ms("SHUTDOWN_GRACE_MS", 30_000),
            request_deadline: ms("REQUEST_DEADLINE_MS", 300_000),
            usage_commit_first: env("USAGE_COMMIT_BEFORE_LAST_BYTE")
                .or_else(|| raw.get("USAGE_COMMIT_BEFORE_LAST_BYTE").map(|v| v.to_string()))
                .and_then(|v| poolgate_store::settings::parse_bool(v.trim_matches('"')))
                .unwrap_or(true),
            header_read_timeout: ms("HEADER_READ_TIMEOUT_MS", 5_000).max(Duration::from_millis(100)),
            body_read_timeout: ms("BODY_READ_TIMEOUT_MS", 15_000).max(Duration::from_millis(100)),
            max_header_bytes: size("MAX_HEADER_BYTES", 64 << 10).max(1024),
            max_connections: size("MAX_CONNECTIONS", 16_384).max(1),
            max_connections_per_ip: size("MAX_CONNECTIONS_PER_IP", 0),
            client_keys_offline_allow: !s("CLIENT_KEYS_WHEN_STORE_DOWN")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("deny")),
            client_key_metrics_per_key: s("CLIENT_KEY_METRICS")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("per-key")),
            prompt_log: crate::prompt_log::PromptLog::settings(&raw, &env, std::path::PathBuf::from("configs")),
            admin: crate::admin::AdminSettings::read(&raw, &env),
            raw,
        }
    }

    /// The default provider type.
    pub fn default_provider(&self) -> &str {
        self.model_providers.first().map(String::as_str).unwrap_or("openai-custom")
    }

    /// `MAX_ERROR_COUNT` as a threshold (0 disables unhealthy marking by count).
    pub fn error_threshold(&self) -> Option<i64> {
        (self.max_error_count > 0).then_some(self.max_error_count)
    }
}

fn fallback_chain(v: Option<&Value>) -> HashMap<String, Vec<String>> {
    let Some(Value::Object(m)) = v else { return HashMap::new() };
    m.iter()
        .map(|(k, v)| {
            let list = match v {
                Value::Array(a) => a.iter().filter_map(Value::as_str).map(String::from).collect(),
                Value::String(s) => vec![s.clone()],
                _ => Vec::new(),
            };
            (k.clone(), list)
        })
        .collect()
}

fn model_fallback(v: Option<&Value>) -> HashMap<String, ModelFallback> {
    let Some(Value::Object(m)) = v else { return HashMap::new() };
    m.iter()
        .filter_map(|(k, v)| {
            let provider = v.get("targetProviderType")?.as_str()?.to_string();
            let model = v.get("targetModel").and_then(Value::as_str).unwrap_or(k).to_string();
            Some((k.clone(), ModelFallback { provider, model }))
        })
        .collect()
}

/// Shallow merge: keys of `over` replace those of `base`.
pub fn merge(base: Value, over: Option<Value>) -> Value {
    match (base, over) {
        (Value::Object(mut b), Some(Value::Object(o))) => {
            b.extend(o);
            Value::Object(b)
        }
        (b, None) => b,
        (_, Some(o)) => o,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn env_overrides_file_and_defaults_fill_the_rest() {
        let raw = json!({"REQUIRED_API_KEY": "file-key", "SERVER_PORT": 4000});
        let env = |k: &str| (k == "SERVER_PORT").then(|| "5000".to_string());
        let c = GatewayConfig::from_value(raw, env);
        assert_eq!((c.api_key.as_str(), c.port, c.host.as_str()), ("file-key", 5000, "0.0.0.0"));
        let c = GatewayConfig::from_value(json!({}), |_| None);
        assert_eq!(c.api_key, DEFAULT_API_KEY);
        assert_eq!(c.max_body_bytes, 32 << 20);
        assert!(!format!("{c:?}").contains(DEFAULT_API_KEY), "Debug never shows the key");
    }

    #[test]
    fn routing_fields_are_read_in_the_reference_shapes() {
        let raw = json!({
            "MODEL_PROVIDER": "claude-custom, openai-custom",
            "providerFallbackChain": {"openai-custom": ["openai-custom-2"]},
            "modelFallbackMapping": {"gpt-x": {"targetProviderType": "claude-custom", "targetModel": "claude-y"}},
            "SCHEDULED_HEALTH_CHECK": {"enabled": false, "interval": 5000},
            "MAX_ERROR_COUNT": 0
        });
        let c = GatewayConfig::from_value(raw, |_| None);
        assert_eq!(c.default_provider(), "claude-custom");
        assert_eq!(c.fallback_chain["openai-custom"], vec!["openai-custom-2".to_string()]);
        assert_eq!(
            c.model_fallback["gpt-x"],
            ModelFallback { provider: "claude-custom".into(), model: "claude-y".into() }
        );
        assert!(!c.health_check_enabled);
        assert_eq!(c.health_check_interval, Duration::from_secs(5));
        assert_eq!(c.error_threshold(), None);
        let c = GatewayConfig::from_value(json!({"MODEL_PROVIDER": ["forward-api"]}), |_| None);
        assert_eq!(c.default_provider(), "forward-api");
    }

    #[test]
    fn redis_copy_wins_field_by_field() {
        let merged = merge(json!({"a": 1, "b": 2}), Some(json!({"b": 3})));
        assert_eq!(merged, json!({"a": 1, "b": 3}));
    }
}
