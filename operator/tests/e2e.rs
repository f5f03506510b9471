//! End to end on the in-process Kubernetes API server, with the real `poolgate-operator` binary
//! (two replicas, leader-elected), real `kubectl`, a real `redis-server`, Jobs running the real
//! `poolgate` CLI, and two `poolgate serve` proxies in front of a mock upstream.
//!
//! The test server's Job runner does not mount volumes; the test plays the kubelet for the
//! migration Job: it writes the Job's ConfigMap volume items (as the operator laid them out) into
//! the mount path before it lets the runner start the container.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use poolgate_crds::{ClientConfig, ProviderPool};
use poolgate_kube_apiserver::TestApiServer;
use poolgate_store::{RedisStore, Storage};
use poolgate_tests::mock_upstream::MockUpstream;
use poolgate_tests::RedisServer;
use serde_json::{json, Value};

const NS: &str = "default";
const KEY_A: &str = "sk-gateway-a";

/// A child process killed on drop, its output in a log file.
struct Proc {
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    fn spawn(mut cmd: Command, log: PathBuf) -> Self {
        let file = std::fs::File::create(&log).expect("log file");
        let err = file.try_clone().expect("log file");
        let child = cmd.stdin(Stdio::null()).stdout(file).stderr(err).spawn().expect("spawn");
        Self { child: Some(child), log }
    }
    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn target_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_poolgate-operator")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The `poolgate` binary (built by `cargo test --workspace`, or `cargo build -p poolgate-proxy`).
fn poolgate_bin() -> PathBuf {
    let p = target_dir().join("poolgate");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build -p poolgate-proxy` first (`cargo test --workspace` builds it)",
        p.display()
    );
    p
}

fn kubectl_available() -> bool {
    Command::new("kubectl").arg("version").arg("--client").output().is_ok_and(|o| o.status.success())
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    let out = Command::new("kubectl").arg("--kubeconfig").arg(kubeconfig).args(args).output().expect("run kubectl");
    assert!(out.status.success(), "kubectl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn kubectl_apply(kubeconfig: &Path, dir: &Path, name: &str, doc: &Value) {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, serde_norway::to_string(doc).expect("yaml")).expect("write manifest");
    kubectl(kubeconfig, &["apply", "--validate=false", "-f", path.to_str().unwrap_or_default()]);
}

async fn eventually<T, F, Fut>(what: &str, secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {secs}s waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn condition(conds: &[poolgate_crds::Condition], t: &str) -> (String, String) {
    conds.iter().find(|c| c.type_ == t).map(|c| (c.status.clone(), c.reason.clone())).unwrap_or_default()
}

async fn secret(client: &kube::Client, name: &str, data: &[(&str, &str)]) {
    let api: Api<Secret> = Api::namespaced(client.clone(), NS);
    let s: Secret = serde_json::from_value(json!({
        "metadata": {"name": name},
        "stringData": data.iter().map(|(k, v)| (k.to_string(), Value::from(*v))).collect::<serde_json::Map<_, _>>()
    }))
    .expect("secret");
    match api.get_opt(name).await.expect("get secret") {
        Some(_) => {
            api.replace(name, &PostParams::default(), &s).await.expect("replace secret");
        }
        None => {
            api.create(&PostParams::default(), &s).await.expect("create secret");
        }
    }
}

/// The reference fixture tree as ConfigMap data (basenames as keys; '@' is not allowed in keys).
fn fixture_config_map() -> BTreeMap<String, String> {
    fn walk(dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).expect("fixtures").flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if let Some(n) = p.file_name().and_then(|n| n.to_str()) {
                out.insert(n.replace('@', "-at-"), std::fs::read_to_string(&p).expect("read"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&poolgate_tests::fixtures_dir().join("reference/configs"), &mut out);
    out
}

/// Plays the kubelet's volume mount for a Job: writes each ConfigMap item to mountPath/path.
async fn mount_volumes(client: &kube::Client, job: &Job) {
    let Some(pod) = job.spec.as_ref().and_then(|s| s.template.spec.as_ref()) else { return };
    for v in pod.volumes.iter().flatten() {
        let Some(cm) = &v.config_map else { continue };
        let mount = pod.containers[0].volume_mounts.iter().flatten().find(|m| m.name == v.name).expect("mount");
        let data = Api::<ConfigMap>::namespaced(client.clone(), NS)
            .get(&cm.name)
            .await
            .expect("configmap")
            .data
            .unwrap_or_default();
        for item in cm.items.iter().flatten() {
            let path = Path::new(&mount.mount_path).join(&item.path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, data.get(&item.key).expect("item key")).expect("write item");
        }
    }
}

struct Operator {
    proc: Proc,
    admin: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("port")
}

fn start_operator(kubeconfig: &Path, work: &Path, name: &str, mount: &Path) -> Operator {
    let admin = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_poolgate-operator"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("KUBECONFIG", kubeconfig)
        .env("RUST_LOG", "info,kube=warn,poolgate_operator=debug")
        .args(["run", "--namespace", NS, "--job-image", "poolgate:e2e", "--status-interval-secs", "2"])
        .args(["--admin-addr", &format!("127.0.0.1:{admin}"), "--identity", name, "--job-ttl-secs", "3600"])
        .arg("--migration-mount-path")
        .arg(mount);
    Operator { proc: Proc::spawn(cmd, work.join(format!("{name}.log"))), admin }
}

fn start_proxy(work: &Path, redis_url: &str, prefix: &str, n: usize) -> (Proc, u16) {
    let port = free_port();
    let dir = work.join(format!("proxy-{n}"));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut cmd = Command::new(poolgate_bin());
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("REDIS_URL", redis_url)
        .env("REDIS_KEY_PREFIX", prefix)
        .env("RUST_LOG", "info")
        .args(["serve", "--config-dir"])
        .arg(&dir)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()]);
    (Proc::spawn(cmd, work.join(format!("proxy-{n}.log"))), port)
}

async fn http_get(url: &str) -> Option<(u16, String)> {
    let r = reqwest::Client::new().get(url).timeout(Duration::from_secs(5)).send().await.ok()?;
    let s = r.status().as_u16();
    Some((s, r.text().await.unwrap_or_default()))
}

async fn chat(port: u16, key: &str) -> u16 {
    let body = json!({"model": "m-1", "stream": false, "messages": [{"role": "user", "content": "hi"}]});
    reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/v1/chat/completions"))
        .bearer_auth(key)
        .header("model-provider", "openai-custom-e2e")
        .json(&body)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

async fn open_store(redis: &RedisServer, prefix: &str) -> RedisStore {
    RedisStore::open_connected(redis.settings(prefix)).await.expect("redis")
}

async fn pool_usage(store: &RedisStore, pool: &str) -> i64 {
    store.get_pool(pool).await.expect("pool").iter().map(|a| a.usage_count()).sum()
}

fn pool_doc(accounts: Value, generation_note: &str) -> Value {
    json!({
        "apiVersion": "poolgate.dev/v1alpha1", "kind": "ProviderPool",
        "metadata": {"name": "e2e", "namespace": NS},
        "spec": {"clientConfigRef": {"name": "gw-a"}, "providerType": "openai-custom-e2e", "accounts": accounts,
                 "_note": generation_note}
    })
}

const GW_A_ITEMS: &[(&str, &str)] = &[
    ("codex-dev-at-example.com.json", "codex/codex-dev@example.com.json"),
    ("codex-missing-at-example.com.json", "codex/codex-missing@example.com.json"),
];

fn gw_a(items: &[(&str, &str)]) -> Value {
    let items: Vec<Value> = items.iter().map(|(k, p)| json!({"key": k, "path": p})).collect();
    json!({
        "apiVersion": "poolgate.dev/v1alpha1", "kind": "ClientConfig", "metadata": {"name": "gw-a", "namespace": NS},
        "spec": {"redis": {"urlSecretRef": {"name": "redis", "key": "url"}, "keyPrefix": "a:"},
                 "apiKeySecretRef": {"name": "gateway-a", "key": "apiKey"},
                 "adminPasswordSecretRef": {"name": "gateway-a", "key": "password"},
                 "gateway": {"maxErrorCount": 7, "defaultProvider": "openai-custom-e2e"},
                 "migration": {"source": {"configMapRef": {"name": "legacy"}, "items": items}},
                 "deletionPolicy": "Delete"}})
}

fn api_account(name: &str, base: &str, display: &str) -> Value {
    json!({"name": name, "displayName": display, "settings": {"baseUrl": base},
           "credentialsSecretRef": {"name": format!("{name}-creds")}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_end_to_end() {
    if !kubectl_available() {
        eprintln!("SKIPPED: kubectl is not installed (/usr/bin/kubectl); this test drives the cluster with it");
        return;
    }
    let within = tokio::time::timeout(Duration::from_secs(360), scenario()).await;
    assert!(within.is_ok(), "the end-to-end scenario took longer than 360 s");
}

async fn scenario() {
    let poolgate = poolgate_bin();
    let work = tempfile::Builder::new().prefix("poolgate-operator-e2e").tempdir().expect("tempdir");
    let w = work.path();
    let mount = w.join("mnt");
    let redis = RedisServer::start().expect("redis");
    let mock = MockUpstream::start().await.expect("mock upstream");
    // No image mapping yet: Jobs wait (as in ImagePullBackOff) until the test has mounted volumes.
    let server = TestApiServer::builder().job_backoff(Duration::from_millis(100)).start().await.expect("api server");
    let kc = server.kubeconfig_path().to_path_buf();
    let client = server.client();

    // CRDs from the generated YAML, by kubectl.
    for f in ["clientconfigs.yaml", "providerpools.yaml"] {
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crds/yaml").join(f);
        kubectl(&kc, &["apply", "--validate=false", "-f", p.to_str().unwrap_or_default()]);
    }
    // Inputs: Secrets and the migration source.
    let url = redis.url();
    secret(&client, "redis", &[("url", &url)]).await;
    secret(&client, "gateway-a", &[("apiKey", KEY_A), ("password", "pw-a")]).await;
    secret(&client, "gateway-b", &[("apiKey", "sk-gateway-b")]).await;
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "legacy"}, "data": fixture_config_map()})).expect("cm");
    Api::<ConfigMap>::namespaced(client.clone(), NS).create(&PostParams::default(), &cm).await.expect("configmap");

    // gw-b exists before the operators start (its first reconciles race the initial listing of
    // every watch: no spurious FinalizerError may come of it).
    kubectl_apply(
        &kc,
        w,
        "gw-b",
        &json!({
        "apiVersion": "poolgate.dev/v1alpha1", "kind": "ClientConfig", "metadata": {"name": "gw-b", "namespace": NS},
        "spec": {"redis": {"urlSecretRef": {"name": "redis", "key": "url"}, "keyPrefix": "b:"},
                 "apiKeySecretRef": {"name": "gateway-b", "key": "apiKey"}}}),
    );

    let mut op1 = start_operator(&kc, w, "op-1", &mount);
    let op2 = start_operator(&kc, w, "op-2", &mount);

    // Leader election: exactly one replica leads, the other stands by.
    let leases: Api<Lease> = Api::namespaced(client.clone(), NS);
    let leader = eventually("a leader", 20, || async {
        leases.get_opt("poolgate-operator").await.ok().flatten().and_then(|l| l.spec.and_then(|s| s.holder_identity))
    })
    .await;
    let (lead, standby) = if leader == "op-1" { (&op1, &op2) } else { (&op2, &op1) };
    let ready = eventually("standby /readyz", 20, || async {
        http_get(&format!("http://127.0.0.1:{}/readyz", standby.admin)).await
    })
    .await;
    assert_eq!(ready.0, 200);
    assert!(ready.1.contains("standby"), "{}", ready.1);
    let healthz = eventually("leader /healthz", 20, || async {
        http_get(&format!("http://127.0.0.1:{}/healthz", lead.admin)).await
    })
    .await;
    assert_eq!(healthz.0, 200);

    // gw-a: migrates the fixtures (deletionPolicy Delete). gw-b: initialised by `poolgate init` (Retain).
    // Items for keys the source lacks are ignored until they appear.
    kubectl_apply(&kc, w, "gw-a", &gw_a(GW_A_ITEMS));

    // A pool applied together with the migrating ClientConfig waits for the migration (writing
    // first would make Redis non-empty: the import would be skipped or fail its verify).
    secret(&client, "early-creds", &[("apiKey", "key-early")]).await;
    kubectl_apply(
        &kc,
        w,
        "early",
        &json!({
        "apiVersion": "poolgate.dev/v1alpha1", "kind": "ProviderPool", "metadata": {"name": "early", "namespace": NS},
        "spec": {"clientConfigRef": {"name": "gw-a"}, "providerType": "openai-custom-early",
                 "accounts": [{"name": "e", "credentialsSecretRef": {"name": "early-creds"}}]}}),
    );
    let pools: Api<ProviderPool> = Api::namespaced(client.clone(), NS);
    eventually("the early pool to wait for its ClientConfig", 30, || async {
        let st = pools.get("early").await.ok()?.status?;
        (condition(&st.conditions, "Ready") == ("False".to_string(), "WaitingForClientConfig".to_string()))
            .then_some(())
    })
    .await;

    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    let migrate_job = eventually("the migration Job", 30, || async {
        jobs.list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|j| j.metadata.name.as_deref().is_some_and(|n| n.starts_with("gw-a-migrate-")))
    })
    .await;
    eventually("the init Job", 30, || async { jobs.get_opt("gw-b-init").await.ok().flatten() }).await;
    let owner = migrate_job.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(owner.first().map(|o| o.kind.as_str()), Some("ClientConfig"));
    mount_volumes(&client, &migrate_job).await;
    server.set_job_images(HashMap::from([("poolgate".to_string(), poolgate.clone())]));

    let ccs: Api<ClientConfig> = Api::namespaced(client.clone(), NS);
    // The fixtures name a token file that does not exist: the real CLI reports a partial import
    // (exit 3), the Job fails after its retries, and the failure is surfaced.
    let failed = eventually("the migration failure in status", 60, || async {
        let st = ccs.get("gw-a").await.ok()?.status?;
        (condition(&st.conditions, "Migrated") == ("False".to_string(), "JobFailed".to_string())).then_some(st)
    })
    .await;
    assert_eq!(condition(&failed.conditions, "Ready").0, "False");
    let first_job = migrate_job.metadata.name.clone().unwrap_or_default();
    assert!(server.job_logs(NS, &first_job).contains("codex-missing@example.com.json not found"));
    // Fix the source: add the missing file. New content, new Job (the failed one is not re-run).
    server.set_job_images(HashMap::new());
    let missing = json!({"access_token": "cx", "refresh_token": "cxr", "email": "missing@example.com"}).to_string();
    let mut data = fixture_config_map();
    data.insert("codex-missing-at-example.com.json".into(), missing);
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "legacy"}, "data": data})).expect("cm");
    Api::<ConfigMap>::namespaced(client.clone(), NS)
        .replace("legacy", &PostParams::default(), &cm)
        .await
        .expect("fix configmap");
    let migrate_job = eventually("the second migration Job", 30, || async {
        jobs.list(&ListParams::default())
            .await
            .ok()?
            .items
            .into_iter()
            .find(|j| j.metadata.name.as_deref().is_some_and(|n| n.starts_with("gw-a-migrate-") && n != first_job))
    })
    .await;
    mount_volumes(&client, &migrate_job).await;
    server.set_job_images(HashMap::from([("poolgate".to_string(), poolgate.clone())]));
    for name in ["gw-a", "gw-b"] {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let st = ccs.get(name).await.ok().and_then(|c| c.status);
            if st.as_ref().is_some_and(|st| condition(&st.conditions, "Ready").0 == "True") {
                break;
            }
            if Instant::now() > deadline {
                let jobs_now = kubectl(&kc, &["get", "jobs", "-o", "yaml"]);
                panic!(
                    "{name} not Ready: {st:#?}\njobs: {jobs_now}\nmigrate logs: {}\ninit logs: {}\nop1: {}\nop2: {}",
                    server.job_logs(NS, migrate_job.metadata.name.as_deref().unwrap_or_default()),
                    server.job_logs(NS, "gw-b-init"),
                    op1.proc.logs(),
                    op2.proc.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let a = ccs.get("gw-a").await.expect("gw-a").status.expect("status");
    assert_eq!(condition(&a.conditions, "Migrated"), ("True".into(), "Succeeded".into()));
    let mig = a.migration.clone().expect("migration record");
    assert_eq!(mig.outcome, "Succeeded");
    assert_eq!(mig.job_name, migrate_job.metadata.name.clone().unwrap_or_default());
    let logs = server.job_logs(NS, &mig.job_name);
    assert!(logs.contains("exited: exit status: 0"), "migration Job logs:\n{logs}");
    assert!(!logs.contains("sk-gateway") && !logs.contains("pw-a"));
    let b = ccs.get("gw-b").await.expect("gw-b").status.expect("status");
    assert_eq!(condition(&b.conditions, "Initialized"), ("True".into(), "InitJobSucceeded".into()));
    assert!(server.job_logs(NS, "gw-b-init").contains("exited: exit status: 0"));
    // gw-b names no admin password: the operator generated one into a Secret it owns.
    let generated = b.generated_password_secret.clone().expect("generated password Secret in status").name;
    assert_eq!(generated, "gw-b-admin-password");
    let gs = Api::<Secret>::namespaced(client.clone(), NS).get(&generated).await.expect("generated Secret");
    assert_eq!(
        gs.metadata.owner_references.unwrap_or_default().first().map(|o| (o.kind.clone(), o.name.clone())),
        Some(("ClientConfig".to_string(), "gw-b".to_string()))
    );
    let generated_pw =
        String::from_utf8(gs.data.unwrap_or_default().get("password").map(|b| b.0.clone()).expect("password key"))
            .expect("utf-8");
    let init_logs = server.job_logs(NS, "gw-b-init");
    assert!(!init_logs.contains(&generated_pw) && !init_logs.contains("sk-gateway-b"), "{init_logs}");

    // Redis holds the migrated data, with the spec's config laid over it.
    let store_a = open_store(&redis, "a:").await;
    let types = store_a.list_pool_types().await.expect("types");
    assert!(
        types.contains(&"claude-kiro-oauth".to_string()) && types.contains(&"gemini-cli-oauth".to_string()),
        "{types:?}"
    );
    let kiro = store_a.get_token("claude-kiro-oauth", "2c69d0ac-b86f-43d8-9d17-0d300afc5cfd").await.expect("token");
    assert!(kiro.is_some(), "the token file laid out from KIRO_OAUTH_CREDS_FILE_PATH was migrated");
    let config = store_a.get_config().await.expect("config").expect("config present");
    assert_eq!((config["REQUIRED_API_KEY"].clone(), config["MAX_ERROR_COUNT"].clone()), (json!(KEY_A), json!(7)));
    assert_eq!(config["SERVER_PORT"], json!(3000), "migrated fields the spec does not set are kept");
    let stored = store_a.get_password().await.expect("pwd").expect("set");
    assert!(poolgate_store::password::verify("pw-a", &stored), "stored hashed: {stored}");
    let store_b = open_store(&redis, "b:").await;
    assert_eq!(store_b.get_config().await.expect("cfg").expect("cfg")["REQUIRED_API_KEY"], json!("sk-gateway-b"));
    let stored = store_b.get_password().await.expect("pwd").expect("set");
    assert!(poolgate_store::password::verify(&generated_pw, &stored), "stored hashed");
    // The early pool went on once gw-a was Ready, and the migration was not disturbed.
    eventually("the early pool Ready", 30, || async {
        let st = pools.get("early").await.ok()?.status?;
        (condition(&st.conditions, "Ready").0 == "True").then_some(())
    })
    .await;
    assert_eq!(
        store_b.get_metadata().await.expect("meta").get("initializedFrom").map(String::as_str),
        Some("cli-init")
    );

    // A ProviderPool, served by two proxies through the mock upstream.
    let base = mock.url("/v1");
    secret(&client, "one-creds", &[("apiKey", "key-one")]).await;
    kubectl_apply(&kc, w, "pool", &pool_doc(json!([api_account("one", &base, "One")]), "v1"));
    let synced = eventually("pool Ready", 30, || async {
        let p = pools.get("e2e").await.ok()?;
        let st = p.status?;
        (condition(&st.conditions, "Ready").0 == "True" && st.accounts.iter().all(|a| a.present)).then_some(st)
    })
    .await;
    let uuid_one = synced.accounts[0].uuid.clone();
    let acc = store_a.get_account("openai-custom-e2e", &uuid_one).await.expect("account in Redis");
    assert_eq!(acc.get("OPENAI_API_KEY"), Some(&json!("key-one")));
    assert_eq!(acc.custom_name(), Some("One"));

    let (mut p1, port1) = start_proxy(w, &url, "a:", 1);
    let (mut p2, port2) = start_proxy(w, &url, "a:", 2);
    for port in [port1, port2] {
        eventually("proxy /health", 30, || async {
            http_get(&format!("http://127.0.0.1:{port}/health")).await.filter(|r| r.0 == 200)
        })
        .await;
    }
    let mut ok = 0;
    for i in 0..6 {
        if chat(if i % 2 == 0 { port1 } else { port2 }, KEY_A).await == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, 6, "proxy logs:\n{}\n{}", p1.logs(), p2.logs());
    assert_eq!(mock.hits_for_key("key-one"), 6);
    // Usage shows up in `kubectl get providerpool -o yaml`.
    eventually("usage in kubectl output", 30, || async {
        let y = kubectl(&kc, &["get", "providerpool", "e2e", "-o", "yaml"]);
        let v: Value = serde_norway::from_str(&y).ok()?;
        (v["status"]["totalUsage"].as_i64()? >= 6 && v["status"]["accounts"][0]["usageCount"].as_i64()? >= 6)
            .then_some(())
    })
    .await;
    let table = kubectl(&kc, &["get", "pgpool"]);
    assert!(table.contains("openai-custom-e2e") && table.contains("True"), "{table}");

    // A client key declared in the ClientConfig works on both proxies; re-applying the resource
    // with another limit keeps the key's usage.
    const USER_KEY: &str = "maki_e2eUserKey0123456789abcdefghij";
    let user_hash = poolgate_store::ClientKey::hash(USER_KEY);
    secret(&client, "user-key", &[("key", USER_KEY)]).await;
    let with_key = |daily: i64| {
        let mut doc = gw_a(GW_A_ITEMS);
        doc["spec"]["clientKeys"] =
            json!([{"name": "friend", "keySecretRef": {"name": "user-key", "key": "key"}, "dailyLimit": daily}]);
        doc
    };
    kubectl_apply(&kc, w, "gw-a", &with_key(100));
    eventually("the declared client key to be admitted", 30, || async {
        (chat(port1, USER_KEY).await == 200).then_some(())
    })
    .await;
    assert_eq!(chat(port2, USER_KEY).await, 200);
    assert_eq!(chat(port1, USER_KEY).await, 200);
    let (settings, usage) = store_a.get_client_key(&user_hash).await.expect("read").expect("key stored");
    assert_eq!((settings.name.as_str(), settings.daily_limit, usage.today_usage), ("friend", Some(100), 3));
    assert!(!serde_json::to_string(&settings).expect("json").contains(USER_KEY), "stored hashed");
    kubectl_apply(&kc, w, "gw-a", &with_key(4));
    eventually("the new limit in Redis", 30, || async {
        let (k, _) = store_a.get_client_key(&user_hash).await.ok()??;
        (k.daily_limit == Some(4)).then_some(())
    })
    .await;
    let (_, usage) = store_a.get_client_key(&user_hash).await.expect("read").expect("key");
    assert_eq!(usage.today_usage, 3, "re-applying keeps the usage");
    assert_eq!(chat(port2, USER_KEY).await, 200);
    assert_eq!(chat(port1, USER_KEY).await, 429, "the fifth request is over the new limit");

    // Add an account and rotate a Secret: the proxies use both without a restart.
    secret(&client, "two-creds", &[("apiKey", "key-two")]).await;
    kubectl_apply(
        &kc,
        w,
        "pool",
        &pool_doc(json!([api_account("one", &base, "One"), api_account("two", &base, "Two")]), "v2"),
    );
    secret(&client, "one-creds", &[("apiKey", "key-one-rotated")]).await;
    eventually("the proxies to use the new account and the rotated key", 60, || async {
        chat(port1, KEY_A).await;
        chat(port2, KEY_A).await;
        (mock.hits_for_key("key-two") > 0 && mock.hits_for_key("key-one-rotated") > 0).then_some(())
    })
    .await;

    // Re-applying the pool while proxies take traffic loses no usage count.
    let before = eventually("usage to settle", 20, || async {
        let a = pool_usage(&store_a, "openai-custom-e2e").await;
        tokio::time::sleep(Duration::from_millis(600)).await;
        (pool_usage(&store_a, "openai-custom-e2e").await == a).then_some(a)
    })
    .await;
    let traffic = tokio::spawn(async move {
        let mut ok = 0i64;
        for i in 0..60 {
            if chat(if i % 2 == 0 { port1 } else { port2 }, KEY_A).await == 200 {
                ok += 1;
            }
        }
        ok
    });
    for i in 0..6 {
        let note = format!("reapply-{i}");
        let display = format!("One {i}");
        kubectl_apply(
            &kc,
            w,
            "pool",
            &pool_doc(json!([api_account("one", &base, &display), api_account("two", &base, "Two")]), &note),
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let served = traffic.await.expect("traffic");
    assert!(served > 0);
    eventually("every request counted", 20, || async {
        (pool_usage(&store_a, "openai-custom-e2e").await == before + served).then_some(())
    })
    .await;

    // OAuth token: seeded once; a proxy's rotation is never overwritten by the stale Secret; a
    // changed Secret is seeded again.
    secret(&client, "g-creds", &[("token.json", r#"{"access_token":"a1","refresh_token":"r1","expiry_date":1}"#)])
        .await;
    kubectl_apply(
        &kc,
        w,
        "gem",
        &json!({
        "apiVersion": "poolgate.dev/v1alpha1", "kind": "ProviderPool", "metadata": {"name": "gem", "namespace": NS},
        "spec": {"clientConfigRef": {"name": "gw-a"}, "providerType": "gemini-cli-oauth-e2e",
                 "accounts": [{"name": "g", "settings": {"projectId": "p1"}, "credentialsSecretRef": {"name": "g-creds"}}]}}),
    );
    let gem = eventually("gem seeded", 30, || async {
        let st = pools.get("gem").await.ok()?.status?;
        st.accounts.first().filter(|a| a.seeded_token_hash.is_some() && a.present).cloned()
    })
    .await;
    let store_check = open_store(&redis, "a:").await;
    assert_eq!(
        store_check.get_token("gemini-cli-oauth-e2e", &gem.uuid).await.expect("t").expect("t")["refresh_token"],
        json!("r1")
    );
    let rotated = json!({"access_token": "a2", "refresh_token": "r2", "expiry_date": 2});
    store_check.set_token("gemini-cli-oauth-e2e", &gem.uuid, &rotated).await.expect("proxy rotation");
    secret(
        &client,
        "g-creds",
        &[("token.json", r#"{"access_token":"a1","refresh_token":"r1","expiry_date":1}"#), ("unrelated", "x")],
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await; // the Secret change triggered a reconcile
    let fresh = open_store(&redis, "a:").await;
    assert_eq!(
        fresh.get_token("gemini-cli-oauth-e2e", &gem.uuid).await.expect("t"),
        Some(rotated),
        "stale Secret must not win"
    );
    secret(&client, "g-creds", &[("token.json", r#"{"access_token":"a3","refresh_token":"r3","expiry_date":3}"#)])
        .await;
    eventually("the re-authorised token", 30, || async {
        let s = open_store(&redis, "a:").await;
        (s.get_token("gemini-cli-oauth-e2e", &gem.uuid).await.ok()??["refresh_token"] == json!("r3")).then_some(())
    })
    .await;

    // A malformed Redis URL (one slash) under deletionPolicy Delete: reported without the value,
    // the deletion is blocked with a clear condition, and the skip-cleanup annotation lets it go.
    secret(&client, "redis-bad", &[("url", "redis:/:SOMEPASSWORD@127.0.0.1:6379/0")]).await;
    kubectl_apply(
        &kc,
        w,
        "gw-bad",
        &json!({
        "apiVersion": "poolgate.dev/v1alpha1", "kind": "ClientConfig", "metadata": {"name": "gw-bad", "namespace": NS},
        "spec": {"redis": {"urlSecretRef": {"name": "redis-bad", "key": "url"}, "keyPrefix": "bad:"},
                 "apiKeySecretRef": {"name": "gateway-b", "key": "apiKey"}, "deletionPolicy": "Delete"}}),
    );
    eventually("gw-bad invalid", 30, || async {
        let st = ccs.get("gw-bad").await.ok()?.status?;
        (condition(&st.conditions, "Ready") == ("False".to_string(), "InvalidRedisUrl".to_string())).then_some(())
    })
    .await;
    ccs.delete("gw-bad", &DeleteParams::default()).await.expect("delete gw-bad");
    eventually("gw-bad blocked", 30, || async {
        let st = ccs.get("gw-bad").await.ok()?.status?;
        (condition(&st.conditions, "Ready") == ("False".to_string(), "CleanupBlocked".to_string())).then_some(())
    })
    .await;
    kubectl(&kc, &["annotate", "clientconfig", "gw-bad", "poolgate.dev/skip-cleanup=true"]);
    eventually("gw-bad gone", 30, || async { ccs.get_opt("gw-bad").await.ok().filter(Option::is_none) }).await;

    // Events and metrics.
    let events = kubectl(&kc, &["get", "events.events.k8s.io", "-o", "json"]);
    assert!(events.contains("CleanupBlocked"), "no CleanupBlocked event");
    assert!(!events.contains("FinalizerError"), "a spurious FinalizerError event");
    assert!(!events.contains("SOMEPASSWORD"), "the malformed URL's password leaked into events");
    for reason in ["JobCreated", "JobFailed", "ConfigSynced", "AccountsApplied", "TokenSeeded"] {
        assert!(events.contains(reason), "no {reason} event");
    }
    for secret_value in [KEY_A, "pw-a", "key-one", "key-two", "r3"] {
        assert!(!events.contains(secret_value), "a secret value leaked into events");
    }
    let lead_admin = if leader == "op-1" { op1.admin } else { op2.admin };
    let metrics = http_get(&format!("http://127.0.0.1:{lead_admin}/metrics")).await.expect("metrics").1;
    assert!(metrics.contains("poolgate_operator_reconciles_total{controller=\"providerpool\"}"), "{metrics}");
    assert!(metrics.contains("poolgate_operator_leader 1"));

    // Fail over: stop the leader gracefully; the standby takes the lease and goes on.
    p1.terminate();
    p2.terminate();
    let (mut survivor, stopped_name) = if leader == "op-1" {
        op1.proc.terminate();
        (op2, "op-1")
    } else {
        let mut o2 = op2;
        o2.proc.terminate();
        (op1, "op-2")
    };
    eventually("the standby to lead", 30, || async {
        let h = leases.get_opt("poolgate-operator").await.ok().flatten()?.spec?.holder_identity?;
        (h != stopped_name).then_some(())
    })
    .await;

    // A refused duplicate pool never deletes what its (retained) sibling created, and takes the
    // type over promptly once the sibling is gone.
    secret(&client, "dup-creds", &[("apiKey", "key-dup")]).await;
    let dup = |name: &str, account: &str| {
        json!({"apiVersion": "poolgate.dev/v1alpha1", "kind": "ProviderPool", "metadata": {"name": name, "namespace": NS},
               "spec": {"clientConfigRef": {"name": "gw-b"}, "providerType": "openai-custom-dup",
                        "accounts": [{"name": account, "credentialsSecretRef": {"name": "dup-creds"}}]}})
    };
    kubectl_apply(&kc, w, "dup1", &dup("dup1", "first"));
    let first = eventually("dup1 Ready", 30, || async {
        let st = pools.get("dup1").await.ok()?.status?;
        (condition(&st.conditions, "Ready").0 == "True" && st.accounts.iter().all(|a| a.present)).then_some(st)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await; // a later creation time
    kubectl_apply(&kc, w, "dup2", &dup("dup2", "second"));
    eventually("dup2 refused", 30, || async {
        let st = pools.get("dup2").await.ok()?.status?;
        (condition(&st.conditions, "Ready").1 == "DuplicateProviderType").then_some(())
    })
    .await;
    pools.delete("dup1", &DeleteParams::default()).await.expect("delete dup1");
    let took_over = Instant::now();
    eventually("dup2 to take the type over", 20, || async {
        let st = pools.get("dup2").await.ok()?.status?;
        (condition(&st.conditions, "Ready").0 == "True" && st.accounts.iter().all(|a| a.present)).then_some(())
    })
    .await;
    assert!(took_over.elapsed() < Duration::from_secs(15), "took {:?}", took_over.elapsed());
    tokio::time::sleep(Duration::from_secs(5)).await; // a few status refreshes of dup2
    let fresh_b = open_store(&redis, "b:").await;
    assert!(
        fresh_b.get_account("openai-custom-dup", &first.accounts[0].uuid).await.is_ok(),
        "the retained account of dup1 must survive dup2"
    );
    pools.delete("dup2", &DeleteParams::default()).await.expect("delete dup2");
    eventually("dup2 gone", 30, || async { pools.get_opt("dup2").await.ok().filter(Option::is_none) }).await;

    // Delete with each deletionPolicy.
    let keys_b_before = store_b.dump().await.expect("dump b");
    pools.delete("gem", &DeleteParams::default()).await.expect("delete gem");
    pools.delete("e2e", &DeleteParams::default()).await.expect("delete e2e");
    pools.delete("early", &DeleteParams::default()).await.expect("delete early");
    eventually("pools gone", 30, || async {
        pools.list(&ListParams::default()).await.ok().filter(|l| l.items.is_empty())
    })
    .await;
    let after_pools = open_store(&redis, "a:").await.dump().await.expect("dump a");
    assert!(
        !after_pools.keys().any(|k| k.contains("openai-custom-e2e") || k.contains("gemini-cli-oauth-e2e")),
        "{:?}",
        after_pools.keys()
    );
    assert!(after_pools.keys().any(|k| k == "a:pools:claude-kiro-oauth"), "migrated pools are the ClientConfig's");
    ccs.delete("gw-a", &DeleteParams::default()).await.expect("delete gw-a");
    ccs.delete("gw-b", &DeleteParams::default()).await.expect("delete gw-b");
    eventually("ClientConfigs gone", 30, || async {
        ccs.list(&ListParams::default()).await.ok().filter(|l| l.items.is_empty())
    })
    .await;
    let left_a = open_store(&redis, "a:").await.dump().await.expect("dump a");
    assert!(left_a.is_empty(), "Delete must clean prefix a: entirely, left {:?}", left_a.keys());
    let left_b = open_store(&redis, "b:").await.dump().await.expect("dump b");
    assert_eq!(
        left_b.keys().collect::<Vec<_>>(),
        keys_b_before.keys().collect::<Vec<_>>(),
        "Retain leaves b: as it was"
    );
    assert!(jobs.list(&ListParams::default()).await.expect("jobs").items.is_empty(), "Jobs go with their owner");
    survivor.proc.terminate();
    let log = survivor.proc.logs();
    assert!(!log.contains(KEY_A) && !log.contains("key-one"), "a secret leaked into the operator log");
    assert!(!log.contains("SOMEPASSWORD") && !log.contains(&generated_pw), "a secret leaked into the operator log");
    assert!(!log.contains('\u{1b}'), "ANSI colour codes in the operator log");
}
