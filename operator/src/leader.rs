//! Leader election on a `coordination.k8s.io/v1` Lease, so that two operator replicas never both
//! write. Acquire: take the Lease when it is free, expired or ours, by an update that carries the
//! observed `resourceVersion` (a concurrent taker gets 409 and loses). Hold: renew every
//! `renew_every`; a leader that has not renewed for `renew_deadline` (shorter than the lease
//! duration others wait out) steps down at once, before anyone else may take over.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::PostParams;
use kube::Api;
use serde_json::json;
use tokio::sync::watch;

/// Lease settings.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    pub duration: Duration,
    pub renew_every: Duration,
    pub renew_deadline: Duration,
}

impl LeaseConfig {
    pub fn new(name: &str, namespace: &str, identity: &str) -> Self {
        Self {
            name: name.into(),
            namespace: namespace.into(),
            identity: identity.into(),
            duration: Duration::from_secs(15),
            renew_every: Duration::from_secs(5),
            renew_deadline: Duration::from_secs(10),
        }
    }
}

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

fn micro(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn field_time(lease: &Lease, field: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let v = serde_json::to_value(lease).ok()?;
    let s = v.get("spec")?.get(field)?.as_str()?.to_string();
    chrono::DateTime::parse_from_rfc3339(&s).ok().map(|t| t.with_timezone(&chrono::Utc))
}

/// Whether `lease` may be taken by `me` at `at`.
pub fn is_free_for(lease: &Lease, me: &str, at: chrono::DateTime<chrono::Utc>) -> bool {
    let spec = lease.spec.clone().unwrap_or_default();
    match spec.holder_identity.as_deref() {
        None | Some("") => true,
        Some(h) if h == me => true,
        Some(_) => {
            let dur = chrono::Duration::seconds(i64::from(spec.lease_duration_seconds.unwrap_or(15)));
            field_time(lease, "renewTime").is_none_or(|t| t + dur < at)
        }
    }
}

/// One attempt to acquire or renew; `Ok(true)` while we hold the lease.
pub async fn try_acquire(api: &Api<Lease>, cfg: &LeaseConfig) -> Result<bool, kube::Error> {
    let at = now();
    let secs = cfg.duration.as_secs().max(1) as i64;
    match api.get_opt(&cfg.name).await? {
        None => {
            let lease: Lease = serde_json::from_value(json!({
                "metadata": {"name": cfg.name, "namespace": cfg.namespace},
                "spec": {"holderIdentity": cfg.identity, "leaseDurationSeconds": secs,
                         "acquireTime": micro(at), "renewTime": micro(at), "leaseTransitions": 0}
            }))
            .map_err(kube::Error::SerdeError)?;
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
        Some(current) => {
            if !is_free_for(&current, &cfg.identity, at) {
                return Ok(false);
            }
            let spec = current.spec.clone().unwrap_or_default();
            let ours = spec.holder_identity.as_deref() == Some(cfg.identity.as_str());
            let acquire = if ours { field_time(&current, "acquireTime").unwrap_or(at) } else { at };
            let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!ours);
            let lease: Lease = serde_json::from_value(json!({
                "metadata": {"name": cfg.name, "namespace": cfg.namespace,
                             "resourceVersion": current.metadata.resource_version},
                "spec": {"holderIdentity": cfg.identity, "leaseDurationSeconds": secs,
                         "acquireTime": micro(acquire), "renewTime": micro(at), "leaseTransitions": transitions}
            }))
            .map_err(kube::Error::SerdeError)?;
            match api.replace(&cfg.name, &PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
    }
}

/// Gives the lease up (if still ours) so a standby takes over without waiting for expiry.
pub async fn release(api: &Api<Lease>, cfg: &LeaseConfig) -> Result<(), kube::Error> {
    let Some(current) = api.get_opt(&cfg.name).await? else { return Ok(()) };
    let spec = current.spec.clone().unwrap_or_default();
    if spec.holder_identity.as_deref() != Some(cfg.identity.as_str()) {
        return Ok(());
    }
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": cfg.name, "namespace": cfg.namespace, "resourceVersion": current.metadata.resource_version},
        "spec": {"leaseDurationSeconds": spec.lease_duration_seconds, "leaseTransitions": spec.lease_transitions}
    }))
    .map_err(kube::Error::SerdeError)?;
    match api.replace(&cfg.name, &PostParams::default(), &lease).await {
        Ok(_) | Err(kube::Error::Api(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Waits until the lease is ours, or `stop` turns true (`false` then).
pub async fn acquire(api: &Api<Lease>, cfg: &LeaseConfig, stop: &mut watch::Receiver<bool>) -> bool {
    let mut logged = false;
    loop {
        match try_acquire(api, cfg).await {
            Ok(true) => {
                tracing::info!(lease = %cfg.name, identity = %cfg.identity, "became leader");
                return true;
            }
            Ok(false) if !logged => {
                tracing::info!(lease = %cfg.name, "another replica leads; standing by");
                logged = true;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(lease = %cfg.name, "lease: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(cfg.renew_every.min(Duration::from_secs(2))) => {}
            _ = stop.changed() => return false,
        }
        if *stop.borrow() {
            return false;
        }
    }
}

/// Renews until the lease is lost (returns then), or `stop` turns true.
pub async fn hold(api: &Api<Lease>, cfg: &LeaseConfig, stop: &mut watch::Receiver<bool>) -> Held {
    let mut last_ok = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(cfg.renew_every) => {}
            _ = stop.changed() => return Held::Stopped,
        }
        if *stop.borrow() {
            return Held::Stopped;
        }
        match tokio::time::timeout(cfg.renew_deadline, try_acquire(api, cfg)).await {
            Ok(Ok(true)) => last_ok = tokio::time::Instant::now(),
            Ok(Ok(false)) => return Held::Lost("another replica holds the lease".into()),
            Ok(Err(e)) => tracing::warn!("lease renewal failed: {e}"),
            Err(_) => tracing::warn!("lease renewal timed out"),
        }
        if last_ok.elapsed() >= cfg.renew_deadline {
            return Held::Lost(format!("lease not renewed for {:?}", cfg.renew_deadline));
        }
    }
}

/// Why [`hold`] returned.
#[derive(Debug, PartialEq, Eq)]
pub enum Held {
    Stopped,
    Lost(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: Option<&str>, renewed: chrono::DateTime<chrono::Utc>) -> Lease {
        serde_json::from_value(json!({
            "metadata": {"name": "l"},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": micro(renewed)}
        }))
        .expect("lease")
    }

    #[test]
    fn a_live_lease_of_another_holder_is_not_free() {
        let t = now();
        assert!(!is_free_for(&lease(Some("a"), t), "b", t + chrono::Duration::seconds(10)));
        assert!(is_free_for(&lease(Some("a"), t), "b", t + chrono::Duration::seconds(16)));
        assert!(is_free_for(&lease(Some("a"), t), "a", t));
        assert!(is_free_for(&lease(None, t), "b", t));
    }
}
