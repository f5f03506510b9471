//! Cross-replica coordination (poolgate additions): per-account concurrency slots with a FIFO
//! wait queue, and named leases (e.g. "one replica health-checks this account at a time").
//!
//! The Redis backend keeps these in Redis (`redis/coord.rs`); the file backend, which serves one
//! process, keeps them in memory here with the same semantics.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// A request for one concurrency slot of one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotRequest {
    /// Unique per request (e.g. a request id); used to renew and release.
    pub holder: String,
    /// Maximum concurrent holders (`concurrencyLimit`, > 0).
    pub limit: u32,
    /// Maximum waiters (`queueLimit`); 0 means no queue.
    pub queue_limit: u32,
    /// How long the slot (or queue place) lives without renewal; a crashed holder frees it then.
    pub lease: Duration,
}

/// Answer to [`SlotRequest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotGrant {
    /// The holder has a slot (granted or renewed).
    Granted,
    /// The holder is in the wait queue; ask again shortly (same holder) to keep its place.
    Queued,
    /// All slots taken and the queue is full (or there is none).
    Full,
}

#[derive(Default)]
struct Slots {
    /// holder → lease expiry.
    active: HashMap<String, Instant>,
    /// enqueue order → (holder, expiry).
    waiting: BTreeMap<u64, (String, Instant)>,
}

/// In-memory coordination for a single process (the file backend).
#[derive(Default)]
pub struct LocalCoord {
    slots: Mutex<HashMap<String, Slots>>,
    leases: Mutex<HashMap<String, (String, Instant)>>,
    seq: std::sync::atomic::AtomicU64,
}

impl LocalCoord {
    /// Live holders and waiters of one account's slots.
    pub fn slot_load(&self, pool: &str, uuid: &str) -> (u32, u32) {
        let now = Instant::now();
        let all = self.slots.lock();
        let Some(s) = all.get(&format!("{pool}:{uuid}")) else { return (0, 0) };
        let held = s.active.values().filter(|exp| **exp > now).count();
        let queued = s.waiting.values().filter(|(_, exp)| *exp > now).count();
        (held as u32, queued as u32)
    }

    pub fn acquire_slot(&self, pool: &str, uuid: &str, req: &SlotRequest) -> SlotGrant {
        let now = Instant::now();
        let mut all = self.slots.lock();
        let s = all.entry(format!("{pool}:{uuid}")).or_default();
        s.active.retain(|_, exp| *exp > now);
        s.waiting.retain(|_, (_, exp)| *exp > now);
        if let Some(exp) = s.active.get_mut(&req.holder) {
            *exp = now + req.lease;
            return SlotGrant::Granted;
        }
        let free = (req.limit as usize).saturating_sub(s.active.len());
        let position = s.waiting.values().position(|(h, _)| *h == req.holder);
        let may_take = match position {
            Some(p) => p < free,
            None => s.waiting.is_empty() && free > 0,
        };
        if may_take {
            s.waiting.retain(|_, (h, _)| *h != req.holder);
            s.active.insert(req.holder.clone(), now + req.lease);
            return SlotGrant::Granted;
        }
        if position.is_some() {
            for (h, exp) in s.waiting.values_mut() {
                if *h == req.holder {
                    *exp = now + req.lease;
                }
            }
            return SlotGrant::Queued;
        }
        if s.waiting.len() < req.queue_limit as usize {
            let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            s.waiting.insert(seq, (req.holder.clone(), now + req.lease));
            return SlotGrant::Queued;
        }
        SlotGrant::Full
    }

    pub fn release_slot(&self, pool: &str, uuid: &str, holder: &str) {
        let key = format!("{pool}:{uuid}");
        let mut all = self.slots.lock();
        if let Some(s) = all.get_mut(&key) {
            s.active.remove(holder);
            s.waiting.retain(|_, (h, _)| h != holder);
            if s.active.is_empty() && s.waiting.is_empty() {
                all.remove(&key);
            }
        }
    }

    pub fn try_lease(&self, name: &str, owner: &str, ttl: Duration) -> bool {
        let now = Instant::now();
        let mut leases = self.leases.lock();
        match leases.get(name) {
            Some((_, until)) if *until > now => false,
            _ => {
                leases.insert(name.to_string(), (owner.to_string(), now + ttl));
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(holder: &str, limit: u32, queue: u32) -> SlotRequest {
        SlotRequest { holder: holder.into(), limit, queue_limit: queue, lease: Duration::from_secs(10) }
    }

    #[test]
    fn slots_are_limited_and_waiters_served_in_order() {
        let c = LocalCoord::default();
        assert_eq!(c.acquire_slot("p", "u", &req("a", 1, 2)), SlotGrant::Granted);
        assert_eq!(c.acquire_slot("p", "u", &req("b", 1, 2)), SlotGrant::Queued);
        assert_eq!(c.acquire_slot("p", "u", &req("c", 1, 2)), SlotGrant::Queued);
        assert_eq!(c.acquire_slot("p", "u", &req("d", 1, 2)), SlotGrant::Full);
        c.release_slot("p", "u", "a");
        assert_eq!(c.acquire_slot("p", "u", &req("c", 1, 2)), SlotGrant::Queued, "c waits behind b");
        assert_eq!(c.acquire_slot("p", "u", &req("b", 1, 2)), SlotGrant::Granted);
        assert_eq!(c.acquire_slot("p", "u", &req("b", 1, 2)), SlotGrant::Granted, "renewal");
    }

    #[test]
    fn leases_exclude_until_expiry() {
        let c = LocalCoord::default();
        assert!(c.try_lease("x", "a", Duration::from_millis(30)));
        assert!(!c.try_lease("x", "b", Duration::from_millis(30)));
        std::thread::sleep(Duration::from_millis(40));
        assert!(c.try_lease("x", "b", Duration::from_millis(30)));
    }
}
