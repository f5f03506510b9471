//! What differs between OAuth providers' token handling: where expiry and the access token
//! sit in the native token JSON, how near expiry a token is renewed, and the token endpoint.

use std::time::Duration;

use async_trait::async_trait;
use poolgate_store::Account;
use serde_json::Value;

use crate::providers::Settings;

/// A failed call to a token endpoint.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RefreshError {
    /// The endpoint refused the refresh token (`invalid_grant`, 400/401): only a new sign-in
    /// helps, so it is not retried in a storm.
    #[error("token endpoint refused the refresh token: {0}")]
    Rejected(String),
    /// Network error, timeout or 5xx: worth retrying with backoff.
    #[error("token endpoint unavailable: {0}")]
    Transient(String),
}

/// Inputs of one refresh call.
pub struct GrantCtx<'a> {
    pub http: &'a reqwest::Client,
    pub account: &'a Account,
    pub settings: &'a Settings<'a>,
}

/// One provider's token protocol. The refresh engine ([`super::TokenEngine`]) owns everything
/// else: caching, single flight across the fleet, storage, backoff.
#[async_trait]
pub trait TokenGrant: Send + Sync {
    /// Base provider type (for logs).
    fn provider(&self) -> &'static str;
    /// Tokens expiring sooner than this are refreshed before use.
    fn near_expiry(&self) -> Duration;
    /// Epoch ms when the access token expires; `None` when the token does not say.
    fn expires_at_ms(&self, token: &Value) -> Option<i64>;
    /// The credential sent upstream (iFlow: the API key fetched after refresh).
    fn access_token<'a>(&self, token: &'a Value) -> Option<&'a str>;
    /// Calls the token endpoint with `token`'s refresh token; returns the whole new native token
    /// (the old one's other fields kept).
    async fn refresh(&self, ctx: &GrantCtx<'_>, token: &Value) -> Result<Value, RefreshError>;
    /// Account or config field holding the token inline, base64 (the reference's
    /// `*_CREDS_BASE64`), used when the store has none.
    fn inline_field(&self) -> Option<&'static str> {
        None
    }
    /// Token types the reference stored this provider's tokens under (moved on first read).
    fn legacy_types(&self) -> &'static [&'static str] {
        &[]
    }
}

/// Maps a token endpoint's HTTP answer to an error: 400/401/403 refuse the grant, the rest is
/// transient. `body` is reduced to the OAuth error code or message (never the request).
pub fn endpoint_error(status: u16, body: &[u8]) -> RefreshError {
    let detail = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            let code = v.get("error").and_then(|e| {
                e.as_str().map(str::to_string).or_else(|| e.get("message")?.as_str().map(str::to_string))
            });
            let desc = v.get("error_description").or_else(|| v.get("message")).and_then(Value::as_str);
            match (code, desc) {
                (Some(c), Some(d)) => Some(format!("{c}: {d}")),
                (Some(c), None) => Some(c),
                (None, Some(d)) => Some(d.to_string()),
                (None, None) => None,
            }
        })
        .unwrap_or_else(|| "no error detail".to_string());
    let detail = crate::pool::outcome::truncate(&format!("HTTP {status}: {detail}"), 300);
    match status {
        400 | 401 | 403 => RefreshError::Rejected(detail),
        _ => RefreshError::Transient(detail),
    }
}

/// Sends a token request and returns the JSON answer, or the classified failure. Transport
/// errors drop the URL: some token flows carry a token in the query (iFlow's getUserInfo).
pub async fn send(rb: reqwest::RequestBuilder) -> Result<Value, RefreshError> {
    let transient = |e: reqwest::Error| RefreshError::Transient(crate::server::relay::error_chain(&e.without_url()));
    let resp = rb.send().await.map_err(transient)?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(transient)?;
    if !(200..300).contains(&status) {
        return Err(endpoint_error(status, &body));
    }
    serde_json::from_slice(&body).map_err(|_| RefreshError::Transient("token endpoint answered non-JSON".into()))
}

/// The non-empty string `field` of a token answer (an answer without it is a transient failure).
pub fn required<'a>(answer: &'a Value, field: &str) -> Result<&'a str, RefreshError> {
    answer
        .get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| RefreshError::Transient(format!("token answer has no {field}")))
}

/// Copies the string `fields` a token answer carries into `into`.
pub fn copy_strings(answer: &Value, fields: &[&str], into: &mut serde_json::Map<String, Value>) {
    for k in fields {
        if let Some(v) = answer.get(*k).filter(|v| v.as_str().is_some_and(|s| !s.is_empty())) {
            into.insert((*k).to_string(), v.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_endpoint_errors_are_classified() {
        let e = endpoint_error(400, br#"{"error":"invalid_grant","error_description":"Bad Request"}"#);
        assert!(matches!(&e, RefreshError::Rejected(m) if m == "HTTP 400: invalid_grant: Bad Request"));
        assert!(matches!(endpoint_error(503, b"oops"), RefreshError::Transient(_)));
        let e = endpoint_error(401, br#"{"message":"token expired"}"#);
        assert!(matches!(&e, RefreshError::Rejected(m) if m.contains("token expired")));
    }

    #[tokio::test]
    async fn transport_errors_never_show_the_url() {
        let http = reqwest::Client::new();
        let rb = http.get("http://127.0.0.1:1/api/oauth/getUserInfo?accessToken=SECRET-ACCESS");
        match send(rb).await {
            Err(RefreshError::Transient(m)) => assert!(!m.contains("SECRET-ACCESS"), "{m}"),
            other => panic!("expected a transport error, got {other:?}"),
        }
    }
}
