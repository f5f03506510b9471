//! Shared by the admin API tests: a fleet of replicas on one Redis with an admin password and
//! a pool on the mock upstream, login, and a JSON caller.
#![allow(dead_code)] // each test file uses a different subset

use poolgate_store::{Account, RedisStore, Storage};
use poolgate_tests::mock_upstream::MockUpstream;
use poolgate_tests::RedisServer;
use serde_json::{json, Value};

use crate::gateway_common::*;

pub const PREFIX: &str = "pga:";
pub const PASSWORD: &str = "correct horse battery";

pub fn acc(v: Value) -> Account {
    Account::from_map(v.as_object().cloned().expect("object")).expect("account")
}

pub struct Fleet {
    pub server: RedisServer,
    pub store: RedisStore,
    pub gws: Vec<Gateway>,
    pub mock: MockUpstream,
    pub dir: tempfile::TempDir,
}

/// `n` replicas on one Redis holding a hashed admin password and an `openai-custom` pool of
/// three accounts on the mock upstream; `env` is added to every replica's environment.
pub async fn fleet(n: usize, env: &[(&str, &str)]) -> Fleet {
    let server = RedisServer::start().expect("redis");
    let mock = MockUpstream::start().await.expect("mock");
    let store = RedisStore::open(server.settings(PREFIX)).await.expect("store");
    let config = json!({"SCHEDULED_HEALTH_CHECK": {"enabled": false}, "REQUEST_MAX_RETRIES": 0, "MAX_ERROR_COUNT": 0});
    store.set_config(&config).await.expect("config");
    store.set_password(&poolgate_store::password::hash(PASSWORD)).await.expect("password");
    let pool: Vec<Account> = (0..3)
        .map(|i| acc(account("openai-custom", &format!("acc-{i}"), &mock.url("/v1"), &format!("sk-upstream-{i}"))))
        .collect();
    store.replace_pool("openai-custom", pool).await.expect("pool");
    let mut vars = vec![("REDIS_URL", server.url()), ("REDIS_KEY_PREFIX", PREFIX.to_string())];
    // Imported OAuth accounts would be refreshed: every provider endpoint is a closed local port.
    for name in [
        "GEMINI_BASE_URL",
        "GEMINI_OAUTH_TOKEN_URL",
        "ANTIGRAVITY_BASE_URL",
        "ANTIGRAVITY_OAUTH_TOKEN_URL",
        "CODEX_BASE_URL",
        "CODEX_OAUTH_TOKEN_URL",
        "CODEX_USAGE_URL",
        "QWEN_OAUTH_BASE_URL",
        "QWEN_BASE_URL",
        "IFLOW_OAUTH_BASE_URL",
        "IFLOW_BASE_URL",
        "KIRO_REFRESH_URL",
        "KIRO_REFRESH_IDC_URL",
        "KIRO_BASE_URL",
    ] {
        vars.push((name, "http://127.0.0.1:9/closed".to_string()));
    }
    vars.extend(env.iter().map(|(k, v)| (*k, v.to_string())));
    let dir = tempfile::tempdir().expect("dir");
    let mut gws = Vec::new();
    for _ in 0..n {
        gws.push(Gateway::start(dir.path(), &vars).await);
    }
    Fleet { server, store, gws, mock, dir }
}

pub async fn login(gw: &Gateway, password: &str) -> (u16, Value, Option<String>) {
    let r = client().post(gw.url("/api/login")).json(&json!({"password": password})).send().await.expect("login");
    let status = r.status().as_u16();
    let retry = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
    (status, parse(&r.text().await.unwrap_or_default()), retry)
}

pub async fn token(gw: &Gateway) -> String {
    let (status, body, _) = login(gw, PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    body["token"].as_str().expect("token").to_string()
}

pub async fn call(gw: &Gateway, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut rb = client().request(method, gw.url(path));
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.expect("send");
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}
