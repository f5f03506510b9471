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

/// The main client key, or a live admin session (the dashboard reads these pages too).
async fn authorized(state: &AppState, headers: &HeaderMap, query: Option<&str>) -> bool {
    key_matches(presented_key(headers, query), &state.config().api_key)
        || crate::admin::auth::has_session(state, headers, query).await
}

pub async fn storage_status(State(state): State<Arc<AppState>>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    if !authorized(&state, &headers, q.as_deref()).await {
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
    if !authorized(&state, &headers, q.as_deref()).await {
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

/// `GET /provider_health?provider=&customName=&unhealthRatioThreshold=`: the reference's slim
/// pool status for uptime monitors. Without the client key it answers the counts and the
/// summary only; the per-account items (names, uuid prefixes, error texts) need the key.
pub async fn provider_health(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let detailed = authorized(&state, &headers, raw.as_deref()).await;
    let threshold = q.get("unhealthRatioThreshold").and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0001);
    let types = match q.get("provider") {
        Some(p) => vec![p.clone()],
        None => match state.store.list_pool_types().await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "provider_health: storage unavailable");
                let body = json!({"error": {"message": "storage unavailable", "type": "server_error"}});
                return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
            }
        },
    };
    let now = epoch_ms();
    let mut items = Vec::new();
    for t in types {
        for a in state.store.get_pool(&t).await.unwrap_or_default() {
            if q.get("customName").is_some_and(|n| a.custom_name() != Some(n.as_str())) {
                continue;
            }
            let uuid = a.uuid();
            let masked = format!("{}…", &uuid[..uuid.len().min(8)]);
            let healthy = a.is_healthy() || crate::pool::select::recovery_due(&a, now);
            items.push(json!({
                "uuid": masked,
                "customName": a.custom_name(),
                "isHealthy": healthy,
                "isDisabled": a.is_disabled(),
                "lastErrorTime": a.get("lastErrorTime"),
                "lastErrorMessage": a.last_error_message(),
                "needsRefresh": a.needs_refresh(),
                "identify": format!("{}::{t}", a.custom_name().unwrap_or(&masked)),
                "provider": t,
            }));
        }
    }
    let count = items.len();
    let unhealthy = items.iter().filter(|i| i["isHealthy"] == false && i["isDisabled"] == false).count();
    let ratio = if count == 0 { 0.0 } else { unhealthy as f64 / count as f64 };
    let mut body = json!({
        "timestamp": iso_now(),
        "count": count,
        "unhealthyCount": unhealthy,
        "unhealthyRatio": ratio,
        "unhealthySummeryMessage": format!("{unhealthy} of {count} accounts unhealthy"),
        "summaryHealth": ratio <= threshold,
    });
    if detailed {
        body["items"] = Value::Array(items);
    }
    Json(body).into_response()
}

/// `GET /metrics` (no auth): Prometheus text, with pool and store gauges refreshed first.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let st = state.store.status();
    let m = &state.metrics;
    m.store_degraded.set(i64::from(st.degraded));
    m.store_queued_writes.set(st.queued_writes as i64);
    m.store_queue_overflows.set(st.queue_overflows as i64);
    let now = epoch_ms();
    for t in state.store.list_pool_types().await.unwrap_or_default() {
        let accounts = state.store.get_pool(&t).await.unwrap_or_default();
        let disabled = accounts.iter().filter(|a| a.is_disabled()).count();
        let usable = accounts.iter().filter(|a| crate::pool::select::usable(a, now)).count();
        let unhealthy = accounts.len() - disabled - usable;
        for (state_label, n) in [("usable", usable), ("unhealthy", unhealthy), ("disabled", disabled)] {
            let labels = crate::metrics::PoolLabels { provider: t.clone(), state: state_label };
            m.pool_accounts.get_or_create(&labels).set(n as i64);
        }
    }
    ([("content-type", "application/openmetrics-text; version=1.0.0; charset=utf-8")], m.encode()).into_response()
}

/// `GET /api/usage[/{type}]`: the usage cache, or fresh numbers with `?refresh=true`.
pub async fn usage(State(state): State<Arc<AppState>>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    usage_for(state, headers, q, None).await
}

pub async fn usage_type(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(pool): axum::extract::Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    usage_for(state, headers, q, Some(pool)).await
}

async fn usage_for(state: Arc<AppState>, headers: HeaderMap, q: Option<String>, pool: Option<String>) -> Response {
    if !authorized(&state, &headers, q.as_deref()).await {
        return unauthorized();
    }
    let refresh = q.as_deref().unwrap_or("").split('&').any(|kv| kv == "refresh=true" || kv == "refresh=1");
    let cached = if refresh { None } else { state.store.get_usage_cache().await.ok().flatten() };
    let (mut body, from_cache) = match cached {
        Some(c) => (c, true),
        None => match crate::usage::refresh(&state, pool.as_deref()).await {
            Ok(c) => (c, false),
            Err(e) => {
                let body = json!({"error": {"message": format!("usage query failed: {e}"), "type": "server_error"}});
                return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
            }
        },
    };
    if let Some(p) = pool {
        body = body.pointer(&format!("/providers/{p}")).cloned().unwrap_or_else(
            || json!({"providerType": p, "instances": [], "totalCount": 0, "successCount": 0, "errorCount": 0}),
        );
    }
    if let Some(o) = body.as_object_mut() {
        o.insert("fromCache".into(), from_cache.into());
    }
    Json(body).into_response()
}
