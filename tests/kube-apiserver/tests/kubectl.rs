//! The test server driven by the real kubectl (skipped, with a message, when kubectl is absent).

mod common;

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::Duration;

use common::{eventually, within};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::ApiResource;
use poolgate_kube_apiserver::TestApiServer;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.test.poolgate.dev
spec:
  group: test.poolgate.dev
  names: {kind: Gadget, plural: gadgets, singular: gadget, shortNames: [gd]}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Phase, type: string, jsonPath: .status.phase}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer}
              color: {type: string, enum: [red, blue], default: red}
          status:
            type: object
            properties:
              phase: {type: string}
"#;

const GADGET: &str = r#"
apiVersion: test.poolgate.dev/v1
kind: Gadget
metadata:
  name: g1
  finalizers: [test.poolgate.dev/hold]
spec:
  size: 3
"#;

fn kubectl_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join("kubectl")).find(|p| p.is_file())
}

/// Runs kubectl against a server, or `None` (with a printed message) when kubectl is absent.
struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
    dir: tempfile::TempDir,
}

impl Kubectl {
    fn new(server: &TestApiServer) -> Option<Self> {
        let Some(bin) = kubectl_binary() else {
            println!("SKIPPED: kubectl is not on PATH; the kubectl tests need it");
            return None;
        };
        Some(Self { bin, kubeconfig: server.kubeconfig_path().to_path_buf(), dir: tempfile::tempdir().unwrap() })
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Runs to completion (at most 30 s) and returns the output.
    async fn run(&self, args: &[&str]) -> Output {
        let out = within(30, &format!("kubectl {args:?}"), self.command(args).output()).await.unwrap();
        println!(
            "$ kubectl {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs and expects success; returns stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(out.status.success(), "kubectl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn write(&self, name: &str, content: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        p.display().to_string()
    }
}

fn gadgets(server: &TestApiServer) -> Api<DynamicObject> {
    let ar = ApiResource {
        group: "test.poolgate.dev".into(),
        version: "v1".into(),
        api_version: "test.poolgate.dev/v1".into(),
        kind: "Gadget".into(),
        plural: "gadgets".into(),
    };
    Api::default_namespaced_with(server.client(), &ar)
}

async fn setup(k: &Kubectl) {
    let crd = k.write("crd.yaml", CRD);
    assert!(k.ok(&["apply", "--validate=false", "-f", &crd]).await.contains("created"));
    let gadget = k.write("gadget.yaml", GADGET);
    assert!(k.ok(&["apply", "--validate=false", "-f", &gadget]).await.contains("gadget.test.poolgate.dev/g1 created"));
}

#[tokio::test]
async fn kubectl_apply_get_yaml_and_printer_columns() {
    let server = TestApiServer::start().await;
    let Some(k) = Kubectl::new(&server) else { return };
    setup(&k).await;

    let yaml = k.ok(&["get", "gadget", "g1", "-o", "yaml"]).await;
    let obj: serde_json::Value = serde_norway::from_str(&yaml).unwrap();
    assert_eq!(obj["spec"], json!({"size": 3, "color": "red"}), "schema default applied");
    assert_eq!(obj["metadata"]["finalizers"], json!(["test.poolgate.dev/hold"]));
    assert!(obj["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"].is_string());

    let table = k.ok(&["get", "gd"]).await;
    let lines: Vec<Vec<&str>> = table.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines[0], ["NAME", "SIZE", "PHASE"], "{table}");
    assert_eq!(lines[1], ["g1", "3"], "{table}");

    let path = k.dir.path().join("gadget.yaml").display().to_string();
    assert!(k.ok(&["apply", "--validate=false", "-f", &path]).await.contains("unchanged"));
    std::fs::write(&path, GADGET.replace("size: 3", "size: 4")).unwrap();
    assert!(k.ok(&["apply", "--validate=false", "-f", &path]).await.contains("configured"));
    assert_eq!(gadgets(&server).get("g1").await.unwrap().data["spec"]["size"], 4);

    // Built-in kinds: client-side apply twice (the second is a strategic merge patch), tables.
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm1\ndata:\n  k: v\n";
    let cm_path = k.write("cm.yaml", cm);
    k.ok(&["apply", "--validate=false", "-f", &cm_path]).await;
    std::fs::write(&cm_path, cm.replace("k: v", "k: w")).unwrap();
    assert!(k.ok(&["apply", "--validate=false", "-f", &cm_path]).await.contains("configured"));
    assert_eq!(k.ok(&["get", "cm", "cm1", "-o", "jsonpath={.data.k}"]).await, "w");
    let ns = k.ok(&["get", "ns", "default"]).await;
    assert!(ns.lines().nth(1).is_some_and(|l| l.starts_with("default") && l.contains("Active")), "{ns}");
}

#[tokio::test]
async fn kubectl_patch_merge_json_and_status() {
    let server = TestApiServer::start().await;
    let Some(k) = Kubectl::new(&server) else { return };
    setup(&k).await;
    k.ok(&["patch", "gadget", "g1", "--type=merge", "-p", r#"{"spec":{"size":5}}"#]).await;
    assert_eq!(gadgets(&server).get("g1").await.unwrap().data["spec"]["size"], 5);
    k.ok(&["patch", "gadget", "g1", "--type=json", "-p", r#"[{"op":"replace","path":"/spec/size","value":6}]"#]).await;
    assert_eq!(gadgets(&server).get("g1").await.unwrap().data["spec"]["size"], 6);
    k.ok(&["patch", "gadget", "g1", "--subresource=status", "--type=merge", "-p", r#"{"status":{"phase":"Ready"}}"#])
        .await;
    let g = gadgets(&server).get("g1").await.unwrap();
    assert_eq!((g.data["status"]["phase"].as_str(), g.metadata.generation), (Some("Ready"), Some(3)));
    // Strategic merge (kubectl's default) is refused for custom resources, as by a real server.
    let out = k.run(&["patch", "gadget", "g1", "-p", r#"{"spec":{"size":7}}"#]).await;
    assert!(!out.status.success());
    let rows = k.ok(&["get", "gadgets"]).await;
    assert!(
        rows.lines().nth(1).is_some_and(|l| l.split_whitespace().collect::<Vec<_>>() == ["g1", "6", "Ready"]),
        "{rows}"
    );
}

#[tokio::test]
async fn kubectl_delete_waits_for_finalizer() {
    let server = TestApiServer::start().await;
    let Some(k) = Kubectl::new(&server) else { return };
    setup(&k).await;
    let mut delete = k.command(&["delete", "gadget", "g1", "--timeout=30s"]).stdout(Stdio::piped()).spawn().unwrap();
    let api = gadgets(&server);
    eventually(15, "deletionTimestamp set", || {
        let api = api.clone();
        async move { api.get("g1").await.ok()?.metadata.deletion_timestamp.map(|_| ()) }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(delete.try_wait().unwrap().is_none(), "kubectl delete must wait for the finalizer");
    api.patch("g1", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}}))).await.unwrap();
    let status = within(20, "kubectl delete returns", delete.wait()).await.unwrap();
    assert!(status.success());
    assert!(api.get_opt("g1").await.unwrap().is_none());
}

async fn next_line(lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) -> String {
    within(15, "kubectl watch output", lines.next_line()).await.unwrap().unwrap_or_default()
}

#[tokio::test]
async fn kubectl_get_watch_sees_changes() {
    let server = TestApiServer::start().await;
    let Some(k) = Kubectl::new(&server) else { return };
    setup(&k).await;
    let mut watch = k.command(&["get", "gadgets", "--watch"]).stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    assert!(next_line(&mut lines).await.starts_with("NAME"));
    assert!(next_line(&mut lines).await.starts_with("g1"));
    gadgets(&server).patch("g1", &PatchParams::default(), &Patch::Merge(json!({"spec": {"size": 9}}))).await.unwrap();
    let changed = next_line(&mut lines).await;
    assert_eq!(changed.split_whitespace().take(2).collect::<Vec<_>>(), ["g1", "9"], "{changed}");
    watch.kill().await.unwrap();
}
