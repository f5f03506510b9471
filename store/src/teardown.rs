//! Removing one gateway instance's data (poolgate addition, used by the operator's
//! `deletionPolicy: Delete`): every pool with its tokens and indexes, then the instance's own keys
//! (config, password, metadata, plugins, usage cache, pool index) and the key families poolgate
//! writes under it (orphan tokens, sessions, refresh locks, Kiro indexes, writer sequences,
//! concurrency slots and queues, named leases, login guards, replica heartbeats). Keys under other prefixes are never touched.

use crate::error::Result;
use crate::redis::bulk::BulkWrite;
use crate::redis::RedisStore;
use crate::storage::Storage;

/// Key families (globs after the prefix) removed besides the pools.
const FAMILIES: &[&str] = &[
    "tokens:*",
    "token-lock:*",
    "sessions:*",
    "kiro:*",
    "writer:*",
    "slots:*",
    "slot-queue:*",
    "slot-queue-exp:*",
    "lease:*",
    "client-key-*",
    "login-guard:*",
];

/// What [`delete_instance`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TeardownReport {
    /// Pool types deleted (with their accounts and tokens).
    pub pools: Vec<String>,
    /// Accounts deleted across those pools.
    pub accounts: usize,
}

/// Deletes everything poolgate stores under the store's prefix.
pub async fn delete_instance(store: &RedisStore) -> Result<TeardownReport> {
    let keys = store.keys().clone();
    let types = store.set_members(&keys.pool_types()).await?;
    let mut report = TeardownReport::default();
    for t in types {
        report.accounts += store.delete_pool(&t).await?.len();
        report.pools.push(t);
    }
    let mut dels = vec![
        keys.config(),
        keys.password(),
        keys.meta(),
        keys.plugins(),
        keys.usage_cache(),
        keys.pool_types(),
        keys.client_keys(),
        keys.replicas(),
        keys.system_prompt(),
        keys.custom_models(),
    ];
    for family in FAMILIES {
        dels.extend(store.scan_prefixed(family).await?);
    }
    let item: Vec<BulkWrite> = dels.into_iter().map(|key| BulkWrite::Del { key }).collect();
    store.write_items(&[item], &mut |_| {}).await?;
    Ok(report)
}
