//! Client keys on one machine: the settings and counters in `client-keys.json` (poolgate's own
//! file, owner-only), admission under one lock with the rules of [`crate::client_key::decide`].
//! Counter changes are written shortly after they happen (and at `flush`), settings at once.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::atomic;
use crate::client_key::{decide, Admission, ClientKey, ClientKeyUsage, Settlement, Ticket};
use crate::error::{Result, StoreError};
use crate::time;

pub const FILE: &str = "client-keys.json";

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct Data {
    keys: BTreeMap<String, ClientKey>,
    usage: BTreeMap<String, ClientKeyUsage>,
    /// Per-day, per-key, per-model statistics: day → "hash\tmodel" → [requests, input, output, errors].
    stats: BTreeMap<i64, BTreeMap<String, [i64; 4]>>,
}

#[derive(Default)]
struct State {
    data: Data,
    /// (kind, hash, minute) → count, for the RPM and TPM windows (memory only).
    windows: HashMap<(&'static str, String, i64), i64>,
    dirty: bool,
}

pub(crate) struct LocalClientKeys {
    path: PathBuf,
    state: Mutex<State>,
    io: tokio::sync::Mutex<()>,
}

impl LocalClientKeys {
    pub(crate) async fn open(dir: &std::path::Path) -> Result<Self> {
        let path = dir.join(FILE);
        let (data, adopted) = match atomic::read(&path).await? {
            Some(text) => (serde_json::from_str(&text).map_err(|e| StoreError::corrupt(FILE, &e))?, false),
            None => (Self::adopt_reference(dir).await?, true),
        };
        let dirty = adopted && !data.keys.is_empty();
        let me = Self {
            path,
            state: Mutex::new(State { data, dirty, ..State::default() }),
            io: tokio::sync::Mutex::new(()),
        };
        me.write().await?;
        Ok(me)
    }

    /// On first start beside the reference's `api-potluck-keys.json`, its keys (hashed, with
    /// their counts) so its users' keys keep working; the reference's file is left as it is.
    async fn adopt_reference(dir: &std::path::Path) -> Result<Data> {
        let path = dir.join(crate::transfer::potluck::KEYS_FILE);
        let Some(v) = atomic::read_json(&path).await? else { return Ok(Data::default()) };
        let (keys, bad) = crate::transfer::potluck::import_file(&v, time::epoch_ms())
            .map_err(|why| StoreError::Corrupt { location: path.display().to_string(), detail: why })?;
        for (key, why) in bad {
            tracing::warn!(key = %key, reason = %why, "api-potluck-keys.json: entry not adopted");
        }
        let mut data = Data::default();
        for (hash, key, usage) in keys {
            data.keys.insert(hash.clone(), key);
            data.usage.insert(hash, usage);
        }
        if !data.keys.is_empty() {
            tracing::info!(keys = data.keys.len(), "client keys adopted from api-potluck-keys.json (stored hashed)");
        }
        Ok(data)
    }

    pub(crate) async fn write(&self) -> Result<()> {
        let _io = self.io.lock().await;
        let bytes = {
            let mut st = self.state.lock();
            if !st.dirty {
                return Ok(());
            }
            st.dirty = false;
            serde_json::to_vec_pretty(&st.data).map_err(|e| StoreError::Invalid(e.to_string()))?
        };
        atomic::write_private(&self.path, &bytes).await
    }

    pub(crate) async fn put(&self, hash: &str, key: &ClientKey) -> Result<()> {
        {
            let mut st = self.state.lock();
            st.data.keys.insert(hash.to_string(), key.clone());
            st.dirty = true;
        }
        self.write().await
    }

    pub(crate) async fn delete(&self, hash: &str) -> Result<bool> {
        let found = {
            let mut st = self.state.lock();
            st.data.usage.remove(hash);
            st.dirty = true;
            st.data.keys.remove(hash).is_some()
        };
        self.write().await?;
        Ok(found)
    }

    pub(crate) async fn reset_usage(&self, hash: &str) -> Result<()> {
        {
            let mut st = self.state.lock();
            if let Some(u) = st.data.usage.get_mut(hash) {
                u.today_usage = 0;
            }
            st.dirty = true;
        }
        self.write().await
    }

    pub(crate) async fn rekey(&self, old: &str, new: &str) -> Result<bool> {
        let found = {
            let mut st = self.state.lock();
            match st.data.keys.remove(old) {
                Some(k) => {
                    st.data.keys.insert(new.to_string(), k);
                    if let Some(u) = st.data.usage.remove(old) {
                        st.data.usage.insert(new.to_string(), u);
                    }
                    st.dirty = true;
                    true
                }
                None => false,
            }
        };
        self.write().await?;
        Ok(found)
    }

    pub(crate) fn stats(&self, day: i64) -> Vec<crate::client_key::ModelUsage> {
        let st = self.state.lock();
        let Some(rows) = st.data.stats.get(&day) else { return Vec::new() };
        rows.iter()
            .filter_map(|(k, r)| {
                let (hash, model) = k.split_once('\t')?;
                Some(crate::client_key::ModelUsage {
                    hash: hash.into(),
                    model: model.into(),
                    requests: r[0],
                    input_tokens: r[1],
                    output_tokens: r[2],
                    errors: r[3],
                })
            })
            .collect()
    }

    pub(crate) fn get(&self, hash: &str) -> Option<(ClientKey, ClientKeyUsage)> {
        let st = self.state.lock();
        let key = st.data.keys.get(hash)?.clone();
        Some((key, st.data.usage.get(hash).cloned().unwrap_or_default()))
    }

    pub(crate) fn list(&self) -> Vec<(String, ClientKey, ClientKeyUsage)> {
        let st = self.state.lock();
        let mut out: Vec<_> = st
            .data
            .keys
            .iter()
            .map(|(h, k)| (h.clone(), k.clone(), st.data.usage.get(h).cloned().unwrap_or_default()))
            .collect();
        out.sort_by(|a, b| a.1.created_at.cmp(&b.1.created_at).then_with(|| a.1.name.cmp(&b.1.name)));
        out
    }

    /// Admits under the lock; returns whether counters changed (so the caller schedules a write).
    pub(crate) fn admit(&self, hash: &str, model: &str, provider: &str) -> Admission {
        let now = time::epoch_ms();
        let minute = now.div_euclid(60_000);
        let mut st = self.state.lock();
        let Some(key) = st.data.keys.get(hash).cloned() else { return Admission::Unknown };
        let reqs = st.windows.get(&("rpm", hash.to_string(), minute)).copied().unwrap_or(0);
        let toks = st.windows.get(&("tpm", hash.to_string(), minute)).copied().unwrap_or(0);
        let mut usage = st.data.usage.get(hash).cloned().unwrap_or_default();
        let mut out = decide(&key, &mut usage, reqs, toks, model, provider, now);
        if let Admission::Admitted { ticket, .. } = &mut out {
            ticket.hash = hash.to_string();
            st.data.usage.insert(hash.to_string(), usage);
            *st.windows.entry(("rpm", hash.to_string(), minute)).or_insert(0) += 1;
            st.windows.retain(|(_, _, m), _| *m >= minute - 1);
            st.dirty = true;
        }
        out
    }

    pub(crate) fn refund(&self, t: &Ticket) {
        let mut st = self.state.lock();
        if let Some(u) = st.data.usage.get_mut(&t.hash) {
            u.total_usage = (u.total_usage - 1).max(0);
            if t.bonus {
                u.bonus_used = (u.bonus_used - 1).max(0);
            } else if u.day == t.day {
                u.today_usage = (u.today_usage - 1).max(0);
            }
        }
        if let Some(n) = st.windows.get_mut(&("rpm", t.hash.clone(), t.minute)) {
            *n = (*n - 1).max(0);
        }
        st.dirty = true;
    }

    pub(crate) fn replay(&self, hash: &str, day: i64, n: i64) {
        let mut st = self.state.lock();
        let u = st.data.usage.entry(hash.to_string()).or_default();
        u.total_usage += n;
        if u.day == day {
            u.today_usage += n;
        } else if u.day < day {
            u.day = day;
            u.today_usage = n;
        }
        st.dirty = true;
    }

    pub(crate) fn settle(&self, t: &Ticket, s: &Settlement) {
        let mut st = self.state.lock();
        let u = st.data.usage.entry(t.hash.clone()).or_default();
        u.input_tokens += s.input_tokens.max(0);
        u.output_tokens += s.output_tokens.max(0);
        u.errors += i64::from(s.error);
        let tokens = s.input_tokens.max(0) + s.output_tokens.max(0);
        *st.windows.entry(("tpm", t.hash.clone(), t.minute)).or_insert(0) += tokens;
        let row = st.data.stats.entry(t.day).or_default().entry(format!("{}\t{}", t.hash, s.model)).or_default();
        row[0] += 1;
        row[1] += s.input_tokens.max(0);
        row[2] += s.output_tokens.max(0);
        row[3] += i64::from(s.error);
        st.dirty = true;
    }
}
