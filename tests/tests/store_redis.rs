//! Redis-backend behaviour against a real redis-server: key schema, JSON fidelity with the
//! reference's format, atomic CAS under contention, Kiro index upkeep, script reloads, bad data.

use std::sync::Arc;
use std::time::Duration;

use poolgate_store::{Account, Applied, CasOutcome, RedisStore, Storage, StoreError};
use poolgate_tests::{fixtures_dir, RedisServer};
use redis::AsyncCommands;
use serde_json::{json, Map, Value};

const P: &str = "pgt:";

async fn open(server: &RedisServer) -> RedisStore {
    RedisStore::open(server.settings(P)).await.expect("open store")
}

fn account(v: Value) -> Account {
    Account::from_map(v.as_object().cloned().expect("object")).expect("account")
}

/// The fixture pools, and the compact JSON the reference (Node `JSON.stringify`) writes for each.
fn reference_pools() -> Map<String, Value> {
    let text = std::fs::read_to_string(fixtures_dir().join("reference/configs/provider_pools.json")).expect("fixture");
    serde_json::from_str::<Value>(&text).expect("json").as_object().cloned().expect("object")
}

#[tokio::test]
async fn every_key_carries_the_configured_prefix_and_pool_types_stays_in_step() {
    let server = RedisServer::start().expect("redis");
    let s = open(&server).await;
    s.add_account("openai-custom", account(json!({"uuid": "a"}))).await.expect("add");
    s.add_account("claude-kiro-oauth", account(json!({"uuid": "k"}))).await.expect("add");
    s.set_token("claude-kiro-oauth", "k", &json!({"refreshToken": "r"})).await.expect("tok");
    s.set_config(&json!({"a": 1})).await.expect("cfg");
    s.set_password("pw").await.expect("pwd");
    s.record_usage("openai-custom", "a", 1).await.expect("use");
    let now = poolgate_store::time::epoch_ms();
    let sess = poolgate_store::Session { username: "admin".into(), login_time: now, expiry_time: now + 60_000 };
    s.put_session("raw-session-token", &sess).await.expect("session");
    let keys = server.cli(&["--scan"]).expect("scan");
    let keys: Vec<&str> = keys.lines().collect();
    assert!(keys.len() >= 7, "{keys:?}");
    assert!(keys.iter().all(|k| k.starts_with(P)), "all keys prefixed: {keys:?}");
    assert!(!keys.iter().any(|k| k.contains("raw-session-token")), "session key is hashed: {keys:?}");
    let members = server.cli(&["SMEMBERS", &format!("{P}pool-types")]).expect("smembers");
    let mut members: Vec<&str> = members.lines().collect();
    members.sort();
    assert_eq!(members, vec!["claude-kiro-oauth", "openai-custom"]);
    let index = server.cli(&["--scan", "--pattern", &format!("{P}kiro:refresh-index:*")]).expect("scan");
    assert_eq!(index.lines().count(), 1, "kiro index written with the token");
    let ttl = server.cli(&["TTL", &format!("{P}tokens:claude-kiro-oauth:k")]).expect("ttl");
    assert_eq!(ttl.trim(), "-1", "credential keys never expire");
}

#[tokio::test]
async fn reference_json_survives_any_number_of_atomic_updates() {
    let server = RedisServer::start().expect("redis");
    let mut con = server.connection().await.expect("con");
    let pools = reference_pools();
    for (ty, list) in &pools {
        for acc in list.as_array().expect("array") {
            let uuid = acc["uuid"].as_str().expect("uuid");
            // Exactly what the reference writes: JSON.stringify, compact, field order kept.
            let _: () = con.hset(format!("{P}pools:{ty}"), uuid, acc.to_string()).await.expect("hset");
        }
        let _: () = con.sadd(format!("{P}pool-types"), ty).await.expect("sadd");
    }
    let s = open(&server).await;
    for (ty, list) in &pools {
        for acc in list.as_array().expect("array") {
            let uuid = acc["uuid"].as_str().expect("uuid");
            for _ in 0..5 {
                s.record_usage(ty, uuid, 2).await.expect("usage");
                s.patch_account(ty, uuid, json!({"customName": "renamed ✓"}).as_object().cloned().expect("o"))
                    .await
                    .expect("patch");
            }
            let ev = poolgate_store::ErrorEvent { threshold: Some(1000), ..Default::default() };
            s.record_error(ty, uuid, &ev).await.expect("err");
            let raw: String = con.hget(format!("{P}pools:{ty}"), uuid).await.expect("hget");
            let got: Value = serde_json::from_str(&raw).expect("valid json");
            // Expected: the original object with exactly the touched fields changed, in place.
            let mut want = acc.as_object().cloned().expect("o");
            let usage = want.get("usageCount").and_then(Value::as_i64).unwrap_or(0) + 10;
            want.insert("usageCount".into(), json!(usage));
            want.insert("lastUsed".into(), got["lastUsed"].clone());
            want.insert("customName".into(), json!("renamed ✓"));
            let errors = want.get("errorCount").and_then(Value::as_i64).unwrap_or(0) + 1;
            want.insert("errorCount".into(), json!(errors));
            want.insert("lastErrorTime".into(), got["lastErrorTime"].clone());
            assert_eq!(raw, Value::Object(want).to_string(), "{ty}/{uuid}: order, arrays, numbers, unknown fields");
            let ts = got["lastUsed"].as_str().expect("lastUsed");
            assert!(ts.len() == 24 && ts.ends_with('Z') && &ts[19..20] == ".", "ISO with ms: {ts}");
        }
    }
    let kiro: String =
        con.hget(format!("{P}pools:claude-kiro-oauth"), "2c69d0ac-b86f-43d8-9d17-0d300afc5cfd").await.expect("h");
    assert!(kiro.contains("\"notSupportedModels\":[]"), "empty array stays an array: {kiro}");
    node_reads(&kiro);
}

/// The reference is Node: let Node parse what poolgate wrote and check the types it relies on.
fn node_reads(raw: &str) {
    let script = "const a = JSON.parse(process.argv[1]);\
        if (!Array.isArray(a.notSupportedModels)) throw new Error('notSupportedModels not an array');\
        if (!Number.isInteger(a.usageCount) || !Number.isInteger(a.errorCount)) throw new Error('counts not integers');\
        if (!/^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z$/.test(a.lastUsed)) throw new Error('lastUsed not ISO');\
        if (new Date(a.lastUsed).toISOString() !== a.lastUsed) throw new Error('lastUsed not canonical');";
    match std::process::Command::new("node").arg("-e").arg(script).arg(raw).output() {
        Ok(out) => {
            assert!(out.status.success(), "node rejected poolgate's JSON: {}", String::from_utf8_lossy(&out.stderr))
        }
        Err(_) => eprintln!("SKIP node interop check: `node` is not installed"),
    }
}

#[tokio::test]
async fn concurrent_token_cas_has_exactly_one_winner_for_both_spellings() {
    let server = RedisServer::start().expect("redis");
    let stores: Vec<Arc<RedisStore>> = vec![Arc::new(open(&server).await), Arc::new(open(&server).await)];
    for (pool, field) in [("claude-kiro-oauth", "refreshToken"), ("openai-codex-oauth", "refresh_token")] {
        stores[0].add_account(pool, account(json!({"uuid": "u"}))).await.expect("add");
        stores[0].set_token(pool, "u", &json!({field: "old", "accessToken": "a0"})).await.expect("seed");
        let mut tasks = Vec::new();
        for i in 0..40 {
            let s = stores[i % 2].clone();
            tasks.push(tokio::spawn(async move {
                s.cas_token(pool, "u", "old", &json!({field: format!("new-{i}"), "accessToken": format!("a{i}")})).await
            }));
        }
        let mut winners = Vec::new();
        for (i, t) in tasks.into_iter().enumerate() {
            match t.await.expect("join").expect("cas") {
                CasOutcome::Updated => winners.push(i),
                CasOutcome::Conflict { current } => assert_ne!(current[field], "old", "conflict shows the new token"),
            }
        }
        assert_eq!(winners.len(), 1, "{pool}: exactly one refresh wins, got {winners:?}");
        let stored = stores[1].get_token(pool, "u").await.expect("get").expect("some");
        assert_eq!(stored[field], format!("new-{}", winners[0]));
    }
    // Kiro: the dedup index follows the rotation and points at the account.
    let s = &stores[0];
    let current = s.get_token("claude-kiro-oauth", "u").await.expect("t").expect("t");
    let rt = current["refreshToken"].as_str().expect("rt");
    assert_eq!(s.find_kiro_account_by_refresh_token(rt).await.expect("idx").as_deref(), Some("u"));
    assert_eq!(s.find_kiro_account_by_refresh_token("old").await.expect("idx"), None, "old index removed");
}

#[tokio::test]
async fn deleting_a_kiro_account_removes_token_and_index_for_good() {
    let server = RedisServer::start().expect("redis");
    let s = open(&server).await;
    let pool = "claude-kiro-oauth";
    s.add_account(pool, account(json!({"uuid": "k1"}))).await.expect("add");
    s.set_token(pool, "k1", &json!({"refreshToken": "rt-1", "accessToken": "a"})).await.expect("tok");
    assert_eq!(s.find_kiro_account_by_refresh_token("rt-1").await.expect("idx").as_deref(), Some("k1"));
    s.delete_account(pool, "k1").await.expect("delete");
    assert_eq!(s.find_kiro_account_by_refresh_token("rt-1").await.expect("idx"), None, "no orphan index");
    let keys = server.cli(&["--scan"]).expect("scan");
    assert!(!keys.contains("k1") && !keys.contains("refresh-index"), "nothing of k1 left: {keys}");
    assert!(matches!(s.record_usage(pool, "k1", 1).await, Err(StoreError::NotFound { .. })));
    assert!(matches!(s.set_health(pool, "k1", true, None).await, Err(StoreError::NotFound { .. })));
    let other = open(&server).await;
    assert!(matches!(other.get_account(pool, "k1").await, Err(StoreError::NotFound { .. })), "not resurrected");
    // Re-import of the same token is not blocked by a stale "duplicate" index.
    s.add_account(pool, account(json!({"uuid": "k2"}))).await.expect("re-add");
    s.set_token(pool, "k2", &json!({"refreshToken": "rt-1"})).await.expect("tok");
    assert_eq!(s.find_kiro_account_by_refresh_token("rt-1").await.expect("idx").as_deref(), Some("k2"));
}

#[tokio::test]
async fn scripts_are_reloaded_after_script_flush() {
    let server = RedisServer::start().expect("redis");
    let s = open(&server).await;
    s.add_account("openai-custom", account(json!({"uuid": "a"}))).await.expect("add");
    server.cli(&["SCRIPT", "FLUSH"]).expect("flush");
    let a = s.record_usage("openai-custom", "a", 1).await.expect("usage after NOSCRIPT");
    assert_eq!(a.done().map(|a| a.usage_count()), Some(1));
    server.cli(&["SCRIPT", "FLUSH"]).expect("flush");
    assert!(s.acquire_refresh_lock("p", "u", "o", Duration::from_secs(5)).await.expect("lock"));
    assert!(s.release_refresh_lock("p", "u", "o").await.expect("release via reloaded script"));
}

#[tokio::test]
async fn malformed_json_is_reported_with_its_key_and_left_untouched() {
    let server = RedisServer::start().expect("redis");
    let mut con = server.connection().await.expect("con");
    let bad = r#"{"uuid":"bad","usageCount":1,"x":[1,2}"#;
    let _: () = con.hset(format!("{P}pools:openai-custom"), "bad", bad).await.expect("hset");
    let _: () = con.set(format!("{P}config"), "{not json").await.expect("set");
    let s = open(&server).await;
    match s.record_usage("openai-custom", "bad", 1).await {
        Err(StoreError::Corrupt { location, .. }) => assert!(location.contains("pools:openai-custom"), "{location}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    match s.get_pool("openai-custom").await {
        Err(StoreError::Corrupt { location, .. }) => assert!(location.contains("field bad"), "{location}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    match s.get_config().await {
        Err(e @ StoreError::Corrupt { .. }) => {
            assert!(e.to_string().contains("config") && e.to_string().contains("column"))
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let raw: String = con.hget(format!("{P}pools:openai-custom"), "bad").await.expect("hget");
    assert_eq!(raw, bad, "bad data not overwritten");
}

#[tokio::test]
async fn a_change_in_one_store_reaches_another_store_cache_without_waiting_for_ttl() {
    let server = RedisServer::start().expect("redis");
    let ttls = poolgate_store::redis::Ttls {
        pools: Duration::from_secs(3600),
        config: Duration::from_secs(3600),
        usage: Duration::from_secs(3600),
        plugins: Duration::from_secs(3600),
    };
    let a = RedisStore::open_with(server.settings(P), ttls).await.expect("a");
    let b = RedisStore::open_with(server.settings(P), ttls).await.expect("b");
    a.add_account("openai-custom", account(json!({"uuid": "x"}))).await.expect("add");
    a.set_config(&json!({"v": 1})).await.expect("cfg");
    assert_eq!(b.get_pool("openai-custom").await.expect("pool").len(), 1);
    assert_eq!(b.get_config().await.expect("cfg"), Some(json!({"v": 1})));
    a.record_usage("openai-custom", "x", 5).await.expect("use");
    a.set_config(&json!({"v": 2})).await.expect("cfg");
    a.add_account("openai-custom", account(json!({"uuid": "y"}))).await.expect("add");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        let pool = b.get_pool("openai-custom").await.expect("pool");
        let cfg = b.get_config().await.expect("cfg");
        let x = pool.iter().find(|p| p.uuid() == "x").map(|p| p.usage_count());
        if x == Some(5) && pool.len() == 2 && cfg == Some(json!({"v": 2})) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "b never saw a's changes: {pool:?} {cfg:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn degraded_mode_serves_cache_queues_writes_and_replays_them() {
    let mut server = RedisServer::start().expect("redis");
    let settings = poolgate_store::RedisSettings { queue_capacity: 4, ..server.settings(P) };
    let s = RedisStore::open(settings).await.expect("open");
    s.add_account("openai-custom", account(json!({"uuid": "a", "customName": "n"}))).await.expect("add");
    s.add_account("openai-custom", account(json!({"uuid": "gone"}))).await.expect("add");
    s.set_config(&json!({"v": 1})).await.expect("cfg");
    assert_eq!(s.get_pool("openai-custom").await.expect("warm cache").len(), 2);

    server.stop();
    let (mut queued, mut sent) = (false, 0);
    for _ in 0..100 {
        sent += 1;
        if s.record_usage("openai-custom", "a", 1).await.expect("usage").is_queued() {
            queued = true;
            break;
        }
    }
    assert!(queued, "writes are queued while Redis is down");
    let st = s.status();
    assert!(st.degraded && !st.connected, "{st:?}");
    assert!(!st.url.unwrap_or_default().is_empty());
    for _ in 0..20 {
        assert!(s.record_usage("openai-custom", "a", 2).await.expect("usage").is_queued());
    }
    assert!(s.delete_account("openai-custom", "gone").await.expect("delete").is_queued());
    assert_eq!(s.get_config().await.expect("cached config"), Some(json!({"v": 1})), "reads from cache");
    let pool = s.get_pool("openai-custom").await.expect("cached pool");
    assert_eq!(pool.len(), 1, "local delete visible at once");
    // Counters for one account coalesce (one entry in flight, one pending), so capacity 4 holds
    // them, the delete and the password; a further distinct key overflows, loudly.
    s.set_password("p1").await.expect("pwd");
    let over = s.set_plugins(&json!({"plugins": {}})).await;
    assert!(matches!(over, Err(StoreError::QueueFull { capacity: 4 })), "{over:?}");
    assert_eq!(s.status().queue_overflows, 1);
    let rejected = s.get_plugins().await;
    assert!(
        !matches!(&rejected, Ok(Some(v)) if *v == json!({"plugins": {}})),
        "a rejected write is not visible: {rejected:?}"
    );

    server.restart().expect("restart");
    assert!(s.wait_connected(Duration::from_secs(10)).await);
    s.flush().await.expect("replayed");
    let other = open(&server).await;
    let a = other.get_account("openai-custom", "a").await.expect("a");
    assert_eq!(a.usage_count(), sent + 40, "every increment applied exactly once");
    assert!(matches!(other.get_account("openai-custom", "gone").await, Err(StoreError::NotFound { .. })));
    assert_eq!(other.get_password().await.expect("pwd").as_deref(), Some("p1"));
}

#[tokio::test]
async fn starts_degraded_when_redis_is_down_and_catches_up() {
    let mut server = RedisServer::start().expect("redis");
    let settings = server.settings(P);
    server.stop();
    let s = RedisStore::open(settings).await.expect("open without Redis");
    assert!(s.status().degraded);
    assert!(matches!(s.get_config().await, Err(StoreError::Unavailable(_))), "nothing cached yet");
    assert!(s.set_config(&json!({"late": true})).await.expect("queued").is_queued());
    server.restart().expect("start");
    assert!(s.wait_connected(Duration::from_secs(10)).await, "reconnects by itself");
    s.flush().await.expect("flush");
    let fresh = open(&server).await;
    assert_eq!(fresh.get_config().await.expect("cfg"), Some(json!({"late": true})));
}

#[tokio::test]
async fn status_never_shows_the_password() {
    let server = RedisServer::start_with_password("s3cr3t-pw").expect("redis");
    let s = open(&server).await;
    s.set_config(&json!({})).await.expect("cfg");
    let st = s.status();
    let text = serde_json::to_string(&st).expect("json");
    assert!(st.connected);
    assert!(!text.contains("s3cr3t-pw"), "{text}");
    assert!(text.contains("***"), "{text}");
    let wrong = poolgate_store::RedisSettings {
        url: Some(server.url().replace("s3cr3t-pw", "wrong-pw")),
        ..server.settings(P)
    };
    let w = RedisStore::open(wrong).await.expect("open");
    let err = w.get_config().await.expect_err("auth fails");
    assert!(!err.to_string().contains("wrong-pw"), "{err}");
    assert!(!format!("{:?}", w.status()).contains("wrong-pw"));
}

#[tokio::test]
async fn writes_keep_order_per_account_even_when_coalesced() {
    let server = RedisServer::start().expect("redis");
    let s = Arc::new(open(&server).await);
    s.add_account("openai-custom", account(json!({"uuid": "o"}))).await.expect("add");
    // Fire-and-forget usage, then a delete, then more usage: the later usage must find nothing.
    let mut rxs = Vec::new();
    for _ in 0..50 {
        let s = s.clone();
        rxs.push(tokio::spawn(async move { s.record_usage("openai-custom", "o", 1).await }));
    }
    for r in rxs {
        r.await.expect("join").expect("usage");
    }
    s.delete_account("openai-custom", "o").await.expect("del");
    assert!(matches!(s.record_usage("openai-custom", "o", 1).await, Err(StoreError::NotFound { .. })));
    let n: i64 = server.connection().await.expect("c").hlen(format!("{P}pools:openai-custom")).await.expect("hlen");
    assert_eq!(n, 0);
    let _ = Applied::<()>::Queued;
}
