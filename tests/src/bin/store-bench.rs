//! Storage benchmark against a private local redis-server (started here, free loopback port).
//! Prints a Markdown table of ops/s and p50/p99 latency for record-usage, cached pool read,
//! patch and token CAS, beside `redis-benchmark` on the same server for scale.
//!
//! Run: `scripts/bench-store.sh` (or `cargo run --release -p poolgate-tests --bin store-bench`).
//! Every loop is bounded in count and time.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use poolgate_store::{Account, CasOutcome, RedisStore, Storage};
use poolgate_tests::RedisServer;
use serde_json::{json, Map};

const POOL: &str = "openai-custom";
const ACCOUNTS: usize = 3;
const TIME_CAP: Duration = Duration::from_secs(20);

struct Row {
    name: String,
    ops: u64,
    secs: f64,
    hist: Histogram<u64>,
}

impl Row {
    fn print(&self) {
        let q = |p: f64| self.hist.value_at_quantile(p) as f64 / 1000.0;
        println!(
            "| {} | {} | {:.0} | {:.3} | {:.3} |",
            self.name,
            self.ops,
            self.ops as f64 / self.secs,
            q(0.50),
            q(0.99)
        );
    }
}

/// Runs `op` `n` times from `tasks` concurrent tasks, recording each call's latency (µs·1000).
async fn measure<F, Fut>(name: &str, n: usize, tasks: usize, op: F) -> Result<Row>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send,
{
    let op = Arc::new(op);
    let start = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let op = op.clone();
        handles.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
            let mut i = t;
            while i < n && start.elapsed() < TIME_CAP {
                let s = Instant::now();
                op(i).await?;
                h.record(s.elapsed().as_nanos().max(1) as u64)?;
                i += tasks;
            }
            Ok::<_, anyhow::Error>(h)
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    for h in handles {
        hist.add(h.await??)?;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(Row { name: name.to_string(), ops: hist.len(), secs, hist })
}

#[tokio::main]
async fn main() -> Result<()> {
    let server = RedisServer::start()?;
    let store = Arc::new(RedisStore::open(server.settings("bench:")).await?);
    for i in 0..ACCOUNTS {
        let acc = json!({"uuid": format!("acc-{i}"), "OPENAI_API_KEY": "sk-bench", "notSupportedModels": []});
        store.add_account(POOL, Account::from_map(acc.as_object().cloned().context("object")?)?).await?;
    }
    store.add_account("openai-qwen-oauth", Account::new("tok")).await?;
    store.set_token("openai-qwen-oauth", "tok", &json!({"refresh_token": "r0", "access_token": "a"})).await?;
    store.get_pool(POOL).await?;

    println!("| operation | ops | ops/s | p50 (µs) | p99 (µs) |");
    println!("|---|---:|---:|---:|---:|");
    let mut increments = 0u64;
    for (name, n, tasks) in [("record-usage, 1 task (awaited)", 5_000, 1), ("record-usage, 256 tasks", 300_000, 256)] {
        let s = store.clone();
        let row = measure(name, n, tasks, move |i| {
            let s = s.clone();
            async move {
                s.record_usage(POOL, &format!("acc-{}", i % ACCOUNTS), 1).await?;
                Ok(())
            }
        })
        .await?;
        increments += row.ops;
        row.print();
    }
    let s = store.clone();
    measure("cached pool read (get_pool)", 1_000_000, 1, move |_| {
        let s = s.clone();
        async move {
            std::hint::black_box(s.get_pool(POOL).await?);
            Ok(())
        }
    })
    .await?
    .print();
    for (name, tasks) in [("patch, 1 task", 1), ("patch, 64 tasks", 64)] {
        let s = store.clone();
        measure(name, 50_000, tasks, move |i| {
            let s = s.clone();
            async move {
                let mut p = Map::new();
                p.insert("customName".into(), json!(format!("n{i}")));
                s.patch_account(POOL, &format!("acc-{}", i % ACCOUNTS), p).await?;
                Ok(())
            }
        })
        .await?
        .print();
    }
    let s = store.clone();
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    measure("token CAS (rotate), 1 task", 5_000, 1, move |_| {
        let (s, counter) = (s.clone(), counter.clone());
        async move {
            let k = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let next = json!({"refresh_token": format!("r{}", k + 1), "access_token": "a"});
            match s.cas_token("openai-qwen-oauth", "tok", &format!("r{k}"), &next).await? {
                CasOutcome::Updated => Ok(()),
                CasOutcome::Conflict { .. } => anyhow::bail!("unexpected conflict"),
            }
        }
    })
    .await?
    .print();

    store.flush().await?;
    let fresh = RedisStore::open(server.settings("bench:")).await?;
    let total: i64 = fresh.get_pool(POOL).await?.iter().map(|a| a.usage_count()).sum();
    println!("\nexactness: {increments} increments sent, {total} counted");
    anyhow::ensure!(total as u64 == increments, "lost or duplicated increments");

    let port = server.port().to_string();
    let out = std::process::Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port, "-q", "-n", "100000", "-c", "50", "-t", "set,get,incr"])
        .output();
    match out {
        Ok(o) => {
            println!("\nredis-benchmark -q -n 100000 -c 50 -t set,get,incr (same server):");
            for line in
                String::from_utf8_lossy(&o.stdout).split(['\r', '\n']).filter(|l| l.contains("requests per second"))
            {
                println!("    {}", line.trim());
            }
        }
        Err(_) => println!("\nredis-benchmark not installed: skipped"),
    }
    Ok(())
}
