//! The committed CRD YAML equals what the Rust types generate. Regenerate with
//! `UPDATE_CRDS=1 cargo test -p poolgate-crds --test drift` (or `poolgate-operator crd --out crds/yaml`).

use std::path::PathBuf;

#[test]
fn committed_crd_yaml_matches_the_types() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let update = std::env::var_os("UPDATE_CRDS").is_some();
    let mut drift = Vec::new();
    // The same YAML is committed twice: here, and in the CRDs' kustomization (kustomize cannot
    // load files from outside its root).
    let rendered = poolgate_crds::render_all().expect("render CRDs");
    for (dir, (file, yaml)) in
        [root.join("yaml"), root.join("../manifests/crds")].iter().flat_map(|d| rendered.iter().map(move |r| (d, r)))
    {
        let path = dir.join(file);
        if update {
            std::fs::write(&path, yaml).expect("write CRD");
            continue;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        if committed != *yaml {
            drift.push(path.display().to_string());
        }
    }
    assert!(
        drift.is_empty(),
        "CRD YAML out of date: {drift:?}; run `UPDATE_CRDS=1 cargo test -p poolgate-crds --test drift` and commit"
    );
}

#[test]
fn crds_carry_printer_columns_short_names_and_cel_rules() {
    use kube::CustomResourceExt;
    let pool = serde_json::to_string(&poolgate_crds::ProviderPool::crd()).expect("json");
    for needle in [
        "providerType is immutable",
        "account names must be unique",
        "\"x-kubernetes-list-type\":\"map\"",
        "\"pgpool\"",
        "\"name\":\"Healthy\"",
        "\"name\":\"Usage\"",
    ] {
        assert!(pool.contains(needle), "ProviderPool CRD lacks {needle}");
    }
    let cc = serde_json::to_string(&poolgate_crds::ClientConfig::crd()).expect("json");
    for needle in
        ["keyPrefix is immutable", "set exactly one of configMapRef and secretRef", "\"default\":\"aiclient:\""]
    {
        assert!(cc.contains(needle), "ClientConfig CRD lacks {needle}");
    }
}
