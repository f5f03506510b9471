//! Cross-replica coordination against a real redis-server: concurrency slots shared by several
//! store instances (as several replicas would hold), FIFO waiting, lease expiry of crashed
//! holders, and health-check leases held by one owner at a time.

use std::sync::Arc;
use std::time::Duration;

use poolgate_store::{RedisStore, SlotGrant, SlotRequest, Storage};
use poolgate_tests::RedisServer;

const P: &str = "pgc:";

fn req(holder: &str, limit: u32, queue: u32, lease_ms: u64) -> SlotRequest {
    SlotRequest { holder: holder.into(), limit, queue_limit: queue, lease: Duration::from_millis(lease_ms) }
}

#[tokio::test]
async fn slots_are_shared_by_replicas_and_waiters_are_served_in_arrival_order() {
    let server = RedisServer::start().expect("redis");
    let a = RedisStore::open(server.settings(P)).await.expect("a");
    let b = RedisStore::open(server.settings(P)).await.expect("b");
    let lease = 10_000;
    assert_eq!(a.acquire_slot("t", "u", &req("h1", 2, 2, lease)).await.expect("h1"), SlotGrant::Granted);
    assert_eq!(b.acquire_slot("t", "u", &req("h2", 2, 2, lease)).await.expect("h2"), SlotGrant::Granted);
    assert_eq!(a.acquire_slot("t", "u", &req("h3", 2, 2, lease)).await.expect("h3"), SlotGrant::Queued);
    assert_eq!(b.acquire_slot("t", "u", &req("h4", 2, 2, lease)).await.expect("h4"), SlotGrant::Queued);
    assert_eq!(a.acquire_slot("t", "u", &req("h5", 2, 2, lease)).await.expect("h5"), SlotGrant::Full);
    // Another account is independent.
    assert_eq!(a.acquire_slot("t", "v", &req("h5", 2, 2, lease)).await.expect("v"), SlotGrant::Granted);
    b.release_slot("t", "u", "h1").await.expect("release");
    assert_eq!(b.acquire_slot("t", "u", &req("h4", 2, 2, lease)).await.expect("h4"), SlotGrant::Queued, "h3 first");
    assert_eq!(a.acquire_slot("t", "u", &req("h3", 2, 2, lease)).await.expect("h3"), SlotGrant::Granted);
    assert_eq!(a.acquire_slot("t", "u", &req("h3", 2, 2, lease)).await.expect("renew"), SlotGrant::Granted);
    let keys = server.cli(&["--scan", "--pattern", "pgc:*"]).expect("scan");
    assert!(keys.lines().all(|k| k.starts_with(P)), "{keys}");
}

#[tokio::test]
async fn a_crashed_holder_frees_its_slot_when_the_lease_ends() {
    let server = RedisServer::start().expect("redis");
    let a = RedisStore::open(server.settings(P)).await.expect("a");
    assert_eq!(a.acquire_slot("t", "u", &req("dead", 1, 0, 150)).await.expect("dead"), SlotGrant::Granted);
    assert_eq!(a.acquire_slot("t", "u", &req("next", 1, 0, 150)).await.expect("next"), SlotGrant::Full);
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(a.acquire_slot("t", "u", &req("next", 1, 0, 150)).await.expect("next"), SlotGrant::Granted);
}

#[tokio::test]
async fn concurrent_acquires_never_exceed_the_limit() {
    let server = RedisServer::start().expect("redis");
    let stores: Vec<Arc<RedisStore>> = futures::future::join_all((0..3).map(|_| RedisStore::open(server.settings(P))))
        .await
        .into_iter()
        .map(|s| Arc::new(s.expect("open")))
        .collect();
    let mut tasks = Vec::new();
    for i in 0..60 {
        let s = stores[i % 3].clone();
        tasks.push(tokio::spawn(async move { s.acquire_slot("t", "u", &req(&format!("h{i}"), 5, 0, 10_000)).await }));
    }
    let mut granted = 0;
    for t in tasks {
        if t.await.expect("join").expect("acquire") == SlotGrant::Granted {
            granted += 1;
        }
    }
    assert_eq!(granted, 5);
}

#[tokio::test]
async fn a_lease_has_one_owner_until_it_expires() {
    let server = RedisServer::start().expect("redis");
    let a = RedisStore::open(server.settings(P)).await.expect("a");
    let b = RedisStore::open(server.settings(P)).await.expect("b");
    let ttl = Duration::from_millis(200);
    assert!(a.try_lease("health:t:u", "a", ttl).await.expect("a"));
    assert!(!b.try_lease("health:t:u", "b", ttl).await.expect("b"));
    assert!(b.try_lease("health:t:v", "b", ttl).await.expect("other name"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(b.try_lease("health:t:u", "b", ttl).await.expect("after expiry"));
    let owner = server.cli(&["GET", "pgc:lease:health:t:u"]).expect("get");
    assert_eq!(owner.trim(), "b");
}
