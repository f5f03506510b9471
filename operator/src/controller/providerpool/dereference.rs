//! Dereference (Kubernetes reads only): the ClientConfig, the Secrets the pool and its
//! ClientConfig name, and whether an older pool already manages the same provider type.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Secret;
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use poolgate_crds::{ClientConfig, ProviderPool};

use crate::secrets::{self, SecretSet};

/// Everything the pool refers to.
#[derive(Debug, Clone, Default)]
pub struct PoolRefs {
    pub client_config: Option<ClientConfig>,
    pub secrets: SecretSet,
    /// An older ProviderPool with the same ClientConfig and provider type (it wins).
    pub older_sibling: Option<String>,
}

/// Reads the pool's references.
pub async fn dereference(client: &kube::Client, pool: &ProviderPool) -> Result<PoolRefs, kube::Error> {
    let ns = pool.namespace().unwrap_or_else(|| "default".into());
    let ccs: Api<ClientConfig> = Api::namespaced(client.clone(), &ns);
    let client_config = ccs.get_opt(&pool.spec.client_config_ref.name).await?;
    let mut names = BTreeSet::new();
    if let Some(cc) = &client_config {
        names.insert(cc.spec.redis.url_secret_ref.name.clone());
    }
    names.extend(pool.spec.accounts.iter().filter_map(|a| a.credentials_secret_ref.as_ref().map(|r| r.name.clone())));
    let secrets = secrets::fetch(&Api::<Secret>::namespaced(client.clone(), &ns), &names).await?;
    let pools: Api<ProviderPool> = Api::namespaced(client.clone(), &ns);
    let siblings = pools.list(&ListParams::default()).await?;
    let older_sibling = older_sibling(pool, &siblings.items);
    Ok(PoolRefs { client_config, secrets, older_sibling })
}

/// The oldest other pool (by creation time, then name) with the same ClientConfig and type, if it
/// is older than `pool`.
pub fn older_sibling(pool: &ProviderPool, all: &[ProviderPool]) -> Option<String> {
    let key = |p: &ProviderPool| (p.metadata.creation_timestamp.clone().map(|t| t.0), p.name_any());
    all.iter()
        .filter(|p| {
            p.uid() != pool.uid()
                && p.metadata.deletion_timestamp.is_none()
                && p.spec.client_config_ref == pool.spec.client_config_ref
                && p.spec.provider_type == pool.spec.provider_type
                && key(p) < key(pool)
        })
        .map(|p| p.name_any())
        .min()
}
