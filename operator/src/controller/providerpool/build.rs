//! Build (pure): the store's [`AccountSpec`]s (spec-owned fields only) and the token decisions
//! for a validated pool.

use std::collections::{BTreeMap, BTreeSet};

use poolgate_store::{Account, AccountSpec};
use serde_json::{Map, Value};

use super::validate::{setting_field, Credential, RedisTarget, ValidAccount, ValidPool, SETTINGS};

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
    OWNER_FIELD,
];

/// The account field naming the ProviderPool (`<namespace>/<name>`) that created the account. A
/// pool prunes only accounts that carry its own mark; others (migrated, retained by a deleted
/// pool) are left alone unless the pool takes them over explicitly.
pub const OWNER_FIELD: &str = "poolgateOwner";

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
    f.insert(OWNER_FIELD.into(), Value::from(pool.owner.clone()));
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

/// Which accounts of the pool (as Redis holds it) that are not in the spec may be deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prune {
    /// Accounts this pool created: deleted with their tokens.
    pub delete: Vec<String>,
    /// Accounts of another owner (a deleted pool's retained accounts, migrated ones): left alone.
    pub foreign: Vec<String>,
}

/// The ownership rule. An account is this pool's when it carries the pool's mark
/// ([`OWNER_FIELD`]), or carries no mark and was listed in the pool's own status (accounts the
/// pool created before marks existed). With `take_over` (an explicit annotation) every account of
/// the type is the pool's.
pub fn prune(
    owner: &str,
    keep: &BTreeSet<&str>,
    listed: &BTreeSet<String>,
    redis: &[Account],
    take_over: bool,
) -> Prune {
    let mut out = Prune::default();
    for a in redis.iter().filter(|a| !keep.contains(a.uuid())) {
        let mark = a.get(OWNER_FIELD).and_then(Value::as_str);
        let ours = match mark {
            Some(m) => m == owner,
            None => listed.contains(a.uuid()),
        };
        if ours || take_over {
            out.delete.push(a.uuid().to_string());
        } else {
            out.foreign.push(a.uuid().to_string());
        }
    }
    out
}

/// Uuids a pool's status lists (the accounts it applied).
pub fn listed_uuids(status: Option<&poolgate_crds::ProviderPoolStatus>) -> BTreeSet<String> {
    status.map(|s| s.accounts.iter().map(|a| a.uuid.clone()).collect()).unwrap_or_default()
}

/// Hash of everything a pool writes: account fields, fields to remove, token hashes, the Redis it
/// writes to and whether it takes the type over. Recorded in status once applied.
pub fn plan_hash(plan: &PoolPlan, target: &RedisTarget, take_over: bool) -> String {
    let mut entries: Vec<(String, Vec<u8>)> = plan
        .accounts
        .iter()
        .map(|a| {
            let token = a.token.as_ref().map(|(_, h)| h.as_str()).unwrap_or_default();
            let body = serde_json::json!({"fields": a.spec.fields, "remove": a.spec.remove, "token": token});
            (format!("account\u{0}{}\u{0}{}", a.uuid, a.name), body.to_string().into_bytes())
        })
        .collect();
    entries.push(("\u{0}redis".into(), crate::hash::short_hash(target.url.as_bytes()).into_bytes()));
    entries.push(("\u{0}prefix".into(), target.prefix.clone().into_bytes()));
    entries.push(("\u{0}takeOver".into(), vec![u8::from(take_over)]));
    crate::hash::map_hash(entries.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
}

/// Whether the plan must be written to Redis: it changed since it was last applied, an account of
/// the plan is missing from Redis, there is something to prune, or a token was never seeded.
pub fn needs_apply(
    applied_hash: Option<&str>,
    hash: &str,
    plan: &PoolPlan,
    redis: &[Account],
    prune: &Prune,
    seeded: &BTreeMap<String, String>,
) -> bool {
    let present: BTreeSet<&str> = redis.iter().map(Account::uuid).collect();
    applied_hash != Some(hash)
        || plan.accounts.iter().any(|a| !present.contains(a.uuid.as_str()))
        || !prune.delete.is_empty()
        || plan.accounts.iter().any(|a| a.token.is_some() && !seeded.contains_key(&a.name))
}
