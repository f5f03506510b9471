//! Every kustomization renders with `kubectl kustomize`, and every document parses into its
//! k8s-openapi (or poolgate) type; the workloads follow the security and probe rules.

use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Namespace, PodSpec, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::Deserialize;
use serde_json::Value;

fn manifests() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../manifests")
}

fn render(dir: &Path) -> Option<Vec<Value>> {
    let out = match Command::new("kubectl").arg("kustomize").arg(dir).output() {
        Ok(o) => o,
        Err(_) => return None,
    };
    assert!(out.status.success(), "kubectl kustomize {}: {}", dir.display(), String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let docs = serde_norway::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).expect("YAML document"))
        .filter(|v| !v.is_null())
        .collect();
    Some(docs)
}

fn parse<T: serde::de::DeserializeOwned>(doc: &Value) -> T {
    serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{} does not parse: {e}", doc["metadata"]["name"]))
}

fn check_container(pod: &PodSpec, c: &Container, what: &str) {
    let sc = c.security_context.as_ref().unwrap_or_else(|| panic!("{what}: no securityContext"));
    assert_eq!(sc.allow_privilege_escalation, Some(false), "{what}: allowPrivilegeEscalation");
    assert_eq!(sc.read_only_root_filesystem, Some(true), "{what}: readOnlyRootFilesystem");
    let non_root = sc.run_as_non_root.or(pod.security_context.as_ref().and_then(|p| p.run_as_non_root));
    assert_eq!(non_root, Some(true), "{what}: runAsNonRoot");
    assert!(c.liveness_probe.is_some() && c.readiness_probe.is_some(), "{what}: probes");
    let requests = c.resources.as_ref().and_then(|r| r.requests.as_ref()).unwrap_or_else(|| panic!("{what}: requests"));
    assert!(requests.contains_key("cpu") && requests.contains_key("memory"), "{what}: cpu and memory requests");
}

/// Parses every document; returns (kind, name) pairs.
fn check_all(docs: &[Value]) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    for doc in docs {
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        let name = doc["metadata"]["name"].as_str().unwrap_or_default().to_string();
        match kind.as_str() {
            "CustomResourceDefinition" => drop(parse::<CustomResourceDefinition>(doc)),
            "Namespace" => drop(parse::<Namespace>(doc)),
            "ServiceAccount" => drop(parse::<ServiceAccount>(doc)),
            "Role" => drop(parse::<Role>(doc)),
            "RoleBinding" => drop(parse::<RoleBinding>(doc)),
            "Service" => drop(parse::<Service>(doc)),
            "Secret" => drop(parse::<Secret>(doc)),
            "ConfigMap" => drop(parse::<ConfigMap>(doc)),
            "NetworkPolicy" => drop(parse::<NetworkPolicy>(doc)),
            "PodDisruptionBudget" => drop(parse::<PodDisruptionBudget>(doc)),
            "HorizontalPodAutoscaler" => drop(parse::<HorizontalPodAutoscaler>(doc)),
            "ClientConfig" => drop(parse::<poolgate_crds::ClientConfig>(doc)),
            "ProviderPool" => drop(parse::<poolgate_crds::ProviderPool>(doc)),
            "Deployment" => {
                let d: Deployment = parse(doc);
                let pod = d.spec.template.spec.expect("pod spec");
                for c in &pod.containers {
                    check_container(&pod, c, &format!("Deployment {name}/{}", c.name));
                }
            }
            "StatefulSet" => {
                let s: StatefulSet = parse(doc);
                let pod = s.spec.template.spec.expect("pod spec");
                for c in &pod.containers {
                    check_container(&pod, c, &format!("StatefulSet {name}/{}", c.name));
                }
            }
            other => panic!("unexpected kind {other} ({name}): add it to this test"),
        }
        seen.push((kind, name));
    }
    seen
}

#[test]
fn every_kustomization_renders_into_valid_objects() {
    let root = manifests();
    let Some(crds) = render(&root.join("crds")) else {
        eprintln!("SKIPPED: kubectl is not installed; `kubectl kustomize` renders the manifests");
        return;
    };
    let kinds = check_all(&crds);
    assert_eq!(kinds.len(), 2);

    let base = render(&root.join("base")).expect("base");
    let seen = check_all(&base);
    for want in [
        ("Deployment", "poolgate-operator"),
        ("Deployment", "poolgate-proxy"),
        ("HorizontalPodAutoscaler", "poolgate-proxy"),
        ("PodDisruptionBudget", "poolgate-proxy"),
        ("Role", "poolgate-operator"),
        ("NetworkPolicy", "default-deny"),
    ] {
        assert!(seen.iter().any(|(k, n)| (k.as_str(), n.as_str()) == want), "base lacks {want:?}");
    }
    let proxy =
        base.iter().find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == "poolgate-proxy").expect("proxy");
    assert!(proxy["spec"].get("replicas").is_none(), "the HPA owns the proxy's replicas");
    let role: Role = parse(base.iter().find(|d| d["kind"] == "Role").expect("role"));
    for rule in role.rules.unwrap_or_default() {
        assert!(!rule.verbs.iter().any(|v| v == "*"), "no wildcard verbs");
        if rule.resources.as_deref().unwrap_or_default().iter().any(|r| r == "secrets") {
            let verbs: Vec<&str> = rule.verbs.iter().map(String::as_str).collect();
            assert!(
                verbs == ["get", "list", "watch"] || verbs == ["create"],
                "Secrets are read only, apart from creating the generated password: {verbs:?}"
            );
        }
    }

    let dev = render(&root.join("overlays/dev")).expect("dev overlay");
    let seen = check_all(&dev);
    assert!(seen.iter().any(|(k, n)| k == "StatefulSet" && n == "redis"), "dev has the Redis component");
    let redis = dev.iter().find(|d| d["kind"] == "StatefulSet").expect("redis");
    let args = redis["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(args.contains("noeviction") && args.contains("appendonly"), "{args}");
    let op =
        dev.iter().find(|d| d["metadata"]["name"] == "poolgate-operator" && d["kind"] == "Deployment").expect("op");
    let env = op["spec"]["template"]["spec"]["containers"][0]["env"].as_array().cloned().unwrap_or_default();
    let job_image = env.iter().find(|e| e["name"] == "POOLGATE_JOB_IMAGE").expect("job image env");
    assert_eq!(job_image["value"], "poolgate:dev", "the dev overlay runs Jobs from the dev image");

    let examples = render(&root.join("examples")).expect("examples");
    let seen = check_all(&examples);
    assert!(
        seen.iter().any(|(k, _)| k == "ClientConfig") && seen.iter().filter(|(k, _)| k == "ProviderPool").count() == 2
    );
}
