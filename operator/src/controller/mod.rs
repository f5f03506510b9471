//! The two controllers and how they are wired: watches, triggers and error policy.

pub mod cleanup;
pub mod clientconfig;
pub mod providerpool;
pub mod run;

pub use run::run;

/// Now, RFC 3339 with milliseconds (UTC), as stored in status.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Labels every object the operator creates carries.
pub fn managed_labels(instance: &str, component: &str) -> std::collections::BTreeMap<String, String> {
    [
        ("app.kubernetes.io/name", "poolgate"),
        ("app.kubernetes.io/managed-by", crate::MANAGER),
        ("app.kubernetes.io/instance", instance),
        ("app.kubernetes.io/component", component),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Annotation that lets a deletion finish without cleaning up Redis (the data is left in place):
/// the way out when the cleanup cannot run, e.g. the Redis URL Secret is wrong or Redis is gone.
pub const SKIP_CLEANUP_ANNOTATION: &str = "poolgate.dev/skip-cleanup";
/// Annotation on a ProviderPool that takes over every account of its provider type, including
/// accounts another (deleted) ProviderPool created or a migration imported: accounts not in its
/// spec are then deleted. Without it a pool prunes only the accounts it created.
pub const TAKE_OVER_ANNOTATION: &str = "poolgate.dev/take-over";

/// Whether annotation `key` is set to a true value (`true`, `yes`, `1`, `on`).
pub fn annotation_true(meta: &kube::api::ObjectMeta, key: &str) -> bool {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .and_then(|v| poolgate_store::settings::parse_bool(v))
        .unwrap_or(false)
}

/// The way out of a blocked cleanup, for messages.
pub const CLEANUP_WAY_OUT: &str = "fix it, or let the deletion finish and leave the data in Redis: annotate the \
     resource poolgate.dev/skip-cleanup=true (or set the ClientConfig's deletionPolicy to Retain)";

/// Runs `reconcile` under the finalizer `name`. Before the finalizer is added the object is read
/// afresh (the cached copy may predate the finalizer another reconcile just added), and a lost race
/// adding it (the JSON patch's `test` failing: 409/422) is retried quietly instead of surfacing as
/// a `FinalizerError` warning.
pub async fn run_finalizer<K, F, Fut>(
    api: &kube::Api<K>,
    name: &str,
    obj: std::sync::Arc<K>,
    reconcile: F,
) -> crate::error::Result<kube::runtime::controller::Action>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    F: FnOnce(kube::runtime::finalizer::Event<K>) -> Fut,
    Fut: std::future::Future<Output = crate::error::Result<kube::runtime::controller::Action>>,
{
    use kube::runtime::controller::Action;
    use kube::ResourceExt;
    let mut obj = obj;
    if obj.meta().deletion_timestamp.is_none() && !obj.finalizers().iter().any(|f| f == name) {
        match api.get_opt(&obj.name_any()).await? {
            Some(fresh) => obj = std::sync::Arc::new(fresh),
            None => return Ok(Action::await_change()),
        }
    }
    match kube::runtime::finalizer::finalizer(api, name, obj, reconcile).await {
        Err(kube::runtime::finalizer::Error::AddFinalizer(kube::Error::Api(s))) if s.code == 409 || s.code == 422 => {
            tracing::debug!("the object changed while the finalizer was added; retrying");
            Ok(Action::requeue(std::time::Duration::from_secs(1)))
        }
        r => r.map_err(|e| crate::error::Error::Finalizer(Box::new(e))),
    }
}
