//! Dereference (Kubernetes reads only): the Secrets, the migration source, the Jobs this
//! ClientConfig owns, and the ProviderPools that refer to it.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::ListParams;
use kube::{Api, ResourceExt};
use poolgate_crds::{ClientConfig, ProviderPool};

use crate::secrets::{self, Data, SecretSet};

/// Everything the ClientConfig refers to.
#[derive(Debug, Clone, Default)]
pub struct CcRefs {
    pub secrets: SecretSet,
    /// The migration source's data: `None` without a source, `Some(None)` when it does not exist.
    pub source: Option<Option<SourceData>>,
    /// Jobs labelled as this ClientConfig's, by name.
    pub jobs: BTreeMap<String, Job>,
    /// Names of ProviderPools that refer to this ClientConfig.
    pub pools: Vec<String>,
}

/// The migration source's content. `Debug` lists keys only.
#[derive(Clone, PartialEq)]
pub struct SourceData(pub Data);

impl std::fmt::Debug for SourceData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SourceData").field(&self.0.keys().collect::<Vec<_>>()).finish()
    }
}

/// Reads the ClientConfig's references.
pub async fn dereference(client: &kube::Client, cc: &ClientConfig) -> Result<CcRefs, kube::Error> {
    let ns = cc.namespace().unwrap_or_else(|| "default".into());
    let mut names =
        BTreeSet::from([cc.spec.redis.url_secret_ref.name.clone(), cc.spec.api_key_secret_ref.name.clone()]);
    if let Some(p) = &cc.spec.admin_password_secret_ref {
        names.insert(p.name.clone());
    }
    names.extend(cc.spec.client_keys.iter().map(|k| k.key_secret_ref.name.clone()));
    let secrets = secrets::fetch(&Api::<Secret>::namespaced(client.clone(), &ns), &names).await?;
    let source = match cc.spec.migration.as_ref().map(|m| &m.source) {
        None => None,
        Some(src) => Some(match (&src.config_map_ref, &src.secret_ref) {
            (Some(r), _) => Api::<ConfigMap>::namespaced(client.clone(), &ns)
                .get_opt(&r.name)
                .await?
                .map(|c| SourceData(secrets::config_map_data(c))),
            (None, Some(r)) => Api::<Secret>::namespaced(client.clone(), &ns)
                .get_opt(&r.name)
                .await?
                .map(|s| SourceData(secrets::secret_data(s))),
            (None, None) => None,
        }),
    };
    let selector = format!("poolgate.dev/client-config={}", cc.name_any());
    let jobs = Api::<Job>::namespaced(client.clone(), &ns)
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .into_iter()
        .map(|j| (j.name_any(), j))
        .collect();
    let pools = Api::<ProviderPool>::namespaced(client.clone(), &ns)
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|p| p.spec.client_config_ref.name == cc.name_any())
        .map(|p| p.name_any())
        .collect();
    Ok(CcRefs { secrets, source, jobs, pools })
}
