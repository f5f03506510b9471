//! Redis side of client keys: settings in one hash, counters per key, admission, refund and
//! settlement as one script call each (see `lua/client_key_*.lua`).

use std::collections::HashMap;
use std::sync::LazyLock;

use redis::{AsyncCommands, Script, Value as RValue};

use super::Shared;
use crate::client_key::{Admission, ClientKey, ClientKeyUsage, Limit, RateInfo, Settlement, Ticket};
use crate::error::{Result, StoreError};

static ADMIT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/client_key_admit.lua")));
static REFUND: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/client_key_refund.lua")));
static SETTLE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/client_key_settle.lua")));

pub(crate) async fn put(shared: &Shared, hash: &str, key: &ClientKey) -> Result<()> {
    let json = serde_json::to_string(key).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let mut c = shared.link.conn()?;
    shared.link.count_command();
    let _: i64 = c.hset(shared.keys.client_keys(), hash, json).await.map_err(|e| shared.link.fail(e))?;
    Ok(())
}

pub(crate) async fn delete(shared: &Shared, hash: &str) -> Result<bool> {
    let mut c = shared.link.conn()?;
    shared.link.count_command();
    let (n, _): (i64, i64) = redis::pipe()
        .atomic()
        .hdel(shared.keys.client_keys(), hash)
        .del(shared.keys.client_key_usage(hash))
        .query_async(&mut c)
        .await
        .map_err(|e| shared.link.fail(e))?;
    Ok(n > 0)
}

static REKEY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "local v = redis.call('HGET', KEYS[1], ARGV[1]) \
         if not v then return 0 end \
         redis.call('HDEL', KEYS[1], ARGV[1]) \
         redis.call('HSET', KEYS[1], ARGV[2], v) \
         if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('RENAME', KEYS[2], KEYS[3]) end \
         return 1",
    )
});

/// Moves settings and counters to a new hash, atomically.
pub(crate) async fn rekey(shared: &Shared, old: &str, new: &str) -> Result<bool> {
    let mut c = shared.link.conn()?;
    shared.link.count_command();
    let k = &shared.keys;
    let n: i64 = REKEY
        .key(k.client_keys())
        .key(k.client_key_usage(old))
        .key(k.client_key_usage(new))
        .arg(old)
        .arg(new)
        .invoke_async(&mut c)
        .await
        .map_err(|e| shared.link.fail(e))?;
    Ok(n == 1)
}

/// Every key's per-model statistics of one day.
pub(crate) async fn stats(shared: &Shared, day: i64) -> Result<Vec<crate::client_key::ModelUsage>> {
    let mut c = shared.link.conn()?;
    shared.link.count_command();
    let all: HashMap<String, i64> =
        c.hgetall(shared.keys.client_key_stats(day)).await.map_err(|e| shared.link.fail(e))?;
    let mut rows: std::collections::BTreeMap<(String, String), crate::client_key::ModelUsage> = Default::default();
    for (field, n) in all {
        let mut parts = field.splitn(3, '\t');
        let (Some(hash), Some(model), Some(what)) = (parts.next(), parts.next(), parts.next()) else { continue };
        let row = rows.entry((hash.to_string(), model.to_string())).or_insert_with(|| crate::client_key::ModelUsage {
            hash: hash.into(),
            model: model.into(),
            ..Default::default()
        });
        match what {
            "requests" => row.requests = n,
            "inputTokens" => row.input_tokens = n,
            "outputTokens" => row.output_tokens = n,
            "errors" => row.errors = n,
            _ => {}
        }
    }
    Ok(rows.into_values().collect())
}

pub(crate) async fn reset_usage(shared: &Shared, hash: &str) -> Result<()> {
    let mut c = shared.link.conn()?;
    shared.link.count_command();
    let _: i64 = c.hset(shared.keys.client_key_usage(hash), "todayUsage", 0).await.map_err(|e| shared.link.fail(e))?;
    Ok(())
}

fn usage_from(map: &HashMap<String, i64>) -> ClientKeyUsage {
    let g = |k: &str| map.get(k).copied().unwrap_or(0);
    ClientKeyUsage {
        day: g("day"),
        today_usage: g("todayUsage"),
        total_usage: g("totalUsage"),
        bonus_used: g("bonusUsed"),
        input_tokens: g("inputTokens"),
        output_tokens: g("outputTokens"),
        errors: g("errors"),
    }
}

pub(crate) async fn get(shared: &Shared, hash: &str) -> Result<Option<(ClientKey, ClientKeyUsage)>> {
    let mut c = shared.link.conn()?;
    shared.link.count_command();
    let (raw, usage): (Option<String>, HashMap<String, i64>) = redis::pipe()
        .hget(shared.keys.client_keys(), hash)
        .hgetall(shared.keys.client_key_usage(hash))
        .query_async(&mut c)
        .await
        .map_err(|e| shared.link.fail(e))?;
    let Some(raw) = raw else { return Ok(None) };
    let key = serde_json::from_str(&raw).map_err(|e| StoreError::corrupt("client-keys", &e))?;
    Ok(Some((key, usage_from(&usage))))
}

pub(crate) async fn list(shared: &Shared) -> Result<Vec<(String, ClientKey, ClientKeyUsage)>> {
    let mut c = shared.link.conn()?;
    shared.link.count_command();
    let all: HashMap<String, String> = c.hgetall(shared.keys.client_keys()).await.map_err(|e| shared.link.fail(e))?;
    if all.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    let hashes: Vec<String> = all.keys().cloned().collect();
    for h in &hashes {
        pipe.hgetall(shared.keys.client_key_usage(h));
    }
    shared.link.count_command();
    let usages: Vec<HashMap<String, i64>> = pipe.query_async(&mut c).await.map_err(|e| shared.link.fail(e))?;
    let mut out = Vec::with_capacity(hashes.len());
    for (h, u) in hashes.into_iter().zip(usages) {
        let key: ClientKey = serde_json::from_str(&all[&h]).map_err(|e| StoreError::corrupt("client-keys", &e))?;
        out.push((h, key, usage_from(&u)));
    }
    out.sort_by(|a, b| a.1.created_at.cmp(&b.1.created_at).then_with(|| a.1.name.cmp(&b.1.name)));
    Ok(out)
}

pub(crate) async fn admit(shared: &Shared, hash: &str, model: &str, provider: &str) -> Result<Admission> {
    let mut c = shared.link.conn()?;
    shared.link.count_command();
    let k = &shared.keys;
    let reply: Vec<RValue> = ADMIT
        .key(k.client_keys())
        .key(k.client_key_usage(hash))
        .arg(hash)
        .arg(model)
        .arg(provider)
        .arg(k.client_key_window_prefix())
        .invoke_async(&mut c)
        .await
        .map_err(|e| shared.link.fail(e))?;
    parse_admission(hash, &reply)
}

fn int(v: Option<&RValue>) -> i64 {
    match v {
        Some(RValue::Int(n)) => *n,
        Some(RValue::BulkString(b)) => std::str::from_utf8(b).ok().and_then(|s| s.parse().ok()).unwrap_or(-1),
        _ => -1,
    }
}

fn text(v: Option<&RValue>) -> String {
    match v {
        Some(RValue::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
        Some(RValue::SimpleString(s)) => s.clone(),
        _ => String::new(),
    }
}

fn opt(n: i64) -> Option<i64> {
    (n >= 0).then_some(n)
}

fn parse_admission(hash: &str, r: &[RValue]) -> Result<Admission> {
    let rate = |at: usize| RateInfo {
        limit: opt(int(r.get(at))),
        remaining: opt(int(r.get(at + 1))),
        reset_secs: opt(int(r.get(at + 2))).map(|n| n as u64),
    };
    Ok(match text(r.first()).as_str() {
        "unknown" => Admission::Unknown,
        "disabled" => Admission::Disabled,
        "expired" => Admission::Expired,
        "forbidden" => Admission::Forbidden,
        "admitted" => Admission::Admitted {
            ticket: Ticket {
                hash: hash.to_string(),
                day: int(r.get(1)),
                minute: int(r.get(2)),
                bonus: int(r.get(3)) == 1,
            },
            limits: rate(4),
        },
        "exhausted" => {
            let which = match text(r.get(1)).as_str() {
                "total" => Limit::Total,
                "rpm" => Limit::Rpm,
                "tpm" => Limit::Tpm,
                _ => Limit::Daily,
            };
            Admission::Exhausted { which, retry_after: opt(int(r.get(2))).map(|n| n as u64), limits: rate(3) }
        }
        other => return Err(StoreError::Invalid(format!("unexpected admission reply {other:?}"))),
    })
}

pub(crate) async fn refund(shared: &Shared, t: &Ticket) -> Result<()> {
    adjust(shared, t, -1).await
}

pub(crate) async fn replay(shared: &Shared, hash: &str, day: i64, n: i64) -> Result<()> {
    let t = Ticket { hash: hash.to_string(), day, minute: 0, bonus: false };
    adjust(shared, &t, n).await
}

async fn adjust(shared: &Shared, t: &Ticket, delta: i64) -> Result<()> {
    let mut c = shared.link.conn()?;
    shared.link.count_command();
    let k = &shared.keys;
    let _: i64 = REFUND
        .key(k.client_key_usage(&t.hash))
        .key(k.client_key_window("rpm", &t.hash, t.minute))
        .arg(t.day)
        .arg(if t.bonus { 1 } else { 0 })
        .arg(delta)
        .invoke_async(&mut c)
        .await
        .map_err(|e| shared.link.fail(e))?;
    Ok(())
}

/// Settlements waiting for the next group commit.
#[derive(Default)]
pub(crate) struct SettleQueue {
    pending: parking_lot::Mutex<std::collections::VecDeque<(Ticket, Settlement)>>,
    wake: tokio::sync::Notify,
    overflows: std::sync::atomic::AtomicU64,
}

/// Most settlements one script call applies.
const SETTLE_BATCH: usize = 128;
/// Most settlements held while Redis is unreachable (older ones are dropped, and counted).
const SETTLE_CAPACITY: usize = 100_000;
/// Longest a settlement waits for companions before it is sent.
const SETTLE_LINGER: std::time::Duration = std::time::Duration::from_millis(5);

/// Queues a settlement for the group commit (never waits on Redis).
pub(crate) fn settle(shared: &Shared, t: &Ticket, s: &Settlement) {
    let mut q = shared.settles.pending.lock();
    if q.len() >= SETTLE_CAPACITY {
        q.pop_front();
        shared.settles.overflows.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    q.push_back((t.clone(), s.clone()));
    let full = q.len() >= SETTLE_BATCH;
    drop(q);
    if full {
        shared.settles.wake.notify_one();
    }
}

/// Asks the settlement task to send now.
pub(crate) fn wake_settlements(shared: &Shared) {
    shared.settles.wake.notify_one();
}

/// Settlements dropped because too many waited while Redis was unreachable.
pub(crate) fn settle_overflows(shared: &Shared) -> u64 {
    shared.settles.overflows.load(std::sync::atomic::Ordering::Relaxed)
}

/// Settlements not yet in Redis.
pub(crate) fn settle_pending(shared: &Shared) -> usize {
    shared.settles.pending.lock().len()
}

/// Sends queued settlements in batches, one script call each; a batch Redis did not take goes
/// back to the front of the queue.
pub(crate) async fn run_settlements(shared: std::sync::Arc<Shared>) {
    loop {
        let _ = tokio::time::timeout(SETTLE_LINGER, shared.settles.wake.notified()).await;
        loop {
            let batch: Vec<(Ticket, Settlement)> = {
                let mut q = shared.settles.pending.lock();
                let n = q.len().min(SETTLE_BATCH);
                q.drain(..n).collect()
            };
            if batch.is_empty() {
                break;
            }
            if let Err(e) = settle_batch(&shared, &batch).await {
                tracing::debug!(error = %e, n = batch.len(), "client key settlements deferred");
                {
                    let mut q = shared.settles.pending.lock();
                    for item in batch.into_iter().rev() {
                        q.push_front(item);
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                break;
            }
        }
    }
}

async fn settle_batch(shared: &Shared, batch: &[(Ticket, Settlement)]) -> Result<()> {
    let mut c = shared.link.conn()?;
    shared.link.count_command();
    let k = &shared.keys;
    let mut call = SETTLE.prepare_invoke();
    for (t, s) in batch {
        call.key(k.client_key_usage(&t.hash))
            .key(k.client_key_window("tpm", &t.hash, t.minute))
            .key(k.client_key_stats(t.day))
            .arg(&t.hash)
            .arg(&s.model)
            .arg(s.input_tokens.max(0))
            .arg(s.output_tokens.max(0))
            .arg(i64::from(s.error));
    }
    let _: i64 = call.invoke_async(&mut c).await.map_err(|e| shared.link.fail(e))?;
    Ok(())
}
