//! The file backend: one process on the reference's files (the single-machine default).
//!
//! All state lives in memory behind one mutex, so updates are exact; files are rewritten
//! atomically (temp + rename). Structural changes (add, delete, replace, spec) and tokens are
//! written before the call returns; runtime counters are written by a background flusher
//! shortly after, and on [`Storage::flush`].

mod admin;
pub mod atomic;
mod client_keys;
pub mod paths;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use indexmap::IndexMap;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::account::{Account, AccountOps};
use crate::admin::Change;
use crate::error::{Result, StoreError};
use crate::model::{AccountSpec, Applied, ApplyReport, CasOutcome, Session, StorageKind, StorageStatus};
use crate::storage::{spec_ops, Storage};
use crate::{provider, time};

/// Delay before dirty files are written (coalesces bursts of counter updates).
const FLUSH_DELAY: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum File {
    Config,
    Pools,
    Password,
    Sessions,
    Usage,
    Plugins,
    SystemPrompt,
    CustomModels,
}

impl File {
    fn name(self) -> &'static str {
        match self {
            Self::Config => paths::CONFIG,
            Self::Pools => paths::POOLS,
            Self::Password => paths::PASSWORD,
            Self::Sessions => paths::SESSIONS,
            Self::Usage => paths::USAGE,
            Self::Plugins => paths::PLUGINS,
            Self::SystemPrompt => paths::SYSTEM_PROMPT,
            Self::CustomModels => paths::CUSTOM_MODELS,
        }
    }
}

#[derive(Default)]
struct State {
    config: Option<Value>,
    /// Shared with the snapshots `get_pool` hands out; a write copies only its account.
    pools: IndexMap<String, Vec<Arc<Account>>>,
    password: Option<String>,
    sessions: BTreeMap<String, Session>,
    usage: Option<Value>,
    plugins: Option<Value>,
    system_prompt: Option<String>,
    custom_models: Option<Value>,
    meta: BTreeMap<String, String>,
    locks: HashMap<String, (String, Instant)>,
    dirty: HashSet<File>,
}

struct Inner {
    dir: PathBuf,
    state: Mutex<State>,
    /// Serialises file writes within the process.
    io: tokio::sync::Mutex<()>,
    wake: Notify,
}

/// Storage on the reference's files in one directory.
pub struct FileStore {
    inner: Arc<Inner>,
    flusher: tokio::task::JoinHandle<()>,
    /// Concurrency slots and leases (in memory: one process).
    coord: crate::coord::LocalCoord,
    client_keys: Arc<client_keys::LocalClientKeys>,
    admin: admin::LocalAdmin,
}

impl Drop for FileStore {
    fn drop(&mut self) {
        self.flusher.abort();
    }
}

impl FileStore {
    /// Loads every file present in `dir`; a malformed file is an error naming it (nothing is
    /// overwritten).
    pub async fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        let pools = match atomic::read_json(&dir.join(paths::POOLS)).await? {
            Some(v) => parse_pools(&v, &dir.join(paths::POOLS))?,
            None => IndexMap::new(),
        };
        let sessions = match atomic::read_json(&dir.join(paths::SESSIONS)).await? {
            Some(v) => parse_sessions(&v, &dir.join(paths::SESSIONS))?,
            None => BTreeMap::new(),
        };
        let pools = pools.into_iter().map(|(t, accs)| (t, accs.into_iter().map(Arc::new).collect())).collect();
        let st = State {
            config: atomic::read_json(&dir.join(paths::CONFIG)).await?,
            pools,
            password: atomic::read(&dir.join(paths::PASSWORD)).await?.map(|s| s.trim().to_string()),
            sessions,
            usage: atomic::read_json(&dir.join(paths::USAGE)).await?,
            plugins: atomic::read_json(&dir.join(paths::PLUGINS)).await?,
            system_prompt: atomic::read(&dir.join(paths::SYSTEM_PROMPT)).await?,
            custom_models: atomic::read_json(&dir.join(paths::CUSTOM_MODELS)).await?,
            ..State::default()
        };
        let inner =
            Arc::new(Inner { dir, state: Mutex::new(st), io: tokio::sync::Mutex::new(()), wake: Notify::new() });
        let keys = Arc::new(client_keys::LocalClientKeys::open(&inner.dir).await?);
        let flusher = tokio::spawn(flush_loop(inner.clone(), keys.clone()));
        Ok(Self { inner, flusher, coord: Default::default(), client_keys: keys, admin: Default::default() })
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    fn mark(&self, file: File) {
        self.inner.state.lock().dirty.insert(file);
        self.inner.wake.notify_one();
    }

    /// Marks `file` dirty and writes it now (structural changes are durable before returning).
    async fn persist(&self, file: File) -> Result<()> {
        self.inner.state.lock().dirty.insert(file);
        write_dirty(&self.inner).await
    }

    fn token_path(&self, pool: &str, uuid: &str) -> PathBuf {
        let st = self.inner.state.lock();
        let field = provider::kind_of(pool).and_then(|k| k.token_path_field);
        let named = st
            .pools
            .get(pool)
            .and_then(|p| p.iter().find(|a| a.uuid() == uuid))
            .and_then(|a| field.and_then(|f| a.get(f)).and_then(Value::as_str).map(str::to_string));
        match named {
            Some(p) if !p.starts_with("redis:") => paths::resolve_token_path(&self.inner.dir, &p),
            _ => paths::default_token_path(&self.inner.dir, pool, uuid),
        }
    }

    fn with_account<T>(&self, pool: &str, uuid: &str, f: impl FnOnce(&mut Account) -> T) -> Result<T> {
        let mut st = self.inner.state.lock();
        let acc = st
            .pools
            .get_mut(pool)
            .and_then(|p| p.iter_mut().find(|a| a.uuid() == uuid))
            .ok_or_else(|| StoreError::not_found(format!("account {pool}/{uuid}")))?;
        Ok(f(Arc::make_mut(acc)))
    }
}

fn parse_pools(v: &Value, path: &Path) -> Result<IndexMap<String, Vec<Account>>> {
    let corrupt = |detail: String| StoreError::Corrupt { location: path.display().to_string(), detail };
    let obj = v.as_object().ok_or_else(|| corrupt("expected an object keyed by provider type".into()))?;
    let mut out = IndexMap::new();
    for (ty, list) in obj {
        let arr = list.as_array().ok_or_else(|| corrupt(format!("{ty}: expected an array of accounts")))?;
        let mut accounts = Vec::with_capacity(arr.len());
        for (i, item) in arr.iter().enumerate() {
            let map = item.as_object().cloned().ok_or_else(|| corrupt(format!("{ty}[{i}]: not an object")))?;
            accounts.push(Account::from_map(map).map_err(|e| corrupt(format!("{ty}[{i}]: {e}")))?);
        }
        out.insert(ty.clone(), accounts);
    }
    Ok(out)
}

/// Sessions by token hash. The reference's file is keyed by raw tokens (hashed here, so its
/// sessions stay valid); poolgate's carries the SHA-256 marker and is used as it is.
fn parse_sessions(v: &Value, path: &Path) -> Result<BTreeMap<String, Session>> {
    let tokens = v.get("tokens").cloned().unwrap_or_else(|| json!({}));
    let parsed: BTreeMap<String, Session> = serde_json::from_value(tokens)
        .map_err(|e| StoreError::Corrupt { location: path.display().to_string(), detail: format!("tokens: {e}") })?;
    let hashed =
        v.get(paths::SESSION_KEY_FORMAT_FIELD).and_then(Value::as_str) == Some(paths::SESSION_KEY_FORMAT_SHA256);
    Ok(if hashed { parsed } else { parsed.into_iter().map(|(k, s)| (Session::token_hash(&k), s)).collect() })
}

/// Serialises the dirty files under the state lock, then writes them outside it.
async fn write_dirty(inner: &Inner) -> Result<()> {
    let _io = inner.io.lock().await;
    let files: Vec<(File, Vec<u8>)> = {
        let mut st = inner.state.lock();
        let dirty: Vec<File> = st.dirty.drain().collect();
        dirty.into_iter().filter_map(|f| render(&st, f).map(|b| (f, b))).collect()
    };
    for (file, bytes) in files {
        if let Err(e) = atomic::write(&inner.dir.join(file.name()), &bytes).await {
            inner.state.lock().dirty.insert(file); // try again next time
            return Err(e);
        }
    }
    Ok(())
}

fn render(st: &State, f: File) -> Option<Vec<u8>> {
    let v = match f {
        File::Config => st.config.clone()?,
        File::Pools => Value::Object(
            st.pools
                .iter()
                .map(|(t, accs)| {
                    (t.clone(), Value::Array(accs.iter().map(|a| Value::Object(a.as_map().clone())).collect()))
                })
                .collect(),
        ),
        File::Password => return st.password.as_ref().map(|p| p.clone().into_bytes()),
        File::Sessions => {
            json!({ paths::SESSION_KEY_FORMAT_FIELD: paths::SESSION_KEY_FORMAT_SHA256, "tokens": st.sessions })
        }
        File::Usage => st.usage.clone()?,
        File::Plugins => st.plugins.clone()?,
        File::SystemPrompt => return st.system_prompt.as_ref().map(|p| p.clone().into_bytes()),
        File::CustomModels => st.custom_models.clone()?,
    };
    Some(atomic::pretty(&v))
}

async fn flush_loop(inner: Arc<Inner>, keys: Arc<client_keys::LocalClientKeys>) {
    // Client key counters change on every admitted request; they are written on a timer.
    let mut tick = tokio::time::interval(CLIENT_KEYS_FLUSH);
    loop {
        tokio::select! {
            _ = inner.wake.notified() => {
                tokio::time::sleep(FLUSH_DELAY).await;
                if let Err(e) = write_dirty(&inner).await {
                    tracing::error!(error = %e, "file storage: write failed; will retry");
                }
            }
            _ = tick.tick() => {
                if let Err(e) = keys.write().await {
                    tracing::error!(error = %e, "file storage: client keys write failed; will retry");
                }
            }
        }
    }
}

/// How often changed client key counters are written.
const CLIENT_KEYS_FLUSH: Duration = Duration::from_millis(500);

#[async_trait]
impl Storage for FileStore {
    fn kind(&self) -> StorageKind {
        StorageKind::File
    }

    async fn get_config(&self) -> Result<Option<Value>> {
        Ok(self.inner.state.lock().config.clone())
    }

    async fn set_config(&self, config: &Value) -> Result<Applied> {
        if !config.is_object() {
            return Err(StoreError::Invalid("config must be a JSON object".into()));
        }
        self.inner.state.lock().config = Some(config.clone());
        self.persist(File::Config).await?;
        self.admin.announce(Change::Config);
        Ok(Applied::Done(()))
    }

    async fn get_password(&self) -> Result<Option<String>> {
        Ok(self.inner.state.lock().password.clone())
    }

    async fn set_password(&self, password: &str) -> Result<Applied> {
        self.inner.state.lock().password = Some(password.trim().to_string());
        self.persist(File::Password).await?;
        self.admin.announce(Change::Password);
        Ok(Applied::Done(()))
    }

    async fn list_pool_types(&self) -> Result<Vec<String>> {
        let mut t: Vec<String> = self.inner.state.lock().pools.keys().cloned().collect();
        t.sort();
        Ok(t)
    }

    async fn get_pool(&self, pool: &str) -> Result<Vec<Arc<Account>>> {
        Ok(self.inner.state.lock().pools.get(pool).cloned().unwrap_or_default())
    }

    async fn get_account(&self, pool: &str, uuid: &str) -> Result<Account> {
        self.with_account(pool, uuid, |a| a.clone())
    }

    async fn add_account(&self, pool: &str, mut account: Account) -> Result<Applied<Account>> {
        account.fill_defaults(&time::iso_now());
        {
            let mut st = self.inner.state.lock();
            let list = st.pools.entry(pool.to_string()).or_default();
            if list.iter().any(|a| a.uuid() == account.uuid()) {
                return Err(StoreError::AlreadyExists { what: format!("account {pool}/{}", account.uuid()) });
            }
            list.push(Arc::new(account.clone()));
        }
        self.persist(File::Pools).await?;
        self.admin.announce(Change::Pool(pool.to_string()));
        Ok(Applied::Done(account))
    }

    async fn replace_pool(&self, pool: &str, accounts: Vec<Account>) -> Result<()> {
        self.inner.state.lock().pools.insert(pool.to_string(), accounts.into_iter().map(Arc::new).collect());
        self.persist(File::Pools).await?;
        self.admin.announce(Change::Pool(pool.to_string()));
        Ok(())
    }

    async fn update_account(&self, pool: &str, uuid: &str, ops: AccountOps) -> Result<Applied<Account>> {
        let acc = self.with_account(pool, uuid, |a| {
            ops.apply(a);
            a.clone()
        })?;
        self.mark(File::Pools);
        self.admin.announce(Change::Account { pool: pool.to_string(), uuid: uuid.to_string() });
        Ok(Applied::Done(acc))
    }

    async fn delete_account(&self, pool: &str, uuid: &str) -> Result<Applied> {
        let token = self.token_path(pool, uuid);
        {
            let mut st = self.inner.state.lock();
            let list = st.pools.get_mut(pool).ok_or_else(|| StoreError::not_found(format!("account {pool}/{uuid}")))?;
            let before = list.len();
            list.retain(|a| a.uuid() != uuid);
            if list.len() == before {
                return Err(StoreError::not_found(format!("account {pool}/{uuid}")));
            }
        }
        remove_file(&token).await?;
        self.persist(File::Pools).await?;
        self.admin.announce(Change::Pool(pool.to_string()));
        Ok(Applied::Done(()))
    }

    async fn apply_spec(&self, pool: &str, specs: &[AccountSpec], prune: bool) -> Result<ApplyReport> {
        let ops = spec_ops(specs)?;
        let now = time::iso_now();
        let mut report = ApplyReport::default();
        let pruned: Vec<String> = {
            let mut st = self.inner.state.lock();
            let list = st.pools.entry(pool.to_string()).or_default();
            for (uuid, ops) in ops {
                match list.iter_mut().find(|a| a.uuid() == uuid) {
                    Some(a) => {
                        ops.apply(Arc::make_mut(a));
                        report.updated.push(uuid);
                    }
                    None => {
                        let mut a = Account::new(uuid.clone());
                        ops.apply(&mut a);
                        a.fill_defaults(&now);
                        list.push(Arc::new(a));
                        report.created.push(uuid);
                    }
                }
            }
            let keep: HashSet<&str> = specs.iter().map(|s| s.uuid.as_str()).collect();
            if prune {
                list.iter().filter(|a| !keep.contains(a.uuid())).map(|a| a.uuid().to_string()).collect()
            } else {
                Vec::new()
            }
        };
        for uuid in pruned {
            self.delete_account(pool, &uuid).await?;
            report.removed.push(uuid);
        }
        self.persist(File::Pools).await?;
        self.admin.announce(Change::Pool(pool.to_string()));
        Ok(report)
    }

    async fn delete_pool(&self, pool: &str) -> Result<Vec<String>> {
        let uuids: Vec<String> = self.get_pool(pool).await?.iter().map(|a| a.uuid().to_string()).collect();
        for uuid in &uuids {
            self.delete_account(pool, uuid).await?;
        }
        self.inner.state.lock().pools.shift_remove(pool);
        self.persist(File::Pools).await?;
        self.admin.announce(Change::PoolTypes);
        Ok(uuids)
    }

    async fn get_token(&self, pool: &str, uuid: &str) -> Result<Option<Value>> {
        atomic::read_json(&self.token_path(pool, uuid)).await
    }

    async fn set_token(&self, pool: &str, uuid: &str, token: &Value) -> Result<Applied> {
        let _io = self.inner.io.lock().await;
        atomic::write_private(&self.token_path(pool, uuid), &atomic::pretty(token)).await?;
        self.admin.announce(Change::Token { pool: pool.to_string(), uuid: uuid.to_string() });
        Ok(Applied::Done(()))
    }

    async fn cas_token(&self, pool: &str, uuid: &str, expected_refresh: &str, token: &Value) -> Result<CasOutcome> {
        let _io = self.inner.io.lock().await;
        let path = self.token_path(pool, uuid);
        let current =
            atomic::read_json(&path).await?.ok_or_else(|| StoreError::not_found(format!("token {pool}/{uuid}")))?;
        if provider::refresh_token_of(pool, &current) != Some(expected_refresh) {
            return Ok(CasOutcome::Conflict { current });
        }
        atomic::write_private(&path, &atomic::pretty(token)).await?;
        self.admin.announce(Change::Token { pool: pool.to_string(), uuid: uuid.to_string() });
        Ok(CasOutcome::Updated)
    }

    async fn delete_token(&self, pool: &str, uuid: &str) -> Result<Applied> {
        let _io = self.inner.io.lock().await;
        remove_file(&self.token_path(pool, uuid)).await?;
        self.admin.announce(Change::Token { pool: pool.to_string(), uuid: uuid.to_string() });
        Ok(Applied::Done(()))
    }

    async fn find_kiro_account_by_refresh_token(&self, refresh_token: &str) -> Result<Option<String>> {
        let candidates: Vec<(String, String)> = {
            let st = self.inner.state.lock();
            st.pools
                .iter()
                .filter(|(t, _)| provider::is_kiro(t))
                .flat_map(|(t, accs)| accs.iter().map(move |a| (t.clone(), a.uuid().to_string())))
                .collect()
        };
        for (pool, uuid) in candidates {
            if let Some(tok) = self.get_token(&pool, &uuid).await? {
                if provider::refresh_token_of(&pool, &tok) == Some(refresh_token) {
                    return Ok(Some(uuid));
                }
            }
        }
        Ok(None)
    }

    async fn acquire_refresh_lock(&self, pool: &str, uuid: &str, owner: &str, ttl: Duration) -> Result<bool> {
        let mut st = self.inner.state.lock();
        let key = format!("{pool}:{uuid}");
        let now = Instant::now();
        match st.locks.get(&key) {
            Some((_, until)) if *until > now => Ok(false),
            _ => {
                st.locks.insert(key, (owner.to_string(), now + ttl));
                Ok(true)
            }
        }
    }

    async fn renew_refresh_lock(&self, pool: &str, uuid: &str, owner: &str, ttl: Duration) -> Result<bool> {
        let mut st = self.inner.state.lock();
        match st.locks.get_mut(&format!("{pool}:{uuid}")) {
            Some((o, until)) if o == owner && *until > Instant::now() => {
                *until = Instant::now() + ttl;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release_refresh_lock(&self, pool: &str, uuid: &str, owner: &str) -> Result<bool> {
        let mut st = self.inner.state.lock();
        let key = format!("{pool}:{uuid}");
        let held = st.locks.get(&key).is_some_and(|(o, until)| o == owner && *until > Instant::now());
        if held {
            st.locks.remove(&key);
        }
        Ok(held)
    }

    async fn put_session(&self, token: &str, session: &Session) -> Result<Applied> {
        {
            let mut st = self.inner.state.lock();
            let now = time::epoch_ms();
            st.sessions.retain(|_, s| s.expiry_time > now);
            st.sessions.insert(Session::token_hash(token), session.clone());
        }
        self.persist(File::Sessions).await?;
        Ok(Applied::Done(()))
    }

    async fn get_session(&self, token: &str) -> Result<Option<Session>> {
        let st = self.inner.state.lock();
        Ok(st.sessions.get(&Session::token_hash(token)).filter(|s| s.expiry_time > time::epoch_ms()).cloned())
    }

    async fn delete_session(&self, token: &str) -> Result<Applied> {
        self.inner.state.lock().sessions.remove(&Session::token_hash(token));
        self.persist(File::Sessions).await?;
        Ok(Applied::Done(()))
    }

    async fn get_usage_cache(&self) -> Result<Option<Value>> {
        Ok(self.inner.state.lock().usage.clone())
    }

    async fn set_usage_cache(&self, cache: &Value) -> Result<Applied> {
        self.inner.state.lock().usage = Some(cache.clone());
        self.mark(File::Usage);
        self.admin.announce(Change::UsageCache);
        Ok(Applied::Done(()))
    }

    async fn get_plugins(&self) -> Result<Option<Value>> {
        Ok(self.inner.state.lock().plugins.clone())
    }

    async fn set_plugins(&self, plugins: &Value) -> Result<Applied> {
        self.inner.state.lock().plugins = Some(plugins.clone());
        self.persist(File::Plugins).await?;
        self.admin.announce(Change::Plugins);
        Ok(Applied::Done(()))
    }

    async fn get_system_prompt(&self) -> Result<Option<String>> {
        Ok(self.inner.state.lock().system_prompt.clone())
    }

    async fn set_system_prompt(&self, prompt: &str) -> Result<Applied> {
        self.inner.state.lock().system_prompt = Some(prompt.to_string());
        self.persist(File::SystemPrompt).await?;
        self.admin.announce(Change::SystemPrompt);
        Ok(Applied::Done(()))
    }

    async fn get_custom_models(&self) -> Result<Option<Value>> {
        Ok(self.inner.state.lock().custom_models.clone())
    }

    async fn set_custom_models(&self, models: &Value) -> Result<Applied> {
        if !models.is_array() {
            return Err(StoreError::Invalid("custom models must be a JSON array".into()));
        }
        self.inner.state.lock().custom_models = Some(models.clone());
        self.persist(File::CustomModels).await?;
        self.admin.announce(Change::CustomModels);
        Ok(Applied::Done(()))
    }

    /// The reference keeps no metadata file; this backend reports its kind plus fields set
    /// during this process's life.
    async fn get_metadata(&self) -> Result<BTreeMap<String, String>> {
        let mut m = self.inner.state.lock().meta.clone();
        m.entry("version".into()).or_insert_with(|| "1.0".into());
        m.insert("storageType".into(), "file".into());
        Ok(m)
    }

    async fn set_metadata(&self, fields: &BTreeMap<String, String>) -> Result<Applied> {
        self.inner.state.lock().meta.extend(fields.clone());
        Ok(Applied::Done(()))
    }

    async fn login_attempt(&self, client: &str, policy: &crate::admin::LoginPolicy) -> Result<crate::admin::LoginGate> {
        Ok(self.admin.login_attempt(client, policy))
    }

    async fn login_failed(
        &self,
        client: &str,
        policy: &crate::admin::LoginPolicy,
    ) -> Result<crate::admin::LoginFailure> {
        Ok(self.admin.login_failed(client, policy))
    }

    async fn login_succeeded(&self, client: &str) -> Result<()> {
        self.admin.login_succeeded(client);
        Ok(())
    }

    async fn heartbeat(&self, beat: &crate::admin::ReplicaBeat, ttl: Duration) -> Result<()> {
        self.admin.heartbeat(beat, ttl);
        Ok(())
    }

    async fn list_replicas(&self) -> Result<Vec<crate::admin::ReplicaBeat>> {
        Ok(self.admin.list_replicas())
    }

    fn watch_changes(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.admin.watch()
    }

    async fn acquire_slot(&self, pool: &str, uuid: &str, req: &crate::SlotRequest) -> Result<crate::SlotGrant> {
        Ok(self.coord.acquire_slot(pool, uuid, req))
    }

    async fn release_slot(&self, pool: &str, uuid: &str, holder: &str) -> Result<()> {
        self.coord.release_slot(pool, uuid, holder);
        Ok(())
    }

    async fn slot_loads(&self, pool: &str, uuids: &[String]) -> Result<Vec<(u32, u32)>> {
        Ok(uuids.iter().map(|u| self.coord.slot_load(pool, u)).collect())
    }

    async fn try_lease(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool> {
        Ok(self.coord.try_lease(name, owner, ttl))
    }

    fn status(&self) -> StorageStatus {
        StorageStatus {
            kind: StorageKind::File,
            connected: true,
            degraded: false,
            since_ms: 0,
            url: None,
            key_prefix: None,
            reconnect_count: 0,
            total_commands: 0,
            failed_commands: 0,
            queued_writes: self.inner.state.lock().dirty.len(),
            queue_capacity: 0,
            queue_overflows: 0,
            last_error: None,
            ping_latency_ms: None,
        }
    }

    async fn flush(&self) -> Result<()> {
        self.client_keys.write().await?;
        write_dirty(&self.inner).await
    }

    async fn put_client_key(&self, hash: &str, key: &crate::ClientKey) -> Result<()> {
        self.client_keys.put(hash, key).await
    }

    async fn get_client_key(&self, hash: &str) -> Result<Option<(crate::ClientKey, crate::ClientKeyUsage)>> {
        Ok(self.client_keys.get(hash))
    }

    async fn list_client_keys(&self) -> Result<Vec<(String, crate::ClientKey, crate::ClientKeyUsage)>> {
        Ok(self.client_keys.list())
    }

    async fn delete_client_key(&self, hash: &str) -> Result<bool> {
        self.client_keys.delete(hash).await
    }

    async fn reset_client_key_usage(&self, hash: &str) -> Result<()> {
        self.client_keys.reset_usage(hash).await
    }

    async fn rekey_client_key(&self, old: &str, new: &str) -> Result<bool> {
        self.client_keys.rekey(old, new).await
    }

    async fn client_key_stats(&self, day: i64) -> Result<Vec<crate::client_key::ModelUsage>> {
        Ok(self.client_keys.stats(day))
    }

    async fn admit_client_key(&self, hash: &str, model: &str, provider: &str) -> Result<crate::Admission> {
        Ok(self.client_keys.admit(hash, model, provider))
    }

    async fn refund_client_key(&self, ticket: &crate::Ticket) -> Result<()> {
        self.client_keys.refund(ticket);
        Ok(())
    }

    async fn replay_client_key_usage(&self, hash: &str, day: i64, n: i64) -> Result<()> {
        self.client_keys.replay(hash, day, n);
        Ok(())
    }

    async fn settle_client_key(&self, ticket: &crate::Ticket, settlement: &crate::Settlement) -> Result<()> {
        self.client_keys.settle(ticket, settlement);
        Ok(())
    }
}

async fn remove_file(path: &Path) -> Result<()> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io(path, e)),
    }
}
