//! The Job runner: Jobs run as local processes (`/bin/sh` plays the `busybox` image).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use common::{eventually, within};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use poolgate_kube_apiserver::TestApiServer;
use serde_json::json;

async fn server() -> TestApiServer {
    TestApiServer::builder().job_image("busybox", "/bin/sh").start().await.unwrap()
}

fn shell_job(name: &str, script: &str, backoff_limit: i32) -> Job {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": "busybox:1.36", "command": ["sh", "-c", script]}]
            }}
        }
    }))
    .unwrap()
}

fn condition(job: &Job, kind: &str) -> Option<String> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind && c.status == "True")
        .and_then(|c| c.reason.clone())
}

async fn finished(jobs: &Api<Job>, name: &str) -> Job {
    within(
        20,
        &format!("job {name} finishes"),
        await_condition(jobs.clone(), name, |j: Option<&Job>| {
            j.is_some_and(|j| condition(j, "Complete").is_some() || condition(j, "Failed").is_some())
        }),
    )
    .await
    .unwrap()
    .unwrap()
}

#[tokio::test]
async fn job_succeeds_with_env_from_secret_and_configmap() {
    let server = server().await;
    let client = server.client();
    let mut secret = Secret::default();
    secret.metadata.name = Some("creds".into());
    secret.string_data = Some(BTreeMap::from([("password".to_string(), "s3cret".to_string())]));
    Api::<Secret>::default_namespaced(client.clone()).create(&PostParams::default(), &secret).await.unwrap();
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("settings".into());
    cm.data = Some(BTreeMap::from([("mode".to_string(), "fast".to_string())]));
    Api::<ConfigMap>::default_namespaced(client.clone()).create(&PostParams::default(), &cm).await.unwrap();

    let mut job = shell_job("ok", "echo \"pw=$PASSWORD mode=$MODE ns=$NS greeting=$1\"", 0);
    let container = &mut job.spec.as_mut().unwrap().template.spec.as_mut().unwrap().containers[0];
    container.args = Some(vec!["sh".into(), "$(GREETING)".into()]);
    container.env = Some(
        serde_json::from_value(json!([
            {"name": "GREETING", "value": "hello"},
            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}
        ]))
        .unwrap(),
    );
    let jobs: Api<Job> = Api::default_namespaced(client);
    jobs.create(&PostParams::default(), &job).await.unwrap();

    within(20, "job completes", await_condition(jobs.clone(), "ok", conditions::is_job_completed())).await.unwrap();
    let done = jobs.get("ok").await.unwrap();
    let status = done.status.clone().unwrap();
    assert_eq!((status.succeeded, status.active, status.failed), (Some(1), None, None));
    assert!(status.start_time.is_some() && status.completion_time.is_some());
    assert_eq!(condition(&done, "Complete").as_deref(), Some("CompletionsReached"));
    let logs = server.job_logs("default", "ok");
    assert!(logs.contains("pw=s3cret mode=fast ns=default greeting=hello"), "{logs}");
}

#[tokio::test]
async fn job_retries_until_success_within_backoff_limit() {
    let server = server().await;
    let dir = tempfile::tempdir().unwrap();
    let counter = dir.path().join("count");
    let script = format!(
        "n=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}; echo attempt $n; [ $n -ge 3 ]",
        c = counter.display()
    );
    let jobs: Api<Job> = Api::default_namespaced(server.client());
    jobs.create(&PostParams::default(), &shell_job("flaky", &script, 3)).await.unwrap();
    let done = finished(&jobs, "flaky").await;
    let status = done.status.clone().unwrap();
    assert_eq!(condition(&done, "Complete").as_deref(), Some("CompletionsReached"));
    assert_eq!((status.succeeded, status.failed), (Some(1), Some(2)));
    let logs = server.job_logs("default", "flaky");
    assert!(logs.contains("attempt 1") && logs.contains("attempt 2") && logs.contains("attempt 3"), "{logs}");
}

#[tokio::test]
async fn job_fails_after_backoff_limit() {
    let server = server().await;
    let jobs: Api<Job> = Api::default_namespaced(server.client());
    jobs.create(&PostParams::default(), &shell_job("doomed", "echo failing >&2; exit 3", 1)).await.unwrap();
    let done = finished(&jobs, "doomed").await;
    assert_eq!(condition(&done, "Failed").as_deref(), Some("BackoffLimitExceeded"));
    assert_eq!(condition(&done, "Complete"), None);
    let status = done.status.unwrap();
    assert_eq!((status.failed, status.succeeded, status.active), (Some(2), None, None));
    let logs = server.job_logs("default", "doomed");
    assert_eq!(logs.lines().filter(|l| *l == "failing").count(), 2, "stderr of both attempts is captured: {logs}");
}

#[tokio::test]
async fn job_deadline_kills_the_process() {
    let server = server().await;
    let jobs: Api<Job> = Api::default_namespaced(server.client());
    let mut job = shell_job("slow", "sleep 30", 5);
    job.spec.as_mut().unwrap().active_deadline_seconds = Some(1);
    jobs.create(&PostParams::default(), &job).await.unwrap();
    let done = finished(&jobs, "slow").await;
    assert_eq!(condition(&done, "Failed").as_deref(), Some("DeadlineExceeded"));
}

#[tokio::test]
async fn job_waits_for_its_image_and_deletion_stops_it() {
    let server = TestApiServer::start().await;
    let jobs: Api<Job> = Api::default_namespaced(server.client());
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let script = format!("echo $$ > {}; sleep 30", pid_file.display());
    jobs.create(&PostParams::default(), &shell_job("later", &script, 0)).await.unwrap();
    eventually(10, "runner reports the missing image", || async {
        server.job_logs("default", "later").contains("not in the job image table").then_some(())
    })
    .await;
    let active = jobs.get("later").await.unwrap().status.unwrap().active;
    assert_eq!(active, Some(1), "a Job waiting for its image stays active");

    server.set_job_images(HashMap::from([("busybox".to_string(), PathBuf::from("/bin/sh"))]));
    let pid = eventually(10, "process starts", || async {
        std::fs::read_to_string(&pid_file).ok().and_then(|s| s.trim().parse::<u32>().ok())
    })
    .await;
    assert!(PathBuf::from(format!("/proc/{pid}")).exists());
    jobs.delete("later", &DeleteParams::background()).await.unwrap();
    eventually(10, "process is killed with its Job", || async {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Gone, or a zombie awaiting its reaper.
        (stat.is_empty() || stat.split_whitespace().nth(2) == Some("Z")).then_some(())
    })
    .await;
}

#[tokio::test]
async fn job_template_is_immutable() {
    let server = server().await;
    let jobs: Api<Job> = Api::default_namespaced(server.client());
    jobs.create(&PostParams::default(), &shell_job("fixed", "true", 0)).await.unwrap();
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "main", "image": "other"}]}}}});
    let err =
        jobs.patch("fixed", &kube::api::PatchParams::default(), &kube::api::Patch::Strategic(patch)).await.unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.code == 422 && s.message.contains("immutable")));

    // Server-side apply of the same Job again is a no-op (the operator's idempotent create).
    let pp = kube::api::PatchParams::apply("operator").force();
    let applied = shell_job("applied", "true", 0);
    let first = jobs.patch("applied", &pp, &kube::api::Patch::Apply(&applied)).await.unwrap();
    let again = jobs.patch("applied", &pp, &kube::api::Patch::Apply(&applied)).await.unwrap();
    assert_eq!(first.metadata.uid, again.metadata.uid);
    let changed = shell_job("applied", "false", 0);
    let err = jobs.patch("applied", &pp, &kube::api::Patch::Apply(&changed)).await.unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.code == 422));
}

// ---- A Controller that owns Jobs (the operator's migration pattern) ----

mod owning_controller {
    use std::sync::Arc;
    use std::time::Duration;

    use futures::StreamExt;
    use k8s_openapi::api::batch::v1::Job;
    use kube::api::{Api, Patch, PatchParams, PostParams};
    use kube::runtime::controller::{Action, Controller};
    use kube::runtime::watcher;
    use kube::{Resource, ResourceExt};
    use serde_json::json;

    use super::common::{eventually, install_widgets, widget, Widget};
    use super::{server, shell_job};

    async fn reconcile(w: Arc<Widget>, client: Arc<kube::Client>) -> Result<Action, kube::Error> {
        let ns = w.namespace().unwrap_or_default();
        let jobs: Api<Job> = Api::namespaced((*client).clone(), &ns);
        let name = format!("{}-migrate", w.name_any());
        let job = match jobs.get_opt(&name).await? {
            Some(j) => j,
            None => {
                let mut job = shell_job(&name, &format!("echo migrating size {}", w.spec.size), 0);
                job.metadata.owner_references = Some(vec![w.controller_owner_ref(&()).expect("has uid")]);
                jobs.create(&PostParams::default(), &job).await?
            }
        };
        let done = job.status.and_then(|s| s.succeeded).unwrap_or(0) > 0;
        let phase = if done { "Migrated" } else { "Migrating" };
        let status = json!({"apiVersion": "test.poolgate.dev/v1", "kind": "Widget", "status": {"phase": phase}});
        Api::<Widget>::namespaced((*client).clone(), &ns)
            .patch_status(&w.name_any(), &PatchParams::apply("widget-ctl").force(), &Patch::Apply(status))
            .await?;
        Ok(Action::await_change())
    }

    fn error_policy(_: Arc<Widget>, _: &kube::Error, _: Arc<kube::Client>) -> Action {
        Action::requeue(Duration::from_millis(200))
    }

    #[tokio::test]
    async fn controller_owning_jobs_is_retriggered_by_job_completion() {
        let server = server().await;
        let client = server.client();
        install_widgets(&client).await;
        let widgets: Api<Widget> = Api::default_namespaced(client.clone());
        let jobs: Api<Job> = Api::default_namespaced(client.clone());
        let ctl = tokio::spawn(
            Controller::new(widgets.clone(), watcher::Config::default())
                .owns(jobs.clone(), watcher::Config::default())
                .run(reconcile, error_policy, Arc::new(client.clone()))
                .for_each(|_| async {}),
        );
        widgets.create(&PostParams::default(), &widget("mig", 7)).await.unwrap();
        eventually(20, "status reaches Migrated after the Job completes", || {
            let widgets = widgets.clone();
            async move {
                let w = widgets.get("mig").await.ok()?;
                (w.status?.phase.as_deref() == Some("Migrated")).then_some(())
            }
        })
        .await;
        assert!(server.job_logs("default", "mig-migrate").contains("migrating size 7"));
        // Deleting the owner garbage-collects the Job (background propagation).
        widgets.delete("mig", &Default::default()).await.unwrap();
        // A reconcile still in flight may recreate the Job; it is collected as its owner is gone.
        eventually(10, "the owned Job is garbage-collected", || {
            let jobs = jobs.clone();
            async move { jobs.get_opt("mig-migrate").await.ok()?.is_none().then_some(()) }
        })
        .await;
        ctl.abort();
    }
}
