//! Wiring: both controllers with their watches (owned Jobs, referenced Secrets and ConfigMaps,
//! the ClientConfig of each pool), run until shutdown.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::runtime::controller::Controller;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use poolgate_crds::{ClientConfig, ProviderPool};
use serde::de::DeserializeOwned;

use super::{clientconfig, providerpool};
use crate::Context;

fn api<K>(client: &kube::Client, ns: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + DeserializeOwned
        + Clone
        + std::fmt::Debug,
{
    match ns {
        Some(n) => Api::namespaced(client.clone(), n),
        None => Api::all(client.clone()),
    }
}

/// Secrets a ClientConfig reads (for the Secret watch).
fn cc_secret_names(cc: &ClientConfig) -> Vec<&str> {
    let mut v = vec![cc.spec.redis.url_secret_ref.name.as_str(), cc.spec.api_key_secret_ref.name.as_str()];
    if let Some(p) = &cc.spec.admin_password_secret_ref {
        v.push(p.name.as_str());
    }
    if let Some(r) = cc.spec.migration.as_ref().and_then(|m| m.source.secret_ref.as_ref()) {
        v.push(r.name.as_str());
    }
    v
}

fn ccs_for_secret(ccs: &Store<ClientConfig>, s: &Secret) -> Vec<ObjectRef<ClientConfig>> {
    let (ns, name) = (s.namespace(), s.name_any());
    ccs.state()
        .iter()
        .filter(|cc| cc.namespace() == ns && cc_secret_names(cc).contains(&name.as_str()))
        .map(|cc| ObjectRef::from_obj(cc.as_ref()))
        .collect()
}

fn ccs_for_config_map(ccs: &Store<ClientConfig>, c: &ConfigMap) -> Vec<ObjectRef<ClientConfig>> {
    let (ns, name) = (c.namespace(), c.name_any());
    ccs.state()
        .iter()
        .filter(|cc| {
            cc.namespace() == ns
                && cc
                    .spec
                    .migration
                    .as_ref()
                    .and_then(|m| m.source.config_map_ref.as_ref())
                    .is_some_and(|r| r.name == name)
        })
        .map(|cc| ObjectRef::from_obj(cc.as_ref()))
        .collect()
}

fn pools_for_secret(
    pools: &Store<ProviderPool>,
    ccs: &Store<ClientConfig>,
    s: &Secret,
) -> Vec<ObjectRef<ProviderPool>> {
    let (ns, name) = (s.namespace(), s.name_any());
    pools
        .state()
        .iter()
        .filter(|p| p.namespace() == ns)
        .filter(|p| {
            p.spec.accounts.iter().any(|a| a.credentials_secret_ref.as_ref().is_some_and(|r| r.name == name))
                || ccs.state().iter().any(|cc| {
                    cc.namespace() == ns
                        && cc.name_any() == p.spec.client_config_ref.name
                        && cc.spec.redis.url_secret_ref.name == name
                })
        })
        .map(|p| ObjectRef::from_obj(p.as_ref()))
        .collect()
}

/// The other pools of the same ClientConfig and provider type (a refused duplicate takes the type
/// over as soon as its sibling is deleted, not on its next periodic recheck).
pub fn siblings_of(all: &[Arc<ProviderPool>], p: &ProviderPool) -> Vec<ObjectRef<ProviderPool>> {
    all.iter()
        .filter(|o| {
            o.namespace() == p.namespace()
                && o.uid() != p.uid()
                && o.spec.client_config_ref == p.spec.client_config_ref
                && o.spec.provider_type == p.spec.provider_type
        })
        .map(|o| ObjectRef::from_obj(o.as_ref()))
        .collect()
}

fn pools_for_cc(pools: &Store<ProviderPool>, cc: &ClientConfig) -> Vec<ObjectRef<ProviderPool>> {
    pools
        .state()
        .iter()
        .filter(|p| p.namespace() == cc.namespace() && p.spec.client_config_ref.name == cc.name_any())
        .map(|p| ObjectRef::from_obj(p.as_ref()))
        .collect()
}

/// Runs both controllers until `shutdown` resolves (in-flight reconciles are drained).
pub async fn run(ctx: Arc<Context>, namespace: Option<String>, shutdown: tokio::sync::watch::Receiver<bool>) {
    let client = ctx.client.clone();
    let ns = namespace.as_deref();
    let cfg = watcher::Config::default();
    let ccs = Controller::new(api::<ClientConfig>(&client, ns), cfg.clone());
    let cc_store = ccs.store();
    let (s1, s2) = (cc_store.clone(), cc_store.clone());
    let ccs = ccs
        .owns(api::<Job>(&client, ns), cfg.clone().labels("app.kubernetes.io/managed-by=poolgate-operator"))
        .watches(api::<Secret>(&client, ns), cfg.clone(), move |s| ccs_for_secret(&s1, &s))
        .watches(api::<ConfigMap>(&client, ns), cfg.clone(), move |c| ccs_for_config_map(&s2, &c))
        .graceful_shutdown_on(stopped(shutdown.clone()))
        .run(clientconfig::reconcile, clientconfig::error_policy, ctx.clone())
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!("clientconfig controller: {e}");
            }
        });

    let pools = Controller::new(api::<ProviderPool>(&client, ns), cfg.clone());
    let pool_store = pools.store();
    let (p1, p2, p3, c3) = (pool_store.clone(), pool_store.clone(), pool_store.clone(), cc_store.clone());
    let pools = pools
        .watches(api::<Secret>(&client, ns), cfg.clone(), move |s| pools_for_secret(&p1, &c3, &s))
        .watches(api::<ClientConfig>(&client, ns), cfg.clone(), move |cc| pools_for_cc(&p2, &cc))
        .watches(api::<ProviderPool>(&client, ns), cfg.clone(), move |p| siblings_of(&p3.state(), &p))
        .graceful_shutdown_on(stopped(shutdown))
        .run(providerpool::reconcile, providerpool::error_policy, ctx.clone())
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!("providerpool controller: {e}");
            }
        });
    tracing::info!(namespace = ns.unwrap_or("<all>"), "controllers running");
    futures::join!(ccs, pools);
    tracing::info!("controllers stopped");
}

/// Resolves once `rx` turns true (or its sender is gone).
pub async fn stopped(mut rx: tokio::sync::watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}
