//! A Redis outage under live traffic: two `poolgate` replicas keep serving from their caches
//! while redis-server is stopped, queue the usage they cannot write, and replay it exactly once
//! when the server is back on the same port and data.

mod gateway_common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_common::*;
use poolgate_store::{Account, RedisStore, Storage};
use poolgate_tests::mock_upstream::MockUpstream;
use poolgate_tests::RedisServer;
use serde_json::{json, Value};

const PREFIX: &str = "pgo:";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_ride_out_a_redis_outage_and_count_every_request_once() {
    let mut server = RedisServer::start().expect("redis");
    let mock = MockUpstream::start().await.expect("mock");
    let base = mock.url("/v1");
    let seed = RedisStore::open(server.settings(PREFIX)).await.expect("store");
    seed.set_config(&json!({"REQUIRED_API_KEY": KEY, "SCHEDULED_HEALTH_CHECK": {"enabled": false}}))
        .await
        .expect("config");
    let accounts: Vec<Account> = (0..3)
        .map(|i| account("openai-custom", &format!("o{i}"), &base, &format!("k{i}")))
        .map(|v: Value| Account::from_map(v.as_object().cloned().expect("object")).expect("account"))
        .collect();
    seed.replace_pool("openai-custom", accounts).await.expect("pool");
    drop(seed);

    let env = vec![("REDIS_URL", server.url()), ("REDIS_KEY_PREFIX", PREFIX.to_string())];
    let dir = tempfile::tempdir().expect("dir");
    let mut gws = vec![Gateway::start(dir.path(), &env).await, Gateway::start(dir.path(), &env).await];
    let urls: Vec<String> = gws.iter().map(|g| g.url("/v1/chat/completions")).collect();

    // Steady traffic for 4 s (bounded in count and time), Redis down from 1 s to 2.5 s.
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let stop_at = Instant::now() + Duration::from_secs(4);
    let mut clients = Vec::new();
    for c in 0..8 {
        let (url, ok, failed) = (urls[c % 2].clone(), ok.clone(), failed.clone());
        clients.push(tokio::spawn(async move {
            let mut sent = 0;
            while Instant::now() < stop_at && sent < 5_000 {
                sent += 1;
                let (status, body) = post(&url, &chat("m", sent % 4 == 0)).await;
                if status == 200 {
                    ok.fetch_add(1, Ordering::SeqCst);
                } else {
                    failed.fetch_add(1, Ordering::SeqCst);
                    eprintln!("request failed during the outage test: {status} {body}");
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    tokio::task::block_in_place(|| server.stop());
    let served_before_down = ok.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let served_while_down = ok.load(Ordering::SeqCst) - served_before_down;
    tokio::task::block_in_place(|| server.restart()).expect("restart on the same port and data");
    for c in clients {
        c.await.expect("client");
    }
    assert_eq!(failed.load(Ordering::SeqCst), 0, "every request was served, Redis or not");
    assert!(served_while_down > 0, "traffic really flowed while Redis was down");

    // Graceful stop flushes what is still queued; then count from a fresh reader.
    for g in &mut gws {
        assert_eq!(g.terminate(Duration::from_secs(20)).await, Some(0), "{}", g.logs());
    }
    let reader = RedisStore::open(server.settings(PREFIX)).await.expect("reader");
    let total: i64 = reader.get_pool("openai-custom").await.expect("pool").iter().map(|a| a.usage_count()).sum();
    let served = ok.load(Ordering::SeqCst);
    assert_eq!(total, served as i64, "usage counted exactly once per served request");
    assert_eq!(mock.hits(), served as u64);
}
