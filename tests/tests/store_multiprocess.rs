//! Concurrency and availability claims proven with real concurrency: several OS processes and
//! many tasks against one real redis-server, and a server stopped and restarted mid-traffic.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use poolgate_store::{Account, Applied, RedisStore, Storage};
use poolgate_tests::RedisServer;
use serde_json::{json, Map, Value};

const P: &str = "mp:";
const POOL: &str = "openai-custom";
const WORKER: &str = env!("CARGO_BIN_EXE_store-worker");

fn account(uuid: &str, usage: i64) -> Account {
    let v = json!({"uuid": uuid, "usageCount": usage, "notSupportedModels": []});
    Account::from_map(v.as_object().cloned().expect("o")).expect("account")
}

fn worker(args: &[&str]) -> std::process::Child {
    Command::new(WORKER).args(args).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("spawn worker")
}

fn finish(child: std::process::Child) -> Value {
    let out = child.wait_with_output().expect("worker output");
    assert!(out.status.success(), "worker failed: {}", String::from_utf8_lossy(&out.stdout));
    let line = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().to_string();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("worker summary {line:?}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_count_exactly_while_a_fourth_patches_the_same_accounts() {
    let server = RedisServer::start().expect("redis");
    let store = RedisStore::open(server.settings(P)).await.expect("open");
    let uuids = ["acc-a", "acc-b", "acc-c"];
    for (i, u) in uuids.iter().enumerate() {
        store.add_account(POOL, account(u, 10 * (i as i64 + 1))).await.expect("seed");
    }
    let url = server.url();
    let list = uuids.join(",");
    let incr: Vec<_> = (0..3).map(|_| worker(&["incr", &url, P, POOL, &list, "2000", "64"])).collect();
    let patcher = worker(&["patch", &url, P, POOL, &list, "300", "f"]);
    for w in incr {
        let sum = finish(w);
        assert_eq!(sum["done"], 2000, "{sum}");
        assert_eq!(sum["errors"], 0, "{sum}");
    }
    let sum = finish(patcher);
    assert_eq!(sum["errors"], 0, "{sum}");

    let fresh = RedisStore::open(server.settings(P)).await.expect("fresh view");
    let per_worker = |idx: usize| (0..2000).filter(|i| i % 3 == idx).count() as i64;
    for (idx, u) in uuids.iter().enumerate() {
        let a = fresh.get_account(POOL, u).await.expect("account");
        assert_eq!(a.usage_count(), 10 * (idx as i64 + 1) + 3 * per_worker(idx), "{u}: no increment lost");
        for i in (0..300).filter(|i| i % 3 == idx) {
            assert_eq!(a.get(&format!("f{i}")), Some(&json!(i)), "{u}: patch f{i} lost");
        }
        let last = (0..300).filter(|i| i % 3 == idx).max().expect("some");
        assert_eq!(a.custom_name(), Some(format!("f-{last}").as_str()), "last patch wins");
        assert_eq!(a.get("notSupportedModels"), Some(&json!([])), "array kept");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_mid_traffic_loses_and_duplicates_nothing() {
    let mut server = RedisServer::start().expect("redis");
    let replicas = vec![
        Arc::new(RedisStore::open(server.settings(P)).await.expect("r1")),
        Arc::new(RedisStore::open(server.settings(P)).await.expect("r2")),
    ];
    let uuids = ["o-1", "o-2", "o-3"];
    for u in uuids {
        replicas[0].add_account(POOL, account(u, 0)).await.expect("seed");
    }
    for r in &replicas {
        r.get_pool(POOL).await.expect("warm cache");
    }
    let accepted = Arc::new(AtomicI64::new(0));
    let queued = Arc::new(AtomicI64::new(0));
    let stop_at = Instant::now() + Duration::from_millis(3500);
    let mut tasks = Vec::new();
    for t in 0..24 {
        let (r, accepted, queued) = (replicas[t % 2].clone(), accepted.clone(), queued.clone());
        tasks.push(tokio::spawn(async move {
            let mut patches = Vec::new();
            let mut i = 0;
            while Instant::now() < stop_at && i < 2000 {
                let u = uuids[(t + i) % 3];
                match r.record_usage(POOL, u, 1).await.expect("never an error, only queued") {
                    Applied::Done(_) => {}
                    Applied::Queued => {
                        queued.fetch_add(1, Ordering::Relaxed);
                    }
                }
                accepted.fetch_add(1, Ordering::Relaxed);
                if i % 10 == 0 {
                    let field = format!("t{t}_{i}");
                    let mut p = Map::new();
                    p.insert(field.clone(), json!(i));
                    r.patch_account(POOL, u, p).await.expect("patch accepted");
                    patches.push((u, field, i));
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            patches
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    server.stop();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.restart().expect("restart on same port and data");
    let mut patches = Vec::new();
    for t in tasks {
        patches.extend(t.await.expect("task"));
    }
    for r in &replicas {
        assert!(r.wait_connected(Duration::from_secs(10)).await);
        r.flush().await.expect("queue replayed");
        assert_eq!(r.status().queued_writes, 0);
    }
    assert!(queued.load(Ordering::Relaxed) > 0, "the outage really queued writes");
    let fresh = RedisStore::open(server.settings(P)).await.expect("fresh");
    let mut total = 0;
    for u in uuids {
        let a = fresh.get_account(POOL, u).await.expect("account");
        total += a.usage_count();
        for (pu, field, i) in patches.iter().filter(|(pu, _, _)| *pu == u) {
            assert_eq!(a.get(field), Some(&json!(i)), "{pu}: patch {field} present");
        }
    }
    assert_eq!(total, accepted.load(Ordering::Relaxed), "every accepted increment counted exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_sees_a_change_within_100ms() {
    let server = RedisServer::start().expect("redis");
    let store = RedisStore::open(server.settings(P)).await.expect("open");
    store.add_account(POOL, account("w", 0)).await.expect("seed");
    let url = server.url();
    let mut latencies = Vec::new();
    for trial in 0..5 {
        let value = format!("v{trial}");
        let mut child = Command::new(WORKER)
            .args(["watch", &url, P, POOL, "w", "customName", &value, "5000"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn watcher");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        assert_eq!(lines.next().and_then(Result::ok).as_deref(), Some("READY"));
        let start = Instant::now();
        let mut p = Map::new();
        p.insert("customName".into(), json!(value));
        store.patch_account(POOL, "w", p).await.expect("patch");
        let seen = lines.next().and_then(Result::ok);
        latencies.push(start.elapsed());
        assert_eq!(
            seen.as_deref(),
            Some("SEEN"),
            "trial {trial}: the other process saw the change before its 5 s cache TTL"
        );
        let _ = child.wait();
    }
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    assert!(median < Duration::from_millis(100), "median visibility {median:?} (all: {latencies:?})");
}
