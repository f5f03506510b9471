//! `/api/custom-models[/{id}]`: the reference's custom model CRUD over the store's list, which
//! every replica applies at once.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use bytes::Bytes;
use serde_json::{json, Value};

use super::{parse_json, Admin, AdminError, AdminResult};
use crate::server::custom_models::CustomModels;
use crate::server::AppState;

async fn stored(state: &AppState) -> AdminResult<Vec<Value>> {
    Ok(state.store.get_custom_models().await?.and_then(|v| v.as_array().cloned()).unwrap_or_default())
}

/// Checks one entry: an object with an id and a provider type this gateway knows.
fn check(entry: &Value) -> AdminResult<String> {
    let (parsed, _) = CustomModels::parse(&Value::Array(vec![entry.clone()]));
    let Some(m) = parsed.0.first() else {
        return Err(AdminError::bad_request("a custom model needs \"id\" and \"provider\" (or \"actualProvider\")"));
    };
    if !crate::providers::Registry::is_known(&m.provider) {
        return Err(AdminError::bad_request(format!("field \"provider\": unknown provider type {:?}", m.provider)));
    }
    Ok(m.id.clone())
}

async fn save(state: &AppState, list: Vec<Value>) -> AdminResult<()> {
    super::done(state.store.set_custom_models(&Value::Array(list)).await?)?;
    state.refresh_custom_models().await;
    Ok(())
}

fn id_of(v: &Value) -> Option<&str> {
    v.get("id").and_then(Value::as_str).map(str::trim)
}

/// `GET /api/custom-models`.
pub async fn list(State(state): State<Arc<AppState>>, _admin: Admin) -> AdminResult {
    Ok(Json(Value::Array(stored(&state).await?)).into_response())
}

/// `POST /api/custom-models {id, provider, actualModel?, alias?, maxTokens?, temperature?, topP?, …}`.
pub async fn add(State(state): State<Arc<AppState>>, _admin: Admin, body: Bytes) -> AdminResult {
    let entry: Value = parse_json(&body)?;
    let id = check(&entry)?;
    let mut list = stored(&state).await?;
    if list.iter().any(|m| id_of(m) == Some(id.as_str())) {
        return Err(AdminError::new(409, "CONFLICT", format!("a custom model {id:?} exists")));
    }
    list.push(entry.clone());
    save(&state, list).await?;
    Ok((StatusCode::CREATED, Json(json!({"success": true, "data": entry}))).into_response())
}

/// `PUT /api/custom-models/{id}`: replaces the entry.
pub async fn update(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    Path(id): Path<String>,
    body: Bytes,
) -> AdminResult {
    let mut entry: Value = parse_json(&body)?;
    if entry.is_object() && entry.get("id").is_none() {
        entry["id"] = Value::String(id.clone());
    }
    check(&entry)?;
    let mut list = stored(&state).await?;
    let Some(slot) = list.iter_mut().find(|m| id_of(m) == Some(id.as_str())) else {
        return Err(AdminError::not_found(format!("no custom model {id:?}")));
    };
    *slot = entry.clone();
    save(&state, list).await?;
    Ok(Json(json!({"success": true, "data": entry})).into_response())
}

/// `DELETE /api/custom-models/{id}`.
pub async fn remove(State(state): State<Arc<AppState>>, _admin: Admin, Path(id): Path<String>) -> AdminResult {
    let mut list = stored(&state).await?;
    let before = list.len();
    list.retain(|m| id_of(m) != Some(id.as_str()));
    if list.len() == before {
        return Err(AdminError::not_found(format!("no custom model {id:?}")));
    }
    save(&state, list).await?;
    Ok(Json(json!({"success": true})).into_response())
}
