//! Highly available Redis as real processes on loopback: a master with replicas watched by
//! `redis-server --sentinel` processes, and a Redis Cluster made with `redis-cli --cluster
//! create`. Each node has its own port and data directory; everything is killed on drop.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::redis_server::{free_port, RedisServer};

/// The master name the sentinels monitor.
pub const MASTER: &str = "pgmaster";

/// A master, its replicas and three sentinels (quorum 2, failover after 500 ms of silence).
pub struct SentinelGroup {
    /// Data nodes; index 0 started as the master.
    pub nodes: Vec<RedisServer>,
    sentinels: Vec<(u16, Child)>,
    _dir: tempfile::TempDir,
}

fn cli(port: u16, args: &[&str]) -> Result<String> {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .context("running redis-cli")?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{what}: not within {timeout:?}")
}

/// The master on `port` has `replicas` replicas, all past their first sync.
fn in_sync(port: u16, replicas: usize) -> bool {
    cli(port, &["INFO", "replication"])
        .is_ok_and(|i| i.lines().filter(|l| l.starts_with("slave") && l.contains("state=online")).count() == replicas)
}

impl SentinelGroup {
    pub fn start(replicas: usize) -> Result<Self> {
        // Any node may become master: none delays the first sync of a replica (default 5 s).
        let quick = vec!["--repl-diskless-sync-delay".to_string(), "0".into()];
        let master = RedisServer::start_with_args(&quick, None)?;
        let mut nodes = vec![master];
        let mport = nodes[0].port();
        for _ in 0..replicas {
            let mut args = quick.clone();
            args.extend(["--replicaof".to_string(), "127.0.0.1".into(), mport.to_string()]);
            nodes.push(RedisServer::start_with_args(&args, None)?);
        }
        wait_for("replicas in sync", Duration::from_secs(10), || in_sync(mport, replicas))?;
        let dir = tempfile::Builder::new().prefix("poolgate-sentinels-").tempdir()?;
        let mut sentinels = Vec::new();
        for i in 0..3 {
            let port = free_port()?;
            let conf = dir.path().join(format!("sentinel-{i}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {dir}\nlogfile {dir}/sentinel-{i}.log\n\
                     sentinel monitor {MASTER} 127.0.0.1 {mport} 2\n\
                     sentinel down-after-milliseconds {MASTER} 500\n\
                     sentinel failover-timeout {MASTER} 4000\n\
                     sentinel parallel-syncs {MASTER} 2\n",
                    dir = dir.path().display()
                ),
            )?;
            let child = Command::new(std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into()))
                .arg(&conf)
                .arg("--sentinel")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("spawning redis-server --sentinel")?;
            sentinels.push((port, child));
        }
        let group = Self { nodes, sentinels, _dir: dir };
        // Every sentinel knows the master and its replicas, and the other sentinels.
        for &(port, _) in &group.sentinels {
            wait_for("sentinels ready", Duration::from_secs(15), || {
                cli(port, &["SENTINEL", "master", MASTER]).is_ok_and(|m| {
                    let lines: Vec<&str> = m.lines().collect();
                    let field = |k: &str| lines.iter().position(|l| *l == k).and_then(|i| lines.get(i + 1)).copied();
                    field("num-slaves") == Some(&replicas.to_string()) && field("num-other-sentinels") == Some("2")
                })
            })?;
        }
        Ok(group)
    }

    /// `redis+sentinel://127.0.0.1:p1,…/pgmaster`
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self.sentinels.iter().map(|(p, _)| format!("127.0.0.1:{p}")).collect();
        format!("redis+sentinel://{}/{MASTER}", hosts.join(","))
    }

    /// The port the sentinels name as master now.
    pub fn master_port(&self) -> Option<u16> {
        let out = cli(self.sentinels[0].0, &["SENTINEL", "get-master-addr-by-name", MASTER]).ok()?;
        out.lines().nth(1)?.trim().parse().ok()
    }

    /// The index in `nodes` of the current master.
    pub fn master_index(&self) -> Option<usize> {
        let port = self.master_port()?;
        self.nodes.iter().position(|n| n.port() == port)
    }

    /// Kills the master (SIGKILL) and waits until the sentinels promoted another node and it
    /// answers as master. Returns the old master's index.
    pub fn kill_master_and_wait_failover(&mut self, timeout: Duration) -> Result<usize> {
        let old = self.master_index().context("no master known to the sentinels")?;
        let old_port = self.nodes[old].port();
        self.nodes[old].kill();
        wait_for("failover", timeout, || {
            self.master_port()
                .is_some_and(|p| p != old_port && cli(p, &["ROLE"]).is_ok_and(|r| r.lines().next() == Some("master")))
        })?;
        Ok(old)
    }

    /// Brings a killed node back on its port and data; the sentinels make it a replica.
    pub fn rejoin(&mut self, index: usize, replicas: usize) -> Result<()> {
        self.nodes[index].relaunch()?;
        let port = self.master_port().context("no master")?;
        wait_for("node rejoined as replica", Duration::from_secs(20), || in_sync(port, replicas))
    }

    pub fn sentinel_ports(&self) -> Vec<u16> {
        self.sentinels.iter().map(|(p, _)| *p).collect()
    }
}

impl Drop for SentinelGroup {
    fn drop(&mut self) {
        for (_, c) in &mut self.sentinels {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A Redis Cluster of `masters` nodes (no replicas), all slots assigned.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start(masters: usize) -> Result<Self> {
        let mut nodes = Vec::new();
        for _ in 0..masters {
            let port = free_port()?;
            let args: Vec<String> = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                &format!("nodes-{port}.conf"),
                "--cluster-node-timeout",
                "2000",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            nodes.push(RedisServer::start_with_args(&args, Some(port))?);
        }
        let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())).collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .context("redis-cli --cluster create")?;
        if !out.status.success() {
            bail!("cluster create failed: {}", String::from_utf8_lossy(&out.stdout));
        }
        for n in &nodes {
            let port = n.port();
            wait_for("cluster state ok", Duration::from_secs(20), || {
                cli(port, &["CLUSTER", "INFO"]).is_ok_and(|i| i.contains("cluster_state:ok"))
            })?;
        }
        Ok(Self { nodes })
    }

    /// `redis+cluster://127.0.0.1:p1,…`
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())).collect();
        format!("redis+cluster://{}", hosts.join(","))
    }
}
