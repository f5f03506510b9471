//! The `ProviderPool` controller: dereference → validate → build → apply → status, under a
//! finalizer that honours the ClientConfig's `deletionPolicy` on delete.

pub mod apply;
pub mod build;
pub mod dereference;
pub mod status;
pub mod validate;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::Event as Finalizer;
use kube::{Api, ResourceExt};
use poolgate_crds::ProviderPool;
use poolgate_store::Storage;
use serde_json::json;

use super::cleanup::Cleanup;
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
    let res = super::run_finalizer(&api, FINALIZER, pool.clone(), |event| async {
        match event {
            Finalizer::Apply(p) => apply_pool(&p, &ctx).await,
            Finalizer::Cleanup(p) => cleanup_pool(&p, &ctx).await,
        }
    })
    .await;
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
                "{} (prefix {:?}): {}",
                poolgate_store::settings::redact_url(&valid.redis.url),
                valid.redis.prefix,
                crate::redact::scrub(&e.to_string(), &valid.redis.url)
            );
            let outcome = status::Outcome::RedisFailed { reachable: false, message: message.clone() };
            write_status(pool, ctx, status::compute(pool, &outcome, &now)).await?;
            return Err(Error::RedisUnreachable(message));
        }
    };
    let plan = build::build(&valid);
    let take_over = super::annotation_true(&pool.metadata, super::TAKE_OVER_ANNOTATION);
    let hash = build::plan_hash(&plan, &valid.redis, take_over);
    let redis_failed = |e: &poolgate_store::StoreError| status::Outcome::RedisFailed {
        reachable: !e.is_unavailable(),
        message: crate::redact::scrub(&e.to_string(), &valid.redis.url),
    };
    let current = match store.get_pool(&valid.provider_type).await {
        Ok(c) => owned(c),
        Err(e) => {
            write_status(pool, ctx, status::compute(pool, &redis_failed(&e), &now)).await?;
            return Err(e.into());
        }
    };
    let keep: BTreeSet<&str> = plan.accounts.iter().map(|a| a.uuid.as_str()).collect();
    let listed = build::listed_uuids(pool.status.as_ref());
    let prune = build::prune(&valid.owner, &keep, &listed, &current, take_over);
    let applied_before = pool.status.as_ref().and_then(|s| s.applied_hash.as_deref());
    let mut applied_hash = applied_before.map(str::to_string);
    let (applied, accounts) = if build::needs_apply(applied_before, &hash, &plan, &current, &prune, &previous_hashes) {
        let applied = match apply::apply(&store, &valid.provider_type, &plan, &previous_hashes, &prune.delete).await {
            Ok(a) => a,
            Err(e) => {
                write_status(pool, ctx, status::compute(pool, &redis_failed(&e), &now)).await?;
                return Err(e.into());
            }
        };
        publish_applied(pool, ctx, &valid.provider_type, &applied, &prune).await;
        if applied.token_conflicts.is_empty() {
            applied_hash = Some(hash.clone());
        }
        (applied, owned(store.get_pool(&valid.provider_type).await?))
    } else {
        // Nothing changed since the last apply: this is a status refresh only.
        (apply::Applied { seeded: previous_hashes.clone(), ..apply::Applied::default() }, current)
    };
    let names: Vec<(String, String)> = plan.accounts.iter().map(|a| (a.name.clone(), a.uuid.clone())).collect();
    let outcome = status::Outcome::Synced { plan: &names, accounts: &accounts, seeded: &applied.seeded };
    let mut st = status::compute(pool, &outcome, &now);
    st.applied_hash = applied_hash;
    write_status(pool, ctx, st).await?;
    Ok(Action::requeue(interval))
}

async fn publish_applied(
    pool: &ProviderPool,
    ctx: &Context,
    ptype: &str,
    applied: &apply::Applied,
    prune: &build::Prune,
) {
    let r = &applied.report;
    if !(r.created.is_empty() && r.removed.is_empty()) {
        let note = format!(
            "pool {ptype}: {} account(s) created, {} removed (with their tokens)",
            r.created.len(),
            r.removed.len()
        );
        events::publish(&ctx.recorder, pool, false, "AccountsApplied", "Apply", note).await;
    }
    if !prune.foreign.is_empty() {
        let note = format!(
            "pool {ptype}: {} account(s) not in the spec belong to another owner (a deleted ProviderPool, a migration) \
             and are left as they are; annotate this ProviderPool {}=true to take them over (they are then deleted)",
            prune.foreign.len(),
            super::TAKE_OVER_ANNOTATION
        );
        events::publish(&ctx.recorder, pool, false, "ForeignAccountsKept", "Apply", note).await;
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
    let target = match super::cleanup::provider_pool(pool, &refs) {
        Cleanup::Leave { reason, note } => {
            let warning = reason == "CleanupSkipped";
            events::publish(&ctx.recorder, pool, warning, reason, "Delete", note).await;
            return Ok(Action::await_change());
        }
        Cleanup::Blocked(inv) => return Err(cleanup_blocked(pool, ctx, inv).await),
        Cleanup::WaitForPools(_) => return Ok(Action::await_change()),
        Cleanup::Delete(target) => target,
    };
    let ptype = &pool.spec.provider_type;
    let owner = validate::owner_of(pool);
    let listed = build::listed_uuids(pool.status.as_ref());
    let result = async {
        let store = ctx.redis.get(&target.url, &target.prefix).await?;
        let current = owned(store.get_pool(ptype).await?);
        let prune = build::prune(&owner, &BTreeSet::new(), &listed, &current, false);
        let removed = apply::delete_owned(&store, ptype, &prune.delete, prune.foreign.len()).await?;
        Ok::<_, poolgate_store::StoreError>((removed, prune.foreign.len()))
    }
    .await;
    let (removed, left) = match result {
        Ok(r) => r,
        Err(e) => {
            let inv = super::cleanup::redis_failed(&target, &e.to_string());
            return Err(cleanup_blocked(pool, ctx, inv).await);
        }
    };
    let note = format!(
        "deletionPolicy Delete: {} account(s) of pool {ptype} this ProviderPool created removed from Redis with their tokens{}",
        removed.len(),
        if left > 0 { format!("; {left} account(s) of other owners left in place") } else { String::new() }
    );
    events::publish(&ctx.recorder, pool, false, "Deleted", "Delete", note).await;
    Ok(Action::await_change())
}

/// Reports a cleanup that cannot run (`Ready=False CleanupBlocked`, naming the way out) and
/// returns the error that keeps the finalizer (and publishes the Warning event).
async fn cleanup_blocked(pool: &ProviderPool, ctx: &Context, inv: validate::Invalid) -> Error {
    let message = format!("{}: {}", inv.reason, inv.message);
    let old = pool.status.clone().unwrap_or_default();
    let mut conds: Vec<poolgate_crds::Condition> =
        old.conditions.iter().filter(|c| c.type_ != "Ready").cloned().collect();
    conds.push(poolgate_crds::Condition::new("Ready", false, "CleanupBlocked", message.clone()));
    let now = super::now_rfc3339();
    let st = poolgate_crds::ProviderPoolStatus {
        conditions: crate::conditions::merge(&old.conditions, conds, &now, pool.metadata.generation),
        ..old
    };
    if let Err(e) = write_status(pool, ctx, st).await {
        tracing::warn!("could not report the blocked cleanup in status: {e}");
    }
    Error::CleanupBlocked(message)
}

/// The store's shared snapshot as owned accounts (the planner compares and edits them).
fn owned(pool: Vec<std::sync::Arc<poolgate_store::Account>>) -> Vec<poolgate_store::Account> {
    pool.iter().map(|a| poolgate_store::Account::clone(a)).collect()
}
