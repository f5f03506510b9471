#![recursion_limit = "256"]
//! poolgate operator: reconciles `ClientConfig` and `ProviderPool` resources into the Redis the
//! proxies share, runs init and migration as Jobs, and reports runtime state in status.
//!
//! Every reconcile follows one pipeline: **dereference** (read Kubernetes inputs) → **validate**
//! (pure) → **build** (pure: the desired Redis writes and Jobs) → **apply** (Redis and Jobs) →
//! **status** (pure computation, patched only when it changed, ignoring timestamps).

#![forbid(unsafe_code)]

pub mod admin;
pub mod backoff;
pub mod conditions;
pub mod context;
pub mod controller;
pub mod error;
pub mod events;
pub mod hash;
pub mod jobs;
pub mod leader;
pub mod metrics;
pub mod redact;
pub mod redis;
pub mod secrets;

pub use context::{Context, OperatorConfig};
pub use error::Error;

/// Field manager and event reporter name.
pub const MANAGER: &str = "poolgate-operator";
