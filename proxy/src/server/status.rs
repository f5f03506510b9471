//! `/health` (no auth) and the storage status endpoints of reference-storage.md §9.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use poolgate_store::time::{epoch_ms, iso, iso_now};
use poolgate_store::StorageKind;
use serde_json::{json, Value};

use super::auth::{key_matches, presented_key};
use super::AppState;

pub async fn health(State(state): State<Arc<AppState>>) -> Json<Value> {
    let st = state.store.status();
    Json(json!({
        "status": if st.degraded { "degraded" } else { "healthy" },
        "timestamp": iso_now(),
        "storage": st.kind,
    }))
}

fn unauthorized() -> Response {
    let body = json!({"error": {"message": "Invalid or missing API key", "type": "authentication_error", "code": "invalid_api_key"}});
    (StatusCode::UNAUTHORIZED, Json(body)).into_response()
}

fn authorized(state: &AppState, headers: &HeaderMap, query: Option<&str>) -> bool {
    key_matches(presented_key(headers, query), &state.config.api_key)
}

pub async fn storage_status(State(state): State<Arc<AppState>>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    if !authorized(&state, &headers, q.as_deref()) {
        return unauthorized();
    }
    let st = state.store.status();
    Json(json!({
        "initialized": true,
        "type": st.kind,
        "redis": {"enabled": st.kind == StorageKind::Redis, "connected": st.kind == StorageKind::Redis && st.connected},
        "degradedMode": st.degraded,
    }))
    .into_response()
}

pub async fn redis_status(State(state): State<Arc<AppState>>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    if !authorized(&state, &headers, q.as_deref()) {
        return unauthorized();
    }
    let st = state.store.status();
    let enabled = st.kind == StorageKind::Redis;
    let since = chrono_iso(st.since_ms);
    let health_status = match (enabled, st.connected) {
        (false, _) => "disabled",
        (true, true) => "healthy",
        (true, false) => "disconnected",
    };
    let mut body = json!({
        "enabled": enabled,
        "connected": enabled && st.connected,
        "storageType": st.kind,
        "url": st.url,
        "keyPrefix": st.key_prefix,
        "stats": {
            "reconnectCount": st.reconnect_count,
            "totalCommands": st.total_commands,
            "failedCommands": st.failed_commands,
            "queuedWrites": st.queued_writes,
            "queueCapacity": st.queue_capacity,
            "queueOverflows": st.queue_overflows,
        },
        "timestamps": {"stateSince": since},
        "lastError": st.last_error,
        "degradedMode": st.degraded,
        "health": {"status": health_status, "latencyMs": st.ping_latency_ms, "checkedAt": iso_now()},
    });
    if st.degraded {
        body["degradedModeInfo"] = json!({
            "degraded": true,
            "since": st.since_ms,
            "duration": epoch_ms() - st.since_ms,
            "queuedWrites": st.queued_writes,
        });
    }
    Json(body).into_response()
}

fn chrono_iso(ms: i64) -> Option<String> {
    (ms > 0).then(|| iso(chrono_from_ms(ms)))
}

fn chrono_from_ms(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}
