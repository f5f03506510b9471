//! Shared helpers of the CLI tests: run the real `poolgate` binary, copy the reference fixtures,
//! dump a private Redis.
#![allow(dead_code)] // each test file uses a different subset

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use poolgate_store::redis::bulk::{DumpEntry, DumpValue};
use poolgate_store::{RedisStore, Storage};
use poolgate_tests::{fixtures_dir, RedisServer};
use serde_json::Value;

pub const PREFIX: &str = "aiclient:";
/// The fixture account whose token file does not exist.
pub const MISSING_TOKEN_UUID: &str = "c0dec0de-7777-4888-8999-aaaabbbbcccc";

/// Result of one run of the binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Runs `poolgate args…` with no Redis settings inherited from the environment.
pub fn poolgate(args: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_poolgate"));
    for var in
        ["REDIS_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD", "REDIS_DB", "REDIS_KEY_PREFIX", "REDIS_ENABLED"]
    {
        cmd.env_remove(var);
    }
    let out: Output = cmd.args(args).output().expect("run poolgate");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A temporary copy of the reference fixtures; `configs()` is the config dir (named `configs`
/// so that `./configs/...` token paths resolve as in a real deployment).
pub struct Fixture {
    pub dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        copy_dir(&fixtures_dir().join("reference/configs"), &dir.path().join("configs"));
        Self { dir }
    }

    /// The fixtures without the account whose token file is missing (a clean import).
    pub fn clean() -> Self {
        let f = Self::new();
        let mut pools = f.read_json("provider_pools.json");
        let codex = pools["openai-codex-oauth"].as_array_mut().expect("codex pool");
        codex.retain(|a| a["uuid"] != MISSING_TOKEN_UUID);
        f.write("provider_pools.json", &serde_json::to_string_pretty(&pools).expect("json"));
        f
    }

    pub fn configs(&self) -> PathBuf {
        self.dir.path().join("configs")
    }
    pub fn configs_str(&self) -> String {
        self.configs().display().to_string()
    }
    pub fn read_json(&self, rel: &str) -> Value {
        read_json(&self.configs().join(rel))
    }
    pub fn write(&self, rel: &str, text: &str) {
        let p = self.configs().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }
}

pub fn read_json(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read fixtures") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

/// Everything under `prefix` in `server`.
pub async fn dump(server: &RedisServer, prefix: &str) -> BTreeMap<String, DumpEntry> {
    let store = RedisStore::open_connected(server.settings(prefix)).await.expect("connect");
    let d = store.dump().await.expect("dump");
    store.flush().await.expect("flush");
    d
}

/// Asserts two dumps are equal: values exactly, expiries within 2 s (PTTL is relative), and the
/// `meta` hash compared without the fields named in `meta_ignore` (timestamps).
pub fn assert_same_dump(a: &BTreeMap<String, DumpEntry>, b: &BTreeMap<String, DumpEntry>, meta_ignore: &[&str]) {
    let keys_a: Vec<&String> = a.keys().collect();
    let keys_b: Vec<&String> = b.keys().collect();
    assert_eq!(keys_a, keys_b, "the same keys");
    for (k, ea) in a {
        let eb = &b[k];
        let (va, vb) = if k.ends_with(":meta") {
            (strip(&ea.value, meta_ignore), strip(&eb.value, meta_ignore))
        } else {
            (ea.value.clone(), eb.value.clone())
        };
        assert_eq!(va, vb, "value of {k}");
        match (ea.expires_at_ms, eb.expires_at_ms) {
            (None, None) => {}
            (Some(x), Some(y)) => assert!((x - y).abs() < 2000, "expiry of {k}: {x} vs {y}"),
            other => panic!("TTL presence differs for {k}: {other:?}"),
        }
    }
}

fn strip(v: &DumpValue, ignore: &[&str]) -> DumpValue {
    match v {
        DumpValue::Hash(h) => DumpValue::Hash(
            h.iter().filter(|(f, _)| !ignore.contains(&f.as_str())).map(|(f, v)| (f.clone(), v.clone())).collect(),
        ),
        other => other.clone(),
    }
}

/// A string key's value parsed as JSON.
pub fn string_json(d: &BTreeMap<String, DumpEntry>, key: &str) -> Value {
    match d.get(key).map(|e| &e.value) {
        Some(DumpValue::String(s)) => serde_json::from_str(s).expect("json"),
        other => panic!("{key}: expected a string, got {other:?}"),
    }
}

/// Number of keys in the server (all prefixes).
pub fn dbsize(server: &RedisServer) -> u64 {
    server.cli(&["DBSIZE"]).expect("dbsize").trim().parse().expect("number")
}
