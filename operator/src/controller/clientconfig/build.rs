//! Build (pure): which Job to run, whether the config may be written yet, the conditions, and
//! the config, password and plugins documents to write.

use poolgate_crds::{ClientConfig, ClientConfigStatus, Condition, GatewaySettings, MigrationPolicy, MigrationStatus};
use serde_json::{Map, Value};

use super::validate::ValidCc;
use crate::jobs::{JobKind, JobState};

/// What the operator saw of Redis and the Jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// `Ok(has_data)` when Redis answered, else the (redacted) reason.
    pub redis: Result<bool, String>,
    pub init_job: JobState,
    /// The migration Job for the current source hash.
    pub migrate_job: JobState,
    /// The Job of the migration recorded in status, when it ran for another source version.
    pub previous_migrate_job: JobState,
}

/// The reconcile's decisions.
#[derive(Debug, Clone, PartialEq)]
pub struct CcPlan {
    pub create_job: Option<JobKind>,
    /// The config, API key and password may be written (Redis reachable, no Job pending or failed).
    pub sync: bool,
    /// Conditions other than `Synced` and `Ready` (added after the apply).
    pub conditions: Vec<Condition>,
    pub migration: Option<MigrationStatus>,
    pub init_job: Option<String>,
}

/// Decides the Jobs and conditions.
pub fn plan(
    cc: &ClientConfig,
    valid: &ValidCc,
    obs: &Observed,
    prev: Option<&ClientConfigStatus>,
    now: &str,
) -> CcPlan {
    let name = cc.metadata.name.clone().unwrap_or_default();
    let mut p = CcPlan {
        create_job: None,
        sync: false,
        conditions: Vec::new(),
        migration: prev.and_then(|s| s.migration.clone()),
        init_job: prev.and_then(|s| s.init_job.as_ref().map(|r| r.name.clone())),
    };
    let has_data = match &obs.redis {
        Ok(d) => *d,
        Err(e) => {
            p.conditions.push(Condition::new(
                "RedisReachable",
                false,
                "ConnectFailed",
                format!("{e}; check the URL Secret and that Redis is running"),
            ));
            p.conditions.push(Condition::unknown("Initialized", "RedisUnreachable", "waiting for Redis"));
            if cc.spec.migration.is_some() {
                p.conditions.push(Condition::unknown("Migrated", "RedisUnreachable", "waiting for Redis"));
            }
            return p;
        }
    };
    p.conditions.push(Condition::new(
        "RedisReachable",
        true,
        "Connected",
        format!("{} prefix {:?}", poolgate_store::settings::redact_url(&valid.redis.url), valid.redis.prefix),
    ));

    // Migration.
    let mut migrating = false;
    let mut blocked = false;
    let prior_success = p.migration.as_ref().filter(|m| m.outcome == "Succeeded").cloned();
    match (&cc.spec.migration, &valid.source) {
        (None, _) => {}
        (Some(m), _) if m.policy == MigrationPolicy::Never => {
            p.conditions.push(Condition::new(
                "Migrated",
                false,
                "PolicyNever",
                "migration policy is Never: the source is not imported",
            ));
        }
        (Some(_), None) => {}
        (Some(_), Some(src)) => {
            let job_name = crate::jobs::job_name(&name, &JobKind::Migrate { hash: src.hash.clone() });
            let record = |outcome: &str, message: String, done: bool| MigrationStatus {
                source_hash: src.hash.clone(),
                job_name: job_name.clone(),
                outcome: outcome.into(),
                completed_at: done.then(|| now.to_string()),
                message,
            };
            let already = prior_success.as_ref().is_some_and(|m| m.source_hash == src.hash);
            // An earlier attempt of ours for another version of the source that did not succeed.
            let earlier = p.migration.as_ref().filter(|m| prior_success.is_none() && m.source_hash != src.hash);
            let earlier_running = earlier.is_some_and(|_| obs.previous_migrate_job == JobState::Running);
            let retry_after_failure = earlier.is_some() && !earlier_running;
            match &obs.migrate_job {
                _ if already => {
                    p.conditions.push(Condition::new("Migrated", true, "Succeeded", format!("source {} imported by Job {job_name}", src.hash)));
                }
                JobState::Succeeded => {
                    p.migration = Some(record("Succeeded", "migrate --verify passed".into(), true));
                    p.conditions.push(Condition::new("Migrated", true, "Succeeded", format!("source {} imported by Job {job_name}", src.hash)));
                }
                JobState::Failed(why) => {
                    blocked = true;
                    p.migration = Some(record("Failed", why.clone(), true));
                    p.conditions.push(Condition::new(
                        "Migrated",
                        false,
                        "JobFailed",
                        format!("Job {job_name} failed ({why}); see its logs, fix the source (a new content starts a new Job) or set policy Never"),
                    ));
                }
                JobState::Running => {
                    migrating = true;
                    p.migration = Some(record("Running", String::new(), false));
                    p.conditions.push(Condition::unknown("Migrated", "JobRunning", format!("Job {job_name} is importing the source")));
                }
                JobState::Absent if earlier_running => {
                    migrating = true;
                    let prev = earlier.map(|m| m.job_name.clone()).unwrap_or_default();
                    p.conditions.push(Condition::unknown(
                        "Migrated",
                        "PreviousJobRunning",
                        format!("the source changed; waiting for Job {prev} (previous version) to finish first"),
                    ));
                }
                // Redis empty, or holding only what an earlier failed attempt of ours imported.
                JobState::Absent if !has_data || retry_after_failure => {
                    migrating = true;
                    p.create_job = Some(JobKind::Migrate { hash: src.hash.clone() });
                    p.migration = Some(record("Running", String::new(), false));
                    p.conditions.push(Condition::unknown("Migrated", "JobCreated", format!("Job {job_name} created to import the source")));
                }
                JobState::Absent => match &prior_success {
                    Some(m) => p.conditions.push(Condition::new(
                        "Migrated",
                        true,
                        "Succeeded",
                        format!("source {} was imported by Job {}; the source changed since, and IfEmpty does not import into a Redis that holds data", m.source_hash, m.job_name),
                    )),
                    None => p.conditions.push(Condition::new(
                        "Migrated",
                        false,
                        "SkippedRedisNotEmpty",
                        "Redis already holds data under the prefix; policy IfEmpty imports only into an empty Redis",
                    )),
                },
            }
        }
    }

    // Initialisation (only when no migration seeds Redis).
    let init_name = crate::jobs::job_name(&name, &JobKind::Init);
    if migrating {
        p.conditions.push(Condition::unknown("Initialized", "Migrating", "the migration Job seeds Redis"));
    } else if blocked {
        p.conditions.push(Condition::new(
            "Initialized",
            false,
            "MigrationFailed",
            "the migration Job failed; see the Migrated condition",
        ));
    } else {
        match (&obs.init_job, has_data) {
            (JobState::Running, _) => {
                migrating = true;
                p.conditions.push(Condition::unknown(
                    "Initialized",
                    "JobRunning",
                    format!("Job {init_name} is initialising Redis"),
                ));
            }
            (JobState::Failed(why), false) => {
                blocked = true;
                p.conditions.push(Condition::new(
                    "Initialized",
                    false,
                    "JobFailed",
                    format!("Job {init_name} failed ({why}); see its logs and delete the Job to retry"),
                ));
            }
            (JobState::Absent, false) => {
                migrating = true;
                p.create_job = Some(JobKind::Init);
                p.conditions.push(Condition::unknown(
                    "Initialized",
                    "JobCreated",
                    format!("Job {init_name} created to initialise an empty Redis"),
                ));
            }
            (JobState::Succeeded, _) => {
                p.init_job = Some(init_name.clone());
                p.conditions.push(Condition::new(
                    "Initialized",
                    true,
                    "InitJobSucceeded",
                    format!("Job {init_name} initialised Redis"),
                ));
            }
            (_, true) => {
                p.conditions.push(Condition::new(
                    "Initialized",
                    true,
                    "DataPresent",
                    "Redis holds poolgate data under the prefix",
                ));
            }
        }
    }
    p.sync = !migrating && !blocked;
    // A recorded outcome keeps its completion time (no status churn on every reconcile).
    if let (Some(new), Some(old)) = (&p.migration, prev.and_then(|s| s.migration.as_ref())) {
        if new.source_hash == old.source_hash && new.outcome == old.outcome {
            p.migration = Some(old.clone());
        }
    }
    p
}

/// The stored config with the spec's settings and the API key laid over it (fields the spec does
/// not set keep their stored value).
pub fn config_doc(current: Option<&Value>, g: &GatewaySettings, api_key: &str) -> Value {
    let mut m: Map<String, Value> = current.and_then(Value::as_object).cloned().unwrap_or_default();
    m.insert("REQUIRED_API_KEY".into(), Value::from(api_key));
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k.into(), v);
        }
    };
    let j = |v: &dyn erased::ToJson| Some(v.to_json());
    put("MODEL_PROVIDER", g.default_provider.as_ref().and_then(|v| j(v)));
    put("DEFAULT_MODEL_PROVIDERS", g.default_model_providers.as_ref().and_then(|v| j(v)));
    put("providerFallbackChain", g.provider_fallback_chain.as_ref().and_then(|v| j(v)));
    put("modelFallbackMapping", g.model_fallback_mapping.as_ref().and_then(|v| j(v)));
    put("REQUEST_MAX_RETRIES", g.request_max_retries.map(Value::from));
    put("REQUEST_BASE_DELAY", g.request_base_delay_ms.map(Value::from));
    put("CREDENTIAL_SWITCH_MAX_RETRIES", g.credential_switch_max_retries.map(Value::from));
    put("MAX_ERROR_COUNT", g.max_error_count.map(Value::from));
    put("CRON_REFRESH_TOKEN", g.cron_refresh_token.map(Value::from));
    put("CRON_NEAR_MINUTES", g.cron_near_minutes.map(Value::from));
    put("REFRESH_TOKENS_AT_STARTUP", g.refresh_tokens_at_startup.map(Value::from));
    put("SYSTEM_PROMPT_MODE", g.system_prompt_mode.clone().map(Value::from));
    put("PROMPT_LOG_MODE", g.prompt_log_mode.clone().map(Value::from));
    put("PROXY_URL", g.proxy_url.clone().map(Value::from));
    put("PROXY_ENABLED_PROVIDERS", g.proxy_enabled_providers.as_ref().and_then(|v| j(v)));
    Value::Object(m)
}

/// The stored plugins document with the spec's plugins laid over it; `None` when the spec sets none.
pub fn plugins_doc(current: Option<&Value>, g: &GatewaySettings) -> Option<Value> {
    let spec = g.plugins.as_ref()?;
    let mut doc = current.cloned().filter(Value::is_object).unwrap_or_else(|| serde_json::json!({"plugins": {}}));
    if !doc.get("plugins").is_some_and(Value::is_object) {
        doc["plugins"] = serde_json::json!({});
    }
    for (name, p) in spec {
        let mut entry = serde_json::json!({"enabled": p.enabled});
        if let Some(d) = &p.description {
            entry["description"] = Value::from(d.clone());
        } else if let Some(d) = doc["plugins"].get(name).and_then(|e| e.get("description")).cloned() {
            entry["description"] = d;
        }
        doc["plugins"][name] = entry;
    }
    Some(doc)
}

mod erased {
    /// Serializes spec values (which are always representable as JSON).
    pub trait ToJson {
        fn to_json(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> ToJson for T {
        fn to_json(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
        }
    }
}
