//! The `ProviderPool` controller: dereference → validate → build → apply → status, under a
//! finalizer that honours the ClientConfig's `deletionPolicy` on delete.

pub mod apply;
pub mod build;
pub mod dereference;
pub mod status;
pub mod validate;

use std::sync::Arc;
use std::time::Duration;

use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{finalizer, Event as Finalizer};
use kube::{Api, ResourceExt};
use poolgate_crds::{DeletionPolicy, ProviderPool};
use poolgate_store::Storage;
use serde_json::json;

use crate::error::{Error, Result};
use crate::events;
use crate::Context;

/// Finalizer guarding the pool's Redis data.
pub const FINALIZER: &str = "poolgate.dev/providerpool-cleanup";
/// Metric and log name of this controller.
pub const CONTROLLER: &str = "providerpool";

/// Reconciles one pool.
#[tracing::instrument(skip(pool, ctx), fields(pool = %pool.name_any(), ns = pool.namespace().unwrap_or_default()))]
pub async fn reconcile(pool: Arc<ProviderPool>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.start(CONTROLLER);
    let ns = pool.namespace().ok_or(Error::MissingMetadata("namespace"))?;
    let api: Api<ProviderPool> = Api::namespaced(ctx.client.clone(), &ns);
    let res = finalizer(&api, FINALIZER, pool.clone(), |event| async {
        match event {
            Finalizer::Apply(p) => apply_pool(&p, &ctx).await,
            Finalizer::Cleanup(p) => cleanup_pool(&p, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    if res.is_ok() {
        ctx.failures.reset(&pool.uid().unwrap_or_default());
    }
    res
}

/// Requeues with per-object exponential backoff and reports the failure.
pub fn error_policy(pool: Arc<ProviderPool>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failure(CONTROLLER, err.category());
    tracing::warn!(pool = %pool.name_any(), reason = err.category(), "reconcile failed: {err}");
    let recorder = ctx.recorder.clone();
    let note = err.to_string();
    let reason = err.category();
    let delay = ctx.failures.fail(&pool.uid().unwrap_or_default());
    tokio::spawn(async move { events::publish(&recorder, pool.as_ref(), true, reason, "Reconcile", note).await });
    Action::requeue(delay)
}

async fn apply_pool(pool: &ProviderPool, ctx: &Context) -> Result<Action> {
    let refs = dereference::dereference(&ctx.client, pool).await?;
    let now = super::now_rfc3339();
    let interval = ctx.config.status_interval;
    let previous_hashes = build::seeded_hashes(pool.status.as_ref());
    let valid = match validate::validate(pool, &refs) {
        Ok(v) => v,
        Err(invalid) => {
            let outcome = status::Outcome::Invalid { reason: invalid.reason, message: invalid.message };
            write_status(pool, ctx, status::compute(pool, &outcome, &now)).await?;
            // Secrets and the ClientConfig are watched: a fix triggers a reconcile.
            return Ok(Action::requeue(interval.max(Duration::from_secs(60))));
        }
    };
    let store = match ctx.redis.get(&valid.redis.url, &valid.redis.prefix).await {
        Ok(s) => s,
        Err(e) => {
            let message = format!(
                "{} (prefix {:?}): {e}",
                poolgate_store::settings::redact_url(&valid.redis.url),
                valid.redis.prefix
            );
            let outcome = status::Outcome::RedisFailed { reachable: false, message: message.clone() };
            write_status(pool, ctx, status::compute(pool, &outcome, &now)).await?;
            return Err(Error::RedisUnreachable(message));
        }
    };
    let plan = build::build(&valid);
    let applied = match apply::apply(&store, &valid.provider_type, &plan, &previous_hashes).await {
        Ok(a) => a,
        Err(e) => {
            let outcome = status::Outcome::RedisFailed { reachable: !e.is_unavailable(), message: e.to_string() };
            write_status(pool, ctx, status::compute(pool, &outcome, &now)).await?;
            return Err(e.into());
        }
    };
    let r = &applied.report;
    if !(r.created.is_empty() && r.removed.is_empty()) {
        let note = format!(
            "pool {}: {} account(s) created, {} removed (with their tokens)",
            valid.provider_type,
            r.created.len(),
            r.removed.len()
        );
        events::publish(&ctx.recorder, pool, false, "AccountsApplied", "Apply", note).await;
    }
    if !applied.tokens_seeded.is_empty() {
        let note = format!("OAuth token seeded from the Secret for account(s) {:?}", applied.tokens_seeded);
        events::publish(&ctx.recorder, pool, false, "TokenSeeded", "Apply", note).await;
    }
    if !applied.token_conflicts.is_empty() {
        let note = format!(
            "a proxy refreshed the token of account(s) {:?} while the operator was seeding it; retrying",
            applied.token_conflicts
        );
        events::publish(&ctx.recorder, pool, true, "TokenConflict", "Apply", note).await;
    }
    let accounts = store.get_pool(&valid.provider_type).await?;
    let names: Vec<(String, String)> = plan.accounts.iter().map(|a| (a.name.clone(), a.uuid.clone())).collect();
    let outcome = status::Outcome::Synced { plan: &names, accounts: &accounts, seeded: &applied.seeded };
    write_status(pool, ctx, status::compute(pool, &outcome, &now)).await?;
    Ok(Action::requeue(interval))
}

/// Patches the status when [`status::needs_patch`] says so, and publishes condition transitions.
async fn write_status(pool: &ProviderPool, ctx: &Context, new: poolgate_crds::ProviderPoolStatus) -> Result<()> {
    let old = pool.status.as_ref();
    if !status::needs_patch(old, &new, chrono::Utc::now(), ctx.config.status_interval) {
        return Ok(());
    }
    let ns = pool.namespace().ok_or(Error::MissingMetadata("namespace"))?;
    let api: Api<ProviderPool> = Api::namespaced(ctx.client.clone(), &ns);
    let body = json!({"apiVersion": "poolgate.dev/v1alpha1", "kind": "ProviderPool", "status": new});
    api.patch_status(&pool.name_any(), &PatchParams::apply(crate::MANAGER).force(), &Patch::Apply(&body)).await?;
    let old_conditions = old.map(|s| s.conditions.clone()).unwrap_or_default();
    events::condition_transitions(&ctx.recorder, pool, &old_conditions, &new.conditions).await;
    Ok(())
}

async fn cleanup_pool(pool: &ProviderPool, ctx: &Context) -> Result<Action> {
    let refs = dereference::dereference(&ctx.client, pool).await?;
    let Some(cc) = refs.client_config.as_ref() else {
        let note = "ClientConfig is gone: Redis cannot be reached, data (if any) is left in place";
        events::publish(&ctx.recorder, pool, true, "CleanupSkipped", "Delete", note).await;
        return Ok(Action::await_change());
    };
    if cc.spec.deletion_policy == DeletionPolicy::Retain || refs.older_sibling.is_some() {
        let note = if refs.older_sibling.is_some() {
            "another ProviderPool owns this provider type: its accounts are left in Redis".to_string()
        } else {
            format!("deletionPolicy Retain: pool {} is left in Redis", pool.spec.provider_type)
        };
        events::publish(&ctx.recorder, pool, false, "Retained", "Delete", note).await;
        return Ok(Action::await_change());
    }
    let url_ref = &cc.spec.redis.url_secret_ref;
    let url = refs
        .secrets
        .text(&url_ref.name, &url_ref.key)
        .map_err(|e| Error::Waiting(format!("cannot delete the pool's Redis data: {e}")))?;
    let store = ctx
        .redis
        .get(&url, &cc.spec.redis.key_prefix)
        .await
        .map_err(|e| Error::RedisUnreachable(format!("{}: {e}", poolgate_store::settings::redact_url(&url))))?;
    let removed = store.delete_pool(&pool.spec.provider_type).await?;
    let note = format!(
        "deletionPolicy Delete: pool {} removed from Redis ({} account(s) with their tokens)",
        pool.spec.provider_type,
        removed.len()
    );
    events::publish(&ctx.recorder, pool, false, "Deleted", "Delete", note).await;
    Ok(Action::await_change())
}
