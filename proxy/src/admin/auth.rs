//! Admin login (reference-proxy.md §6, reference-storage.md §5.9): the stored password in
//! either reference format, random session tokens kept in the store under their SHA-256 (so a
//! session opened on one replica works on all), and a brute-force guard per client address
//! counted in the store, so it holds across replicas too.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::connect_info::ConnectInfo;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use poolgate_store::time::epoch_ms;
use poolgate_store::{LoginFailure, LoginGate, Session};
use serde::Deserialize;
use serde_json::json;

use super::{parse_json, AdminError, AdminResult};
use crate::server::AppState;

/// Shortest admin password poolgate stores.
const MIN_PASSWORD_LEN: usize = 8;

/// What to do when no password is stored (never a built-in default).
const NO_PASSWORD: &str = "The admin API is off: no admin password is set. Set one with `poolgate admin-password` \
    (reads POOLGATE_ADMIN_PASSWORD or standard input), `poolgate init` (Redis), or the ClientConfig's \
    adminPasswordSecretRef (Kubernetes); then log in again.";

/// A request that presented a live admin session.
pub struct Admin {
    pub token: String,
}

/// The session token a request carries: `Authorization: Bearer …`, else `?token=` (EventSource
/// cannot set headers).
fn presented_token(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    if let Some(v) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        if let Some(t) = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")) {
            return Some(t.trim().to_string());
        }
    }
    query?.split('&').find_map(|kv| kv.strip_prefix("token=")).map(str::to_string)
}

/// The live session a request presents, if any (`Ok(None)`: none or not live).
async fn session_of(state: &AppState, headers: &HeaderMap, query: Option<&str>) -> AdminResult<Option<String>> {
    let Some(token) = presented_token(headers, query).filter(|t| !t.is_empty() && t.len() <= 256) else {
        return Ok(None);
    };
    Ok(state.store.get_session(&token).await?.map(|_| token))
}

/// True when the request presents a live admin session.
pub async fn has_session(state: &AppState, headers: &HeaderMap, query: Option<&str>) -> bool {
    matches!(session_of(state, headers, query).await, Ok(Some(_)))
}

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        match session_of(state, &parts.headers, parts.uri.query()).await? {
            Some(token) => Ok(Admin { token }),
            None => Err(AdminError::new(401, "UNAUTHORIZED", "Log in first: POST /api/login with the admin password")),
        }
    }
}

/// The connection's peer address, when the server recorded one.
pub struct Peer(pub Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Peer(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)))
    }
}

/// The client's address as the login guard counts it.
fn client_ip(state: &AppState, parts_headers: &HeaderMap, peer: Option<SocketAddr>) -> String {
    let settings = &state.config().admin;
    let xff = parts_headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    settings.client_ip(peer.map(|p| p.ip()), xff).map_or_else(|| "unknown".to_string(), |ip: IpAddr| ip.to_string())
}

#[derive(Deserialize)]
struct LoginBody {
    #[serde(default)]
    password: String,
}

fn too_many(status_message: String, retry_after_ms: i64, code: &'static str) -> Response {
    let secs = (retry_after_ms.max(0) as u64).div_ceil(1000).max(1);
    let mut resp = AdminError::new(429, code, status_message).into_response();
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        resp.headers_mut().insert("retry-after", v);
    }
    resp
}

/// `POST /api/login {password}` → `{success, message, token, expiresIn}`.
pub async fn login(
    State(state): State<Arc<AppState>>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Bytes,
) -> AdminResult {
    let stored = state.store.get_password().await?.filter(|p| !p.trim().is_empty());
    let Some(stored) = stored else { return Err(AdminError::new(503, "ADMIN_DISABLED", NO_PASSWORD)) };
    let ip = client_ip(&state, &headers, peer);
    let settings = state.config().admin.clone();
    match state.store.login_attempt(&ip, &settings.policy).await? {
        LoginGate::Open => {}
        LoginGate::LockedOut { retry_after_ms } => {
            let secs = retry_after_ms.div_euclid(1000).max(1);
            let message = format!("Too many failed attempts: locked; try again in {secs} seconds");
            return Ok(too_many(message, retry_after_ms, "LOCKED_OUT"));
        }
        LoginGate::TooSoon { retry_after_ms } => {
            return Ok(too_many("Too many requests, please slow down".into(), retry_after_ms, "TOO_FREQUENT"));
        }
    }
    let LoginBody { password } = parse_json(&body)?;
    if password.trim().is_empty() {
        return Err(AdminError::bad_request("Password cannot be empty"));
    }
    let ok = tokio::task::spawn_blocking(move || poolgate_store::password::verify(&password, &stored))
        .await
        .unwrap_or(false);
    if !ok {
        tracing::warn!(client = %ip, "admin login failed: wrong password");
        let message = match state.store.login_failed(&ip, &settings.policy).await? {
            LoginFailure::Remaining(n) => format!("Incorrect password. {n} attempts remaining."),
            LoginFailure::LockedOut { retry_after_ms } => {
                format!("Incorrect password. Locked for {} seconds.", retry_after_ms.div_euclid(1000))
            }
        };
        return Err(AdminError::new(401, "INVALID_PASSWORD", message));
    }
    state.store.login_succeeded(&ip).await?;
    let token = hex::encode(rand::random::<[u8; 32]>());
    let now = epoch_ms();
    let expiry = settings.login_expiry.as_secs();
    let session = Session { username: "admin".into(), login_time: now, expiry_time: now + expiry as i64 * 1000 };
    state.store.put_session(&token, &session).await?;
    tracing::info!(client = %ip, "admin login");
    Ok(Json(json!({
        "success": true,
        "message": "Login successful",
        "token": token,
        "expiresIn": format!("{expiry} seconds"),
        "expiresAt": session.expiry_time,
    }))
    .into_response())
}

/// `POST /api/logout`: ends the presented session on every replica.
pub async fn logout(State(state): State<Arc<AppState>>, admin: Admin) -> AdminResult {
    state.store.delete_session(&admin.token).await?;
    Ok(Json(json!({"success": true, "message": "Logged out"})).into_response())
}

/// `GET /api/health` (public): `{status:"ok"}`, and whether the presented token is live.
pub async fn health(State(state): State<Arc<AppState>>, parts: axum::http::request::Parts) -> Response {
    let mut parts = parts;
    let authenticated = Admin::from_request_parts(&mut parts, &state).await.is_ok();
    Json(json!({"status": "ok", "authenticated": authenticated})).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PasswordBody {
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    new_password: Option<String>,
    #[serde(default)]
    current_password: Option<String>,
}

/// `POST /api/admin-password {password | newPassword, currentPassword?}`: stores the hashed form.
pub async fn change_password(State(state): State<Arc<AppState>>, _admin: Admin, body: Bytes) -> AdminResult {
    let b: PasswordBody = parse_json(&body)?;
    let new = b.new_password.or(b.password).unwrap_or_default();
    if new.trim().chars().count() < MIN_PASSWORD_LEN {
        return Err(AdminError::bad_request(format!("The password must have at least {MIN_PASSWORD_LEN} characters")));
    }
    if let Some(current) = b.current_password {
        let stored = state.store.get_password().await?.unwrap_or_default();
        let ok = tokio::task::spawn_blocking(move || poolgate_store::password::verify(&current, &stored))
            .await
            .unwrap_or(false);
        if !ok {
            return Err(AdminError::new(401, "INVALID_PASSWORD", "The current password is not correct"));
        }
    }
    let hashed = tokio::task::spawn_blocking(move || poolgate_store::password::hash(&new))
        .await
        .map_err(|_| AdminError::new(500, "INTERNAL", "password hashing failed"))?;
    state.store.set_password(&hashed).await?;
    tracing::info!("admin password changed");
    Ok(Json(json!({"success": true, "message": "Password updated"})).into_response())
}
