//! The Redis key schema (reference-storage.md §4). The only place key names are spelled.

/// Default key prefix, shared with the reference implementation.
pub const DEFAULT_PREFIX: &str = "aiclient:";

/// Builds every key under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Default for Keys {
    fn default() -> Self {
        Self::new(DEFAULT_PREFIX)
    }
}

impl Keys {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self { prefix: prefix.into() }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    /// `{p}config`: the whole config.json object.
    pub fn config(&self) -> String {
        self.key("config")
    }
    /// `{p}pools:{type}`: hash uuid → account JSON.
    pub fn pool(&self, provider_type: &str) -> String {
        self.key(&format!("pools:{provider_type}"))
    }
    /// `{p}pool-types`: set of provider types that have a pool.
    pub fn pool_types(&self) -> String {
        self.key("pool-types")
    }
    /// `{p}tokens:{type}:{uuid}`: provider-native token JSON (never with a TTL).
    pub fn token(&self, provider_type: &str, uuid: &str) -> String {
        self.key(&format!("tokens:{provider_type}:{uuid}"))
    }
    /// `(type, uuid)` of a token key (the inverse of [`Keys::token`]).
    pub fn token_id(&self, key: &str) -> Option<(String, String)> {
        let rest = key.strip_prefix(self.prefix.as_str())?.strip_prefix("tokens:")?;
        let (pool, uuid) = rest.split_once(':')?;
        Some((pool.to_string(), uuid.to_string()))
    }
    /// `{p}token-lock:{type}:{uuid}`: refresh lock holding its owner id.
    pub fn token_lock(&self, provider_type: &str, uuid: &str) -> String {
        self.key(&format!("token-lock:{provider_type}:{uuid}"))
    }
    /// `{p}client-keys`: hash SHA-256(key) → client key settings JSON (never the key itself).
    pub fn client_keys(&self) -> String {
        self.key("client-keys")
    }
    /// `{p}client-key-usage:{hash}`: hash of a client key's counters.
    pub fn client_key_usage(&self, hash: &str) -> String {
        self.key(&format!("client-key-usage:{hash}"))
    }
    /// `{p}client-key-`: prefix of the per-minute windows `…rpm:{hash}:{minute}` and
    /// `…tpm:{hash}:{minute}` (counters expiring after two minutes).
    pub fn client_key_window_prefix(&self) -> String {
        self.key("client-key-")
    }
    pub fn client_key_window(&self, kind: &str, hash: &str, minute: i64) -> String {
        format!("{}{kind}:{hash}:{minute}", self.client_key_window_prefix())
    }
    /// `{p}client-key-stats:{day}`: hash `{hash}\t{model}\t{field}` → count, per day.
    pub fn client_key_stats(&self, day: i64) -> String {
        self.key(&format!("client-key-stats:{day}"))
    }
    /// `{p}pwd`: web UI password.
    pub fn password(&self) -> String {
        self.key("pwd")
    }
    /// `{p}sessions:{sha256(token)}`: the raw session token is never a key.
    pub fn session(&self, token_hash: &str) -> String {
        self.key(&format!("sessions:{token_hash}"))
    }
    /// `{p}meta`: migration / init metadata hash.
    pub fn meta(&self) -> String {
        self.key("meta")
    }
    /// `{p}usage:cache`: the whole usage cache.
    pub fn usage_cache(&self) -> String {
        self.key("usage:cache")
    }
    /// poolgate addition: `{p}system-prompt`, the injected system prompt (the reference's
    /// `input_system_prompt.txt`).
    pub fn system_prompt(&self) -> String {
        self.key("system-prompt")
    }
    /// poolgate addition: `{p}custom-models`, the reference's `custom_models.json`.
    pub fn custom_models(&self) -> String {
        self.key("custom-models")
    }
    /// `{p}plugins`: plugin configuration.
    pub fn plugins(&self) -> String {
        self.key("plugins")
    }
    /// `{p}kiro:refresh-index:{hash}`: Kiro refresh-token dedup index → uuid.
    pub fn kiro_refresh_index(&self, hash: &str) -> String {
        self.key(&format!("kiro:refresh-index:{hash}"))
    }
    /// poolgate addition: last batch sequence applied for one writer (exactly-once replay).
    pub fn writer_seq(&self, writer_id: &str) -> String {
        self.key(&format!("writer:{writer_id}"))
    }
    /// Prefix shared by every token key (`{p}tokens:`), for SCAN and key parsing.
    pub fn tokens_prefix(&self) -> String {
        self.key("tokens:")
    }
    /// Prefix shared by every session key (`{p}sessions:`), for SCAN and key parsing.
    pub fn sessions_prefix(&self) -> String {
        self.key("sessions:")
    }
    /// `(type, uuid)` of a token key built by [`Keys::token`]; `None` for any other key.
    pub fn parse_token(&self, key: &str) -> Option<(String, String)> {
        let rest = key.strip_prefix(&self.tokens_prefix())?;
        let (t, u) = rest.split_once(':')?;
        (!t.is_empty() && !u.is_empty()).then(|| (t.to_string(), u.to_string()))
    }
    /// poolgate addition: pub/sub channel carrying cache invalidations.
    pub fn events_channel(&self) -> String {
        self.key("events")
    }
    /// poolgate addition: `{p}slots:{type}:{uuid}`, zset of concurrency-slot holders → lease expiry.
    pub fn slots(&self, provider_type: &str, uuid: &str) -> String {
        self.key(&format!("slots:{provider_type}:{uuid}"))
    }
    /// poolgate addition: `{p}slot-queue:{type}:{uuid}`, zset of waiting holders in arrival order.
    pub fn slot_queue(&self, provider_type: &str, uuid: &str) -> String {
        self.key(&format!("slot-queue:{provider_type}:{uuid}"))
    }
    /// poolgate addition: `{p}slot-queue-exp:{type}:{uuid}`, hash waiter → expiry (and `#seq`).
    pub fn slot_queue_expiry(&self, provider_type: &str, uuid: &str) -> String {
        self.key(&format!("slot-queue-exp:{provider_type}:{uuid}"))
    }
    /// poolgate addition: `{p}lease:{name}`, a named lease holding its owner id.
    pub fn lease(&self, name: &str) -> String {
        self.key(&format!("lease:{name}"))
    }
    /// poolgate addition: `{p}login-guard:{sha256(client ip)}`, the login brute-force record.
    pub fn login_guard(&self, client_hash: &str) -> String {
        self.key(&format!("login-guard:{client_hash}"))
    }
    /// poolgate addition: `{p}replicas`, hash replica id → last heartbeat.
    pub fn replicas(&self) -> String {
        self.key("replicas")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_reference_schema_under_any_prefix() {
        let k = Keys::default();
        assert_eq!(k.pool("claude-kiro-oauth"), "aiclient:pools:claude-kiro-oauth");
        assert_eq!(k.token("openai-qwen-oauth", "u1"), "aiclient:tokens:openai-qwen-oauth:u1");
        assert_eq!(k.token_lock("t", "u"), "aiclient:token-lock:t:u");
        assert_eq!(k.usage_cache(), "aiclient:usage:cache");
        assert_eq!(k.kiro_refresh_index("ab"), "aiclient:kiro:refresh-index:ab");
        let k = Keys::new("x:");
        assert_eq!(k.pool_types(), "x:pool-types");
        assert_eq!(k.password(), "x:pwd");
    }
}
