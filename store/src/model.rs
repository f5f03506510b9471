//! Typed values the storage API takes and returns.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Result of a write: applied (with its result) or accepted into the degraded-mode queue.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied<T = ()> {
    Done(T),
    /// Redis is unreachable; the write is queued and will be replayed exactly once.
    Queued,
}

impl<T> Applied<T> {
    pub fn done(self) -> Option<T> {
        match self {
            Self::Done(t) => Some(t),
            Self::Queued => None,
        }
    }
    pub fn is_queued(&self) -> bool {
        matches!(self, Self::Queued)
    }
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Applied<U> {
        match self {
            Self::Done(t) => Applied::Done(f(t)),
            Self::Queued => Applied::Queued,
        }
    }
}

/// Outcome of a compare-and-set on a token.
#[derive(Debug, Clone, PartialEq)]
pub enum CasOutcome {
    /// The new token is stored.
    Updated,
    /// Someone else refreshed first; their token is returned so the caller can use it.
    Conflict { current: Value },
}

/// A web UI session (`token-store.json` shape). Stored under SHA-256 of the bearer token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub username: String,
    /// Epoch ms.
    pub login_time: i64,
    /// Epoch ms.
    pub expiry_time: i64,
}

impl Session {
    /// What sessions are stored under: SHA-256 of the bearer token, hex (never the raw token).
    pub fn token_hash(token: &str) -> String {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(token.as_bytes()))
    }
}

/// The spec-owned part of one account (credentials, names, settings), as the operator applies it.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountSpec {
    pub uuid: String,
    /// Spec-owned fields to set; runtime fields are rejected.
    pub fields: Map<String, Value>,
    /// Spec-owned fields to remove (they left the spec).
    pub remove: Vec<String>,
}

/// What [`crate::Storage::apply_spec`] changed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApplyReport {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub removed: Vec<String>,
}

/// Which backend serves the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    Redis,
    File,
}

/// Health and counters for `/api/redis/status` and `/api/storage/status`. Holds no secret.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageStatus {
    pub kind: StorageKind,
    pub connected: bool,
    pub degraded: bool,
    /// Epoch ms when the current connected/degraded state began.
    pub since_ms: i64,
    /// Redis URL with any password replaced by `***`; `None` for files.
    pub url: Option<String>,
    pub key_prefix: Option<String>,
    pub reconnect_count: u64,
    pub total_commands: u64,
    pub failed_commands: u64,
    pub queued_writes: usize,
    pub queue_capacity: usize,
    pub queue_overflows: u64,
    pub last_error: Option<String>,
    pub ping_latency_ms: Option<f64>,
}
