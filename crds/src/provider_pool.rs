//! `ProviderPool`: the accounts of one provider type of one gateway. The operator owns the spec
//! fields of these accounts in Redis; the proxies own their runtime state, which the status shows.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Condition, LocalObjectRef};

/// Desired accounts of one provider type.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "poolgate.dev",
    version = "v1alpha1",
    kind = "ProviderPool",
    plural = "providerpools",
    namespaced,
    status = "ProviderPoolStatus",
    shortname = "pgpool",
    shortname = "pp",
    category = "poolgate",
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.providerType"),
    printcolumn(name = "Accounts", type_ = "integer", json_path = ".status.totalAccounts"),
    printcolumn(name = "Healthy", type_ = "integer", json_path = ".status.healthyAccounts"),
    printcolumn(name = "Usage", type_ = "integer", json_path = ".status.totalUsage"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct ProviderPoolSpec {
    /// The `ClientConfig` (same namespace) whose Redis holds this pool.
    pub client_config_ref: LocalObjectRef,
    /// Pool type, e.g. `openai-custom`, `claude-kiro-oauth` or a suffixed `openai-custom-eu`. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("providerType is immutable"))]
    #[x_kube(validation = Rule::new("self.size() > 0").message("providerType must not be empty"))]
    pub provider_type: String,
    /// The accounts, keyed by `name`.
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    #[x_kube(validation = Rule::new("self.all(a, self.exists_one(b, b.name == a.name))").message("account names must be unique"))]
    pub accounts: Vec<PoolAccount>,
}

/// One provider account.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PoolAccount {
    /// Stable name, unique in the pool (a DNS label).
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: String,
    /// The account's uuid in Redis. Default: derived from the resource's UID and `name`.
    /// Set it to adopt an account that already exists (e.g. migrated). Immutable once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// `customName` shown in the UI and logs. Default: `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// `isDisabled`: the proxies skip a disabled account.
    #[serde(default)]
    pub disabled: bool,
    /// `checkHealth`: include the account in periodic health checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_health: Option<bool>,
    /// `checkModelName`: model used by health checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_model: Option<String>,
    /// `supportedModels`: when set, only these models are routed to the account.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub supported_models: Vec<String>,
    /// `notSupportedModels`: models never routed to the account.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_supported_models: Vec<String>,
    /// `concurrencyLimit`: requests in flight at once (0 or absent: unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_limit: Option<u32>,
    /// `queueLimit`: requests waiting for a slot beyond the concurrency limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_limit: Option<u32>,
    /// Non-secret provider settings.
    #[serde(default)]
    pub settings: ProviderSettings,
    /// The account's credentials: an API key (API-key types) or the provider-native OAuth token
    /// JSON (OAuth types).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<CredentialsRef>,
}

/// Non-secret settings; each is valid only for the provider types that use it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderSettings {
    /// `OPENAI_BASE_URL` / `CLAUDE_BASE_URL` / `FORWARD_BASE_URL` / `IFLOW_BASE_URL`: an
    /// `http://` or `https://` URL with a host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://[^/?#\s@]+([/?#]\S*)?$"))]
    pub base_url: Option<String>,
    /// `PROJECT_ID` (Gemini types).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// `region` (Kiro).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// `profileArn` (Kiro).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_arn: Option<String>,
    /// `CODEX_EMAIL` (Codex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Other provider-specific fields, written as given (no runtime or credential fields).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
}

/// A key of a Secret in the pool's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsRef {
    pub name: String,
    /// Key in the Secret. Default: `apiKey` for API-key types, `token.json` for OAuth types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Observed state of the pool: runtime state read from Redis.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProviderPoolStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `RedisReachable`, `Synced`.
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// One entry per account of the spec.
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub accounts: Vec<AccountStatus>,
    #[serde(default)]
    pub total_accounts: i64,
    #[serde(default)]
    pub healthy_accounts: i64,
    #[serde(default)]
    pub total_usage: i64,
    #[serde(default)]
    pub total_errors: i64,
    /// Hash of the writes last applied to Redis (accounts, fields, token hashes, target); a
    /// refresh with the same hash only reads runtime state, it writes nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_hash: Option<String>,
    /// When runtime state was last read from Redis (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refreshed: Option<String>,
}

/// Runtime state of one account, as the proxies recorded it in Redis.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountStatus {
    pub name: String,
    pub uuid: String,
    /// False until the account exists in Redis.
    #[serde(default)]
    pub present: bool,
    #[serde(default)]
    pub healthy: bool,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default)]
    pub usage_count: i64,
    #[serde(default)]
    pub error_count: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default)]
    pub needs_refresh: bool,
    /// SHA-256 (hex, 16 chars) of the OAuth token Secret content last seeded into Redis; the
    /// operator re-seeds only when the Secret's content changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seeded_token_hash: Option<String>,
}
