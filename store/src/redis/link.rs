//! The link to Redis: reconnecting connections to one server, a Sentinel-managed master or a
//! Cluster, the connected/degraded state, the replica acknowledgement a durable write waits
//! for, and the counters behind the status snapshot. A monitor task pings Redis, reconnects
//! with backoff (asking the Sentinels again for the master after a failover) and wakes
//! everyone waiting for Redis to come back.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{Client, ErrorKind, RedisError, RedisFuture, ServerErrorKind, Value};
use tokio::sync::Notify;

use crate::error::StoreError;
use crate::settings::RedisSettings;
use crate::time::epoch_ms;
use crate::topology::Topology;

/// How often the monitor pings, and the reconnect backoff bounds.
const PING_EVERY: Duration = Duration::from_millis(500);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How often the automatic replica acknowledgement is re-read from the master.
const REPLICAS_EVERY: Duration = Duration::from_secs(5);

/// A connection to wherever the data lives: a (reconnecting) server or a cluster.
#[derive(Clone)]
pub enum Conn {
    Node(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Node(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Node(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Node(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

impl Conn {
    /// Runs a keyless command on the master of `slot` (in a cluster: the node holding all our
    /// keys, e.g. for `SCAN` or `INFO`); on one server it is an ordinary command.
    pub async fn query_on_slot<T: redis::FromRedisValue>(
        &mut self,
        cmd: &redis::Cmd,
        slot: Option<u16>,
    ) -> redis::RedisResult<T> {
        match (self, slot) {
            (Self::Cluster(c), Some(slot)) => {
                let route =
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(slot, SlotAddr::Master)));
                let v = c.route_command(cmd.clone(), route).await?;
                redis::from_redis_value(v).map_err(Into::into)
            }
            (c, _) => cmd.query_async(c).await,
        }
    }
}

/// How connections are made.
enum Target {
    Single(Client),
    Sentinel(tokio::sync::Mutex<SentinelClient>),
    Cluster(ClusterClient),
}

/// The live connections: one for the request path, one for writes that `WAIT` for replicas
/// (a `WAIT` blocks its connection, so it never shares one with the request path).
#[derive(Clone)]
struct Conns {
    shared: Conn,
    durable: Conn,
    /// Where to subscribe: the master's client (Single, Sentinel); cluster: see `pubsub_client`.
    pubsub: Option<Client>,
}

pub struct Link {
    pub settings: RedisSettings,
    target: Target,
    conns: RwLock<Option<Conns>>,
    /// The slot of our keys' hash tag, in a cluster.
    slot: RwLock<Option<u16>>,
    /// Replica acknowledgements a durable write waits for (resolved when `auto`).
    acks: AtomicU32,
    acks_checked: Mutex<Option<Instant>>,
    /// Round robin over the cluster's seed nodes for the subscription.
    next_seed: AtomicUsize,
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
        || is_demoted(e)
        || e.to_string().contains("OOM")
}

/// True when the server we talk to is no longer the master (after a failover it came back as a
/// replica): the master must be looked up again.
pub fn is_demoted(e: &RedisError) -> bool {
    matches!(e.kind(), ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown))
}

impl Link {
    pub fn new(settings: RedisSettings) -> Result<Arc<Self>, StoreError> {
        let invalid = |e: RedisError| {
            StoreError::Invalid(format!("Redis settings {}: {}", settings.redacted_url(), e.category()))
        };
        let target = match &settings.topology {
            Topology::Single => Target::Single(Client::open(settings.connection_url()).map_err(invalid)?),
            Topology::Sentinel { sentinels, master, .. } => {
                let urls: Vec<String> = sentinels.iter().map(|(h, p)| settings.sentinel_url(h, *p)).collect();
                let mut node = redis::RedisConnectionInfo::default().set_db(settings.db);
                if let Some(p) = &settings.password {
                    node = node.set_password(p);
                }
                if let Some(u) = &settings.username {
                    node = node.set_username(u);
                }
                let mut info = SentinelNodeConnectionInfo::default().set_redis_connection_info(node);
                if settings.tls {
                    info = info.set_tls_mode(redis::TlsMode::Secure);
                }
                let client = SentinelClient::build(urls, master.as_str(), Some(info), SentinelServerType::Master)
                    .map_err(invalid)?;
                Target::Sentinel(tokio::sync::Mutex::new(client))
            }
            Topology::Cluster { nodes } => {
                let urls: Vec<String> = nodes.iter().map(|(h, p)| settings.node_url(h, *p)).collect();
                let client = ClusterClient::builder(urls)
                    .connection_timeout(settings.connect_timeout)
                    .response_timeout(settings.command_timeout)
                    .retries(2)
                    .build()
                    .map_err(invalid)?;
                Target::Cluster(client)
            }
        };
        let acks = settings.min_replicas_ack.unwrap_or(0);
        Ok(Arc::new(Self {
            settings,
            target,
            conns: RwLock::new(None),
            slot: RwLock::new(None),
            acks: AtomicU32::new(acks),
            acks_checked: Mutex::new(None),
            next_seed: AtomicUsize::new(0),
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

    /// A client to subscribe with: the master's (pub/sub messages reach replicas too), or in a
    /// cluster one seed node after another (cluster pub/sub reaches every node).
    pub fn pubsub_client(&self) -> Option<Client> {
        if let Topology::Cluster { nodes } = &self.settings.topology {
            let i = self.next_seed.fetch_add(1, Ordering::Relaxed) % nodes.len().max(1);
            let (h, p) = nodes.get(i)?;
            return Client::open(self.settings.node_url(h, *p)).ok();
        }
        self.conns.read().as_ref().and_then(|c| c.pubsub.clone())
    }

    fn manager_config(&self) -> ConnectionManagerConfig {
        ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.settings.connect_timeout))
            .set_response_timeout(Some(self.settings.command_timeout))
            .set_number_of_retries(1)
            .set_min_delay(BACKOFF_MIN)
            .set_max_delay(BACKOFF_MAX)
    }

    /// Makes the two connections (asking the Sentinels for the master first).
    async fn open_conns(&self) -> Result<Conns, RedisError> {
        let client = match &self.target {
            Target::Single(c) => c.clone(),
            Target::Sentinel(s) => s.lock().await.async_get_client().await?,
            Target::Cluster(c) => {
                let shared = Conn::Cluster(c.get_async_connection().await?);
                let durable = Conn::Cluster(c.get_async_connection().await?);
                return Ok(Conns { shared, durable, pubsub: None });
            }
        };
        let cfg = self.manager_config();
        let shared = Conn::Node(ConnectionManager::new_with_config(client.clone(), cfg.clone()).await?);
        let durable = Conn::Node(ConnectionManager::new_with_config(client.clone(), cfg).await?);
        Ok(Conns { shared, durable, pubsub: Some(client) })
    }

    /// Tries to establish the connections once; true on success.
    pub async fn connect(&self) -> bool {
        let mut conns = match self.open_conns().await {
            Ok(c) => c,
            Err(e) => {
                self.record_error(&e);
                return false;
            }
        };
        if let Err(e) = self.check_role(&mut conns.shared).await {
            self.record_error(&e);
            return false;
        }
        if let Topology::Cluster { .. } = self.settings.topology {
            let tagged = format!("{}x", self.settings.key_prefix);
            match redis::cmd("CLUSTER").arg("KEYSLOT").arg(tagged).query_async::<u16>(&mut conns.shared).await {
                Ok(slot) => *self.slot.write() = Some(slot),
                Err(e) => {
                    self.record_error(&e);
                    return false;
                }
            }
        }
        *self.conns.write() = Some(conns);
        *self.acks_checked.lock() = None;
        self.refresh_acks().await;
        self.set_connected(true);
        true
    }

    /// Sentinel: the server must say it is the master (PING for the others).
    async fn check_role(&self, conn: &mut Conn) -> Result<(), RedisError> {
        if !matches!(self.settings.topology, Topology::Sentinel { .. }) {
            return redis::cmd("PING").query_async::<String>(conn).await.map(|_| ());
        }
        let role: Vec<Value> = redis::cmd("ROLE").query_async(conn).await?;
        match role.first() {
            Some(Value::BulkString(b)) if b.as_slice() == b"master" => Ok(()),
            _ => Err(RedisError::from((ErrorKind::Server(ServerErrorKind::ReadOnly), "not the master (yet)"))),
        }
    }

    /// The slot holding our keys in a cluster (`None` elsewhere).
    pub fn slot(&self) -> Option<u16> {
        *self.slot.read()
    }

    /// Replica acknowledgements durable writes wait for.
    pub fn acks(&self) -> u32 {
        self.acks.load(Ordering::Relaxed)
    }

    /// Resolves `auto`: 1 when the master of our keys has a replica, else 0.
    async fn refresh_acks(&self) {
        if self.settings.min_replicas_ack.is_some() {
            return;
        }
        {
            let mut last = self.acks_checked.lock();
            if last.is_some_and(|t| t.elapsed() < REPLICAS_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        let Some(mut c) = self.conns.read().as_ref().map(|c| c.shared.clone()) else { return };
        let info: Result<String, _> = c.query_on_slot(redis::cmd("INFO").arg("replication"), self.slot()).await;
        if let Ok(info) = info {
            let replicas = info
                .lines()
                .find_map(|l| l.trim().strip_prefix("connected_slaves:"))
                .and_then(|n| n.trim().parse::<u32>().ok())
                .unwrap_or(0);
            let acks = replicas.min(1);
            if self.acks.swap(acks, Ordering::Relaxed) != acks {
                tracing::info!(replicas, acks, "Redis replicas: durable writes wait for {acks} replica(s)");
            }
        }
    }

    /// A connection handle, or `Unavailable` while Redis is down.
    pub fn conn(&self) -> Result<Conn, StoreError> {
        if !self.is_connected() {
            return Err(self.unavailable());
        }
        self.conns.read().as_ref().map(|c| c.shared.clone()).ok_or_else(|| self.unavailable())
    }

    /// The connection for writes that wait for replicas.
    pub fn durable_conn(&self) -> Result<Conn, StoreError> {
        if !self.is_connected() {
            return Err(self.unavailable());
        }
        self.conns.read().as_ref().map(|c| c.durable.clone()).ok_or_else(|| self.unavailable())
    }

    /// Sends `cmd` followed, when replicas must acknowledge it, by `WAIT` in the same round
    /// trip; returns the command's reply and the replicas that acknowledged (`None`: no wait).
    async fn send_with_wait(&self, conn: &mut Conn, cmd: redis::Cmd) -> redis::RedisResult<(Value, Option<i64>)> {
        let need = self.acks();
        let mut pipe = redis::pipe();
        pipe.add_command(cmd);
        if need > 0 {
            pipe.cmd("WAIT").arg(need).arg(self.settings.wait_timeout.as_millis() as u64);
        }
        self.count_command();
        let mut replies = pipe.query_async::<Vec<Value>>(conn).await?.into_iter();
        let reply = replies.next().unwrap_or(Value::Nil);
        let acked = (need > 0).then(|| replies.next().and_then(|v| redis::from_redis_value(v).ok()).unwrap_or(0));
        Ok((reply, acked))
    }

    /// Sends `call` durably (see [`Self::send_with_wait`]) on the durable connection, loading the
    /// script once on `NOSCRIPT`. `Unavailable` when the replicas did not acknowledge in time
    /// (the write may be applied: callers re-send idempotent writes only).
    pub async fn eval_durable(&self, conn: &mut Conn, call: &super::scripts::Call<'_>) -> Result<Value, StoreError> {
        for attempt in 0..2 {
            match self.send_with_wait(conn, call.cmd()).await {
                Ok((reply, acked)) => {
                    if let Some(got) = acked {
                        self.check_acks(got)?;
                    }
                    return Ok(reply);
                }
                Err(e) if attempt == 0 && e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    call.load(conn).await.map_err(|e| self.fail(e))?;
                }
                Err(e) => return Err(self.fail(e)),
            }
        }
        Err(StoreError::Redis("the script could not be loaded".into()))
    }

    /// `SET key value NX PX ttl`, durably: true when we own the key. A claim the replicas did not
    /// confirm is released again with `release` (the owner-checked lock script: a failover could
    /// lose the key and let a second owner in) and reported `Unavailable`.
    pub async fn claim(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
        release: &redis::Script,
    ) -> Result<bool, StoreError> {
        let mut conn = self.durable_conn()?;
        let mut set = redis::cmd("SET");
        set.arg(key).arg(owner).arg("NX").arg("PX").arg(ttl.as_millis().max(1) as u64);
        let (reply, acked) = self.send_with_wait(&mut conn, set).await.map_err(|e| self.fail(e))?;
        let won = reply != Value::Nil;
        if let (true, Some(got)) = (won, acked) {
            if let Err(e) = self.check_acks(got) {
                let _: redis::RedisResult<i64> =
                    release.key(key).arg("release").arg(owner).arg(0).invoke_async(&mut conn).await;
                return Err(e);
            }
        }
        Ok(won)
    }

    /// Judges a `WAIT` reply.
    pub fn check_acks(&self, got: i64) -> Result<(), StoreError> {
        let need = self.acks();
        if got >= i64::from(need) {
            return Ok(());
        }
        self.failures.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock() = Some(format!("write reached {got} of {need} replica(s) in time"));
        Err(StoreError::Unavailable(format!(
            "write not yet acknowledged by {need} replica(s) ({got} in {:?}); kept for another try",
            self.settings.wait_timeout
        )))
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
            if is_demoted(&e) && !self.settings.topology.is_single() {
                // Our server was demoted: forget it, so the monitor asks for the new master.
                self.conns.write().take();
            }
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
            if self.conns.read().is_some() {
                if self.ping().await {
                    backoff = BACKOFF_MIN;
                    self.set_connected(true);
                    self.refresh_acks().await;
                    tokio::select! {
                        _ = tokio::time::sleep(PING_EVERY) => {}
                        _ = self.down.notified() => {}
                    }
                    continue;
                }
                self.set_connected(false);
                if matches!(self.settings.topology, Topology::Sentinel { .. }) {
                    // The master may have moved: ask the Sentinels again.
                    self.conns.write().take();
                }
            } else if self.connect().await {
                self.reconnects.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            tokio::time::sleep(backoff).await;
            // A failover is quick: keep asking the Sentinels or the cluster often.
            let max = if self.settings.topology.is_single() { BACKOFF_MAX } else { BACKOFF_MAX / 4 };
            backoff = (backoff * 2).min(max);
        }
    }

    async fn ping(&self) -> bool {
        let Some(Conns { shared: mut conn, mut durable, .. }) = self.conns.read().clone() else { return false };
        let start = Instant::now();
        // Both connections: a dropped durable one reconnects here, not on the next write
        // (which would fail and flip the whole link to degraded).
        let pinged = match self.check_role(&mut conn).await {
            Ok(()) => redis::cmd("PING").query_async::<String>(&mut durable).await.map(|_| ()),
            Err(e) => Err(e),
        };
        match pinged {
            Ok(()) => {
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
