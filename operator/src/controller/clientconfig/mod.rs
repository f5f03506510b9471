//! The `ClientConfig` controller: dereference → validate → Redis check → build (Jobs, whether to
//! sync) → apply (Jobs, config/key/password) → status, under a finalizer that honours
//! `deletionPolicy`.

pub mod apply;
pub mod build;
pub mod dereference;
pub mod status;
pub mod validate;

use std::sync::Arc;
use std::time::Duration;

use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::Event as Finalizer;
use kube::{Api, ResourceExt};
use poolgate_crds::ClientConfig;
use serde_json::json;

use super::cleanup::Cleanup;
use crate::error::{Error, Result};
use crate::events;
use crate::jobs::{self, JobKind};
use crate::Context;

pub const FINALIZER: &str = "poolgate.dev/clientconfig-cleanup";
pub const CONTROLLER: &str = "clientconfig";

/// How often a ClientConfig is re-checked without any trigger (config drift, Redis outages).
const RECHECK: Duration = Duration::from_secs(300);
/// How often while a Job runs (Job changes also trigger through the `owns` watch).
const JOB_POLL: Duration = Duration::from_secs(10);

#[tracing::instrument(skip(cc, ctx), fields(cc = %cc.name_any(), ns = cc.namespace().unwrap_or_default()))]
pub async fn reconcile(cc: Arc<ClientConfig>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.start(CONTROLLER);
    let ns = cc.namespace().ok_or(Error::MissingMetadata("namespace"))?;
    let api: Api<ClientConfig> = Api::namespaced(ctx.client.clone(), &ns);
    let res = super::run_finalizer(&api, FINALIZER, cc.clone(), |event| async {
        match event {
            Finalizer::Apply(c) => apply_cc(&c, &ctx).await,
            Finalizer::Cleanup(c) => cleanup_cc(&c, &ctx).await,
        }
    })
    .await;
    if res.is_ok() {
        ctx.failures.reset(&cc.uid().unwrap_or_default());
    }
    res
}

pub fn error_policy(cc: Arc<ClientConfig>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failure(CONTROLLER, err.category());
    tracing::warn!(cc = %cc.name_any(), reason = err.category(), "reconcile failed: {err}");
    let recorder = ctx.recorder.clone();
    let note = err.to_string();
    let reason = err.category();
    let delay = ctx.failures.fail(&cc.uid().unwrap_or_default());
    tokio::spawn(async move { events::publish(&recorder, cc.as_ref(), true, reason, "Reconcile", note).await });
    Action::requeue(delay)
}

async fn apply_cc(cc: &ClientConfig, ctx: &Context) -> Result<Action> {
    let refs = dereference::dereference(&ctx.client, cc).await?;
    let now = super::now_rfc3339();
    let valid = match validate::validate(cc, &refs) {
        Ok(v) => v,
        Err(inv) => {
            let st = status::compute(cc, None, Some((inv.reason, &inv.message)), None, None, &now);
            write_status(cc, ctx, st).await?;
            return Ok(Action::requeue(RECHECK));
        }
    };
    let redacted = poolgate_store::settings::redact_url(&valid.redis.url);
    let store = ctx.redis.get(&valid.redis.url, &valid.redis.prefix).await;
    let redis = match &store {
        Ok(s) => s.has_data().await.map_err(|e| crate::redact::scrub(&e.to_string(), &valid.redis.url)),
        Err(e) => Err(format!("{redacted}: {}", crate::redact::scrub(&e.to_string(), &valid.redis.url))),
    };
    let migrate_name =
        valid.source.as_ref().map(|s| jobs::job_name(&cc.name_any(), &JobKind::Migrate { hash: s.hash.clone() }));
    let observed = build::Observed {
        redis: redis.clone(),
        init_job: jobs::job_state(refs.jobs.get(&jobs::job_name(&cc.name_any(), &JobKind::Init))),
        migrate_job: jobs::job_state(migrate_name.as_ref().and_then(|n| refs.jobs.get(n))),
        previous_migrate_job: jobs::job_state(
            cc.status.as_ref().and_then(|s| s.migration.as_ref()).and_then(|m| refs.jobs.get(&m.job_name)),
        ),
    };
    let plan = build::plan(cc, &valid, &observed, cc.status.as_ref(), &now);
    let mut generated_password = None;
    if plan.create_job == Some(JobKind::Init) && cc.spec.admin_password_secret_ref.is_none() {
        generated_password = Some(apply::ensure_generated_password(&ctx.client, cc).await?);
    }
    if let Some(kind) = &plan.create_job {
        let name = apply::apply_job(&ctx.client, cc, kind, &valid, &ctx.config).await?;
        let what = match kind {
            JobKind::Init => "initialise the empty Redis".to_string(),
            JobKind::Migrate { hash } => format!("import the migration source (content {hash})"),
        };
        events::publish(&ctx.recorder, cc, false, "JobCreated", "CreateJob", format!("Job {name} created to {what}"))
            .await;
    }
    let synced = match (&store, plan.sync) {
        (Ok(s), true) => Some(apply::sync(s, cc, &valid).await.map_err(|e| {
            let text = crate::redact::scrub(&e.to_string(), &valid.redis.url);
            let text = crate::redact::scrub(&text, &valid.api_key);
            match &valid.password {
                Some(pw) => crate::redact::scrub(&text, pw),
                None => text,
            }
        })),
        _ => None,
    };
    if let Some(Ok(w)) = &synced {
        if w.any() {
            let note = format!(
                "wrote to Redis: config={} password={} plugins={} clientKeys={}",
                w.config, w.password, w.plugins, w.client_keys
            );
            events::publish(&ctx.recorder, cc, false, "ConfigSynced", "Sync", note).await;
        }
    }
    let synced_flag = synced.as_ref().map(|r| r.as_ref().map(|w| w.any()).map_err(Clone::clone));
    let mut st = status::compute(cc, Some(&plan), None, synced_flag, Some(redacted.clone()), &now);
    if let Some(name) = generated_password {
        st.generated_password_secret = Some(poolgate_crds::LocalObjectRef { name });
    }
    write_status(cc, ctx, st).await?;
    if let Err(e) = redis {
        return Err(Error::RedisUnreachable(crate::redact::scrub(&e, &valid.redis.url)));
    }
    if let Some(Err(e)) = synced {
        return Err(Error::Waiting(format!("writing the config failed: {e}")));
    }
    Ok(Action::requeue(if plan.sync { RECHECK } else { JOB_POLL }))
}

async fn write_status(cc: &ClientConfig, ctx: &Context, new: poolgate_crds::ClientConfigStatus) -> Result<()> {
    let old = cc.status.as_ref();
    if !status::needs_patch(old, &new) {
        return Ok(());
    }
    let ns = cc.namespace().ok_or(Error::MissingMetadata("namespace"))?;
    let api: Api<ClientConfig> = Api::namespaced(ctx.client.clone(), &ns);
    let body = json!({"apiVersion": "poolgate.dev/v1alpha1", "kind": "ClientConfig", "status": new});
    api.patch_status(&cc.name_any(), &PatchParams::apply(crate::MANAGER).force(), &Patch::Apply(&body)).await?;
    let old_conditions = old.map(|s| s.conditions.clone()).unwrap_or_default();
    events::condition_transitions(&ctx.recorder, cc, &old_conditions, &new.conditions).await;
    Ok(())
}

async fn cleanup_cc(cc: &ClientConfig, ctx: &Context) -> Result<Action> {
    let refs = dereference::dereference(&ctx.client, cc).await?;
    let target = match super::cleanup::client_config(cc, &refs) {
        Cleanup::WaitForPools(pools) => {
            // Pools clean up through this ClientConfig's Redis: it must outlive them.
            return Err(Error::Waiting(format!(
                "{} ProviderPool(s) still refer to this ClientConfig ({pools:?}); it is deleted after them",
                pools.len()
            )));
        }
        Cleanup::Leave { reason, note } => {
            events::publish(&ctx.recorder, cc, false, reason, "Delete", note).await;
            return Ok(Action::await_change());
        }
        Cleanup::Blocked(inv) => return Err(cleanup_blocked(cc, ctx, inv).await),
        Cleanup::Delete(target) => target,
    };
    let prefix = &target.prefix;
    let store = match ctx.redis.get(&target.url, prefix).await {
        Ok(s) => s,
        Err(e) => {
            let inv = super::cleanup::redis_failed(&target, &e.to_string());
            return Err(cleanup_blocked(cc, ctx, inv).await);
        }
    };
    let report = match poolgate_store::teardown::delete_instance(&store).await {
        Ok(r) => r,
        Err(e) => {
            let inv = super::cleanup::redis_failed(&target, &e.to_string());
            return Err(cleanup_blocked(cc, ctx, inv).await);
        }
    };
    drop(store);
    ctx.redis.forget(&target.url, prefix).await;
    let note = format!(
        "deletionPolicy Delete: removed prefix {prefix:?} from Redis ({} pool(s), {} account(s), config, password, metadata, plugins, sessions)",
        report.pools.len(),
        report.accounts
    );
    events::publish(&ctx.recorder, cc, false, "Deleted", "Delete", note).await;
    Ok(Action::await_change())
}

/// Reports a cleanup that cannot run (`Ready=False CleanupBlocked`, naming the way out) and
/// returns the error that keeps the finalizer (and publishes the Warning event).
async fn cleanup_blocked(cc: &ClientConfig, ctx: &Context, inv: super::providerpool::validate::Invalid) -> Error {
    let message = format!("{}: {}", inv.reason, inv.message);
    let old = cc.status.clone().unwrap_or_default();
    let mut conds: Vec<poolgate_crds::Condition> =
        old.conditions.iter().filter(|c| c.type_ != "Ready").cloned().collect();
    conds.push(poolgate_crds::Condition::new("Ready", false, "CleanupBlocked", message.clone()));
    let now = super::now_rfc3339();
    let st = poolgate_crds::ClientConfigStatus {
        conditions: crate::conditions::merge(&old.conditions, conds, &now, cc.metadata.generation),
        ..old
    };
    if let Err(e) = write_status(cc, ctx, st).await {
        tracing::warn!("could not report the blocked cleanup in status: {e}");
    }
    Error::CleanupBlocked(message)
}
