//! Outbound proxies: `PROXY_URL` for the types in `PROXY_ENABLED_PROVIDERS`, an account's own
//! `PROXY_URL`, other pools direct — through a real forward proxy, with the proxy's credentials
//! sent to it and never logged.

mod gateway_common;

use gateway_common::*;
use poolgate_tests::forward_proxy::ForwardProxy;
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
