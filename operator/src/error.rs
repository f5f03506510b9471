//! Reconcile errors. Each has a stable PascalCase [`Error::category`] used as the event reason and
//! the `reason` label of the failure metric. Messages never hold a secret.

/// What a reconcile can fail with (transient failures; invalid specs are reported in status).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("Redis: {0}")]
    Redis(#[from] poolgate_store::StoreError),
    #[error("Redis unreachable: {0}")]
    RedisUnreachable(String),
    #[error("the resource has no {0}")]
    MissingMetadata(&'static str),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("serialization: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("waiting: {0}")]
    Waiting(String),
    /// Deletion cannot clean up the Redis data; the message says how to let it finish.
    #[error("{0}")]
    CleanupBlocked(String),
}

impl Error {
    /// Stable reason for events and metrics.
    pub fn category(&self) -> &'static str {
        match self {
            Self::Kube(_) => "KubeApiError",
            Self::Redis(_) => "RedisError",
            Self::RedisUnreachable(_) => "RedisUnreachable",
            Self::MissingMetadata(_) => "InvalidObject",
            Self::Finalizer(e) => match e.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e) | kube::runtime::finalizer::Error::CleanupFailed(e) => {
                    e.category()
                }
                _ => "FinalizerError",
            },
            Self::Serialize(_) => "SerializationError",
            Self::Waiting(_) => "Waiting",
            Self::CleanupBlocked(_) => "CleanupBlocked",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
