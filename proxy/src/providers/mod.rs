//! Provider abstraction: how one call reaches one account of one provider type.
//!
//! A [`Provider`] knows its upstream's protocol ([`Backend`]), where an account's base URL and
//! credentials live, and how to build the HTTP request for a call. Everything else — choosing
//! the account, conversion, retries, failover, accounting — is the same for every provider and
//! lives in the dispatcher. This mirrors TensorZero's gateway, where each provider implements
//! one trait and the gateway owns routing and fallbacks.
//!
//! OAuth providers plug in by implementing [`Provider::request`] with a token read through
//! [`ProviderCtx::store`] (`get_token`, `cas_token`, the refresh lock), and by overriding
//! [`Provider::classify`] to ask for a token refresh on 401 instead of benching the account.

mod api_key;
pub mod code_assist;
pub mod codex;
mod forward;
mod google;
pub mod iflow;
pub mod kiro;
pub mod kiro_auth;
pub mod outbound;
pub mod qwen;
pub mod settings;
mod sse_rewrite;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http::HeaderMap;
use poolgate_store::{Account, Storage};
use serde_json::Value;

use crate::convert::{backend_for_provider, Backend};

pub use api_key::{ApiKeyProvider, ApiKeyShape};
pub use forward::ForwardProvider;
pub use settings::Settings;

use crate::oauth::{TokenEngine, TokenError, TokenGrant, TokenRequest};
use crate::server::config::GatewayConfig;

/// What a provider may use to build requests.
#[derive(Clone)]
pub struct ProviderCtx {
    pub http: reqwest::Client,
    pub store: Arc<dyn Storage>,
    pub tokens: Arc<TokenEngine>,
    pub config: Arc<GatewayConfig>,
}

impl ProviderCtx {
    pub fn settings(&self) -> Settings<'_> {
        Settings::new(&self.config.raw)
    }

    /// A valid OAuth token for `account` of `pool` (refreshed when needed, fleet-wide single
    /// flight); with `refused`, one other than the token the upstream just rejected.
    pub async fn token(
        &self,
        pool: &str,
        account: &Account,
        grant: &dyn TokenGrant,
        refused: Option<&str>,
    ) -> Result<Arc<crate::oauth::Token>, ProviderError> {
        let settings = self.settings();
        let req = TokenRequest { pool, account, grant, settings: &settings, http: Some(&self.http) };
        let t = match refused {
            None => self.tokens.access(&req).await,
            Some(r) => self.tokens.after_rejection(&req, r).await,
        };
        t.map_err(ProviderError::Token)
    }
}

/// A request ready to send, with what the answer needs.
pub struct Prepared {
    pub builder: reqwest::RequestBuilder,
    /// The OAuth credential it carries (so a 401 refreshes exactly that one).
    pub access: Option<String>,
    /// Turns the upstream's answer into the backend protocol, for upstreams that do not speak
    /// one of the four protocols as is (Code Assist envelopes, Codex's SSE-only answers, Kiro).
    pub adapter: Option<Box<dyn ResponseAdapter>>,
}

impl From<reqwest::RequestBuilder> for Prepared {
    fn from(builder: reqwest::RequestBuilder) -> Self {
        Self { builder, access: None, adapter: None }
    }
}

/// An upstream answer that could not be adapted.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct AdaptError {
    /// HTTP status to report (and to account the failure by).
    pub status: u16,
    pub message: String,
}

/// Rewrites one upstream answer into the provider's backend protocol.
pub trait ResponseAdapter: Send {
    /// One chunk of a streamed answer → backend-protocol SSE bytes (possibly empty).
    fn push(&mut self, chunk: &[u8]) -> Result<Bytes, AdaptError>;
    /// The stream ended.
    fn finish(&mut self) -> Result<Bytes, AdaptError>;
    /// A whole unary answer → a backend-protocol JSON body.
    fn unary(&mut self, body: &[u8]) -> Result<Bytes, AdaptError>;
}

/// One upstream call, already converted to the provider's protocol.
pub struct UpstreamCall<'a> {
    /// Serialized body in the backend protocol (the client's raw body for pass-through).
    pub body: Bytes,
    /// Upstream model name.
    pub model: &'a str,
    pub stream: bool,
    /// The client's path below any `/{providerType}` prefix, with its query (pass-through).
    pub path_and_query: &'a str,
    /// The client's request headers (pass-through providers forward some of them).
    pub client_headers: &'a HeaderMap,
    /// Pool type (the key of the account's token).
    pub pool: &'a str,
    /// An Images API call for a provider with an images API ([`Provider::images_api`]).
    pub images: Option<&'a crate::convert::images::ImageCall>,
}

/// A provider could not build a request for an account.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The account lacks a credential; it is benched like an account the upstream rejected.
    #[error("account has no {0}")]
    MissingCredential(&'static str),
    #[error("account {field} is not a valid URL: {detail}")]
    BadUrl { field: &'static str, detail: String },
    #[error("{0}")]
    Token(TokenError),
    #[error("{0}")]
    Upstream(String),
}

/// How an upstream failure affects the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// 401/403: credentials rejected; unhealthy at once.
    Auth,
    /// 429: cool down until the `Retry-After` time.
    RateLimited,
    /// 5xx, 408: counts toward `MAX_ERROR_COUNT`; retried on another account.
    Server,
    /// Other 4xx: the request's fault; answered to the client, never counted.
    Client,
    /// The OAuth access token was refused: refresh it and retry once, then switch.
    Expired,
    /// The account's monthly quota is used up (Kiro 402): unhealthy until the first of next
    /// month, 00:00 UTC.
    QuotaUntilNextMonth,
}

/// One provider type (`openai-custom`, …); `<type>-<suffix>` pools share their base type's.
#[async_trait]
pub trait Provider: Send + Sync {
    /// Base provider type.
    fn base_type(&self) -> &'static str;
    /// Upstream protocol.
    fn backend(&self) -> Backend;
    /// Model used to health-check accounts without `checkModelName`.
    fn default_check_model(&self) -> &'static str;
    /// Whether the upstream has OpenAI's images API; other providers get Images API calls as
    /// chat requests.
    fn images_api(&self) -> bool {
        false
    }
    /// Builds the HTTP request for `call` on `account`.
    async fn request(
        &self,
        ctx: &ProviderCtx,
        account: &Account,
        call: &UpstreamCall<'_>,
    ) -> Result<Prepared, ProviderError>;
    /// Builds `GET …/models` for an account, when the upstream has one (`data[].id` answers).
    fn list_models(&self, _ctx: &ProviderCtx, _account: &Account) -> Option<reqwest::RequestBuilder> {
        None
    }
    /// The models this provider type serves, as the reference lists them (OAuth types have no
    /// model-list endpoint); empty when the upstream is asked instead.
    fn static_models(&self) -> &'static [&'static str] {
        &[]
    }
    /// Whether [`Provider::usage`] queries anything.
    fn has_usage(&self) -> bool {
        false
    }
    /// The account's quota from the provider's usage endpoint, in the usage cache's shape.
    async fn usage(&self, _ctx: &ProviderCtx, _pool: &str, _account: &Account) -> Option<Result<Value, String>> {
        None
    }
    /// The OAuth token protocol, for OAuth providers.
    fn grant(&self) -> Option<&dyn TokenGrant> {
        None
    }
    /// Classifies a non-2xx upstream answer (`body`: its first bytes).
    fn classify(&self, status: u16, _body: &[u8]) -> FailureKind {
        match status {
            401 | 403 => FailureKind::Auth,
            429 => FailureKind::RateLimited,
            408 | 500..=599 => FailureKind::Server,
            _ => FailureKind::Client,
        }
    }
}

/// The providers this build serves, by base type.
#[derive(Clone)]
pub struct Registry {
    by_base: HashMap<&'static str, Arc<dyn Provider>>,
}

impl Default for Registry {
    fn default() -> Self {
        let list: Vec<Arc<dyn Provider>> = vec![
            Arc::new(ApiKeyProvider::new("openai-custom", ApiKeyShape::OpenAiChat)),
            Arc::new(ApiKeyProvider::new("openaiResponses-custom", ApiKeyShape::OpenAiResponses)),
            Arc::new(ApiKeyProvider::new("claude-custom", ApiKeyShape::Anthropic)),
            Arc::new(ForwardProvider),
            Arc::new(code_assist::CodeAssistProvider::gemini_cli()),
            Arc::new(code_assist::CodeAssistProvider::antigravity()),
            Arc::new(codex::CodexProvider::default()),
            Arc::new(qwen::QwenProvider::default()),
            Arc::new(iflow::IFlowProvider::default()),
            Arc::new(kiro::provider::KiroProvider::default()),
        ];
        Self { by_base: list.into_iter().map(|p| (p.base_type(), p)).collect() }
    }
}

impl Registry {
    /// The provider serving pool type `pool_type` (exact base type or `<base>-<suffix>`).
    pub fn get(&self, pool_type: &str) -> Option<&Arc<dyn Provider>> {
        if let Some(p) = self.by_base.get(pool_type) {
            return Some(p);
        }
        let base = poolgate_store::provider::kind_of(pool_type)?.base;
        self.by_base.get(base)
    }

    /// True when `pool_type` names a provider type that exists at all (served here or not).
    pub fn is_known(pool_type: &str) -> bool {
        poolgate_store::provider::kind_of(pool_type).is_some() || backend_for_provider(pool_type).is_some()
    }

    pub fn base_types(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.by_base.keys().copied()
    }
}

/// How OAuth upstreams' statuses affect the account: 401 refreshes the token and retries,
/// 403 (suspended, no entitlement) benches it, 429 cools it down.
pub(crate) fn oauth_classify(status: u16) -> FailureKind {
    match status {
        401 => FailureKind::Expired,
        403 => FailureKind::Auth,
        429 => FailureKind::RateLimited,
        408 | 500..=599 => FailureKind::Server,
        _ => FailureKind::Client,
    }
}

/// The call's body as JSON (a provider that rewrites it).
pub(crate) fn json_body(call: &UpstreamCall<'_>) -> Result<Value, ProviderError> {
    serde_json::from_slice(&call.body).map_err(|e| ProviderError::Upstream(e.to_string()))
}

/// A rewritten body, serialized for sending.
pub(crate) fn to_body(v: &Value) -> Result<Vec<u8>, ProviderError> {
    serde_json::to_vec(v).map_err(|e| ProviderError::Upstream(e.to_string()))
}

/// A string field of an account, trimmed, if non-empty.
pub(crate) fn field<'a>(account: &'a Account, name: &str) -> Option<&'a str> {
    account.get(name).and_then(|v| v.as_str()).map(str::trim).filter(|s| !s.is_empty())
}

/// Refuses a base URL with a query string or fragment: the request path is appended to the base,
/// so it would land inside the query (and a key put there would leak into errors and logs).
pub(crate) fn check_base_url(field: &'static str, base: &str) -> Result<(), ProviderError> {
    if base.contains('?') || base.contains('#') {
        let detail = "it has a query string or fragment; the request path is appended to the base URL, \
                      so give the path only and put credentials in the account's key field"
            .to_string();
        return Err(ProviderError::BadUrl { field, detail });
    }
    Ok(())
}

pub(crate) fn join_url(base: &str, path: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), path.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixed_pools_use_their_base_provider() {
        let r = Registry::default();
        assert_eq!(r.get("openai-custom-eu").map(|p| p.base_type()), Some("openai-custom"));
        assert_eq!(r.get("claude-custom").map(|p| p.base_type()), Some("claude-custom"));
        assert_eq!(r.get("forward-api-2").map(|p| p.base_type()), Some("forward-api"));
        assert_eq!(r.get("gemini-cli-oauth-2").map(|p| p.base_type()), Some("gemini-cli-oauth"));
        assert!(Registry::is_known("claude-kiro-oauth"));
        assert!(!Registry::is_known("nope"));
        assert_eq!(join_url("http://x/v1/", "/models"), "http://x/v1/models");
    }
}
