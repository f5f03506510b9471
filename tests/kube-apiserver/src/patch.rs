//! PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and a strategic merge patch
//! for the built-in kinds served here.

use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};

/// The patch flavours, named by their content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json`
    Merge,
    /// `application/json-patch+json`
    Json,
    /// `application/strategic-merge-patch+json`
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply; handled in `apply.rs`)
    Apply,
}

impl PatchKind {
    /// From a `Content-Type` header.
    pub fn from_content_type(ct: &str) -> ApiResult<Self> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/merge-patch+json" => Ok(PatchKind::Merge),
            "application/json-patch+json" => Ok(PatchKind::Json),
            "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(PatchKind::Apply),
            other => Err(ApiError::UnsupportedMediaType(format!(
                "the body of the request was in an unknown format - accepted media types include: \
                 application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, \
                 application/strategic-merge-patch+json (got {other:?})"
            ))),
        }
    }
}

/// Applies a JSON merge patch or JSON patch to `current`.
pub fn apply_patch(kind: PatchKind, current: &Value, body: &[u8]) -> ApiResult<Value> {
    let bad = |e: String| ApiError::BadRequest(e);
    match kind {
        PatchKind::Merge => {
            let patch: Value = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
            let mut out = current.clone();
            json_patch::merge(&mut out, &patch);
            Ok(out)
        }
        PatchKind::Json => {
            let patch: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| bad(format!("the server rejected our request due to an error in our request: {e}")))?;
            let mut out = current.clone();
            // A failed `test` op (and any other failed op) is a 422 on the real server.
            json_patch_ops(&mut out, &patch).map_err(|e| ApiError::Invalid {
                kind: String::new(),
                group: String::new(),
                name: String::new(),
                causes: vec![crate::error::Cause {
                    reason: "FieldValueInvalid".into(),
                    message: e.to_string(),
                    field: String::new(),
                }],
            })?;
            Ok(out)
        }
        PatchKind::Strategic => {
            let patch: Value = serde_json::from_slice(body).map_err(|e| bad(e.to_string()))?;
            let mut out = current.clone();
            strategic_merge(&mut out, &patch, "")?;
            Ok(out)
        }
        PatchKind::Apply => Err(ApiError::Internal("apply patches are handled by apply.rs".into())),
    }
}

/// Applies JSON patch operations one by one. Like the real server (Go's json-patch), a `test`
/// of `null` passes when the path is absent; kube-rs's finalizer helper relies on that.
fn json_patch_ops(doc: &mut Value, patch: &json_patch::Patch) -> Result<(), json_patch::PatchError> {
    for op in &patch.0 {
        if let json_patch::PatchOperation::Test(t) = op {
            if t.value.is_null() && doc.pointer(t.path.as_str()).is_none() {
                continue;
            }
        }
        json_patch::patch(doc, std::slice::from_ref(op))?;
    }
    Ok(())
}

/// The merge key of a list field of the built-in kinds (`patchMergeKey` in their Go types).
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "containers" | "initContainers" | "ephemeralContainers" | "env" | "volumes" | "imagePullSecrets" => {
            Some("name")
        }
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "ports" => Some("containerPort"),
        "ownerReferences" => Some("uid"),
        "conditions" => Some("type"),
        _ => None,
    }
}

/// Primitive lists whose patch strategy is `merge` (union) rather than replace.
fn is_merged_primitive_list(field: &str) -> bool {
    field == "finalizers"
}

fn strategic_merge(target: &mut Value, patch: &Value, field: &str) -> ApiResult<()> {
    let Some(p) = patch.as_object() else {
        *target = patch.clone();
        return Ok(());
    };
    match p.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut replaced = p.clone();
            replaced.remove("$patch");
            *target = Value::Object(replaced);
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Object(Map::new());
            return Ok(());
        }
        Some(other) if other != "merge" => {
            return Err(ApiError::BadRequest(format!("unknown patch directive {other:?} in {field}")));
        }
        _ => {}
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let t = target.as_object_mut().expect("just made an object");
    for (k, v) in p {
        if k == "$patch" || k == "$retainKeys" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(list_field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(existing)), Some(remove)) = (t.get_mut(list_field), v.as_array()) {
                existing.retain(|e| !remove.contains(e));
            }
            continue;
        }
        if v.is_null() {
            t.remove(k);
            continue;
        }
        match (t.get_mut(k), v) {
            (Some(Value::Array(existing)), Value::Array(items)) => merge_list(existing, items, k)?,
            (Some(existing), Value::Object(_)) if existing.is_object() => strategic_merge(existing, v, k)?,
            _ => {
                let mut fresh = v.clone();
                strip_directives(&mut fresh);
                t.insert(k.clone(), fresh);
            }
        }
    }
    Ok(())
}

fn merge_list(existing: &mut Vec<Value>, items: &[Value], field: &str) -> ApiResult<()> {
    if let Some(key) = merge_key(field) {
        for item in items {
            let id = item.get(key);
            let pos = existing.iter().position(|e| id.is_some() && e.get(key) == id);
            let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
            match (pos, delete) {
                (Some(i), true) => {
                    existing.remove(i);
                }
                (None, true) => {}
                (Some(i), false) => strategic_merge(&mut existing[i], item, field)?,
                (None, false) => {
                    let mut fresh = item.clone();
                    strip_directives(&mut fresh);
                    existing.push(fresh);
                }
            }
        }
    } else if is_merged_primitive_list(field) {
        for item in items {
            if !existing.contains(item) {
                existing.push(item.clone());
            }
        }
    } else {
        *existing = items.to_vec();
    }
    Ok(())
}

fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|k, _| !k.starts_with('$'));
            m.values_mut().for_each(strip_directives);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smp(current: Value, patch: Value) -> Value {
        apply_patch(PatchKind::Strategic, &current, patch.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn strategic_merges_named_lists_and_deletes() {
        let cur = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}});
        let out =
            smp(cur, json!({"spec": {"containers": [{"name": "a", "image": "z"}, {"name": "b", "$patch": "delete"}]}}));
        assert_eq!(out, json!({"spec": {"containers": [{"name": "a", "image": "z"}]}}));
    }

    #[test]
    fn strategic_unions_finalizers_and_deletes_from_primitive_lists() {
        let cur = json!({"metadata": {"finalizers": ["a"], "labels": {"x": "1", "y": "2"}}});
        let out = smp(cur.clone(), json!({"metadata": {"finalizers": ["b"], "labels": {"x": null}}}));
        assert_eq!(out, json!({"metadata": {"finalizers": ["a", "b"], "labels": {"y": "2"}}}));
        let out = smp(cur, json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}));
        assert_eq!(out["metadata"]["finalizers"], json!([]));
    }

    #[test]
    fn json_patch_test_failure_is_invalid() {
        let err =
            apply_patch(PatchKind::Json, &json!({"a": 1}), br#"[{"op":"test","path":"/a","value":2}]"#).unwrap_err();
        assert_eq!(err.code(), 422);
    }

    #[test]
    fn unknown_content_type_is_415() {
        assert_eq!(PatchKind::from_content_type("text/plain").unwrap_err().code(), 415);
    }
}
