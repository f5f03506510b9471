//! State shared by every reconcile: the client, one event recorder, metrics, Redis connections
//! and the operator's configuration.

use std::sync::Arc;
use std::time::Duration;

use crate::backoff::FailureCounter;
use kube::runtime::events::{Recorder, Reporter};

use crate::metrics::Metrics;
use crate::redis::RedisConnections;

/// Settings of the operator process (flags / environment).
#[derive(Debug, Clone)]
pub struct OperatorConfig {
    /// Image with the `poolgate` binary, run by the init and migration Jobs.
    pub job_image: String,
    /// Service account for Job pods (none: the namespace default, with no token mounted).
    pub job_service_account: Option<String>,
    /// How often pool status is refreshed from Redis.
    pub status_interval: Duration,
    /// Where the migration source is mounted in the migration Job's pod.
    pub migration_mount_path: String,
    pub job_backoff_limit: i32,
    pub job_active_deadline_seconds: i64,
    pub job_ttl_seconds_after_finished: i32,
}

impl Default for OperatorConfig {
    fn default() -> Self {
        Self {
            job_image: "ghcr.io/poolgate/poolgate:latest".into(),
            job_service_account: None,
            status_interval: Duration::from_secs(30),
            migration_mount_path: "/var/run/poolgate/migration".into(),
            job_backoff_limit: 3,
            job_active_deadline_seconds: 600,
            job_ttl_seconds_after_finished: 86_400,
        }
    }
}

/// Shared by all reconciles.
pub struct Context {
    pub client: kube::Client,
    pub recorder: Recorder,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub redis: RedisConnections,
    pub config: OperatorConfig,
    /// Consecutive failures per object UID, for exponential backoff (reset on success).
    pub failures: FailureCounter,
}

impl Context {
    pub fn new(client: kube::Client, metrics: Arc<Metrics>, config: OperatorConfig, instance: Option<String>) -> Self {
        let recorder = Recorder::new(client.clone(), Reporter { controller: crate::MANAGER.into(), instance });
        Self {
            client,
            recorder,
            metrics,
            redis: RedisConnections::default(),
            config,
            failures: FailureCounter::default(),
        }
    }
}
