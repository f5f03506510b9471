//! Gateway settings: built-in defaults < config.json (the Redis copy when Redis is on) <
//! environment < command-line flags. Field names are the reference's (`REQUIRED_API_KEY`, ...).

use serde_json::Value;

/// Reference default API key; running with it is allowed but logged loudly.
pub const DEFAULT_API_KEY: &str = "123456";

/// The settings the server itself needs.
#[derive(Clone, PartialEq)]
pub struct GatewayConfig {
    pub api_key: String,
    pub host: String,
    pub port: u16,
    pub model_provider: String,
    pub max_error_count: i64,
    pub request_max_retries: u32,
    pub request_base_delay_ms: u64,
    pub credential_switch_max_retries: u32,
    /// The whole config object as read, for fields other modules own.
    pub raw: Value,
}

impl std::fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("model_provider", &self.model_provider)
            .finish_non_exhaustive()
    }
}

impl GatewayConfig {
    /// Reads the reference fields of `raw`, then applies `env` overrides.
    pub fn from_value(raw: Value, env: impl Fn(&str) -> Option<String>) -> Self {
        let s = |k: &str| env(k).or_else(|| raw.get(k).and_then(Value::as_str).map(str::to_string));
        let n = |k: &str| env(k).and_then(|v| v.parse::<i64>().ok()).or_else(|| raw.get(k).and_then(Value::as_i64));
        Self {
            api_key: s("REQUIRED_API_KEY").filter(|k| !k.is_empty()).unwrap_or_else(|| DEFAULT_API_KEY.into()),
            host: s("HOST").unwrap_or_else(|| "0.0.0.0".into()),
            port: n("SERVER_PORT").and_then(|p| u16::try_from(p).ok()).unwrap_or(3000),
            model_provider: s("MODEL_PROVIDER").unwrap_or_else(|| "openai-custom".into()),
            max_error_count: n("MAX_ERROR_COUNT").unwrap_or(10),
            request_max_retries: n("REQUEST_MAX_RETRIES").and_then(|v| u32::try_from(v).ok()).unwrap_or(3),
            request_base_delay_ms: n("REQUEST_BASE_DELAY").and_then(|v| u64::try_from(v).ok()).unwrap_or(1000),
            credential_switch_max_retries: n("CREDENTIAL_SWITCH_MAX_RETRIES")
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(5),
            raw,
        }
    }
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
        assert!(!format!("{c:?}").contains(DEFAULT_API_KEY), "Debug never shows the key");
    }

    #[test]
    fn redis_copy_wins_field_by_field() {
        let merged = merge(json!({"a": 1, "b": 2}), Some(json!({"b": 3})));
        assert_eq!(merged, json!({"a": 1, "b": 3}));
    }
}
