//! OAuth subscription providers end to end: real `poolgate` processes, a private Redis (or
//! files), and the mock OAuth providers of `poolgate_tests::mock_oauth` (token endpoints and
//! upstream APIs speaking the real wire formats).
//!
//! The refresh storm: many concurrent requests on replicas that all see one expired token
//! cause exactly one token-endpoint call fleet-wide, also with rotating single-use refresh
//! tokens. A lock holder killed mid-refresh is replaced once its lock expires. A refused
//! refresh marks the account with the reason and is retried once per backoff step. A Redis
//! outage during a refresh loses no token. Every provider serves every client protocol.

mod gateway_common;

use std::time::{Duration, Instant};

use futures::StreamExt;
use gateway_common::*;
use poolgate_store::{Account, RedisStore, Storage};
use poolgate_tests::mock_oauth::{ApiScript, MockOAuth, Prov};
use poolgate_tests::RedisServer;
use serde_json::{json, Value};

const PREFIX: &str = "poa:";

/// The account once `done` holds (outcomes are recorded just after the answer), or after 5 s.
async fn settled(store: &RedisStore, pool: &str, uuid: &str, done: impl Fn(&Account) -> bool) -> Account {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let a = store.get_account(pool, uuid).await.expect("account");
        if done(&a) || Instant::now() > deadline {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn acc(v: Value) -> Account {
    Account::from_map(v.as_object().cloned().expect("object")).expect("account")
}

/// Every URL of every OAuth provider pointed at the mock.
fn mock_env(mock: &MockOAuth) -> Vec<(&'static str, String)> {
    let b = mock.base();
    vec![
        ("GEMINI_BASE_URL", format!("{b}/codeassist")),
        ("GEMINI_OAUTH_TOKEN_URL", format!("{b}/google/token")),
        ("ANTIGRAVITY_BASE_URL", format!("{b}/codeassist")),
        ("ANTIGRAVITY_OAUTH_TOKEN_URL", format!("{b}/google/token")),
        ("CODEX_BASE_URL", format!("{b}/codex/backend-api/codex")),
        ("CODEX_OAUTH_TOKEN_URL", format!("{b}/codex/oauth/token")),
        ("CODEX_USAGE_URL", format!("{b}/codex/backend-api/wham/usage")),
        ("QWEN_OAUTH_BASE_URL", format!("{b}/qwen")),
        ("QWEN_BASE_URL", format!("{b}/qwen/v1")),
        ("IFLOW_OAUTH_BASE_URL", format!("{b}/iflow")),
        ("IFLOW_BASE_URL", format!("{b}/iflow/v1")),
        ("KIRO_REFRESH_URL", format!("{b}/kiro/refreshToken")),
        ("KIRO_REFRESH_IDC_URL", format!("{b}/kiro/oidc/token")),
        ("KIRO_BASE_URL", format!("{b}/kiro/generateAssistantResponse")),
        ("CODE_ASSIST_ONBOARD_POLL_MS", "50".into()),
        ("HEALTH_CHECK_ENABLED", "false".into()),
    ]
}

const PAST: i64 = 1_000_000_000_000; // 2001: long expired

/// An expired native token of `pool` with refresh token `rt`.
fn expired_token(pool: &str, rt: &str, mock: &MockOAuth) -> Value {
    match pool {
        "openai-codex-oauth" => json!({"access_token": "at-old", "refresh_token": rt, "account_id": "acct-mock",
            "expired": "2001-01-01T00:00:00.000Z", "type": "codex", "email": "m@example.com"}),
        "openai-qwen-oauth" => json!({"access_token": "qa-old", "refresh_token": rt, "token_type": "Bearer",
            "resource_url": format!("{}/qwen", mock.base()), "expiry_date": PAST}),
        "openai-iflow" => {
            json!({"access_token": "ia-old", "refresh_token": rt, "expiry_date": PAST, "apiKey": "sk-old"})
        }
        "claude-kiro-oauth" => {
            json!({"accessToken": "aoa-old", "refreshToken": rt, "expiresAt": "2001-01-01T00:00:00.000Z",
            "authMethod": "social", "region": "us-east-1", "profileArn": "arn:aws:codewhisperer:us-east-1:000000000000:profile/MOCK"})
        }
        _ => json!({"access_token": "ya29.old", "refresh_token": rt, "token_type": "Bearer", "expiry_date": PAST}),
    }
}

fn prov_of(pool: &str) -> Prov {
    match pool {
        "openai-codex-oauth" => Prov::Codex,
        "openai-qwen-oauth" => Prov::Qwen,
        "openai-iflow" => Prov::IFlow,
        "claude-kiro-oauth" => Prov::KiroSocial,
        _ => Prov::Google,
    }
}

fn oauth_account(uuid: &str) -> Value {
    json!({"uuid": uuid, "customName": uuid, "PROJECT_ID": "mock-proj"})
}

async fn seed_redis(server: &RedisServer, pools: &[(&str, Vec<(Value, Value)>)]) -> RedisStore {
    let store = RedisStore::open(server.settings(PREFIX)).await.expect("store");
    store.set_config(&json!({"REQUIRED_API_KEY": KEY})).await.expect("config");
    for (pool, accounts) in pools {
        let list: Vec<Account> = accounts.iter().map(|(a, _)| acc(a.clone())).collect();
        store.replace_pool(pool, list).await.expect("pool");
        for (a, token) in accounts {
            let uuid = a["uuid"].as_str().expect("uuid");
            store.set_token(pool, uuid, token).await.expect("token");
        }
    }
    store
}

fn redis_env(server: &RedisServer, mock: &MockOAuth, extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut env = mock_env(mock);
    env.push(("REDIS_URL", server.url()));
    env.push(("REDIS_KEY_PREFIX", PREFIX.to_string()));
    for (k, v) in extra {
        env.push((k, v.to_string()));
    }
    env
}

async fn start_replicas(n: usize, env: &[(&str, String)]) -> (Vec<Gateway>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("dir");
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(Gateway::start(dir.path(), env).await);
    }
    (out, dir)
}

/// `total` chat requests for `pool` spread over `gws`, all at once; returns the statuses and
/// the bodies of the failures.
async fn storm(gws: &[Gateway], pool: &str, model: &str, total: usize) -> (usize, Vec<String>) {
    let client = client();
    let urls: Vec<String> = gws.iter().map(|g| g.url(&format!("/{pool}/v1/chat/completions"))).collect();
    let results = futures::stream::iter(0..total)
        .map(|i| {
            let (client, url) = (client.clone(), urls[i % urls.len()].clone());
            let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": i % 4 == 0});
            async move {
                match client.post(url).bearer_auth(KEY).json(&body).send().await {
                    Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
                    Err(e) => (0, e.to_string()),
                }
            }
        })
        .buffer_unordered(total)
        .collect::<Vec<_>>()
        .await;
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    (ok, results.into_iter().filter(|(s, _)| *s != 200).map(|(s, b)| format!("{s}: {b}")).collect())
}

async fn storm_case(pool: &str, model: &str, rt: &str) {
    let mock = MockOAuth::start().await.expect("mock");
    let prov = prov_of(pool);
    mock.seed_refresh_token(prov, rt);
    let server = RedisServer::start().expect("redis");
    let store = seed_redis(&server, &[(pool, vec![(oauth_account("acc-1"), expired_token(pool, rt, &mock))])]).await;
    let (gws, _dir) = start_replicas(3, &redis_env(&server, &mock, &[("OAUTH_REFRESH_TICK_MS", "600000")])).await;
    let (ok, failed) = storm(&gws, pool, model, 200).await;
    assert_eq!(ok, 200, "every request succeeds: {:?}", &failed[..failed.len().min(3)]);
    assert_eq!(mock.token_calls(prov), 1, "one refresh for the whole fleet");
    assert!(mock.reused_refresh_tokens(prov).is_empty(), "no refresh token was sent twice");
    let stored = store.load_token(pool, "acc-1").await.expect("read").expect("token");
    let access_field = match pool {
        "openai-iflow" => "apiKey",
        "claude-kiro-oauth" => "accessToken",
        _ => "access_token",
    };
    let new_access = stored[access_field].as_str().expect("access").to_string();
    let seen = mock.access_tokens_seen(prov);
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|t| *t == new_access), "every replica used the new token only: {seen:?}");
    if pool == "openai-codex-oauth" {
        assert_ne!(stored["refresh_token"], rt, "the rotated refresh token was stored");
    }
    if pool == "claude-kiro-oauth" {
        let new_rt = stored["refreshToken"].as_str().expect("rt");
        assert_ne!(new_rt, rt);
        assert_eq!(store.find_kiro_account_by_refresh_token(new_rt).await.expect("index"), Some("acc-1".into()));
        assert_eq!(
            store.find_kiro_account_by_refresh_token(rt).await.expect("index"),
            None,
            "the old index entry is gone"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn codex_refresh_storm_rotating_tokens_three_replicas_one_call() {
    storm_case("openai-codex-oauth", "gpt-5-codex", "rt-seed-codex").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gemini_cli_refresh_storm_three_replicas_one_call() {
    storm_case("gemini-cli-oauth", "gemini-2.5-flash", "g-rt-seed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn iflow_refresh_storm_fetches_one_api_key_and_signs() {
    storm_case("openai-iflow", "glm-4.6", "ir-seed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kiro_social_refresh_storm_keeps_the_refresh_index() {
    storm_case("claude-kiro-oauth", "claude-sonnet-4-5", "aor-seed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kiro_builder_id_refresh_storm_uses_oidc() {
    let mock = MockOAuth::start().await.expect("mock");
    let pool = "claude-kiro-oauth";
    mock.seed_refresh_token(Prov::KiroOidc, "aor-idc");
    let server = RedisServer::start().expect("redis");
    let mut token = expired_token(pool, "aor-idc", &mock);
    token["authMethod"] = json!("builder-id");
    token["clientId"] = json!("cid");
    token["clientSecret"] = json!("csecret");
    let store = seed_redis(&server, &[(pool, vec![(oauth_account("k-1"), token)])]).await;
    let (gws, _dir) = start_replicas(3, &redis_env(&server, &mock, &[("OAUTH_REFRESH_TICK_MS", "600000")])).await;
    let (ok, failed) = storm(&gws, pool, "claude-sonnet-4-5", 120).await;
    assert_eq!(ok, 120, "{:?}", &failed[..failed.len().min(3)]);
    assert_eq!(mock.token_calls(Prov::KiroOidc), 1);
    assert_eq!(mock.token_calls(Prov::KiroSocial), 0, "builder-id accounts never use the social endpoint");
    let stored = store.load_token(pool, "k-1").await.expect("read").expect("token");
    let new_rt = stored["refreshToken"].as_str().expect("rt");
    assert_ne!(new_rt, "aor-idc");
    assert_eq!(store.find_kiro_account_by_refresh_token(new_rt).await.expect("index"), Some("k-1".into()));
    assert_eq!(store.find_kiro_account_by_refresh_token("aor-idc").await.expect("index"), None);
    assert_eq!(stored["clientSecret"], "csecret", "fields the answer lacks are kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kiro_upstream_errors_set_the_account_state() {
    let mock = MockOAuth::start().await.expect("mock");
    let (pool, pool_b) = ("claude-kiro-oauth", "claude-kiro-oauth-b");
    mock.seed_refresh_token(Prov::KiroSocial, "aor-err");
    mock.seed_refresh_token(Prov::KiroSocial, "aor-err-b");
    let server = RedisServer::start().expect("redis");
    let store = seed_redis(
        &server,
        &[
            (pool, vec![(oauth_account("k-1"), expired_token(pool, "aor-err", &mock))]),
            (pool_b, vec![(oauth_account("k-2"), expired_token(pool, "aor-err-b", &mock))]),
        ],
    )
    .await;
    let (gws, _dir) = start_replicas(1, &redis_env(&server, &mock, &[("OAUTH_REFRESH_TICK_MS", "600000")])).await;
    let anthropic = |stream: bool| {
        json!({"model": "claude-sonnet-4-5", "max_tokens": 50, "stream": stream,
        "messages": [{"role": "user", "content": "hi"}]})
    };
    // An exception frame mid-stream ends the stream with an error, never a normal end_turn.
    mock.set_api_script(Prov::KiroSocial, ApiScript::KiroException);
    let (status, body) = post(&gws[0].url(&format!("/{pool}/v1/messages")), &anthropic(true)).await;
    assert_eq!(status, 200);
    assert!(body.contains("event: error") && !body.contains("end_turn"), "{body}");
    let a = settled(&store, pool, "k-1", |a| a.last_error_message().is_some()).await;
    assert!(a.last_error_message().unwrap_or_default().contains("Too many requests"), "{:?}", a.last_error_message());
    // 402: unhealthy until the first of next month, with the quota reason.
    mock.set_api_script(Prov::KiroSocial, ApiScript::Status(402));
    let (status, body) = post(&gws[0].url(&format!("/{pool_b}/v1/messages")), &anthropic(false)).await;
    assert_eq!(status, 503, "{body}");
    let a = settled(&store, pool_b, "k-2", |a| a.scheduled_recovery_time().is_some()).await;
    assert!(!a.is_healthy());
    let recover = a.scheduled_recovery_time().unwrap_or_default().to_string();
    assert!(recover.ends_with("-01T00:00:00.000Z"), "{recover}");
    assert!(a.last_error_message().unwrap_or_default().contains("Limit reached"), "{:?}", a.last_error_message());
    // 403 naming the token: refreshed and retried once; still refused → unhealthy with the reason.
    let (pool_c, before) = ("claude-kiro-oauth-c", mock.token_calls(Prov::KiroSocial));
    mock.seed_refresh_token(Prov::KiroSocial, "aor-err-c");
    store.add_account(pool_c, acc(oauth_account("k-3"))).await.expect("account");
    store.set_token(pool_c, "k-3", &expired_token(pool, "aor-err-c", &mock)).await.expect("token");
    mock.set_api_script(Prov::KiroSocial, ApiScript::Normal);
    let (status, body) = post(&gws[0].url(&format!("/{pool_c}/v1/messages")), &anthropic(false)).await;
    assert_eq!(status, 200, "{body}");
    mock.set_api_script(Prov::KiroSocial, ApiScript::Status(403));
    let (status, _) = post(&gws[0].url(&format!("/{pool_c}/v1/messages")), &anthropic(false)).await;
    assert_eq!(status, 503);
    assert_eq!(mock.token_calls(Prov::KiroSocial), before + 2, "one refresh on first use, one after the 403");
    let a = settled(&store, pool_c, "k-3", |a| !a.is_healthy()).await;
    assert!(!a.is_healthy() && a.last_error_message().unwrap_or_default().contains("bearer token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kiro_long_tool_names_are_shortened_and_mapped_back() {
    let mock = MockOAuth::start().await.expect("mock");
    let pool = "claude-kiro-oauth";
    mock.seed_refresh_token(Prov::KiroSocial, "aor-names");
    let server = RedisServer::start().expect("redis");
    let _store =
        seed_redis(&server, &[(pool, vec![(oauth_account("k-1"), expired_token(pool, "aor-names", &mock))])]).await;
    let (gws, _dir) = start_replicas(1, &redis_env(&server, &mock, &[("OAUTH_REFRESH_TICK_MS", "600000")])).await;
    let long = format!("mcp__weather_service__{}", "get_the_current_weather_for_a_city_".repeat(2));
    assert!(long.len() > 64);
    for stream in [false, true] {
        let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 50, "stream": stream,
            "messages": [{"role": "user", "content": "weather?"}],
            "tools": [{"name": long, "description": "w", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]});
        let (status, text) = post(&gws[0].url(&format!("/{pool}/v1/messages")), &body).await;
        assert_eq!(status, 200, "{text}");
        assert!(text.contains(&long), "the client sees its own tool name (stream={stream}): {text}");
    }
    let sent = mock.requests(Prov::KiroSocial);
    let req = sent.iter().rev().find(|r| r.path.starts_with("/kiro/generateAssistantResponse")).expect("kiro call");
    let v: Value = serde_json::from_slice(&req.body).expect("json");
    let name = v
        .pointer(
            "/conversationState/currentMessage/userInputMessage/userInputMessageContext/tools/0/toolSpecification/name",
        )
        .and_then(Value::as_str)
        .expect("tool name");
    assert!(name.len() <= 64 && name != long, "shortened upstream: {name}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kiro_request_starts_are_spaced_across_replicas() {
    let mock = MockOAuth::start().await.expect("mock");
    let pool = "claude-kiro-oauth";
    mock.seed_refresh_token(Prov::KiroSocial, "aor-gate");
    let server = RedisServer::start().expect("redis");
    let _store =
        seed_redis(&server, &[(pool, vec![(oauth_account("k-1"), expired_token(pool, "aor-gate", &mock))])]).await;
    let env =
        redis_env(&server, &mock, &[("KIRO_REQUEST_MIN_INTERVAL_MS", "200"), ("OAUTH_REFRESH_TICK_MS", "600000")]);
    let (gws, _dir) = start_replicas(2, &env).await;
    let (ok, failed) = storm(&gws, pool, "claude-sonnet-4-5", 8).await;
    assert_eq!(ok, 8, "{failed:?}");
    let mut at: Vec<Instant> = mock
        .requests(Prov::KiroSocial)
        .into_iter()
        .filter(|r| r.path.starts_with("/kiro/generateAssistantResponse"))
        .map(|r| r.at)
        .collect();
    at.sort();
    assert_eq!(at.len(), 8);
    for w in at.windows(2) {
        let gap = w[1] - w[0];
        assert!(gap >= Duration::from_millis(180), "request starts {gap:?} apart across two replicas");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn usage_endpoint_serves_every_providers_quota_from_the_cache() {
    let mock = MockOAuth::start().await.expect("mock");
    let server = RedisServer::start().expect("redis");
    let mut pools = Vec::new();
    for pool in ["gemini-cli-oauth", "gemini-antigravity", "openai-codex-oauth", "claude-kiro-oauth"] {
        let rt = format!("rt-u-{pool}");
        mock.seed_refresh_token(prov_of(pool), &rt);
        pools.push((pool, vec![(oauth_account(&format!("{pool}-1")), expired_token(pool, &rt, &mock))]));
    }
    let _store = seed_redis(&server, &pools).await;
    let (gws, _dir) = start_replicas(2, &redis_env(&server, &mock, &[])).await;
    let get = |url: String| async move {
        let r = client().get(url).bearer_auth(KEY).send().await.expect("get");
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    };
    let (status, text) = get(gws[0].url("/api/usage?refresh=true")).await;
    assert_eq!(status, 200, "{text}");
    let fresh = parse(&text);
    assert_eq!(fresh["fromCache"], false);
    for pool in ["gemini-cli-oauth", "gemini-antigravity", "openai-codex-oauth", "claude-kiro-oauth"] {
        let p = &fresh["providers"][pool];
        assert_eq!(p["successCount"], 1, "{pool}: {p}");
    }
    assert_eq!(
        fresh["providers"]["gemini-cli-oauth"]["instances"][0]["usage"]["usageBreakdown"][0]["remainingPercent"],
        75.0
    );
    assert_eq!(fresh["providers"]["claude-kiro-oauth"]["instances"][0]["usage"]["daysUntilReset"], 12);
    // Another replica serves the same numbers from the shared cache.
    let (status, text) = get(gws[1].url("/api/usage/openai-codex-oauth")).await;
    assert_eq!(status, 200);
    let cached = parse(&text);
    assert_eq!(cached["fromCache"], true);
    assert_eq!(cached["instances"][0]["usage"]["usageBreakdown"][0]["currentUsage"], 12.5);
    let (status, _) =
        client().get(gws[1].url("/api/usage")).send().await.map(|r| (r.status().as_u16(), ())).expect("get");
    assert_eq!(status, 401, "the usage endpoint needs the key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_lock_holder_is_replaced_after_the_lock_expires() {
    let mock = MockOAuth::start().await.expect("mock");
    let pool = "openai-qwen-oauth";
    mock.seed_refresh_token(Prov::Qwen, "qr-seed");
    mock.set_token_delay(Prov::Qwen, Duration::from_secs(3));
    let server = RedisServer::start().expect("redis");
    let store =
        seed_redis(&server, &[(pool, vec![(oauth_account("acc-1"), expired_token(pool, "qr-seed", &mock))])]).await;
    let env = redis_env(&server, &mock, &[("OAUTH_REFRESH_LOCK_MS", "1500"), ("OAUTH_REFRESH_TICK_MS", "600000")]);
    let (mut gws, _dir) = start_replicas(2, &env).await;
    // Replica 0 takes the lock and calls the (slow) token endpoint; it is killed mid-call.
    let url0 = gws[0].url(&format!("/{pool}/v1/chat/completions"));
    let first = tokio::spawn(async move { post(&url0, &chat("qwen3-coder-plus", false)).await });
    let deadline = Instant::now() + Duration::from_secs(5);
    while mock.token_calls(Prov::Qwen) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(mock.token_calls(Prov::Qwen), 1, "replica 0 started the refresh");
    let pid = gws[0].pid();
    let _ = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status();
    let _ = first.await;
    mock.set_token_delay(Prov::Qwen, Duration::ZERO);
    let started = Instant::now();
    let (status, body) =
        post(&gws[1].url(&format!("/{pool}/v1/chat/completions")), &chat("qwen3-coder-plus", false)).await;
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(8), "replica 1 was not blocked past the lock expiry: {waited:?}");
    let reused = mock.reused_refresh_tokens(Prov::Qwen);
    if reused.is_empty() {
        assert_eq!(status, 200, "{body}");
        assert_eq!(mock.token_calls(Prov::Qwen), 2, "the second replica completed the refresh");
    } else {
        let a = store.get_account(pool, "acc-1").await.expect("account");
        let why = a.last_error_message().unwrap_or_default().to_string();
        assert!(why.contains("consumed"), "the probable reuse is reported: {why}");
        assert_ne!(status, 200);
    }
    drop(gws.remove(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_grant_marks_the_account_and_backs_off_while_others_serve() {
    let mock = MockOAuth::start().await.expect("mock");
    let pool = "gemini-cli-oauth";
    mock.seed_refresh_token(Prov::Google, "g-good");
    mock.seed_access_token(Prov::Google, "ya29.valid", Duration::from_secs(3600));
    let server = RedisServer::start().expect("redis");
    let mut good = expired_token(pool, "g-good", &mock);
    good["access_token"] = json!("ya29.valid");
    good["expiry_date"] = json!(poolgate_store::time::epoch_ms() + 3_600_000);
    let store = seed_redis(
        &server,
        &[(pool, vec![(oauth_account("bad"), expired_token(pool, "g-revoked", &mock)), (oauth_account("good"), good)])],
    )
    .await;
    let env = redis_env(
        &server,
        &mock,
        &[("OAUTH_REFRESH_BACKOFF_MS", "2000"), ("OAUTH_REFRESH_TICK_MS", "100"), ("CRON_REFRESH_TOKEN", "false")],
    );
    let (gws, _dir) = start_replicas(2, &env).await;
    let (ok, failed) = storm(&gws, pool, "gemini-2.5-flash", 40).await;
    assert_eq!(ok, 40, "the good account serves everything: {failed:?}\n{}", gws[0].logs());
    assert_eq!(mock.token_calls_for(Prov::Google, "g-revoked"), 1, "one refused call, not one per request");
    let bad = store.get_account(pool, "bad").await.expect("bad");
    assert!(bad.needs_refresh() && !bad.is_healthy());
    assert!(bad.last_error_message().unwrap_or_default().contains("invalid_grant"), "{:?}", bad.last_error_message());
    // Retries: one call per backoff step across both replicas (2 s, then 4 s).
    tokio::time::sleep(Duration::from_millis(3000)).await;
    assert_eq!(mock.token_calls_for(Prov::Google, "g-revoked"), 2, "one retry after the first step");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(mock.token_calls_for(Prov::Google, "g-revoked"), 2, "the second step is longer");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(mock.token_calls_for(Prov::Google, "g-revoked"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_outage_during_a_refresh_loses_no_token() {
    let mock = MockOAuth::start().await.expect("mock");
    let pool = "openai-codex-oauth";
    mock.seed_refresh_token(Prov::Codex, "rt-outage");
    mock.set_token_delay(Prov::Codex, Duration::from_millis(1500));
    let mut server = RedisServer::start().expect("redis");
    let store =
        seed_redis(&server, &[(pool, vec![(oauth_account("acc-1"), expired_token(pool, "rt-outage", &mock))])]).await;
    let (gws, _dir) = start_replicas(1, &redis_env(&server, &mock, &[("OAUTH_REFRESH_TICK_MS", "600000")])).await;
    let url = gws[0].url(&format!("/{pool}/v1/chat/completions"));
    let req = tokio::spawn(async move { post(&url, &chat("gpt-5-codex", false)).await });
    let deadline = Instant::now() + Duration::from_secs(5);
    while mock.token_calls(Prov::Codex) == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop();
    let (status, body) = req.await.expect("join");
    assert_eq!(status, 200, "served with the new token while Redis is down: {body}");
    server.restart().expect("restart");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let stored = store.load_token(pool, "acc-1").await.ok().flatten();
        if let Some(t) = stored.filter(|t| t["refresh_token"] != "rt-outage") {
            assert_eq!(mock.token_calls(Prov::Codex), 1);
            assert!(t["access_token"].as_str().is_some_and(|a| a != "at-old"));
            break;
        }
        assert!(Instant::now() < deadline, "the refreshed token reached Redis after the outage");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn codex_token_under_the_references_key_is_moved() {
    let mock = MockOAuth::start().await.expect("mock");
    let pool = "openai-codex-oauth";
    mock.seed_access_token(Prov::Codex, "at-legacy", Duration::from_secs(3600));
    let server = RedisServer::start().expect("redis");
    let store = seed_redis(&server, &[(pool, vec![])]).await;
    store.add_account(pool, acc(oauth_account("acc-1"))).await.expect("account");
    let mut legacy = expired_token(pool, "rt-legacy", &mock);
    legacy["access_token"] = json!("at-legacy");
    legacy["expired"] = json!(poolgate_store::time::iso(chrono::Utc::now() + chrono::Duration::hours(1)));
    store.set_token("openai-codex", "acc-1", &legacy).await.expect("legacy token");
    let (gws, _dir) = start_replicas(1, &redis_env(&server, &mock, &[])).await;
    let (status, body) = post(&gws[0].url(&format!("/{pool}/v1/chat/completions")), &chat("gpt-5", false)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(store.load_token(pool, "acc-1").await.expect("read"), Some(legacy));
    assert_eq!(store.load_token("openai-codex", "acc-1").await.expect("read"), None);
    assert_eq!(mock.token_calls(Prov::Codex), 0);
}

/// Every provider × every client protocol × unary/stream, with and without tools, on files.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_provider_serves_every_client_protocol() {
    let mock = MockOAuth::start().await.expect("mock");
    mock.set_code_assist_project(None);
    let dir = tempfile::tempdir().expect("dir");
    let pools = [
        ("gemini-cli-oauth", "gemini-2.5-flash", "GEMINI_OAUTH_CREDS_FILE_PATH"),
        ("gemini-antigravity", "gemini-3-flash-preview", "ANTIGRAVITY_OAUTH_CREDS_FILE_PATH"),
        ("openai-codex-oauth", "gpt-5-codex", "CODEX_OAUTH_CREDS_FILE_PATH"),
        ("openai-qwen-oauth", "qwen3-coder-plus", "QWEN_OAUTH_CREDS_FILE_PATH"),
        ("openai-iflow", "glm-4.6", "IFLOW_TOKEN_FILE_PATH"),
        ("claude-kiro-oauth", "claude-sonnet-4-5", "KIRO_OAUTH_CREDS_FILE_PATH"),
    ];
    let mut pool_json = serde_json::Map::new();
    for (pool, _, field) in pools {
        let rt = format!("rt-{pool}");
        mock.seed_refresh_token(prov_of(pool), &rt);
        let path = dir.path().join(format!("{pool}.json"));
        std::fs::write(&path, expired_token(pool, &rt, &mock).to_string()).expect("token file");
        // Discovery is exercised: no PROJECT_ID.
        pool_json.insert(pool.into(), json!([{"uuid": format!("{pool}-1"), field: path.to_string_lossy()}]));
    }
    std::fs::write(dir.path().join("config.json"), json!({"REQUIRED_API_KEY": KEY}).to_string()).expect("config");
    std::fs::write(dir.path().join("provider_pools.json"), Value::Object(pool_json).to_string()).expect("pools");
    let gw = Gateway::start(dir.path(), &mock_env(&mock)).await;
    for (pool, model, _) in pools {
        for stream in [false, true] {
            for tools in [false, true] {
                for protocol in ["openai", "responses", "anthropic", "gemini"] {
                    let (path, body) = client_request(protocol, model, stream, tools);
                    let url = gw.url(&format!("/{pool}{path}"));
                    let (status, text) = post_with(&url, &body, &[("authorization", format!("Bearer {KEY}"))]).await;
                    let what = format!("{pool} {protocol} stream={stream} tools={tools}");
                    assert_eq!(status, 200, "{what}: {text}\n{}", gw.logs());
                    if tools {
                        assert!(
                            text.contains("get_weather") && text.contains("Paris"),
                            "{what}: tool call expected: {text}"
                        );
                    } else {
                        let got = if stream { sse_text(&text) } else { text.clone() };
                        assert!(got.contains("Hello from"), "{what}: text expected: {text}");
                    }
                }
            }
        }
        // The reference's model list for the type.
        let r = client().get(gw.url(&format!("/{pool}/v1/models"))).bearer_auth(KEY).send().await.expect("models");
        let list = r.text().await.unwrap_or_default();
        assert!(list.contains(&format!("\"{model}\"")), "{pool}: {list}");
        // The refreshed token was written back atomically, 0600, in the provider's shape.
        let path = dir.path().join(format!("{pool}.json"));
        let meta = std::fs::metadata(&path).expect("token file");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{pool}");
        let t: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        let rt_field = if pool == "claude-kiro-oauth" { "refreshToken" } else { "refresh_token" };
        assert!(t.get(rt_field).is_some(), "{pool}: native field names kept: {t}");
        assert!(mock.token_calls(prov_of(pool)) >= 1, "{pool}: the expired token was refreshed");
    }
    // Each provider's request shape reached the mock as the upstream expects.
    let codex = mock.requests(Prov::Codex);
    let last = codex.iter().rev().find(|r| r.path.contains("/responses")).expect("codex call");
    assert_eq!(last.headers.get("chatgpt-account-id").map(String::as_str), Some("acct-mock"));
    let qwen = mock.requests(Prov::Qwen);
    let q = qwen.iter().rev().find(|r| r.path.contains("chat/completions")).expect("qwen call");
    assert_eq!(q.headers.get("x-dashscope-authtype").map(String::as_str), Some("qwen-oauth"));
}

/// A request in `protocol`'s shape: (path, body).
fn client_request(protocol: &str, model: &str, stream: bool, tools: bool) -> (String, Value) {
    let schema = json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
    match protocol {
        "openai" => {
            let mut b =
                json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "weather?"}]});
            if tools {
                b["tools"] = json!([{"type": "function", "function": {"name": "get_weather", "description": "w", "parameters": schema}}]);
            }
            ("/v1/chat/completions".into(), b)
        }
        "responses" => {
            let mut b = json!({"model": model, "stream": stream, "input": "weather?"});
            if tools {
                b["tools"] =
                    json!([{"type": "function", "name": "get_weather", "description": "w", "parameters": schema}]);
            }
            ("/v1/responses".into(), b)
        }
        "anthropic" => {
            let mut b = json!({"model": model, "stream": stream, "max_tokens": 100, "messages": [{"role": "user", "content": "weather?"}]});
            if tools {
                b["tools"] = json!([{"name": "get_weather", "description": "w", "input_schema": schema}]);
            }
            ("/v1/messages".into(), b)
        }
        _ => {
            let mut b = json!({"contents": [{"role": "user", "parts": [{"text": "weather?"}]}]});
            if tools {
                b["tools"] = json!([{"functionDeclarations": [{"name": "get_weather", "description": "w", "parameters": schema}]}]);
            }
            let method = if stream { "streamGenerateContent?alt=sse" } else { "generateContent" };
            (format!("/v1beta/models/{model}:{method}"), b)
        }
    }
}

/// Benchmark (run by `scripts/bench-refresh.sh`, not in CI): latency of requests that arrive
/// together on 3 replicas while the account's token is expired, against the same storm with a
/// valid token. The token endpoint answers after 50 ms, like a real one nearby.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore]
async fn refresh_storm_latency_benchmark() {
    let pool = "openai-codex-oauth";
    for (label, expired) in [("valid token", false), ("expired token", true)] {
        let mock = MockOAuth::start().await.expect("mock");
        mock.seed_refresh_token(Prov::Codex, "rt-bench");
        mock.set_token_delay(Prov::Codex, Duration::from_millis(50));
        let mut token = expired_token(pool, "rt-bench", &mock);
        if !expired {
            mock.seed_access_token(Prov::Codex, "at-old", Duration::from_secs(3600));
            token["expired"] = json!(poolgate_store::time::iso(chrono::Utc::now() + chrono::Duration::hours(1)));
        }
        let server = RedisServer::start().expect("redis");
        let _store = seed_redis(&server, &[(pool, vec![(oauth_account("acc-1"), token)])]).await;
        let (gws, _dir) = start_replicas(3, &redis_env(&server, &mock, &[("OAUTH_REFRESH_TICK_MS", "600000")])).await;
        let client = client();
        let urls: Vec<String> = gws.iter().map(|g| g.url(&format!("/{pool}/v1/chat/completions"))).collect();
        let total = 300;
        let lat = futures::stream::iter(0..total)
            .map(|i| {
                let (client, url) = (client.clone(), urls[i % 3].clone());
                async move {
                    let t = Instant::now();
                    let r = client.post(url).bearer_auth(KEY).json(&chat("gpt-5", false)).send().await;
                    let ok = matches!(&r, Ok(r) if r.status() == 200);
                    (t.elapsed(), ok)
                }
            })
            .buffer_unordered(total)
            .collect::<Vec<_>>()
            .await;
        let mut ms: Vec<f64> = lat.iter().map(|(d, _)| d.as_secs_f64() * 1000.0).collect();
        ms.sort_by(|a, b| a.total_cmp(b));
        let ok = lat.iter().filter(|(_, ok)| *ok).count();
        let pct = |p: f64| ms[((ms.len() as f64 * p) as usize).min(ms.len() - 1)];
        println!(
            "BENCH refresh-storm {label}: {ok}/{total} ok, token calls {}, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            mock.token_calls(Prov::Codex),
            pct(0.5),
            pct(0.99),
            ms[ms.len() - 1]
        );
    }
}

/// Benchmark (run by `scripts/bench-kiro.sh`, not in CI): what a replica adds to a streamed Kiro
/// answer (refresh done beforehand; event-stream decoded and re-encoded as Anthropic SSE),
/// against replaying the very request the replica sent straight to the mock.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore]
async fn kiro_gateway_overhead_benchmark() {
    let mock = MockOAuth::start().await.expect("mock");
    let pool = "claude-kiro-oauth";
    mock.seed_refresh_token(Prov::KiroSocial, "aor-bench");
    mock.set_api_script(Prov::KiroSocial, ApiScript::KiroChunking(poolgate_tests::mock_oauth::Chunking::Aligned));
    let server = RedisServer::start().expect("redis");
    let _store =
        seed_redis(&server, &[(pool, vec![(oauth_account("k-1"), expired_token(pool, "aor-bench", &mock))])]).await;
    let (gws, _dir) = start_replicas(1, &redis_env(&server, &mock, &[("OAUTH_REFRESH_TICK_MS", "600000")])).await;
    let url = gws[0].url(&format!("/{pool}/v1/messages"));
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 50, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let client = client();
    let n = 300;
    let mut via = Vec::with_capacity(n);
    for i in 0..n + 20 {
        let t = Instant::now();
        let r = client.post(&url).bearer_auth(KEY).json(&body).send().await.expect("send");
        let text = r.text().await.unwrap_or_default();
        assert!(text.contains("message_stop"), "{text}");
        if i >= 20 {
            via.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    let sent = mock.requests(Prov::KiroSocial);
    let rec = sent.iter().rev().find(|r| r.path.starts_with("/kiro/generateAssistantResponse")).expect("call").clone();
    let mut direct = Vec::with_capacity(n);
    for i in 0..n + 20 {
        let mut rb = client.post(format!("{}/kiro/generateAssistantResponse", mock.base())).body(rec.body.clone());
        for (k, v) in &rec.headers {
            if !matches!(k.as_str(), "host" | "content-length") {
                rb = rb.header(k.as_str(), v.as_str());
            }
        }
        let t = Instant::now();
        let r = rb.send().await.expect("send");
        assert_eq!(r.status(), 200);
        let _ = r.bytes().await;
        if i >= 20 {
            direct.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    let p = |v: &mut Vec<f64>, q: f64| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[((v.len() as f64 * q) as usize).min(v.len() - 1)]
    };
    let (d50, d99, g50, g99) = (p(&mut direct, 0.5), p(&mut direct, 0.99), p(&mut via, 0.5), p(&mut via, 0.99));
    println!(
        "BENCH kiro-gateway: direct p50 {d50:.2} ms p99 {d99:.2} ms; through poolgate p50 {g50:.2} ms p99 {g99:.2} ms; added p50 {:.2} ms p99 {:.2} ms",
        g50 - d50,
        g99 - d99
    );
}
