//! Several `poolgate` processes on one private Redis, against mock upstreams: exact usage after
//! thousands of concurrent requests, load spread, failover on 5xx/401/429 with no account used
//! while unhealthy, health checks coordinated by a lease, live config changes, concurrency
//! limits across replicas, graceful shutdown finishing a stream.

mod gateway_common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use gateway_common::*;
use poolgate_store::{Account, RedisStore, Storage};
use poolgate_tests::mock_upstream::{MockUpstream, Script};
use poolgate_tests::RedisServer;
use serde_json::{json, Value};

const PREFIX: &str = "pgw:";

fn acc(v: Value) -> Account {
    Account::from_map(v.as_object().cloned().expect("object")).expect("account")
}

async fn seed(server: &RedisServer, config: Value, pools: &[(&str, Vec<Value>)]) -> RedisStore {
    let store = RedisStore::open(server.settings(PREFIX)).await.expect("store");
    store.set_config(&config).await.expect("config");
    for (pool, accounts) in pools {
        store.replace_pool(pool, accounts.iter().cloned().map(acc).collect()).await.expect("pool");
    }
    store
}

fn redis_env(server: &RedisServer) -> Vec<(&'static str, String)> {
    vec![("REDIS_URL", server.url()), ("REDIS_KEY_PREFIX", PREFIX.to_string())]
}

async fn start_replicas(n: usize, env: &[(&str, String)]) -> (Vec<Gateway>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("dir");
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(Gateway::start(dir.path(), env).await);
    }
    (out, dir)
}

/// Sends `total` requests round-robin over `urls`, `concurrency` at a time; returns statuses.
async fn load(urls: &[String], total: usize, concurrency: usize, stream_every: usize) -> HashMap<u16, usize> {
    let client = client();
    let results = futures::stream::iter(0..total)
        .map(|i| {
            let url = urls[i % urls.len()].clone();
            let client = client.clone();
            async move {
                let stream = stream_every > 0 && i % stream_every == 0;
                let r = client.post(url).bearer_auth(KEY).json(&chat("m", stream)).send().await;
                match r {
                    Ok(r) => {
                        let s = r.status().as_u16();
                        let body = r.text().await.unwrap_or_default();
                        if stream && s == 200 && sse_text(&body) != "tok0 tok1 tok2 " {
                            return 599;
                        }
                        s
                    }
                    Err(_) => 598,
                }
            }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<u16>>();
    let statuses = tokio::time::timeout(Duration::from_secs(120), results).await.expect("load finished in time");
    let mut m = HashMap::new();
    for s in statuses {
        *m.entry(s).or_insert(0) += 1;
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_exact_and_spread_across_replicas_after_thousands_of_concurrent_requests() {
    let server = RedisServer::start().expect("redis");
    let mock = MockUpstream::start().await.expect("mock");
    let base = mock.url("/v1");
    let accounts: Vec<Value> =
        (0..4).map(|i| account("openai-custom", &format!("a{i}"), &base, &format!("k{i}"))).collect();
    let store =
        seed(&server, json!({"SCHEDULED_HEALTH_CHECK": {"enabled": false}}), &[("openai-custom", accounts)]).await;
    let (mut gws, _dir) = start_replicas(3, &redis_env(&server)).await;
    let urls: Vec<String> = gws.iter().map(|g| g.url("/v1/chat/completions")).collect();
    const N: usize = 3000;
    let statuses = load(&urls, N, 48, 4).await;
    assert_eq!(statuses.get(&200), Some(&N), "{statuses:?}");
    for g in &mut gws {
        assert_eq!(g.terminate(Duration::from_secs(20)).await, Some(0), "{}", g.logs());
    }
    // A fresh reader sees exactly one usage per successful request.
    let reader = RedisStore::open(server.settings(PREFIX)).await.expect("reader");
    let pool = reader.get_pool("openai-custom").await.expect("pool");
    let total: i64 = pool.iter().map(|a| a.usage_count()).sum();
    assert_eq!(total, N as i64);
    assert_eq!(mock.hits(), N as u64);
    for a in &pool {
        let share = a.usage_count() as f64 / N as f64;
        assert!((0.15..=0.35).contains(&share), "account {} got {share:.2} of the load", a.uuid());
    }
    drop(store);
}

fn client_hits(mock: &MockUpstream, key: &str) -> usize {
    // Health checks send "Hi" with max_tokens 1; client traffic here says "hello".
    mock.requests().iter().filter(|h| h.key.as_deref() == Some(key) && h.body["max_tokens"] != 1).count()
}
fn health_hits(mock: &MockUpstream, key: &str) -> usize {
    mock.requests().iter().filter(|h| h.key.as_deref() == Some(key) && h.body["max_tokens"] == 1).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_health_leases_and_live_config_across_replicas() {
    let server = RedisServer::start().expect("redis");
    let mock = MockUpstream::start().await.expect("mock");
    mock.set_for_key("k401", Script::status(401));
    mock.set_for_key("k500", Script::status(503));
    mock.set_for_key("k429", Script::rate_limited(30));
    let base = mock.url("/v1");
    let accounts = vec![
        account("openai-custom", "good1", &base, "kg1"),
        account("openai-custom", "good2", &base, "kg2"),
        account("openai-custom", "bad401", &base, "k401"),
        account("openai-custom", "bad500", &base, "k500"),
        account("openai-custom", "bad429", &base, "k429"),
    ];
    let config = json!({"REQUIRED_API_KEY": KEY, "MAX_ERROR_COUNT": 3, "REQUEST_BASE_DELAY": 10,
                        "SCHEDULED_HEALTH_CHECK": {"enabled": true, "interval": 300}});
    let store = seed(&server, config.clone(), &[("openai-custom", accounts)]).await;
    let mut env = redis_env(&server);
    env.push(("REQUIRED_API_KEY", UNSET.to_string()));
    let (gws, _dir) = start_replicas(3, &env).await;
    let urls: Vec<String> = gws.iter().map(|g| g.url("/v1/chat/completions")).collect();

    // Phase 1: failures are absorbed by failover.
    let statuses = load(&urls, 300, 12, 3).await;
    assert_eq!(statuses.get(&200), Some(&300), "{statuses:?}");
    let pool = store.get_pool("openai-custom").await.expect("pool");
    let get = |u: &str| pool.iter().find(|a| a.uuid() == u).cloned().expect("account");
    assert!(!get("bad401").is_healthy(), "401 → unhealthy at once");
    assert!(!get("bad500").is_healthy(), "5xx → unhealthy at MAX_ERROR_COUNT");
    assert!(get("bad429").scheduled_recovery_time().is_some(), "429 → cooldown");
    // Each replica stops choosing the account after its own first 401 (or on seeing the shared
    // mark), so the only 401s are requests already in flight by then: at most the 12 concurrent
    // clients, once per replica.
    assert!(client_hits(&mock, "k401") <= 3 * 12, "401s beyond the in-flight bound: {}", client_hits(&mock, "k401"));

    // Phase 2: once marked, unhealthy accounts get no client traffic on any replica.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before: Vec<usize> = ["k401", "k500", "k429"].iter().map(|k| client_hits(&mock, k)).collect();
    let statuses = load(&urls, 300, 12, 3).await;
    assert_eq!(statuses.get(&200), Some(&300), "{statuses:?}");
    let after: Vec<usize> = ["k401", "k500", "k429"].iter().map(|k| client_hits(&mock, k)).collect();
    assert_eq!(before, after, "unhealthy or cooling accounts were used");

    // Health checks: one replica per account per interval (the lease), not one per replica.
    let h0 = health_hits(&mock, "k401");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let checks = health_hits(&mock, "k401") - h0;
    assert!((2..=7).contains(&checks), "{checks} checks of one account in 1.5 s at a 300 ms interval");
    assert_eq!(health_hits(&mock, "k429"), 0, "cooling accounts are not checked");
    // A passing check brings the account back.
    mock.set_for_key("k401", Script::ok());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if store.get_account("openai-custom", "bad401").await.expect("acc").is_healthy() {
            break;
        }
        assert!(Instant::now() < deadline, "bad401 did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Live config: a new key in Redis applies to every replica without restart.
    let mut next = config.clone();
    next["REQUIRED_API_KEY"] = json!("rotated-key");
    store.set_config(&next).await.expect("set config");
    let deadline = Instant::now() + Duration::from_secs(5);
    for url in &urls {
        loop {
            let (s, _) = post_with(url, &chat("m", false), &[("authorization", "Bearer rotated-key".into())]).await;
            if s == 200 {
                break;
            }
            assert!(Instant::now() < deadline, "new key not applied on {url}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(post(url, &chat("m", false)).await.0, 401, "old key still accepted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limits_hold_across_replicas_and_shutdown_finishes_streams() {
    let server = RedisServer::start().expect("redis");
    let mock = MockUpstream::start().await.expect("mock");
    mock.set_for_key("kl", Script::slow(Duration::from_millis(150)));
    mock.set_for_key("ks", Script::stream(5, Duration::from_millis(200)));
    let base = mock.url("/v1");
    let mut limited = account("openai-custom", "lim", &base, "kl");
    limited["concurrencyLimit"] = json!(2);
    limited["queueLimit"] = json!(20);
    let pools =
        [("openai-custom", vec![limited]), ("openai-custom-s", vec![account("openai-custom", "s", &base, "ks")])];
    let store = seed(&server, json!({"SCHEDULED_HEALTH_CHECK": {"enabled": false}}), &pools).await;
    let (mut gws, _dir) = start_replicas(3, &redis_env(&server)).await;
    let urls: Vec<String> = gws.iter().map(|g| g.url("/v1/chat/completions")).collect();
    let statuses = load(&urls, 12, 12, 0).await;
    assert_eq!(statuses.get(&200), Some(&12), "{statuses:?}");
    assert_eq!(mock.max_concurrent("kl"), 2, "limit 2 across three replicas");

    // SIGTERM during a stream: the stream finishes, the process exits cleanly, usage is stored.
    let gw = &mut gws[0];
    let r = client()
        .post(gw.url("/openai-custom-s/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&chat("m", true))
        .send()
        .await
        .expect("send");
    let mut body = r.bytes_stream();
    let mut text = String::new();
    let first = tokio::time::timeout(Duration::from_secs(5), body.next()).await.expect("first chunk");
    text.push_str(&String::from_utf8_lossy(&first.expect("some").expect("ok")));
    let pid = gw.pid();
    let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = client().get(gw.url("/health")).send().await;
    assert!(refused.is_err(), "no new connections after SIGTERM");
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(5), body.next()).await.expect("no stall") {
        text.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
    }
    assert_eq!(sse_text(&text), "tok0 tok1 tok2 tok3 tok4 ");
    assert_eq!(gw.terminate(Duration::from_secs(20)).await, Some(0), "{}", gw.logs());
    let reader = RedisStore::open(server.settings(PREFIX)).await.expect("reader");
    assert_eq!(reader.get_account("openai-custom-s", "s").await.expect("s").usage_count(), 1);
    drop(store);
}
