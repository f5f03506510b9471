//! The Redis backend: keys as the reference (§4), every change one server-side script, a
//! per-process read cache kept fresh by pub/sub, and a write queue that rides out outages.

mod admin;
pub mod bulk;
mod cache;
mod client_keys;
mod coord;
mod events;
mod link;
mod scripts;
mod writer;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use link::Conn;
use serde_json::Value;
use tokio::task::JoinHandle;

pub use cache::Ttls;
use cache::{KvCache, PoolCache};
pub use link::is_connectivity;
use link::Link;
use scripts::Scripts;
use writer::{Outcome, Queue, Write};

use crate::account::{Account, AccountOps};
use crate::error::{Result, StoreError};
use crate::keys::Keys;
use crate::model::{AccountSpec, Applied, ApplyReport, CasOutcome, Session, StorageKind, StorageStatus};
use crate::settings::RedisSettings;
use crate::storage::{spec_ops, Storage};
use crate::{provider, time};

/// How long `flush` waits for the queue to drain on shutdown.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// State shared by the store, its writer and its invalidation listener.
pub(crate) struct Shared {
    link: Arc<Link>,
    keys: Keys,
    scripts: Scripts,
    pools: PoolCache,
    kv: KvCache,
    ttls: Ttls,
    writer_id: String,
    queue: Queue,
    subscribed: tokio::sync::Notify,
    is_subscribed: std::sync::atomic::AtomicBool,
    /// Token keys other processes changed, as `(pool, uuid)` (refresh waiters listen).
    token_changes: tokio::sync::broadcast::Sender<(String, String)>,
    /// Every change heard of on the invalidation channel, own writes included.
    changes: tokio::sync::broadcast::Sender<crate::admin::Change>,
    /// Client key settlements waiting for their group commit.
    settles: client_keys::SettleQueue,
}

/// Storage on Redis, shared by any number of processes.
pub struct RedisStore {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for RedisStore {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl RedisStore {
    /// Connects (or starts degraded if Redis is unreachable) and starts the background tasks.
    pub async fn open(settings: RedisSettings) -> Result<Self> {
        Self::open_with(settings, Ttls::default()).await
    }

    pub async fn open_with(settings: RedisSettings, ttls: Ttls) -> Result<Self> {
        let keys = Keys::new(settings.key_prefix.clone());
        let capacity = settings.queue_capacity;
        let link = Link::new(settings)?;
        let shared = Arc::new(Shared {
            link: link.clone(),
            keys,
            scripts: Scripts::default(),
            pools: PoolCache::default(),
            kv: KvCache::default(),
            ttls,
            writer_id: new_writer_id(),
            queue: Queue::new(capacity, 0),
            subscribed: tokio::sync::Notify::new(),
            is_subscribed: std::sync::atomic::AtomicBool::new(false),
            token_changes: tokio::sync::broadcast::channel(256).0,
            changes: tokio::sync::broadcast::channel(crate::admin::CHANGE_FEED_CAPACITY).0,
            settles: Default::default(),
        });
        if link.connect().await {
            tracing::info!(url = %link.settings.redacted_url(), prefix = %shared.keys.prefix(), "storage: Redis");
            warn_if_empty(&shared).await;
        } else {
            tracing::error!(
                url = %link.settings.redacted_url(),
                "storage: Redis configured but unreachable; starting DEGRADED (cache empty, writes queued) and retrying"
            );
        }
        let waiter = shared.clone();
        let subscribed = waiter.subscribed.notified();
        let tasks = vec![
            tokio::spawn(link.clone().monitor()),
            tokio::spawn(writer::run(shared.clone())),
            tokio::spawn(events::run(shared.clone())),
            tokio::spawn(client_keys::run_settlements(shared.clone())),
        ];
        if link.is_connected() {
            // Serve nothing from cache before we can hear about other processes' changes.
            if !waiter.is_subscribed.load(std::sync::atomic::Ordering::SeqCst) {
                let _ = tokio::time::timeout(link.settings.connect_timeout, subscribed).await;
            }
        }
        Ok(Self { shared, tasks })
    }

    /// Connects or fails (for CLI tools, which must not start degraded).
    pub async fn open_connected(settings: RedisSettings) -> Result<Self> {
        let store = Self::open(settings).await?;
        if !store.shared.link.is_connected() {
            return Err(store.shared.link.unavailable());
        }
        Ok(store)
    }

    /// True when anything poolgate writes exists under the prefix (EXISTS, never KEYS).
    pub async fn has_data(&self) -> Result<bool> {
        let k = &self.shared.keys;
        let n: i64 = self
            .query(redis::cmd("EXISTS").arg(k.config()).arg(k.pool_types()).arg(k.meta()).arg(k.password()))
            .await?;
        Ok(n > 0)
    }

    pub fn keys(&self) -> &Keys {
        &self.shared.keys
    }

    /// Waits until Redis is reachable (for tools and tests).
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        self.shared.link.wait_up(timeout).await
    }

    fn conn(&self) -> Result<Conn> {
        self.shared.link.conn()
    }

    async fn submit(&self, write: Write) -> Result<Applied<Outcome>> {
        let rx = self.shared.queue.push_then(write, |w| optimistic(&self.shared, w))?;
        rx.await.map_err(|_| StoreError::Unavailable("storage writer stopped".into()))?
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T> {
        let mut c = self.conn()?;
        self.shared.link.count_command();
        cmd.query_async(&mut c).await.map_err(|e| self.shared.link.fail(e))
    }

    /// A string key through the cache; stale values are served while Redis is down.
    async fn read_kv(&self, key: &str, ttl: Duration) -> Result<Option<String>> {
        if let Some(v) = self.shared.kv.get(key, Some(ttl)) {
            return Ok(v);
        }
        let mark = self.shared.kv.mark();
        match self.query::<Option<String>>(redis::cmd("GET").arg(key)).await {
            Ok(v) => {
                self.shared.kv.load(key, mark, v.clone());
                Ok(self.shared.kv.get(key, None).unwrap_or(v))
            }
            Err(e) if e.is_unavailable() => self.shared.kv.get(key, None).ok_or(e),
            Err(e) => Err(e),
        }
    }

    async fn read_json(&self, key: &str, ttl: Duration) -> Result<Option<Value>> {
        match self.read_kv(key, ttl).await? {
            Some(raw) => serde_json::from_str(&raw).map(Some).map_err(|e| StoreError::corrupt(key, &e)),
            None => Ok(None),
        }
    }

    async fn set_kv(&self, key: String, value: String) -> Result<Applied> {
        Ok(self.submit(Write::Set { key, value }).await?.map(|_| ()))
    }

    async fn fetch_pool(&self, pool: &str) -> Result<()> {
        let key = self.shared.keys.pool(pool);
        let mark = self.shared.pools.mark();
        let raw: Vec<(String, String)> = self.query(redis::cmd("HGETALL").arg(&key)).await?;
        let mut fetched = Vec::with_capacity(raw.len());
        for (uuid, json) in raw {
            let acc = Account::parse(&json, &format!("{key} field {uuid}"))?;
            fetched.push((uuid, Some(acc)));
        }
        let pending = self.shared.queue.pending_accounts(pool);
        self.shared.pools.load(pool, mark, fetched, true, &pending);
        Ok(())
    }

    /// Token write through the token script, retrying while a Kiro index guess is stale.
    async fn token_write(
        &self,
        pool: &str,
        uuid: &str,
        mode: &str,
        expected: &str,
        token: Option<&Value>,
    ) -> Result<Vec<String>> {
        let keys = &self.shared.keys;
        let kiro = provider::is_kiro(pool);
        let json = token.map(Value::to_string).unwrap_or_default();
        let new_rt = token.and_then(|t| provider::refresh_token_of(pool, t)).unwrap_or("").to_string();
        let mut guess =
            if mode == "cas" || !kiro { expected.to_string() } else { self.current_refresh(pool, uuid).await? };
        for _ in 0..8 {
            let mut c = self.shared.link.durable_conn()?;
            let mut call = scripts::Call::new(&self.shared.scripts.token);
            call.key(keys.token(pool, uuid))
                .key(keys.kiro_refresh_index(&provider::kiro_index_hash(&guess)))
                .key(keys.kiro_refresh_index(&provider::kiro_index_hash(&new_rt)))
                .arg(uuid)
                .arg(&json)
                .arg(mode)
                .arg(&guess)
                .arg(if kiro { "1" } else { "0" })
                .arg(&new_rt)
                .arg(keys.events_channel())
                .arg(&self.shared.writer_id);
            // Durable: a token the replicas did not confirm is reported `Unavailable` and
            // written again by the caller; the re-send finds its own value and succeeds.
            let reply = self.shared.link.eval_durable(&mut c, &call).await?;
            let mut reply: Vec<String> =
                redis::from_redis_value(reply).map_err(|e| StoreError::Redis(format!("token reply: {e}")))?;
            if mode == "cas" && reply.first().map(String::as_str) == Some("X") && reply.get(1) == Some(&json) {
                reply = vec!["O".into()];
            }
            match reply.first().map(String::as_str) {
                Some("R") => guess = reply.get(1).cloned().unwrap_or_default(),
                _ => {
                    let key = keys.token(pool, uuid);
                    if reply.first().map(String::as_str) == Some("O") {
                        self.shared.kv.write(&key, (mode != "del").then(|| json.clone()));
                    } else {
                        self.shared.kv.invalidate(&key);
                    }
                    return Ok(reply);
                }
            }
        }
        Err(StoreError::Redis(format!("token {pool}/{uuid} kept changing during the write; try again")))
    }

    async fn current_refresh(&self, pool: &str, uuid: &str) -> Result<String> {
        let raw: Option<String> = self.query(redis::cmd("GET").arg(self.shared.keys.token(pool, uuid))).await?;
        Ok(raw
            .and_then(|r| serde_json::from_str::<Value>(&r).ok())
            .and_then(|v| provider::refresh_token_of(pool, &v).map(str::to_string))
            .unwrap_or_default())
    }

    async fn lock_script(&self, pool: &str, uuid: &str, mode: &str, owner: &str, ttl: Duration) -> Result<bool> {
        let mut c = self.conn()?;
        self.shared.link.count_command();
        let n: i64 = self
            .shared
            .scripts
            .lock
            .key(self.shared.keys.token_lock(pool, uuid))
            .arg(mode)
            .arg(owner)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut c)
            .await
            .map_err(|e| self.shared.link.fail(e))?;
        Ok(n == 1)
    }
}

fn new_writer_id() -> String {
    use rand::Rng;
    let n: u128 = rand::thread_rng().gen();
    format!("{n:032x}")
}

/// Logs loudly when Redis holds nothing for this prefix (EXISTS, never KEYS).
async fn warn_if_empty(shared: &Shared) {
    let Ok(mut c) = shared.link.conn() else { return };
    let k = &shared.keys;
    let n: redis::RedisResult<i64> =
        redis::cmd("EXISTS").arg(k.config()).arg(k.pool_types()).arg(k.meta()).query_async(&mut c).await;
    if let Ok(0) = n {
        tracing::warn!(
            prefix = %k.prefix(),
            "Redis is connected but holds no poolgate data under this prefix: run `poolgate migrate --config-dir DIR` \
             to import existing files, or `poolgate init` to seed a fresh deployment"
        );
    }
}

/// Applies a queued write to the local cache at once (read-your-writes, also while degraded).
fn optimistic(shared: &Shared, w: &Write) {
    match w {
        Write::Ops { pool, uuid, ops } | Write::Spec { pool, uuid, ops, .. } => {
            shared.pools.update(pool, uuid, |acc| ops.apply(acc));
        }
        Write::Add { .. } => {}
        Write::Delete { pool, uuid } => {
            shared.pools.write(pool, uuid, None);
            shared.kv.write(&shared.keys.token(pool, uuid), None);
        }
        Write::Set { key, value } | Write::SetUntil { key, value, .. } => shared.kv.write(key, Some(value.clone())),
        Write::DelKey { key } => shared.kv.write(key, None),
        Write::HSet { key, .. } => shared.kv.invalidate(key),
    }
}

/// Stores what Redis answered for a write in the local cache.
pub(crate) fn apply_outcome(shared: &Shared, w: &Write, o: &Outcome) {
    match (w, o) {
        (Write::Ops { pool, uuid, .. } | Write::Spec { pool, uuid, .. }, Outcome::Account(a)) => {
            shared.pools.write(pool, uuid, Some(a.clone()))
        }
        (Write::Spec { pool, .. } | Write::Add { pool, .. }, Outcome::Created(a)) => {
            shared.pools.write(pool, a.uuid(), Some(a.clone()));
            shared.pools.add_type(pool);
        }
        (Write::Ops { pool, uuid, .. }, Outcome::NotFound) => shared.pools.write(pool, uuid, None),
        (Write::Add { pool, .. }, Outcome::Exists) => shared.pools.invalidate_pool(pool),
        _ => {}
    }
}

/// Re-reads the given accounts after another process changed them.
pub(crate) async fn refresh_accounts(shared: &Shared, pool: &str, uuids: &[&str]) -> Result<()> {
    let mut c = shared.link.conn()?;
    let key = shared.keys.pool(pool);
    let mark = shared.pools.mark();
    let raw: Vec<Option<String>> =
        redis::cmd("HMGET").arg(&key).arg(uuids).query_async(&mut c).await.map_err(|e| shared.link.fail(e))?;
    let mut fetched = Vec::with_capacity(uuids.len());
    for (uuid, json) in uuids.iter().zip(raw) {
        let acc = json.map(|j| Account::parse(&j, &format!("{key} field {uuid}"))).transpose()?;
        fetched.push((uuid.to_string(), acc));
    }
    let pending = shared.queue.pending_accounts(pool);
    shared.pools.load(pool, mark, fetched, false, &pending);
    Ok(())
}

fn account_result(pool: &str, uuid: &str, keys: &Keys, r: Applied<Outcome>) -> Result<Applied<Account>> {
    match r {
        Applied::Queued => Ok(Applied::Queued),
        Applied::Done(Outcome::Account(a) | Outcome::Created(a)) => Ok(Applied::Done(a)),
        Applied::Done(Outcome::NotFound) => Err(StoreError::not_found(format!("account {pool}/{uuid}"))),
        Applied::Done(Outcome::Corrupt(detail)) => {
            Err(StoreError::Corrupt { location: format!("{} field {uuid}", keys.pool(pool)), detail })
        }
        Applied::Done(Outcome::Exists) => Err(StoreError::AlreadyExists { what: format!("account {pool}/{uuid}") }),
        Applied::Done(Outcome::Ok) => Err(StoreError::Redis("unexpected reply for an account write".into())),
    }
}

fn session_key(keys: &Keys, token: &str) -> String {
    keys.session(&Session::token_hash(token))
}

#[async_trait]
impl Storage for RedisStore {
    fn kind(&self) -> StorageKind {
        StorageKind::Redis
    }

    async fn get_config(&self) -> Result<Option<Value>> {
        self.read_json(&self.shared.keys.config(), self.shared.ttls.config).await
    }

    async fn set_config(&self, config: &Value) -> Result<Applied> {
        if !config.is_object() {
            return Err(StoreError::Invalid("config must be a JSON object".into()));
        }
        self.set_kv(self.shared.keys.config(), config.to_string()).await
    }

    async fn get_password(&self) -> Result<Option<String>> {
        self.read_kv(&self.shared.keys.password(), self.shared.ttls.config).await
    }

    async fn set_password(&self, password: &str) -> Result<Applied> {
        self.set_kv(self.shared.keys.password(), password.trim().to_string()).await
    }

    async fn list_pool_types(&self) -> Result<Vec<String>> {
        if let Some(t) = self.shared.pools.types(Some(self.shared.ttls.pools)) {
            return Ok(t);
        }
        match self.query::<Vec<String>>(redis::cmd("SMEMBERS").arg(self.shared.keys.pool_types())).await {
            Ok(mut types) => {
                types.sort();
                self.shared.pools.set_types(types.clone());
                Ok(types)
            }
            Err(e) if e.is_unavailable() => self.shared.pools.types(None).ok_or(e),
            Err(e) => Err(e),
        }
    }

    async fn get_pool(&self, pool: &str) -> Result<Vec<Arc<Account>>> {
        if let Some(p) = self.shared.pools.pool(pool, Some(self.shared.ttls.pools)) {
            return Ok(p);
        }
        match self.fetch_pool(pool).await {
            Ok(()) => Ok(self.shared.pools.pool(pool, None).unwrap_or_default()),
            Err(e) if e.is_unavailable() => self.shared.pools.pool(pool, None).ok_or(e),
            Err(e) => Err(e),
        }
    }

    async fn get_account(&self, pool: &str, uuid: &str) -> Result<Account> {
        let not_found = || StoreError::not_found(format!("account {pool}/{uuid}"));
        if let Some(cached) = self.shared.pools.account(pool, uuid, Some(self.shared.ttls.pools)) {
            return cached.ok_or_else(not_found);
        }
        match refresh_accounts(&self.shared, pool, &[uuid]).await {
            Ok(()) => self.shared.pools.account(pool, uuid, None).flatten().ok_or_else(not_found),
            Err(e) if e.is_unavailable() => self.shared.pools.account(pool, uuid, None).ok_or(e)?.ok_or_else(not_found),
            Err(e) => Err(e),
        }
    }

    async fn add_account(&self, pool: &str, mut account: Account) -> Result<Applied<Account>> {
        account.fill_defaults(&time::iso_now());
        let uuid = account.uuid().to_string();
        let r = self.submit(Write::Add { pool: pool.into(), account }).await?;
        account_result(pool, &uuid, &self.shared.keys, r)
    }

    async fn replace_pool(&self, pool: &str, accounts: Vec<Account>) -> Result<()> {
        let mut c = self.conn()?;
        let keys = &self.shared.keys;
        let mut inv = self.shared.scripts.replace_pool.prepare_invoke();
        inv.key(keys.pool(pool)).key(keys.pool_types());
        inv.arg(pool).arg(keys.events_channel()).arg(&self.shared.writer_id);
        for a in &accounts {
            inv.arg(a.uuid()).arg(a.to_json());
        }
        self.shared.link.count_command();
        let _: i64 = inv.invoke_async(&mut c).await.map_err(|e| self.shared.link.fail(e))?;
        let mark = self.shared.pools.mark();
        let fetched = accounts.into_iter().map(|a| (a.uuid().to_string(), Some(a))).collect();
        self.shared.pools.load(pool, mark, fetched, true, &HashSet::new());
        self.shared.pools.invalidate_types();
        Ok(())
    }

    async fn update_account(&self, pool: &str, uuid: &str, ops: AccountOps) -> Result<Applied<Account>> {
        if !self.shared.link.is_connected() && self.shared.pools.account(pool, uuid, None) == Some(None) {
            return Err(StoreError::not_found(format!("account {pool}/{uuid}")));
        }
        let r = self.submit(Write::Ops { pool: pool.into(), uuid: uuid.into(), ops }).await?;
        account_result(pool, uuid, &self.shared.keys, r)
    }

    async fn delete_account(&self, pool: &str, uuid: &str) -> Result<Applied> {
        match self.submit(Write::Delete { pool: pool.into(), uuid: uuid.into() }).await? {
            Applied::Done(Outcome::NotFound) => Err(StoreError::not_found(format!("account {pool}/{uuid}"))),
            r => Ok(r.map(|_| ())),
        }
    }

    async fn apply_spec(&self, pool: &str, specs: &[AccountSpec], prune: bool) -> Result<ApplyReport> {
        let ops = spec_ops(specs)?;
        self.conn()?; // the operator needs a definite answer, not a queued one
        let now = time::iso_now();
        let mut waits = Vec::new();
        for (uuid, ops) in ops {
            let mut create = Account::new(uuid.clone());
            ops.apply(&mut create);
            create.fill_defaults(&now);
            let rx = self.shared.queue.push(Write::Spec { pool: pool.into(), uuid: uuid.clone(), ops, create })?;
            waits.push((uuid, rx));
        }
        let mut report = ApplyReport::default();
        let mut deletes = Vec::new();
        if prune {
            self.fetch_pool(pool).await?;
            let keep: HashSet<&str> = specs.iter().map(|s| s.uuid.as_str()).collect();
            for a in self.shared.pools.pool(pool, None).unwrap_or_default() {
                if !keep.contains(a.uuid()) {
                    report.removed.push(a.uuid().to_string());
                    deletes.push(self.submit(Write::Delete { pool: pool.into(), uuid: a.uuid().into() }));
                }
            }
        }
        for (uuid, rx) in waits {
            match rx.await.map_err(|_| StoreError::Unavailable("storage writer stopped".into()))?? {
                Applied::Done(Outcome::Created(_)) => report.created.push(uuid),
                Applied::Done(Outcome::Account(_)) => report.updated.push(uuid),
                Applied::Queued => return Err(self.shared.link.unavailable()),
                other => {
                    account_result(pool, &uuid, &self.shared.keys, other)?;
                }
            }
        }
        for r in futures::future::join_all(deletes).await {
            match r {
                Ok(Applied::Queued) => return Err(self.shared.link.unavailable()),
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }

    async fn delete_pool(&self, pool: &str) -> Result<Vec<String>> {
        self.conn()?;
        self.fetch_pool(pool).await?;
        let uuids: Vec<String> =
            self.shared.pools.pool(pool, None).unwrap_or_default().iter().map(|a| a.uuid().to_string()).collect();
        for uuid in &uuids {
            match self.delete_account(pool, uuid).await {
                Ok(Applied::Done(())) | Err(StoreError::NotFound { .. }) => {}
                Ok(Applied::Queued) => return Err(self.shared.link.unavailable()),
                Err(e) => return Err(e),
            }
        }
        let keys = &self.shared.keys;
        let mut c = self.conn()?;
        let dropped: i64 = self
            .shared
            .scripts
            .drop_pool
            .key(keys.pool(pool))
            .key(keys.pool_types())
            .arg(pool)
            .arg(keys.events_channel())
            .arg(&self.shared.writer_id)
            .invoke_async(&mut c)
            .await
            .map_err(|e| self.shared.link.fail(e))?;
        if dropped == 0 {
            return Err(StoreError::Redis(format!("pool {pool} gained accounts while it was being deleted")));
        }
        self.shared.pools.invalidate_pool(pool);
        self.shared.pools.invalidate_types();
        Ok(uuids)
    }

    async fn get_token(&self, pool: &str, uuid: &str) -> Result<Option<Value>> {
        self.read_json(&self.shared.keys.token(pool, uuid), self.shared.ttls.pools).await
    }

    async fn load_token(&self, pool: &str, uuid: &str) -> Result<Option<Value>> {
        let key = self.shared.keys.token(pool, uuid);
        let raw: Option<String> = self.query(redis::cmd("GET").arg(&key)).await?;
        self.shared.kv.write(&key, raw.clone());
        raw.map(|r| serde_json::from_str(&r).map_err(|e| StoreError::corrupt(&key, &e))).transpose()
    }

    fn watch_tokens(&self) -> Option<tokio::sync::broadcast::Receiver<(String, String)>> {
        Some(self.shared.token_changes.subscribe())
    }

    async fn set_token(&self, pool: &str, uuid: &str, token: &Value) -> Result<Applied> {
        self.token_write(pool, uuid, "set", "", Some(token)).await?;
        Ok(Applied::Done(()))
    }

    async fn cas_token(&self, pool: &str, uuid: &str, expected_refresh: &str, token: &Value) -> Result<CasOutcome> {
        let reply = self.token_write(pool, uuid, "cas", expected_refresh, Some(token)).await?;
        match reply.first().map(String::as_str) {
            Some("O") => Ok(CasOutcome::Updated),
            Some("N") => Err(StoreError::not_found(format!("token {pool}/{uuid}"))),
            Some("X") => {
                let key = self.shared.keys.token(pool, uuid);
                let raw = reply.get(1).map(String::as_str).unwrap_or("null");
                let current = serde_json::from_str(raw).map_err(|e| StoreError::corrupt(key, &e))?;
                Ok(CasOutcome::Conflict { current })
            }
            other => Err(StoreError::Redis(format!("unexpected token reply {other:?}"))),
        }
    }

    async fn delete_token(&self, pool: &str, uuid: &str) -> Result<Applied> {
        self.token_write(pool, uuid, "del", "", None).await?;
        Ok(Applied::Done(()))
    }

    async fn find_kiro_account_by_refresh_token(&self, refresh_token: &str) -> Result<Option<String>> {
        let key = self.shared.keys.kiro_refresh_index(&provider::kiro_index_hash(refresh_token));
        self.query(redis::cmd("GET").arg(key)).await
    }

    async fn acquire_refresh_lock(&self, pool: &str, uuid: &str, owner: &str, ttl: Duration) -> Result<bool> {
        // Durable: a lock a failover could lose would let a second replica refresh with the
        // same single-use refresh token.
        self.shared.link.claim(&self.shared.keys.token_lock(pool, uuid), owner, ttl, &self.shared.scripts.lock).await
    }

    async fn renew_refresh_lock(&self, pool: &str, uuid: &str, owner: &str, ttl: Duration) -> Result<bool> {
        self.lock_script(pool, uuid, "renew", owner, ttl).await
    }

    async fn release_refresh_lock(&self, pool: &str, uuid: &str, owner: &str) -> Result<bool> {
        self.lock_script(pool, uuid, "release", owner, Duration::ZERO).await
    }

    async fn login_attempt(&self, client: &str, policy: &crate::admin::LoginPolicy) -> Result<crate::admin::LoginGate> {
        admin::login_attempt(&self.shared, client, policy).await
    }

    async fn login_failed(
        &self,
        client: &str,
        policy: &crate::admin::LoginPolicy,
    ) -> Result<crate::admin::LoginFailure> {
        admin::login_failed(&self.shared, client, policy).await
    }

    async fn login_succeeded(&self, client: &str) -> Result<()> {
        admin::login_succeeded(&self.shared, client).await
    }

    async fn heartbeat(&self, beat: &crate::admin::ReplicaBeat, ttl: Duration) -> Result<()> {
        admin::heartbeat(&self.shared, beat, ttl).await
    }

    async fn list_replicas(&self) -> Result<Vec<crate::admin::ReplicaBeat>> {
        admin::list_replicas(&self.shared).await
    }

    fn watch_changes(&self) -> tokio::sync::broadcast::Receiver<crate::admin::Change> {
        self.shared.changes.subscribe()
    }

    async fn put_session(&self, token: &str, session: &Session) -> Result<Applied> {
        // Marked, so `export` can tell these hashed keys from the reference's raw-token keys (both
        // are 64 hex digits); readers ignore the extra field.
        let mut v = serde_json::to_value(session).map_err(|e| StoreError::Invalid(e.to_string()))?;
        v[crate::file::paths::SESSION_KEY_FORMAT_FIELD] = crate::file::paths::SESSION_KEY_FORMAT_SHA256.into();
        let value = v.to_string();
        let key = session_key(&self.shared.keys, token);
        Ok(self.submit(Write::SetUntil { key, value, expires_ms: session.expiry_time }).await?.map(|_| ()))
    }

    async fn get_session(&self, token: &str) -> Result<Option<Session>> {
        // Not cached: a logout on any replica ends the session everywhere at once, and tokens
        // presented by strangers do not pile up in memory.
        let key = session_key(&self.shared.keys, token);
        let raw: Option<String> = self.query(redis::cmd("GET").arg(&key)).await?;
        let Some(raw) = raw else { return Ok(None) };
        let s: Session = serde_json::from_str(&raw).map_err(|e| StoreError::corrupt("sessions:<hash>", &e))?;
        Ok((s.expiry_time > time::epoch_ms()).then_some(s))
    }

    async fn delete_session(&self, token: &str) -> Result<Applied> {
        let key = session_key(&self.shared.keys, token);
        Ok(self.submit(Write::DelKey { key }).await?.map(|_| ()))
    }

    async fn get_usage_cache(&self) -> Result<Option<Value>> {
        self.read_json(&self.shared.keys.usage_cache(), self.shared.ttls.usage).await
    }

    async fn set_usage_cache(&self, cache: &Value) -> Result<Applied> {
        self.set_kv(self.shared.keys.usage_cache(), cache.to_string()).await
    }

    async fn get_plugins(&self) -> Result<Option<Value>> {
        self.read_json(&self.shared.keys.plugins(), self.shared.ttls.plugins).await
    }

    async fn set_plugins(&self, plugins: &Value) -> Result<Applied> {
        self.set_kv(self.shared.keys.plugins(), plugins.to_string()).await
    }

    async fn get_system_prompt(&self) -> Result<Option<String>> {
        self.read_kv(&self.shared.keys.system_prompt(), self.shared.ttls.config).await
    }

    async fn set_system_prompt(&self, prompt: &str) -> Result<Applied> {
        self.set_kv(self.shared.keys.system_prompt(), prompt.to_string()).await
    }

    async fn get_custom_models(&self) -> Result<Option<Value>> {
        self.read_json(&self.shared.keys.custom_models(), self.shared.ttls.config).await
    }

    async fn set_custom_models(&self, models: &Value) -> Result<Applied> {
        if !models.is_array() {
            return Err(StoreError::Invalid("custom models must be a JSON array".into()));
        }
        self.set_kv(self.shared.keys.custom_models(), models.to_string()).await
    }

    async fn get_metadata(&self) -> Result<BTreeMap<String, String>> {
        self.query(redis::cmd("HGETALL").arg(self.shared.keys.meta())).await
    }

    async fn set_metadata(&self, fields: &BTreeMap<String, String>) -> Result<Applied> {
        let w = Write::HSet { key: self.shared.keys.meta(), fields: fields.clone() };
        Ok(self.submit(w).await?.map(|_| ()))
    }

    async fn acquire_slot(&self, pool: &str, uuid: &str, req: &crate::SlotRequest) -> Result<crate::SlotGrant> {
        coord::acquire_slot(&self.shared, pool, uuid, req).await
    }

    async fn release_slot(&self, pool: &str, uuid: &str, holder: &str) -> Result<()> {
        coord::release_slot(&self.shared, pool, uuid, holder).await
    }

    async fn slot_loads(&self, pool: &str, uuids: &[String]) -> Result<Vec<(u32, u32)>> {
        coord::slot_loads(&self.shared, pool, uuids).await
    }

    async fn try_lease(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool> {
        coord::try_lease(&self.shared, name, owner, ttl).await
    }

    async fn put_client_key(&self, hash: &str, key: &crate::ClientKey) -> Result<()> {
        client_keys::put(&self.shared, hash, key).await
    }

    async fn get_client_key(&self, hash: &str) -> Result<Option<(crate::ClientKey, crate::ClientKeyUsage)>> {
        client_keys::get(&self.shared, hash).await
    }

    async fn list_client_keys(&self) -> Result<Vec<(String, crate::ClientKey, crate::ClientKeyUsage)>> {
        client_keys::list(&self.shared).await
    }

    async fn delete_client_key(&self, hash: &str) -> Result<bool> {
        client_keys::delete(&self.shared, hash).await
    }

    async fn reset_client_key_usage(&self, hash: &str) -> Result<()> {
        client_keys::reset_usage(&self.shared, hash).await
    }

    async fn rekey_client_key(&self, old: &str, new: &str) -> Result<bool> {
        client_keys::rekey(&self.shared, old, new).await
    }

    async fn client_key_stats(&self, day: i64) -> Result<Vec<crate::client_key::ModelUsage>> {
        client_keys::stats(&self.shared, day).await
    }

    async fn admit_client_key(&self, hash: &str, model: &str, provider: &str) -> Result<crate::Admission> {
        client_keys::admit(&self.shared, hash, model, provider).await
    }

    async fn refund_client_key(&self, ticket: &crate::Ticket) -> Result<()> {
        client_keys::refund(&self.shared, ticket).await
    }

    async fn replay_client_key_usage(&self, hash: &str, day: i64, n: i64) -> Result<()> {
        client_keys::replay(&self.shared, hash, day, n).await
    }

    async fn settle_client_key(&self, ticket: &crate::Ticket, settlement: &crate::Settlement) -> Result<()> {
        client_keys::settle(&self.shared, ticket, settlement);
        Ok(())
    }

    fn status(&self) -> StorageStatus {
        let link = &self.shared.link;
        let q = &self.shared.queue;
        let connected = link.is_connected();
        StorageStatus {
            kind: StorageKind::Redis,
            connected,
            degraded: !connected,
            since_ms: link.since_ms(),
            url: Some(link.settings.redacted_url()),
            key_prefix: Some(self.shared.keys.prefix().to_string()),
            reconnect_count: link.reconnects.load(std::sync::atomic::Ordering::Relaxed),
            total_commands: link.commands.load(std::sync::atomic::Ordering::Relaxed),
            failed_commands: link.failures.load(std::sync::atomic::Ordering::Relaxed),
            queued_writes: q.len() + client_keys::settle_pending(&self.shared),
            queue_capacity: q.capacity(),
            queue_overflows: q.overflows() + client_keys::settle_overflows(&self.shared),
            last_error: link.last_error(),
            ping_latency_ms: link.ping_latency_ms(),
        }
    }

    async fn flush(&self) -> Result<()> {
        let deadline = tokio::time::Instant::now() + FLUSH_TIMEOUT;
        while client_keys::settle_pending(&self.shared) > 0 && tokio::time::Instant::now() < deadline {
            client_keys::wake_settlements(&self.shared);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if self.shared.queue.drain(FLUSH_TIMEOUT).await && client_keys::settle_pending(&self.shared) == 0 {
            return Ok(());
        }
        let n = self.shared.queue.len();
        tracing::error!(queued = n, "shutdown: Redis unreachable, queued writes are lost");
        Err(StoreError::Unavailable(format!("{n} queued writes could not be sent")))
    }
}
