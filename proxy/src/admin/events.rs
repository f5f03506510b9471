//! `GET /api/events` (SSE, `?token=` since EventSource sends no headers): config, provider,
//! health, token and plugin changes made by any replica, as the store's change feed tells of
//! them. Bursts (usage counts under load) are coalesced to one event per account per window;
//! event data never carries a secret (accounts are masked, tokens are only named).

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use poolgate_store::Change;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::{Admin, AdminResult};
use crate::server::AppState;

/// Changes arriving within this window go out together, one event per thing changed.
const COALESCE: Duration = Duration::from_millis(100);
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub async fn stream(State(state): State<Arc<AppState>>, _admin: Admin) -> AdminResult {
    let (tx, rx) = mpsc::channel::<Event>(256);
    tokio::spawn(feed(state, tx));
    let events =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx)) });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive")).into_response())
}

fn event(name: &str, data: Value) -> Event {
    Event::default().event(name).data(data.to_string())
}

/// Forwards the change feed to one client until it goes away.
async fn feed(state: Arc<AppState>, tx: mpsc::Sender<Event>) {
    let mut changes = state.store.watch_changes();
    let mut health: HashMap<(String, String), (bool, bool)> = HashMap::new();
    let hello = json!({"replicaId": state.replica_id, "storage": state.store.kind()});
    if tx.send(event("ready", hello)).await.is_err() {
        return;
    }
    loop {
        let first = tokio::select! {
            c = changes.recv() => c,
            _ = tx.closed() => return,
        };
        let mut batch = BTreeSet::new();
        match first {
            Ok(c) => {
                batch.insert(Key::from(c));
            }
            Err(RecvError::Lagged(_)) => {
                batch.insert(Key::Resync);
            }
            Err(RecvError::Closed) => return,
        }
        let until = tokio::time::Instant::now() + COALESCE;
        while let Ok(Ok(c)) = tokio::time::timeout_at(until, changes.recv()).await {
            batch.insert(Key::from(c));
        }
        for key in batch {
            for ev in render(&state, key, &mut health).await {
                if tx.send(ev).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// A change, ordered so a batch holds each thing once.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Config,
    Plugins,
    Usage,
    Pools,
    Pool(String),
    Account(String, String),
    Token(String, String),
    Resync,
    Quiet,
}

impl From<Change> for Key {
    fn from(c: Change) -> Self {
        match c {
            Change::Config => Key::Config,
            Change::Plugins => Key::Plugins,
            Change::UsageCache => Key::Usage,
            Change::PoolTypes => Key::Pools,
            Change::Pool(p) => Key::Pool(p),
            Change::Account { pool, uuid } => Key::Account(pool, uuid),
            Change::Token { pool, uuid } => Key::Token(pool, uuid),
            Change::Resync => Key::Resync,
            Change::Password => Key::Quiet,
            Change::SystemPrompt | Change::CustomModels => Key::Config,
        }
    }
}

async fn render(state: &AppState, key: Key, health: &mut HashMap<(String, String), (bool, bool)>) -> Vec<Event> {
    match key {
        Key::Config => vec![event("config_update", json!({}))],
        Key::Plugins => vec![event("plugin_update", json!({}))],
        Key::Usage => vec![event("usage_update", json!({}))],
        Key::Pools => vec![event("provider_update", json!({"action": "pools"}))],
        Key::Pool(p) => vec![event("provider_update", json!({"providerType": p, "action": "pool"}))],
        Key::Token(pool, uuid) => vec![event("token_update", json!({"providerType": pool, "uuid": uuid}))],
        Key::Resync => vec![event("resync", json!({}))],
        Key::Quiet => Vec::new(),
        Key::Account(pool, uuid) => {
            let Ok(a) = state.store.get_account(&pool, &uuid).await else {
                return vec![event(
                    "provider_update",
                    json!({"providerType": pool, "uuid": uuid, "action": "removed"}),
                )];
            };
            let now = (a.is_healthy(), a.is_disabled());
            let mut out = vec![event(
                "provider_update",
                json!({
                    "providerType": pool, "uuid": uuid, "action": "account",
                    "isHealthy": now.0, "isDisabled": now.1,
                    "usageCount": a.usage_count(), "errorCount": a.error_count(),
                    "lastErrorMessage": a.last_error_message(),
                }),
            )];
            let before = health.insert((pool.clone(), uuid.clone()), now);
            if before.is_some_and(|b| b != now) {
                out.push(event(
                    "health_status_change",
                    json!({"providerType": pool, "uuid": uuid, "isHealthy": now.0, "isDisabled": now.1}),
                ));
            }
            out
        }
    }
}
