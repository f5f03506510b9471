//! poolgate's custom resources: [`ClientConfig`] (one gateway instance: Redis, keys, gateway
//! settings, migration) and [`ProviderPool`] (the accounts of one provider type), group
//! `poolgate.dev`, version `v1alpha1`, namespaced.
//!
//! The CRD YAML under `crds/yaml/` is generated from these types ([`render_all`]) and a test fails
//! when it drifts. Specs never hold a secret inline: they name Secrets by [`SecretKeyRef`].

#![forbid(unsafe_code)]
// `#[kube(printcolumn(..))]` repeats `type_ = ...` per column, which this lint misreads as duplicates.
#![allow(clippy::duplicated_attributes)]

pub mod client_config;
pub mod common;
pub mod provider_pool;

pub use client_config::{
    ClientConfig, ClientConfigSpec, ClientConfigStatus, ClientKeySpec, DeletionPolicy, GatewaySettings,
    MigrationPolicy, MigrationSource, MigrationSpec, MigrationStatus, ModelFallback, PluginSetting, RedisSpec,
};
pub use common::{Condition, ConditionStatus, KeyToPath, LocalObjectRef, SecretKeyRef};
pub use provider_pool::{
    AccountStatus, CredentialsRef, PoolAccount, ProviderPool, ProviderPoolSpec, ProviderPoolStatus, ProviderSettings,
};

/// API group of every poolgate resource.
pub const GROUP: &str = "poolgate.dev";
/// The served and stored version.
pub const VERSION: &str = "v1alpha1";

/// The file name and YAML of every CRD, in a stable order.
///
/// # Errors
/// When a CRD cannot be serialized (never for these types).
pub fn render_all() -> Result<Vec<(&'static str, String)>, serde_norway::Error> {
    use kube::CustomResourceExt;
    Ok(vec![
        ("clientconfigs.yaml", render(&ClientConfig::crd())?),
        ("providerpools.yaml", render(&ProviderPool::crd())?),
    ])
}

fn render(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Result<String, serde_norway::Error> {
    let body = serde_norway::to_string(crd)?;
    Ok(format!("# Generated from the Rust types in crds/src by `poolgate-operator crd`; do not edit.\n---\n{body}"))
}
