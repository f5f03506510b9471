//! Moving data between the reference's legacy files and Redis: `migrate` (files → Redis, with
//! optional field-by-field `verify`), `export` (Redis → files) and `init` (seed an empty Redis).
//! Pure data movement over [`crate::RedisStore`]'s bulk operations; the CLI wires it up.

pub mod diff;
pub mod export;
pub mod init;
pub mod migrate;
pub mod potluck;
pub mod report;
pub mod source;
pub mod verify;

pub use export::{export, ExportOptions};
pub use init::{init, InitOptions};
pub use migrate::{migrate, MigrateOptions};
pub use report::{ExportSummary, InitSummary, ItemError, MigrateSummary};
pub use source::Source;

/// Metadata schema version written to `{p}meta`, as the reference.
pub const META_VERSION: &str = "1.0";

/// A failure that stops a whole command (exit code 1); per-item failures are [`ItemError`]s.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error(transparent)]
    Store(#[from] crate::StoreError),
    #[error("{0}")]
    Invalid(String),
}

/// Progress of a long phase, reported by the library and drawn by the CLI.
pub trait Progress: Send + Sync {
    /// A phase of `total` items begins.
    fn start(&self, phase: &str, total: usize);
    /// `n` more items of the current phase are done.
    fn advance(&self, n: usize);
    /// The current phase is over.
    fn finish(&self);
}

/// Progress that draws nothing (library callers, tests).
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: &str, _: usize) {}
    fn advance(&self, _: usize) {}
    fn finish(&self) {}
}

/// Session keys are SHA-256 of the bearer token (the reference stored the raw token).
pub fn session_hash(token: &str) -> String {
    crate::model::Session::token_hash(token)
}
