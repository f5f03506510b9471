//! Outbound proxies: `PROXY_URL` for the types in `PROXY_ENABLED_PROVIDERS`, an account's own
//! `PROXY_URL`, other pools direct — through a real forward proxy, with the proxy's credentials
//! sent to it and never logged.

mod gateway_common;

use gateway_common::*;
use poolgate_tests::forward_proxy::{ForwardProxy, Socks5Proxy};
use poolgate_tests::mock_upstream::MockUpstream;
use serde_json::json;

#[tokio::test]
async fn upstream_calls_go_through_the_proxy_that_applies() {
    let mock = MockUpstream::start().await.expect("mock");
    let global = ForwardProxy::start().await.expect("proxy");
    let own = ForwardProxy::start().await.expect("proxy");
    let base = mock.url("/v1");
    let mut special = account("openai-custom", "own", &base, "k-own");
    special["PROXY_URL"] = json!(own.url(None));
    let pools = json!({
        "claude-custom": [account("claude-custom", "c", &base, "k-claude")],
        "openai-custom": [account("openai-custom", "direct", &base, "k-direct")],
        "openai-custom-own": [special],
    });
    let config = json!({
        "SCHEDULED_HEALTH_CHECK": {"enabled": false},
        "PROXY_URL": global.url(Some("proxyuser:proxy-secret-pw")),
        "PROXY_ENABLED_PROVIDERS": ["claude-custom"],
    });
    let dir = config_dir(&config, &pools);
    let gw = Gateway::start(dir.path(), &[]).await;

    assert_eq!(post(&gw.url("/claude-custom/v1/chat/completions"), &chat("m", false)).await.0, 200);
    assert_eq!(global.forwarded(), 1, "an enabled type goes through PROXY_URL");
    let auth = global.auth_headers();
    assert!(auth[0].as_deref().is_some_and(|h| h.starts_with("Basic ")), "the proxy's credentials reach it: {auth:?}");

    assert_eq!(post(&gw.url("/openai-custom-own/v1/chat/completions"), &chat("m", true)).await.0, 200);
    assert_eq!((own.forwarded(), global.forwarded()), (1, 1), "the account's own proxy wins");

    let before = mock.hits();
    assert_eq!(post(&gw.url("/openai-custom/v1/chat/completions"), &chat("m", false)).await.0, 200);
    assert_eq!(mock.hits(), before + 1);
    assert_eq!((own.forwarded(), global.forwarded()), (1, 1), "other types go direct");
    assert!(!gw.logs().contains("proxy-secret-pw"), "proxy credentials are never logged");

    // A proxy that is down is an upstream failure, not a crash; the message names no URL.
    drop(own);
    let (status, body) = post(&gw.url("/openai-custom-own/v1/chat/completions"), &chat("m", false)).await;
    assert!(status >= 500, "{status} {body}");
    assert!(!body.contains("127.0.0.1"), "{body}");
}

#[tokio::test]
async fn a_socks5_proxy_with_credentials_carries_the_calls() {
    let mock = MockUpstream::start().await.expect("mock");
    let socks = Socks5Proxy::start(Some(("sockuser", "sock-secret-pw"))).await.expect("socks");
    let wrong = Socks5Proxy::start(Some(("sockuser", "other"))).await.expect("socks");
    let base = mock.url("/v1");
    let mut via = account("openai-custom", "via", &base, "k-via");
    via["PROXY_URL"] = json!(socks.url(Some("sockuser:sock-secret-pw")));
    let mut refused = account("openai-custom", "refused", &base, "k-refused");
    refused["PROXY_URL"] = json!(wrong.url(Some("sockuser:sock-secret-pw")));
    let pools = json!({"openai-custom": [via], "openai-custom-bad": [refused]});
    let dir = config_dir(&json!({"SCHEDULED_HEALTH_CHECK": {"enabled": false}, "REQUEST_MAX_RETRIES": 0}), &pools);
    let gw = Gateway::start(dir.path(), &[]).await;
    for stream in [false, true] {
        let (status, body) = post(&gw.url("/v1/chat/completions"), &chat("m", stream)).await;
        assert_eq!(status, 200, "{body}");
    }
    assert!(socks.relayed() >= 1, "the calls went through the SOCKS5 proxy");
    assert_eq!(mock.hits_for_key("k-via"), 2);
    let (status, body) = post(&gw.url("/openai-custom-bad/v1/chat/completions"), &chat("m", false)).await;
    assert!(status >= 500, "a proxy refusing the credentials fails the call: {status} {body}");
    assert_eq!(mock.hits_for_key("k-refused"), 0);
    assert!(!gw.logs().contains("sock-secret-pw"), "proxy credentials are never logged");
}
