//! The gateway server: configuration, storage, HTTP routes and graceful shutdown.

pub mod auth;
pub mod config;
mod status;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use poolgate_store::{RedisSettings, Storage};
use serde_json::Value;

use config::GatewayConfig;

/// `poolgate serve` flags (each also settable through the environment).
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Directory holding config.json and, without Redis, the reference's other files.
    #[arg(long, env = "POOLGATE_CONFIG_DIR", default_value = "configs")]
    pub config_dir: PathBuf,
    /// Listen address (overrides HOST).
    #[arg(long)]
    pub host: Option<String>,
    /// Listen port (overrides SERVER_PORT).
    #[arg(long)]
    pub port: Option<u16>,
}

/// Shared by every request handler.
pub struct AppState {
    pub store: Arc<dyn Storage>,
    pub config: GatewayConfig,
    pub redis: RedisSettings,
}

/// Runs until SIGTERM/SIGINT; returns the process exit code.
pub async fn run(args: ServeArgs) -> ExitCode {
    match serve(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("poolgate: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let state = Arc::new(load(&args).await?);
    let addr: SocketAddr = format!("{}:{}", state.config.host, state.config.port).parse()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, storage = ?state.store.kind(), "poolgate listening");
    axum::serve(listener, router(state.clone())).with_graceful_shutdown(shutdown_signal()).await?;
    tracing::info!("shutting down: flushing storage");
    state.store.flush().await?;
    Ok(())
}

/// Reads config.json, opens the store, and lets the Redis copy of the config win.
async fn load(args: &ServeArgs) -> anyhow::Result<AppState> {
    let path = args.config_dir.join("config.json");
    let file_config = match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str::<Value>(&text)
            .map_err(|e| anyhow::anyhow!("{}: line {} column {}: {e}", path.display(), e.line(), e.column()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::warn!(path = %path.display(), "no config file: running on built-in defaults");
            Value::Object(Default::default())
        }
        Err(e) => return Err(anyhow::anyhow!("{}: {e}", path.display())),
    };
    let redis = RedisSettings::from_env(Some(&file_config))?;
    let store = poolgate_store::open(&redis, &args.config_dir).await?;
    let stored = match store.get_config().await {
        Ok(c) => c,
        Err(e) if e.is_unavailable() => None,
        Err(e) => return Err(e.into()),
    };
    let raw = if redis.enabled { config::merge(file_config, stored) } else { file_config };
    let mut config = GatewayConfig::from_value(raw, |k| std::env::var(k).ok());
    if let Some(h) = &args.host {
        config.host.clone_from(h);
    }
    if let Some(p) = args.port {
        config.port = p;
    }
    if config.api_key == config::DEFAULT_API_KEY {
        tracing::warn!("REQUIRED_API_KEY is the public default: set one before exposing poolgate");
    }
    Ok(AppState { store, config, redis })
}

/// Routes served by this build.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(status::health))
        .route("/api/storage/status", get(status::storage_status))
        .route("/api/redis/status", get(status::redis_status))
        .with_state(state)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
