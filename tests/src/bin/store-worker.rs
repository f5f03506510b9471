//! A separate OS process that drives the store for multi-process tests.
//!
//! store-worker incr  URL PREFIX POOL UUID,UUID.. COUNT CONCURRENCY
//! store-worker patch URL PREFIX POOL UUID,UUID.. COUNT TAG
//! store-worker watch URL PREFIX POOL UUID FIELD VALUE TIMEOUT_MS
//!
//! `incr` and `patch` print one JSON summary line; `watch` prints READY once the account is
//! cached, then SEEN when FIELD equals VALUE (read through the cache), or TIMEOUT.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use poolgate_store::{Applied, RedisSettings, RedisStore, Storage};
use serde_json::{json, Map, Value};

fn settings(url: &str, prefix: &str) -> RedisSettings {
    RedisSettings { enabled: true, url: Some(url.into()), key_prefix: prefix.into(), ..RedisSettings::default() }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str).context("missing argument (see module docs)");
    let store = Arc::new(RedisStore::open(settings(arg(1)?, arg(2)?)).await?);
    if !store.wait_connected(Duration::from_secs(10)).await {
        bail!("Redis not reachable");
    }
    let pool = arg(3)?.to_string();
    match arg(0)? {
        "incr" => incr(store, pool, split(arg(4)?), arg(5)?.parse()?, arg(6)?.parse()?).await,
        "patch" => patch(store, pool, split(arg(4)?), arg(5)?.parse()?, arg(6)?).await,
        "watch" => watch(store, pool, arg(4)?, arg(5)?, arg(6)?, arg(7)?.parse()?).await,
        other => bail!("unknown mode {other}"),
    }
}

fn split(s: &str) -> Vec<String> {
    s.split(',').map(str::to_string).collect()
}

async fn incr(store: Arc<RedisStore>, pool: String, uuids: Vec<String>, count: usize, tasks: usize) -> Result<()> {
    let mut handles = Vec::new();
    for t in 0..tasks {
        let (store, pool, uuids) = (store.clone(), pool.clone(), uuids.clone());
        handles.push(tokio::spawn(async move {
            let (mut done, mut queued, mut errors) = (0u64, 0u64, 0u64);
            for i in (t..count).step_by(tasks) {
                match store.record_usage(&pool, &uuids[i % uuids.len()], 1).await {
                    Ok(Applied::Done(_)) => done += 1,
                    Ok(Applied::Queued) => queued += 1,
                    Err(_) => errors += 1,
                }
            }
            (done, queued, errors)
        }));
    }
    let (mut done, mut queued, mut errors) = (0, 0, 0);
    for h in handles {
        let (d, q, e) = h.await?;
        done += d;
        queued += q;
        errors += e;
    }
    store.flush().await?;
    println!("{}", json!({"done": done, "queued": queued, "errors": errors}));
    Ok(())
}

async fn patch(store: Arc<RedisStore>, pool: String, uuids: Vec<String>, count: usize, tag: &str) -> Result<()> {
    let mut errors = 0;
    for i in 0..count {
        let mut p = Map::new();
        p.insert(format!("{tag}{i}"), Value::from(i));
        p.insert("customName".into(), Value::from(format!("{tag}-{i}")));
        if store.patch_account(&pool, &uuids[i % uuids.len()], p).await.is_err() {
            errors += 1;
        }
    }
    store.flush().await?;
    println!("{}", json!({"patched": count, "errors": errors}));
    Ok(())
}

async fn watch(
    store: Arc<RedisStore>,
    pool: String,
    uuid: &str,
    field: &str,
    value: &str,
    timeout_ms: u64,
) -> Result<()> {
    store.get_account(&pool, uuid).await?;
    println!("READY");
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(timeout_ms) {
        let acc = store.get_account(&pool, uuid).await?;
        if acc.get(field).and_then(Value::as_str) == Some(value) {
            println!("SEEN");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    println!("TIMEOUT");
    Ok(())
}
