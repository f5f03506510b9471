//! Against a real cluster (the current kube context) where `scripts/e2e-kind.sh` installed
//! `manifests/` (CRDs, dev overlay) and `manifests/examples`. Ignored by default.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams};
use poolgate_crds::{ClientConfig, ProviderPool};
use serde_json::json;

fn ready(conds: &[poolgate_crds::Condition]) -> bool {
    conds.iter().any(|c| c.type_ == "Ready" && c.status == "True")
}

#[tokio::test]
#[ignore = "needs a cluster prepared by scripts/e2e-kind.sh (kind or k3d)"]
async fn examples_reconcile_on_a_real_cluster() {
    let ns = std::env::var("POOLGATE_E2E_NAMESPACE").unwrap_or_else(|_| "poolgate".into());
    let client = kube::Client::try_default().await.expect("kube client from the current context");
    let ccs: Api<ClientConfig> = Api::namespaced(client.clone(), &ns);
    let pools: Api<ProviderPool> = Api::namespaced(client.clone(), &ns);

    let cc = ccs.get("gateway").await.expect("ClientConfig gateway");
    let st = cc.status.expect("status");
    assert!(ready(&st.conditions), "{:?}", st.conditions);
    assert!(st.conditions.iter().any(|c| c.type_ == "Initialized" && c.status == "True"));

    for name in ["openai", "gemini"] {
        let p = pools.get(name).await.expect("pool");
        let st = p.status.expect("status");
        assert!(ready(&st.conditions), "{name}: {:?}", st.conditions);
        assert_eq!(st.total_accounts, 1);
        assert!(st.accounts.iter().all(|a| a.present));
    }
    let gemini = pools.get("gemini").await.expect("pool").status.expect("status");
    assert!(gemini.accounts[0].seeded_token_hash.is_some(), "the OAuth token was seeded");

    // A spec change reaches Redis and comes back in status.
    let patch = json!({"spec": {"accounts": [{"name": "primary", "disabled": true,
        "settings": {"baseUrl": "https://api.openai.com/v1"}, "credentialsSecretRef": {"name": "openai-primary"}}]}});
    pools.patch("openai", &PatchParams::default(), &Patch::Merge(&patch)).await.expect("patch");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let st = pools.get("openai").await.expect("pool").status.unwrap_or_default();
        if st.accounts.first().is_some_and(|a| a.disabled) {
            break;
        }
        assert!(Instant::now() < deadline, "disabled flag never showed up in status");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    let lease = Api::<Lease>::namespaced(client, &ns).get("poolgate-operator").await.expect("lease");
    assert!(lease.spec.and_then(|s| s.holder_identity).is_some(), "one operator replica leads");
}
