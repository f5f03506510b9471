//! The admin HTTP server: `/healthz` (the process is alive; never depends on the API server or
//! Redis), `/readyz` (controllers started, or standing by for the lease) and `/metrics`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::metrics::Metrics;

/// What the admin endpoints report.
#[derive(Default)]
pub struct AdminState {
    pub metrics: Arc<Metrics>,
    /// Set once the replica is either running its controllers or waiting for the lease.
    pub ready: AtomicBool,
    pub leader: AtomicBool,
}

/// The admin routes.
pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(State(s): State<Arc<AdminState>>) -> impl IntoResponse {
    let role = if s.leader.load(Ordering::Relaxed) { "leader" } else { "standby" };
    if s.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, format!("ready ({role})"))
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting".to_string())
    }
}

async fn metrics(State(s): State<Arc<AdminState>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], s.metrics.encode())
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    state: Arc<AdminState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "admin server listening (/healthz, /readyz, /metrics)");
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}
