//! The two controllers and how they are wired: watches, triggers and error policy.

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
