//! Per-process read cache. Pools are cached per type, per account, with a write epoch so that a
//! refresh which started before a local write can never overwrite it (no resurrection, no
//! lost update in the cache). String keys (config, plugins, tokens, ...) share one map.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;

use crate::account::Account;

/// Cache lifetimes (reference-storage.md §5.3): a safety net behind pub/sub invalidation.
#[derive(Debug, Clone, Copy)]
pub struct Ttls {
    pub pools: Duration,
    pub config: Duration,
    pub usage: Duration,
    pub plugins: Duration,
}

impl Default for Ttls {
    fn default() -> Self {
        Self {
            pools: Duration::from_secs(5),
            config: Duration::from_secs(5),
            usage: Duration::from_secs(30),
            plugins: Duration::from_secs(60),
        }
    }
}

struct Slot {
    /// Shared with the pool snapshots readers hold; a write copies only this account.
    account: Option<Arc<Account>>,
    epoch: u64,
    at: Instant,
}

/// An instant old enough to be stale under any TTL.
fn long_ago() -> Instant {
    Instant::now().checked_sub(Duration::from_secs(24 * 3600)).unwrap_or_else(Instant::now)
}

struct Pool {
    /// By uuid, so that a pool is read out in uuid order with no sort.
    slots: BTreeMap<String, Slot>,
    fetched: Option<Instant>,
}

impl Pool {
    /// Marks everything stale (still served while Redis is down).
    fn stale(&mut self) {
        // Stale, not forgotten: while Redis is down the old data is still served.
        self.fetched = self.fetched.map(|_| long_ago());
        let old = long_ago();
        for s in self.slots.values_mut() {
            s.at = old;
        }
    }
}

/// Accounts by pool type.
#[derive(Default)]
pub struct PoolCache {
    epoch: AtomicU64,
    pools: RwLock<HashMap<String, Pool>>,
    types: RwLock<Option<(Vec<String>, Instant)>>,
}

impl PoolCache {
    /// A mark taken before fetching from Redis; see [`PoolCache::load`].
    pub fn mark(&self) -> u64 {
        self.epoch.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The cached pool if fetched within `ttl` (any age when `ttl` is `None`).
    pub fn pool(&self, pool: &str, ttl: Option<Duration>) -> Option<Vec<Arc<Account>>> {
        let pools = self.pools.read();
        let p = pools.get(pool)?;
        let fetched = p.fetched?;
        if ttl.is_some_and(|t| fetched.elapsed() > t) {
            return None;
        }
        Some(p.slots.values().filter_map(|s| s.account.clone()).collect())
    }

    /// One cached account: `Some(None)` means known to be absent.
    pub fn account(&self, pool: &str, uuid: &str, ttl: Option<Duration>) -> Option<Option<Account>> {
        let pools = self.pools.read();
        let p = pools.get(pool)?;
        let fresh = |at: Instant| ttl.is_none_or(|t| at.elapsed() <= t);
        if let Some(s) = p.slots.get(uuid) {
            return fresh(s.at).then(|| s.account.as_deref().cloned());
        }
        p.fetched.is_some_and(fresh).then_some(None)
    }

    /// Stores a local write (or its authoritative result); newer than any refresh in flight.
    pub fn write(&self, pool: &str, uuid: &str, account: Option<Account>) {
        let epoch = self.mark();
        let mut pools = self.pools.write();
        let p = pools.entry(pool.to_string()).or_insert_with(|| Pool { slots: BTreeMap::new(), fetched: None });
        p.slots.insert(uuid.to_string(), Slot { account: account.map(Arc::new), epoch, at: Instant::now() });
    }

    /// Changes a cached account in place (no copy), as a local write; false when not cached.
    pub fn update(&self, pool: &str, uuid: &str, f: impl FnOnce(&mut Account)) -> bool {
        let epoch = self.mark();
        let mut pools = self.pools.write();
        match pools.get_mut(pool).and_then(|p| p.slots.get_mut(uuid)) {
            Some(Slot { account: Some(acc), epoch: e, .. }) => {
                f(Arc::make_mut(acc));
                *e = epoch;
                true
            }
            _ => false,
        }
    }

    /// Merges accounts fetched from Redis after `mark` was taken. With `full`, the fetch is the
    /// whole pool and absent uuids are removed. Accounts written locally after `mark`, or with
    /// writes still pending (`skip`), keep their local state.
    pub fn load(
        &self,
        pool: &str,
        mark: u64,
        fetched: Vec<(String, Option<Account>)>,
        full: bool,
        skip: &HashSet<String>,
    ) {
        let mut pools = self.pools.write();
        let p = pools.entry(pool.to_string()).or_insert_with(|| Pool { slots: BTreeMap::new(), fetched: None });
        let keep = |s: &Slot, uuid: &str| s.epoch > mark || skip.contains(uuid);
        if full {
            let present: HashSet<&str> = fetched.iter().map(|(u, _)| u.as_str()).collect();
            p.slots.retain(|u, s| present.contains(u.as_str()) || keep(s, u));
            p.fetched = Some(Instant::now());
        }
        for (uuid, account) in fetched {
            if p.slots.get(&uuid).is_some_and(|s| keep(s, &uuid)) {
                continue;
            }
            p.slots.insert(uuid, Slot { account: account.map(Arc::new), epoch: mark, at: Instant::now() });
        }
    }

    /// Forgets a whole pool (it will be fetched again on next read).
    pub fn invalidate_pool(&self, pool: &str) {
        if let Some(p) = self.pools.write().get_mut(pool) {
            p.stale();
        }
    }

    pub fn invalidate_all(&self) {
        for p in self.pools.write().values_mut() {
            p.stale();
        }
        self.invalidate_types();
    }

    pub fn types(&self, ttl: Option<Duration>) -> Option<Vec<String>> {
        let t = self.types.read();
        let (types, at) = t.as_ref()?;
        (ttl.is_none_or(|ttl| at.elapsed() <= ttl)).then(|| types.clone())
    }

    pub fn set_types(&self, types: Vec<String>) {
        *self.types.write() = Some((types, Instant::now()));
    }

    pub fn add_type(&self, pool: &str) {
        if let Some((types, _)) = self.types.write().as_mut() {
            if !types.iter().any(|t| t == pool) {
                types.push(pool.to_string());
                types.sort();
            }
        }
    }

    pub fn invalidate_types(&self) {
        if let Some((_, at)) = self.types.write().as_mut() {
            *at = long_ago();
        }
    }
}

struct Entry {
    value: Option<String>,
    at: Instant,
    epoch: u64,
}

/// Raw string values by full key (config, pwd, plugins, usage cache, tokens, sessions).
#[derive(Default)]
pub struct KvCache {
    epoch: AtomicU64,
    map: RwLock<HashMap<String, Entry>>,
}

impl KvCache {
    pub fn mark(&self) -> u64 {
        self.epoch.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// `Some(value)` when cached within `ttl` (any age when `None`); the value may be absent.
    pub fn get(&self, key: &str, ttl: Option<Duration>) -> Option<Option<String>> {
        let map = self.map.read();
        let e = map.get(key)?;
        (ttl.is_none_or(|t| e.at.elapsed() <= t)).then(|| e.value.clone())
    }

    pub fn write(&self, key: &str, value: Option<String>) {
        let epoch = self.mark();
        self.map.write().insert(key.to_string(), Entry { value, at: Instant::now(), epoch });
    }

    /// Stores a value read from Redis unless a local write happened after `mark`.
    pub fn load(&self, key: &str, mark: u64, value: Option<String>) {
        let mut map = self.map.write();
        if map.get(key).is_some_and(|e| e.epoch > mark) {
            return;
        }
        map.insert(key.to_string(), Entry { value, at: Instant::now(), epoch: mark });
    }

    pub fn invalidate(&self, key: &str) {
        if let Some(e) = self.map.write().get_mut(key) {
            e.at = long_ago();
        }
    }

    pub fn invalidate_all(&self) {
        let stale = long_ago();
        for e in self.map.write().values_mut() {
            e.at = stale;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acc(uuid: &str, n: i64) -> Account {
        let mut m = serde_json::Map::new();
        m.insert("uuid".into(), uuid.into());
        m.insert("usageCount".into(), n.into());
        Account::from_map(m).expect("valid")
    }

    #[test]
    fn a_refresh_older_than_a_local_write_does_not_overwrite_it() {
        let c = PoolCache::default();
        let mark = c.mark();
        c.write("p", "a", None); // deleted locally after the fetch began
        c.load(
            "p",
            mark,
            vec![("a".into(), Some(acc("a", 1))), ("b".into(), Some(acc("b", 2)))],
            true,
            &HashSet::new(),
        );
        let pool = c.pool("p", None).expect("cached");
        assert_eq!(pool.iter().map(|a| a.uuid()).collect::<Vec<_>>(), vec!["b"]);
        let mark = c.mark();
        c.load("p", mark, vec![("b".into(), Some(acc("b", 3)))], true, &HashSet::new());
        assert_eq!(c.pool("p", None).expect("cached")[0].usage_count(), 3);
    }

    #[test]
    fn invalidated_pools_are_refetched_when_possible_but_still_served_when_not() {
        let c = PoolCache::default();
        let mark = c.mark();
        c.load("p", mark, vec![("a".into(), Some(acc("a", 1)))], true, &HashSet::new());
        c.set_types(vec!["p".into()]);
        c.invalidate_all();
        assert!(c.pool("p", Some(Duration::from_secs(5))).is_none(), "stale under a TTL: refetch");
        assert_eq!(c.pool("p", None).map(|p| p.len()), Some(1), "still served while Redis is down");
        assert!(c.account("p", "a", Some(Duration::from_secs(5))).is_none());
        assert!(c.account("p", "a", None).is_some());
        assert!(c.types(Some(Duration::from_secs(5))).is_none());
        assert_eq!(c.types(None), Some(vec!["p".to_string()]));
    }

    #[test]
    fn kv_load_respects_newer_local_writes_and_ttl() {
        let c = KvCache::default();
        let mark = c.mark();
        c.write("k", Some("new".into()));
        c.load("k", mark, Some("old".into()));
        assert_eq!(c.get("k", None), Some(Some("new".into())));
        c.invalidate("k");
        assert_eq!(c.get("k", Some(Duration::from_secs(5))), None);
        assert_eq!(c.get("k", None), Some(Some("new".into())), "stale data still served when degraded");
    }
}
