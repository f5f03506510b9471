//! Redis side of [`crate::coord`]: concurrency slots (one script call per acquire or release)
//! and leases (`SET NX PX`).

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use super::Shared;
use crate::coord::{SlotGrant, SlotRequest};
use crate::error::Result;

static SLOTS: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/slots.lua")));

async fn slots_call(shared: &Shared, pool: &str, uuid: &str, mode: &str, req: &SlotRequest) -> Result<i64> {
    let mut c = shared.link.conn()?;
    shared.link.count_command();
    let k = &shared.keys;
    SLOTS
        .key(k.slots(pool, uuid))
        .key(k.slot_queue(pool, uuid))
        .key(k.slot_queue_expiry(pool, uuid))
        .arg(mode)
        .arg(&req.holder)
        .arg(req.limit)
        .arg(req.queue_limit)
        .arg(req.lease.as_millis() as u64)
        .invoke_async(&mut c)
        .await
        .map_err(|e| shared.link.fail(e))
}

pub(crate) async fn acquire_slot(shared: &Shared, pool: &str, uuid: &str, req: &SlotRequest) -> Result<SlotGrant> {
    Ok(match slots_call(shared, pool, uuid, "acquire", req).await? {
        1 => SlotGrant::Granted,
        0 => SlotGrant::Queued,
        _ => SlotGrant::Full,
    })
}

pub(crate) async fn release_slot(shared: &Shared, pool: &str, uuid: &str, holder: &str) -> Result<()> {
    let req = SlotRequest { holder: holder.into(), limit: 0, queue_limit: 0, lease: Duration::ZERO };
    slots_call(shared, pool, uuid, "release", &req).await.map(|_| ())
}

/// Durable like the refresh lock: leases fence single-use work (a refresh token sent, a health
/// check run) across replicas, also through a failover.
pub(crate) async fn try_lease(shared: &Shared, name: &str, owner: &str, ttl: Duration) -> Result<bool> {
    shared.link.claim(&shared.keys.lease(name), owner, ttl, &shared.scripts.lock).await
}

pub(crate) async fn slot_loads(shared: &Shared, pool: &str, uuids: &[String]) -> Result<Vec<(u32, u32)>> {
    if uuids.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for u in uuids {
        pipe.zcard(shared.keys.slots(pool, u)).zcard(shared.keys.slot_queue(pool, u));
    }
    let mut c = shared.link.conn()?;
    shared.link.count_command();
    let counts: Vec<u32> = pipe.query_async(&mut c).await.map_err(|e| shared.link.fail(e))?;
    Ok(counts.chunks(2).map(|p| (p[0], p.get(1).copied().unwrap_or(0))).collect())
}
