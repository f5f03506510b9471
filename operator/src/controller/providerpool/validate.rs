//! Validation (pure): the spec and its dereferenced inputs become a [`ValidPool`] or an
//! [`Invalid`] with a condition reason and a message a person can act on.

use std::collections::BTreeSet;

use poolgate_crds::{ClientConfig, DeletionPolicy, PoolAccount, ProviderPool};
use poolgate_store::provider::{self, ProviderKind};
use serde_json::Value;

use super::dereference::PoolRefs;
use crate::secrets::{SecretError, SecretSet};

/// Namespace of the name-based (v5) uuids of accounts without an explicit uuid.
pub const UUID_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x7c3e_2a4d_91f0_4b8e_a6d5_3f1c_0b9e_5d27);

/// The uuid of an account: the spec's, or derived from the resource's UID and the account name.
pub fn account_uuid(resource_uid: &str, account: &PoolAccount) -> String {
    match &account.uuid {
        Some(u) => u.clone(),
        None => uuid::Uuid::new_v5(&UUID_NAMESPACE, format!("{resource_uid}/{}", account.name).as_bytes()).to_string(),
    }
}

/// Where the pool lives. `Debug` masks the URL's password.
#[derive(Clone, PartialEq)]
pub struct RedisTarget {
    pub url: String,
    pub prefix: String,
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTarget")
            .field("url", &poolgate_store::settings::redact_url(&self.url))
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// A credential resolved from its Secret.
#[derive(Clone, PartialEq)]
pub enum Credential {
    /// An API key, written into the account's key field.
    ApiKey { field: &'static str, value: String },
    /// A provider-native OAuth token JSON and the hash of the Secret value it came from.
    Token { json: Value, hash: String },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ApiKey { field, .. } => write!(f, "ApiKey({field}: ***)"),
            Self::Token { hash, .. } => write!(f, "Token(hash {hash})"),
        }
    }
}

/// One account, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidAccount {
    pub spec: PoolAccount,
    pub uuid: String,
    pub credential: Option<Credential>,
}

/// A pool ready to be built.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidPool {
    pub provider_type: String,
    /// `<namespace>/<name>` of the pool, recorded on each of its accounts in Redis.
    pub owner: String,
    pub kind: &'static ProviderKind,
    pub redis: RedisTarget,
    pub deletion_policy: DeletionPolicy,
    pub accounts: Vec<ValidAccount>,
}

/// Why the pool cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Condition reason (PascalCase).
    pub reason: &'static str,
    pub message: String,
}

impl Invalid {
    fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self { reason, message: message.into() }
    }
}

/// The API-key field of each API-key provider type.
pub fn api_key_field(kind: &ProviderKind) -> Option<&'static str> {
    match kind.base {
        "openai-custom" | "openaiResponses-custom" => Some("OPENAI_API_KEY"),
        "claude-custom" => Some("CLAUDE_API_KEY"),
        "forward-api" => Some("FORWARD_API_KEY"),
        _ => None,
    }
}

/// The account field a typed setting is written to, per provider type (`None`: not a setting
/// of this type).
pub fn setting_field(kind: &ProviderKind, setting: &str) -> Option<&'static str> {
    match (setting, kind.base) {
        ("baseUrl", "openai-custom" | "openaiResponses-custom") => Some("OPENAI_BASE_URL"),
        ("baseUrl", "claude-custom") => Some("CLAUDE_BASE_URL"),
        ("baseUrl", "forward-api") => Some("FORWARD_BASE_URL"),
        ("baseUrl", "openai-iflow") => Some("IFLOW_BASE_URL"),
        ("projectId", "gemini-cli-oauth" | "gemini-antigravity") => Some("PROJECT_ID"),
        ("region", "claude-kiro-oauth") => Some("region"),
        ("profileArn", "claude-kiro-oauth") => Some("profileArn"),
        ("email", "openai-codex-oauth") => Some("CODEX_EMAIL"),
        _ => None,
    }
}

/// Every typed setting name.
pub const SETTINGS: &[&str] = &["baseUrl", "projectId", "region", "profileArn", "email"];

/// Fields an `extra` setting may not name: runtime state, identity, credentials and fields the
/// typed spec owns.
fn reserved_extra(kind: &ProviderKind, field: &str) -> bool {
    poolgate_store::account::is_runtime_field(field)
        || super::build::OWNED_FIELDS.contains(&field)
        || field == "uuid"
        || Some(field) == api_key_field(kind)
        || Some(field) == kind.token_path_field
        || field.ends_with("_API_KEY")
        || SETTINGS.iter().any(|s| setting_field(kind, s) == Some(field))
}

/// The Secret key a credentials reference reads.
pub fn credentials_key(kind: &ProviderKind, r: &poolgate_crds::CredentialsRef) -> String {
    r.key.clone().unwrap_or_else(|| if kind.token_path_field.is_some() { "token.json" } else { "apiKey" }.into())
}

/// The Redis a ClientConfig names, validated the same way wherever it is used (apply, status and
/// cleanup of both resources): the Secret key resolved, and its value a `redis://` or `rediss://`
/// URL that parses. Messages name the Secret and key, never the value.
pub fn redis_target(cc: &ClientConfig, secrets: &SecretSet, what: &str) -> Result<RedisTarget, Invalid> {
    let r = &cc.spec.redis.url_secret_ref;
    let url = secrets.text(&r.name, &r.key).map_err(|e| secret_invalid(what, &e))?;
    let scheme_ok = url.starts_with("redis://") || url.starts_with("rediss://");
    if !scheme_ok || poolgate_store::settings::redact_url(&url) == poolgate_store::settings::UNPARSEABLE_URL {
        return Err(Invalid::new(
            "InvalidRedisUrl",
            format!(
                "{what}: Secret {:?} key {:?} is not a redis:// or rediss:// URL (the value is not shown)",
                r.name, r.key
            ),
        ));
    }
    Ok(RedisTarget { url, prefix: cc.spec.redis.key_prefix.clone() })
}

/// Whether `url` is an `http://` or `https://` URL with a host (and no credentials: this field is
/// not secret).
pub fn is_http_url(url: &str) -> bool {
    match url::Url::parse(url) {
        Ok(u) => {
            matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some_and(|h| !h.is_empty())
                && !url.chars().any(char::is_whitespace)
                && url.split_once("://").is_some_and(|(_, rest)| !rest.starts_with('/'))
                && u.username().is_empty()
                && u.password().is_none()
                // The request path is appended to the base: a query or fragment cannot work.
                && u.query().is_none()
                && u.fragment().is_none()
        }
        Err(_) => false,
    }
}

/// The ClientConfig a pool refers to, if it is usable.
fn client_config<'a>(pool: &ProviderPool, refs: &'a PoolRefs) -> Result<&'a ClientConfig, Invalid> {
    let name = &pool.spec.client_config_ref.name;
    let cc = refs.client_config.as_ref().ok_or_else(|| {
        Invalid::new(
            "ClientConfigNotFound",
            format!("ClientConfig {name:?} not found in this namespace; create it or fix spec.clientConfigRef"),
        )
    })?;
    if cc.metadata.deletion_timestamp.is_some() {
        return Err(Invalid::new("ClientConfigDeleting", format!("ClientConfig {name:?} is being deleted")));
    }
    // A pool writes into the Redis its ClientConfig initialises or migrates into: writing first
    // would make that Redis non-empty (the migration would be skipped, or fail its verify).
    let ready = cc.status.as_ref().and_then(|s| poolgate_crds::common::find(&s.conditions, "Ready"));
    match ready {
        Some(c) if c.is_true() => Ok(cc),
        Some(c) => Err(Invalid::new(
            "WaitingForClientConfig",
            format!(
                "ClientConfig {name:?} is not Ready ({}); the pool is applied once its init or migration has finished",
                c.reason
            ),
        )),
        None => Err(Invalid::new(
            "WaitingForClientConfig",
            format!("ClientConfig {name:?} has not reported Ready yet; the pool is applied once its init or migration has finished"),
        )),
    }
}

/// Validates the pool against its inputs.
pub fn validate(pool: &ProviderPool, refs: &PoolRefs) -> Result<ValidPool, Invalid> {
    let cc = client_config(pool, refs)?;
    let provider_type = pool.spec.provider_type.clone();
    if let Some(other) = &refs.older_sibling {
        return Err(Invalid::new(
            "DuplicateProviderType",
            format!(
                "ProviderPool {other:?} already manages providerType {provider_type:?} of ClientConfig {:?}; \
                 keep one ProviderPool per type (or use a suffixed type such as {provider_type}-2)",
                cc.metadata.name.as_deref().unwrap_or_default()
            ),
        ));
    }
    let kind = provider::kind_of(&provider_type).ok_or_else(|| {
        let known: Vec<&str> = provider::known_types().collect();
        Invalid::new(
            "UnknownProviderType",
            format!("providerType {provider_type:?} is not one of {known:?} (optionally with a -suffix)"),
        )
    })?;
    let redis = redis_target(cc, &refs.secrets, "ClientConfig spec.redis.urlSecretRef")?;
    let uid = pool.metadata.uid.clone().unwrap_or_default();

    let mut names = BTreeSet::new();
    let mut uuids = BTreeSet::new();
    let mut accounts = Vec::with_capacity(pool.spec.accounts.len());
    for a in &pool.spec.accounts {
        let at = format!("account {:?}", a.name);
        if !names.insert(a.name.as_str()) {
            return Err(Invalid::new("InvalidSpec", format!("{at} appears twice; account names must be unique")));
        }
        if !is_dns_label(&a.name) {
            return Err(Invalid::new("InvalidSpec", format!("{at}: name must be a DNS label (a-z, 0-9, '-')")));
        }
        if let Some(u) = &a.uuid {
            if uuid::Uuid::parse_str(u).is_err() {
                return Err(Invalid::new("InvalidSpec", format!("{at}: uuid {u:?} is not a UUID")));
            }
        }
        let uuid = account_uuid(&uid, a);
        if !uuids.insert(uuid.clone()) {
            return Err(Invalid::new("InvalidSpec", format!("{at}: uuid {uuid} is used by another account")));
        }
        for (setting, set) in [
            ("baseUrl", a.settings.base_url.is_some()),
            ("projectId", a.settings.project_id.is_some()),
            ("region", a.settings.region.is_some()),
            ("profileArn", a.settings.profile_arn.is_some()),
            ("email", a.settings.email.is_some()),
        ] {
            if set && setting_field(kind, setting).is_none() {
                return Err(Invalid::new(
                    "InvalidSpec",
                    format!("{at}: settings.{setting} is not a setting of provider type {}", kind.base),
                ));
            }
        }
        if a.settings.base_url.as_deref().is_some_and(|u| !is_http_url(u)) {
            return Err(Invalid::new(
                "InvalidSpec",
                format!("{at}: settings.baseUrl must be an http:// or https:// URL with a host (no user info, query string or fragment; put keys in the credentials Secret)"),
            ));
        }
        if let Some(f) = a.settings.extra.keys().find(|f| reserved_extra(kind, f)) {
            return Err(Invalid::new(
                "InvalidSpec",
                format!("{at}: settings.extra.{f} is reserved (runtime state, identity, credentials or a typed field)"),
            ));
        }
        let credential = match (&a.credentials_secret_ref, kind.token_path_field, api_key_field(kind)) {
            (None, None, Some(_)) => {
                return Err(Invalid::new(
                    "CredentialsMissing",
                    format!("{at}: provider type {} needs an API key; set credentialsSecretRef", kind.base),
                ))
            }
            (None, _, _) => None,
            (Some(r), Some(_), _) => {
                let key = credentials_key(kind, r);
                let json = refs.secrets.json_object(&r.name, &key).map_err(|e| secret_invalid(&at, &e))?;
                let raw = refs.secrets.bytes(&r.name, &key).map_err(|e| secret_invalid(&at, &e))?;
                Some(Credential::Token { json, hash: crate::hash::short_hash(raw) })
            }
            (Some(r), None, Some(field)) => {
                let value =
                    refs.secrets.text(&r.name, &credentials_key(kind, r)).map_err(|e| secret_invalid(&at, &e))?;
                Some(Credential::ApiKey { field, value })
            }
            (Some(_), None, None) => None,
        };
        accounts.push(ValidAccount { spec: a.clone(), uuid, credential });
    }
    Ok(ValidPool {
        provider_type,
        owner: owner_of(pool),
        kind,
        redis,
        deletion_policy: cc.spec.deletion_policy,
        accounts,
    })
}

/// The owner mark of a pool's accounts: `<namespace>/<name>`.
pub fn owner_of(pool: &ProviderPool) -> String {
    use kube::ResourceExt;
    format!("{}/{}", pool.namespace().unwrap_or_default(), pool.name_any())
}

fn secret_invalid(at: &str, e: &SecretError) -> Invalid {
    Invalid::new(e.reason(), format!("{at}: {e}"))
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

#[cfg(test)]
mod url_tests {
    use super::is_http_url;

    #[test]
    fn base_urls_take_no_credentials_query_or_fragment() {
        assert!(is_http_url("https://api.example.com/v1"));
        assert!(!is_http_url("https://api.example.com/v1?api-key=secret"));
        assert!(!is_http_url("https://api.example.com/v1#x"));
        assert!(!is_http_url("https://user:pw@api.example.com/v1"));
        assert!(!is_http_url("ftp://api.example.com"));
    }
}
