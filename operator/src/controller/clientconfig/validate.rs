//! Validation (pure): Secrets resolved, the migration source laid out as the reference's
//! directory tree, and its content hash.

use std::collections::BTreeMap;

use poolgate_crds::{ClientConfig, DeletionPolicy, MigrationPolicy};
use serde_json::Value;

use super::dereference::{CcRefs, SourceData};
use crate::controller::providerpool::validate::{Invalid as PoolInvalid, RedisTarget};
use crate::jobs::SourceVolume;

/// A validated migration source.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidSource {
    pub volume: SourceVolume,
    /// Hash of the content and layout; names the Job and is recorded in status.
    pub hash: String,
    pub policy: MigrationPolicy,
}

/// A ClientConfig ready to be planned. `Debug` shows no secret.
#[derive(Clone, PartialEq)]
pub struct ValidCc {
    pub redis: RedisTarget,
    pub api_key: String,
    pub password: Option<String>,
    pub source: Option<ValidSource>,
    pub deletion_policy: DeletionPolicy,
    /// Declared client keys as (SHA-256 of the key, settings); the key text is not kept.
    pub client_keys: Vec<(String, poolgate_store::ClientKey)>,
}

impl std::fmt::Debug for ValidCc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValidCc")
            .field("redis", &self.redis)
            .field("source", &self.source)
            .field("deletion_policy", &self.deletion_policy)
            .finish_non_exhaustive()
    }
}

/// Why the ClientConfig cannot be applied (reason and message).
pub type Invalid = PoolInvalid;

fn invalid(reason: &'static str, message: impl Into<String>) -> Invalid {
    Invalid { reason, message: message.into() }
}

/// Validates the ClientConfig against its inputs.
pub fn validate(cc: &ClientConfig, refs: &CcRefs) -> Result<ValidCc, Invalid> {
    let s = &cc.spec;
    if s.redis.key_prefix.is_empty() {
        return Err(invalid("InvalidSpec", "spec.redis.keyPrefix must not be empty"));
    }
    let text = |what: &str, r: &poolgate_crds::SecretKeyRef| {
        refs.secrets.text(&r.name, &r.key).map_err(|e| invalid(e.reason(), format!("{what}: {e}")))
    };
    let redis = crate::controller::providerpool::validate::redis_target(cc, &refs.secrets, "spec.redis.urlSecretRef")?;
    let api_key = text("spec.apiKeySecretRef", &s.api_key_secret_ref)?;
    let password = s.admin_password_secret_ref.as_ref().map(|r| text("spec.adminPasswordSecretRef", r)).transpose()?;
    let source = match (&s.migration, &refs.source) {
        (None, _) => None,
        (Some(m), _) if m.policy == MigrationPolicy::Never => None,
        (Some(m), found) => {
            let (secret, name) = match (&m.source.config_map_ref, &m.source.secret_ref) {
                (Some(r), None) => (false, r.name.clone()),
                (None, Some(r)) => (true, r.name.clone()),
                _ => {
                    return Err(invalid(
                        "InvalidSpec",
                        "spec.migration.source: set exactly one of configMapRef and secretRef",
                    ))
                }
            };
            let kind = if secret { "Secret" } else { "ConfigMap" };
            let data = match found {
                Some(Some(d)) => d,
                _ => {
                    return Err(invalid(
                        "MigrationSourceNotFound",
                        format!("spec.migration.source: {kind} {name:?} not found in this namespace; create it or set policy Never"),
                    ))
                }
            };
            let explicit: Vec<(String, String)> =
                m.source.items.iter().map(|i| (i.key.clone(), i.path.clone())).collect();
            let items = layout(data, &explicit)
                .map_err(|e| invalid("InvalidMigrationSource", format!("{kind} {name:?}: {e}")))?;
            let layout_text: String = items.iter().map(|(k, p)| format!("{k}\u{0}{p}\u{0}")).collect();
            let mut entries: Vec<(&str, &[u8])> = data.0.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
            entries.push(("\u{0}layout", layout_text.as_bytes()));
            let hash = crate::hash::map_hash(entries);
            Some(ValidSource { volume: SourceVolume { secret, name, items }, hash, policy: m.policy })
        }
    };
    let client_keys = client_keys(cc, &text)?;
    Ok(ValidCc { redis, api_key, password, source, deletion_policy: s.deletion_policy, client_keys })
}

/// The owner mark on client keys this ClientConfig declares.
pub fn key_owner(cc: &ClientConfig) -> String {
    use kube::ResourceExt;
    format!("ClientConfig/{}/{}", cc.namespace().unwrap_or_default(), cc.name_any())
}

/// Reads each declared key from its Secret and builds the settings stored for it.
fn client_keys(
    cc: &ClientConfig,
    text: &dyn Fn(&str, &poolgate_crds::SecretKeyRef) -> Result<String, Invalid>,
) -> Result<Vec<(String, poolgate_store::ClientKey)>, Invalid> {
    let owner = key_owner(cc);
    let mut out: Vec<(String, poolgate_store::ClientKey)> = Vec::new();
    for (i, k) in cc.spec.client_keys.iter().enumerate() {
        let at = format!("spec.clientKeys[{i}] ({:?})", k.name);
        if k.name.trim().is_empty() {
            return Err(invalid("InvalidSpec", format!("{at}: name must not be empty")));
        }
        let limits = [k.daily_limit, k.total_limit, k.rpm_limit, k.tpm_limit, k.bonus];
        if limits.iter().flatten().any(|n| *n < 0) {
            return Err(invalid("InvalidSpec", format!("{at}: limits must not be negative")));
        }
        let expires_at = match &k.expires_at {
            None => None,
            Some(t) => Some(
                chrono::DateTime::parse_from_rfc3339(t)
                    .map_err(|e| invalid("InvalidSpec", format!("{at}: expiresAt is not RFC 3339: {e}")))?
                    .timestamp_millis(),
            ),
        };
        let key = text(&format!("{at}.keySecretRef"), &k.key_secret_ref)?;
        let hash = poolgate_store::ClientKey::hash(&key);
        if out.iter().any(|(h, _)| *h == hash) {
            return Err(invalid("InvalidSpec", format!("{at}: the same key text is declared twice")));
        }
        let settings = poolgate_store::ClientKey {
            id: k.name.clone(),
            name: k.name.clone(),
            enabled: k.enabled,
            daily_limit: k.daily_limit,
            total_limit: k.total_limit,
            rpm_limit: k.rpm_limit,
            tpm_limit: k.tpm_limit,
            models: k.models.clone(),
            providers: k.providers.clone(),
            expires_at,
            bonus: k.bonus.unwrap_or(0),
            timezone_offset_minutes: k.timezone_offset_minutes.unwrap_or(0),
            prefix: key.chars().take(9).collect(),
            owner: Some(owner.clone()),
            ..poolgate_store::ClientKey::default()
        };
        out.push((hash, settings));
    }
    Ok(out)
}

/// Lays the source's keys out under the mount root as the reference's tree: explicit items go to
/// `configs/<path>` (items naming keys the source lacks are ignored); a key that a credential path in `provider_pools.json` ends with goes to that
/// path; every other key to `configs/<key>`. Returns (key, path) sorted by key.
pub fn layout(data: &SourceData, explicit: &[(String, String)]) -> Result<Vec<(String, String)>, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let derived = credential_paths(data)?;
    for key in data.0.keys() {
        let path = match explicit.iter().find(|(k, _)| k == key) {
            Some((_, p)) => format!(
                "configs/{}",
                clean_relative(p).ok_or_else(|| format!("items path {p:?} must be relative without '..'"))?
            ),
            None => derived.get(key).cloned().unwrap_or_else(|| format!("configs/{key}")),
        };
        out.insert(key.clone(), path);
    }
    Ok(out.into_iter().collect())
}

fn clean_relative(p: &str) -> Option<String> {
    let p = p.trim_start_matches("./");
    let ok = !p.is_empty() && !p.starts_with('/') && p.split('/').all(|seg| !seg.is_empty() && seg != "..");
    ok.then(|| p.to_string())
}

/// Token file key → path under the mount root, from `provider_pools.json`'s credential paths
/// (the reference resolves `./x` against the parent of `configs/`, other relative paths against
/// `configs/`; absolute paths cannot be laid out and are left to the migration's report).
fn credential_paths(data: &SourceData) -> Result<BTreeMap<String, String>, String> {
    let Some(raw) = data.0.get("provider_pools.json") else { return Ok(BTreeMap::new()) };
    let pools: Value = serde_json::from_slice(raw).map_err(|e| format!("provider_pools.json is not JSON: {e}"))?;
    let mut out = BTreeMap::new();
    for (ptype, accounts) in pools.as_object().into_iter().flatten() {
        let Some(field) = poolgate_store::provider::kind_of(ptype).and_then(|k| k.token_path_field) else { continue };
        for acc in accounts.as_array().into_iter().flatten() {
            let Some(path) = acc.get(field).and_then(Value::as_str) else { continue };
            let rel = match path.strip_prefix("./") {
                Some(rest) => clean_relative(rest),
                None if path.starts_with('/') => None,
                None => clean_relative(path).map(|p| format!("configs/{p}")),
            };
            let (Some(rel), Some(base)) = (rel, path.rsplit('/').next()) else { continue };
            if data.0.contains_key(base) {
                out.insert(base.to_string(), rel);
            }
        }
    }
    Ok(out)
}
