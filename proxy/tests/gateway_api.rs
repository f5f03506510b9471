//! The client API of one `poolgate` process on file storage, against mock upstreams speaking
//! the real provider wire formats: every client protocol through every API-key provider
//! (unary and SSE), provider choice, auth, bad input, incremental streams, dropped streams,
//! failover, cooldown, timeouts, fallbacks and concurrency limits.

mod gateway_common;

use std::time::{Duration, Instant};

use futures::StreamExt;
use gateway_common::*;
use poolgate_tests::mock_upstream::{MockUpstream, Script};
use serde_json::{json, Value};

fn text_of(v: &Value) -> Option<&str> {
    v["choices"][0]["message"]["content"]
        .as_str()
        .or_else(|| v["output"][0]["content"][0]["text"].as_str())
        .or_else(|| v["content"][0]["text"].as_str())
        .or_else(|| v["candidates"][0]["content"]["parts"][0]["text"].as_str())
}

#[tokio::test]
async fn every_client_protocol_reaches_every_api_key_provider() {
    let mock = MockUpstream::start().await.expect("mock");
    let base = mock.url("/v1");
    let pools = json!({
        "openai-custom": [account("openai-custom", "o1", &base, "key-openai")],
        "openaiResponses-custom": [account("openaiResponses-custom", "r1", &base, "key-responses")],
        "claude-custom": [account("claude-custom", "c1", &base, "key-claude")],
        "forward-api": [account("forward-api", "f1", &mock.url(""), "key-forward")],
    });
    let dir = config_dir(&json!({}), &pools);
    let gw = Gateway::start(dir.path(), &[]).await;
    let bodies = [
        ("/v1/chat/completions", chat("m-1", false)),
        ("/v1/responses", json!({"model": "m-1", "input": "hello"})),
        ("/v1/messages", json!({"model": "m-1", "max_tokens": 16, "messages": [{"role": "user", "content": "hello"}]})),
        ("/v1beta/models/m-1:generateContent", json!({"contents": [{"role": "user", "parts": [{"text": "hello"}]}]})),
        ("/v1/models/m-1:generateContent", json!({"contents": [{"role": "user", "parts": [{"text": "hello"}]}]})),
    ];
    for provider in ["openai-custom", "openaiResponses-custom", "claude-custom"] {
        for (path, body) in &bodies {
            let hdr = [("authorization", format!("Bearer {KEY}")), ("model-provider", provider.to_string())];
            let (status, text) = post_with(&gw.url(path), body, &hdr).await;
            assert_eq!(status, 200, "{provider} {path}: {text}");
            assert_eq!(text_of(&parse(&text)), Some("Hello from mock"), "{provider} {path}: {text}");
            // Streams: the same request with stream on (Gemini: the streaming method).
            let (spath, mut sbody) = (path.replace(":generateContent", ":streamGenerateContent"), body.clone());
            if !path.contains(':') {
                sbody["stream"] = json!(true);
            }
            let (status, text) = post_with(&gw.url(&spath), &sbody, &hdr).await;
            assert_eq!(status, 200, "{provider} {spath}: {text}");
            assert_eq!(sse_text(&text), "tok0 tok1 tok2 ", "{provider} {spath}: {text}");
        }
    }
    // The upstream saw each provider's own wire format and credentials.
    let hits = mock.requests();
    let claude = hits.iter().find(|h| h.key.as_deref() == Some("key-claude")).expect("claude hit");
    assert_eq!(claude.path, "/v1/messages");
    assert_eq!(claude.headers.get("anthropic-version").and_then(|v| v.to_str().ok()), Some("2023-06-01"));
    assert!(claude.headers.get("authorization").is_none(), "claude uses x-api-key only");
    assert_eq!(claude.body["model"], "m-1");
    let responses = hits.iter().find(|h| h.key.as_deref() == Some("key-responses")).expect("responses hit");
    assert_eq!(responses.path, "/v1/responses");
    assert!(hits.iter().all(|h| h.key.as_deref() != Some(KEY)), "the client key never goes upstream");

    // forward-api relays path, query and body untouched (here a Gemini client to a Gemini upstream).
    let g = json!({"contents": [{"role": "user", "parts": [{"text": "hello"}]}]});
    let url = gw.url(&format!("/forward-api/v1beta/models/gem-1:streamGenerateContent?alt=sse&key={KEY}"));
    let r = client().post(url).json(&g).send().await.expect("send");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(sse_text(&r.text().await.expect("text")), "tok0 tok1 tok2 ");
    let fwd = mock.requests().into_iter().rfind(|h| h.key.as_deref() == Some("key-forward")).expect("forward hit");
    assert_eq!(fwd.path, "/v1beta/models/gem-1:streamGenerateContent");
    assert_eq!(fwd.headers.get("authorization").and_then(|v| v.to_str().ok()), Some("Bearer key-forward"));
    assert_eq!(fwd.body, g);
}

#[tokio::test]
async fn provider_choice_auth_and_bad_input() {
    let mock = MockUpstream::start().await.expect("mock");
    let base = mock.url("/v1");
    let mut limited = account("openai-custom", "o1", &base, "key-a");
    limited["supportedModels"] = json!(["gpt-4o", "gpt-4o-mini"]);
    let pools = json!({
        "openai-custom": [limited],
        "openai-custom-2": [account("openai-custom", "o2", &base, "key-b")],
        "claude-custom": [account("claude-custom", "c1", &base, "key-c")],
    });
    let dir = config_dir(&json!({"MAX_REQUEST_BODY_BYTES": 4000}), &pools);
    let gw = Gateway::start(dir.path(), &[]).await;

    // Auth: every key location works; a missing key is refused in the client's own shape.
    let body = chat("gpt-4o", false);
    for hdr in [("x-api-key", KEY.to_string()), ("x-goog-api-key", KEY.to_string())] {
        assert_eq!(post_with(&gw.url("/v1/chat/completions"), &body, &[hdr]).await.0, 200);
    }
    assert_eq!(post_with(&gw.url(&format!("/v1/chat/completions?key={KEY}")), &body, &[]).await.0, 200);
    let (s, t) = post_with(&gw.url("/v1/chat/completions"), &body, &[("authorization", "Bearer wrong".into())]).await;
    assert_eq!((s, parse(&t)["error"]["type"].as_str()), (401, Some("authentication_error")));
    let (s, t) = post_with(&gw.url("/v1/messages"), &body, &[]).await;
    assert_eq!((s, parse(&t)["type"].as_str()), (401, Some("error")));
    let (s, t) = post_with(&gw.url("/v1beta/models/x:generateContent"), &json!({}), &[]).await;
    assert_eq!((s, parse(&t)["error"]["status"].as_str()), (401, Some("UNAUTHENTICATED")));

    // Provider choice: default, header, path prefix, type:model.
    let before = mock.hits_for_key("key-b");
    post(&gw.url("/openai-custom-2/v1/chat/completions"), &chat("x", false)).await;
    let hdr = [("authorization", format!("Bearer {KEY}")), ("model-provider", "openai-custom-2".to_string())];
    post_with(&gw.url("/v1/chat/completions"), &chat("x", false), &hdr).await;
    let (s, _) = post(&gw.url("/v1/chat/completions"), &chat("openai-custom-2:x", false)).await;
    assert_eq!(s, 200);
    assert_eq!(mock.hits_for_key("key-b") - before, 3);
    assert_eq!(mock.requests().last().map(|h| h.body["model"].clone()), Some(json!("x")), "type: prefix stripped");

    // Bad input.
    let r = client()
        .post(gw.url("/v1/chat/completions"))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 400);
    let hdr = |p: &str| [("authorization", format!("Bearer {KEY}")), ("model-provider", p.to_string())];
    let (s, t) = post_with(&gw.url("/v1/chat/completions"), &body, &hdr("nope-provider")).await;
    assert_eq!(s, 400);
    assert!(t.contains("nope-provider"), "{t}");
    // OAuth types are served; a type with no pool has no account.
    let (s, t) = post_with(&gw.url("/v1/chat/completions"), &body, &hdr("claude-kiro-oauth")).await;
    assert_eq!(s, 503, "{t}");
    assert!(t.contains("no accounts are configured"), "{t}");
    let (s, t) = post(&gw.url("/v1/chat/completions"), &chat("no-such-model", false)).await;
    assert_eq!(s, 404, "{t}");
    assert!(t.contains("no-such-model"), "{t}");
    let (s, t) = post_with(&gw.url("/v1/chat/completions"), &body, &hdr("openai-custom-empty")).await;
    assert_eq!(s, 503, "{t}");
    assert!(t.contains("No healthy account"), "{t}");
    let big = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "x".repeat(5000)}]});
    let (s, t) = post(&gw.url("/v1/chat/completions"), &big).await;
    assert_eq!(s, 413, "{t}");
    let (s, t) = post(&gw.url("/v1/chat/completions"), &json!({"messages": []})).await;
    assert_eq!(s, 400, "{t}");

    // Local endpoints.
    let (s, t) = post(
        &gw.url("/v1/messages/count_tokens"),
        &json!({"model": "c", "messages": [{"role": "user", "content": "hello there"}]}),
    )
    .await;
    assert_eq!(s, 200);
    assert!(parse(&t)["input_tokens"].as_u64().is_some_and(|n| n > 0), "{t}");
    let models = client().get(gw.url("/v1/models")).bearer_auth(KEY).send().await.expect("models");
    let models: Value = models.json().await.expect("json");
    let ids: Vec<&str> = models["data"].as_array().expect("data").iter().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(ids, vec!["gpt-4o", "gpt-4o-mini"]);
    let g: Value = client()
        .get(gw.url("/v1beta/models"))
        .header("x-goog-api-key", KEY)
        .send()
        .await
        .expect("g")
        .json()
        .await
        .expect("json");
    assert_eq!(g["models"][0]["name"], "models/gpt-4o");
    let claude_models: Value = client()
        .get(gw.url("/claude-custom/v1/models"))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("m")
        .json()
        .await
        .expect("json");
    assert_eq!(claude_models["data"][0]["id"], "mock-model", "listed by the upstream when accounts list none");
    let health: Value = client().get(gw.url("/health")).send().await.expect("h").json().await.expect("json");
    assert_eq!(health["status"], "healthy");
    let ph: Value = client().get(gw.url("/provider_health")).send().await.expect("ph").json().await.expect("json");
    assert_eq!(ph["count"], 3);
    assert_eq!(ph["summaryHealth"], true);
    assert!(ph.get("items").is_none(), "account details need the key: {ph}");
    let ph: Value =
        client().get(gw.url("/provider_health")).bearer_auth(KEY).send().await.expect("ph").json().await.expect("j");
    assert_eq!(ph["items"].as_array().map(Vec::len), Some(3), "{ph}");
    let metrics = client().get(gw.url("/metrics")).send().await.expect("m").text().await.expect("text");
    assert!(
        metrics.contains(
            "poolgate_requests_total{route=\"chat_completions\",provider=\"openai-custom-2\",status=\"200\"} 3"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("poolgate_pool_accounts{provider=\"openai-custom\",state=\"usable\"} 1"), "{metrics}");
    assert!(metrics.contains("poolgate_time_to_first_byte_seconds_bucket"), "{metrics}");
    let logs = gw.logs();
    for secret in [KEY, "key-a", "key-b", "key-c"] {
        assert!(!logs.contains(secret), "secret {secret} in logs:\n{logs}");
    }
}

#[tokio::test]
async fn streams_are_relayed_incrementally_and_dropped_streams_end_cleanly() {
    let mock = MockUpstream::start().await.expect("mock");
    mock.set_for_key("slow", Script::stream(5, Duration::from_millis(300)));
    mock.set_for_key("drop", Script::stream(5, Duration::from_millis(50)).drop_after(2));
    mock.set_for_key("stall", Script::stream(3, Duration::from_secs(5)));
    let base = mock.url("/v1");
    let pools = json!({
        "openai-custom-slow": [account("openai-custom", "s", &base, "slow")],
        "claude-custom-drop": [account("claude-custom", "d", &base, "drop")],
        "openai-custom-stall": [account("openai-custom", "t", &base, "stall")],
    });
    let dir = config_dir(&json!({"UPSTREAM_IDLE_TIMEOUT_MS": 800}), &pools);
    let gw = Gateway::start(dir.path(), &[]).await;

    // Anthropic client, OpenAI upstream streaming a chunk every 300 ms: the first converted
    // frame arrives long before the upstream finishes.
    let started = Instant::now();
    let body = json!({"model": "m", "max_tokens": 9, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let r = client()
        .post(gw.url("/openai-custom-slow/v1/messages"))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status().as_u16(), 200);
    let mut stream = r.bytes_stream();
    let mut first_text_at = None;
    let mut all = String::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), stream.next()).await.expect("no stall") {
        all.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
        if first_text_at.is_none() && all.contains("text_delta") {
            first_text_at = Some(started.elapsed());
        }
    }
    let total = started.elapsed();
    let first = first_text_at.expect("a text delta");
    assert!(total >= Duration::from_millis(1400), "upstream takes 1.5 s: {total:?}");
    assert!(first < Duration::from_millis(1000), "first chunk at {first:?}, total {total:?}");
    assert_eq!(sse_text(&all), "tok0 tok1 tok2 tok3 tok4 ");
    assert!(all.contains("event: message_stop"), "{all}");

    // OpenAI client, Anthropic upstream dropping the connection after two chunks: the text so
    // far, an error event, and the end of the stream.
    let (s, text) = post(&gw.url("/claude-custom-drop/v1/chat/completions"), &chat("m", true)).await;
    assert_eq!(s, 200);
    assert_eq!(sse_text(&text), "tok0 tok1 ");
    assert!(text.contains("\"error\""), "{text}");
    assert!(!text.contains("[DONE]"), "the error ends the stream: {text}");
    assert!(!text.contains("EOF") && !text.contains("chunk size"), "no transport internals: {text}");

    // An upstream that goes silent mid-stream is cut after UPSTREAM_IDLE_TIMEOUT_MS.
    let started = Instant::now();
    let (s, text) = post(&gw.url("/openai-custom-stall/v1/chat/completions"), &chat("m", true)).await;
    assert_eq!(s, 200);
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    assert!(text.contains("\"error\""), "{text}");
}

#[tokio::test]
async fn failover_cooldown_timeouts_fallbacks_and_concurrency_limits() {
    let mock = MockUpstream::start().await.expect("mock");
    mock.set_for_key("k401", Script::status(401));
    mock.set_for_key("k429", Script::rate_limited(7));
    mock.set_for_key("k500", Script::status(500));
    mock.set_for_key("kslow", Script::slow(Duration::from_secs(3)));
    mock.set_for_key("kbusy", Script::slow(Duration::from_millis(300)));
    let base = mock.url("/v1");
    let mut limited = account("openai-custom", "lim", &base, "kbusy");
    limited["concurrencyLimit"] = json!(1);
    let mut queued = account("openai-custom", "q", &base, "kbusy");
    queued["concurrencyLimit"] = json!(1);
    queued["queueLimit"] = json!(1);
    let pools = json!({
        "openai-custom": [
            account("openai-custom", "a401", &base, "k401"),
            account("openai-custom", "a429", &base, "k429"),
            account("openai-custom", "a500", &base, "k500"),
            account("openai-custom", "good", &base, "kgood"),
        ],
        "openai-custom-slow": [account("openai-custom", "slow", &base, "kslow")],
        "openai-custom-dead": [account("openai-custom", "dead", &base, "k500")],
        "openai-custom-b": [account("openai-custom", "b", &base, "kb")],
        "claude-custom": [account("claude-custom", "c", &base, "kc")],
        "openai-custom-lim": [limited],
        "openai-custom-q": [queued],
    });
    let config = json!({
        "MAX_ERROR_COUNT": 2,
        "REQUEST_BASE_DELAY": 10,
        "UPSTREAM_TIMEOUT_MS": 500,
        "providerFallbackChain": {"openai-custom-dead": ["openai-custom-b"]},
        "modelFallbackMapping": {"mapped-model": {"targetProviderType": "claude-custom", "targetModel": "claude-x"}},
    });
    let dir = config_dir(&config, &pools);
    let mut gw = Gateway::start(dir.path(), &[("SCHEDULED_HEALTH_CHECK", String::new())]).await;

    // Failover: every request succeeds although three of four accounts fail.
    for i in 0..20 {
        let (s, t) = post(&gw.url("/v1/chat/completions"), &chat("m", i % 2 == 0)).await;
        assert_eq!(s, 200, "request {i}: {t}");
    }
    assert_eq!(mock.hits_for_key("k401"), 1, "401: unhealthy at once, never used again");
    assert_eq!(mock.hits_for_key("k429"), 1, "429: cooling down for Retry-After");
    assert_eq!(mock.hits_for_key("k500"), 2, "500: unhealthy at MAX_ERROR_COUNT = 2");
    assert_eq!(mock.hits_for_key("kgood"), 20);

    // Timeout → 504.
    let (s, t) = post(&gw.url("/openai-custom-slow/v1/chat/completions"), &chat("m", false)).await;
    assert_eq!(s, 504, "{t}");

    // Fallback chain, then model fallback mapping across protocols.
    let (s, t) = post(&gw.url("/openai-custom-dead/v1/chat/completions"), &chat("m", false)).await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(mock.hits_for_key("kb"), 1);
    let (s, t) = post(&gw.url("/openai-custom-b/v1/chat/completions"), &chat("mapped-model", false)).await;
    assert_eq!((s, mock.hits_for_key("kb")), (200, 2), "{t}");
    let hdr = [("authorization", format!("Bearer {KEY}")), ("model-provider", "openai-custom-empty".into())];
    let (s, t) = post_with(&gw.url("/v1/chat/completions"), &chat("mapped-model", false), &hdr).await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(text_of(&parse(&t)), Some("Hello from mock"));
    let last = mock.requests().into_iter().rfind(|h| h.key.as_deref() == Some("kc")).expect("claude hit");
    assert_eq!((last.path.as_str(), &last.body["model"]), ("/v1/messages", &json!("claude-x")));

    // Concurrency limit 1, no queue: one of two concurrent requests is refused with 429.
    let url = gw.url("/openai-custom-lim/v1/chat/completions");
    let one = chat("m", false);
    let (a, b) = tokio::join!(post(&url, &one), post(&url, &one));
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [200, 429], "{a:?} {b:?}");
    // With a queue of 1 both are served, one after the other.
    let url = gw.url("/openai-custom-q/v1/chat/completions");
    let one = chat("m", false);
    let (a, b) = tokio::join!(post(&url, &one), post(&url, &one));
    assert_eq!((a.0, b.0), (200, 200), "{a:?} {b:?}");
    assert_eq!(mock.max_concurrent("kbusy"), 1);

    // Graceful stop writes the exact state to provider_pools.json.
    assert_eq!(gw.terminate(Duration::from_secs(20)).await, Some(0), "{}", gw.logs());
    let pools: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("provider_pools.json")).expect("pools"))
            .expect("json");
    let by = |pool: &str, uuid: &str| -> Value {
        pools[pool].as_array().and_then(|a| a.iter().find(|x| x["uuid"] == uuid)).cloned().expect("account")
    };
    assert_eq!(by("openai-custom", "good")["usageCount"], 20);
    assert_eq!(by("openai-custom", "a401")["isHealthy"], false);
    assert_eq!(by("openai-custom", "a401")["usageCount"].as_i64().unwrap_or(0), 0, "failures are not usage");
    assert_eq!(by("openai-custom", "a500")["isHealthy"], false);
    assert_eq!(by("openai-custom", "a500")["errorCount"], 2);
    let a429 = by("openai-custom", "a429");
    let recover = chrono::DateTime::parse_from_rfc3339(a429["scheduledRecoveryTime"].as_str().expect("recovery time"))
        .expect("iso")
        .timestamp_millis();
    let wait = recover - chrono::Utc::now().timestamp_millis();
    assert!((0..=7_000).contains(&wait), "Retry-After 7 s honoured: {wait} ms left");
    assert_eq!(by("openai-custom-b", "b")["usageCount"], 2);
    assert_eq!(by("claude-custom", "c")["usageCount"], 1);
}
