//! `forward-api`: relays the client's request (path, query, body) to `FORWARD_BASE_URL`
//! untouched apart from the credential header.

use async_trait::async_trait;

use super::{field, join_url, Prepared, Provider, ProviderCtx, ProviderError, UpstreamCall};
use crate::convert::Backend;
use poolgate_store::Account;

/// Client headers relayed upstream (credentials never are: the account's replace them).
const RELAYED: &[&str] = &["content-type", "accept", "anthropic-version", "anthropic-beta", "openai-beta"];

pub struct ForwardProvider;

#[async_trait]
impl Provider for ForwardProvider {
    fn base_type(&self) -> &'static str {
        "forward-api"
    }

    fn backend(&self) -> Backend {
        Backend::PassThrough
    }

    /// The client's images request is relayed as it came.
    fn images_api(&self) -> bool {
        true
    }

    fn default_check_model(&self) -> &'static str {
        "gpt-4o-mini"
    }

    async fn request(
        &self,
        ctx: &ProviderCtx,
        account: &Account,
        call: &UpstreamCall<'_>,
    ) -> Result<Prepared, ProviderError> {
        let base = field(account, "FORWARD_BASE_URL").ok_or(ProviderError::MissingCredential("FORWARD_BASE_URL"))?;
        let key = field(account, "FORWARD_API_KEY").ok_or(ProviderError::MissingCredential("FORWARD_API_KEY"))?;
        let header = field(account, "FORWARD_HEADER_NAME").unwrap_or("Authorization");
        let prefix = account.get("FORWARD_HEADER_VALUE_PREFIX").and_then(|v| v.as_str()).unwrap_or("Bearer ");
        let (path, query) = call.path_and_query.split_once('?').unwrap_or((call.path_and_query, ""));
        // The client's own key (`?key=`) is the gateway's, never the upstream's.
        let query: Vec<&str> = query.split('&').filter(|kv| !kv.is_empty() && !kv.starts_with("key=")).collect();
        super::check_base_url("FORWARD_BASE_URL", base)?;
        let mut url = join_url(base, path);
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query.join("&"));
        }
        let url = reqwest::Url::parse(&url)
            .map_err(|e| ProviderError::BadUrl { field: "FORWARD_BASE_URL", detail: e.to_string() })?;
        let mut rb = ctx.http.post(url).header(header, format!("{prefix}{key}"));
        for name in RELAYED {
            if let Some(v) = call.client_headers.get(*name) {
                rb = rb.header(*name, v.clone());
            }
        }
        Ok(rb.body(call.body.clone()).into())
    }
}
