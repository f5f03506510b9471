//! The resource types served: a fixed set of built-in kinds plus one type per stored CRD.

use std::collections::BTreeMap;

use serde_json::Value;

/// How a resource type is served. Built-in types are constant; CRD types are derived from the
/// stored `CustomResourceDefinition` objects each time one is written.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    /// API group, empty for the core group.
    pub group: String,
    /// Served versions, preferred (storage) version first.
    pub versions: Vec<String>,
    /// Plural resource name used in URLs.
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Kind.
    pub kind: String,
    /// Kind of the list type.
    pub list_kind: String,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Short names (`kubectl get cm`).
    pub short_names: Vec<String>,
    /// Categories (`kubectl get all`).
    pub categories: Vec<String>,
    /// Whether `/status` is a separate subresource (status and spec writes are isolated).
    pub status_subresource: bool,
    /// Whether `metadata.generation` is maintained.
    pub generation: bool,
    /// Schema and printer columns of a custom resource, per version.
    pub custom: Option<CustomInfo>,
}

/// What a CRD adds to its resource type.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CustomInfo {
    /// The CRD's name (`plural.group`).
    pub crd_name: String,
    /// `openAPIV3Schema` per version.
    pub schemas: BTreeMap<String, Value>,
    /// `additionalPrinterColumns` per version.
    pub columns: BTreeMap<String, Vec<Value>>,
}

impl ResourceType {
    /// Storage key: `plural` for the core group, `plural.group` otherwise (as in error messages).
    pub fn key(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `group/version` (or just `version` for core).
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{}", self.group, version)
        }
    }

    /// Whether the version is served.
    pub fn serves(&self, version: &str) -> bool {
        self.versions.iter().any(|v| v == version)
    }

    /// The verbs listed in discovery.
    pub fn verbs(&self) -> Vec<&'static str> {
        vec!["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
    }
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    status: bool,
    generation: bool,
}

const BUILTINS: &[Builtin] = &[
    Builtin {
        group: "",
        version: "v1",
        plural: "namespaces",
        kind: "Namespace",
        namespaced: false,
        short: &["ns"],
        status: true,
        generation: false,
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "secrets",
        kind: "Secret",
        namespaced: true,
        short: &[],
        status: false,
        generation: false,
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "configmaps",
        kind: "ConfigMap",
        namespaced: true,
        short: &["cm"],
        status: false,
        generation: false,
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "events",
        kind: "Event",
        namespaced: true,
        short: &["ev"],
        status: false,
        generation: false,
    },
    Builtin {
        group: "events.k8s.io",
        version: "v1",
        plural: "events",
        kind: "Event",
        namespaced: true,
        short: &["ev"],
        status: false,
        generation: false,
    },
    Builtin {
        group: "batch",
        version: "v1",
        plural: "jobs",
        kind: "Job",
        namespaced: true,
        short: &[],
        status: true,
        generation: true,
    },
    Builtin {
        group: "coordination.k8s.io",
        version: "v1",
        plural: "leases",
        kind: "Lease",
        namespaced: true,
        short: &[],
        status: false,
        generation: false,
    },
    Builtin {
        group: "apiextensions.k8s.io",
        version: "v1",
        plural: "customresourcedefinitions",
        kind: "CustomResourceDefinition",
        namespaced: false,
        short: &["crd", "crds"],
        status: true,
        generation: true,
    },
];

/// The built-in resource types.
pub fn builtins() -> Vec<ResourceType> {
    BUILTINS
        .iter()
        .map(|b| ResourceType {
            group: b.group.to_string(),
            versions: vec![b.version.to_string()],
            plural: b.plural.to_string(),
            singular: b.kind.to_lowercase(),
            kind: b.kind.to_string(),
            list_kind: format!("{}List", b.kind),
            namespaced: b.namespaced,
            short_names: b.short.iter().map(|s| s.to_string()).collect(),
            // `kubectl get all` lists the "all" category; of the built-ins here only Jobs are in it.
            categories: if b.plural == "jobs" { vec!["all".to_string()] } else { Vec::new() },
            status_subresource: b.status,
            generation: b.generation,
            custom: None,
        })
        .collect()
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(*k))?.as_str()
}

fn strings_at(v: &Value, path: &[&str]) -> Vec<String> {
    path.iter()
        .try_fold(v, |v, k| v.get(*k))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

/// The resource type a stored CRD defines, or `None` if the CRD is malformed (creation validates
/// CRDs, so this only skips objects written around validation).
pub fn from_crd(crd: &Value) -> Option<ResourceType> {
    let group = str_at(crd, &["spec", "group"])?.to_string();
    let plural = str_at(crd, &["spec", "names", "plural"])?.to_string();
    let kind = str_at(crd, &["spec", "names", "kind"])?.to_string();
    let singular = str_at(crd, &["spec", "names", "singular"]).map(String::from).unwrap_or_else(|| kind.to_lowercase());
    let list_kind =
        str_at(crd, &["spec", "names", "listKind"]).map(String::from).unwrap_or_else(|| format!("{kind}List"));
    let namespaced = str_at(crd, &["spec", "scope"]) != Some("Cluster");
    let mut versions = Vec::new();
    let mut info = CustomInfo { crd_name: str_at(crd, &["metadata", "name"])?.to_string(), ..CustomInfo::default() };
    let mut status_subresource = false;
    for v in crd.pointer("/spec/versions")?.as_array()? {
        let name = v.get("name")?.as_str()?.to_string();
        if v.get("served").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        status_subresource |= v.pointer("/subresources/status").is_some();
        if let Some(schema) = v.pointer("/schema/openAPIV3Schema") {
            info.schemas.insert(name.clone(), schema.clone());
        }
        if let Some(cols) = v.get("additionalPrinterColumns").and_then(Value::as_array) {
            info.columns.insert(name.clone(), cols.clone());
        }
        // The storage version is preferred in discovery.
        if v.get("storage").and_then(Value::as_bool) == Some(true) {
            versions.insert(0, name);
        } else {
            versions.push(name);
        }
    }
    Some(ResourceType {
        group,
        versions,
        plural,
        singular,
        kind,
        list_kind,
        namespaced,
        short_names: strings_at(crd, &["spec", "names", "shortNames"]),
        categories: strings_at(crd, &["spec", "names", "categories"]),
        status_subresource,
        generation: true,
        custom: Some(info),
    })
}
