//! Per-kind defaulting and validation on every write ("admission" in the real server's terms):
//! Secrets, Namespaces, Jobs, CRDs (whose status the server maintains) and custom resources
//! (schema pruning, defaulting, validation).

use base64::Engine;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult, Cause};
use crate::registry::ResourceType;
use crate::{meta, schema};

/// Where a write goes.
#[derive(Debug, Clone)]
pub struct Target {
    /// The resource type.
    pub rt: ResourceType,
    /// The API version of the request.
    pub version: String,
    /// Namespace of the request ("" for cluster-scoped types or all namespaces).
    pub ns: String,
}

impl Target {
    /// `group/version` of the request.
    pub fn api_version(&self) -> String {
        self.rt.api_version(&self.version)
    }

    /// A 422 for this target.
    pub fn invalid(&self, name: &str, causes: Vec<Cause>) -> ApiError {
        ApiError::Invalid { kind: self.rt.kind.clone(), group: self.rt.group.clone(), name: name.to_string(), causes }
    }

    fn invalid_one(&self, name: &str, field: &str, reason: &str, message: &str) -> ApiError {
        ApiError::invalid(&self.rt.kind, &self.rt.group, name, field, reason, message)
    }
}

/// Defaults and validates `new` (with `old` on updates). Errors are 422s.
pub fn admit(t: &Target, old: Option<&Value>, new: &mut Value) -> ApiResult<()> {
    match t.rt.key().as_str() {
        "secrets" => {
            secret(t, new)?;
            immutable_data(t, old, new)
        }
        "configmaps" => immutable_data(t, old, new),
        "namespaces" => {
            namespace(new);
            Ok(())
        }
        "jobs.batch" => job(t, old, new),
        "customresourcedefinitions.apiextensions.k8s.io" => crd(t, new),
        _ if t.rt.custom.is_some() => custom(t, new),
        _ => Ok(()),
    }
}

fn secret(t: &Target, obj: &mut Value) -> ApiResult<()> {
    let name = meta::name(obj).to_string();
    let Some(map) = obj.as_object_mut() else {
        return Ok(());
    };
    // stringData is write-only: merged into data (base64) and never stored.
    if let Some(Value::Object(sd)) = map.remove("stringData") {
        let data = map.entry("data").or_insert_with(|| json!({}));
        if let Some(d) = data.as_object_mut() {
            for (k, v) in sd {
                let s = v.as_str().unwrap_or_default();
                d.insert(k, json!(base64::engine::general_purpose::STANDARD.encode(s)));
            }
        }
    }
    for (k, v) in map.get("data").and_then(Value::as_object).into_iter().flatten() {
        let ok = v.as_str().is_some_and(|s| base64::engine::general_purpose::STANDARD.decode(s).is_ok());
        if !ok {
            return Err(t.invalid_one(&name, &format!("data[{k}]"), "FieldValueInvalid", "must be base64-encoded"));
        }
    }
    map.entry("type").or_insert_with(|| json!("Opaque"));
    Ok(())
}

/// Secrets and ConfigMaps marked `immutable` keep their data (and stay immutable).
fn immutable_data(t: &Target, old: Option<&Value>, new: &Value) -> ApiResult<()> {
    let Some(old) = old.filter(|o| o.get("immutable").and_then(Value::as_bool) == Some(true)) else {
        return Ok(());
    };
    for field in ["data", "binaryData", "immutable"] {
        if old.get(field) != new.get(field) {
            let name = meta::name(new);
            return Err(t.invalid_one(
                name,
                field,
                "FieldValueForbidden",
                "Forbidden: field is immutable when `immutable` is set",
            ));
        }
    }
    Ok(())
}

fn namespace(obj: &mut Value) {
    if let Some(map) = obj.as_object_mut() {
        map.insert("spec".into(), json!({"finalizers": ["kubernetes"]}));
        let phase = if meta::is_deleting(&Value::Object(map.clone())) { "Terminating" } else { "Active" };
        map.insert("status".into(), json!({"phase": phase}));
    }
}

fn set_default(obj: &mut Value, pointer: &str, value: Value) {
    if obj.pointer(pointer).is_some() {
        return;
    }
    let Some((parent, key)) = pointer.rsplit_once('/') else {
        return;
    };
    if let Some(m) = obj.pointer_mut(parent).and_then(Value::as_object_mut) {
        m.insert(key.to_string(), value);
    }
}

fn job(t: &Target, old: Option<&Value>, new: &mut Value) -> ApiResult<()> {
    let name = meta::name(new).to_string();
    let containers = new.pointer("/spec/template/spec/containers").and_then(Value::as_array);
    if containers.is_none_or(|c| c.is_empty()) {
        return Err(t.invalid_one(&name, "spec.template.spec.containers", "FieldValueRequired", "Required value"));
    }
    let restart = new.pointer("/spec/template/spec/restartPolicy").and_then(Value::as_str);
    if !matches!(restart, Some("Never") | Some("OnFailure")) {
        let shown = restart.unwrap_or("Always");
        return Err(t.invalid_one(
            &name,
            "spec.template.spec.restartPolicy",
            "FieldValueNotSupported",
            &format!("Unsupported value: \"{shown}\": supported values: \"OnFailure\", \"Never\""),
        ));
    }
    for (ptr, v) in [
        ("/spec/backoffLimit", json!(6)),
        ("/spec/completions", json!(1)),
        ("/spec/parallelism", json!(1)),
        ("/spec/completionMode", json!("NonIndexed")),
        ("/spec/suspend", json!(false)),
        ("/spec/manualSelector", json!(false)),
    ] {
        set_default(new, ptr, v);
    }
    match old {
        None => {
            // The job controller's labels and selector, keyed by the Job's uid.
            let uid = meta::uid(new).to_string();
            let labels = json!({"batch.kubernetes.io/controller-uid": uid, "controller-uid": uid,
                "batch.kubernetes.io/job-name": name, "job-name": name});
            set_default(new, "/spec/template/metadata", json!({}));
            if let Some(l) = new.pointer_mut("/spec/template/metadata").and_then(Value::as_object_mut) {
                let existing = l.entry("labels").or_insert_with(|| json!({}));
                meta::deep_merge(existing, &labels);
            }
            set_default(new, "/spec/selector", json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}));
        }
        Some(old) => {
            for field in ["template", "selector", "completions"] {
                let ptr = format!("/spec/{field}");
                if old.pointer(&ptr) != new.pointer(&ptr) {
                    return Err(t.invalid_one(
                        &name,
                        &format!("spec.{field}"),
                        "FieldValueInvalid",
                        "field is immutable",
                    ));
                }
            }
        }
    }
    Ok(())
}

fn crd(t: &Target, obj: &mut Value) -> ApiResult<()> {
    let name = meta::name(obj).to_string();
    let s = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or("").to_string();
    let (group, plural, kind) = (s("/spec/group"), s("/spec/names/plural"), s("/spec/names/kind"));
    let mut causes = Vec::new();
    let mut need = |field: &str, v: &str| {
        if v.is_empty() {
            causes.push(Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value".into(),
                field: field.into(),
            });
        }
    };
    need("spec.group", &group);
    need("spec.names.plural", &plural);
    need("spec.names.kind", &kind);
    let versions = obj.pointer("/spec/versions").and_then(Value::as_array).cloned().unwrap_or_default();
    if versions.is_empty() {
        need("spec.versions", "");
    }
    if !causes.is_empty() {
        return Err(t.invalid(&name, causes));
    }
    if name != format!("{plural}.{group}") {
        return Err(t.invalid_one(
            &name,
            "metadata.name",
            "FieldValueInvalid",
            &format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    if versions.iter().filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true)).count() != 1 {
        return Err(t.invalid_one(
            &name,
            "spec.versions",
            "FieldValueInvalid",
            "must have exactly one version marked as storage version",
        ));
    }
    let storage: Vec<Value> = versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .filter_map(|v| v.get("name").cloned())
        .collect();
    let names = obj.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let mut accepted = names.clone();
    set_default(&mut accepted, "/singular", json!(kind.to_lowercase()));
    set_default(&mut accepted, "/listKind", json!(format!("{kind}List")));
    let now = obj
        .pointer("/status/conditions/0/lastTransitionTime")
        .and_then(Value::as_str)
        .map_or_else(meta::now, String::from);
    // The real server reaches Established asynchronously; this server serves the type at once.
    obj["status"] = json!({
        "acceptedNames": accepted,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
        "storedVersions": storage,
    });
    Ok(())
}

fn custom(t: &Target, obj: &mut Value) -> ApiResult<()> {
    let name = meta::name(obj).to_string();
    let Some(schema) = t.rt.custom.as_ref().and_then(|c| c.schemas.get(&t.version)) else {
        return Ok(());
    };
    let causes = schema::process(obj, schema);
    if causes.is_empty() {
        Ok(())
    } else {
        Err(t.invalid(&name, causes))
    }
}
