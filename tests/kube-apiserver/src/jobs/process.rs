//! Turning a Job's container into a local process: image table, argv, environment, and
//! running it with its output captured.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use base64::Engine;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::task::JoinHandle;

use super::JobRunner;
use crate::meta;
use crate::store::ObjKey;

impl JobRunner {
    /// Resolves the binary, arguments and environment, or says why the container cannot start.
    pub(super) fn prepare(&self, job: &Value) -> Result<ProcessSpec, String> {
        let ns = meta::meta_str(job, "namespace").unwrap_or("default");
        let container = job.pointer("/spec/template/spec/containers/0").ok_or("the Job has no container")?;
        let image = container.get("image").and_then(Value::as_str).unwrap_or("");
        let binary =
            self.resolve_image(image).ok_or_else(|| format!("image {image:?} is not in the job image table"))?;
        let pod_name = format!("{}-{}", meta::name(job), meta::random_suffix());
        let env = self.container_env(container, ns, &pod_name)?;
        let strings = |k: &str| -> Vec<String> {
            container
                .get(k)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|s| s.as_str()).map(|s| expand(s, &env)).collect())
                .unwrap_or_default()
        };
        let command = strings("command");
        let mut args: Vec<String> = command.into_iter().skip(1).collect();
        args.extend(strings("args"));
        Ok(ProcessSpec { binary, args, env, pod_name })
    }

    fn resolve_image(&self, image: &str) -> Option<PathBuf> {
        let images = self.images.lock();
        let no_digest = image.split('@').next().unwrap_or(image);
        let no_tag = match no_digest.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => repo,
            _ => no_digest,
        };
        [image, no_digest, no_tag].iter().find_map(|k| images.get(*k).cloned())
    }

    fn container_env(&self, container: &Value, ns: &str, pod_name: &str) -> Result<Vec<(String, String)>, String> {
        let mut env: Vec<(String, String)> = Vec::new();
        let state = self.state.lock();
        let lookup = |res: &str, name: &str, key: &str| -> Option<String> {
            let obj = state.get(&ObjKey::new(res, ns, name))?;
            if res == "secrets" {
                let b64 = obj.pointer(&format!("/data/{key}"))?.as_str()?;
                let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
                Some(String::from_utf8_lossy(&raw).into_owned())
            } else {
                obj.pointer(&format!("/data/{key}"))?.as_str().map(String::from)
            }
        };
        for from in container.get("envFrom").and_then(Value::as_array).into_iter().flatten() {
            let prefix = from.get("prefix").and_then(Value::as_str).unwrap_or("");
            for (res, field) in [("secrets", "secretRef"), ("configmaps", "configMapRef")] {
                let Some(r) = from.get(field) else { continue };
                let name = r.get("name").and_then(Value::as_str).unwrap_or("");
                let optional = r.get("optional").and_then(Value::as_bool) == Some(true);
                match state.get(&ObjKey::new(res, ns, name)) {
                    Some(obj) => {
                        for k in obj
                            .get("data")
                            .and_then(Value::as_object)
                            .map(|m| m.keys().cloned().collect::<Vec<_>>())
                            .unwrap_or_default()
                        {
                            if let Some(v) = lookup(res, name, &k) {
                                env.push((format!("{prefix}{k}"), v));
                            }
                        }
                    }
                    None if optional => {}
                    None => return Err(format!("{res} {name:?} not found")),
                }
            }
        }
        for e in container.get("env").and_then(Value::as_array).into_iter().flatten() {
            let Some(name) = e.get("name").and_then(Value::as_str) else { continue };
            if let Some(v) = e.get("value").and_then(Value::as_str) {
                let expanded = expand(v, &env);
                env.push((name.to_string(), expanded));
                continue;
            }
            let Some(from) = e.get("valueFrom") else {
                env.push((name.to_string(), String::new()));
                continue;
            };
            let value = if let Some(f) = from.pointer("/fieldRef/fieldPath").and_then(Value::as_str) {
                match f {
                    "metadata.name" => Some(pod_name.to_string()),
                    "metadata.namespace" => Some(ns.to_string()),
                    _ => Some(String::new()),
                }
            } else {
                let mut found = None;
                for (res, field) in [("secrets", "secretKeyRef"), ("configmaps", "configMapKeyRef")] {
                    let Some(r) = from.get(field) else { continue };
                    let obj_name = r.get("name").and_then(Value::as_str).unwrap_or("");
                    let key = r.get("key").and_then(Value::as_str).unwrap_or("");
                    let optional = r.get("optional").and_then(Value::as_bool) == Some(true);
                    found = match lookup(res, obj_name, key) {
                        Some(v) => Some(v),
                        None if optional => None,
                        None => return Err(format!("couldn't find key {key} in {res} {ns}/{obj_name}")),
                    };
                }
                found
            };
            if let Some(v) = value {
                env.push((name.to_string(), v));
            }
        }
        Ok(env)
    }

    /// Runs one attempt; `Some(success)`, or `None` when the deadline killed it.
    pub(super) async fn execute(&self, key: &ObjKey, spec: ProcessSpec, limit: Duration) -> Option<bool> {
        let mut cmd = tokio::process::Command::new(&spec.binary);
        cmd.args(&spec.args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOSTNAME", &spec.pod_name)
            .env("KUBECONFIG", &self.kubeconfig)
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(&self.workdir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                self.log(&key.ns, &key.name, &format!("[job-runner] cannot start {}: {e}", spec.binary.display()));
                return Some(false);
            }
        };
        let out = child.stdout.take().map(|s| self.pump(key, s));
        let err = child.stderr.take().map(|s| self.pump(key, s));
        let result = tokio::time::timeout(limit, child.wait()).await;
        for pump in [out, err].into_iter().flatten() {
            // Output is drained once the process exits; a grandchild holding the pipe is cut off.
            let _ = tokio::time::timeout(Duration::from_secs(2), pump).await;
        }
        match result {
            Ok(Ok(status)) => {
                self.log(&key.ns, &key.name, &format!("[job-runner] exited: {status}"));
                Some(status.success())
            }
            Ok(Err(e)) => {
                self.log(&key.ns, &key.name, &format!("[job-runner] wait failed: {e}"));
                Some(false)
            }
            Err(_) => None,
        }
    }

    fn pump<R: AsyncRead + Unpin + Send + 'static>(&self, key: &ObjKey, stream: R) -> JoinHandle<()> {
        let runner = self.clone();
        let key = key.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stream).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                runner.log(&key.ns, &key.name, &line);
            }
        })
    }
}

/// Expands `$(VAR)` from earlier variables; `$$(VAR)` escapes; unknown references stay as they are.
fn expand(s: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix("$(") {
            out.push_str("$(");
            rest = r;
        } else if let Some((name, r)) = after.strip_prefix('(').and_then(|a| a.split_once(')')) {
            match env.iter().rev().find(|(k, _)| k == name) {
                Some((_, v)) => out.push_str(v),
                None => out.push_str(&format!("$({name})")),
            }
            rest = r;
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

pub(super) struct ProcessSpec {
    binary: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    pod_name: String,
}

impl ProcessSpec {
    pub(super) fn describe(&self) -> String {
        format!("{} {:?}", self.binary.display(), self.args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_variable_references() {
        let env = vec![("A".to_string(), "1".to_string())];
        assert_eq!(expand("x$(A)y", &env), "x1y");
        assert_eq!(expand("$$(A)", &env), "$(A)");
        assert_eq!(expand("$(B) $", &env), "$(B) $");
    }
}
