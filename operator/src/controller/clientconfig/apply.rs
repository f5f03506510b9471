//! Apply: Jobs by server-side apply (deterministic names, owner references), and the config,
//! API key, password and plugins written through the store (only when they differ).

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use poolgate_crds::ClientConfig;
use poolgate_store::{RedisStore, Storage, StoreError};

use super::build;
use super::validate::ValidCc;
use crate::context::OperatorConfig;
use crate::jobs::{self, JobKind};

/// Creates (or re-applies, unchanged) the Job.
pub async fn apply_job(
    client: &kube::Client,
    cc: &ClientConfig,
    kind: &JobKind,
    valid: &ValidCc,
    cfg: &OperatorConfig,
) -> Result<String, kube::Error> {
    let ns = cc.namespace().unwrap_or_else(|| "default".into());
    let job = jobs::build_job(cc, kind, valid.source.as_ref().map(|s| &s.volume), cfg);
    let name = job.name_any();
    let api: Api<Job> = Api::namespaced(client.clone(), &ns);
    let mut body = serde_json::to_value(&job).map_err(kube::Error::SerdeError)?;
    body["apiVersion"] = "batch/v1".into();
    body["kind"] = "Job".into();
    api.patch(&name, &PatchParams::apply(crate::MANAGER).force(), &Patch::Apply(&body)).await?;
    Ok(name)
}

/// Makes sure the Secret with the generated web UI password exists (created once, with a fresh
/// random password, owned by the ClientConfig; an existing one is kept as it is). Returns its name.
pub async fn ensure_generated_password(client: &kube::Client, cc: &ClientConfig) -> Result<String, kube::Error> {
    let ns = cc.namespace().unwrap_or_else(|| "default".into());
    let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let name = jobs::generated_password_secret_name(&cc.name_any());
    if api.get_opt(&name).await?.is_none() {
        let secret = jobs::generated_password_secret(cc, &jobs::generate_password());
        match api.create(&PostParams::default(), &secret).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(name)
}

/// What the sync wrote.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Synced {
    pub config: bool,
    pub password: bool,
    pub plugins: bool,
    /// Client keys written or removed.
    pub client_keys: usize,
}

impl Synced {
    pub fn any(&self) -> bool {
        self.config || self.password || self.plugins || self.client_keys > 0
    }
}

/// Writes the config (spec settings + API key), password and plugins where they differ.
pub async fn sync(store: &RedisStore, cc: &ClientConfig, valid: &ValidCc) -> Result<Synced, StoreError> {
    let mut out = Synced::default();
    let current = store.get_config().await?;
    let want = build::config_doc(current.as_ref(), &cc.spec.gateway, &valid.api_key);
    if current.as_ref() != Some(&want) {
        store.set_config(&want).await?;
        out.config = true;
    }
    if let Some(pw) = &valid.password {
        // Stored hashed; rewritten only when the Secret's password no longer opens it.
        let stored = store.get_password().await?;
        let (given, s) = (pw.clone(), stored.clone());
        let current = tokio::task::spawn_blocking(move || {
            s.is_some_and(|s| poolgate_store::password::is_hashed(&s) && poolgate_store::password::verify(&given, &s))
        })
        .await
        .unwrap_or(false);
        if !current {
            let given = pw.clone();
            let hashed = tokio::task::spawn_blocking(move || poolgate_store::password::hash(&given))
                .await
                .map_err(|e| StoreError::Invalid(format!("password hashing failed: {e}")))?;
            store.set_password(&hashed).await?;
            out.password = true;
        }
    }
    let plugins = store.get_plugins().await?;
    if let Some(want) = build::plugins_doc(plugins.as_ref(), &cc.spec.gateway) {
        if plugins.as_ref() != Some(&want) {
            store.set_plugins(&want).await?;
            out.plugins = true;
        }
    }
    out.client_keys = sync_client_keys(store, cc, valid).await?;
    Ok(out)
}

/// Writes declared client keys whose settings differ (keeping `createdAt`; usage counters live
/// apart and are never touched) and removes keys this ClientConfig declared before but no longer
/// does. Keys made elsewhere (admin API) are left alone, also when they carry the same text.
async fn sync_client_keys(store: &RedisStore, cc: &ClientConfig, valid: &ValidCc) -> Result<usize, StoreError> {
    let owner = super::validate::key_owner(cc);
    let existing = store.list_client_keys().await?;
    let mut changed = 0;
    for (hash, want) in &valid.client_keys {
        let current = existing.iter().find(|(h, _, _)| h == hash).map(|(_, k, _)| k);
        let mut want = want.clone();
        want.created_at = current.map_or_else(poolgate_store::time::epoch_ms, |k| k.created_at);
        if current.is_some_and(|k| k.owner.as_deref() != Some(owner.as_str())) {
            continue;
        }
        if current != Some(&want) {
            store.put_client_key(hash, &want).await?;
            changed += 1;
        }
    }
    for (hash, key, _) in &existing {
        let declared = valid.client_keys.iter().any(|(h, _)| h == hash);
        if key.owner.as_deref() == Some(owner.as_str()) && !declared {
            store.delete_client_key(hash).await?;
            changed += 1;
        }
    }
    Ok(changed)
}
