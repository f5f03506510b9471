//! Deletion: preconditions, propagation policies, finalizers, namespaces and CRDs.

use serde_json::{json, Value};

use crate::admission::Target;
use crate::error::{ApiError, ApiResult};
use crate::gc;
use crate::list::{self, ListQuery};
use crate::meta;
use crate::ops::{key, not_found, present};
use crate::store::{ObjKey, State, CRD_RES};

/// `propagationPolicy` of a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// Dependents are deleted after the owner is gone.
    Background,
    /// The owner waits (finalizer `foregroundDeletion`) until dependents are gone.
    Foreground,
    /// Dependents lose their owner reference and stay.
    Orphan,
}

/// Options of a delete.
#[derive(Debug, Clone, Default)]
pub struct DeleteOpts {
    /// `propagationPolicy`, or the type's default.
    pub propagation: Option<Propagation>,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
}

/// The outcome of a delete.
#[derive(Debug)]
pub enum Deleted {
    /// The object is gone; its last state.
    Gone(Value),
    /// The object waits on finalizers; its current state.
    Pending(Value),
}

/// DELETE of one object.
pub fn delete(state: &mut State, t: &Target, name: &str, opts: &DeleteOpts) -> ApiResult<Deleted> {
    if t.rt.key() == "namespaces" && ["default", "kube-system", "kube-public"].contains(&name) {
        return Err(ApiError::Forbidden(format!(
            "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
        )));
    }
    let key = key(t, name);
    let obj = state.get(&key).cloned().ok_or_else(|| not_found(t, name))?;
    if let Some(uid) = &opts.uid {
        if uid != meta::uid(&obj) {
            return Err(ApiError::conflict(format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                meta::uid(&obj)
            )));
        }
    }
    if let Some(rv) = &opts.resource_version {
        if Some(rv.as_str()) != meta::meta_str(&obj, "resourceVersion") {
            return Err(ApiError::conflict(format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                meta::meta_str(&obj, "resourceVersion").unwrap_or("")
            )));
        }
    }
    if opts.dry_run {
        return Ok(if meta::finalizers(&obj).is_empty() { Deleted::Gone(obj) } else { Deleted::Pending(obj) });
    }
    let mut removed = Vec::new();
    let out = delete_object(state, &key, opts.propagation, &mut removed);
    gc::cascade(state, removed);
    Ok(match out {
        Deleted::Gone(v) => Deleted::Gone(present(&v, t)),
        Deleted::Pending(v) => Deleted::Pending(present(&v, t)),
    })
}

/// Deletes an object by key without HTTP concerns; removed objects are pushed to `removed` for
/// garbage collection by the caller.
pub fn delete_object(
    state: &mut State,
    key: &ObjKey,
    propagation: Option<Propagation>,
    removed: &mut Vec<(ObjKey, Value)>,
) -> Deleted {
    let Some(mut obj) = state.get(key).cloned() else {
        return Deleted::Gone(Value::Null);
    };
    if meta::is_deleting(&obj) {
        return Deleted::Pending(obj);
    }
    // batch/v1 Jobs orphan by default, for backward compatibility (as the real server).
    let default = if key.res == "jobs.batch" { Propagation::Orphan } else { Propagation::Background };
    let policy = propagation.unwrap_or(default);
    if key.res == CRD_RES {
        remove_instances(state, &key.name, removed);
    }
    if policy == Propagation::Orphan {
        gc::orphan_dependents(state, meta::uid(&obj));
    }
    let foreground = policy == Propagation::Foreground && gc::has_dependents(state, meta::uid(&obj));
    if foreground {
        let mut f = meta::finalizers(&obj);
        f.push(gc::FOREGROUND.to_string());
        meta::set_meta(&mut obj, "finalizers", json!(f));
    }
    let is_namespace = key.res == "namespaces";
    if meta::finalizers(&obj).is_empty() && !is_namespace {
        return match state.remove(key) {
            Some(gone) => {
                removed.push((key.clone(), gone.clone()));
                Deleted::Gone(gone)
            }
            None => Deleted::Gone(obj),
        };
    }
    mark_deleting(&mut obj);
    if is_namespace {
        obj["status"] = json!({"phase": "Terminating"});
    }
    let stored = state.put(key.clone(), obj);
    if foreground {
        gc::delete_dependents(state, meta::uid(&stored), removed);
    }
    if is_namespace {
        gc::empty_namespace(state, &key.name, removed);
    }
    Deleted::Pending(state.get(key).cloned().unwrap_or(stored))
}

fn mark_deleting(obj: &mut Value) {
    let gen = obj.pointer("/metadata/generation").and_then(Value::as_i64);
    let m = meta::metadata_mut(obj);
    m.insert("deletionTimestamp".into(), json!(meta::now()));
    m.insert("deletionGracePeriodSeconds".into(), json!(0));
    // The real server bumps generation when deletion starts, so controllers see the change.
    if let Some(g) = gen.filter(|g| *g > 0) {
        m.insert("generation".into(), json!(g + 1));
    }
}

/// Deleting a CRD deletes all its instances at once (their finalizers are not waited for).
fn remove_instances(state: &mut State, crd_name: &str, removed: &mut Vec<(ObjKey, Value)>) {
    let Some(res) = state.types().find(|t| t.custom.as_ref().is_some_and(|c| c.crd_name == crd_name)).map(|t| t.key())
    else {
        return;
    };
    let keys: Vec<ObjKey> = state.list(&res, None).map(|(k, _)| k.clone()).collect();
    for k in keys {
        if let Some(v) = state.remove(&k) {
            removed.push((k, v));
        }
    }
}

/// DELETE on a collection: deletes every matching object.
pub fn delete_collection(state: &mut State, t: &Target, q: &ListQuery, opts: &DeleteOpts) -> ApiResult<Value> {
    let all = ListQuery { limit: 0, continue_token: None, ..q.clone() };
    let listed = list::list(state, t, &all)?;
    let names: Vec<(String, String)> = listed["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| (meta::meta_str(i, "namespace").unwrap_or("").to_string(), meta::name(i).to_string()))
        .collect();
    for (ns, name) in &names {
        let target = Target { ns: ns.clone(), ..t.clone() };
        delete(state, &target, name, opts)?;
    }
    Ok(listed)
}
