//! Status (pure): conditions with `Ready` on top, and whether a patch is needed (timestamps aside).

use poolgate_crds::{ClientConfig, ClientConfigStatus, Condition, LocalObjectRef};

use super::build::CcPlan;
use crate::conditions;

/// Conditions `Ready` requires (`Migrated` only blocks while running or failed, which
/// `Initialized` and `Synced` already reflect).
const REQUIRED: &[&str] = &["RedisReachable", "Initialized", "Synced"];

/// The new status. `synced`: `Some(Ok(wrote_anything))` after a sync, `Some(Err(msg))` when it
/// failed, `None` when it was not attempted.
pub fn compute(
    cc: &ClientConfig,
    plan: Option<&CcPlan>,
    invalid: Option<(&str, &str)>,
    synced: Option<Result<bool, String>>,
    redis_url: Option<String>,
    now: &str,
) -> ClientConfigStatus {
    let old = cc.status.clone().unwrap_or_default();
    let generation = cc.metadata.generation;
    let mut st = ClientConfigStatus { observed_generation: generation, ..old.clone() };
    if redis_url.is_some() {
        st.redis_url = redis_url;
    }
    let mut all: Vec<Condition> = Vec::new();
    if let Some((reason, message)) = invalid {
        all.push(Condition::unknown("RedisReachable", "NotChecked", "the spec must be valid before Redis is used"));
        all.push(Condition::new("Synced", false, reason, message));
    }
    if let Some(p) = plan {
        all.extend(p.conditions.iter().cloned());
        st.migration = p.migration.clone();
        st.init_job = p.init_job.clone().map(|name| LocalObjectRef { name });
        all.push(match &synced {
            Some(Ok(_)) => Condition::new("Synced", true, "Synced", "config, API key and password are in Redis"),
            Some(Err(m)) => Condition::new("Synced", false, "WriteFailed", m.clone()),
            None if all.iter().any(|c| c.type_ == "RedisReachable" && !c.is_true()) => {
                Condition::new("Synced", false, "RedisUnreachable", "Redis cannot be reached")
            }
            None if all.iter().any(|c| c.type_ == "Initialized" && c.status == "False") => Condition::new(
                "Synced",
                false,
                "InitializationFailed",
                "the config is not written while the init or migration Job has failed; see Initialized",
            ),
            None => Condition::unknown("Synced", "WaitingForJob", "the config is written once the Job has finished"),
        });
    }
    if matches!(synced, Some(Ok(true))) || (st.last_synced.is_none() && matches!(synced, Some(Ok(_)))) {
        st.last_synced = Some(now.to_string());
    }
    let mut ready = conditions::ready(&all, REQUIRED);
    // Redis held data before the migration could run: nothing was imported and no init ran, so
    // the gateway is not what the spec asks for.
    if let Some(skipped) = all.iter().find(|c| c.type_ == "Migrated" && c.reason == "SkippedRedisNotEmpty") {
        if ready.status != "False" {
            ready = Condition::new(
                "Ready",
                false,
                &skipped.reason,
                format!(
                    "{}; nothing was imported: empty the prefix to import, or set spec.migration.policy Never to use the data as it is",
                    skipped.message
                ),
            );
        }
    }
    all.push(ready);
    st.conditions = conditions::merge(&old.conditions, all, now, generation);
    st
}

/// True when `new` differs from `old` in anything but condition timestamps.
pub fn needs_patch(old: Option<&ClientConfigStatus>, new: &ClientConfigStatus) -> bool {
    let Some(old) = old else { return true };
    !conditions::eq_time_insensitive(&old.conditions, &new.conditions)
        || old.observed_generation != new.observed_generation
        || old.redis_url != new.redis_url
        || old.migration != new.migration
        || old.init_job != new.init_job
        || old.last_synced != new.last_synced
        || old.generated_password_secret != new.generated_password_secret
}
