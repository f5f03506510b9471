//! The write verbs: create, update, patch (including apply). Each runs under the store lock from
//! validation to commit, so requests are linearizable. Deletes are in `delete.rs`, lists in
//! `list.rs`.

use serde_json::{json, Value};

use crate::admission::{self, Target};
use crate::apply::{self, ApplyRequest};
use crate::error::{ApiError, ApiResult};
use crate::fields::{self, Scope};
use crate::gc;
use crate::listkeys::ListKeys;
use crate::meta;
use crate::patch::{self, PatchKind};
use crate::store::{ObjKey, State};

/// Options common to writes.
#[derive(Debug, Clone)]
pub struct WriteOpts {
    /// Field manager recorded in managed fields.
    pub manager: String,
    /// Whether the request is on the `status` subresource.
    pub status: bool,
    /// `dryRun=All`: validate and compute, store nothing.
    pub dry_run: bool,
}

impl WriteOpts {
    fn scope(&self, t: &Target) -> Scope {
        match (t.rt.status_subresource, self.status) {
            (true, true) => Scope::Status,
            (true, false) => Scope::NoStatus,
            (false, _) => Scope::All,
        }
    }
}

/// An object as served for a target: `apiVersion`/`kind` of the request.
pub fn present(obj: &Value, t: &Target) -> Value {
    let mut out = obj.clone();
    if let Some(m) = out.as_object_mut() {
        m.insert("apiVersion".into(), json!(t.api_version()));
        m.insert("kind".into(), json!(t.rt.kind));
    }
    out
}

/// An object reduced to `meta.k8s.io/v1` `PartialObjectMetadata`.
pub fn partial(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

pub(crate) fn key(t: &Target, name: &str) -> ObjKey {
    ObjKey::new(&t.rt.key(), &t.ns, name)
}

pub(crate) fn not_found(t: &Target, name: &str) -> ApiError {
    ApiError::NotFound { resource: t.rt.key(), name: name.to_string() }
}

fn modified(t: &Target, name: &str) -> ApiError {
    ApiError::conflict(format!(
        "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
        t.rt.key()
    ))
}

fn check_type(t: &Target, obj: &Value) -> ApiResult<()> {
    if !obj.is_object() {
        return Err(ApiError::BadRequest("the body must be a JSON object".into()));
    }
    if let Some(av) = obj.get("apiVersion").and_then(Value::as_str) {
        if av != t.api_version() {
            return Err(ApiError::BadRequest(format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                t.api_version()
            )));
        }
    }
    if let Some(kind) = obj.get("kind").and_then(Value::as_str) {
        if kind != t.rt.kind {
            return Err(ApiError::BadRequest(format!(
                "the kind in the data ({kind}) does not match the expected kind ({})",
                t.rt.kind
            )));
        }
    }
    Ok(())
}

/// Checks the body's namespace against the URL's and that the namespace can take new objects.
fn check_namespace(state: &State, t: &Target, obj: &mut Value, creating: bool) -> ApiResult<()> {
    if !t.rt.namespaced {
        meta::metadata_mut(obj).remove("namespace");
        return Ok(());
    }
    if t.ns.is_empty() {
        return Err(ApiError::MethodNotAllowed(
            "a namespaced object must be written under /namespaces/{namespace}".into(),
        ));
    }
    match meta::meta_str(obj, "namespace") {
        Some(ns) if !ns.is_empty() && ns != t.ns => {
            return Err(ApiError::BadRequest(
                "the namespace of the provided object does not match the namespace sent on the request".into(),
            ))
        }
        _ => meta::set_meta(obj, "namespace", json!(t.ns)),
    }
    if creating {
        match state.get(&ObjKey::new("namespaces", "", &t.ns)) {
            None => return Err(ApiError::NotFound { resource: "namespaces".into(), name: t.ns.clone() }),
            Some(ns) if meta::is_deleting(ns) => {
                return Err(ApiError::Forbidden(format!(
                "{} \"{}\" is forbidden: unable to create new content in namespace {} because it is being terminated",
                t.rt.key(),
                meta::name(obj),
                t.ns
            )))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Sets the name (from `generateName` if needed) and validates it.
fn assign_name(t: &Target, obj: &mut Value) -> ApiResult<String> {
    let name = match meta::meta_str(obj, "name").filter(|n| !n.is_empty()) {
        Some(n) => n.to_string(),
        None => match meta::meta_str(obj, "generateName").filter(|n| !n.is_empty()) {
            Some(prefix) => format!("{prefix}{}", meta::random_suffix()),
            None => {
                return Err(t.invalid(
                    "",
                    vec![crate::error::Cause {
                        reason: "FieldValueRequired".into(),
                        message: "Required value: name or generateName is required".into(),
                        field: "metadata.name".into(),
                    }],
                ))
            }
        },
    };
    let label_only = t.rt.key() == "namespaces";
    if let Err(msg) = meta::validate_name(&name, label_only) {
        let message = format!("Invalid value: \"{name}\": {msg}");
        return Err(ApiError::invalid(&t.rt.kind, &t.rt.group, &name, "metadata.name", "FieldValueInvalid", &message));
    }
    meta::set_meta(obj, "name", json!(name));
    Ok(name)
}

/// POST: creates an object.
pub fn create(state: &mut State, t: &Target, mut obj: Value, opts: &WriteOpts) -> ApiResult<Value> {
    check_type(t, &obj)?;
    if meta::meta_str(&obj, "resourceVersion").is_some_and(|rv| !rv.is_empty()) {
        return Err(ApiError::BadRequest("resourceVersion should not be set on objects to be created".into()));
    }
    let scope = opts.scope(t);
    fields::track_update(None, &mut obj, &opts.manager, scope, &t.api_version(), &ListKeys::for_target(t));
    insert_new(state, t, obj, opts.dry_run)
}

/// The shared tail of create and apply-create.
fn insert_new(state: &mut State, t: &Target, mut obj: Value, dry_run: bool) -> ApiResult<Value> {
    let name = assign_name(t, &mut obj)?;
    check_namespace(state, t, &mut obj, true)?;
    let m = meta::metadata_mut(&mut obj);
    for system in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "selfLink",
        "resourceVersion",
    ] {
        m.remove(system);
    }
    m.insert("uid".into(), json!(meta::new_uid()));
    m.insert("creationTimestamp".into(), json!(meta::now()));
    if t.rt.generation {
        m.insert("generation".into(), json!(1));
    }
    if t.rt.status_subresource {
        if let Some(o) = obj.as_object_mut() {
            o.remove("status");
        }
    }
    let mut obj = present(&obj, t);
    // Validation comes before the existence check, as on the real server.
    admission::admit(t, None, &mut obj)?;
    let key = key(t, &name);
    if state.get(&key).is_some() {
        return Err(ApiError::AlreadyExists { resource: t.rt.key(), name });
    }
    if dry_run {
        return Ok(obj);
    }
    let stored = state.put(key.clone(), obj);
    gc::collect_if_orphaned(state, &key);
    Ok(stored)
}

/// PUT: replaces an object (or its status).
pub fn update(state: &mut State, t: &Target, name: &str, mut obj: Value, opts: &WriteOpts) -> ApiResult<Value> {
    check_type(t, &obj)?;
    if meta::name(&obj) != name {
        return Err(ApiError::BadRequest(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            meta::name(&obj)
        )));
    }
    check_namespace(state, t, &mut obj, false)?;
    let key = key(t, name);
    let old = state.get(&key).cloned().ok_or_else(|| not_found(t, name))?;
    match meta::meta_str(&obj, "resourceVersion").filter(|rv| !rv.is_empty()) {
        Some(rv) if Some(rv) != meta::meta_str(&old, "resourceVersion") => return Err(modified(t, name)),
        None if t.rt.custom.is_some() => {
            return Err(ApiError::invalid(
                &t.rt.kind,
                &t.rt.group,
                name,
                "metadata.resourceVersion",
                "FieldValueInvalid",
                "Invalid value: 0x0: must be specified for an update",
            ))
        }
        _ => {}
    }
    finish_update(state, t, &key, &old, obj, opts, true)
}

/// PATCH: merge, JSON, strategic or apply. Returns the object and whether it was created.
pub fn patch(
    state: &mut State,
    t: &Target,
    name: &str,
    kind: PatchKind,
    body: &[u8],
    opts: &WriteOpts,
    force: bool,
) -> ApiResult<(Value, bool)> {
    let key = key(t, name);
    let current = state.get(&key).cloned();
    if kind == PatchKind::Apply {
        return apply_patch(state, t, name, current, body, opts, force);
    }
    let current = current.ok_or_else(|| not_found(t, name))?;
    if kind == PatchKind::Strategic && t.rt.custom.is_some() {
        return Err(ApiError::UnsupportedMediaType(
            "strategic merge patch is not supported for custom resources".into(),
        ));
    }
    let candidate = patch::apply_patch(kind, &present(&current, t), body).map_err(|e| match e {
        ApiError::Invalid { causes, .. } => t.invalid(name, causes),
        other => other,
    })?;
    check_type(t, &candidate)?;
    let rv = meta::meta_str(&candidate, "resourceVersion").filter(|rv| !rv.is_empty());
    if rv.is_some() && rv != meta::meta_str(&current, "resourceVersion") {
        return Err(modified(t, name));
    }
    finish_update(state, t, &key, &current, candidate, opts, true).map(|v| (v, false))
}

fn apply_patch(
    state: &mut State,
    t: &Target,
    name: &str,
    current: Option<Value>,
    body: &[u8],
    opts: &WriteOpts,
    force: bool,
) -> ApiResult<(Value, bool)> {
    if opts.manager.is_empty() {
        return Err(ApiError::BadRequest("PATCH, application/apply-patch+yaml requests require fieldManager".into()));
    }
    let config = meta::parse_body(body, "yaml")?;
    if config.get("apiVersion").is_none() || config.get("kind").is_none() {
        return Err(ApiError::BadRequest("apiVersion and kind must be set in an apply configuration".into()));
    }
    check_type(t, &config)?;
    if !meta::name(&config).is_empty() && meta::name(&config) != name {
        return Err(ApiError::BadRequest(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            meta::name(&config)
        )));
    }
    let rv = meta::meta_str(&config, "resourceVersion").filter(|rv| !rv.is_empty());
    if rv.is_some() && rv != current.as_ref().and_then(|c| meta::meta_str(c, "resourceVersion")) {
        return Err(modified(t, name));
    }
    let request = ApplyRequest {
        config,
        manager: &opts.manager,
        force,
        scope: opts.scope(t),
        api_version: &t.api_version(),
        keys: ListKeys::for_target(t),
    };
    let mut candidate = apply::apply(current.as_ref(), request)?;
    match current {
        None if opts.status => Err(not_found(t, name)),
        None => {
            meta::set_meta(&mut candidate, "name", json!(name));
            insert_new(state, t, candidate, opts.dry_run).map(|v| (v, true))
        }
        Some(old) => {
            let key = key(t, name);
            finish_update(state, t, &key, &old, candidate, opts, false).map(|v| (v, false))
        }
    }
}

/// Everything but metadata (and status, where status is a subresource): what generation tracks.
fn spec_part(obj: &Value, t: &Target) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        for k in ["metadata", "apiVersion", "kind"] {
            m.remove(k);
        }
        if t.rt.status_subresource {
            m.remove("status");
        }
    }
    o
}

/// The shared tail of every update: subresource isolation, system metadata, finalizer rules,
/// admission, generation, managed fields, no-op detection, commit.
fn finish_update(
    state: &mut State,
    t: &Target,
    key: &ObjKey,
    old: &Value,
    mut new: Value,
    opts: &WriteOpts,
    track: bool,
) -> ApiResult<Value> {
    let scope = opts.scope(t);
    // Apply computed the managed fields already; other writes recompute them from `old` below.
    let applied_fields = if track { None } else { new.pointer("/metadata/managedFields").cloned() };
    match scope {
        Scope::Status => {
            // Status writes change status only.
            let status = new.get("status").cloned();
            new = old.clone();
            match status {
                Some(s) => new["status"] = s,
                None => {
                    new.as_object_mut().map(|m| m.remove("status"));
                }
            }
        }
        Scope::NoStatus => {
            // Main-resource writes cannot change status.
            match old.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    new.as_object_mut().map(|m| m.remove("status"));
                }
            }
        }
        Scope::All => {}
    }
    let m = meta::metadata_mut(&mut new);
    for system in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "resourceVersion",
    ] {
        match old.get("metadata").and_then(|om| om.get(system)) {
            Some(v) => m.insert(system.to_string(), v.clone()),
            None => m.remove(system),
        };
    }
    m.remove("selfLink");
    match applied_fields {
        Some(mf) => m.insert("managedFields".into(), mf),
        None => m.remove("managedFields"),
    };
    let mut new = present(&new, t);
    if meta::is_deleting(old) {
        let before = meta::finalizers(old);
        if meta::finalizers(&new).iter().any(|f| !before.contains(f)) {
            return Err(ApiError::invalid(
                &t.rt.kind,
                &t.rt.group,
                &key.name,
                "metadata.finalizers",
                "FieldValueForbidden",
                "Forbidden: no new finalizers can be added if the object is being deleted",
            ));
        }
    }
    admission::admit(t, Some(old), &mut new)?;
    if t.rt.generation && spec_part(old, t) != spec_part(&new, t) {
        let gen = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
        meta::set_meta(&mut new, "generation", json!(gen + 1));
    }
    if track {
        fields::track_update(Some(old), &mut new, &opts.manager, scope, &t.api_version(), &ListKeys::for_target(t));
    }
    if fields::without_times(&present(old, t)) == fields::without_times(&new) {
        return Ok(present(old, t));
    }
    if opts.dry_run {
        return Ok(new);
    }
    if meta::is_deleting(&new) && meta::finalizers(&new).is_empty() {
        let gone = state.remove(key).unwrap_or(new);
        gc::cascade(state, vec![(key.clone(), gone.clone())]);
        return Ok(present(&gone, t));
    }
    Ok(state.put(key.clone(), new))
}
