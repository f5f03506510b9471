//! `/api/providers…`: pools and accounts. Spec fields change through
//! [`poolgate_store::Storage::patch_account`] (runtime counters are refused there, so an edit
//! under traffic never loses a count); runtime actions (enable, disable, reset, check) use the
//! store's runtime updates. Accounts a `ProviderPool` resource owns (`poolgateOwner`) keep their
//! spec fields read-only here — the operator would revert an edit — but runtime actions stay.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use poolgate_store::time::epoch_ms;
use poolgate_store::{Account, AccountOps};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::config::masked;
use super::{parse_json, Admin, AdminError, AdminResult};
use crate::pool::select::usable;
use crate::server::AppState;

/// The account field the operator marks its accounts with.
pub const OWNER_FIELD: &str = "poolgateOwner";
const DETECT_TIMEOUT: Duration = Duration::from_secs(15);

fn owner(a: &Account) -> Option<&str> {
    a.get(OWNER_FIELD).and_then(Value::as_str)
}

/// One account as the browser sees it: secrets masked, with live status beside the stored
/// fields (`slots`: concurrency slots held and queued fleet-wide, when the account has a limit).
fn view(state: &AppState, pool: &str, a: &Account, now: i64) -> Value {
    view_with(state, pool, a, now, None)
}

fn view_with(state: &AppState, pool: &str, a: &Account, now: i64, slots: Option<(u32, u32)>) -> Value {
    let mut v = masked(&Value::Object(a.as_map().clone()));
    if let Some(o) = v.as_object_mut() {
        // Runtime fields as the selector reads them (absent fields have defaults).
        o.insert("isHealthy".into(), a.is_healthy().into());
        o.insert("isDisabled".into(), a.is_disabled().into());
        o.insert("usageCount".into(), a.usage_count().into());
        o.insert("errorCount".into(), a.error_count().into());
        o.insert("activeRequests".into(), state.selector.in_flight(pool, a.uuid()).into());
        o.insert("isUsable".into(), usable(a, now).into());
        o.insert("managedBy".into(), owner(a).map_or(Value::Null, |s| Value::String(s.into())));
        if let Some((held, queued)) = slots {
            o.insert("slotsHeld".into(), held.into());
            o.insert("queuedRequests".into(), queued.into());
        }
    }
    v
}

async fn pool_summary(state: &AppState, pool: &str, accounts: &[Arc<Account>]) -> AdminResult<Value> {
    let now = epoch_ms();
    let healthy = accounts.iter().filter(|a| a.is_healthy() && !a.is_disabled()).count();
    let limited: Vec<String> =
        accounts.iter().filter(|a| crate::pool::slots::limits(a).is_some()).map(|a| a.uuid().to_string()).collect();
    let loads = state.store.slot_loads(pool, &limited).await?;
    let load_of = |uuid: &str| limited.iter().position(|u| u == uuid).and_then(|i| loads.get(i).copied());
    let views: Vec<Value> = accounts.iter().map(|a| view_with(state, pool, a, now, load_of(a.uuid()))).collect();
    Ok(json!({
        "providerType": pool,
        "providers": views,
        "totalCount": accounts.len(),
        "healthyCount": healthy,
        "usableCount": accounts.iter().filter(|a| usable(a, now)).count(),
        "served": state.providers.get(pool).is_some(),
    }))
}

/// `GET /api/providers`: every pool, `{type: [account…]}` as the reference, plus `_summary`.
pub async fn list(State(state): State<Arc<AppState>>, _admin: Admin) -> AdminResult {
    let mut out = Map::new();
    let mut summary = Map::new();
    for t in &state.store.list_pool_types().await? {
        let accounts = state.store.get_pool(t).await?;
        let s = pool_summary(&state, t, &accounts).await?;
        out.insert(t.clone(), s["providers"].clone());
        summary.insert(
            t.clone(),
            json!({"totalCount": s["totalCount"], "healthyCount": s["healthyCount"], "usableCount": s["usableCount"]}),
        );
    }
    out.insert("_summary".into(), Value::Object(summary));
    Ok(Json(Value::Object(out)).into_response())
}

/// `GET /api/providers/supported`: provider types this build serves.
pub async fn supported(State(state): State<Arc<AppState>>, _admin: Admin) -> AdminResult {
    let mut types: Vec<&str> = state.providers.base_types().collect();
    types.sort_unstable();
    Ok(Json(json!(types)).into_response())
}

/// `GET /api/providers/{type}`.
pub async fn one_pool(State(state): State<Arc<AppState>>, _admin: Admin, Path(pool): Path<String>) -> AdminResult {
    let accounts = state.store.get_pool(&pool).await?;
    Ok(Json(pool_summary(&state, &pool, &accounts).await?).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AddBody {
    provider_type: String,
    #[serde(default)]
    provider_config: Map<String, Value>,
}

/// Refuses spec fields that cannot be right: runtime fields, the owner mark, a malformed base URL.
fn check_spec_fields(fields: &Map<String, Value>) -> AdminResult<()> {
    for (k, v) in fields {
        if poolgate_store::account::is_runtime_field(k) {
            return Err(AdminError::bad_request(format!("field {k:?} is runtime state and cannot be set")));
        }
        if k == OWNER_FIELD {
            return Err(AdminError::bad_request(format!("field {k:?} is set by the operator only")));
        }
        if k.ends_with("BASE_URL") {
            let ok = v.as_str().is_some_and(|s| {
                (s.starts_with("http://") || s.starts_with("https://")) && !s.contains('?') && !s.contains('#')
            });
            if !ok {
                return Err(AdminError::bad_request(format!(
                    "field {k:?} must be an http(s) URL without query or fragment"
                )));
            }
        }
    }
    Ok(())
}

/// `POST /api/providers {providerType, providerConfig}`: a new account (uuid generated unless given).
pub async fn add(State(state): State<Arc<AppState>>, _admin: Admin, body: Bytes) -> AdminResult {
    let AddBody { provider_type, mut provider_config } = parse_json(&body)?;
    if !crate::providers::Registry::is_known(&provider_type) {
        return Err(AdminError::bad_request(format!("unknown provider type {provider_type:?}")));
    }
    let uuid = match provider_config.remove("uuid") {
        Some(Value::String(u)) if !u.trim().is_empty() => u,
        Some(_) => return Err(AdminError::bad_request("field \"uuid\" must be a non-empty string")),
        None => uuid::Uuid::new_v4().to_string(),
    };
    check_spec_fields(&provider_config)?;
    let mut map = Map::new();
    map.insert("uuid".into(), Value::String(uuid.clone()));
    map.extend(provider_config);
    let account = Account::from_map(map)?;
    let added = super::done(state.store.add_account(&provider_type, account).await?)?;
    tracing::info!(pool = %provider_type, %uuid, "admin: account added");
    let now = epoch_ms();
    Ok((
        axum::http::StatusCode::CREATED,
        Json(json!({"success": true, "provider": view(&state, &provider_type, &added, now)})),
    )
        .into_response())
}

async fn owned_check(state: &AppState, pool: &str, uuid: &str) -> AdminResult<Account> {
    let a = state.store.get_account(pool, uuid).await?;
    if let Some(o) = owner(&a) {
        return Err(AdminError::new(
            409,
            "MANAGED_BY_OPERATOR",
            format!("account {uuid} belongs to ProviderPool {o}: change it there (runtime actions stay allowed)"),
        ));
    }
    Ok(a)
}

/// `PUT /api/providers/{type}/{uuid} {field: value|null, …}`: spec fields only; `null` removes one.
pub async fn update(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    Path((pool, uuid)): Path<(String, String)>,
    body: Bytes,
) -> AdminResult {
    let patch: Value = parse_json(&body)?;
    let Value::Object(mut patch) = patch else { return Err(AdminError::bad_request("the body must be a JSON object")) };
    // The reference's UI sends the whole account back; runtime fields and the uuid are ignored.
    patch.retain(|k, _| !poolgate_store::account::is_runtime_field(k) && k != "uuid");
    for k in ["activeRequests", "isUsable", "managedBy"] {
        patch.remove(k);
    }
    patch.retain(|_, v| v.as_str() != Some(super::config::MASK));
    check_spec_fields(&patch)?;
    owned_check(&state, &pool, &uuid).await?;
    let (unset, set): (Vec<_>, Vec<_>) = patch.into_iter().partition(|(_, v)| v.is_null());
    let ops = AccountOps {
        set: set.into_iter().collect(),
        unset: unset.into_iter().map(|(k, _)| k).collect(),
        ..AccountOps::default()
    };
    let a = super::done(state.store.update_account(&pool, &uuid, ops).await?)?;
    Ok(Json(json!({"success": true, "provider": view(&state, &pool, &a, epoch_ms())})).into_response())
}

/// `DELETE /api/providers/{type}/{uuid}`: the account, its token and its refresh index.
pub async fn remove(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    Path((pool, uuid)): Path<(String, String)>,
) -> AdminResult {
    owned_check(&state, &pool, &uuid).await?;
    state.store.delete_account(&pool, &uuid).await?;
    tracing::info!(%pool, %uuid, "admin: account deleted");
    Ok(Json(json!({"success": true, "message": "Account deleted"})).into_response())
}

async fn runtime(state: &AppState, pool: &str, uuid: &str, ops: AccountOps) -> AdminResult {
    let a = super::done(state.store.update_account(pool, uuid, ops).await?)?;
    Ok(Json(json!({"success": true, "provider": view(state, pool, &a, epoch_ms())})).into_response())
}

pub async fn disable(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    Path((pool, uuid)): Path<(String, String)>,
) -> AdminResult {
    runtime(&state, &pool, &uuid, poolgate_store::account::runtime::disabled(true)).await
}

pub async fn enable(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    Path((pool, uuid)): Path<(String, String)>,
) -> AdminResult {
    runtime(&state, &pool, &uuid, poolgate_store::account::runtime::disabled(false)).await
}

/// Healthy again, error count cleared, any cooldown dropped (usage is kept).
fn reset_ops() -> AccountOps {
    AccountOps::default()
        .set("isHealthy", true)
        .set("errorCount", 0)
        .set("lastErrorMessage", Value::Null)
        .set("scheduledRecoveryTime", Value::Null)
}

pub async fn reset_one(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    Path((pool, uuid)): Path<(String, String)>,
) -> AdminResult {
    state.selector.unbench(&pool, &uuid);
    runtime(&state, &pool, &uuid, reset_ops()).await
}

pub async fn reset_pool(State(state): State<Arc<AppState>>, _admin: Admin, Path(pool): Path<String>) -> AdminResult {
    let accounts = state.store.get_pool(&pool).await?;
    for a in &accounts {
        state.selector.unbench(&pool, a.uuid());
        state.store.update_account(&pool, a.uuid(), reset_ops()).await?;
    }
    Ok(Json(json!({"success": true, "resetCount": accounts.len()})).into_response())
}

async fn check(state: &Arc<AppState>, pool: &str, account: &Account) -> Value {
    let Some(provider) = state.providers.get(pool).cloned() else {
        return json!({"uuid": account.uuid(), "success": false, "message": "this build does not serve the type"});
    };
    let result = crate::server::checker(state).check_now(pool, provider, account).await;
    json!({"uuid": account.uuid(), "success": result.is_ok(), "message": result.err()})
}

/// `POST /api/providers/{type}/{uuid}/health-check`: checks now, stores the result.
pub async fn check_one(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    Path((pool, uuid)): Path<(String, String)>,
) -> AdminResult {
    let a = state.store.get_account(&pool, &uuid).await?;
    Ok(Json(check(&state, &pool, &a).await).into_response())
}

/// `POST /api/providers/{type}/health-check`: every enabled account of the pool, concurrently.
pub async fn check_pool(State(state): State<Arc<AppState>>, _admin: Admin, Path(pool): Path<String>) -> AdminResult {
    let accounts = state.store.get_pool(&pool).await?;
    let checks = accounts.iter().filter(|a| !a.is_disabled()).map(|a| check(&state, &pool, a));
    let results = futures::future::join_all(checks).await;
    let passed = results.iter().filter(|r| r["success"] == true).count();
    Ok(Json(json!({"success": true, "checked": results.len(), "healthy": passed, "results": results})).into_response())
}

/// `DELETE /api/providers/{type}/delete-unhealthy`: removes unhealthy accounts this API may
/// remove (operator-owned ones are left to their resource).
pub async fn delete_unhealthy(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    Path(pool): Path<String>,
) -> AdminResult {
    let mut deleted = Vec::new();
    let mut kept = Vec::new();
    for a in state.store.get_pool(&pool).await? {
        if a.is_healthy() {
            continue;
        }
        if owner(&a).is_some() {
            kept.push(a.uuid().to_string());
            continue;
        }
        state.store.delete_account(&pool, a.uuid()).await?;
        deleted.push(a.uuid().to_string());
    }
    Ok(Json(json!({"success": true, "deletedCount": deleted.len(), "deleted": deleted, "keptManaged": kept}))
        .into_response())
}

/// `POST /api/providers/{type}/{uuid}/detect-models`: the upstream's model list into
/// `supportedModels` (a spec field, so refused for operator-owned accounts).
pub async fn detect_models(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    Path((pool, uuid)): Path<(String, String)>,
) -> AdminResult<Response> {
    let account = owned_check(&state, &pool, &uuid).await?;
    let Some(provider) = state.providers.get(&pool).cloned() else {
        return Err(AdminError::bad_request(format!("this build does not serve {pool:?}")));
    };
    let ctx = state.provider_ctx(&pool, &account);
    let models: Vec<String> = match provider.list_models(&ctx, &account) {
        Some(request) => {
            let resp = tokio::time::timeout(DETECT_TIMEOUT, request.send())
                .await
                .map_err(|_| AdminError::new(504, "UPSTREAM_TIMEOUT", "the upstream model list timed out"))?
                .map_err(|e| {
                    AdminError::new(502, "UPSTREAM_ERROR", crate::server::relay::error_chain(&e.without_url()))
                })?;
            if !resp.status().is_success() {
                let code = resp.status().as_u16();
                return Err(AdminError::new(502, "UPSTREAM_ERROR", format!("the upstream answered HTTP {code}")));
            }
            let v: Value = resp
                .json()
                .await
                .map_err(|_| AdminError::new(502, "UPSTREAM_ERROR", "the upstream model list is not JSON"))?;
            let data = v.get("data").or_else(|| v.get("models")).and_then(Value::as_array);
            data.into_iter()
                .flatten()
                .filter_map(|m| m.get("id").or_else(|| m.get("name")).and_then(Value::as_str))
                .map(|s| s.trim_start_matches("models/").to_string())
                .collect()
        }
        None => provider.static_models().iter().map(|s| s.to_string()).collect(),
    };
    let ops = AccountOps::default().set("supportedModels", json!(models));
    state.store.update_account(&pool, &uuid, ops).await?;
    Ok(Json(json!({"success": true, "models": models, "count": models.len()})).into_response())
}
