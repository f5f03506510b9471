//! The write path: one ordered queue per process, coalescing per key, flushed as group commits.
//!
//! Every queueable write becomes an entry. While a batch is in flight, new writes merge into
//! pending entries for the same key (counter deltas summed, fields last-write-wins), so load
//! turns into few large batches. A batch is one script call carrying this writer's sequence
//! number; the script records it, so a batch retried after an ambiguous failure (reply lost when
//! Redis died) is applied exactly once. While Redis is down the queue simply grows (bounded) and
//! callers get `Applied::Queued`; when Redis returns it is replayed in order.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::{oneshot, Notify};

use super::scripts::Call;
use super::Shared;
use crate::account::{Account, AccountOps};
use crate::error::{Result, StoreError};
use crate::model::Applied;
use crate::provider;
use crate::time::epoch_ms;

/// Upper bound of entries per script call, keeping each call short for Redis.
const MAX_BATCH: usize = 256;

/// One queueable write.
#[derive(Debug, Clone)]
pub enum Write {
    Ops {
        pool: String,
        uuid: String,
        ops: AccountOps,
    },
    /// Apply `ops` if the account exists, else create it as `create`.
    Spec {
        pool: String,
        uuid: String,
        ops: AccountOps,
        create: Account,
    },
    Add {
        pool: String,
        account: Account,
    },
    Delete {
        pool: String,
        uuid: String,
    },
    Set {
        key: String,
        value: String,
    },
    /// Set with an absolute expiry (epoch ms), so a replay keeps the remaining life only.
    SetUntil {
        key: String,
        value: String,
        expires_ms: i64,
    },
    DelKey {
        key: String,
    },
    HSet {
        key: String,
        fields: BTreeMap<String, String>,
    },
}

/// What Redis did with one write.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Account(Account),
    Created(Account),
    Ok,
    NotFound,
    Exists,
    Corrupt(String),
}

type Waiter = oneshot::Sender<Result<Applied<Outcome>>>;

struct Entry {
    write: Write,
    waiters: Vec<Waiter>,
}

impl Entry {
    /// Whether `later` (same target) can merge into this entry: true when applying the merged
    /// entry equals applying both in order.
    fn absorb_ok(&self, later: &Write) -> bool {
        matches!(
            (&self.write, later),
            (Write::Ops { .. }, Write::Ops { .. })
                | (Write::Set { .. }, Write::Set { .. })
                | (Write::HSet { .. }, Write::HSet { .. })
        )
    }

    /// Merges `later` into this entry (callers check [`Entry::absorb_ok`] first).
    fn absorb(&mut self, later: Write) {
        match (&mut self.write, later) {
            (Write::Ops { ops, .. }, Write::Ops { ops: o, .. }) => ops.merge(o),
            (Write::Set { value, .. }, Write::Set { value: v, .. }) => *value = v,
            (Write::HSet { fields, .. }, Write::HSet { fields: f, .. }) => fields.extend(f),
            _ => {}
        }
    }

    fn account_key(&self) -> Option<(&str, &str)> {
        Some(target(&self.write)).filter(|(pool, _)| !pool.is_empty())
    }
}

struct Batch {
    seq: u64,
    entries: Vec<Entry>,
}

#[derive(Default)]
struct State {
    pending: VecDeque<Entry>,
    inflight: Option<Batch>,
    seq: u64,
    overflows: u64,
}

/// The queue and its counters; the flush task lives in [`run`].
pub struct Queue {
    state: Mutex<State>,
    capacity: usize,
    work: Notify,
    idle: Notify,
}

impl Queue {
    pub fn new(capacity: usize, start_seq: u64) -> Self {
        Self {
            state: Mutex::new(State { seq: start_seq, ..State::default() }),
            capacity,
            work: Notify::new(),
            idle: Notify::new(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Entries waiting or in flight.
    pub fn len(&self) -> usize {
        let s = self.state.lock();
        s.pending.len() + s.inflight.as_ref().map_or(0, |b| b.entries.len())
    }

    pub fn overflows(&self) -> u64 {
        self.state.lock().overflows
    }

    /// Accounts of `pool` with writes not yet applied in Redis (a cache refresh must not
    /// overwrite their local state).
    pub fn pending_accounts(&self, pool: &str) -> HashSet<String> {
        let s = self.state.lock();
        let inflight = s.inflight.iter().flat_map(|b| b.entries.iter());
        s.pending
            .iter()
            .chain(inflight)
            .filter_map(Entry::account_key)
            .filter(|(p, _)| *p == pool)
            .map(|(_, u)| u.to_string())
            .collect()
    }

    /// Enqueues a write; the receiver yields its outcome (or `Queued` if Redis is down).
    pub fn push(&self, write: Write) -> Result<oneshot::Receiver<Result<Applied<Outcome>>>> {
        self.push_then(write, |_| {})
    }

    /// Like [`Queue::push`], running `accepted` under the queue lock once the write is in the
    /// queue (and only then), before the flush task can take it.
    pub fn push_then(
        &self,
        write: Write,
        accepted: impl FnOnce(&Write),
    ) -> Result<oneshot::Receiver<Result<Applied<Outcome>>>> {
        let (tx, rx) = oneshot::channel();
        {
            let mut s = self.state.lock();
            accepted_check(&mut s, self.capacity, &write)?;
            accepted(&write);
            // Only the newest pending entry for the same target may absorb the write; anything
            // else would reorder it around a different kind of write (e.g. a delete).
            let key = target(&write);
            let newest = s.pending.iter_mut().rev().find(|e| target(&e.write) == key);
            match newest {
                Some(e) if e.absorb_ok(&write) => {
                    e.absorb(write);
                    e.waiters.push(tx);
                }
                _ => s.pending.push_back(Entry { write, waiters: vec![tx] }),
            }
        }
        self.work.notify_one();
        Ok(rx)
    }

    /// Waits until every queued write is applied, or `timeout` passes.
    pub async fn drain(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let idle = self.idle.notified();
            if self.len() == 0 {
                return true;
            }
            self.work.notify_one();
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.len() == 0;
            }
        }
    }
}

/// Rejects a write that would need a new entry in a full queue (merges are always accepted).
fn accepted_check(s: &mut State, capacity: usize, write: &Write) -> Result<()> {
    let key = target(write);
    let merges = s.pending.iter().rev().find(|e| target(&e.write) == key).is_some_and(|e| e.absorb_ok(write));
    if merges {
        return Ok(());
    }
    let queued = s.pending.len() + s.inflight.as_ref().map_or(0, |b| b.entries.len());
    if queued >= capacity {
        s.overflows += 1;
        tracing::error!(capacity, "write queue full: write rejected");
        return Err(StoreError::QueueFull { capacity });
    }
    Ok(())
}

/// The key a write changes: one account, or one Redis key.
fn target(w: &Write) -> (&str, &str) {
    match w {
        Write::Ops { pool, uuid, .. } | Write::Spec { pool, uuid, .. } | Write::Delete { pool, uuid } => (pool, uuid),
        Write::Add { pool, account } => (pool, account.uuid()),
        Write::Set { key, .. } | Write::SetUntil { key, .. } | Write::DelKey { key } | Write::HSet { key, .. } => {
            ("", key)
        }
    }
}

/// The flush task: group-commits the queue to Redis, forever.
pub async fn run(shared: std::sync::Arc<Shared>) {
    loop {
        let work = shared.queue.work.notified();
        let ready = {
            let mut s = shared.queue.state.lock();
            if s.inflight.is_none() && !s.pending.is_empty() {
                let n = s.pending.len().min(MAX_BATCH);
                let entries: Vec<Entry> = s.pending.drain(..n).collect();
                s.seq += 1;
                s.inflight = Some(Batch { seq: s.seq, entries });
            }
            s.inflight.is_some()
        };
        if !ready {
            shared.queue.idle.notify_waiters();
            work.await;
            continue;
        }
        if !shared.link.is_connected() {
            release_waiters_as_queued(&shared);
            let work = shared.queue.work.notified();
            tokio::select! {
                _ = shared.link.wait_up(Duration::from_millis(500)) => {}
                _ = work => {}
            }
            continue;
        }
        flush_inflight(&shared).await;
    }
}

/// Tells every caller still waiting that its write is queued (Redis is down).
fn release_waiters_as_queued(shared: &Shared) {
    let mut guard = shared.queue.state.lock();
    let s = &mut *guard;
    let inflight = s.inflight.iter_mut().flat_map(|b| b.entries.iter_mut());
    for e in inflight.chain(s.pending.iter_mut()) {
        for w in e.waiters.drain(..) {
            let _ = w.send(Ok(Applied::Queued));
        }
    }
}

async fn flush_inflight(shared: &Shared) {
    let Some((seq, writes)) = ({
        let s = shared.queue.state.lock();
        s.inflight.as_ref().map(|b| (b.seq, b.entries.iter().map(|e| e.write.clone()).collect::<Vec<_>>()))
    }) else {
        return;
    };
    match execute(shared, seq, &writes).await {
        Ok(outcomes) => {
            let batch = shared.queue.state.lock().inflight.take();
            for (entry, outcome) in batch.into_iter().flat_map(|b| b.entries).zip(outcomes) {
                super::apply_outcome(shared, &entry.write, &outcome);
                for w in entry.waiters {
                    let _ = w.send(Ok(Applied::Done(outcome.clone())));
                }
            }
        }
        Err(e) if e.is_unavailable() => {
            tracing::warn!(queued = shared.queue.len(), "Redis write failed; batch kept for replay");
            release_waiters_as_queued(shared);
        }
        Err(e) => {
            tracing::error!(error = %e, "batch rejected by Redis; its writes are dropped");
            let batch = shared.queue.state.lock().inflight.take();
            for entry in batch.into_iter().flat_map(|b| b.entries) {
                for w in entry.waiters {
                    let _ = w.send(Err(StoreError::Redis(e.to_string())));
                }
            }
        }
    }
}

/// Sends one batch as one script call and decodes the per-entry results.
///
/// On the durable connection, with the replicas' `WAIT` in the same round trip: a batch the
/// replicas did not acknowledge stays in flight and is sent again, and the sequence number
/// makes the re-send a no-op where the first one landed (on this master) and a first apply
/// where it did not (on a newly promoted one that never got it).
async fn execute(shared: &Shared, seq: u64, writes: &[Write]) -> Result<Vec<Outcome>> {
    let mut conn = shared.link.durable_conn()?;
    let guesses = kiro_guesses(shared, &mut conn, writes).await?;
    let keys = &shared.keys;
    let mut call = Call::new(&shared.scripts.batch);
    call.key(keys.writer_seq(&shared.writer_id)).key(keys.pool_types());
    call.arg(seq).arg(keys.events_channel()).arg(&shared.writer_id).arg(writes.len());
    for (i, w) in writes.iter().enumerate() {
        encode(&mut call, keys, w, guesses.get(&i).map(String::as_str));
    }
    let reply = shared.link.eval_durable(&mut conn, &call).await?;
    let reply: Vec<String> =
        redis::from_redis_value(reply).map_err(|e| StoreError::Redis(format!("batch reply: {e}")))?;
    if reply.first().map(String::as_str) == Some("DUP") {
        return outcomes_after_duplicate(shared, &mut conn, writes).await;
    }
    let mut out = Vec::with_capacity(writes.len());
    for (w, r) in writes.iter().zip(reply) {
        out.push(decode(shared, &mut conn, w, &r).await?);
    }
    Ok(out)
}

/// For Kiro deletes: the token's current refresh token, read just before the batch, to find
/// the dedup index to remove.
async fn kiro_guesses(
    shared: &Shared,
    conn: &mut super::link::Conn,
    writes: &[Write],
) -> Result<std::collections::HashMap<usize, String>> {
    let mut out = std::collections::HashMap::new();
    for (i, w) in writes.iter().enumerate() {
        if let Write::Delete { pool, uuid } = w {
            if provider::is_kiro(pool) {
                let raw: Option<String> = redis::cmd("GET")
                    .arg(shared.keys.token(pool, uuid))
                    .query_async(conn)
                    .await
                    .map_err(|e| shared.link.fail(e))?;
                let rt = raw
                    .and_then(|r| serde_json::from_str::<Value>(&r).ok())
                    .and_then(|v| provider::refresh_token_of(pool, &v).map(str::to_string));
                out.insert(i, rt.unwrap_or_default());
            }
        }
    }
    Ok(out)
}

fn encode_ops(inv: &mut Call<'_>, ops: &AccountOps) {
    let q = |s: &str| Value::String(s.to_string()).to_string();
    inv.arg(ops.unset.len());
    for f in &ops.unset {
        inv.arg(q(f));
    }
    inv.arg(ops.set.len());
    for (f, v) in &ops.set {
        inv.arg(q(f)).arg(v.to_string());
    }
    inv.arg(ops.incr.len());
    for (f, n) in &ops.incr {
        inv.arg(q(f)).arg(*n);
    }
    inv.arg(ops.unhealthy_at.map(|t| t.to_string()).unwrap_or_default());
}

fn encode(inv: &mut Call<'_>, keys: &crate::keys::Keys, w: &Write, guess: Option<&str>) {
    match w {
        Write::Ops { pool, uuid, ops } => {
            inv.key(keys.pool(pool)).arg("acct").arg(pool).arg(uuid);
            encode_ops(inv, ops);
        }
        Write::Spec { pool, uuid, ops, create } => {
            inv.key(keys.pool(pool)).arg("spec").arg(pool).arg(uuid);
            encode_ops(inv, ops);
            inv.arg(create.to_json());
        }
        Write::Add { pool, account } => {
            inv.key(keys.pool(pool)).arg("add").arg(pool).arg(account.uuid()).arg(account.to_json());
        }
        Write::Delete { pool, uuid } => {
            let guess = guess.unwrap_or("");
            let index = keys.kiro_refresh_index(&provider::kiro_index_hash(guess));
            inv.key(keys.pool(pool)).key(keys.token(pool, uuid)).key(index);
            inv.arg("del").arg(pool).arg(uuid).arg(if provider::is_kiro(pool) { "1" } else { "0" }).arg(guess);
        }
        Write::Set { key, value } => {
            inv.key(key).arg("set").arg(value);
        }
        Write::SetUntil { key, value, expires_ms } => {
            let left = expires_ms - epoch_ms();
            if left > 0 {
                inv.key(key).arg("setpx").arg(value).arg(left);
            } else {
                inv.key(key).arg("delk");
            }
        }
        Write::DelKey { key } => {
            inv.key(key).arg("delk");
        }
        Write::HSet { key, fields } => {
            inv.key(key).arg("hset").arg(fields.len());
            for (f, v) in fields {
                inv.arg(f).arg(v);
            }
        }
    }
}

async fn decode(shared: &Shared, conn: &mut super::link::Conn, w: &Write, r: &str) -> Result<Outcome> {
    let location = |pool: &str, uuid: &str| format!("{} field {uuid}", shared.keys.pool(pool));
    let (tag, rest) = r.split_at(r.len().min(1));
    Ok(match (tag, w) {
        ("J", Write::Ops { pool, uuid, .. } | Write::Spec { pool, uuid, .. }) => {
            Outcome::Account(Account::parse(rest, &location(pool, uuid))?)
        }
        ("A", Write::Spec { pool, uuid, .. }) => Outcome::Created(Account::parse(rest, &location(pool, uuid))?),
        ("A", Write::Add { pool, account }) => Outcome::Created(Account::parse(rest, &location(pool, account.uuid()))?),
        ("C", _) => Outcome::Corrupt(rest.to_string()),
        ("N", _) => Outcome::NotFound,
        ("E", _) => Outcome::Exists,
        ("O", Write::Delete { uuid, .. }) if !rest.is_empty() => {
            // The token was rotated between our read and the delete: drop that index too.
            release_stale_index(shared, conn, uuid, rest).await?;
            Outcome::Ok
        }
        ("O", _) => Outcome::Ok,
        _ => return Err(StoreError::Redis(format!("unexpected batch reply {tag:?}"))),
    })
}

async fn release_stale_index(shared: &Shared, conn: &mut super::link::Conn, uuid: &str, refresh: &str) -> Result<()> {
    let key = shared.keys.kiro_refresh_index(&provider::kiro_index_hash(refresh));
    shared
        .scripts
        .lock
        .key(key)
        .arg("release")
        .arg(uuid)
        .arg(0)
        .invoke_async::<i64>(conn)
        .await
        .map_err(|e| shared.link.fail(e))?;
    Ok(())
}

/// The batch was applied before (its reply was lost): report each entry's current state.
async fn outcomes_after_duplicate(
    shared: &Shared,
    conn: &mut super::link::Conn,
    writes: &[Write],
) -> Result<Vec<Outcome>> {
    tracing::info!("batch already applied before a lost reply; not applying it twice");
    let mut out = Vec::with_capacity(writes.len());
    for w in writes {
        let o = match w {
            Write::Ops { pool, uuid, .. } | Write::Spec { pool, uuid, .. } => {
                let raw: Option<String> = redis::cmd("HGET")
                    .arg(shared.keys.pool(pool))
                    .arg(uuid)
                    .query_async(conn)
                    .await
                    .map_err(|e| shared.link.fail(e))?;
                match raw {
                    Some(r) => Outcome::Account(Account::parse(&r, &shared.keys.pool(pool))?),
                    None => Outcome::NotFound,
                }
            }
            Write::Add { account, .. } => Outcome::Created(account.clone()),
            _ => Outcome::Ok,
        };
        out.push(o);
    }
    Ok(out)
}
