//! `ClientConfig`: one gateway instance — where its Redis is, its client API key and admin
//! password (from Secrets), the gateway settings the proxies read from `{prefix}config`, and an
//! optional one-time migration from the reference implementation's files.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Condition, KeyToPath, LocalObjectRef, SecretKeyRef};

/// Default Redis key prefix, shared with the reference implementation.
pub const DEFAULT_KEY_PREFIX: &str = "aiclient:";

/// Desired state of one poolgate gateway instance.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "poolgate.dev",
    version = "v1alpha1",
    kind = "ClientConfig",
    plural = "clientconfigs",
    namespaced,
    status = "ClientConfigStatus",
    shortname = "pgcc",
    shortname = "clientcfg",
    category = "poolgate",
    printcolumn(name = "Prefix", type_ = "string", json_path = ".spec.redis.keyPrefix"),
    printcolumn(
        name = "Redis",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"RedisReachable\")].status"
    ),
    printcolumn(name = "Migrated", type_ = "string", json_path = ".status.conditions[?(@.type==\"Migrated\")].reason"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct ClientConfigSpec {
    /// The Redis all proxies of this gateway share.
    pub redis: RedisSpec,
    /// Secret key holding the client API key (`REQUIRED_API_KEY`) clients must present.
    pub api_key_secret_ref: SecretKeyRef,
    /// Secret key holding the web UI admin password (`{prefix}pwd`). When absent the stored
    /// password is left as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_password_secret_ref: Option<SecretKeyRef>,
    /// Gateway settings written into `{prefix}config` (fields not set here are left as stored).
    #[serde(default)]
    pub gateway: GatewaySettings,
    /// One-time import of the reference implementation's files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<MigrationSpec>,
    /// What happens to the Redis data when this resource is deleted.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Client keys (besides the main API key) with their limits; each key's text comes from a
    /// Secret and is stored in Redis only as its SHA-256. The operator owns these keys' settings
    /// (never their usage counters) and removes keys it declared once they leave this list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(k, self.exists_one(j, j.name == k.name))").message("client key names must be unique"))]
    pub client_keys: Vec<ClientKeySpec>,
}

/// One client key and its limits (unset limits are unlimited).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientKeySpec {
    /// Shown in lists and usage statistics.
    pub name: String,
    /// Secret key holding the key's text.
    pub key_secret_ref: SecretKeyRef,
    /// Refused with 403 when false.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Requests per day (the day of `timezoneOffsetMinutes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_limit: Option<i64>,
    /// Requests over the key's life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_limit: Option<i64>,
    /// Requests per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm_limit: Option<i64>,
    /// Tokens per minute (counted after each answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm_limit: Option<i64>,
    /// Allowed models (empty: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// Allowed provider types (empty: all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<String>,
    /// RFC 3339 time after which the key is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Extra requests beyond the daily limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bonus: Option<i64>,
    /// The day boundary's offset from UTC in minutes (Beijing: 480).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone_offset_minutes: Option<i32>,
}

fn default_true() -> bool {
    true
}

/// How to reach Redis.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RedisSpec {
    /// Secret key holding the Redis URL (`redis://[:password@]host:port/db`).
    pub url_secret_ref: SecretKeyRef,
    /// Prefix of every key of this gateway. Immutable: changing it would orphan all data.
    #[serde(default = "default_prefix")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("keyPrefix is immutable"))]
    #[x_kube(validation = Rule::new("self.size() > 0").message("keyPrefix must not be empty"))]
    pub key_prefix: String,
}

fn default_prefix() -> String {
    DEFAULT_KEY_PREFIX.into()
}

/// The reference's config.json settings the operator manages. Each maps to the config field
/// named in its description; unset fields keep their stored value.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySettings {
    /// `MODEL_PROVIDER`: the default provider type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_provider: Option<String>,
    /// `DEFAULT_MODEL_PROVIDERS`: provider types initialised at startup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_model_providers: Option<Vec<String>>,
    /// `providerFallbackChain`: provider type -> types to fall back to, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_fallback_chain: Option<BTreeMap<String, Vec<String>>>,
    /// `modelFallbackMapping`: model -> the provider type and model to use instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_fallback_mapping: Option<BTreeMap<String, ModelFallback>>,
    /// `REQUEST_MAX_RETRIES`: retries of one upstream request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub request_max_retries: Option<u32>,
    /// `REQUEST_BASE_DELAY`: base retry delay in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_base_delay_ms: Option<u64>,
    /// `CREDENTIAL_SWITCH_MAX_RETRIES`: accounts tried for one request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_switch_max_retries: Option<u32>,
    /// `MAX_ERROR_COUNT`: errors after which an account is marked unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_error_count: Option<u32>,
    /// `CRON_REFRESH_TOKEN`: refresh OAuth tokens on a schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron_refresh_token: Option<bool>,
    /// `CRON_NEAR_MINUTES`: refresh tokens expiring within this many minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron_near_minutes: Option<u32>,
    /// `REFRESH_TOKENS_AT_STARTUP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_tokens_at_startup: Option<bool>,
    /// `SYSTEM_PROMPT_MODE`: `append` or `overwrite`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["append", "overwrite"]))]
    pub system_prompt_mode: Option<String>,
    /// `PROMPT_LOG_MODE`: `none`, `file` or `console`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["none", "file", "console"]))]
    pub prompt_log_mode: Option<String>,
    /// `PROXY_URL`: outbound HTTP proxy for the providers in `proxyEnabledProviders`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_url: Option<String>,
    /// `PROXY_ENABLED_PROVIDERS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_enabled_providers: Option<Vec<String>>,
    /// `{prefix}plugins`: plugin name -> enabled and description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugins: Option<BTreeMap<String, PluginSetting>>,
}

/// One entry of `modelFallbackMapping`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ModelFallback {
    pub target_provider_type: String,
    pub target_model: String,
}

/// One plugin's settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginSetting {
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Where the reference's files come from and when to import them.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MigrationSpec {
    pub source: MigrationSource,
    /// `IfEmpty` (default): import once, when Redis holds nothing under the prefix. `Never`: do not import.
    #[serde(default)]
    pub policy: MigrationPolicy,
}

/// A ConfigMap or a Secret (exactly one) whose keys are the files of the reference's `configs/`
/// directory (`config.json`, `provider_pools.json`, `pwd`, `plugins.json`, token files, ...).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.configMapRef) != has(self.secretRef)").message("set exactly one of configMapRef and secretRef"))]
pub struct MigrationSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<LocalObjectRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectRef>,
    /// Where keys go under `configs/`. Without an entry, a key that a credential path in
    /// `provider_pools.json` ends with goes to that path, and every other key to `configs/<key>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["key".into()]))]
    pub items: Vec<KeyToPath>,
}

/// When the migration Job runs.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum MigrationPolicy {
    #[default]
    IfEmpty,
    Never,
}

/// What deleting the resource does to Redis.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Leave the data in Redis.
    #[default]
    Retain,
    /// Remove exactly what the resource owns.
    Delete,
}

/// Observed state of a gateway instance.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClientConfigStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `RedisReachable`, `Initialized`, `Migrated` (with a migration source), `Synced`.
    #[serde(default)]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// Redis URL with the password masked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    /// The outcome of the migration, if one ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<MigrationStatus>,
    /// The init Job that seeded Redis, once it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_job: Option<LocalObjectRef>,
    /// The Secret (owned by this ClientConfig, key `password`) holding the web UI password the
    /// operator generated for the init Job because the spec names no `adminPasswordSecretRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated_password_secret: Option<LocalObjectRef>,
    /// When the config, key and password were last written (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_synced: Option<String>,
}

/// What a migration Job did for one version of the source.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationStatus {
    /// SHA-256 (hex, 16 chars) of the source's content the Job ran for.
    pub source_hash: String,
    pub job_name: String,
    /// `Running`, `Succeeded`, `Failed` or `Skipped`.
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    #[serde(default)]
    pub message: String,
}
