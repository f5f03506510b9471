//! Client API-key check: `Authorization: Bearer`, `x-api-key`, `x-goog-api-key` or `?key=`,
//! compared in constant time.

use axum::http::HeaderMap;
use subtle::ConstantTimeEq;

/// The key a request presents, from any of the places clients put it.
pub fn presented_key<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<&'a str> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    header("authorization")
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .or_else(|| header("x-api-key"))
        .or_else(|| header("x-goog-api-key"))
        .or_else(|| query.and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("key="))))
        .map(str::trim)
}

/// Constant-time equality (length differences still return early, which reveals only length).
pub fn key_matches(presented: Option<&str>, expected: &str) -> bool {
    presented.is_some_and(|p| p.as_bytes().ct_eq(expected.as_bytes()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_style_is_accepted() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer k1".parse().expect("h"));
        assert_eq!(presented_key(&h, None), Some("k1"));
        let mut h = HeaderMap::new();
        h.insert("x-goog-api-key", "k2".parse().expect("h"));
        assert_eq!(presented_key(&h, None), Some("k2"));
        assert_eq!(presented_key(&HeaderMap::new(), Some("alt=sse&key=k3")), Some("k3"));
        assert!(key_matches(Some("k3"), "k3"));
        assert!(!key_matches(Some("k4"), "k3"));
        assert!(!key_matches(None, "k3"));
    }
}
