//! Cross-process cache invalidation over Redis pub/sub. Every write script publishes what it
//! touched; each process refreshes just those accounts and forgets just those keys, so a change
//! made anywhere is visible everywhere within a round trip, without wiping whole caches.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use super::Shared;
use crate::admin::Change;

/// Subscribes forever, re-subscribing after Redis outages.
pub async fn run(shared: Arc<Shared>) {
    let channel = shared.keys.events_channel();
    loop {
        let Some(client) = shared.link.pubsub_client() else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        match client.get_async_pubsub().await {
            Ok(mut ps) => {
                if ps.subscribe(&channel).await.is_ok() {
                    // Messages sent while we were not subscribed are lost: treat all as stale.
                    shared.pools.invalidate_all();
                    shared.kv.invalidate_all();
                    let _ = shared.changes.send(Change::Resync);
                    shared.subscribed.notify_waiters();
                    shared.is_subscribed.store(true, std::sync::atomic::Ordering::SeqCst);
                    let mut stream = ps.on_message();
                    while let Some(msg) = stream.next().await {
                        handle(&shared, msg.get_payload_bytes()).await;
                    }
                    shared.is_subscribed.store(false, std::sync::atomic::Ordering::SeqCst);
                    tracing::debug!("invalidation subscription ended");
                }
            }
            Err(e) => tracing::debug!(error = %e.category(), "invalidation subscribe failed"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Applies one message: `writer-id` then lines `a\tpool\tuuid`, `p\tpool`, `k\tkey`, `t`. Every
/// line goes to the change feed; the cache work is skipped for our own writes, which are in
/// the cache already.
async fn handle(shared: &Shared, payload: &[u8]) {
    let Ok(text) = std::str::from_utf8(payload) else { return };
    let mut lines = text.split('\n');
    let own = lines.next() == Some(shared.writer_id.as_str());
    let mut accounts: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for line in lines {
        let mut parts = line.split('\t');
        let change = match (parts.next(), parts.next(), parts.next()) {
            (Some("a"), Some(pool), Some(uuid)) => {
                accounts.entry(pool).or_default().push(uuid);
                Some(Change::Account { pool: pool.into(), uuid: uuid.into() })
            }
            (Some("p"), Some(pool), _) => {
                if !own {
                    shared.pools.invalidate_pool(pool);
                }
                Some(Change::Pool(pool.into()))
            }
            (Some("k"), Some(key), _) => {
                let token = shared.keys.token_id(key);
                if !own {
                    shared.kv.invalidate(key);
                    if let Some(id) = &token {
                        let _ = shared.token_changes.send(id.clone());
                    }
                }
                key_change(shared, key, token)
            }
            (Some("t"), _, _) => {
                if !own {
                    shared.pools.invalidate_types();
                }
                Some(Change::PoolTypes)
            }
            _ => None,
        };
        if let Some(c) = change {
            let _ = shared.changes.send(c);
        }
    }
    if own {
        return;
    }
    for (pool, uuids) in accounts {
        if let Err(e) = super::refresh_accounts(shared, pool, &uuids).await {
            tracing::debug!(pool, error = %e, "account refresh after invalidation failed");
            shared.pools.invalidate_pool(pool);
        }
    }
}

/// The change a written key stands for (sessions and other keys are not announced).
fn key_change(shared: &Shared, key: &str, token: Option<(String, String)>) -> Option<Change> {
    let k = &shared.keys;
    if let Some((pool, uuid)) = token {
        return Some(Change::Token { pool, uuid });
    }
    [(k.config(), Change::Config), (k.password(), Change::Password), (k.plugins(), Change::Plugins)]
        .into_iter()
        .chain([(k.usage_cache(), Change::UsageCache), (k.system_prompt(), Change::SystemPrompt)])
        .chain([(k.custom_models(), Change::CustomModels)])
        .find(|(name, _)| name == key)
        .map(|(_, c)| c)
}
