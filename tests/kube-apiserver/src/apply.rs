//! Server-side apply (`application/apply-patch+yaml`): merge an applied configuration into the
//! live object, track what each field manager applied, and report conflicts as 409.
//!
//! Maps merge per key and associative lists per element (see `listkeys.rs`); fields (and list
//! elements) an applier stops applying are removed unless another manager owns them. Other lists
//! are atomic.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult, Cause};
use crate::fields::{self, Entry, FieldPath, Scope};
use crate::listkeys::{self, ListKeys};
use crate::meta;

/// One apply request.
pub struct ApplyRequest<'a> {
    /// The applied configuration (parsed YAML/JSON).
    pub config: Value,
    /// `fieldManager` (required for apply).
    pub manager: &'a str,
    /// `force=true`.
    pub force: bool,
    /// Which part of the object the request may change.
    pub scope: Scope,
    /// apiVersion recorded in managed fields.
    pub api_version: &'a str,
    /// Which lists are associative.
    pub keys: ListKeys<'a>,
}

/// Restricts an applied configuration to what the scope may change.
fn scoped_config(config: &Value, scope: Scope) -> Value {
    let mut out = json!({});
    let Some(map) = config.as_object() else {
        return out;
    };
    for (k, v) in map {
        let keep = match scope {
            Scope::All => true,
            Scope::NoStatus => k != "status",
            Scope::Status => k == "status",
        };
        if k == "metadata" && scope != Scope::Status {
            let mut m = serde_json::Map::new();
            for (mk, mv) in v.as_object().into_iter().flatten() {
                if ["labels", "annotations", "finalizers", "ownerReferences"].contains(&mk.as_str()) {
                    m.insert(mk.clone(), mv.clone());
                }
            }
            out["metadata"] = Value::Object(m);
        } else if keep && k != "metadata" && k != "apiVersion" && k != "kind" {
            out[k.as_str()] = v.clone();
        }
    }
    out
}

/// Removes dropped fields. Key fields of list elements stay while the element has other fields;
/// an element left with nothing but dropped keys goes as a whole (deepest elements first).
fn remove_fields(obj: &mut Value, dropped: &BTreeSet<FieldPath>) {
    let is_key_field =
        |p: &FieldPath| p.len() >= 2 && listkeys::segment_keys(&p[p.len() - 2]).iter().any(|k| Some(k) == p.last());
    for p in dropped.iter().filter(|p| !is_key_field(p)) {
        meta::remove_at(obj, p);
    }
    let elements: BTreeSet<FieldPath> = dropped.iter().flat_map(element_prefixes).collect();
    for e in elements.iter().rev() {
        let keys = listkeys::segment_keys(e.last().map_or("", String::as_str));
        let only_dropped_keys = meta::value_at(obj, e).and_then(Value::as_object).is_some_and(|m| {
            m.keys().all(|k| keys.contains(k) && dropped.contains(&[e.as_slice(), std::slice::from_ref(k)].concat()))
        });
        if only_dropped_keys {
            meta::remove_at(obj, e);
        }
    }
}

/// The prefixes of a path that end at an associative-list element.
fn element_prefixes(p: &FieldPath) -> Vec<FieldPath> {
    (1..=p.len()).filter(|&i| listkeys::is_element(&p[i - 1])).map(|i| p[..i].to_vec()).collect()
}

fn path_string(p: &FieldPath) -> String {
    format!(".{}", p.join("."))
}

/// Computes the object that results from applying `req` to `current` (`None`: the object does not
/// exist yet and is created from the configuration). Managed fields of the result are updated.
pub fn apply(current: Option<&Value>, req: ApplyRequest<'_>) -> ApiResult<Value> {
    let mut config = req.config.clone();
    meta::strip_nulls(&mut config);
    let applied = scoped_config(&config, req.scope);
    let applied_set = fields::leaves(&applied, req.scope, &req.keys);
    let entry = |fields: BTreeSet<FieldPath>| Entry {
        manager: req.manager.to_string(),
        operation: "Apply".into(),
        subresource: req.scope.subresource().map(String::from),
        api_version: req.api_version.to_string(),
        time: meta::now(),
        fields,
    };

    let Some(current) = current else {
        // Create: the configuration is the object (status is dropped later for types with a
        // status subresource, like any create).
        let mut obj = config;
        fields::write(&mut obj, &[entry(applied_set)]);
        return Ok(obj);
    };

    let mut entries = fields::read(current);
    let previous = entries
        .iter()
        .find(|e| e.is_for(req.manager, "Apply", req.scope))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let owned_by_others = |p: &FieldPath, entries: &[Entry]| {
        entries.iter().filter(|e| e.manager != req.manager).any(|e| e.fields.iter().any(|q| fields::overlaps(p, q)))
    };

    let mut candidate = current.clone();
    // Fields the manager applied before and not now are removed, unless another manager owns them
    // or they are re-applied at the same or a deeper path (the merge below rewrites those).
    let dropped: BTreeSet<FieldPath> = previous
        .difference(&applied_set)
        .filter(|p| !owned_by_others(p, &entries) && !applied_set.iter().any(|a| a.starts_with(p)))
        .cloned()
        .collect();
    remove_fields(&mut candidate, &dropped);
    listkeys::merge(&mut candidate, &applied, &mut Vec::new(), &req.keys);

    let conflicts = find_conflicts(current, &candidate, &entries, &applied_set, req.manager);
    if !conflicts.is_empty() && !req.force {
        return Err(conflict_error(&conflicts));
    }
    for e in entries.iter_mut().filter(|e| e.manager != req.manager) {
        e.fields.retain(|q| {
            let forced = conflicts.iter().any(|(m, p)| *m == e.manager && p == q);
            !forced && meta::value_at(&candidate, q).is_some()
        });
    }
    match entries.iter_mut().find(|e| e.is_for(req.manager, "Apply", req.scope)) {
        Some(e) => *e = entry(applied_set),
        None => entries.push(entry(applied_set)),
    }
    fields::write(&mut candidate, &entries);
    Ok(candidate)
}

/// Fields owned by another manager whose value the apply would change.
fn find_conflicts(
    current: &Value,
    candidate: &Value,
    entries: &[Entry],
    applied: &BTreeSet<FieldPath>,
    manager: &str,
) -> Vec<(String, FieldPath)> {
    let mut out = Vec::new();
    for e in entries.iter().filter(|e| e.manager != manager) {
        for q in &e.fields {
            let touched = applied.iter().any(|p| fields::overlaps(p, q));
            if touched && meta::value_at(current, q) != meta::value_at(candidate, q) {
                out.push((e.manager.clone(), q.clone()));
            }
        }
    }
    out
}

fn conflict_error(conflicts: &[(String, FieldPath)]) -> ApiError {
    let causes: Vec<Cause> = conflicts
        .iter()
        .map(|(m, p)| Cause {
            reason: "FieldManagerConflict".into(),
            message: format!("conflict with {m:?}"),
            field: path_string(p),
        })
        .collect();
    let message = match conflicts {
        [(m, p)] => format!("Apply failed with 1 conflict: conflict with {m:?}: {}", path_string(p)),
        _ => {
            let list: Vec<String> =
                conflicts.iter().map(|(m, p)| format!("- conflict with {m:?}: {}", path_string(p))).collect();
            format!("Apply failed with {} conflicts:\n{}", conflicts.len(), list.join("\n"))
        }
    };
    ApiError::Conflict { message, causes }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(config: Value, manager: &'a str, force: bool) -> ApplyRequest<'a> {
        ApplyRequest { config, manager, force, scope: Scope::NoStatus, api_version: "v1", keys: ListKeys::Builtin }
    }

    #[test]
    fn second_manager_conflicts_on_different_value_but_shares_equal_value() {
        let a = apply(None, req(json!({"spec": {"x": 1, "y": 1}}), "a", false)).unwrap();
        let err = apply(Some(&a), req(json!({"spec": {"x": 2}}), "b", false)).unwrap_err();
        assert_eq!(err.code(), 409);
        assert!(err.to_string().contains(".spec.x"), "{err}");
        let shared = apply(Some(&a), req(json!({"spec": {"x": 1}}), "b", false)).unwrap();
        assert_eq!(fields::read(&shared).len(), 2);
        let forced = apply(Some(&a), req(json!({"spec": {"x": 2}}), "b", true)).unwrap();
        assert_eq!(forced["spec"]["x"], 2);
        let a_entry = &fields::read(&forced)[0];
        assert!(!a_entry.fields.contains(&vec!["spec".to_string(), "x".to_string()]));
    }

    #[test]
    fn fields_no_longer_applied_are_removed_unless_shared() {
        let a = apply(None, req(json!({"spec": {"x": 1, "y": 1}}), "a", false)).unwrap();
        let b = apply(Some(&a), req(json!({"spec": {"y": 1}}), "b", false)).unwrap();
        let a2 = apply(Some(&b), req(json!({"spec": {}}), "a", false)).unwrap();
        assert_eq!(a2["spec"], json!({"y": 1}));
    }
}
