//! Client keys across real `poolgate` replicas on one private Redis: limits that hold exactly
//! however many replicas admit, refunds for requests no upstream answered, refusals in each
//! protocol's shape, rate-limit headers, and keys that never reach logs or the store in clear.

mod gateway_common;

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use gateway_common::*;
use poolgate_store::{Account, ClientKey, RedisStore, Storage};
use poolgate_tests::mock_upstream::{MockUpstream, Script};
use poolgate_tests::RedisServer;
use serde_json::{json, Value};

const PREFIX: &str = "pgc:";

fn acc(v: Value) -> Account {
    Account::from_map(v.as_object().cloned().expect("object")).expect("account")
}

fn key_settings(name: &str) -> ClientKey {
    ClientKey { id: name.into(), name: name.into(), enabled: true, created_at: 1, ..ClientKey::default() }
}

/// A Redis with pools `openai-custom` (good accounts) and `openai-custom-down` (failing), the
/// store handle, and `n` replicas on it.
async fn cluster(n: usize) -> (RedisServer, RedisStore, Vec<Gateway>, MockUpstream, tempfile::TempDir) {
    let server = RedisServer::start().expect("redis");
    let mock = MockUpstream::start().await.expect("mock");
    mock.set_for_key("down", Script::status(500));
    let store = RedisStore::open(server.settings(PREFIX)).await.expect("store");
    let config = json!({"SCHEDULED_HEALTH_CHECK": {"enabled": false}, "REQUEST_MAX_RETRIES": 0, "MAX_ERROR_COUNT": 0});
    store.set_config(&config).await.expect("config");
    let good: Vec<Account> =
        (0..3).map(|i| acc(account("openai-custom", &format!("g{i}"), &mock.url("/v1"), &format!("k{i}")))).collect();
    store.replace_pool("openai-custom", good).await.expect("pool");
    let down = vec![acc(account("openai-custom", "d0", &mock.url("/v1"), "down"))];
    store.replace_pool("openai-custom-down", down).await.expect("pool");
    let env = vec![("REDIS_URL", server.url()), ("REDIS_KEY_PREFIX", PREFIX.to_string())];
    let dir = tempfile::tempdir().expect("dir");
    let mut gws = Vec::new();
    for _ in 0..n {
        gws.push(Gateway::start(dir.path(), &env).await);
    }
    (server, store, gws, mock, dir)
}

/// Sends `total` chat requests with `key` round-robin over `urls`, `concurrency` at a time.
async fn load(urls: &[String], key: &str, total: usize, concurrency: usize) -> HashMap<u16, usize> {
    let client = client();
    let statuses: Vec<u16> = futures::stream::iter(0..total)
        .map(|i| {
            let (client, url, key) = (client.clone(), urls[i % urls.len()].clone(), key.to_string());
            async move {
                match client.post(url).bearer_auth(key).json(&chat("m", i % 3 == 0)).send().await {
                    Ok(r) => {
                        let s = r.status().as_u16();
                        let _ = r.bytes().await;
                        s
                    }
                    Err(_) => 599,
                }
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut m = HashMap::new();
    for s in statuses {
        *m.entry(s).or_insert(0) += 1;
    }
    m
}

#[tokio::test]
async fn a_daily_limit_holds_exactly_across_three_replicas() {
    let (_server, store, gws, _mock, _dir) = cluster(3).await;
    let key = ClientKey::generate();
    let mut k = key_settings("daily");
    k.daily_limit = Some(100);
    store.put_client_key(&ClientKey::hash(&key), &k).await.expect("key");
    let urls: Vec<String> = gws.iter().map(|g| g.url("/v1/chat/completions")).collect();
    let statuses = tokio::time::timeout(Duration::from_secs(120), load(&urls, &key, 400, 64)).await.expect("in time");
    assert_eq!(statuses.get(&200), Some(&100), "{statuses:?}");
    assert_eq!(statuses.get(&429), Some(&300), "{statuses:?}");
    let (_, usage) = store.get_client_key(&ClientKey::hash(&key)).await.expect("read").expect("key");
    assert_eq!((usage.today_usage, usage.total_usage), (100, 100));

    // A refused answer names the limit, says when to retry and carries the headers.
    let r = client().post(&urls[0]).bearer_auth(&key).json(&chat("m", false)).send().await.expect("send");
    assert_eq!(r.status().as_u16(), 429);
    assert!(r.headers().get("retry-after").is_some());
    assert_eq!(r.headers().get("x-ratelimit-remaining-requests").and_then(|v| v.to_str().ok()), Some("0"));
    let body: Value = r.json().await.expect("json");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("daily request limit")), "{body}");

    // Keys never reach the logs or the store in clear.
    for g in &gws {
        assert!(!g.logs().contains(&key), "key in logs:\n{}", g.logs());
    }
    let mut redis =
        redis::Client::open(_server.url()).expect("client").get_multiplexed_async_connection().await.expect("c");
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut redis).await.expect("keys");
    for k in keys {
        let dump: Vec<u8> = redis::cmd("DUMP").arg(&k).query_async(&mut redis).await.unwrap_or_default();
        assert!(!String::from_utf8_lossy(&dump).contains(&key[5..]), "key text stored in {k}");
    }
}

#[tokio::test]
async fn an_rpm_limit_holds_exactly_inside_one_window() {
    let (_server, store, gws, _mock, _dir) = cluster(2).await;
    let key = ClientKey::generate();
    let mut k = key_settings("rpm");
    k.rpm_limit = Some(30);
    store.put_client_key(&ClientKey::hash(&key), &k).await.expect("key");
    // Stay clear of a minute boundary (the window is the Redis server's minute; same machine).
    loop {
        let secs = poolgate_store::time::epoch_ms() / 1000 % 60;
        if (2..40).contains(&secs) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let urls: Vec<String> = gws.iter().map(|g| g.url("/v1/chat/completions")).collect();
    let statuses = load(&urls, &key, 120, 40).await;
    assert_eq!(statuses.get(&200), Some(&30), "{statuses:?}");
    assert_eq!(statuses.get(&429), Some(&90), "{statuses:?}");
}

#[tokio::test]
async fn requests_no_upstream_answered_are_refunded_and_counts_survive_a_redis_restart() {
    let (mut server, store, gws, _mock, _dir) = cluster(2).await;
    let key = ClientKey::generate();
    let hash = ClientKey::hash(&key);
    let mut k = key_settings("refund");
    k.daily_limit = Some(5);
    store.put_client_key(&hash, &k).await.expect("key");
    // Every account of this pool fails: no request is counted against the key.
    for g in &gws {
        for _ in 0..4 {
            let (s, body) = post_with(
                &g.url("/openai-custom-down/v1/chat/completions"),
                &chat("m", false),
                &[("authorization", format!("Bearer {key}"))],
            )
            .await;
            assert_eq!(s, 502, "{body}");
        }
    }
    // A request refused before any upstream (bad shape) is not counted either.
    let (s, _) = post_with(
        &gws[0].url("/v1/chat/completions"),
        &json!({"model": "m", "messages": "x"}),
        &[("authorization", format!("Bearer {key}"))],
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = post_with(&gws[1].url("/v1/chat/completions"), &chat("m", false), &[("x-api-key", key.clone())]).await;
    assert_eq!(s, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, usage) = store.get_client_key(&hash).await.expect("read").expect("key");
    assert_eq!(usage.today_usage, 1, "8 failures refunded, 1 answer counted");
    assert_eq!(usage.errors, 0);
    assert!(usage.input_tokens > 0, "tokens settled: {usage:?}");

    server.restart().expect("restart redis");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reader = RedisStore::open(server.settings(PREFIX)).await.expect("reader");
    let (_, usage) = reader.get_client_key(&hash).await.expect("read").expect("key");
    assert_eq!(usage.today_usage, 1, "the count survives a restart");
    // Four more fit the daily limit of 5; the fifth is refused.
    let urls: Vec<String> = gws.iter().map(|g| g.url("/v1/chat/completions")).collect();
    let statuses = load(&urls, &key, 6, 3).await;
    assert_eq!(statuses.get(&200), Some(&4), "{statuses:?}");
    assert_eq!(statuses.get(&429), Some(&2), "{statuses:?}");
}

#[tokio::test]
async fn refusals_come_in_the_callers_protocol() {
    let (_server, store, gws, _mock, _dir) = cluster(1).await;
    let gw = &gws[0];
    let disabled = ClientKey::generate();
    let mut k = key_settings("off");
    k.enabled = false;
    store.put_client_key(&ClientKey::hash(&disabled), &k).await.expect("key");
    let limited = ClientKey::generate();
    let mut k = key_settings("models");
    k.models = vec!["allowed-model".into()];
    store.put_client_key(&ClientKey::hash(&limited), &k).await.expect("key");
    let expired = ClientKey::generate();
    let mut k = key_settings("old");
    k.expires_at = Some(1);
    store.put_client_key(&ClientKey::hash(&expired), &k).await.expect("key");

    let anthropic = json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
    let (s, body) = post_with(&gw.url("/v1/messages"), &anthropic, &[("x-api-key", "maki_unknown".into())]).await;
    assert_eq!(s, 401);
    assert_eq!(parse(&body)["type"], "error", "Anthropic's shape: {body}");
    let (s, body) = post_with(&gw.url("/v1/messages"), &anthropic, &[("x-api-key", disabled.clone())]).await;
    assert_eq!(s, 403, "{body}");
    assert!(body.contains("disabled"));
    let (s, body) = post_with(
        &gw.url("/v1/chat/completions"),
        &chat("m", false),
        &[("authorization", format!("Bearer {expired}"))],
    )
    .await;
    assert_eq!(s, 403);
    assert!(body.contains("expired"), "{body}");
    let (s, body) = post_with(
        &gw.url("/v1/chat/completions"),
        &chat("m", false),
        &[("authorization", format!("Bearer {limited}"))],
    )
    .await;
    assert_eq!(s, 403);
    assert!(parse(&body)["error"]["message"].as_str().is_some_and(|m| m.contains("model m")), "{body}");
    let (s, _) = post_with(
        &gw.url("/v1/chat/completions"),
        &chat("allowed-model", false),
        &[("authorization", format!("Bearer {limited}"))],
    )
    .await;
    assert_eq!(s, 200);
    // Model lists take client keys too, without counting.
    let r = client().get(gw.url("/v1/models")).bearer_auth(&limited).send().await.expect("models");
    assert_eq!(r.status().as_u16(), 200);
    let r = client().get(gw.url("/v1/models")).bearer_auth(&disabled).send().await.expect("models");
    assert_eq!(r.status().as_u16(), 403);
    // The main key is unaffected and carries no rate-limit headers.
    let r =
        client().post(gw.url("/v1/chat/completions")).bearer_auth(KEY).json(&chat("m", false)).send().await.expect("s");
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers().get("x-ratelimit-limit-requests").is_none());
    let logs = gw.logs();
    for k in [&disabled, &limited, &expired] {
        assert!(!logs.contains(k.as_str()), "key in logs");
    }
}

#[tokio::test]
async fn file_mode_keys_are_counted_and_stored_hashed() {
    let mock = MockUpstream::start().await.expect("mock");
    let pools = json!({"openai-custom": [account("openai-custom", "a", &mock.url("/v1"), "good")]});
    let dir = config_dir(&json!({"SCHEDULED_HEALTH_CHECK": {"enabled": false}}), &pools);
    let key = ClientKey::generate();
    {
        let store = poolgate_store::FileStore::open(dir.path()).await.expect("store");
        let mut k = key_settings("file");
        k.daily_limit = Some(3);
        store.put_client_key(&ClientKey::hash(&key), &k).await.expect("key");
    }
    let mut gw = Gateway::start(dir.path(), &[]).await;
    let url = gw.url("/v1/chat/completions");
    let statuses = load(&[url], &key, 5, 1).await;
    assert_eq!((statuses.get(&200), statuses.get(&429)), (Some(&3), Some(&2)), "{statuses:?}");
    assert_eq!(gw.terminate(Duration::from_secs(10)).await, Some(0));
    let file = std::fs::read_to_string(dir.path().join("client-keys.json")).expect("client-keys.json");
    assert!(!file.contains(&key[5..]), "the key is stored only as its hash");
    let v: Value = serde_json::from_str(&file).expect("json");
    assert_eq!(v["usage"][ClientKey::hash(&key)]["todayUsage"], 3, "{v}");
}
