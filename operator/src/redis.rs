//! Connections to the Redis instances of the gateways, one [`RedisStore`] per (URL, prefix),
//! opened on first use and kept for later reconciles. Only the store crate speaks to Redis.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use poolgate_store::{RedisSettings, RedisStore, StoreError};
use tokio::sync::Mutex;

/// Open stores by (hash of URL, key prefix). The URL itself (it may hold a password) is not kept.
#[derive(Default)]
pub struct RedisConnections {
    stores: Mutex<HashMap<(String, String), Arc<RedisStore>>>,
}

/// Settings for a URL taken from a Secret.
pub fn settings(url: &str, prefix: &str) -> RedisSettings {
    RedisSettings {
        enabled: true,
        url: Some(url.to_string()),
        key_prefix: prefix.to_string(),
        connect_timeout: Duration::from_secs(3),
        command_timeout: Duration::from_secs(3),
        ..RedisSettings::default()
    }
}

impl RedisConnections {
    /// A connected store; fails with the (redacted) reason when Redis cannot be reached.
    pub async fn get(&self, url: &str, prefix: &str) -> Result<Arc<RedisStore>, StoreError> {
        let key = (crate::hash::short_hash(url.as_bytes()), prefix.to_string());
        let mut stores = self.stores.lock().await;
        if let Some(s) = stores.get(&key) {
            if s.wait_connected(Duration::from_secs(2)).await {
                return Ok(s.clone());
            }
            stores.remove(&key);
        }
        let store = Arc::new(RedisStore::open_connected(settings(url, prefix)).await?);
        stores.insert(key, store.clone());
        Ok(store)
    }

    /// Closes the store of a gateway that is gone.
    pub async fn forget(&self, url: &str, prefix: &str) {
        let key = (crate::hash::short_hash(url.as_bytes()), prefix.to_string());
        self.stores.lock().await.remove(&key);
    }
}
