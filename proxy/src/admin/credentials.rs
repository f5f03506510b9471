//! Credentials: a token for one account, batch imports of Kiro refresh tokens and of Gemini /
//! Codex credential JSON (each creates accounts, skipping credentials already in a pool), and
//! force-expire (the refresher renews the token at once, on whichever replica wins the lock).

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::Json;
use bytes::Bytes;
use poolgate_store::{Account, AccountOps};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{parse_json, Admin, AdminError, AdminResult};
use crate::server::AppState;

/// Most credentials one batch may carry.
const MAX_BATCH: usize = 1000;

/// The refresh token of a provider-native token, when it has one.
fn refresh_of<'a>(pool: &str, token: &'a Value) -> Option<&'a str> {
    token.get(poolgate_store::provider::refresh_field(pool)).and_then(Value::as_str).filter(|s| !s.trim().is_empty())
}

/// Refuses a token that cannot be used: not an object, or an OAuth type without its refresh
/// token (it could never be renewed).
fn check_token(pool: &str, token: &Value) -> AdminResult<()> {
    if !token.is_object() {
        return Err(AdminError::bad_request("the credentials must be a JSON object"));
    }
    let oauth = poolgate_store::provider::kind_of(pool).is_some_and(|k| k.refresh_field.is_some());
    if oauth && refresh_of(pool, token).is_none() {
        let field = poolgate_store::provider::refresh_field(pool);
        return Err(AdminError::bad_request(format!("the credentials have no {field:?}")));
    }
    Ok(())
}

/// `PUT /api/providers/{type}/{uuid}/credentials` with the provider-native token JSON.
pub async fn upload(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    Path((pool, uuid)): Path<(String, String)>,
    body: Bytes,
) -> AdminResult {
    let token: Value = parse_json(&body)?;
    check_token(&pool, &token)?;
    state.store.get_account(&pool, &uuid).await?;
    super::done(state.store.set_token(&pool, &uuid, &token).await?)?;
    let ops = AccountOps::default().set("needsRefresh", false).set("isHealthy", true).set("errorCount", 0);
    state.store.update_account(&pool, &uuid, ops).await?;
    tracing::info!(%pool, %uuid, "admin: credentials uploaded");
    Ok(Json(json!({"success": true, "message": "Credentials stored"})).into_response())
}

/// `POST /api/providers/{type}/{uuid}/force-expire`: the token is renewed at once.
pub async fn force_expire(
    State(state): State<Arc<AppState>>,
    _admin: Admin,
    Path((pool, uuid)): Path<(String, String)>,
) -> AdminResult {
    if state.store.get_token(&pool, &uuid).await?.is_none() {
        return Err(AdminError::not_found(format!("account {pool}/{uuid} has no stored token")));
    }
    super::done(state.store.mark_needs_refresh(&pool, &uuid).await?)?;
    Ok(Json(json!({"success": true, "message": "Token marked for refresh"})).into_response())
}

/// Refresh tokens already stored for `pool`'s accounts (the dedup set of a batch). Kiro pools
/// need no scan: the store's refresh index answers for them.
async fn known_refresh_tokens(state: &AppState, pool: &str) -> AdminResult<HashSet<String>> {
    let mut known = HashSet::new();
    if poolgate_store::provider::is_kiro(pool) {
        return Ok(known);
    }
    for a in state.store.get_pool(pool).await? {
        if let Some(t) = state.store.get_token(pool, a.uuid()).await? {
            if let Some(r) = refresh_of(pool, &t) {
                known.insert(r.to_string());
            }
        }
    }
    Ok(known)
}

/// How long an import holds the claim on a refresh token: imports of the same credential on
/// other replicas meanwhile count as duplicates.
const IMPORT_CLAIM: std::time::Duration = std::time::Duration::from_secs(60);

/// Adds one account holding `token`; `Ok(None)` when its refresh token is already in a pool
/// (the Kiro refresh index, this batch, or an import of it running on any replica).
async fn import_one(
    state: &AppState,
    pool: &str,
    token: &Value,
    name: String,
    known: &mut HashSet<String>,
) -> AdminResult<Option<String>> {
    check_token(pool, token)?;
    let refresh = refresh_of(pool, token).unwrap_or_default().to_string();
    if !refresh.is_empty() {
        if known.contains(&refresh) {
            return Ok(None);
        }
        let claim = {
            use sha2::{Digest, Sha256};
            format!("import:{pool}:{}", hex::encode(Sha256::digest(refresh.as_bytes())))
        };
        if !state.store.try_lease(&claim, &state.replica_id, IMPORT_CLAIM).await? {
            return Ok(None);
        }
        let indexed = poolgate_store::provider::is_kiro(pool)
            && state.store.find_kiro_account_by_refresh_token(&refresh).await?.is_some();
        if indexed {
            return Ok(None);
        }
    }
    let uuid = uuid::Uuid::new_v4().to_string();
    let mut map = Map::new();
    map.insert("uuid".into(), Value::String(uuid.clone()));
    map.insert("customName".into(), Value::String(name));
    state.store.add_account(pool, Account::from_map(map)?).await?;
    state.store.set_token(pool, &uuid, token).await?;
    if token.get("accessToken").or_else(|| token.get("access_token")).is_none() {
        state.store.mark_needs_refresh(pool, &uuid).await?;
    }
    known.insert(refresh);
    Ok(Some(uuid))
}

async fn import_all(state: &AppState, pool: &str, tokens: Vec<Value>, label: &str) -> AdminResult {
    if tokens.is_empty() || tokens.len() > MAX_BATCH {
        return Err(AdminError::bad_request(format!("give between 1 and {MAX_BATCH} credentials")));
    }
    let mut known = known_refresh_tokens(state, pool).await?;
    let (mut imported, mut duplicates, mut failed) = (Vec::new(), 0usize, Vec::new());
    for (i, token) in tokens.iter().enumerate() {
        match import_one(state, pool, token, format!("{label} {}", i + 1), &mut known).await {
            Ok(Some(uuid)) => imported.push(uuid),
            Ok(None) => duplicates += 1,
            Err(e) => failed.push(json!({"index": i, "error": e.message})),
        }
    }
    tracing::info!(%pool, imported = imported.len(), duplicates, failed = failed.len(), "admin: batch import");
    Ok(Json(json!({
        "success": failed.is_empty(),
        "providerType": pool,
        "imported": imported.len(),
        "duplicates": duplicates,
        "failed": failed.len(),
        "uuids": imported,
        "errors": failed,
    }))
    .into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KiroBatch {
    /// A list, or one string with a token per line.
    #[serde(default)]
    refresh_tokens: Option<Value>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    auth_method: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    provider_type: Option<String>,
}

/// `POST /api/kiro/batch-import-tokens {refreshTokens, region?, authMethod?, clientId?, clientSecret?}`.
pub async fn kiro_batch(State(state): State<Arc<AppState>>, _admin: Admin, body: Bytes) -> AdminResult {
    let b: KiroBatch = parse_json(&body)?;
    let list: Vec<String> = match b.refresh_tokens {
        Some(Value::String(s)) => s.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect(),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(|s| s.trim().to_string()).collect(),
        _ => return Err(AdminError::bad_request("field \"refreshTokens\" must be a list or one token per line")),
    };
    let method = b.auth_method.unwrap_or_else(|| "social".into());
    let idc = matches!(method.as_str(), "builder-id" | "IdC" | "idc");
    if idc && (b.client_id.is_none() || b.client_secret.is_none()) {
        return Err(AdminError::bad_request("builder-id tokens need \"clientId\" and \"clientSecret\""));
    }
    let region = b.region.unwrap_or_else(|| "us-east-1".into());
    let tokens = list
        .into_iter()
        .map(|rt| {
            let mut t = json!({"refreshToken": rt, "authMethod": method, "region": region});
            if let (Some(id), Some(secret)) = (&b.client_id, &b.client_secret) {
                t["clientId"] = json!(id);
                t["clientSecret"] = json!(secret);
            }
            t
        })
        .collect();
    let pool = b.provider_type.unwrap_or_else(|| "claude-kiro-oauth".into());
    if !poolgate_store::provider::is_kiro(&pool) {
        return Err(AdminError::bad_request(format!("{pool:?} is not a Kiro pool type")));
    }
    import_all(&state, &pool, tokens, "Kiro").await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonBatch {
    #[serde(default)]
    credentials: Vec<Value>,
    #[serde(default)]
    provider_type: Option<String>,
}

async fn json_batch(state: &AppState, body: &[u8], default_pool: &str, base: &str, label: &str) -> AdminResult {
    let b: JsonBatch = parse_json(body)?;
    let pool = b.provider_type.unwrap_or_else(|| default_pool.into());
    if poolgate_store::provider::kind_of(&pool).map(|k| k.base) != Some(base) {
        return Err(AdminError::bad_request(format!("{pool:?} is not a {base} pool type")));
    }
    import_all(state, &pool, b.credentials, label).await
}

/// `POST /api/gemini/batch-import-tokens {credentials: [oauth_creds.json…], providerType?}`.
pub async fn gemini_batch(State(state): State<Arc<AppState>>, _admin: Admin, body: Bytes) -> AdminResult {
    json_batch(&state, &body, "gemini-cli-oauth", "gemini-cli-oauth", "Gemini").await
}

/// `POST /api/codex/batch-import-tokens {credentials: [auth.json…], providerType?}`.
pub async fn codex_batch(State(state): State<Arc<AppState>>, _admin: Admin, body: Bytes) -> AdminResult {
    json_batch(&state, &body, "openai-codex-oauth", "openai-codex-oauth", "Codex").await
}
