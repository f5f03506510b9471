//! Health checks: every interval, each replica looks for unhealthy accounts (not disabled, not
//! cooling down after a 429) and checks each one it wins a lease for — the lease, held in the
//! store for one interval, makes sure an account is checked by one replica at a time. A check is
//! a real one-token generation with the account's `checkModelName` (or the provider's default);
//! passing brings the account back.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use poolgate_store::{Account, Storage};
use serde_json::json;

use crate::convert::{convert_request, Backend, Protocol};
use crate::providers::{Provider, ProviderCtx, Registry, UpstreamCall};

/// Time allowed for one check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(15);

/// Builds the provider context for calls about one account of a pool.
pub type CtxFor = Arc<dyn Fn(&str, &Account) -> ProviderCtx + Send + Sync>;

/// What the checker needs (a slice of the app state).
pub struct Checker {
    pub store: Arc<dyn Storage>,
    pub providers: Registry,
    /// The provider context for calls about one account (its outbound proxy, if any).
    pub ctx: CtxFor,
    pub replica_id: String,
    pub selector: Arc<super::Selector>,
}

fn cooling_down(a: &Account, now_ms: i64) -> bool {
    a.scheduled_recovery_time()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .is_some_and(|t| t.timestamp_millis() > now_ms)
}

impl Checker {
    /// One round over every pool; returns how many accounts this replica checked.
    pub async fn round(&self, interval: Duration) -> usize {
        let types = match self.store.list_pool_types().await {
            Ok(t) => t,
            Err(e) => {
                tracing::debug!(error = %e, "health check: pools unavailable");
                return 0;
            }
        };
        let now = poolgate_store::time::epoch_ms();
        let mut checks = Vec::new();
        for t in types {
            let Some(provider) = self.providers.get(&t).cloned() else { continue };
            for a in self.store.get_pool(&t).await.unwrap_or_default() {
                if a.is_healthy() || a.is_disabled() || cooling_down(&a, now) {
                    continue;
                }
                let lease = format!("health:{t}:{}", a.uuid());
                match self.store.try_lease(&lease, &self.replica_id, interval).await {
                    Ok(true) => checks.push(self.check(t.clone(), provider.clone(), Account::clone(&a))),
                    Ok(false) => {}
                    Err(e) => tracing::debug!(error = %e, "health check lease unavailable"),
                }
            }
        }
        let n = checks.len();
        futures::future::join_all(checks).await;
        n
    }

    async fn check(&self, pool: String, provider: Arc<dyn Provider>, account: Account) {
        let _ = self.check_now(&pool, provider, &account).await;
    }

    /// Checks one account now (admin "health check") and stores the result; `Err` says why
    /// the check failed.
    pub async fn check_now(&self, pool: &str, provider: Arc<dyn Provider>, account: &Account) -> Result<(), String> {
        let model = account.check_model().unwrap_or(provider.default_check_model()).to_string();
        let passed = self.probe(provider.as_ref(), pool, account, &model).await;
        let uuid = account.uuid();
        match &passed {
            Ok(()) => tracing::info!(%pool, %uuid, %model, "health check passed: account recovered"),
            Err(e) => tracing::info!(%pool, %uuid, %model, error = %e, "health check failed: account stays unhealthy"),
        }
        if passed.is_ok() {
            self.selector.unbench(pool, uuid);
        }
        if let Err(e) = self.store.set_health(pool, uuid, passed.is_ok(), Some(&model)).await {
            tracing::warn!(%pool, %uuid, error = %e, "could not store a health check result");
        }
        passed
    }

    async fn probe(&self, provider: &dyn Provider, pool: &str, account: &Account, model: &str) -> Result<(), String> {
        let hi = json!({"model": model, "max_tokens": 1, "messages": [{"role": "user", "content": "Hi"}]});
        let (body, path) = match provider.backend() {
            Backend::PassThrough => (hi, "/v1/chat/completions"),
            Backend::Protocol(p) => {
                (convert_request(Protocol::OpenAiChat, p, &hi).map_err(|e| e.to_string())?.body, "")
            }
        };
        let headers = HeaderMap::new();
        let call = UpstreamCall {
            body: Bytes::from(body.to_string()),
            model,
            stream: false,
            path_and_query: path,
            client_headers: &headers,
            pool,
            images: None,
        };
        let ctx = (self.ctx)(pool, account);
        let request = provider.request(&ctx, account, &call).await.map_err(|e| e.to_string())?;
        match tokio::time::timeout(CHECK_TIMEOUT, request.builder.send()).await {
            Err(_) => Err("timed out".into()),
            Ok(Err(e)) => Err(crate::server::relay::error_chain(&e.without_url())),
            Ok(Ok(r)) if r.status().is_success() => Ok(()),
            Ok(Ok(r)) => Err(format!("HTTP {}", r.status().as_u16())),
        }
    }
}

/// Runs rounds forever, re-reading the interval and switch from the live config.
pub async fn run(checker: Checker, config: impl Fn() -> (bool, Duration) + Send) {
    loop {
        let (enabled, interval) = config();
        tokio::time::sleep(interval).await;
        if enabled {
            checker.round(interval).await;
        }
    }
}
