//! poolgate's storage layer, shared by the proxy, the operator and the CLI.
//!
//! One API ([`Storage`]) with two backends: [`RedisStore`] (many processes, the reference's key
//! schema, every change one atomic server-side script) and [`FileStore`] (one process on the
//! reference's files, the single-machine default). See `docs/architecture.md`.

pub mod account;
pub mod admin;
pub mod client_key;
pub mod coord;
pub mod error;
pub mod file;
pub mod keys;
pub mod model;
pub mod password;
pub mod provider;
pub mod redis;
pub mod settings;
pub mod storage;
pub mod teardown;
pub mod time;
pub mod topology;
pub mod transfer;

use std::path::PathBuf;
use std::sync::Arc;

pub use account::{Account, AccountOps, ErrorEvent};
pub use admin::{Change, LoginFailure, LoginGate, LoginPolicy, ReplicaBeat};
pub use client_key::{Admission, ClientKey, ClientKeyUsage, ModelUsage, Settlement, Ticket};
pub use coord::{SlotGrant, SlotRequest};
pub use error::{Result, StoreError};
pub use file::FileStore;
pub use keys::Keys;
pub use model::{AccountSpec, Applied, ApplyReport, CasOutcome, Session, StorageKind, StorageStatus};
pub use redis::RedisStore;
pub use settings::RedisSettings;
pub use storage::Storage;

/// Opens the store the settings ask for: Redis when enabled, else files under `config_dir`.
pub async fn open(settings: &RedisSettings, config_dir: impl Into<PathBuf>) -> Result<Arc<dyn Storage>> {
    if settings.enabled {
        Ok(Arc::new(RedisStore::open(settings.clone()).await?))
    } else {
        let dir = config_dir.into();
        tracing::info!(dir = %dir.display(), "storage: files (no Redis configured)");
        Ok(Arc::new(FileStore::open(dir).await?))
    }
}
