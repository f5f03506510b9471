//! Account selection.
//!
//! Candidates: enabled, not awaiting a token refresh, healthy (or past their
//! `scheduledRecoveryTime`), supporting the model (`supportedModels` when set,
//! `notSupportedModels`), not benched locally after a failure moments ago, and not already
//! tried by this request. Among them the account with the fewest requests in flight from this
//! replica wins; ties go round-robin from a per-process cursor that starts at a random place.
//!
//! Why not the reference's LRU score on shared `lastUsed`/`usageCount`: every replica reads the
//! same values, so concurrent requests on different replicas would all pick the same
//! least-used account. Independent round-robin cursors spread load evenly in aggregate (each
//! replica spreads its own share over all accounts), with no Redis round trip and no lock,
//! and the in-flight term steers around slow accounts.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use poolgate_store::Account;
use serde_json::Value;

/// The result of a selection.
#[derive(Debug)]
pub enum Pick {
    /// Index into the accounts slice.
    Account(usize),
    /// Some account supports the model, but none is usable now.
    NoneUsable,
    /// No account of the pool serves this model (or the pool is empty).
    NoneSupports,
}

/// Per-process selection state.
pub struct Selector {
    cursor: AtomicUsize,
    inflight: Mutex<HashMap<String, usize>>,
    benched: Mutex<HashMap<String, Instant>>,
}

impl Default for Selector {
    fn default() -> Self {
        Self {
            cursor: AtomicUsize::new(rand::random::<u16>() as usize),
            inflight: Mutex::new(HashMap::new()),
            benched: Mutex::new(HashMap::new()),
        }
    }
}

/// Counts one in-flight request on an account until dropped.
pub struct InFlight {
    selector: Arc<Selector>,
    key: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut m = self.selector.inflight.lock();
        if let Some(n) = m.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.key);
            }
        }
    }
}

impl Selector {
    /// Requests this replica has in flight on one account.
    pub fn in_flight(&self, pool: &str, uuid: &str) -> usize {
        self.inflight.lock().get(&key(pool, uuid)).copied().unwrap_or(0)
    }

    /// Requests this replica has in flight on all accounts.
    pub fn in_flight_total(&self) -> usize {
        self.inflight.lock().values().sum()
    }
}

fn key(pool: &str, uuid: &str) -> String {
    format!("{pool}\u{0}{uuid}")
}

/// True when `account` serves `model`.
pub fn supports(account: &Account, model: &str) -> bool {
    if let Some(Value::Array(list)) = account.get("supportedModels") {
        if !list.is_empty() && !list.iter().any(|m| m.as_str() == Some(model)) {
            return false;
        }
    }
    !account.not_supported_models().contains(&model)
}

/// True when the account may take traffic now (ignoring model and local state).
pub fn usable(account: &Account, now_ms: i64) -> bool {
    if account.is_disabled() || account.needs_refresh() {
        return false;
    }
    account.is_healthy() || recovery_due(account, now_ms)
}

/// An account cooled down after a 429 may be used again once its recovery time has passed.
pub fn recovery_due(account: &Account, now_ms: i64) -> bool {
    account
        .scheduled_recovery_time()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .is_some_and(|t| t.timestamp_millis() <= now_ms)
}

impl Selector {
    /// Chooses an account of `pool` for `model`, skipping `tried` uuids.
    pub fn pick(
        &self,
        pool: &str,
        accounts: &[Arc<Account>],
        model: &str,
        tried: &HashSet<String>,
        now_ms: i64,
    ) -> Pick {
        let n = accounts.len();
        if n == 0 {
            return Pick::NoneSupports;
        }
        // A stable order for the cursor; the store hands pools out sorted already.
        let mut order: Vec<usize> = (0..n).collect();
        if !accounts.windows(2).all(|w| w[0].uuid() <= w[1].uuid()) {
            order.sort_by(|a, b| accounts[*a].uuid().cmp(accounts[*b].uuid()));
        }
        let mut benched = self.benched.lock();
        if !benched.is_empty() {
            let now = Instant::now();
            benched.retain(|_, until| *until > now);
        }
        let inflight = self.inflight.lock();
        let mut any_supports = false;
        let mut candidates: Vec<(usize, usize)> = Vec::with_capacity(n);
        // One key buffer for every lookup (no allocation per account).
        let mut k = String::with_capacity(pool.len() + 40);
        for &idx in &order {
            let acc = &accounts[idx];
            if !supports(acc, model) {
                continue;
            }
            any_supports = true;
            if !usable(acc, now_ms) || tried.contains(acc.uuid()) {
                continue;
            }
            k.clear();
            k.push_str(pool);
            k.push('\u{0}');
            k.push_str(acc.uuid());
            if benched.contains_key(&k) {
                continue;
            }
            candidates.push((idx, inflight.get(&k).copied().unwrap_or(0)));
        }
        drop(benched);
        drop(inflight);
        let least = candidates.iter().map(|c| c.1).min();
        candidates.retain(|c| Some(c.1) == least);
        let best = (!candidates.is_empty())
            .then(|| candidates[self.cursor.fetch_add(1, Ordering::Relaxed) % candidates.len()]);
        match best {
            Some((idx, _)) => Pick::Account(idx),
            None if any_supports => Pick::NoneUsable,
            None => Pick::NoneSupports,
        }
    }

    /// Marks one request in flight on an account.
    pub fn enter(self: &Arc<Self>, pool: &str, uuid: &str) -> InFlight {
        let k = key(pool, uuid);
        *self.inflight.lock().entry(k.clone()).or_insert(0) += 1;
        InFlight { selector: self.clone(), key: k }
    }

    /// Keeps this replica off an account for `for_` (until the store reflects a failure).
    pub fn bench(&self, pool: &str, uuid: &str, for_: Duration) {
        self.benched.lock().insert(key(pool, uuid), Instant::now() + for_);
    }

    /// Lifts a local bench (the account just succeeded or passed a check).
    pub fn unbench(&self, pool: &str, uuid: &str) {
        self.benched.lock().remove(&key(pool, uuid));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn acc(v: Value) -> Arc<Account> {
        Arc::new(Account::from_map(v.as_object().cloned().expect("obj")).expect("acc"))
    }

    #[test]
    fn filters_and_spreads() {
        let accounts = vec![
            acc(json!({"uuid": "a"})),
            acc(json!({"uuid": "b", "isHealthy": false})),
            acc(json!({"uuid": "c", "isDisabled": true})),
            acc(json!({"uuid": "d", "supportedModels": ["other"]})),
            acc(json!({"uuid": "e", "notSupportedModels": ["m"]})),
            acc(json!({"uuid": "f", "isHealthy": false, "scheduledRecoveryTime": "2000-01-01T00:00:00.000Z"})),
        ];
        let s = Arc::new(Selector::default());
        let mut seen = HashMap::new();
        for _ in 0..100 {
            match s.pick("p", &accounts, "m", &HashSet::new(), 1_000_000_000_000_000) {
                Pick::Account(i) => *seen.entry(accounts[i].uuid().to_string()).or_insert(0) += 1,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen["a"], 50);
        assert_eq!(seen["f"], 50);
        let tried: HashSet<String> = ["a".to_string(), "f".to_string()].into();
        assert!(matches!(s.pick("p", &accounts, "m", &tried, i64::MAX), Pick::NoneUsable));
        let tried_a: HashSet<String> = ["a".to_string()].into();
        assert!(matches!(s.pick("p", &accounts, "m", &tried_a, 0), Pick::NoneUsable), "f not yet due");
        let only_d = vec![acc(json!({"uuid": "d", "supportedModels": ["other"]}))];
        assert!(matches!(s.pick("p", &only_d, "m", &HashSet::new(), 0), Pick::NoneSupports));
    }

    #[test]
    fn in_flight_and_bench_steer_selection() {
        let accounts = vec![acc(json!({"uuid": "a"})), acc(json!({"uuid": "b"}))];
        let s = Arc::new(Selector::default());
        let _busy = s.enter("p", "a");
        for _ in 0..10 {
            let Pick::Account(i) = s.pick("p", &accounts, "m", &HashSet::new(), 0) else { panic!() };
            assert_eq!(accounts[i].uuid(), "b");
        }
        s.bench("p", "b", Duration::from_secs(60));
        let Pick::Account(i) = s.pick("p", &accounts, "m", &HashSet::new(), 0) else { panic!() };
        assert_eq!(accounts[i].uuid(), "a");
    }
}
