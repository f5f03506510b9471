//! The store on highly available Redis, as real processes: a master with two replicas under
//! three Sentinels (failover by `kill -9`), and the replica acknowledgement that keeps a write
//! the replicas never got from being counted as done.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use poolgate_store::{Account, Applied, RedisSettings, RedisStore, Storage};
use poolgate_tests::redis_ha::SentinelGroup;
use serde_json::json;

const POOL: &str = "openai-custom";

fn settings(pairs: &[(&str, String)]) -> RedisSettings {
    let env: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    RedisSettings::resolve(|k| env.get(k).cloned(), None).expect("settings")
}

async fn seeded(group: &SentinelGroup, prefix: &str, extra: &[(&str, String)]) -> RedisStore {
    let mut pairs = vec![("REDIS_URL", group.url()), ("REDIS_KEY_PREFIX", prefix.to_string())];
    pairs.extend(extra.iter().cloned());
    let store = RedisStore::open(settings(&pairs)).await.expect("open");
    assert!(store.wait_connected(Duration::from_secs(5)).await, "connected through the sentinels");
    let a = Account::from_map(json!({"uuid": "a1", "OPENAI_API_KEY": "k"}).as_object().cloned().expect("obj"))
        .expect("account");
    store.replace_pool(POOL, vec![a]).await.expect("pool");
    store
}

async fn usage_on_master(group: &SentinelGroup, prefix: &str) -> i64 {
    let reader = RedisStore::open(settings(&[("REDIS_URL", group.url()), ("REDIS_KEY_PREFIX", prefix.into())]))
        .await
        .expect("reader");
    assert!(reader.wait_connected(Duration::from_secs(10)).await);
    reader.get_account(POOL, "a1").await.expect("account").usage_count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_under_load_loses_no_acknowledged_count() {
    let mut group = tokio::task::block_in_place(|| SentinelGroup::start(2)).expect("sentinel group");
    let store = Arc::new(seeded(&group, "ha1:", &[]).await);
    let accepted = Arc::new(AtomicI64::new(0));
    let stop_at = Instant::now() + Duration::from_secs(6);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, accepted) = (store.clone(), accepted.clone());
        tasks.push(tokio::spawn(async move {
            let mut sent = 0;
            while Instant::now() < stop_at && sent < 20_000 {
                sent += 1;
                // Done or queued: both are promises to count it exactly once.
                if store.record_usage(POOL, "a1", 1).await.is_ok() {
                    accepted.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = accepted.load(Ordering::SeqCst);
    let old = tokio::task::block_in_place(|| group.kill_master_and_wait_failover(Duration::from_secs(20)))
        .expect("the sentinels promote a replica");
    for t in tasks {
        t.await.expect("task");
    }
    assert!(accepted.load(Ordering::SeqCst) > before + 100, "writes went on after the failover");
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.status().queued_writes > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    store.flush().await.expect("everything queued reaches the new master");
    assert!(store.status().connected, "the store follows the new master");
    let total = usage_on_master(&group, "ha1:").await;
    assert_eq!(total, accepted.load(Ordering::SeqCst), "every accepted increment counted once on the new master");
    assert_ne!(group.master_index(), Some(old));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_no_replica_acknowledged_stays_queued_and_survives_the_failover() {
    let mut group = tokio::task::block_in_place(|| SentinelGroup::start(2)).expect("sentinel group");
    let extra = [("REDIS_MIN_REPLICAS_ACK", "1".to_string()), ("REDIS_WAIT_TIMEOUT_MS", "200".to_string())];
    let store = seeded(&group, "ha2:", &extra).await;
    for _ in 0..10 {
        let r = store.record_usage(POOL, "a1", 1).await.expect("usage");
        assert!(matches!(r, Applied::Done(_)), "{r:?} {:?}", store.status());
    }
    // Cut the replicas off: frozen, and their replication links closed by the master, so
    // nothing written from now on reaches them.
    let master = group.master_index().expect("master");
    for (i, n) in group.nodes.iter().enumerate() {
        if i != master {
            n.pause();
        }
    }
    group.nodes[master].cli(&["CLIENT", "KILL", "TYPE", "replica"]).expect("drop replication links");
    for _ in 0..5 {
        let r = store.record_usage(POOL, "a1", 1).await.expect("accepted");
        assert!(matches!(r, Applied::Queued), "not acknowledged by a replica: only queued, not done");
    }
    assert!(store.status().queued_writes > 0, "the unacknowledged batch is kept");
    // The master dies with those 5 increments; a replica that never saw them takes over.
    group.nodes[master].kill();
    for (i, n) in group.nodes.iter().enumerate() {
        if i != master {
            n.resume();
        }
    }
    tokio::task::block_in_place(|| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while group.master_index() == Some(master) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    assert_ne!(group.master_index(), Some(master), "a replica was promoted");
    // The new master needs its replica back before it can acknowledge: give it time.
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.status().queued_writes > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(store.status().queued_writes, 0, "the kept batch was written to the new master");
    assert_eq!(usage_on_master(&group, "ha2:").await, 15, "the 5 unacknowledged increments were re-sent, once");
}
