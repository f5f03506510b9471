//! The link to Redis: a reconnecting connection, the connected/degraded state, and the counters
//! behind the status snapshot. A monitor task pings Redis, reconnects with backoff and wakes
//! everyone waiting for Redis to come back.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, ErrorKind, RedisError, ServerErrorKind};
use tokio::sync::Notify;

use crate::error::StoreError;
use crate::settings::RedisSettings;
use crate::time::epoch_ms;

/// How often the monitor pings, and the reconnect backoff bounds.
const PING_EVERY: Duration = Duration::from_millis(500);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

pub struct Link {
    pub settings: RedisSettings,
    client: Client,
    conn: RwLock<Option<ConnectionManager>>,
    connected: AtomicBool,
    since_ms: AtomicI64,
    pub reconnects: AtomicU64,
    pub commands: AtomicU64,
    pub failures: AtomicU64,
    last_error: Mutex<Option<String>>,
    ping_micros: AtomicU64,
    /// Notified whenever Redis becomes reachable again.
    pub up: Notify,
    /// Notified whenever an operation saw Redis go away.
    pub down: Notify,
}

/// True when the error means "Redis is not reachable now" (as opposed to a bad command).
pub fn is_connectivity(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
        || matches!(e.kind(), ErrorKind::Server(ServerErrorKind::BusyLoading))
        || e.to_string().contains("OOM")
}

impl Link {
    pub fn new(settings: RedisSettings) -> Result<Arc<Self>, StoreError> {
        let client = Client::open(settings.connection_url())
            .map_err(|e| StoreError::Invalid(format!("Redis URL {}: {}", settings.redacted_url(), e.category())))?;
        Ok(Arc::new(Self {
            settings,
            client,
            conn: RwLock::new(None),
            connected: AtomicBool::new(false),
            since_ms: AtomicI64::new(epoch_ms()),
            reconnects: AtomicU64::new(0),
            commands: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            last_error: Mutex::new(None),
            ping_micros: AtomicU64::new(0),
            up: Notify::new(),
            down: Notify::new(),
        }))
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    fn manager_config(&self) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.settings.connect_timeout))
            .set_response_timeout(Some(self.settings.command_timeout))
            .set_number_of_retries(1)
            .set_min_delay(BACKOFF_MIN)
            .set_max_delay(BACKOFF_MAX)
    }

    /// Tries to establish the connection once; true on success.
    pub async fn connect(&self) -> bool {
        let cfg = self.manager_config();
        match ConnectionManager::new_with_config(self.client.clone(), cfg).await {
            Ok(mut cm) => match redis::cmd("PING").query_async::<String>(&mut cm).await {
                Ok(_) => {
                    *self.conn.write() = Some(cm);
                    self.set_connected(true);
                    true
                }
                Err(e) => {
                    self.record_error(&e);
                    false
                }
            },
            Err(e) => {
                self.record_error(&e);
                false
            }
        }
    }

    /// A connection handle, or `Unavailable` while Redis is down.
    pub fn conn(&self) -> Result<ConnectionManager, StoreError> {
        if !self.is_connected() {
            return Err(self.unavailable());
        }
        self.conn.read().clone().ok_or_else(|| self.unavailable())
    }

    pub fn unavailable(&self) -> StoreError {
        let why = self.last_error.lock().clone().unwrap_or_else(|| "not connected".into());
        StoreError::Unavailable(format!("Redis at {} is unreachable ({why})", self.settings.redacted_url()))
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }

    pub fn since_ms(&self) -> i64 {
        self.since_ms.load(Ordering::SeqCst)
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().clone()
    }

    pub fn ping_latency_ms(&self) -> Option<f64> {
        self.is_connected().then(|| self.ping_micros.load(Ordering::Relaxed) as f64 / 1000.0)
    }

    fn set_connected(&self, up: bool) {
        if self.connected.swap(up, Ordering::SeqCst) != up {
            self.since_ms.store(epoch_ms(), Ordering::SeqCst);
            if up {
                tracing::info!(url = %self.settings.redacted_url(), "Redis reachable");
                self.up.notify_waiters();
            } else {
                tracing::warn!(url = %self.settings.redacted_url(), "Redis unreachable: degraded mode (reads from cache, writes queued)");
                self.down.notify_waiters();
            }
        }
    }

    fn record_error(&self, e: &RedisError) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        // Only the category and server message: never the URL (it may hold a password).
        *self.last_error.lock() = Some(format!("{}: {}", e.category(), e.detail().unwrap_or_default()));
    }

    /// Maps a Redis error to a store error, entering degraded mode on connectivity loss.
    pub fn fail(&self, e: RedisError) -> StoreError {
        self.record_error(&e);
        if is_connectivity(&e) {
            self.set_connected(false);
            self.unavailable()
        } else {
            StoreError::Redis(format!("{}: {}", e.category(), e.detail().unwrap_or_default()))
        }
    }

    pub fn count_command(&self) {
        self.commands.fetch_add(1, Ordering::Relaxed);
    }

    /// Pings while up; reconnects with backoff while down. Runs until the link is dropped.
    pub async fn monitor(self: Arc<Self>) {
        let mut backoff = BACKOFF_MIN;
        loop {
            if self.is_connected() || self.conn.read().is_some() {
                if self.ping().await {
                    backoff = BACKOFF_MIN;
                    self.set_connected(true);
                    tokio::select! {
                        _ = tokio::time::sleep(PING_EVERY) => {}
                        _ = self.down.notified() => {}
                    }
                    continue;
                }
                self.set_connected(false);
            } else if self.connect().await {
                self.reconnects.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    async fn ping(&self) -> bool {
        let Some(mut cm) = self.conn.read().clone() else { return false };
        let start = Instant::now();
        match redis::cmd("PING").query_async::<String>(&mut cm).await {
            Ok(_) => {
                self.ping_micros.store(start.elapsed().as_micros() as u64, Ordering::Relaxed);
                if !self.is_connected() {
                    self.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                true
            }
            Err(e) => {
                self.record_error(&e);
                false
            }
        }
    }

    /// Waits until Redis is reachable or `timeout` passes.
    pub async fn wait_up(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.up.notified();
            if self.is_connected() {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.is_connected();
            }
        }
    }
}
