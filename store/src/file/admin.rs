//! File backend side of [`crate::admin`]: one process, so the login guard and the replica list
//! live in memory, and the change feed is fed by this process's own writes.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::broadcast;

use crate::admin::{Change, LoginFailure, LoginGate, LoginPolicy, LoginRecord, ReplicaBeat, CHANGE_FEED_CAPACITY};
use crate::time::epoch_ms;

pub(crate) struct LocalAdmin {
    logins: Mutex<HashMap<String, LoginRecord>>,
    replicas: Mutex<HashMap<String, (ReplicaBeat, Duration)>>,
    changes: broadcast::Sender<Change>,
}

impl Default for LocalAdmin {
    fn default() -> Self {
        Self {
            logins: Mutex::default(),
            replicas: Mutex::default(),
            changes: broadcast::channel(CHANGE_FEED_CAPACITY).0,
        }
    }
}

impl LocalAdmin {
    pub fn login_attempt(&self, client: &str, policy: &LoginPolicy) -> LoginGate {
        self.logins.lock().entry(client.to_string()).or_default().attempt(policy, epoch_ms())
    }

    pub fn login_failed(&self, client: &str, policy: &LoginPolicy) -> LoginFailure {
        self.logins.lock().entry(client.to_string()).or_default().fail(policy, epoch_ms())
    }

    pub fn login_succeeded(&self, client: &str) {
        self.logins.lock().remove(client);
    }

    pub fn heartbeat(&self, beat: &ReplicaBeat, ttl: Duration) {
        let mut beat = beat.clone();
        beat.seen_at = epoch_ms();
        self.replicas.lock().insert(beat.id.clone(), (beat, ttl));
    }

    pub fn list_replicas(&self) -> Vec<ReplicaBeat> {
        let now = epoch_ms();
        let mut all = self.replicas.lock();
        all.retain(|_, (b, ttl)| now - b.seen_at <= ttl.as_millis() as i64);
        let mut out: Vec<ReplicaBeat> = all.values().map(|(b, _)| b.clone()).collect();
        out.sort_by(|a, b| a.started_at.cmp(&b.started_at).then_with(|| a.id.cmp(&b.id)));
        out
    }

    pub fn announce(&self, change: Change) {
        let _ = self.changes.send(change);
    }

    pub fn watch(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }
}
