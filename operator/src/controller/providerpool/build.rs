//! Build (pure): the store's [`AccountSpec`]s (spec-owned fields only) and the token decisions
//! for a validated pool.

use std::collections::BTreeMap;

use poolgate_store::AccountSpec;
use serde_json::{Map, Value};

use super::validate::{setting_field, Credential, ValidAccount, ValidPool, SETTINGS};

/// Fields the typed spec owns; one the spec no longer sets is removed from the account.
pub const OWNED_FIELDS: &[&str] = &[
    "customName",
    "isDisabled",
    "checkHealth",
    "checkModelName",
    "supportedModels",
    "notSupportedModels",
    "concurrencyLimit",
    "queueLimit",
];

/// What to do with an account's OAuth token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenAction {
    /// Write the Secret's token. `expected_refresh`: the refresh token Redis held when deciding
    /// (compare-and-set against it; `None` when Redis held no token).
    Seed { expected_refresh: Option<String> },
    /// Leave Redis as it is.
    Keep,
}

/// The never-overwrite-a-newer-token rule. Redis is the source of truth once seeded: the proxies
/// rotate tokens there, so the Secret is written only when Redis has none, or when the Secret's
/// content changed since it was last seeded (a person put a new token there on purpose).
pub fn token_action(
    pool_type: &str,
    secret_token: &Value,
    secret_hash: &str,
    seeded_hash: Option<&str>,
    redis_token: Option<&Value>,
) -> (TokenAction, &'static str) {
    let Some(current) = redis_token else {
        return (TokenAction::Seed { expected_refresh: None }, "Redis holds no token");
    };
    if seeded_hash == Some(secret_hash) {
        return (TokenAction::Keep, "Secret unchanged since it was seeded; Redis may hold a newer rotation");
    }
    let secret_rt = poolgate_store::provider::refresh_token_of(pool_type, secret_token);
    let redis_rt = poolgate_store::provider::refresh_token_of(pool_type, current);
    if secret_rt.is_some() && secret_rt == redis_rt {
        return (TokenAction::Keep, "Redis already holds this token (same refresh token)");
    }
    match seeded_hash {
        None => (TokenAction::Keep, "Redis already holds a token the operator did not seed; it is kept"),
        Some(_) => (
            TokenAction::Seed { expected_refresh: Some(redis_rt.unwrap_or_default().to_string()) },
            "the Secret's token changed",
        ),
    }
}

/// One account's writes.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountPlan {
    pub name: String,
    pub uuid: String,
    pub spec: AccountSpec,
    /// The token to seed (with its Secret hash), if the account has an OAuth credential.
    pub token: Option<(Value, String)>,
}

/// The pool's writes.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolPlan {
    pub accounts: Vec<AccountPlan>,
}

impl PoolPlan {
    pub fn specs(&self) -> Vec<AccountSpec> {
        self.accounts.iter().map(|a| a.spec.clone()).collect()
    }
}

/// The spec-owned fields of one account, and the owned fields to remove.
pub fn account_fields(pool: &ValidPool, a: &ValidAccount) -> (Map<String, Value>, Vec<String>) {
    let s = &a.spec;
    let mut f = Map::new();
    f.insert("customName".into(), Value::from(s.display_name.clone().unwrap_or_else(|| s.name.clone())));
    f.insert("isDisabled".into(), Value::from(s.disabled));
    if let Some(v) = s.check_health {
        f.insert("checkHealth".into(), Value::from(v));
    }
    if let Some(v) = &s.check_model {
        f.insert("checkModelName".into(), Value::from(v.clone()));
    }
    if !s.supported_models.is_empty() {
        f.insert("supportedModels".into(), Value::from(s.supported_models.clone()));
    }
    if !s.not_supported_models.is_empty() {
        f.insert("notSupportedModels".into(), Value::from(s.not_supported_models.clone()));
    }
    if let Some(v) = s.concurrency_limit {
        f.insert("concurrencyLimit".into(), Value::from(v));
    }
    if let Some(v) = s.queue_limit {
        f.insert("queueLimit".into(), Value::from(v));
    }
    let settings = [
        ("baseUrl", &s.settings.base_url),
        ("projectId", &s.settings.project_id),
        ("region", &s.settings.region),
        ("profileArn", &s.settings.profile_arn),
        ("email", &s.settings.email),
    ];
    for (name, value) in settings {
        if let (Some(field), Some(v)) = (setting_field(pool.kind, name), value) {
            f.insert(field.into(), Value::from(v.clone()));
        }
    }
    for (k, v) in &s.settings.extra {
        f.insert(k.clone(), Value::from(v.clone()));
    }
    if let Some(Credential::ApiKey { field, value }) = &a.credential {
        f.insert((*field).into(), Value::from(value.clone()));
    }
    let mut owned: Vec<&str> = OWNED_FIELDS.to_vec();
    owned.extend(SETTINGS.iter().filter_map(|n| setting_field(pool.kind, n)));
    let remove = owned.into_iter().filter(|k| !f.contains_key(*k)).map(str::to_string).collect();
    (f, remove)
}

/// Builds the pool's writes.
pub fn build(pool: &ValidPool) -> PoolPlan {
    let accounts = pool
        .accounts
        .iter()
        .map(|a| {
            let (fields, remove) = account_fields(pool, a);
            let token = match &a.credential {
                Some(Credential::Token { json, hash }) => Some((json.clone(), hash.clone())),
                _ => None,
            };
            AccountPlan {
                name: a.spec.name.clone(),
                uuid: a.uuid.clone(),
                spec: AccountSpec { uuid: a.uuid.clone(), fields, remove },
                token,
            }
        })
        .collect();
    PoolPlan { accounts }
}

/// Token hashes recorded in status, by account name.
pub fn seeded_hashes(status: Option<&poolgate_crds::ProviderPoolStatus>) -> BTreeMap<String, String> {
    status
        .map(|s| s.accounts.iter().filter_map(|a| a.seeded_token_hash.clone().map(|h| (a.name.clone(), h))).collect())
        .unwrap_or_default()
}
