//! HTTP front: URL routing, query parsing, content negotiation, and `metav1.Status` errors.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State as AxumState;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::admission::Target;
use crate::delete::{self, DeleteOpts, Deleted, Propagation};
use crate::discovery;
use crate::error::{ApiError, ApiResult};
use crate::list::{self, ListQuery};
use crate::meta;
use crate::ops::{self, WriteOpts};
use crate::patch::PatchKind;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::State;
use crate::table::{self, IncludeObject};
use crate::watch::{self, WatchConfig, WatchQuery};

/// Shared by all requests.
pub struct App {
    /// The store.
    pub state: Arc<Mutex<State>>,
    /// Watch tuning.
    pub watch: WatchConfig,
    /// Flips to true when the server stops (ends open watches).
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

/// The axum router: everything goes through one handler that parses Kubernetes paths itself.
pub fn router(app: Arc<App>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(app)
}

fn json_response(code: StatusCode, v: &Value) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn error_response(e: &ApiError) -> Response {
    let code = StatusCode::from_u16(e.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(code, &e.to_status())
}

/// Decodes `a=b&c=d%20e` (tolerating the empty pairs kube-rs sends: `?&a=b`).
fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok());
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A request on a resource path.
struct ResourcePath {
    group: String,
    version: String,
    ns: String,
    plural: String,
    name: Option<String>,
    sub: Option<String>,
}

fn resource_path(group: &str, version: &str, rest: &[&str]) -> Option<ResourcePath> {
    let namespaced = rest.len() >= 3 && rest[0] == "namespaces" && !matches!(rest[2], "status" | "finalize");
    let (ns, tail) = if namespaced { (rest[1].to_string(), &rest[2..]) } else { (String::new(), rest) };
    let (plural, name, sub) = match tail {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(n.to_string()), None),
        [p, n, s] => (*p, Some(n.to_string()), Some(s.to_string())),
        _ => return None,
    };
    Some(ResourcePath { group: group.into(), version: version.into(), ns, plural: plural.into(), name, sub })
}

/// Everything a verb needs from the request.
struct Req {
    method: Method,
    query: HashMap<String, String>,
    headers: HeaderMap,
    body: Bytes,
}

impl Req {
    fn param(&self, k: &str) -> Option<&str> {
        self.query.get(k).map(String::as_str)
    }

    fn flag(&self, k: &str) -> bool {
        matches!(self.param(k), Some("true") | Some("1"))
    }

    fn header(&self, k: header::HeaderName) -> &str {
        self.headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    fn table(&self) -> Option<IncludeObject> {
        table::wants_table(self.header(header::ACCEPT)).then(|| IncludeObject::parse(self.param("includeObject")))
    }

    /// Whether the client asked for `PartialObjectMetadata` (kube-rs metadata watches and patches).
    fn metadata_only(&self) -> bool {
        self.header(header::ACCEPT).split(',').any(|p| p.contains("as=PartialObjectMetadata"))
    }

    /// One object as the client asked for it.
    fn shape(&self, obj: Value) -> Value {
        if self.metadata_only() {
            ops::partial(&obj)
        } else {
            obj
        }
    }

    fn dry_run(&self) -> bool {
        self.param("dryRun") == Some("All")
    }

    /// The field manager: `fieldManager`, else the user agent's program name (as the real server).
    fn manager(&self, apply: bool) -> String {
        match self.param("fieldManager") {
            Some(m) => m.to_string(),
            None if apply => String::new(),
            None => {
                let ua = self.header(header::USER_AGENT);
                let prog = ua.split('/').next().unwrap_or("").trim();
                if prog.is_empty() {
                    "unknown".into()
                } else {
                    prog.to_string()
                }
            }
        }
    }

    fn list_query(&self) -> ApiResult<ListQuery> {
        Ok(ListQuery {
            labels: LabelSelector::parse(self.param("labelSelector").unwrap_or(""))?,
            fields: FieldSelector::parse(self.param("fieldSelector").unwrap_or(""))?,
            limit: match self.param("limit") {
                Some(l) => l.parse().map_err(|_| ApiError::BadRequest(format!("invalid limit {l:?}")))?,
                None => 0,
            },
            continue_token: self.param("continue").filter(|c| !c.is_empty()).map(String::from),
        })
    }
}

async fn handle(
    AxumState(app): AxumState<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = Req { method, query: parse_query(uri.query()), headers, body };
    tracing::debug!(method = %req.method, uri = %uri, "request");
    match route(&app, uri.path(), &req) {
        Ok(resp) => resp,
        Err(e) => {
            tracing::debug!(method = %req.method, uri = %uri, code = e.code(), "error: {e}");
            error_response(&e)
        }
    }
}

fn ok(v: &Value) -> ApiResult<Response> {
    Ok(json_response(StatusCode::OK, v))
}

fn route(app: &App, path: &str, req: &Req) -> ApiResult<Response> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
    let get_only = |r: ApiResult<Response>| {
        if req.method == Method::GET {
            r
        } else {
            Err(ApiError::MethodNotAllowed(format!("method {} is not allowed here", req.method)))
        }
    };
    match segs.as_slice() {
        ["version"] => get_only(ok(&discovery::version())),
        ["healthz"] | ["livez"] | ["readyz"] => {
            get_only(Ok((StatusCode::OK, [(header::CONTENT_TYPE, "text/plain")], "ok").into_response()))
        }
        ["api" | "apis"] if discovery::wants_aggregated(req.header(header::ACCEPT)) => {
            let doc = discovery::aggregated(&app.state.lock(), segs[0] == "api");
            let body = serde_json::to_vec(&doc).unwrap_or_default();
            get_only(Ok((StatusCode::OK, [(header::CONTENT_TYPE, discovery::AGGREGATED)], body).into_response()))
        }
        ["api"] => get_only(ok(&discovery::core_versions())),
        ["apis"] => get_only(ok(&discovery::group_list(&app.state.lock()))),
        ["openapi", "v3"] => get_only(ok(&discovery::openapi_v3())),
        ["api", version] => get_only(
            discovery::resource_list(&app.state.lock(), "", version)
                .ok_or(ApiError::NoSuchResource)
                .and_then(|v| ok(&v)),
        ),
        ["apis", group] => {
            get_only(discovery::group(&app.state.lock(), group).ok_or(ApiError::NoSuchResource).and_then(|v| ok(&v)))
        }
        ["apis", group, version] => get_only(
            discovery::resource_list(&app.state.lock(), group, version)
                .ok_or(ApiError::NoSuchResource)
                .and_then(|v| ok(&v)),
        ),
        ["api", version, rest @ ..] => resource(app, resource_path("", version, rest), req),
        ["apis", group, version, rest @ ..] => resource(app, resource_path(group, version, rest), req),
        _ => Err(ApiError::NoSuchResource),
    }
}

fn resource(app: &App, p: Option<ResourcePath>, req: &Req) -> ApiResult<Response> {
    let p = p.ok_or(ApiError::NoSuchResource)?;
    let rt = app.state.lock().find_type(&p.group, &p.version, &p.plural).ok_or(ApiError::NoSuchResource)?;
    if (!rt.namespaced && !p.ns.is_empty()) || (rt.namespaced && p.ns.is_empty() && p.name.is_some()) {
        return Err(ApiError::NoSuchResource);
    }
    let status = match p.sub.as_deref() {
        None => false,
        Some("status") if rt.status_subresource => true,
        Some(_) => return Err(ApiError::NoSuchResource),
    };
    let t = Target { rt, version: p.version, ns: p.ns };
    match (&req.method, p.name) {
        (&Method::GET, None) if req.flag("watch") => watch(app, t, req),
        (&Method::GET, None) => {
            let listed = list::list(&app.state.lock(), &t, &req.list_query()?)?;
            respond_list(&t, listed, req)
        }
        (&Method::GET, Some(name)) => {
            let state = app.state.lock();
            let obj = state
                .get(&crate::store::ObjKey::new(&t.rt.key(), &t.ns, &name))
                .map(|o| ops::present(o, &t))
                .ok_or_else(|| ApiError::NotFound { resource: t.rt.key(), name: name.clone() })?;
            match req.table() {
                Some(include) => {
                    let rv = meta::meta_str(&obj, "resourceVersion").unwrap_or("").to_string();
                    ok(&table::table(&t, &[obj], &rv, include))
                }
                None => ok(&req.shape(obj)),
            }
        }
        (&Method::POST, None) => {
            let body = meta::parse_body(&req.body, req.header(header::CONTENT_TYPE))?;
            let opts = write_opts(req, false, false);
            let created = ops::create(&mut app.state.lock(), &t, body, &opts)?;
            Ok(json_response(StatusCode::CREATED, &req.shape(created)))
        }
        (&Method::PUT, Some(name)) => {
            let body = meta::parse_body(&req.body, req.header(header::CONTENT_TYPE))?;
            let opts = write_opts(req, status, false);
            ok(&req.shape(ops::update(&mut app.state.lock(), &t, &name, body, &opts)?))
        }
        (&Method::PATCH, Some(name)) => {
            let kind = PatchKind::from_content_type(req.header(header::CONTENT_TYPE))?;
            let opts = write_opts(req, status, kind == PatchKind::Apply);
            let (obj, created) =
                ops::patch(&mut app.state.lock(), &t, &name, kind, &req.body, &opts, req.flag("force"))?;
            let code = if created { StatusCode::CREATED } else { StatusCode::OK };
            Ok(json_response(code, &req.shape(obj)))
        }
        (&Method::DELETE, Some(name)) if !status => {
            let opts = delete_opts(req)?;
            match delete::delete(&mut app.state.lock(), &t, &name, &opts)? {
                Deleted::Pending(obj) => ok(&req.shape(obj)),
                Deleted::Gone(obj) => ok(&json!({
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": {"name": name, "group": t.rt.group, "kind": t.rt.plural, "uid": meta::uid(&obj)},
                })),
            }
        }
        (&Method::DELETE, None) => {
            let opts = delete_opts(req)?;
            let listed = delete::delete_collection(&mut app.state.lock(), &t, &req.list_query()?, &opts)?;
            ok(&listed)
        }
        (m, _) => Err(ApiError::MethodNotAllowed(format!("method {m} is not supported here"))),
    }
}

fn write_opts(req: &Req, status: bool, apply: bool) -> WriteOpts {
    WriteOpts { manager: req.manager(apply), status, dry_run: req.dry_run() }
}

fn delete_opts(req: &Req) -> ApiResult<DeleteOpts> {
    let body: Value = if req.body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&req.body).map_err(|e| ApiError::BadRequest(format!("invalid DeleteOptions: {e}")))?
    };
    let policy = req
        .param("propagationPolicy")
        .map(String::from)
        .or_else(|| body.get("propagationPolicy").and_then(Value::as_str).map(String::from));
    let orphan = body.get("orphanDependents").and_then(Value::as_bool);
    let propagation = match (policy.as_deref(), orphan) {
        (Some("Foreground"), _) => Some(Propagation::Foreground),
        (Some("Background"), _) => Some(Propagation::Background),
        (Some("Orphan"), _) | (None, Some(true)) => Some(Propagation::Orphan),
        (None, _) => None,
        (Some(other), _) => return Err(ApiError::BadRequest(format!("unknown propagationPolicy {other:?}"))),
    };
    let pre = |k: &str| body.pointer(&format!("/preconditions/{k}")).and_then(Value::as_str).map(String::from);
    let dry_run =
        req.dry_run() || body.get("dryRun").and_then(Value::as_array).is_some_and(|a| a.iter().any(|v| v == "All"));
    Ok(DeleteOpts { propagation, uid: pre("uid"), resource_version: pre("resourceVersion"), dry_run })
}

fn respond_list(t: &Target, listed: Value, req: &Req) -> ApiResult<Response> {
    match req.table() {
        Some(include) => {
            let items = listed["items"].as_array().cloned().unwrap_or_default();
            let mut tbl =
                table::table(t, &items, listed["metadata"]["resourceVersion"].as_str().unwrap_or(""), include);
            if let Some(c) = listed["metadata"].get("continue") {
                tbl["metadata"]["continue"] = c.clone();
            }
            ok(&tbl)
        }
        None if req.metadata_only() => {
            let items: Vec<Value> = listed["items"].as_array().into_iter().flatten().map(ops::partial).collect();
            ok(&json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1",
                "metadata": listed["metadata"], "items": items}))
        }
        None => ok(&listed),
    }
}

fn watch(app: &App, t: Target, req: &Req) -> ApiResult<Response> {
    let timeout = match req.param("timeoutSeconds") {
        Some(s) => {
            Duration::from_secs(s.parse().map_err(|_| ApiError::BadRequest(format!("invalid timeoutSeconds {s:?}")))?)
        }
        None => Duration::from_secs(1800),
    };
    let q = WatchQuery {
        resource_version: req.param("resourceVersion").unwrap_or("").to_string(),
        bookmarks: req.flag("allowWatchBookmarks"),
        send_initial_events: req.flag("sendInitialEvents"),
        timeout,
        list: req.list_query()?,
        table: req.table(),
        metadata_only: req.metadata_only(),
    };
    if q.send_initial_events && req.param("resourceVersionMatch") != Some("NotOlderThan") {
        return Err(ApiError::invalid(
            "ListOptions",
            "meta.k8s.io",
            "",
            "resourceVersionMatch",
            "FieldValueForbidden",
            "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
        ));
    }
    let body: Body = watch::watch(app.state.clone(), t, q, app.watch, app.shutdown.clone())?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-cache, private")],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        let q = parse_query(Some("&labelSelector=app%3Dweb%2Ctier+in+(a)&watch=1&x"));
        assert_eq!(q["labelSelector"], "app=web,tier in (a)");
        assert_eq!(q["watch"], "1");
        assert_eq!(q["x"], "");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn namespaced_and_cluster_paths() {
        let p = resource_path("", "v1", &["namespaces", "ns", "secrets", "s"]).unwrap();
        assert_eq!((p.ns.as_str(), p.plural.as_str(), p.name.as_deref()), ("ns", "secrets", Some("s")));
        let p = resource_path("", "v1", &["namespaces", "ns", "status"]).unwrap();
        assert_eq!((p.ns.as_str(), p.plural.as_str(), p.sub.as_deref()), ("", "namespaces", Some("status")));
        let p = resource_path("", "v1", &["namespaces", "ns"]).unwrap();
        assert_eq!((p.plural.as_str(), p.name.as_deref()), ("namespaces", Some("ns")));
        assert!(resource_path("", "v1", &["a", "b", "c", "d"]).is_none());
    }
}
