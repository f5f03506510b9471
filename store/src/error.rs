//! Errors of the storage layer. Every variant names what failed; none carries a secret.

use std::time::Duration;

/// What a storage operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The addressed item does not exist (never silently upserted).
    #[error("{what} not found")]
    NotFound { what: String },
    /// An add found the item already present.
    #[error("{what} already exists")]
    AlreadyExists { what: String },
    /// Stored data could not be parsed; the data is left as it is.
    #[error("malformed JSON in {location}: {detail}")]
    Corrupt { location: String, detail: String },
    /// The caller passed something the store cannot accept.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// Redis is unreachable and the operation cannot be served from cache or queued.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The degraded-mode write queue is full; the write was not accepted.
    #[error("write queue full ({capacity} entries); write rejected")]
    QueueFull { capacity: usize },
    /// An operation did not finish in time.
    #[error("storage operation timed out after {0:?}")]
    Timeout(Duration),
    /// A Redis error that is not a connectivity problem (message has no credentials).
    #[error("redis error: {0}")]
    Redis(String),
    /// A filesystem error on a named path.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    pub(crate) fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound { what: what.into() }
    }

    pub(crate) fn corrupt(location: impl Into<String>, err: &serde_json::Error) -> Self {
        Self::Corrupt {
            location: location.into(),
            detail: format!("{err} (line {}, column {})", err.line(), err.column()),
        }
    }

    pub(crate) fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Self::Io { path: path.as_ref().display().to_string(), source }
    }

    /// True when the failure means "Redis cannot be reached right now".
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Timeout(_))
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
