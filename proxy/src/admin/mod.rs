//! The admin API (`/api/*`, reference-proxy.md §6) and the dashboard that uses it.
//!
//! A thin layer over [`poolgate_store::Storage`]: every handler reads or changes the store and
//! nothing else, so whatever one replica does is seen by all (sessions, config, accounts, the
//! login guard). Layout: [`auth`] (login, sessions, password), [`config`], [`pools`] (accounts
//! and their runtime actions), [`credentials`] (tokens and batch imports), [`system`] (status,
//! replicas, plugins), [`events`] (the live SSE feed), [`ui`] (the embedded dashboard).

pub mod auth;
mod config;
mod credentials;
mod custom_models;
mod events;
mod pools;
mod potluck;
pub mod settings;
pub mod system;
mod ui;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use poolgate_store::StoreError;
use serde_json::json;

pub use auth::Admin;
pub use settings::AdminSettings;

use crate::server::AppState;

/// An admin API failure: status, a stable code, and a message that never holds a secret.
#[derive(Debug)]
pub struct AdminError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl AdminError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self { status, code, message: message.into() }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BAD_REQUEST", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "NOT_FOUND", message)
    }
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::NotFound { .. } => Self::not_found(e.to_string()),
            StoreError::AlreadyExists { .. } => Self::new(409, "CONFLICT", e.to_string()),
            StoreError::Invalid(m) => Self::bad_request(m.clone()),
            _ if e.is_unavailable() => Self::new(503, "STORAGE_UNAVAILABLE", "storage is unreachable; retry shortly"),
            _ => {
                tracing::warn!(error = %e, "admin: storage error");
                Self::new(500, "STORAGE_ERROR", "storage error (see the server log)")
            }
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let body = json!({"success": false, "error": {"message": self.message, "code": self.code}});
        (self.status, Json(body)).into_response()
    }
}

pub type AdminResult<T = Response> = Result<T, AdminError>;

/// The value of a write the store applied; a write queued while the store is unreachable is
/// reported as such (it is applied when the store returns).
pub fn done<T>(applied: poolgate_store::Applied<T>) -> AdminResult<T> {
    applied.done().ok_or_else(|| {
        AdminError::new(
            503,
            "STORAGE_QUEUED",
            "storage is unreachable: the change is queued and applied when it returns",
        )
    })
}

/// The JSON body of a request, or a 400 naming what is wrong with it.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> AdminResult<T> {
    serde_json::from_slice(body).map_err(|e| AdminError::bad_request(format!("invalid JSON body: {e}")))
}

/// Routes of the admin API and the dashboard.
pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/login", post(auth::login))
        .route("/api/logout", post(auth::logout))
        .route("/api/health", get(auth::health))
        .route("/api/admin-password", post(auth::change_password))
        .route("/api/config", get(config::get_config).post(config::post_config))
        .route("/api/reload-config", post(config::reload))
        .route("/api/system-prompt", get(config::get_system_prompt).post(config::set_system_prompt))
        .route("/api/custom-models", get(custom_models::list).post(custom_models::add))
        .route("/api/custom-models/{id}", put(custom_models::update).delete(custom_models::remove))
        .route("/api/providers", get(pools::list).post(pools::add))
        .route("/api/providers/supported", get(pools::supported))
        .route("/api/providers/{ptype}", get(pools::one_pool))
        .route("/api/providers/{ptype}/{uuid}", put(pools::update).delete(pools::remove))
        .route("/api/providers/{ptype}/{uuid}/disable", post(pools::disable))
        .route("/api/providers/{ptype}/{uuid}/enable", post(pools::enable))
        .route("/api/providers/{ptype}/{uuid}/reset-health", post(pools::reset_one))
        .route("/api/providers/{ptype}/{uuid}/health-check", post(pools::check_one))
        .route("/api/providers/{ptype}/{uuid}/detect-models", post(pools::detect_models))
        .route("/api/providers/{ptype}/{uuid}/credentials", put(credentials::upload))
        .route("/api/providers/{ptype}/{uuid}/force-expire", post(credentials::force_expire))
        .route("/api/providers/{ptype}/reset-health", post(pools::reset_pool))
        .route("/api/providers/{ptype}/health-check", post(pools::check_pool))
        .route("/api/providers/{ptype}/delete-unhealthy", delete(pools::delete_unhealthy))
        .route("/api/kiro/batch-import-tokens", post(credentials::kiro_batch))
        .route("/api/gemini/batch-import-tokens", post(credentials::gemini_batch))
        .route("/api/codex/batch-import-tokens", post(credentials::codex_batch))
        .route("/api/potluck/stats", get(potluck::stats))
        .route("/api/potluck/usage", get(potluck::usage))
        .route("/api/potluck/keys", get(potluck::list).post(potluck::create))
        .route("/api/potluck/keys/apply-limit", post(potluck::apply_limit))
        .route("/api/potluck/keys/{id}", get(potluck::get_one).put(potluck::update).delete(potluck::remove))
        .route("/api/potluck/keys/{id}/limit", put(potluck::set_limit))
        .route("/api/potluck/keys/{id}/reset", post(potluck::reset))
        .route("/api/potluck/keys/{id}/toggle", post(potluck::toggle))
        .route("/api/potluck/keys/{id}/name", put(potluck::rename))
        .route("/api/potluck/keys/{id}/regenerate", post(potluck::regenerate))
        .route("/api/potluckuser/usage", get(potluck::user_usage))
        .route("/api/plugins", get(system::plugins))
        .route("/api/plugins/{name}/toggle", post(system::toggle_plugin))
        .route("/api/system", get(system::system))
        .route("/api/replicas", get(system::replicas))
        .route("/api/access-info", get(system::access_info))
        .route("/api/events", get(events::stream))
        .layer(axum::middleware::map_response(json_rejections))
        .merge(ui::router())
}

/// axum's own refusals (a body over the limit, a malformed path) come as plain text; the admin
/// API answers every error in its JSON shape.
async fn json_rejections(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/event-stream"));
    if !status.is_client_error() || is_json {
        return resp;
    }
    let code = match status.as_u16() {
        413 => "PAYLOAD_TOO_LARGE",
        404 => "NOT_FOUND",
        405 => "METHOD_NOT_ALLOWED",
        _ => "BAD_REQUEST",
    };
    let reason = status.canonical_reason().unwrap_or("Bad request");
    AdminError { status, code, message: format!("{reason}: the request was refused before it was read") }
        .into_response()
}
