//! Cross-process cache invalidation over Redis pub/sub. Every write script publishes what it
//! touched; each process refreshes just those accounts and forgets just those keys, so a change
//! made anywhere is visible everywhere within a round trip, without wiping whole caches.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use super::Shared;

/// Subscribes forever, re-subscribing after Redis outages.
pub async fn run(shared: Arc<Shared>) {
    let channel = shared.keys.events_channel();
    loop {
        match shared.link.client().get_async_pubsub().await {
            Ok(mut ps) => {
                if ps.subscribe(&channel).await.is_ok() {
                    // Messages sent while we were not subscribed are lost: treat all as stale.
                    shared.pools.invalidate_all();
                    shared.kv.invalidate_all();
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

/// Applies one message: `writer-id` then lines `a\tpool\tuuid`, `p\tpool`, `k\tkey`, `t`.
async fn handle(shared: &Shared, payload: &[u8]) {
    let Ok(text) = std::str::from_utf8(payload) else { return };
    let mut lines = text.split('\n');
    if lines.next() == Some(shared.writer_id.as_str()) {
        return; // our own write, already in the cache
    }
    let mut accounts: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for line in lines {
        let mut parts = line.split('\t');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("a"), Some(pool), Some(uuid)) => accounts.entry(pool).or_default().push(uuid),
            (Some("p"), Some(pool), _) => shared.pools.invalidate_pool(pool),
            (Some("k"), Some(key), _) => {
                shared.kv.invalidate(key);
                if let Some(id) = shared.keys.token_id(key) {
                    let _ = shared.token_changes.send(id);
                }
            }
            (Some("t"), _, _) => shared.pools.invalidate_types(),
            _ => {}
        }
    }
    for (pool, uuids) in accounts {
        if let Err(e) = super::refresh_accounts(shared, pool, &uuids).await {
            tracing::debug!(pool, error = %e, "account refresh after invalidation failed");
            shared.pools.invalidate_pool(pool);
        }
    }
}
