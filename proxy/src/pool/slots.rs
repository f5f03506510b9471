//! Per-account `concurrencyLimit` / `queueLimit`, enforced across every replica through the
//! store (one round trip to take a slot; the release is sent in the background).

use std::sync::Arc;
use std::time::{Duration, Instant};

use poolgate_store::{Account, SlotGrant, SlotRequest, Storage};

/// A slot lives this long without renewal (a crashed replica's slots free themselves).
const LEASE: Duration = Duration::from_secs(60);
/// How often a queued request asks again.
const POLL: Duration = Duration::from_millis(20);

/// Why no slot was taken.
#[derive(Debug)]
pub enum SlotError {
    /// Limit and queue are full (the reference's 429).
    Full,
    /// Waited in the queue past `QUEUE_TIMEOUT_MS`.
    QueueTimeout,
    /// The store could not answer.
    Store(poolgate_store::StoreError),
}

/// Holds a slot: renewed while held, released (in the background) when dropped.
pub struct SlotGuard {
    store: Arc<dyn Storage>,
    pool: String,
    uuid: String,
    holder: String,
    renew: tokio::task::JoinHandle<()>,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.renew.abort();
        let (store, pool, uuid, holder) = (
            self.store.clone(),
            std::mem::take(&mut self.pool),
            std::mem::take(&mut self.uuid),
            std::mem::take(&mut self.holder),
        );
        tokio::spawn(async move {
            if let Err(e) = store.release_slot(&pool, &uuid, &holder).await {
                tracing::warn!(%pool, %uuid, error = %e, "could not release a concurrency slot (it expires by itself)");
            }
        });
    }
}

/// The account's limits, when it has any.
pub fn limits(account: &Account) -> Option<(u32, u32)> {
    let n = |f: &str| account.get(f).and_then(|v| v.as_u64()).and_then(|v| u32::try_from(v).ok()).unwrap_or(0);
    let limit = n("concurrencyLimit");
    (limit > 0).then(|| (limit, n("queueLimit")))
}

/// Takes a slot of `account`, waiting in its queue up to `queue_timeout`.
pub async fn acquire(
    store: &Arc<dyn Storage>,
    pool: &str,
    account: &Account,
    (limit, queue_limit): (u32, u32),
    holder: String,
    queue_timeout: Duration,
) -> Result<SlotGuard, SlotError> {
    let req = SlotRequest { holder, limit, queue_limit, lease: LEASE };
    let uuid = account.uuid();
    let deadline = Instant::now() + queue_timeout;
    loop {
        match store.acquire_slot(pool, uuid, &req).await.map_err(SlotError::Store)? {
            SlotGrant::Granted => break,
            SlotGrant::Full => return Err(SlotError::Full),
            SlotGrant::Queued if Instant::now() >= deadline => {
                let _ = store.release_slot(pool, uuid, &req.holder).await;
                return Err(SlotError::QueueTimeout);
            }
            SlotGrant::Queued => tokio::time::sleep(POLL).await,
        }
    }
    let renew = {
        let (store, pool, uuid, req) = (store.clone(), pool.to_string(), uuid.to_string(), req.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(LEASE / 3).await;
                let _ = store.acquire_slot(&pool, &uuid, &req).await;
            }
        })
    };
    Ok(SlotGuard { store: store.clone(), pool: pool.to_string(), uuid: uuid.to_string(), holder: req.holder, renew })
}
