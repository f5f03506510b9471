//! Outbound proxies: `PROXY_URL` (http, https or socks5) for the provider types listed in
//! `PROXY_ENABLED_PROVIDERS`, and an account's own `PROXY_URL`, which wins. One HTTP client per
//! proxy, built on first use and kept, so connections to the proxy are pooled. A proxy URL's
//! credentials never reach a log or an error message.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use poolgate_store::Account;
use serde_json::Value;

use super::Settings;

/// The HTTP clients upstream calls go through.
pub struct Outbound {
    direct: reqwest::Client,
    proxied: Mutex<HashMap<String, reqwest::Client>>,
}

/// The proxy URL with its user-info removed, for logs.
pub fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}"),
            None => url.to_string(),
        },
        None => "<not a URL>".to_string(),
    }
}

/// The client every replica uses for upstreams (also the base of proxied ones).
pub fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(256)
}

impl Outbound {
    pub fn new(direct: reqwest::Client) -> Self {
        Self { direct, proxied: Mutex::new(HashMap::new()) }
    }

    /// The client without a proxy.
    pub fn direct(&self) -> &reqwest::Client {
        &self.direct
    }

    /// The proxy URL for `account` of `pool`, if any.
    pub fn proxy_for(raw: &Value, pool: &str, account: &Account) -> Option<String> {
        let own = account.get("PROXY_URL").and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
        if let Some(url) = own {
            return Some(url.to_string());
        }
        let global = Settings::new(raw).global("PROXY_URL")?;
        let base = poolgate_store::provider::kind_of(pool).map_or(pool, |k| k.base);
        let enabled = match raw.get("PROXY_ENABLED_PROVIDERS") {
            Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).any(|t| t == pool || t == base),
            Some(Value::String(s)) => s.split(',').map(str::trim).any(|t| t == pool || t == base),
            _ => std::env::var("PROXY_ENABLED_PROVIDERS")
                .is_ok_and(|s| s.split(',').map(str::trim).any(|t| t == pool || t == base)),
        };
        enabled.then_some(global)
    }

    /// The client for `account` of `pool`: through its proxy when one applies. A proxy URL that
    /// does not parse is logged (without its credentials) and the call goes direct.
    pub fn client_for(&self, raw: &Value, pool: &str, account: &Account) -> reqwest::Client {
        let Some(url) = Self::proxy_for(raw, pool, account) else { return self.direct.clone() };
        if let Some(c) = self.proxied.lock().get(&url) {
            return c.clone();
        }
        let built = reqwest::Proxy::all(&url).and_then(|p| builder().proxy(p).build());
        match built {
            Ok(c) => {
                self.proxied.lock().insert(url, c.clone());
                c
            }
            Err(_) => {
                tracing::warn!(%pool, proxy = %redact(&url), "outbound proxy URL is not usable; calling directly");
                self.direct.clone()
            }
        }
    }
}

/// Shared handle.
pub type SharedOutbound = Arc<Outbound>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn acc(v: Value) -> Account {
        Account::from_map(v.as_object().cloned().unwrap_or_default()).expect("account")
    }

    #[test]
    fn the_account_wins_then_the_enabled_types() {
        let raw = json!({"PROXY_URL": "http://u:p@proxy:8080", "PROXY_ENABLED_PROVIDERS": ["gemini-cli-oauth"]});
        let plain = acc(json!({"uuid": "a"}));
        let own = acc(json!({"uuid": "b", "PROXY_URL": "socks5://own:1080"}));
        assert_eq!(Outbound::proxy_for(&raw, "gemini-cli-oauth", &plain).as_deref(), Some("http://u:p@proxy:8080"));
        assert_eq!(
            Outbound::proxy_for(&raw, "gemini-cli-oauth-team", &plain).as_deref(),
            Some("http://u:p@proxy:8080")
        );
        assert_eq!(Outbound::proxy_for(&raw, "openai-custom", &plain), None, "not an enabled type");
        assert_eq!(Outbound::proxy_for(&raw, "openai-custom", &own).as_deref(), Some("socks5://own:1080"));
        assert_eq!(redact("http://user:secret@proxy:8080"), "http://***@proxy:8080");
        assert!(!redact("socks5://a:b@c:1").contains('b') || redact("socks5://a:b@c:1") == "socks5://***@c:1");
    }
}
