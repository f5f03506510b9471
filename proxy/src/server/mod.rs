//! The gateway server: configuration, storage, HTTP routes and graceful shutdown.
//!
//! Layout: [`config`] (settings and their sources), [`router`] (the route table), [`routes`]
//! and [`models`] (client API handlers), [`routing`] (provider choice and fallback plan),
//! [`dispatch`] (selection, upstream calls, failover), [`relay`] (answers and streams back to
//! the client, outcome accounting), [`status`] (health, status and metrics endpoints).

pub mod auth;
pub mod config;
pub mod custom_models;
pub mod dispatch;
pub mod errors;
mod images;
mod listen;
pub mod models;
mod ollama;
pub mod relay;
mod router;
pub mod routes;
pub mod routing;
mod status;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use poolgate_store::{RedisSettings, Storage};
use serde_json::Value;

use crate::metrics::Metrics;
use crate::pool::health::{self, Checker};
use crate::pool::outcome::Tasks;
use crate::pool::Selector;
use crate::providers::Registry;
use config::GatewayConfig;
pub use router::router;

/// How often the stored config is re-read besides the change feed (which tells of every
/// change at once; the poll only covers a lost notification).
const CONFIG_POLL: Duration = Duration::from_secs(5);
/// How often each replica writes its heartbeat; it is listed for three periods.
const HEARTBEAT: Duration = Duration::from_secs(5);

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
    /// Client API key (overrides REQUIRED_API_KEY).
    #[arg(long)]
    pub api_key: Option<String>,
    /// Default provider type(s) (overrides MODEL_PROVIDER).
    #[arg(long)]
    pub model_provider: Option<String>,
}

/// Shared by every request handler.
pub struct AppState {
    pub store: Arc<dyn Storage>,
    pub redis: RedisSettings,
    config: RwLock<Arc<GatewayConfig>>,
    pub http: reqwest::Client,
    /// Upstream clients per outbound proxy (`PROXY_URL`, per account or per provider type).
    pub outbound: crate::providers::outbound::Outbound,
    pub providers: Registry,
    pub selector: Arc<Selector>,
    pub metrics: Metrics,
    pub tasks: Tasks,
    pub replica_id: String,
    pub tokens: Arc<crate::oauth::TokenEngine>,
    pub client_keys: crate::client_keys::ClientKeys,
    /// Epoch ms this replica started.
    pub started_at: i64,
    /// Where the config came from, to rebuild it when the stored copy changes.
    origin: parking_lot::Mutex<Option<(Value, ServeArgs)>>,
    /// Asks the config watcher to re-read now (`POST /api/reload-config`).
    pub reload: tokio::sync::Notify,
    /// The system prompt injection every request gets (config + the stored prompt).
    injection: RwLock<Arc<crate::convert::system_prompt::Injection>>,
    /// The custom models clients may ask for.
    custom_models: RwLock<Arc<custom_models::CustomModels>>,
}

impl AppState {
    pub fn new(store: Arc<dyn Storage>, redis: RedisSettings, config: GatewayConfig) -> anyhow::Result<Self> {
        let http = crate::providers::outbound::builder().build()?;
        let replica_id = format!("{:016x}", rand::random::<u64>());
        Ok(Self {
            providers: Registry::default(),
            selector: Arc::new(Selector::default()),
            metrics: Metrics::default(),
            tasks: Tasks::default(),
            tokens: Arc::new(crate::oauth::TokenEngine::new(
                store.clone(),
                http.clone(),
                replica_id.clone(),
                crate::oauth::EngineOptions::from_lookup(|k| crate::providers::Settings::new(&config.raw).global(k)),
            )),
            client_keys: Default::default(),
            outbound: crate::providers::outbound::Outbound::new(http.clone()),
            started_at: poolgate_store::time::epoch_ms(),
            origin: parking_lot::Mutex::new(None),
            reload: tokio::sync::Notify::new(),
            injection: RwLock::new(Arc::default()),
            custom_models: RwLock::new(Arc::default()),
            store,
            redis,
            config: RwLock::new(Arc::new(config)),
            http,
            replica_id,
        })
    }

    /// What providers build requests with, for calls about `account` of `pool` (through the
    /// outbound proxy that applies to it, if any).
    pub fn provider_ctx(&self, pool: &str, account: &poolgate_store::Account) -> crate::providers::ProviderCtx {
        let config = self.config();
        crate::providers::ProviderCtx {
            http: self.outbound.client_for(&config.raw, pool, account),
            store: self.store.clone(),
            tokens: self.tokens.clone(),
            config,
        }
    }

    /// The live configuration.
    pub fn config(&self) -> Arc<GatewayConfig> {
        self.config.read().clone()
    }

    fn set_config(&self, c: GatewayConfig) {
        *self.config.write() = Arc::new(c);
    }

    /// The system prompt injection in force.
    pub fn injection(&self) -> Arc<crate::convert::system_prompt::Injection> {
        self.injection.read().clone()
    }

    /// Rebuilds the injection from the live config and the stored prompt (kept as it was when
    /// the store cannot be read).
    pub async fn refresh_injection(&self) {
        let prompt = match self.store.get_system_prompt().await {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(error = %e, "system prompt unavailable; keeping the last one");
                self.injection().prompt.clone()
            }
        };
        let next = crate::convert::system_prompt::Injection::settings(&self.config().raw, prompt);
        if *self.injection() != next {
            *self.injection.write() = Arc::new(next);
        }
    }

    /// The custom models in force.
    pub fn custom_models(&self) -> Arc<custom_models::CustomModels> {
        self.custom_models.read().clone()
    }

    /// Re-reads the custom models from the store (kept as they were when it cannot be read).
    pub async fn refresh_custom_models(&self) {
        match self.store.get_custom_models().await {
            Ok(v) => {
                let (next, skipped) = custom_models::CustomModels::parse(&v.unwrap_or(Value::Array(Vec::new())));
                for s in skipped {
                    tracing::warn!(entry = %s, "custom model skipped");
                }
                if *self.custom_models() != next {
                    *self.custom_models.write() = Arc::new(next);
                }
            }
            Err(e) => tracing::debug!(error = %e, "custom models unavailable; keeping the last ones"),
        }
    }

    /// The config.json read at start (the base the stored copy is laid over in Redis mode).
    pub fn file_config(&self) -> Option<Value> {
        self.origin.lock().as_ref().map(|(f, _)| f.clone())
    }

    /// Rebuilds the live config from the store (and config.json under it in Redis mode);
    /// true when something changed. HOST/SERVER_PORT apply at the next start.
    pub async fn apply_stored_config(&self) -> poolgate_store::Result<bool> {
        let Some((file_config, args)) = self.origin.lock().clone() else { return Ok(false) };
        let stored = self.store.get_config().await?;
        let raw = if self.redis.enabled { config::merge(file_config, stored) } else { stored.unwrap_or(file_config) };
        let mut next = effective(&args, raw);
        let cur = self.config();
        if next == *cur {
            return Ok(false);
        }
        if (next.host.as_str(), next.port) != (cur.host.as_str(), cur.port) {
            tracing::warn!("config: HOST/SERVER_PORT changes apply at the next restart");
            next.host.clone_from(&cur.host);
            next.port = cur.port;
        }
        tracing::info!("config: reloaded from the store");
        self.set_config(next);
        Ok(true)
    }
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
    let loaded = load(&args).await?;
    let state = Arc::new(AppState::new(loaded.store, loaded.redis, loaded.config)?);
    *state.origin.lock() = Some((loaded.file_config.clone(), args.clone()));
    state.refresh_injection().await;
    state.refresh_custom_models().await;
    let cfg = state.config();
    let addr: SocketAddr = format!("{}:{}", cfg.host, cfg.port).parse()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(
        addr = %listener.local_addr()?,
        storage = ?state.store.kind(),
        providers = ?cfg.model_providers,
        "poolgate listening"
    );
    let background = vec![
        tokio::spawn(watch_config(state.clone())),
        tokio::spawn(crate::admin::system::heartbeat(state.clone(), HEARTBEAT)),
        tokio::spawn(health_task(state.clone())),
        tokio::spawn(crate::oauth::refresher::run(state.clone())),
        tokio::spawn(crate::usage::run(state.clone())),
        tokio::spawn(replay_client_keys(state.clone())),
    ];

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let app = router(state.clone());
    let mut stopped = stop_rx.clone();
    let limits = listen::ListenLimits {
        header_read_timeout: cfg.header_read_timeout,
        max_header_bytes: cfg.max_header_bytes,
        max_connections: listen::fit_to_descriptors(cfg.max_connections),
        max_connections_per_ip: cfg.max_connections_per_ip,
    };
    let server = listen::serve(listener, app, limits, async move {
        let _ = stopped.wait_for(|s| *s).await;
    });
    let mut server = tokio::spawn(server);
    tokio::select! {
        r = &mut server => { r??; }
        _ = shutdown_signal() => {
            let grace = state.config().shutdown_grace;
            tracing::info!(grace_ms = grace.as_millis() as u64, "shutdown: no new connections; finishing in-flight requests");
            let _ = stop_tx.send(true);
            match tokio::time::timeout(grace, &mut server).await {
                Ok(r) => r??,
                Err(_) => {
                    tracing::warn!("shutdown: grace period over; cutting the remaining requests");
                    server.abort();
                }
            }
        }
    }
    for t in background {
        t.abort();
    }
    if !state.tasks.wait_idle(Duration::from_secs(5)).await {
        tracing::warn!(pending = state.tasks.pending(), "shutdown: some accounting writes did not start in time");
    }
    tracing::info!("shutting down: flushing storage");
    state.store.flush().await?;
    crate::telemetry::flush().await;
    Ok(())
}

/// What [`load`] read.
pub struct Loaded {
    pub store: Arc<dyn Storage>,
    pub redis: RedisSettings,
    pub config: GatewayConfig,
    pub file_config: Value,
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// config.json as it is on disk now, or `None` when there is none.
pub fn read_config_file(state: &AppState) -> anyhow::Result<Option<Value>> {
    let Some((_, args)) = state.origin.lock().clone() else { return Ok(None) };
    read_file_config(&args)
}

/// config.json, or `None` when there is none.
fn read_file_config(args: &ServeArgs) -> anyhow::Result<Option<Value>> {
    let path = args.config_dir.join("config.json");
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str::<Value>(&text)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("{}: line {} column {}: {e}", path.display(), e.line(), e.column())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::anyhow!("{}: {e}", path.display())),
    }
}

fn effective(args: &ServeArgs, raw: Value) -> GatewayConfig {
    let mut config = GatewayConfig::from_value(raw, |k| std::env::var(k).ok());
    if let Some(h) = &args.host {
        config.host.clone_from(h);
        config.host_set = true;
    }
    if let Some(p) = args.port {
        config.port = p;
    }
    if let Some(k) = &args.api_key {
        config.api_key.clone_from(k);
    }
    if let Some(m) = &args.model_provider {
        config.model_providers = m.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
    }
    if !config.host_set && config.api_key == config::DEFAULT_API_KEY {
        config.host = "127.0.0.1".into();
    }
    if let crate::prompt_log::PromptLog::File { dir, .. } = &mut config.prompt_log {
        dir.clone_from(&args.config_dir);
    }
    config
}

/// Reads config.json, opens the store, and lets the Redis copy of the config win.
pub async fn load(args: &ServeArgs) -> anyhow::Result<Loaded> {
    let found = read_file_config(args)?;
    let file_present = found.is_some();
    let file_config = found.unwrap_or_else(|| Value::Object(Default::default()));
    let redis = RedisSettings::from_env(Some(&file_config))?;
    let store = poolgate_store::open(&redis, &args.config_dir).await?;
    let stored = match store.get_config().await {
        Ok(c) => c,
        Err(e) if e.is_unavailable() => None,
        Err(e) => return Err(e.into()),
    };
    let path = args.config_dir.join("config.json");
    match (redis.enabled && stored.is_some(), file_present) {
        (true, true) => tracing::info!(file = %path.display(), "config: from Redis, laid over config.json"),
        (true, false) => tracing::info!("config: from Redis (no config.json)"),
        (false, true) => tracing::info!(file = %path.display(), "config: from config.json"),
        (false, false) => tracing::warn!(path = %path.display(), "no config file: running on built-in defaults"),
    }
    let raw = if redis.enabled { config::merge(file_config.clone(), stored) } else { file_config.clone() };
    let config = effective(args, raw);
    if config.api_key == config::DEFAULT_API_KEY {
        if config.host_set && !is_loopback(&config.host) {
            tracing::warn!(
                host = %config.host,
                "REQUIRED_API_KEY is the public default and HOST is not loopback: anyone who can reach this port \
                 can spend the configured accounts; set REQUIRED_API_KEY (config.json, environment or --api-key)"
            );
        } else if !config.host_set {
            tracing::warn!(
                "REQUIRED_API_KEY is the public default, so poolgate listens on 127.0.0.1 only; to serve the \
                 network set REQUIRED_API_KEY (config.json, environment or --api-key), which also makes it \
                 listen on 0.0.0.0 (or choose the address with HOST / --host)"
            );
        }
    }
    Ok(Loaded { store, redis, config, file_config })
}

/// Applies changes to the stored config without a restart (listen address aside): at once
/// when the change feed tells of one (from any replica), on `POST /api/reload-config`, and on
/// a slow poll as a safety net.
async fn watch_config(state: Arc<AppState>) {
    use poolgate_store::Change;
    let mut changes = state.store.watch_changes();
    loop {
        tokio::select! {
            c = changes.recv() => match c {
                Ok(Change::Config | Change::SystemPrompt | Change::CustomModels | Change::Resync)
                | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Ok(_) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => changes = state.store.watch_changes(),
            },
            _ = state.reload.notified() => {}
            _ = tokio::time::sleep(CONFIG_POLL) => {}
        }
        if let Err(e) = state.apply_stored_config().await {
            tracing::debug!(error = %e, "config: stored copy unavailable");
        }
        state.refresh_injection().await;
        state.refresh_custom_models().await;
    }
}

/// Replays client-key requests admitted while the store was unreachable.
async fn replay_client_keys(state: Arc<AppState>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if state.store.status().connected {
            state.client_keys.replay(&state.store).await;
        }
    }
}

/// The health checker over this state (background rounds and admin "check now").
pub fn checker(state: &Arc<AppState>) -> Checker {
    Checker {
        store: state.store.clone(),
        providers: state.providers.clone(),
        ctx: {
            let st = state.clone();
            Arc::new(move |pool: &str, account: &poolgate_store::Account| st.provider_ctx(pool, account))
        },
        replica_id: state.replica_id.clone(),
        selector: state.selector.clone(),
    }
}

async fn health_task(state: Arc<AppState>) {
    let checker = checker(&state);
    let st = state.clone();
    health::run(checker, move || {
        let c = st.config();
        (c.health_check_enabled, c.health_check_interval)
    })
    .await;
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
