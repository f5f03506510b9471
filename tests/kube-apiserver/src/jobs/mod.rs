//! The Job runner: the part of kube-controller-manager's job controller (and of a kubelet) that
//! poolgate needs. Each `batch/v1` Job runs its first container as a local process.
//!
//! - The container's image is looked up in a test-supplied table (image -> local binary); a tag or
//!   digest is tried with and without. The binary stands for the image's entrypoint: with
//!   `command`, argv is `[binary, command[1..]..., args...]` (`command[0]` names the program inside
//!   the image); without, `[binary, args...]`. `$(VAR)` references are expanded as the kubelet does.
//! - Environment: only the container's `env` (`value`, `valueFrom.secretKeyRef`,
//!   `configMapKeyRef`, `fieldRef` for `metadata.name`/`metadata.namespace`) and `envFrom`, plus
//!   `PATH`, `HOSTNAME` and `KUBECONFIG` pointing at this server (the stand-in for in-cluster
//!   config). An image missing from the table or a missing Secret/ConfigMap key leaves the Job
//!   active and retrying (like `ImagePullBackOff` / `CreateContainerConfigError`), with the reason
//!   in the Job's logs.
//! - Status: `startTime`, `active`, `succeeded`, `failed`, `completionTime`, conditions
//!   `SuccessCriteriaMet`+`Complete` or `FailureTarget`+`Failed`; `backoffLimit` retries with a
//!   short exponential backoff; `activeDeadlineSeconds`; `ttlSecondsAfterFinished`.
//! - Not implemented: pods, parallelism/completions > 1, indexed jobs, `suspend`, pod failure
//!   policies, volumes. A deleted Job's process is killed.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

use crate::admission::Target;
use crate::delete::{self, Propagation};
use crate::meta;
use crate::ops::{self, WriteOpts};
use crate::patch::PatchKind;
use crate::store::{EventType, ObjKey, State};

mod process;

const JOBS: &str = "jobs.batch";
const MANAGER: &str = "job-controller";
/// How long a Job without `activeDeadlineSeconds` may wait for a missing image or config.
const MAX_PENDING: Duration = Duration::from_secs(600);

/// Shared between the server handle and the runner tasks.
#[derive(Clone)]
pub struct JobRunner {
    state: Arc<Mutex<State>>,
    images: Arc<Mutex<HashMap<String, PathBuf>>>,
    logs: Arc<Mutex<HashMap<(String, String), String>>>,
    running: Arc<Mutex<HashMap<String, JoinHandle<()>>>>,
    kubeconfig: PathBuf,
    workdir: PathBuf,
    backoff: Duration,
}

impl JobRunner {
    /// A runner for a store. `backoff` is the first retry delay (doubled per failure, capped at 64x).
    pub fn new(state: Arc<Mutex<State>>, kubeconfig: PathBuf, workdir: PathBuf, backoff: Duration) -> Self {
        Self {
            state,
            images: Arc::default(),
            logs: Arc::default(),
            running: Arc::default(),
            kubeconfig,
            workdir,
            backoff,
        }
    }

    /// Replaces the image table.
    pub fn set_images(&self, images: HashMap<String, PathBuf>) {
        *self.images.lock() = images;
    }

    /// Output (stdout and stderr, line-interleaved) of every attempt of a Job, with runner notes
    /// prefixed `[job-runner]`.
    pub fn logs(&self, ns: &str, name: &str) -> String {
        self.logs.lock().get(&(ns.to_string(), name.to_string())).cloned().unwrap_or_default()
    }

    /// Kills every running Job process (their tasks own the children, killed on drop).
    pub fn stop(&self) {
        for (_, task) in self.running.lock().drain() {
            task.abort();
        }
    }

    fn log(&self, ns: &str, name: &str, line: &str) {
        let mut logs = self.logs.lock();
        let entry = logs.entry((ns.to_string(), name.to_string())).or_default();
        entry.push_str(line);
        entry.push('\n');
    }

    /// Starts the supervisor: it starts a task per new unfinished Job and stops it when the Job
    /// is deleted.
    pub fn spawn(self) -> JoinHandle<()> {
        tokio::spawn(async move {
            let (mut rx, existing) = {
                let state = self.state.lock();
                let existing: Vec<(ObjKey, Value)> =
                    state.list(JOBS, None).map(|(k, v)| (k.clone(), v.clone())).collect();
                (state.events(), existing)
            };
            let mut seen: HashSet<String> = HashSet::new();
            for (key, job) in existing {
                self.consider(&key, &job, &mut seen);
            }
            loop {
                let event = match rx.recv().await {
                    Ok(e) => e,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!("job runner missed {n} events");
                        continue;
                    }
                    Err(_) => return,
                };
                if event.res != JOBS {
                    continue;
                }
                let key = ObjKey::new(JOBS, &event.ns, meta::name(&event.object));
                if event.etype == EventType::Deleted {
                    if let Some(task) = self.running.lock().remove(meta::uid(&event.object)) {
                        task.abort();
                    }
                } else {
                    self.consider(&key, &event.object, &mut seen);
                }
                self.running.lock().retain(|_, t| !t.is_finished());
            }
        })
    }

    fn consider(&self, key: &ObjKey, job: &Value, seen: &mut HashSet<String>) {
        let uid = meta::uid(job).to_string();
        if finished(job) || !seen.insert(uid.clone()) {
            return;
        }
        // A new Job with a reused name starts with fresh logs.
        self.logs.lock().remove(&(key.ns.clone(), key.name.clone()));
        let runner = self.clone();
        let key = key.clone();
        let task_uid = uid.clone();
        let task = tokio::spawn(async move { runner.run(key, task_uid).await });
        self.running.lock().insert(uid, task);
    }

    /// The current Job, if it still exists with this uid.
    fn job(&self, key: &ObjKey, uid: &str) -> Option<Value> {
        self.state.lock().get(key).filter(|j| meta::uid(j) == uid).cloned()
    }

    /// Merge-patches the Job's status through the normal write path.
    fn patch_status(&self, key: &ObjKey, uid: &str, status: Value) -> bool {
        let mut state = self.state.lock();
        if state.get(key).is_none_or(|j| meta::uid(j) != uid) {
            return false;
        }
        let Some(rt) = state.type_by_key(JOBS) else {
            return false;
        };
        let t = Target { rt, version: "v1".into(), ns: key.ns.clone() };
        let opts = WriteOpts { manager: MANAGER.into(), status: true, dry_run: false };
        let body = json!({"status": status}).to_string();
        match ops::patch(&mut state, &t, &key.name, PatchKind::Merge, body.as_bytes(), &opts, false) {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!("job runner could not update {}/{}: {e}", key.ns, key.name);
                false
            }
        }
    }

    async fn run(self, key: ObjKey, uid: String) {
        let Some(job) = self.job(&key, &uid) else {
            return;
        };
        let started = Instant::now();
        let deadline = job.pointer("/spec/activeDeadlineSeconds").and_then(Value::as_u64).map(Duration::from_secs);
        let backoff_limit = job.pointer("/spec/backoffLimit").and_then(Value::as_u64).unwrap_or(6);
        let start_time = meta::now();
        let mut failed = job.pointer("/status/failed").and_then(Value::as_u64).unwrap_or(0);
        let mut attempt = 0u64;
        let mut waiting_for = String::new();
        loop {
            attempt += 1;
            let remaining = deadline.unwrap_or(MAX_PENDING).saturating_sub(started.elapsed());
            if remaining.is_zero() {
                return self
                    .finish(
                        &key,
                        &uid,
                        false,
                        failed,
                        "DeadlineExceeded",
                        "Job was active longer than specified deadline",
                    )
                    .await;
            }
            let Some(job) = self.job(&key, &uid) else {
                return;
            };
            let spec = match self.prepare(&job) {
                Ok(spec) => spec,
                Err(reason) => {
                    if reason != waiting_for {
                        self.log(&key.ns, &key.name, &format!("[job-runner] waiting: {reason}"));
                        waiting_for = reason;
                    }
                    attempt -= 1;
                    self.patch_status(&key, &uid, json!({"startTime": start_time, "active": 1}));
                    tokio::time::sleep(Duration::from_millis(250).min(remaining)).await;
                    continue;
                }
            };
            self.patch_status(&key, &uid, json!({"startTime": start_time, "active": 1, "ready": 0}));
            self.log(&key.ns, &key.name, &format!("[job-runner] attempt {attempt}: {}", spec.describe()));
            match self.execute(&key, spec, remaining).await {
                Some(true) => {
                    return self
                        .finish(
                            &key,
                            &uid,
                            true,
                            failed,
                            "CompletionsReached",
                            "Reached expected number of succeeded pods",
                        )
                        .await
                }
                Some(false) => {
                    failed += 1;
                    if failed > backoff_limit {
                        return self
                            .finish(
                                &key,
                                &uid,
                                false,
                                failed,
                                "BackoffLimitExceeded",
                                "Job has reached the specified backoff limit",
                            )
                            .await;
                    }
                    self.patch_status(&key, &uid, json!({"active": null, "ready": null, "failed": failed}));
                    let delay = self.backoff * 2u32.pow(u32::try_from(failed - 1).unwrap_or(6).min(6));
                    tokio::time::sleep(delay.min(remaining)).await;
                }
                None => {
                    return self
                        .finish(
                            &key,
                            &uid,
                            false,
                            failed + 1,
                            "DeadlineExceeded",
                            "Job was active longer than specified deadline",
                        )
                        .await;
                }
            }
        }
    }

    async fn finish(&self, key: &ObjKey, uid: &str, success: bool, failed: u64, reason: &str, message: &str) {
        let now = meta::now();
        let cond = |t: &str| {
            json!({"type": t, "status": "True", "reason": reason, "message": message,
            "lastProbeTime": now, "lastTransitionTime": now})
        };
        let mut status =
            json!({"active": null, "ready": 0, "failed": if failed > 0 { json!(failed) } else { Value::Null }});
        if success {
            status["succeeded"] = json!(1);
            status["completionTime"] = json!(now);
            status["conditions"] = json!([cond("SuccessCriteriaMet"), cond("Complete")]);
        } else {
            status["conditions"] = json!([cond("FailureTarget"), cond("Failed")]);
        }
        let outcome = if success { "succeeded" } else { "failed" };
        self.log(&key.ns, &key.name, &format!("[job-runner] job {outcome}: {reason}"));
        if !self.patch_status(key, uid, status) {
            return;
        }
        let ttl = self.job(key, uid).and_then(|j| j.pointer("/spec/ttlSecondsAfterFinished").and_then(Value::as_u64));
        if let Some(ttl) = ttl {
            tokio::time::sleep(Duration::from_secs(ttl)).await;
            let mut state = self.state.lock();
            if state.get(key).is_some_and(|j| meta::uid(j) == uid) {
                let mut removed = Vec::new();
                delete::delete_object(&mut state, key, Some(Propagation::Background), &mut removed);
                crate::gc::cascade(&mut state, removed);
            }
        }
    }
}

fn finished(job: &Value) -> bool {
    job.pointer("/status/conditions").and_then(Value::as_array).into_iter().flatten().any(|c| {
        matches!(c.get("type").and_then(Value::as_str), Some("Complete") | Some("Failed"))
            && c.get("status").and_then(Value::as_str) == Some("True")
    })
}
