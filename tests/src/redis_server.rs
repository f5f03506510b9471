//! Launches a private `redis-server` for a test: a free loopback port, its own temporary data
//! directory with append-only persistence, stop/restart on the same port and data (to simulate
//! an outage), and cleanup on drop. Tests never touch a shared Redis on 6379.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use poolgate_store::RedisSettings;

/// A running (or stopped) private redis-server.
pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    password: Option<String>,
    /// Extra `redis-server` arguments (replication, cluster mode), kept for restarts.
    extra: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free loopback port.
    pub fn start() -> Result<Self> {
        Self::start_inner(None)
    }

    /// Starts a server that requires `password`.
    pub fn start_with_password(password: &str) -> Result<Self> {
        Self::start_inner(Some(password.to_string()))
    }

    /// Starts a server with extra `redis-server` arguments (e.g. `--replicaof`), on `port` when given.
    pub fn start_with_args(extra: &[String], port: Option<u16>) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("poolgate-redis-").tempdir()?;
        let port = match port {
            Some(p) => p,
            None => free_port()?,
        };
        let mut s = Self { port, dir, password: None, extra: extra.to_vec(), child: None };
        s.launch()?;
        Ok(s)
    }

    fn start_inner(password: Option<String>) -> Result<Self> {
        let mut last = None;
        // A free port can be taken between probing and binding: try a few.
        for _ in 0..5 {
            let dir = tempfile::Builder::new().prefix("poolgate-redis-").tempdir()?;
            let mut s = Self { port: free_port()?, dir, password: password.clone(), extra: Vec::new(), child: None };
            match s.launch() {
                Ok(()) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("redis-server did not start")))
    }

    fn launch(&mut self) -> Result<()> {
        let bin = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let mut cmd = Command::new(&bin);
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "yes", "--daemonize", "no"])
            .args(["--maxmemory-policy", "noeviction"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.dir.path().join("redis.log"));
        if let Some(p) = &self.password {
            cmd.arg("--requirepass").arg(p);
        }
        cmd.args(&self.extra);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("spawning {bin} (install redis-server, or set REDIS_SERVER)"))?;
        self.child = Some(child);
        self.wait_ready(Duration::from_secs(10))
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    bail!("redis-server exited early ({status}) on port {}", self.port);
                }
            }
            if self.ping() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("redis-server on port {} not ready after {timeout:?}", self.port)
    }

    /// Raw `PING` over TCP (no client library involved).
    fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else { return false };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let cmd = match &self.password {
            Some(p) => format!("AUTH {p}\r\nPING\r\n"),
            None => "PING\r\n".to_string(),
        };
        if s.write_all(cmd.as_bytes()).is_err() {
            return false;
        }
        let mut buf = [0u8; 64];
        let mut got = String::new();
        let deadline = Instant::now() + Duration::from_millis(500);
        while Instant::now() < deadline && !got.contains("PONG") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
        got.contains("PONG")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// `redis://[:password@]127.0.0.1:port/0`
    pub fn url(&self) -> String {
        match &self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}/0", self.port),
            None => format!("redis://127.0.0.1:{}/0", self.port),
        }
    }

    /// Store settings pointing at this server under `prefix`.
    pub fn settings(&self, prefix: &str) -> RedisSettings {
        RedisSettings {
            enabled: true,
            url: Some(self.url()),
            key_prefix: prefix.to_string(),
            ..RedisSettings::default()
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Graceful stop (SIGTERM: Redis flushes its append-only file), keeping port and data.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGTERM through the `kill` utility: no libc dependency for one signal.
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Hard kill (SIGKILL), keeping port and data.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGSTOP: the process stays, but answers nothing (a frozen node) until [`Self::resume`].
    pub fn pause(&self) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill").arg("-STOP").arg(c.id().to_string()).status();
        }
    }

    /// SIGCONT after [`Self::pause`].
    pub fn resume(&self) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill").arg("-CONT").arg(c.id().to_string()).status();
        }
    }

    /// Starts again on the same port and data directory (after `kill`, without stopping first).
    pub fn relaunch(&mut self) -> Result<()> {
        self.kill();
        self.launch()
    }

    /// Starts again on the same port and data directory.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.launch()
    }

    /// Runs `redis-cli` against this server and returns its stdout (for assertions).
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(p) = &self.password {
            cmd.args(["-a", p, "--no-auth-warning"]);
        }
        let out = cmd.args(args).output().context("running redis-cli")?;
        if !out.status.success() {
            bail!("redis-cli {:?} failed: {}", args, String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// An async connection for direct inspection in tests.
    pub async fn connection(&self) -> Result<redis::aio::MultiplexedConnection> {
        let client = redis::Client::open(self.url())?;
        Ok(client.get_multiplexed_async_connection().await?)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind(("127.0.0.1", 0))?;
    Ok(l.local_addr()?.port())
}
