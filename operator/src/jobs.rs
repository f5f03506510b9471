//! The init and migration Jobs (pure builders and state parsing). Names are deterministic — a
//! migration Job is named after the hash of its source's content — so a Job is created once per
//! source version and never re-run once it succeeded.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, EnvVar, EnvVarSource, KeyToPath, PodSecurityContext, PodSpec,
    PodTemplateSpec, ResourceRequirements, SeccompProfile, Secret, SecretKeySelector, SecretVolumeSource,
    SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Resource, ResourceExt};
use poolgate_crds::ClientConfig;

use crate::context::OperatorConfig;

/// Which Job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobKind {
    /// `poolgate init` on an empty Redis.
    Init,
    /// `poolgate migrate --verify` of the source whose content hash is given.
    Migrate { hash: String },
}

/// Where the migration source comes from, with the volume items that lay its keys out as the
/// reference's directory tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceVolume {
    pub secret: bool,
    pub name: String,
    /// (key, path under the mount root), sorted by key.
    pub items: Vec<(String, String)>,
}

/// A Job's progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    Absent,
    Running,
    Succeeded,
    /// Failed for good (backoff limit or deadline), with the Job's reason and message.
    Failed(String),
}

/// Deterministic Job name (at most 63 characters).
pub fn job_name(cc_name: &str, kind: &JobKind) -> String {
    let suffix = match kind {
        JobKind::Init => "-init".to_string(),
        JobKind::Migrate { hash } => format!("-migrate-{}", &hash[..hash.len().min(10)]),
    };
    let keep = 63usize.saturating_sub(suffix.len());
    let base: String = cc_name.chars().take(keep).collect();
    format!("{}{suffix}", base.trim_end_matches('-'))
}

/// Reads a Job's state from its conditions.
pub fn job_state(job: Option<&Job>) -> JobState {
    let Some(job) = job else { return JobState::Absent };
    let conds = job.status.as_ref().and_then(|s| s.conditions.as_ref()).cloned().unwrap_or_default();
    let is = |t: &str| conds.iter().find(|c| c.type_ == t && c.status == "True");
    if is("Complete").is_some() {
        return JobState::Succeeded;
    }
    if let Some(c) = is("Failed") {
        return JobState::Failed(format!(
            "{}: {}",
            c.reason.clone().unwrap_or_else(|| "Failed".into()),
            c.message.clone().unwrap_or_default()
        ));
    }
    JobState::Running
}

fn secret_env(name: &str, r: &poolgate_crds::SecretKeyRef) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector { name: r.name.clone(), key: r.key.clone(), optional: Some(false) }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The container's command line. It never carries a secret, not even as a `$(VAR)` reference
/// (the kubelet would expand it into argv, visible in the process list): the Redis URL, API key
/// and password reach `poolgate` as Secret-backed environment variables only (`REDIS_URL`,
/// `POOLGATE_API_KEY`, `POOLGATE_ADMIN_PASSWORD`).
pub fn command(cc: &ClientConfig, kind: &JobKind, mount_root: &str) -> Vec<String> {
    let prefix = cc.spec.redis.key_prefix.clone();
    let mut c: Vec<String> = match kind {
        JobKind::Init => {
            let mut c: Vec<String> = vec!["poolgate".into(), "init".into(), "--key-prefix".into(), prefix];
            // Never print a generated credential into the Job's log.
            c.extend(["--defaults".into(), "--quiet-secrets".into()]);
            c
        }
        JobKind::Migrate { .. } => {
            let mut c: Vec<String> = vec!["poolgate".into(), "migrate".into(), "--config-dir".into()];
            c.push(format!("{}/configs", mount_root.trim_end_matches('/')));
            c.extend(["--key-prefix".into(), prefix]);
            c.extend(["--verify".into(), "--json".into()]);
            c
        }
    };
    c.shrink_to_fit();
    c
}

/// Key of the generated password in [`generated_password_secret`].
pub const GENERATED_PASSWORD_KEY: &str = "password";

/// Name of the Secret the operator generates the web UI password into when the spec names none.
pub fn generated_password_secret_name(cc_name: &str) -> String {
    let suffix = "-admin-password";
    let base: String = cc_name.chars().take(253 - suffix.len()).collect();
    format!("{base}{suffix}")
}

/// Where the init Job reads the web UI password: the spec's Secret, else the generated one.
pub fn password_ref(cc: &ClientConfig) -> poolgate_crds::SecretKeyRef {
    cc.spec.admin_password_secret_ref.clone().unwrap_or_else(|| poolgate_crds::SecretKeyRef {
        name: generated_password_secret_name(&cc.name_any()),
        key: GENERATED_PASSWORD_KEY.into(),
    })
}

/// A fresh random web UI password (244 random bits, hex).
pub fn generate_password() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// The Secret holding a generated web UI password, owned by `cc` (it goes with the ClientConfig).
pub fn generated_password_secret(cc: &ClientConfig, password: &str) -> Secret {
    let mut labels = crate::controller::managed_labels(&cc.name_any(), "admin-password");
    labels.insert("poolgate.dev/client-config".into(), cc.name_any());
    Secret {
        metadata: ObjectMeta {
            name: Some(generated_password_secret_name(&cc.name_any())),
            namespace: cc.namespace(),
            labels: Some(labels),
            owner_references: cc.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        string_data: Some([(GENERATED_PASSWORD_KEY.to_string(), password.to_string())].into()),
        type_: Some("Opaque".into()),
        ..Default::default()
    }
}

/// The Job for `kind`, owned by `cc`.
pub fn build_job(cc: &ClientConfig, kind: &JobKind, source: Option<&SourceVolume>, cfg: &OperatorConfig) -> Job {
    let name = job_name(&cc.name_any(), kind);
    let component = match kind {
        JobKind::Init => "init",
        JobKind::Migrate { .. } => "migrate",
    };
    let mut labels = crate::controller::managed_labels(&cc.name_any(), component);
    labels.insert("poolgate.dev/client-config".into(), cc.name_any());
    let mut env = vec![secret_env("REDIS_URL", &cc.spec.redis.url_secret_ref)];
    if *kind == JobKind::Init {
        env.push(secret_env("POOLGATE_API_KEY", &cc.spec.api_key_secret_ref));
        env.push(secret_env("POOLGATE_ADMIN_PASSWORD", &password_ref(cc)));
    }
    let mut annotations = BTreeMap::new();
    if let JobKind::Migrate { hash } = kind {
        annotations.insert("poolgate.dev/source-hash".to_string(), hash.clone());
    }
    let (volumes, mounts) = match (kind, source) {
        (JobKind::Migrate { .. }, Some(src)) => {
            let items: Vec<KeyToPath> = src
                .items
                .iter()
                .map(|(k, p)| KeyToPath { key: k.clone(), path: p.clone(), ..Default::default() })
                .collect();
            let volume = if src.secret {
                Volume {
                    name: "migration-source".into(),
                    secret: Some(SecretVolumeSource {
                        secret_name: Some(src.name.clone()),
                        items: Some(items),
                        default_mode: Some(0o400),
                        optional: Some(false),
                        ..Default::default()
                    }),
                    ..Default::default()
                }
            } else {
                Volume {
                    name: "migration-source".into(),
                    config_map: Some(ConfigMapVolumeSource {
                        name: src.name.clone(),
                        items: Some(items),
                        default_mode: Some(0o444),
                        optional: Some(false),
                        ..Default::default()
                    }),
                    ..Default::default()
                }
            };
            let mount = VolumeMount {
                name: "migration-source".into(),
                mount_path: cfg.migration_mount_path.clone(),
                read_only: Some(true),
                ..Default::default()
            };
            (Some(vec![volume]), Some(vec![mount]))
        }
        _ => (None, None),
    };
    let quantity = |s: &str| Quantity(s.to_string());
    let container = Container {
        name: component.into(),
        image: Some(cfg.job_image.clone()),
        command: Some(command(cc, kind, &cfg.migration_mount_path)),
        env: Some(env),
        volume_mounts: mounts,
        resources: Some(ResourceRequirements {
            requests: Some([("cpu".to_string(), quantity("50m")), ("memory".to_string(), quantity("64Mi"))].into()),
            limits: Some([("memory".to_string(), quantity("256Mi"))].into()),
            ..Default::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), add: None }),
            ..Default::default()
        }),
        ..Default::default()
    };
    Job {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: cc.namespace(),
            labels: Some(labels.clone()),
            annotations: Some(annotations),
            owner_references: cc.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(cfg.job_backoff_limit),
            active_deadline_seconds: Some(cfg.job_active_deadline_seconds),
            ttl_seconds_after_finished: Some(cfg.job_ttl_seconds_after_finished),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels), ..Default::default() }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".into()),
                    service_account_name: cfg.job_service_account.clone(),
                    automount_service_account_token: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(65532),
                        seccomp_profile: Some(SeccompProfile {
                            type_: "RuntimeDefault".into(),
                            localhost_profile: None,
                        }),
                        ..Default::default()
                    }),
                    containers: vec![container],
                    volumes,
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}
