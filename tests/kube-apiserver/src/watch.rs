//! Watches: newline-delimited JSON events (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR) on a
//! chunked response.
//!
//! A watch without a resourceVersion (or with "0") first sends the current objects as ADDED; with
//! a resourceVersion it replays history after it, or sends one ERROR event with a 410 `Status`
//! (as the real server) when that version was compacted away. `sendInitialEvents=true` sends the
//! current objects and then a BOOKMARK annotated `k8s.io/initial-events-end`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use crate::admission::Target;
use crate::error::ApiError;
use crate::list::{self, ListQuery};
use crate::ops;
use crate::store::{Event, EventType, State, CRD_RES};
use crate::table::{self, IncludeObject};

/// Watch query parameters.
#[derive(Debug, Clone)]
pub struct WatchQuery {
    /// `resourceVersion` ("" when unset).
    pub resource_version: String,
    /// `allowWatchBookmarks`.
    pub bookmarks: bool,
    /// `sendInitialEvents`.
    pub send_initial_events: bool,
    /// `timeoutSeconds` (or the default).
    pub timeout: Duration,
    /// Selectors.
    pub list: ListQuery,
    /// `Some` when the client asked for Table events (kubectl get --watch).
    pub table: Option<IncludeObject>,
    /// The client asked for `PartialObjectMetadata` objects.
    pub metadata_only: bool,
}

/// Tuning shared by all watches.
#[derive(Debug, Clone, Copy)]
pub struct WatchConfig {
    /// How often an idle watch sends a BOOKMARK (when bookmarks are allowed).
    pub bookmark_interval: Duration,
}

struct Watcher {
    t: Target,
    q: WatchQuery,
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
}

impl Watcher {
    fn matches(&self, obj: &Value) -> bool {
        self.q.list.labels.matches(obj) && self.q.list.fields.matches(obj)
    }

    fn relevant(&self, e: &Event) -> bool {
        e.res == self.t.rt.key() && (self.t.ns.is_empty() || e.ns == self.t.ns)
    }

    /// The event a watch with selectors sees: leaving the selection is DELETED, entering ADDED.
    fn translate(&self, e: &Event) -> Option<(&'static str, Value)> {
        let now = self.matches(&e.object);
        let before = e.prev.as_ref().is_some_and(|p| self.matches(p));
        let etype = match e.etype {
            EventType::Added if now => "ADDED",
            EventType::Deleted if now => "DELETED",
            EventType::Modified if now && before => "MODIFIED",
            EventType::Modified if now => "ADDED",
            EventType::Modified if before => "DELETED",
            _ => return None,
        };
        Some((etype, e.object.clone()))
    }

    async fn send(&self, etype: &str, obj: &Value) -> bool {
        let object = match self.q.table {
            Some(include) if etype != "BOOKMARK" && etype != "ERROR" => {
                let rv = obj.pointer("/metadata/resourceVersion").and_then(Value::as_str).unwrap_or("");
                table::table(&self.t, &[ops::present(obj, &self.t)], rv, include)
            }
            _ if etype == "ERROR" => obj.clone(),
            _ if self.q.metadata_only => ops::partial(obj),
            _ => ops::present(obj, &self.t),
        };
        let mut line = match serde_json::to_vec(&json!({"type": etype, "object": object})) {
            Ok(l) => l,
            Err(_) => return false,
        };
        line.push(b'\n');
        self.tx.send(Ok(Bytes::from(line))).await.is_ok()
    }

    async fn bookmark(&self, rv: u64, initial_end: bool) -> bool {
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        self.send("BOOKMARK", &json!({"metadata": metadata})).await
    }
}

/// What a watch starts from, computed under the store lock.
struct Start {
    initial: Vec<Value>,
    backlog: Vec<Arc<Event>>,
    rx: broadcast::Receiver<Arc<Event>>,
    rv: u64,
}

fn start(state: &State, t: &Target, q: &WatchQuery) -> Result<Start, ApiError> {
    let rv_param = q.resource_version.as_str();
    if q.send_initial_events || rv_param.is_empty() || rv_param == "0" {
        let list = ListQuery { limit: 0, continue_token: None, ..q.list.clone() };
        let listed = list::list(state, t, &list)?;
        let sub = state.subscribe(state.rv()).ok_or_else(|| ApiError::Internal("no subscription".into()))?;
        let initial = listed["items"].as_array().cloned().unwrap_or_default();
        return Ok(Start { initial, backlog: Vec::new(), rx: sub.rx, rv: sub.rv });
    }
    let from: u64 =
        rv_param.parse().map_err(|_| ApiError::BadRequest(format!("invalid resource version: {rv_param:?}")))?;
    match state.subscribe(from) {
        Some(sub) => Ok(Start { initial: Vec::new(), backlog: sub.backlog, rx: sub.rx, rv: from }),
        None => Err(ApiError::Gone(format!("too old resource version: {from} ({})", state.rv()))),
    }
}

/// Starts a watch; the returned body streams events until the timeout, a shutdown, or the client
/// going away.
pub fn watch(
    state: Arc<Mutex<State>>,
    t: Target,
    q: WatchQuery,
    config: WatchConfig,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<Body, ApiError> {
    let begun = start(&state.lock(), &t, &q);
    // Only an expired resourceVersion is reported inside the stream; other errors are plain HTTP.
    let begun = match begun {
        Err(e @ ApiError::Gone(_)) => Err(e),
        Err(e) => return Err(e),
        Ok(s) => Ok(s),
    };
    let (tx, rx) = mpsc::channel(64);
    let w = Watcher { t, q, tx };
    tokio::spawn(async move {
        match begun {
            Ok(s) => run(w, s, config, shutdown).await,
            // A watch from a compacted version is a 200 with one ERROR event, as the real server.
            Err(e) => {
                let _ = w.send("ERROR", &e.to_status()).await;
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
    Ok(Body::from_stream(stream))
}

async fn run(w: Watcher, s: Start, config: WatchConfig, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let Start { initial, backlog, mut rx, rv } = s;
    let mut last_rv = rv;
    for obj in &initial {
        if !w.send("ADDED", obj).await {
            return;
        }
    }
    if w.q.send_initial_events && w.q.bookmarks && !w.bookmark(rv, true).await {
        return;
    }
    for e in &backlog {
        last_rv = last_rv.max(e.rv);
        if !deliver(&w, e).await {
            return;
        }
    }
    let deadline = tokio::time::sleep(w.q.timeout);
    tokio::pin!(deadline);
    let mut ticker = tokio::time::interval(config.bookmark_interval);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = &mut deadline => return,
            _ = shutdown.changed() => return,
            _ = ticker.tick() => {
                if w.q.bookmarks && !w.bookmark(last_rv, false).await {
                    return;
                }
            }
            got = rx.recv() => match got {
                Ok(e) => {
                    last_rv = last_rv.max(e.rv);
                    if ends_type(&w, &e) || !deliver(&w, &e).await {
                        return;
                    }
                }
                // A watch that fell behind ends; the client resumes from its last version.
                Err(_) => return,
            },
        }
    }
}

/// Deleting the CRD of a watched custom resource ends the watch.
fn ends_type(w: &Watcher, e: &Event) -> bool {
    e.res == CRD_RES
        && e.etype == EventType::Deleted
        && w.t.rt.custom.as_ref().is_some_and(|c| c.crd_name == crate::meta::name(&e.object))
}

async fn deliver(w: &Watcher, e: &Event) -> bool {
    if !w.relevant(e) {
        return true;
    }
    match w.translate(e) {
        Some((etype, obj)) => w.send(etype, &obj).await,
        None => true,
    }
}
