//! The provider-type table: one row per base type, used by runtime, migration and export alike
//! (the reference used different, wrong tables in different places — §11 bug 6).

/// Static facts about one base provider type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProviderKind {
    /// Base type name as used in `provider_pools.json` (`MODEL_PROVIDER`).
    pub base: &'static str,
    /// Account field holding the token file path (OAuth types only).
    pub token_path_field: Option<&'static str>,
    /// Field of the provider-native token JSON that holds the refresh token.
    pub refresh_field: Option<&'static str>,
    /// Directory under an export root for token files.
    pub export_dir: &'static str,
    /// File-name stem used by export (`{short}-{uuid}.json`).
    pub short_name: &'static str,
}

const KINDS: &[ProviderKind] = &[
    oauth("claude-kiro-oauth", "KIRO_OAUTH_CREDS_FILE_PATH", "refreshToken", "kiro", "kiro"),
    oauth("gemini-cli-oauth", "GEMINI_OAUTH_CREDS_FILE_PATH", "refresh_token", "gemini", "gemini-cli"),
    oauth("gemini-antigravity", "ANTIGRAVITY_OAUTH_CREDS_FILE_PATH", "refresh_token", "antigravity", "antigravity"),
    oauth("openai-qwen-oauth", "QWEN_OAUTH_CREDS_FILE_PATH", "refresh_token", "qwen", "qwen"),
    oauth("openai-iflow", "IFLOW_TOKEN_FILE_PATH", "refresh_token", "iflow", "iflow"),
    oauth("openai-codex-oauth", "CODEX_OAUTH_CREDS_FILE_PATH", "refresh_token", "codex", "codex"),
    api_key("openai-custom"),
    api_key("openaiResponses-custom"),
    api_key("claude-custom"),
    api_key("forward-api"),
];

const fn oauth(
    base: &'static str,
    path: &'static str,
    refresh: &'static str,
    dir: &'static str,
    short: &'static str,
) -> ProviderKind {
    ProviderKind {
        base,
        token_path_field: Some(path),
        refresh_field: Some(refresh),
        export_dir: dir,
        short_name: short,
    }
}

const fn api_key(base: &'static str) -> ProviderKind {
    ProviderKind { base, token_path_field: None, refresh_field: None, export_dir: base, short_name: base }
}

/// Field written by the reference for Kiro accounts whose token lives in Redis (`redis:` pseudo-path).
pub const KIRO_REDIS_MARKER_FIELD: &str = "KIRO_TOKEN_FILE_PATH";

/// Every known base type, in a stable order.
pub fn known_types() -> impl Iterator<Item = &'static str> {
    KINDS.iter().map(|k| k.base)
}

/// The kind of a pool type: the exact base type or `<base>-<suffix>`.
pub fn kind_of(pool_type: &str) -> Option<&'static ProviderKind> {
    KINDS
        .iter()
        .filter(|k| {
            pool_type == k.base
                || (pool_type.starts_with(k.base) && pool_type.as_bytes().get(k.base.len()) == Some(&b'-'))
        })
        .max_by_key(|k| k.base.len())
}

/// Refresh-token field for tokens of this pool type (`refreshToken` for Kiro, else `refresh_token`).
pub fn refresh_field(pool_type: &str) -> &'static str {
    kind_of(pool_type).and_then(|k| k.refresh_field).unwrap_or("refresh_token")
}

/// True for Kiro pools, whose tokens are indexed by refresh-token hash.
pub fn is_kiro(pool_type: &str) -> bool {
    kind_of(pool_type).is_some_and(|k| k.base == "claude-kiro-oauth")
}

/// The refresh-token value of a provider-native token JSON, in either spelling.
pub fn refresh_token_of<'a>(pool_type: &str, token: &'a serde_json::Value) -> Option<&'a str> {
    let native = refresh_field(pool_type);
    token
        .get(native)
        .or_else(|| token.get(if native == "refreshToken" { "refresh_token" } else { "refreshToken" }))
        .and_then(|v| v.as_str())
}

/// Kiro dedup index hash: first 32 hex chars of SHA-256(refreshToken).
pub fn kiro_index_hash(refresh_token: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(refresh_token.as_bytes());
    hex::encode(digest)[..32].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixed_pools_resolve_to_their_base_type() {
        assert_eq!(kind_of("openai-custom").map(|k| k.base), Some("openai-custom"));
        assert_eq!(kind_of("openai-custom-eu").map(|k| k.base), Some("openai-custom"));
        assert_eq!(kind_of("claude-kiro-oauth-2").map(|k| k.base), Some("claude-kiro-oauth"));
        assert_eq!(kind_of("openai-customer"), None);
        assert_eq!(kind_of("nope"), None);
    }

    #[test]
    fn token_fields_match_the_runtime_names() {
        assert_eq!(kind_of("openai-iflow").and_then(|k| k.token_path_field), Some("IFLOW_TOKEN_FILE_PATH"));
        assert_eq!(refresh_field("claude-kiro-oauth"), "refreshToken");
        assert_eq!(refresh_field("openai-codex-oauth"), "refresh_token");
        let tok = serde_json::json!({"refresh_token": "r1"});
        assert_eq!(refresh_token_of("claude-kiro-oauth", &tok), Some("r1"));
        assert_eq!(kiro_index_hash("abc").len(), 32);
    }
}
