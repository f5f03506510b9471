//! Shared helpers of the gateway system tests: run real `poolgate serve` processes on file
//! storage or on one private Redis, against mock upstreams; a small HTTP client.
#![allow(dead_code)] // each test file uses a different subset

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const KEY: &str = "test-client-key";
/// An `env` value that removes the variable instead of setting it.
pub const UNSET: &str = "<unset>";

/// A running gateway process; killed when dropped.
pub struct Gateway {
    pub port: u16,
    child: Option<Child>,
    pub log: std::path::PathBuf,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

impl Gateway {
    /// Starts `poolgate serve` on `config_dir` with `env` and waits for `/health`.
    pub async fn start(config_dir: &Path, env: &[(&str, String)]) -> Self {
        let port = free_port();
        let log = config_dir.join(format!("poolgate-{port}.log"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_poolgate"));
        for var in
            ["REDIS_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD", "REDIS_DB", "REDIS_KEY_PREFIX", "REDIS_ENABLED"]
        {
            cmd.env_remove(var);
        }
        cmd.arg("serve")
            .arg("--config-dir")
            .arg(config_dir)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .env("REQUIRED_API_KEY", KEY)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        for (k, v) in env {
            if v == UNSET {
                cmd.env_remove(k);
            } else {
                cmd.env(k, v);
            }
        }
        let child = cmd.spawn().expect("spawn poolgate");
        let gw = Self { port, child: Some(child), log };
        gw.wait_healthy(Duration::from_secs(20)).await;
        gw
    }

    async fn wait_healthy(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let client = reqwest::Client::new();
        while Instant::now() < deadline {
            if let Ok(r) = client.get(self.url("/health")).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("poolgate did not become healthy:\n{}", self.logs());
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// SIGTERM, then waits for the exit (bounded); returns the exit code.
    pub async fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("poolgate did not exit after SIGTERM:\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// An HTTP client with the test key.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client")
}

/// POSTs JSON with the client key; returns status and body text.
pub async fn post(url: &str, body: &Value) -> (u16, String) {
    post_with(url, body, &[("authorization", format!("Bearer {KEY}"))]).await
}

pub async fn post_with(url: &str, body: &Value, headers: &[(&str, String)]) -> (u16, String) {
    let mut rb = client().post(url).json(body);
    for (k, v) in headers {
        rb = rb.header(*k, v);
    }
    let r = rb.send().await.expect("send");
    let status = r.status().as_u16();
    (status, r.text().await.unwrap_or_default())
}

pub fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// An API-key account of `pool` pointing at `base_url` with `key`.
pub fn account(pool: &str, uuid: &str, base_url: &str, key: &str) -> Value {
    let mut a = json!({"uuid": uuid, "customName": uuid});
    let (k, u) = if pool.starts_with("claude") {
        ("CLAUDE_API_KEY", "CLAUDE_BASE_URL")
    } else if pool.starts_with("forward") {
        ("FORWARD_API_KEY", "FORWARD_BASE_URL")
    } else {
        ("OPENAI_API_KEY", "OPENAI_BASE_URL")
    };
    a[k] = json!(key);
    a[u] = json!(base_url);
    a
}

/// A config dir with `config.json` and `provider_pools.json`.
pub fn config_dir(config: &Value, pools: &Value) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("config.json"), config.to_string()).expect("config");
    std::fs::write(dir.path().join("provider_pools.json"), pools.to_string()).expect("pools");
    dir
}

pub fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hello"}]})
}

/// Concatenated text of an SSE body in any of the four client formats.
pub fn sse_text(body: &str) -> String {
    let mut out = String::new();
    for line in body.lines() {
        let Some(data) = line.strip_prefix("data: ") else { continue };
        let Ok(v) = serde_json::from_str::<Value>(data) else { continue };
        let piece = v["choices"][0]["delta"]["content"]
            .as_str()
            .or_else(|| (v["type"] == "content_block_delta").then(|| v["delta"]["text"].as_str()).flatten())
            .or_else(|| (v["type"] == "response.output_text.delta").then(|| v["delta"].as_str()).flatten())
            .or_else(|| v["candidates"][0]["content"]["parts"][0]["text"].as_str());
        if let Some(p) = piece {
            out.push_str(p);
        }
    }
    out
}
