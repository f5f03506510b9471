//! Garbage collection (the parts of kube-controller-manager's garbage collector and namespace
//! controller that tests notice): owner-reference cascades, foreground and orphan deletion, and
//! emptying a terminating namespace.
//!
//! Unlike the real collector this runs synchronously inside the write that removed an object, so
//! dependents are gone by the time the owner's DELETE returns; an object created with owner
//! references to objects that no longer exist is deleted right after its creation.

use serde_json::{json, Value};

use crate::delete::{self, Propagation};
use crate::meta;
use crate::store::{ObjKey, State};

/// The finalizer of an owner waiting for its dependents.
pub const FOREGROUND: &str = "foregroundDeletion";

/// Upper bound on the objects one cascade visits (guards against reference cycles).
const MAX_STEPS: usize = 100_000;

fn dependents(state: &State, uid: &str) -> Vec<ObjKey> {
    if uid.is_empty() {
        return Vec::new();
    }
    state.all().filter(|(_, v)| meta::owner_uids(v).iter().any(|u| u == uid)).map(|(k, _)| k.clone()).collect()
}

fn find_by_uid(state: &State, uid: &str) -> Option<(ObjKey, Value)> {
    state.all().find(|(_, v)| meta::uid(v) == uid).map(|(k, v)| (k.clone(), v.clone()))
}

/// Whether any object names `uid` as an owner.
pub fn has_dependents(state: &State, uid: &str) -> bool {
    !dependents(state, uid).is_empty()
}

fn drop_owner_refs(state: &mut State, key: &ObjKey, gone: &dyn Fn(&str) -> bool) {
    let Some(mut obj) = state.get(key).cloned() else {
        return;
    };
    if let Some(refs) = obj.pointer_mut("/metadata/ownerReferences").and_then(Value::as_array_mut) {
        refs.retain(|r| !gone(r.get("uid").and_then(Value::as_str).unwrap_or("")));
        if refs.is_empty() {
            meta::metadata_mut(&mut obj).remove("ownerReferences");
        }
    }
    state.put(key.clone(), obj);
}

/// Orphan deletion: dependents lose their reference to the owner.
pub fn orphan_dependents(state: &mut State, uid: &str) {
    for key in dependents(state, uid) {
        drop_owner_refs(state, &key, &|u| u == uid);
    }
}

/// Foreground deletion: deletes the owner's dependents (in the background).
pub fn delete_dependents(state: &mut State, uid: &str, removed: &mut Vec<(ObjKey, Value)>) {
    for key in dependents(state, uid) {
        delete::delete_object(state, &key, Some(Propagation::Background), removed);
    }
}

/// Deletes everything in a terminating namespace, and the namespace once it is empty.
pub fn empty_namespace(state: &mut State, ns: &str, removed: &mut Vec<(ObjKey, Value)>) {
    let keys: Vec<ObjKey> = state.all().filter(|(k, _)| k.ns == ns).map(|(k, _)| k.clone()).collect();
    for key in keys {
        delete::delete_object(state, &key, Some(Propagation::Background), removed);
    }
    finish_namespace(state, ns, removed);
}

fn finish_namespace(state: &mut State, ns: &str, removed: &mut Vec<(ObjKey, Value)>) {
    let key = ObjKey::new("namespaces", "", ns);
    let Some(obj) = state.get(&key) else {
        return;
    };
    let empty = !state.all().any(|(k, _)| k.ns == ns);
    if meta::is_deleting(obj) && meta::finalizers(obj).is_empty() && empty {
        if let Some(v) = state.remove(&key) {
            removed.push((key, v));
        }
    }
}

/// Lets owners waiting in foreground deletion go once their dependents are gone.
fn release_foreground_owner(state: &mut State, owner_uid: &str, removed: &mut Vec<(ObjKey, Value)>) {
    let Some((key, mut owner)) = find_by_uid(state, owner_uid) else {
        return;
    };
    let mut finalizers = meta::finalizers(&owner);
    if !finalizers.iter().any(|f| f == FOREGROUND) || has_dependents(state, owner_uid) {
        return;
    }
    finalizers.retain(|f| f != FOREGROUND);
    if finalizers.is_empty() {
        if let Some(v) = state.remove(&key) {
            removed.push((key, v));
        }
    } else {
        meta::set_meta(&mut owner, "finalizers", json!(finalizers));
        state.put(key, owner);
    }
}

/// An object created with owner references whose owners are all gone is garbage at once (the real
/// collector deletes it shortly after creation).
pub fn collect_if_orphaned(state: &mut State, key: &ObjKey) {
    let Some(obj) = state.get(key) else {
        return;
    };
    let owners = meta::owner_uids(obj);
    if owners.is_empty() || owners.iter().any(|u| find_by_uid(state, u).is_some()) {
        return;
    }
    let mut removed = Vec::new();
    delete::delete_object(state, key, Some(Propagation::Background), &mut removed);
    cascade(state, removed);
}

/// Runs the consequences of removing objects: dependents whose owners are all gone are deleted,
/// dangling references to removed owners are dropped, foreground owners and terminating namespaces
/// are released.
pub fn cascade(state: &mut State, mut queue: Vec<(ObjKey, Value)>) {
    let mut steps = 0;
    while let Some((key, obj)) = queue.pop() {
        steps += 1;
        if steps > MAX_STEPS {
            tracing::error!("garbage collection stopped after {MAX_STEPS} steps");
            return;
        }
        let uid = meta::uid(&obj).to_string();
        for dep in dependents(state, &uid) {
            let Some(d) = state.get(&dep) else {
                continue;
            };
            let live_owner = meta::owner_uids(d).iter().any(|u| *u != uid && find_by_uid(state, u).is_some());
            if live_owner {
                drop_owner_refs(state, &dep, &|u| u == uid);
            } else {
                delete::delete_object(state, &dep, Some(Propagation::Background), &mut queue);
            }
        }
        for owner in meta::owner_uids(&obj) {
            release_foreground_owner(state, &owner, &mut queue);
        }
        if !key.ns.is_empty() {
            finish_namespace(state, &key.ns, &mut queue);
        }
    }
}
