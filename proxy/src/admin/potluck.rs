//! Client keys through the admin API, at the reference's `api-potluck` paths and shapes
//! (`/api/potluck/*` with an admin session, `/api/potluckuser/usage` with the key itself), plus
//! poolgate's extra limits. A key's text is shown once, when created or regenerated: the store
//! keeps only its SHA-256, and every other answer names it by `id` and a masked prefix. Keys a
//! `ClientConfig` declares (`managedBy`) keep their settings read-only here; resetting their
//! counters stays allowed.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use bytes::Bytes;
use poolgate_store::time::epoch_ms;
use poolgate_store::{ClientKey, ClientKeyUsage};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{parse_json, Admin, AdminError, AdminResult};
use crate::server::AppState;

/// The reference's default daily limit for a new key.
const DEFAULT_DAILY_LIMIT: i64 = 500;
/// The reference's day boundary (Beijing time).
const DEFAULT_TZ_MINUTES: i32 = 480;
/// Former hashes kept per key (their statistics stay attributed to the key).
const MAX_FORMER_HASHES: usize = 16;
/// Most days of statistics one request may ask for.
const MAX_STATS_DAYS: i64 = 90;

fn day_of(key: &ClientKey, now_ms: i64) -> i64 {
    (now_ms + i64::from(key.timezone_offset_minutes) * 60_000).div_euclid(86_400_000)
}

fn date_of_day(day: i64) -> String {
    chrono::DateTime::from_timestamp(day * 86_400, 0).map(|d| d.format("%Y-%m-%d").to_string()).unwrap_or_default()
}

fn iso_ms(ms: i64) -> Value {
    chrono::DateTime::from_timestamp_millis(ms).map_or(Value::Null, |d| Value::String(poolgate_store::time::iso(d)))
}

/// Today's count as the key sees it (counters of an earlier day read as zero).
fn today(key: &ClientKey, usage: &ClientKeyUsage, now: i64) -> i64 {
    if usage.day == day_of(key, now) {
        usage.today_usage
    } else {
        0
    }
}

/// A key in the reference's `keyData` shape, with poolgate's fields beside it.
fn key_data(key: &ClientKey, usage: &ClientKeyUsage) -> Value {
    let now = epoch_ms();
    json!({
        "id": key.id,
        "name": key.name,
        "createdAt": iso_ms(key.created_at),
        "dailyLimit": key.daily_limit,
        "todayUsage": today(key, usage, now),
        "totalUsage": usage.total_usage,
        "lastResetDate": date_of_day(day_of(key, now)),
        "lastUsedAt": Value::Null,
        "enabled": key.enabled,
        "bonusRemaining": (key.bonus - usage.bonus_used).max(0),
        "maskedKey": format!("{}...", key.prefix),
        "totalLimit": key.total_limit,
        "rpmLimit": key.rpm_limit,
        "tpmLimit": key.tpm_limit,
        "models": key.models,
        "providers": key.providers,
        "expiresAt": key.expires_at,
        "timezoneOffsetMinutes": key.timezone_offset_minutes,
        "inputTokens": usage.input_tokens,
        "outputTokens": usage.output_tokens,
        "errors": usage.errors,
        "managedBy": key.owner,
    })
}

fn ok(data: Value) -> axum::response::Response {
    Json(json!({"success": true, "data": data})).into_response()
}

/// The key with admin id `id`, as `(hash, settings, counters)`.
async fn find(state: &AppState, id: &str) -> AdminResult<(String, ClientKey, ClientKeyUsage)> {
    state
        .store
        .list_client_keys()
        .await?
        .into_iter()
        .find(|(_, k, _)| k.id == id)
        .ok_or_else(|| AdminError::not_found("Key not found"))
}

fn editable(key: &ClientKey) -> AdminResult<()> {
    match &key.owner {
        Some(o) => Err(AdminError::new(
            409,
            "MANAGED_BY_OPERATOR",
            format!("key {:?} is declared by {o}: change it there (resetting its usage stays allowed)", key.name),
        )),
        None => Ok(()),
    }
}

fn stats_of(keys: &[(String, ClientKey, ClientKeyUsage)]) -> Value {
    let now = epoch_ms();
    let enabled = keys.iter().filter(|(_, k, _)| k.enabled).count();
    json!({
        "totalKeys": keys.len(),
        "enabledKeys": enabled,
        "disabledKeys": keys.len() - enabled,
        "todayTotalUsage": keys.iter().map(|(_, k, u)| today(k, u, now)).sum::<i64>(),
        "totalUsage": keys.iter().map(|(_, _, u)| u.total_usage).sum::<i64>(),
    })
}

/// `GET /api/potluck/stats`.
pub async fn stats(State(state): State<Arc<AppState>>, _admin: Admin) -> AdminResult {
    Ok(ok(stats_of(&state.store.list_client_keys().await?)))
}

/// `GET /api/potluck/keys` → `{keys, stats}`.
pub async fn list(State(state): State<Arc<AppState>>, _admin: Admin) -> AdminResult {
    let keys = state.store.list_client_keys().await?;
    let data: Vec<Value> = keys.iter().map(|(_, k, u)| key_data(k, u)).collect();
    Ok(ok(json!({"keys": data, "stats": stats_of(&keys)})))
}

/// Settings a request may give (all optional; `null` clears a limit).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct KeyBody {
    name: Option<String>,
    daily_limit: Option<Option<i64>>,
    total_limit: Option<Option<i64>>,
    rpm_limit: Option<Option<i64>>,
    tpm_limit: Option<Option<i64>>,
    models: Option<Vec<String>>,
    providers: Option<Vec<String>>,
    expires_at: Option<Option<i64>>,
    bonus: Option<i64>,
    timezone_offset_minutes: Option<i32>,
    enabled: Option<bool>,
}

fn limit(field: &str, v: Option<i64>) -> AdminResult<Option<i64>> {
    match v {
        Some(n) if n < 0 => Err(AdminError::bad_request(format!("field {field:?} must be 0 or more (or null)"))),
        v => Ok(v),
    }
}

impl KeyBody {
    /// Lays the given fields over `key`, checking each.
    fn apply(self, key: &mut ClientKey) -> AdminResult<()> {
        if let Some(n) = self.name {
            if n.trim().is_empty() || n.chars().count() > 200 {
                return Err(AdminError::bad_request("field \"name\" must have 1 to 200 characters"));
            }
            key.name = n.trim().to_string();
        }
        if let Some(v) = self.daily_limit {
            key.daily_limit = limit("dailyLimit", v)?;
        }
        if let Some(v) = self.total_limit {
            key.total_limit = limit("totalLimit", v)?;
        }
        if let Some(v) = self.rpm_limit {
            key.rpm_limit = limit("rpmLimit", v)?;
        }
        if let Some(v) = self.tpm_limit {
            key.tpm_limit = limit("tpmLimit", v)?;
        }
        if let Some(v) = self.models {
            key.models = v;
        }
        if let Some(v) = self.providers {
            if let Some(bad) = v.iter().find(|p| !crate::providers::Registry::is_known(p)) {
                return Err(AdminError::bad_request(format!("field \"providers\": unknown provider type {bad:?}")));
            }
            key.providers = v;
        }
        if let Some(v) = self.expires_at {
            key.expires_at = v;
        }
        if let Some(v) = self.bonus {
            key.bonus = limit("bonus", Some(v))?.unwrap_or(0);
        }
        if let Some(v) = self.timezone_offset_minutes {
            if !(-720..=840).contains(&v) {
                return Err(AdminError::bad_request("field \"timezoneOffsetMinutes\" must be within -720..=840"));
            }
            key.timezone_offset_minutes = v;
        }
        if let Some(v) = self.enabled {
            key.enabled = v;
        }
        Ok(())
    }
}

fn body_or_default(body: &[u8]) -> AdminResult<KeyBody> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(KeyBody::default())
    } else {
        parse_json(body)
    }
}

/// `POST /api/potluck/keys {name?, dailyLimit?, …}` → 201 with the key's text (shown once).
pub async fn create(State(state): State<Arc<AppState>>, _admin: Admin, body: Bytes) -> AdminResult {
    let b = body_or_default(&body)?;
    let count = state.store.list_client_keys().await?.len();
    let text = ClientKey::generate();
    let mut key = ClientKey {
        id: uuid::Uuid::new_v4().to_string(),
        name: format!("Key-{}", count + 1),
        enabled: true,
        daily_limit: Some(DEFAULT_DAILY_LIMIT),
        timezone_offset_minutes: DEFAULT_TZ_MINUTES,
        prefix: text.chars().take(12).collect(),
        created_at: epoch_ms(),
        ..ClientKey::default()
    };
    b.apply(&mut key)?;
    state.store.put_client_key(&ClientKey::hash(&text), &key).await?;
    tracing::info!(id = %key.id, name = %key.name, "admin: client key created");
    let mut data = key_data(&key, &ClientKeyUsage::default());
    data["key"] = Value::String(text);
    let body = json!({"success": true, "message": "API Key created successfully", "data": data});
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /api/potluck/keys/{id}`.
pub async fn get_one(State(state): State<Arc<AppState>>, _admin: Admin, Path(id): Path<String>) -> AdminResult {
    let (_, k, u) = find(&state, &id).await?;
    Ok(ok(key_data(&k, &u)))
}

/// `PUT /api/potluck/keys/{id} {…settings}` (poolgate: every setting at once).
pub async fn update(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    Path(id): Path<String>,
    body: Bytes,
) -> AdminResult {
    let (hash, mut k, u) = find(&state, &id).await?;
    editable(&k)?;
    parse_json::<KeyBody>(&body)?.apply(&mut k)?;
    state.store.put_client_key(&hash, &k).await?;
    Ok(ok(key_data(&k, &u)))
}

/// `DELETE /api/potluck/keys/{id}`.
pub async fn remove(State(state): State<Arc<AppState>>, _admin: Admin, Path(id): Path<String>) -> AdminResult {
    let (hash, k, _) = find(&state, &id).await?;
    editable(&k)?;
    state.store.delete_client_key(&hash).await?;
    Ok(Json(json!({"success": true, "message": "Key deleted successfully"})).into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LimitBody {
    daily_limit: Value,
}

fn daily_limit_of(body: &[u8]) -> AdminResult<i64> {
    let b: LimitBody = parse_json(body)?;
    match b.daily_limit.as_i64() {
        Some(n) if n >= 0 => Ok(n),
        _ => Err(AdminError::bad_request("Invalid dailyLimit value")),
    }
}

/// `PUT /api/potluck/keys/{id}/limit {dailyLimit}` (0 as in the reference: no requests).
pub async fn set_limit(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    Path(id): Path<String>,
    body: Bytes,
) -> AdminResult {
    let n = daily_limit_of(&body)?;
    let (hash, mut k, u) = find(&state, &id).await?;
    editable(&k)?;
    k.daily_limit = Some(n);
    state.store.put_client_key(&hash, &k).await?;
    Ok(Json(json!({"success": true, "message": "Daily limit updated successfully", "data": key_data(&k, &u)}))
        .into_response())
}

/// `POST /api/potluck/keys/apply-limit {dailyLimit}` → `{total, updated}` (declared keys skipped).
pub async fn apply_limit(State(state): State<Arc<AppState>>, _admin: Admin, body: Bytes) -> AdminResult {
    let n = daily_limit_of(&body)?;
    let keys = state.store.list_client_keys().await?;
    let mut updated = 0;
    for (hash, mut k, _) in keys.iter().cloned() {
        if k.owner.is_none() && k.daily_limit != Some(n) {
            k.daily_limit = Some(n);
            state.store.put_client_key(&hash, &k).await?;
            updated += 1;
        }
    }
    Ok(ok(json!({"total": keys.len(), "updated": updated})))
}

/// `POST /api/potluck/keys/{id}/reset`: today's count back to zero, on every replica (totals
/// and statistics stay, as the reference).
pub async fn reset(State(state): State<Arc<AppState>>, _admin: Admin, Path(id): Path<String>) -> AdminResult {
    let (hash, k, mut u) = find(&state, &id).await?;
    state.store.reset_client_key_usage(&hash).await?;
    u.today_usage = 0;
    Ok(Json(json!({"success": true, "message": "Usage reset successfully", "data": key_data(&k, &u)})).into_response())
}

/// `POST /api/potluck/keys/{id}/toggle`.
pub async fn toggle(State(state): State<Arc<AppState>>, _admin: Admin, Path(id): Path<String>) -> AdminResult {
    let (hash, mut k, u) = find(&state, &id).await?;
    editable(&k)?;
    k.enabled = !k.enabled;
    state.store.put_client_key(&hash, &k).await?;
    let message = format!("Key {} successfully", if k.enabled { "enabled" } else { "disabled" });
    Ok(Json(json!({"success": true, "message": message, "data": key_data(&k, &u)})).into_response())
}

#[derive(Deserialize)]
struct NameBody {
    name: Value,
}

/// `PUT /api/potluck/keys/{id}/name {name}`.
pub async fn rename(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    Path(id): Path<String>,
    body: Bytes,
) -> AdminResult {
    let b: NameBody = parse_json(&body)?;
    let name = b.name.as_str().map(str::trim).filter(|n| !n.is_empty() && n.chars().count() <= 200);
    let Some(name) = name else { return Err(AdminError::bad_request("Invalid name value")) };
    let (hash, mut k, u) = find(&state, &id).await?;
    editable(&k)?;
    k.name = name.to_string();
    state.store.put_client_key(&hash, &k).await?;
    Ok(Json(json!({"success": true, "message": "Name updated successfully", "data": key_data(&k, &u)})).into_response())
}

/// `POST /api/potluck/keys/{id}/regenerate`: a new text for the key, settings and counters
/// kept; the old text stops working at once on every replica.
pub async fn regenerate(State(state): State<Arc<AppState>>, _admin: Admin, Path(id): Path<String>) -> AdminResult {
    let (hash, mut k, u) = find(&state, &id).await?;
    editable(&k)?;
    let text = ClientKey::generate();
    let new_hash = ClientKey::hash(&text);
    if !state.store.rekey_client_key(&hash, &new_hash).await? {
        return Err(AdminError::not_found("Key not found"));
    }
    let old_prefix = std::mem::replace(&mut k.prefix, text.chars().take(12).collect());
    k.former_hashes.insert(0, hash);
    k.former_hashes.truncate(MAX_FORMER_HASHES);
    state.store.put_client_key(&new_hash, &k).await?;
    let mut data = key_data(&k, &u);
    data["key"] = Value::String(text.clone());
    Ok(ok(json!({"oldKey": format!("{old_prefix}..."), "newKey": text, "keyData": data})))
}

/// `GET /api/potluck/usage?days=N[&key=id]`: per key, per model, per day (the reference's
/// `model-usage-stats` with keys), newest day first.
pub async fn usage(State(state): State<Arc<AppState>>, _admin: Admin, RawQuery(q): RawQuery) -> AdminResult {
    let q = q.unwrap_or_default();
    let param = |name: &str| q.split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('=')).map(str::to_string);
    let days = param("days").and_then(|d| d.parse::<i64>().ok()).unwrap_or(7).clamp(1, MAX_STATS_DAYS);
    let only = param("key");
    let keys = state.store.list_client_keys().await?;
    let now = epoch_ms();
    // Each key counts days in its own time zone, so look at every day any key is on.
    let newest = keys.iter().map(|(_, k, _)| day_of(k, now)).max().unwrap_or_else(|| now.div_euclid(86_400_000));
    let mut out = Vec::new();
    for day in (newest - days + 1..=newest).rev() {
        for row in state.store.client_key_stats(day).await? {
            let owns = |(h, k, _): &&(String, ClientKey, ClientKeyUsage)| {
                *h == row.hash || k.former_hashes.contains(&row.hash)
            };
            let Some((_, k, _)) = keys.iter().find(owns) else { continue };
            if only.as_deref().is_some_and(|id| id != k.id) {
                continue;
            }
            out.push(json!({
                "date": date_of_day(day), "keyId": k.id, "keyName": k.name, "model": row.model,
                "requests": row.requests, "inputTokens": row.input_tokens, "outputTokens": row.output_tokens,
                "errors": row.errors,
            }));
        }
    }
    Ok(ok(json!({"days": days, "rows": out})))
}

/// `GET /api/potluckuser/usage` with the client key itself (`Authorization: Bearer …` or
/// `x-api-key`): the key's own usage, nothing about others.
pub async fn user_usage(State(state): State<Arc<AppState>>, headers: HeaderMap) -> AdminResult {
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let presented = bearer.or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok())).map(str::trim);
    let Some(text) = presented.filter(|t| !t.is_empty() && t.len() <= 256) else {
        return Err(AdminError::new(
            401,
            "API_KEY_REQUIRED",
            "API Key required: give it as Authorization: Bearer <key> or x-api-key",
        ));
    };
    let Some((k, u)) = state.store.get_client_key(&ClientKey::hash(text)).await? else {
        return Err(AdminError::new(401, "not_found", "API key not found"));
    };
    if !k.enabled {
        return Err(AdminError::new(401, "disabled", "API key has been disabled"));
    }
    let now = epoch_ms();
    let used = today(&k, &u, now);
    let percent = k.daily_limit.filter(|l| *l > 0).map_or(0, |l| (used * 100 + l / 2) / l);
    Ok(ok(json!({
        "name": k.name,
        "enabled": k.enabled,
        "usage": {
            "today": used,
            "limit": k.daily_limit,
            "remaining": k.daily_limit.map(|l| (l - used).max(0)),
            "percent": percent,
            "resetDate": date_of_day(day_of(&k, now)),
        },
        "total": u.total_usage,
        "totalLimit": k.total_limit,
        "bonusRemaining": (k.bonus - u.bonus_used).max(0),
        "tokens": {"input": u.input_tokens, "output": u.output_tokens},
        "lastUsedAt": Value::Null,
        "createdAt": iso_ms(k.created_at),
        "maskedKey": format!("{}...", k.prefix),
    })))
}
