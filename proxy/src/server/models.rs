//! `GET /v1/models` (OpenAI shape) and `GET /v1beta/models` (Gemini shape).
//!
//! Models of a pool: the union of its accounts' `supportedModels`; for a pool whose accounts
//! list none, the upstream's own `/models` list read through one usable account. Which pools:
//! the one a `Model-Provider` header or path prefix names, else every `MODEL_PROVIDER` type
//! and its fallback chain. `modelFallbackMapping` names are listed too.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::errors::ApiError;
use super::routes::check_auth;
use super::AppState;
use crate::convert::Protocol;
use crate::pool::select::usable;

const UPSTREAM_LIST_TIMEOUT: Duration = Duration::from_secs(10);

async fn model_ids(state: &Arc<AppState>, pools: Vec<String>) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let now = poolgate_store::time::epoch_ms();
    for pool in pools {
        let Some(provider) = state.providers.get(&pool).cloned() else { continue };
        let accounts = state.store.get_pool(&pool).await.unwrap_or_default();
        let mut listed = false;
        for a in &accounts {
            if let Some(Value::Array(list)) = a.get("supportedModels") {
                for m in list.iter().filter_map(Value::as_str) {
                    ids.insert(m.to_string());
                    listed = true;
                }
            }
        }
        if listed {
            continue;
        }
        let fixed = provider.static_models();
        if !fixed.is_empty() {
            ids.extend(fixed.iter().map(|m| m.to_string()));
            continue;
        }
        let Some(account) = accounts.iter().find(|a| usable(a, now)) else { continue };
        let ctx = state.provider_ctx(&pool, account);
        let Some(request) = provider.list_models(&ctx, account) else { continue };
        match tokio::time::timeout(UPSTREAM_LIST_TIMEOUT, request.send()).await {
            Ok(Ok(resp)) if resp.status().is_success() => {
                if let Ok(v) = resp.json::<Value>().await {
                    for m in v.get("data").and_then(Value::as_array).into_iter().flatten() {
                        if let Some(id) = m.get("id").and_then(Value::as_str) {
                            ids.insert(id.to_string());
                        }
                    }
                }
            }
            other => tracing::warn!(%pool, ok = other.is_ok(), "could not list upstream models"),
        }
    }
    ids
}

/// In `auto` mode: `type:model` for the models of every pool.
async fn auto_ids(state: &Arc<AppState>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for t in state.store.list_pool_types().await.unwrap_or_default() {
        if state.providers.get(&t).is_none() {
            continue;
        }
        for m in model_ids(state, vec![t.clone()]).await {
            out.insert(format!("{t}:{m}"));
        }
    }
    out
}

fn pools_for(state: &AppState, req: &Request, path_provider: Option<String>) -> Vec<String> {
    let cfg = state.config();
    let named = path_provider
        .or_else(|| req.headers().get("model-provider").and_then(|v| v.to_str().ok()).map(|s| s.trim().to_string()));
    let roots = match named {
        Some(p) => vec![p],
        None => cfg.model_providers.clone(),
    };
    let mut out: Vec<String> = Vec::new();
    for r in roots {
        for p in std::iter::once(&r).chain(cfg.fallback_chain.get(&r).into_iter().flatten()) {
            if !out.contains(p) {
                out.push(p.clone());
            }
        }
    }
    out
}

async fn list(state: Arc<AppState>, req: Request, path_provider: Option<String>, protocol: Protocol) -> Response {
    if let Err(e) = check_auth(&state, req.headers(), req.uri().query()).await {
        return e.into_response_for(protocol);
    }
    if let Some(p) = &path_provider {
        if state.providers.get(p).is_none() {
            return ApiError::bad_request(format!("Provider {p} is not available in this gateway"))
                .into_response_for(protocol);
        }
    }
    let pools = pools_for(&state, &req, path_provider);
    let mut ids = if pools.iter().any(|p| p == super::routing::AUTO) {
        auto_ids(&state).await
    } else {
        model_ids(&state, pools).await
    };
    ids.extend(state.config().model_fallback.keys().cloned());
    ids.extend(state.custom_models().names().map(String::from));
    state.metrics.request("models", "none", 200);
    match protocol {
        Protocol::Gemini => {
            let models: Vec<Value> = ids
                .iter()
                .map(|id| {
                    json!({"name": format!("models/{id}"), "baseModelId": id, "version": "001", "displayName": id,
                           "description": id, "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"]})
                })
                .collect();
            Json(json!({"models": models})).into_response()
        }
        _ => {
            let data: Vec<Value> = ids
                .iter()
                .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "poolgate"}))
                .collect();
            Json(json!({"object": "list", "data": data})).into_response()
        }
    }
}

/// A Gemini client (google-genai sends `x-goog-api-key` or `?key=`) listing `/v1/models` gets
/// the Gemini shape; anyone else the OpenAI one.
fn protocol_of_lister(req: &Request) -> Protocol {
    let gemini_key = req.headers().contains_key("x-goog-api-key")
        || req.uri().query().is_some_and(|q| q.split('&').any(|kv| kv.starts_with("key=")));
    let bearer = req.headers().contains_key("authorization") || req.headers().contains_key("x-api-key");
    if gemini_key && !bearer {
        Protocol::Gemini
    } else {
        Protocol::OpenAiChat
    }
}

pub async fn gemini(State(s): State<Arc<AppState>>, req: Request) -> Response {
    list(s, req, None, Protocol::Gemini).await
}

/// `GET /v1/models` (and `/{provider}/v1/models`): OpenAI's list, or Gemini's for Gemini clients.
pub async fn v1_list(State(s): State<Arc<AppState>>, req: Request) -> Response {
    let protocol = protocol_of_lister(&req);
    list(s, req, None, protocol).await
}
pub async fn v1_list_p(State(s): State<Arc<AppState>>, Path(p): Path<String>, req: Request) -> Response {
    let protocol = protocol_of_lister(&req);
    list(s, req, Some(p), protocol).await
}
pub async fn gemini_p(State(s): State<Arc<AppState>>, Path(p): Path<String>, req: Request) -> Response {
    list(s, req, Some(p), Protocol::Gemini).await
}
