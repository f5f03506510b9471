//! System status, the replicas that share the store (each heartbeats itself into it), and the
//! plugin switches (the store's `plugins` document, the reference's `plugins.json`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::Json;
use bytes::Bytes;
use poolgate_store::time::epoch_ms;
use poolgate_store::ReplicaBeat;
use serde_json::{json, Map, Value};

use super::{Admin, AdminError, AdminResult};
use crate::server::AppState;

/// The reference's built-in plugins and what each does in poolgate.
const PLUGINS: &[(&str, &str)] = &[
    ("default-auth", "REQUIRED_API_KEY authentication (always on in poolgate)"),
    ("api-potluck", "Client keys with quotas (poolgate: client keys, always available)"),
    ("model-usage-stats", "Per-model usage statistics (poolgate: client key statistics)"),
    ("ai-monitor", "Request/response capture for debugging"),
];

fn beat(state: &AppState) -> ReplicaBeat {
    ReplicaBeat {
        id: state.replica_id.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
        hostname: hostname(),
        started_at: state.started_at,
        in_flight: state.selector.in_flight_total() as i64,
        seen_at: 0,
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Writes this replica's heartbeat every `every`; it is listed for three periods.
pub async fn heartbeat(state: Arc<AppState>, every: Duration) {
    loop {
        if let Err(e) = state.store.heartbeat(&beat(&state), every * 3).await {
            tracing::debug!(error = %e, "heartbeat not stored");
        }
        tokio::time::sleep(every).await;
    }
}

/// Resident memory of this process in bytes (Linux), for the status page.
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// `GET /api/system`.
pub async fn system(State(state): State<Arc<AppState>>, _admin: Admin) -> AdminResult {
    let now = epoch_ms();
    let st = state.store.status();
    Ok(Json(json!({
        "appVersion": env!("CARGO_PKG_VERSION"),
        "replicaId": state.replica_id,
        "serverTime": poolgate_store::time::iso_now(),
        "startedAt": state.started_at,
        "uptime": (now - state.started_at) / 1000,
        "memoryUsage": {"rss": rss_bytes()},
        "inFlight": state.selector.in_flight_total(),
        "storage": {"type": st.kind, "connected": st.connected, "degraded": st.degraded, "queuedWrites": st.queued_writes},
        "uiEnabled": state.config().admin.ui_enabled,
    }))
    .into_response())
}

/// `GET /api/replicas`: every replica that heartbeat recently, this one marked.
pub async fn replicas(State(state): State<Arc<AppState>>, _admin: Admin) -> AdminResult {
    let list = state.store.list_replicas().await?;
    let rows: Vec<Value> = list
        .iter()
        .map(|b| {
            let mut v = serde_json::to_value(b).unwrap_or(Value::Null);
            v["self"] = (b.id == state.replica_id).into();
            v
        })
        .collect();
    Ok(Json(json!({"count": rows.len(), "replicas": rows})).into_response())
}

/// `GET /api/access-info`: how clients reach this gateway.
pub async fn access_info(State(state): State<Arc<AppState>>, _admin: Admin) -> AdminResult {
    let cfg = state.config();
    Ok(Json(json!({
        "port": cfg.port,
        "defaultProviders": cfg.model_providers,
        "endpoints": {
            "openai": "/v1/chat/completions",
            "responses": "/v1/responses",
            "anthropic": "/v1/messages",
            "gemini": "/v1beta/models/{model}:generateContent",
            "models": "/v1/models",
            "providerPrefix": "/{providerType}/v1/…",
        },
        "inFlight": state.selector.in_flight_total(),
    }))
    .into_response())
}

fn plugin_doc(stored: Option<Value>) -> Map<String, Value> {
    let mut plugins = stored.and_then(|v| v.get("plugins").and_then(Value::as_object).cloned()).unwrap_or_default();
    for (name, description) in PLUGINS {
        plugins
            .entry(name.to_string())
            .or_insert_with(|| json!({"enabled": *name == "default-auth", "description": description}));
    }
    plugins
}

/// `GET /api/plugins`.
pub async fn plugins(State(state): State<Arc<AppState>>, _admin: Admin) -> AdminResult {
    let doc = plugin_doc(state.store.get_plugins().await?);
    let list: Vec<Value> = doc
        .iter()
        .map(|(name, p)| {
            json!({
                "name": name,
                "enabled": p.get("enabled").and_then(Value::as_bool).unwrap_or(false),
                "description": p.get("description").cloned().unwrap_or(Value::Null),
                "builtin": PLUGINS.iter().any(|(n, _)| n == name),
            })
        })
        .collect();
    Ok(Json(json!({"plugins": list})).into_response())
}

/// `POST /api/plugins/{name}/toggle [{enabled}]`: sets (or flips) the switch in the store.
pub async fn toggle_plugin(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    Path(name): Path<String>,
    body: Bytes,
) -> AdminResult {
    let mut doc = plugin_doc(state.store.get_plugins().await?);
    let Some(entry) = doc.get_mut(&name).and_then(Value::as_object_mut) else {
        return Err(AdminError::not_found(format!("no plugin named {name:?}")));
    };
    let asked = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        super::parse_json::<Value>(&body)?.get("enabled").and_then(Value::as_bool)
    };
    let now = entry.get("enabled").and_then(Value::as_bool).unwrap_or(false);
    let enabled = asked.unwrap_or(!now);
    entry.insert("enabled".into(), enabled.into());
    super::done(state.store.set_plugins(&json!({"plugins": doc})).await?)?;
    Ok(Json(json!({"success": true, "name": name, "enabled": enabled})).into_response())
}
