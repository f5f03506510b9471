//! The admin API across real `poolgate` replicas on one private Redis (and on files): sessions
//! valid on every replica, the login guard shared by all, config changes applied everywhere
//! under traffic with no failed request, account management that never loses a count, the
//! live event feed, and no secret in any answer or log.

mod admin_common;
mod gateway_common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use admin_common::*;
use futures::StreamExt;
use gateway_common::*;
use poolgate_store::{Account, RedisStore, Storage};
use poolgate_tests::mock_upstream::MockUpstream;
use poolgate_tests::RedisServer;
use serde_json::{json, Value};

/// Every admin route that needs a session (method, path).
const GUARDED: &[(&str, &str)] = &[
    ("POST", "/api/logout"),
    ("POST", "/api/admin-password"),
    ("GET", "/api/config"),
    ("POST", "/api/config"),
    ("POST", "/api/reload-config"),
    ("GET", "/api/providers"),
    ("POST", "/api/providers"),
    ("GET", "/api/providers/supported"),
    ("GET", "/api/providers/openai-custom"),
    ("PUT", "/api/providers/openai-custom/acc-0"),
    ("DELETE", "/api/providers/openai-custom/acc-0"),
    ("POST", "/api/providers/openai-custom/acc-0/disable"),
    ("POST", "/api/providers/openai-custom/acc-0/enable"),
    ("POST", "/api/providers/openai-custom/acc-0/reset-health"),
    ("POST", "/api/providers/openai-custom/acc-0/health-check"),
    ("POST", "/api/providers/openai-custom/acc-0/detect-models"),
    ("PUT", "/api/providers/openai-custom/acc-0/credentials"),
    ("POST", "/api/providers/openai-custom/acc-0/force-expire"),
    ("POST", "/api/providers/openai-custom/reset-health"),
    ("POST", "/api/providers/openai-custom/health-check"),
    ("DELETE", "/api/providers/openai-custom/delete-unhealthy"),
    ("POST", "/api/kiro/batch-import-tokens"),
    ("POST", "/api/gemini/batch-import-tokens"),
    ("POST", "/api/codex/batch-import-tokens"),
    ("GET", "/api/plugins"),
    ("POST", "/api/plugins/api-potluck/toggle"),
    ("GET", "/api/system"),
    ("GET", "/api/replicas"),
    ("GET", "/api/access-info"),
    ("GET", "/api/events"),
];

#[tokio::test]
async fn sessions_are_valid_on_every_replica_and_end_everywhere() {
    let f = fleet(2, &[("LOGIN_EXPIRY", "3"), ("LOGIN_MIN_INTERVAL", "0")]).await;
    let (a, b) = (&f.gws[0], &f.gws[1]);
    let t = token(a).await;
    assert_eq!(t.len(), 64, "32 random bytes in hex");
    let (status, pools) = call(b, "GET", "/api/providers", Some(&t), None).await;
    assert_eq!(status, 200, "a session from A works on B: {pools}");
    assert_eq!(pools["openai-custom"].as_array().map(Vec::len), Some(3));

    // Wrong, missing and malformed tokens are refused on every guarded route, in JSON.
    for (method, path) in GUARDED {
        for bad in [None, Some("0".repeat(64)), Some("not a token".into())] {
            let (status, body) = call(b, method, path, bad.as_deref(), Some(json!({}))).await;
            assert_eq!(status, 401, "{method} {path} with {bad:?}: {body}");
            assert_eq!(body["error"]["code"], "UNAUTHORIZED", "{method} {path}");
        }
    }
    // The store keeps only the token's hash.
    let mut redis =
        redis::Client::open(f.server.url()).expect("client").get_multiplexed_async_connection().await.expect("conn");
    let raw: Option<String> =
        redis::cmd("GET").arg(format!("{PREFIX}sessions:{t}")).query_async(&mut redis).await.expect("get");
    assert!(raw.is_none(), "no session under the raw token");
    let hashed: Option<String> = redis::cmd("GET")
        .arg(format!("{PREFIX}sessions:{}", poolgate_store::Session::token_hash(&t)))
        .query_async(&mut redis)
        .await
        .expect("get");
    assert!(hashed.is_some_and(|v| !v.contains(&t)), "the session is under the token's hash");

    // Logout on B ends the session on A at once.
    let t2 = token(b).await;
    assert_eq!(call(a, "POST", "/api/logout", Some(&t2), None).await.0, 200);
    assert_eq!(call(b, "GET", "/api/system", Some(&t2), None).await.0, 401, "logged out on A, refused on B");
    assert_eq!(call(a, "GET", "/api/system", Some(&t), None).await.0, 200, "other sessions stay");

    // Sessions expire after LOGIN_EXPIRY on every replica.
    tokio::time::sleep(Duration::from_millis(3300)).await;
    for gw in [a, b] {
        assert_eq!(call(gw, "GET", "/api/system", Some(&t), None).await.0, 401, "expired");
    }
    for gw in &f.gws {
        let logs = gw.logs();
        assert!(!logs.contains(&t) && !logs.contains(PASSWORD), "no token or password in logs");
    }
}

#[tokio::test]
async fn the_login_guard_holds_across_replicas() {
    let f =
        fleet(2, &[("LOGIN_MAX_ATTEMPTS", "3"), ("LOGIN_LOCKOUT_DURATION", "60"), ("LOGIN_MIN_INTERVAL", "0")]).await;
    let (a, b) = (&f.gws[0], &f.gws[1]);
    let (s1, body1, _) = login(a, "wrong-1").await;
    assert_eq!((s1, body1["error"]["code"].as_str()), (401, Some("INVALID_PASSWORD")), "{body1}");
    assert!(body1["error"]["message"].as_str().unwrap_or("").contains("2 attempts remaining"), "{body1}");
    let (s2, body2, _) = login(b, "wrong-2").await;
    assert!(body2["error"]["message"].as_str().unwrap_or("").contains("1 attempts remaining"), "B counts A's: {body2}");
    assert_eq!(s2, 401);
    let (s3, _, _) = login(a, "wrong-3").await;
    assert_eq!(s3, 401);
    for gw in [a, b] {
        let (status, body, retry) = login(gw, PASSWORD).await;
        assert_eq!(status, 429, "locked out everywhere, even with the right password: {body}");
        assert_eq!(body["error"]["code"], "LOCKED_OUT");
        let secs: u64 = retry.expect("Retry-After").parse().expect("seconds");
        assert!((50..=60).contains(&secs), "{secs}");
    }
    // Empty and malformed bodies are the caller's fault, not a crash.
    let r = client().post(b.url("/api/login")).body("{not json").send().await.expect("send");
    assert!(matches!(r.status().as_u16(), 400 | 429));
}

#[tokio::test]
async fn the_minimum_interval_between_attempts_is_shared() {
    let f = fleet(2, &[("LOGIN_MIN_INTERVAL", "2000")]).await;
    let (status, _, _) = login(&f.gws[0], "wrong").await;
    assert_eq!(status, 401);
    let (status, body, retry) = login(&f.gws[1], PASSWORD).await;
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("TOO_FREQUENT")), "{body}");
    assert!(retry.is_some());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(login(&f.gws[1], PASSWORD).await.0, 200);
}

/// Sends `total` chat requests over `urls`, `concurrency` at a time; statuses and latencies.
async fn traffic(urls: Vec<String>, total: usize, concurrency: usize) -> (HashMap<u16, usize>, Vec<Duration>) {
    let client = client();
    let results: Vec<(u16, Duration)> = futures::stream::iter(0..total)
        .map(|i| {
            let (client, url) = (client.clone(), urls[i % urls.len()].clone());
            async move {
                let t0 = Instant::now();
                let s = match client.post(url).bearer_auth(KEY).json(&chat("m", i % 4 == 0)).send().await {
                    Ok(r) => {
                        let s = r.status().as_u16();
                        let _ = r.bytes().await;
                        s
                    }
                    Err(_) => 599,
                };
                (s, t0.elapsed())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut by_status = HashMap::new();
    for (s, _) in &results {
        *by_status.entry(*s).or_insert(0) += 1;
    }
    let mut lat: Vec<Duration> = results.into_iter().map(|(_, d)| d).collect();
    lat.sort();
    (by_status, lat)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

async fn total_usage(store: &RedisStore) -> i64 {
    store.get_pool("openai-custom").await.expect("pool").iter().map(|a| a.usage_count()).sum()
}

/// US3: 50 config changes through A while 2,000 requests flow through A and B — none fails or
/// stalls, and each change is seen by B (its effective config) shortly after.
#[tokio::test]
async fn config_changes_apply_everywhere_under_traffic_without_a_failed_request() {
    let f = fleet(2, &[]).await;
    let (a, b) = (&f.gws[0], &f.gws[1]);
    let t = token(a).await;
    let urls: Vec<String> = f.gws.iter().map(|g| g.url("/v1/chat/completions")).collect();
    let load = tokio::spawn(traffic(urls, 2000, 16));
    let mut seen = Vec::new();
    for i in 0..50 {
        let value = 100 + i;
        let (status, body) = call(a, "POST", "/api/config", Some(&t), Some(json!({"MAX_ERROR_COUNT": value}))).await;
        assert_eq!(status, 200, "{body}");
        let t0 = Instant::now();
        loop {
            let (_, cfg) = call(b, "GET", "/api/config", Some(&t), None).await;
            if cfg["MAX_ERROR_COUNT"] == value {
                seen.push(t0.elapsed());
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(5), "change {i} never reached B");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let (statuses, lat) = load.await.expect("load");
    assert_eq!(statuses.get(&200), Some(&2000), "every request answered 200 during the changes: {statuses:?}");
    seen.sort();
    eprintln!(
        "config change → visible on the other replica: p50 {:?}, max {:?}; request p50 {:?}, p99 {:?}",
        pct(&seen, 0.5),
        seen[seen.len() - 1],
        pct(&lat, 0.5),
        pct(&lat, 0.99)
    );
    // Propagation is a pub/sub message; a second would mean the change feed is not working
    // and only the 5 s safety poll applied it.
    assert!(seen[seen.len() - 1] < Duration::from_secs(1), "{seen:?}");
    assert!(pct(&lat, 0.99) < Duration::from_secs(5), "no stalled request");
    f.store.flush().await.expect("flush");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(total_usage(&f.store).await, 2000, "every answer counted once");
    // Bad values are refused with the field named, and change nothing.
    let (status, body) = call(b, "POST", "/api/config", Some(&t), Some(json!({"SERVER_PORT": "http"}))).await;
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap_or("").contains("SERVER_PORT"), "{body}");
    let (_, cfg) = call(a, "GET", "/api/config", Some(&t), None).await;
    assert_eq!(cfg["REQUIRED_API_KEY"], Value::Null, "the key comes from the environment here");
    assert!(!cfg.to_string().contains(KEY), "the client key is never shown");
}

#[tokio::test]
async fn account_management_under_traffic_never_loses_a_count() {
    let f = fleet(2, &[]).await;
    let (a, b) = (&f.gws[0], &f.gws[1]);
    let t = token(a).await;
    let urls: Vec<String> = f.gws.iter().map(|g| g.url("/v1/chat/completions")).collect();
    let load = tokio::spawn(traffic(urls, 1500, 16));
    let new = json!({"providerType": "openai-custom", "providerConfig": {
        "uuid": "acc-new", "customName": "added live", "OPENAI_API_KEY": "sk-upstream-new", "OPENAI_BASE_URL": f.mock.url("/v1")}});
    let (status, body) = call(a, "POST", "/api/providers", Some(&t), Some(new)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["provider"]["OPENAI_API_KEY"], "******", "secrets masked in answers");
    for i in 0..20 {
        let edit = json!({"customName": format!("renamed {i}"), "usageCount": 0, "errorCount": 0});
        let (status, body) = call(b, "PUT", "/api/providers/openai-custom/acc-1", Some(&t), Some(edit)).await;
        assert_eq!(status, 200, "{body}");
        let action = if i % 2 == 0 { "disable" } else { "enable" };
        assert_eq!(
            call(a, "POST", &format!("/api/providers/openai-custom/acc-2/{action}"), Some(&t), None).await.0,
            200
        );
    }
    let (statuses, _) = load.await.expect("load");
    let ok = statuses.get(&200).copied().unwrap_or(0);
    assert_eq!(ok, 1500, "{statuses:?}");
    f.store.flush().await.expect("flush");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(total_usage(&f.store).await, ok as i64, "edits never overwrite counts");
    let acc1 = f.store.get_account("openai-custom", "acc-1").await.expect("acc-1");
    assert_eq!(acc1.custom_name(), Some("renamed 19"));
    assert!(!f.store.get_account("openai-custom", "acc-2").await.expect("acc-2").is_disabled());

    // Runtime fields and bad URLs are refused as spec input.
    let bad = json!({"providerType": "openai-custom", "providerConfig": {"OPENAI_BASE_URL": "ftp://x", "OPENAI_API_KEY": "k"}});
    let (status, body) = call(a, "POST", "/api/providers", Some(&t), Some(bad)).await;
    assert_eq!(status, 400, "{body}");
    let bad = json!({"providerType": "no-such-type", "providerConfig": {}});
    assert_eq!(call(a, "POST", "/api/providers", Some(&t), Some(bad)).await.0, 400);
    assert_eq!(call(a, "PUT", "/api/providers/openai-custom/missing", Some(&t), Some(json!({}))).await.0, 404);
    let text = call(a, "GET", "/api/providers", Some(&t), None).await.1.to_string();
    assert!(!text.contains("sk-upstream"), "no upstream key reaches the browser: {text}");
}

#[tokio::test]
async fn a_disabled_account_stops_serving_on_the_other_replica_and_the_feed_says_so() {
    let f = fleet(2, &[]).await;
    let (a, b) = (&f.gws[0], &f.gws[1]);
    let t = token(a).await;
    // Listen to B's event feed.
    let resp = client().get(b.url(&format!("/api/events?token={t}"))).send().await.expect("events");
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap_or("").starts_with("text/event-stream"));
    let mut feed = resp.bytes_stream();

    assert_eq!(call(a, "POST", "/api/providers/openai-custom/acc-0/disable", Some(&t), None).await.0, 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut text = String::new();
    while !text.contains("\"uuid\":\"acc-0\"") || !text.contains("\"isDisabled\":true") {
        let chunk = tokio::time::timeout_at(deadline.into(), feed.next()).await.expect("event in time");
        text.push_str(&String::from_utf8_lossy(&chunk.expect("open").expect("bytes")));
    }
    assert!(text.contains("event: ready") && text.contains("event: provider_update"), "{text}");

    let before = f.mock.hits_for_key("sk-upstream-0");
    let (statuses, _) = traffic(vec![b.url("/v1/chat/completions")], 60, 4).await;
    assert_eq!(statuses.get(&200), Some(&60));
    assert_eq!(f.mock.hits_for_key("sk-upstream-0"), before, "B never routes to the disabled account");
}

#[tokio::test]
async fn credentials_import_dedups_and_operator_owned_accounts_are_read_only() {
    let f = fleet(1, &[]).await;
    let gw = &f.gws[0];
    let t = token(gw).await;
    let body = json!({"refreshTokens": "rt-one\nrt-two\n\nrt-one", "region": "us-east-1"});
    let (status, r) = call(gw, "POST", "/api/kiro/batch-import-tokens", Some(&t), Some(body.clone())).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!((r["imported"].as_u64(), r["duplicates"].as_u64()), (Some(2), Some(1)), "{r}");
    let (_, again) = call(gw, "POST", "/api/kiro/batch-import-tokens", Some(&t), Some(body)).await;
    assert_eq!((again["imported"].as_u64(), again["duplicates"].as_u64()), (Some(0), Some(3)), "{again}");
    let uuid = r["uuids"][0].as_str().expect("uuid").to_string();
    let stored = f.store.get_token("claude-kiro-oauth", &uuid).await.expect("token").expect("stored");
    assert_eq!(stored["refreshToken"], "rt-one");
    let imported = f.store.get_account("claude-kiro-oauth", &uuid).await.expect("acc");
    assert!(imported.needs_refresh(), "renewed on first use: {imported:?}\n{}", gw.logs());

    // A token stored by other means (migration, the operator) is found through the refresh index.
    let seeded = acc(json!({"uuid": "seeded", "customName": "seeded"}));
    f.store.add_account("claude-kiro-oauth", seeded).await.expect("seeded");
    f.store.set_token("claude-kiro-oauth", "seeded", &json!({"refreshToken": "rt-seeded"})).await.expect("token");
    let (_, r) =
        call(gw, "POST", "/api/kiro/batch-import-tokens", Some(&t), Some(json!({"refreshTokens": ["rt-seeded"]})))
            .await;
    assert_eq!((r["imported"].as_u64(), r["duplicates"].as_u64()), (Some(0), Some(1)), "{r}");

    let gem = json!({"credentials": [{"refresh_token": "g-rt", "access_token": "g-at", "expiry_date": 1}, {"no": "refresh"}]});
    let (_, r) = call(gw, "POST", "/api/gemini/batch-import-tokens", Some(&t), Some(gem)).await;
    assert_eq!((r["imported"].as_u64(), r["failed"].as_u64()), (Some(1), Some(1)), "{r}");
    assert!(!r.to_string().contains("g-rt"), "answers never echo credentials");

    // Upload one account's token (an account added without one); force-expire marks it.
    let add =
        json!({"providerType": "claude-kiro-oauth", "providerConfig": {"uuid": "kiro-upload", "customName": "k"}});
    assert_eq!(call(gw, "POST", "/api/providers", Some(&t), Some(add)).await.0, 201);
    let path = "/api/providers/claude-kiro-oauth/kiro-upload";
    let token_json = json!({"refreshToken": "rt-new", "accessToken": "at", "expiresAt": "2030-01-01T00:00:00Z"});
    assert_eq!(call(gw, "PUT", &format!("{path}/credentials"), Some(&t), Some(token_json)).await.0, 200);
    let stored = f.store.get_token("claude-kiro-oauth", "kiro-upload").await.expect("token").expect("stored");
    assert_eq!(stored["refreshToken"], "rt-new");
    assert!(!f.store.get_account("claude-kiro-oauth", "kiro-upload").await.expect("acc").needs_refresh());
    assert_eq!(call(gw, "PUT", &format!("{path}/credentials"), Some(&t), Some(json!({"x": 1}))).await.0, 400);
    assert_eq!(call(gw, "POST", &format!("{path}/force-expire"), Some(&t), None).await.0, 200);
    // The test's own store hears of the gateway's write through pub/sub: wait for it.
    let deadline = Instant::now() + Duration::from_secs(3);
    while !f.store.get_account("claude-kiro-oauth", "kiro-upload").await.expect("acc").needs_refresh() {
        assert!(Instant::now() < deadline, "force-expire marks the account for refresh");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // An operator-owned account: spec edits and deletion refused, runtime actions allowed.
    let owned = json!({"uuid": "owned-1", "OPENAI_API_KEY": "k", "OPENAI_BASE_URL": f.mock.url("/v1"), "poolgateOwner": "ProviderPool/ns/p"});
    f.store.add_account("openai-custom", acc(owned)).await.expect("owned");
    let p = "/api/providers/openai-custom/owned-1";
    let (status, body) = call(gw, "PUT", p, Some(&t), Some(json!({"customName": "x"}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("MANAGED_BY_OPERATOR")), "{body}");
    assert_eq!(call(gw, "DELETE", p, Some(&t), None).await.0, 409);
    assert_eq!(call(gw, "POST", &format!("{p}/disable"), Some(&t), None).await.0, 200);
    assert_eq!(call(gw, "POST", &format!("{p}/reset-health"), Some(&t), None).await.0, 200);
    let (_, pools) = call(gw, "GET", "/api/providers", Some(&t), None).await;
    let row = pools["openai-custom"].as_array().and_then(|a| a.iter().find(|r| r["uuid"] == "owned-1")).cloned();
    assert_eq!(row.expect("listed")["managedBy"], "ProviderPool/ns/p");
}

#[tokio::test]
async fn the_same_credential_imported_on_two_replicas_at_once_makes_one_account() {
    let f = fleet(2, &[("LOGIN_MIN_INTERVAL", "0")]).await;
    let (ta, tb) = (token(&f.gws[0]).await, token(&f.gws[1]).await);
    let tokens: Vec<String> = (0..20).map(|i| format!("rt-race-{i}")).collect();
    let body = json!({"refreshTokens": tokens});
    let (ra, rb) = tokio::join!(
        call(&f.gws[0], "POST", "/api/kiro/batch-import-tokens", Some(&ta), Some(body.clone())),
        call(&f.gws[1], "POST", "/api/kiro/batch-import-tokens", Some(&tb), Some(body)),
    );
    let imported = ra.1["imported"].as_u64().unwrap_or(0) + rb.1["imported"].as_u64().unwrap_or(0);
    assert_eq!(imported, 20, "each token imported once in all: {} {}", ra.1, rb.1);
    assert_eq!(f.store.get_pool("claude-kiro-oauth").await.expect("pool").len(), 20);
}

#[tokio::test]
async fn pool_status_shows_held_and_queued_slots_fleet_wide() {
    let f = fleet(2, &[]).await;
    let t = token(&f.gws[0]).await;
    let mut slow = account("openai-custom", "slow-0", &f.mock.url("/v1"), "sk-slow");
    slow["concurrencyLimit"] = json!(1);
    slow["queueLimit"] = json!(5);
    f.store.replace_pool("openai-custom-slow", vec![acc(slow)]).await.expect("pool");
    f.mock.set_for_key("sk-slow", poolgate_tests::mock_upstream::Script::slow(Duration::from_millis(1500)));
    let mut inflight = Vec::new();
    for gw in [&f.gws[0], &f.gws[1], &f.gws[1]] {
        let url = gw.url("/openai-custom-slow/v1/chat/completions");
        inflight.push(tokio::spawn(async move { post(&url, &chat("m", false)).await.0 }));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, pool) = call(&f.gws[0], "GET", "/api/providers/openai-custom-slow", Some(&t), None).await;
        let row = &pool["providers"][0];
        if row["slotsHeld"] == 1 && row["queuedRequests"] == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "one held and two queued, across both replicas: {row}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    for h in inflight {
        assert_eq!(h.await.expect("join"), 200);
    }
}

#[tokio::test]
async fn checks_resets_model_detection_and_unhealthy_cleanup() {
    let f = fleet(1, &[]).await;
    let (gw, t) = (&f.gws[0], token(&f.gws[0]).await);
    let p = "/api/providers/openai-custom";
    let (status, r) = call(gw, "POST", &format!("{p}/acc-0/detect-models"), Some(&t), None).await;
    assert_eq!((status, r["models"].clone()), (200, json!(["mock-model"])), "{r}");
    let deadline = Instant::now() + Duration::from_secs(3);
    while f.store.get_account("openai-custom", "acc-0").await.expect("acc").get("supportedModels")
        != Some(&json!(["mock-model"]))
    {
        assert!(Instant::now() < deadline, "supportedModels stored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // acc-1's upstream fails: a check marks it unhealthy, a pool reset brings it back.
    f.mock.set_for_key("sk-upstream-1", poolgate_tests::mock_upstream::Script::status(500));
    let (status, r) = call(gw, "POST", &format!("{p}/acc-1/health-check"), Some(&t), None).await;
    assert_eq!((status, r["success"].as_bool()), (200, Some(false)), "{r}");
    let (_, all) = call(gw, "POST", &format!("{p}/health-check"), Some(&t), None).await;
    assert_eq!((all["checked"].as_u64(), all["healthy"].as_u64()), (Some(3), Some(2)), "{all}");
    let (_, one) = call(gw, "GET", p, Some(&t), None).await;
    assert_eq!(one["healthyCount"], 2, "{one}");
    assert_eq!(call(gw, "POST", &format!("{p}/reset-health"), Some(&t), None).await.0, 200);
    assert_eq!(call(gw, "GET", p, Some(&t), None).await.1["healthyCount"], 3);

    // Unhealthy again, then cleaned up; healthy accounts stay.
    call(gw, "POST", &format!("{p}/acc-1/health-check"), Some(&t), None).await;
    let (status, r) = call(gw, "DELETE", &format!("{p}/delete-unhealthy"), Some(&t), None).await;
    assert_eq!((status, r["deleted"].clone()), (200, json!(["acc-1"])), "{r}");
    let (_, one) = call(gw, "GET", p, Some(&t), None).await;
    assert_eq!(one["totalCount"], 2);
    assert_eq!(call(gw, "POST", &format!("{p}/acc-1/enable"), Some(&t), None).await.0, 404);
}

#[tokio::test]
async fn garbage_bodies_never_crash_or_add_anything() {
    let f = fleet(1, &[]).await;
    let (gw, t) = (&f.gws[0], token(&f.gws[0]).await);
    let before = f.store.get_pool("openai-custom").await.expect("pool");
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let bodies: Vec<Vec<u8>> = vec![
        b"{".to_vec(),
        b"[]".to_vec(),
        b"null".to_vec(),
        b"\"text\"".to_vec(),
        b"{\"password\": 7, \"providerType\": []}".to_vec(),
        vec![0xff, 0xfe, 0x00, 0x7b],
        deep.into_bytes(),
    ];
    let client = client();
    // Routes that take a body (DELETE takes none; logout would end the session).
    for (method, path) in GUARDED.iter().filter(|(m, p)| matches!(*m, "POST" | "PUT") && *p != "/api/logout") {
        for body in &bodies {
            let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
            let r = client.request(m, gw.url(path)).bearer_auth(&t).body(body.clone()).send().await.expect("send");
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            assert!(status < 500, "{method} {path} answered {status}: {text}");
            if status >= 400 {
                assert!(
                    serde_json::from_str::<Value>(&text).is_ok_and(|v| v["error"]["message"].is_string()),
                    "{text}"
                );
            }
        }
    }
    // Over axum's body limit, and a path that does not decode: still the JSON error shape.
    let big = vec![b'x'; 3 << 20];
    let r = client.post(gw.url("/api/config")).bearer_auth(&t).body(big).send().await.expect("send");
    assert_eq!(r.status(), 413);
    assert!(r.text().await.unwrap_or_default().contains("\"error\""));
    let (status, body) = call(gw, "POST", "/api/providers/%FF%FE/x/disable", Some(&t), None).await;
    assert!((400..500).contains(&status) && body["error"]["message"].is_string(), "{status} {body}");
    f.store.flush().await.expect("flush");
    let after = f.store.get_pool("openai-custom").await.expect("pool");
    let names = |p: &[std::sync::Arc<Account>]| p.iter().map(|a| a.uuid().to_string()).collect::<Vec<_>>();
    assert_eq!(names(&after), names(&before), "no account added or removed by garbage");
    assert_eq!(call(gw, "GET", "/api/system", Some(&t), None).await.0, 200, "the session survived");
}

#[tokio::test]
async fn status_replicas_and_plugins() {
    let f = fleet(2, &[]).await;
    let t = token(&f.gws[0]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, r) = call(&f.gws[1], "GET", "/api/replicas", Some(&t), None).await;
        assert_eq!(status, 200);
        if r["count"] == 2 {
            assert_eq!(r["replicas"].as_array().map(|a| a.iter().filter(|x| x["self"] == true).count()), Some(1));
            break;
        }
        assert!(Instant::now() < deadline, "both replicas heartbeat: {r}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, sys) = call(&f.gws[0], "GET", "/api/system", Some(&t), None).await;
    assert_eq!(sys["storage"]["type"], "redis");
    // The storage status pages take the admin session as well as the client key.
    for path in ["/api/redis/status", "/api/storage/status", "/api/usage"] {
        assert_eq!(call(&f.gws[1], "GET", path, Some(&t), None).await.0, 200, "{path}");
        assert_eq!(call(&f.gws[1], "GET", path, Some("bogus"), None).await.0, 401, "{path}");
    }
    let (status, r) =
        call(&f.gws[0], "POST", "/api/plugins/api-potluck/toggle", Some(&t), Some(json!({"enabled": true}))).await;
    assert_eq!((status, r["enabled"].as_bool()), (200, Some(true)), "{r}");
    let (_, list) = call(&f.gws[1], "GET", "/api/plugins", Some(&t), None).await;
    let potluck = list["plugins"].as_array().and_then(|a| a.iter().find(|p| p["name"] == "api-potluck")).cloned();
    assert_eq!(potluck.expect("listed")["enabled"], true, "stored, so B sees it");
    assert_eq!(call(&f.gws[0], "POST", "/api/plugins/nope/toggle", Some(&t), None).await.0, 404);
}

#[tokio::test]
async fn file_mode_serves_the_same_api_and_no_password_means_off() {
    let dir = config_dir(&json!({"SCHEDULED_HEALTH_CHECK": {"enabled": false}}), &json!({}));
    let env = [("LOGIN_MIN_INTERVAL", "0".to_string())];
    let gw = Gateway::start(dir.path(), &env).await;
    for password in ["admin123", "", "anything"] {
        let (status, body, _) = login(&gw, password).await;
        assert_eq!(status, 503, "no built-in default password: {body}");
        assert!(body["error"]["message"].as_str().unwrap_or("").contains("admin-password"), "{body}");
    }
    drop(gw);
    // `poolgate admin-password` stores it hashed in configs/pwd.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_poolgate"))
        .args(["admin-password", "--config-dir"])
        .arg(dir.path())
        .env("POOLGATE_ADMIN_PASSWORD", PASSWORD)
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pwd = std::fs::read_to_string(dir.path().join("pwd")).expect("pwd");
    assert!(pwd.starts_with("pbkdf2:") && !pwd.contains(PASSWORD), "{pwd}");

    let gw = Gateway::start(dir.path(), &env).await;
    let t = token(&gw).await;
    let sessions = std::fs::read_to_string(dir.path().join("token-store.json")).expect("token-store.json");
    assert!(!sessions.contains(&t), "sessions are stored under the token's hash");
    assert!(sessions.contains(&poolgate_store::Session::token_hash(&t)));
    let (status, body) = call(&gw, "POST", "/api/config", Some(&t), Some(json!({"MAX_ERROR_COUNT": 7}))).await;
    assert_eq!(status, 200, "{body}");
    let cfg: Value = parse(&std::fs::read_to_string(dir.path().join("config.json")).expect("config.json"));
    assert_eq!(cfg["MAX_ERROR_COUNT"], 7, "written to config.json");
    let new = json!({"providerType": "openai-custom", "providerConfig": {"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}});
    assert_eq!(call(&gw, "POST", "/api/providers", Some(&t), Some(new)).await.0, 201);
    let pools: Value = parse(&std::fs::read_to_string(dir.path().join("provider_pools.json")).expect("pools"));
    assert_eq!(pools["openai-custom"].as_array().map(Vec::len), Some(1));
    // A restart keeps the session (token-store.json).
    drop(gw);
    let gw = Gateway::start(dir.path(), &env).await;
    assert_eq!(call(&gw, "GET", "/api/system", Some(&t), None).await.0, 200);
    assert_eq!(call(&gw, "POST", "/api/logout", Some(&t), None).await.0, 200);
    assert_eq!(call(&gw, "GET", "/api/system", Some(&t), None).await.0, 401);
}

#[tokio::test]
async fn the_dashboard_is_embedded_with_a_strict_policy_and_can_be_turned_off() {
    let dir = config_dir(&json!({}), &json!({}));
    let gw = Gateway::start(dir.path(), &[]).await;
    for (path, kind) in [("/", "text/html"), ("/ui/app.js", "text/javascript"), ("/ui/app.css", "text/css")] {
        let r = client().get(gw.url(path)).send().await.expect("get");
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.headers()["content-type"].to_str().unwrap_or("").starts_with(kind));
        let csp = r.headers()["content-security-policy"].to_str().unwrap_or("").to_string();
        assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"), "{csp}");
    }
    let html = client().get(gw.url("/")).send().await.expect("get").text().await.expect("text");
    assert!(!html.contains("http://") && !html.contains("https://"), "nothing fetched from elsewhere");
    drop(gw);
    let gw = Gateway::start(dir.path(), &[("UI_ENABLED", "false".into())]).await;
    assert_eq!(client().get(gw.url("/")).send().await.expect("get").status(), 404);
    assert_eq!(login(&gw, "x").await.0, 503, "the API stays up without the UI");
}

async fn chat_with(gw: &Gateway, key: &str) -> u16 {
    let r = client().post(gw.url("/v1/chat/completions")).bearer_auth(key).json(&chat("m", false)).send().await;
    let r = r.expect("send");
    let s = r.status().as_u16();
    let _ = r.bytes().await;
    s
}

#[tokio::test]
async fn client_keys_are_managed_at_the_reference_potluck_paths() {
    let f = fleet(2, &[("LOGIN_MIN_INTERVAL", "0")]).await;
    let (a, b) = (&f.gws[0], &f.gws[1]);
    let t = token(a).await;
    let (status, created) =
        call(a, "POST", "/api/potluck/keys", Some(&t), Some(json!({"name": "alice", "dailyLimit": 5}))).await;
    assert_eq!(status, 201, "{created}");
    let text = created["data"]["key"].as_str().expect("the key, shown once").to_string();
    let id = created["data"]["id"].as_str().expect("id").to_string();
    assert!(text.starts_with("maki_"), "{text}");
    let mut redis =
        redis::Client::open(f.server.url()).expect("client").get_multiplexed_async_connection().await.expect("conn");
    let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{PREFIX}*")).query_async(&mut redis).await.expect("keys");
    for k in keys {
        let dump: Option<Vec<u8>> = redis::cmd("DUMP").arg(&k).query_async(&mut redis).await.expect("dump");
        assert!(!String::from_utf8_lossy(&dump.unwrap_or_default()).contains(&text), "the key's text is in {k}");
    }

    // Used on B, counted for A and for the key's owner.
    for _ in 0..3 {
        assert_eq!(chat_with(b, &text).await, 200);
    }
    let (_, mine) = call(a, "GET", "/api/potluckuser/usage", Some(&text), None).await;
    assert_eq!(
        (mine["data"]["usage"]["today"].as_i64(), mine["data"]["usage"]["remaining"].as_i64()),
        (Some(3), Some(2)),
        "{mine}"
    );
    let (_, list) = call(b, "GET", "/api/potluck/keys", Some(&t), None).await;
    assert_eq!(list["data"]["keys"][0]["todayUsage"], 3, "{list}");
    assert_eq!(list["data"]["stats"]["todayTotalUsage"], 3);
    assert!(!list.to_string().contains(&text), "lists never show the key's text");

    // Limit, reset, toggle, rename: applied on every replica at once.
    assert_eq!(
        call(a, "PUT", &format!("/api/potluck/keys/{id}/limit"), Some(&t), Some(json!({"dailyLimit": 3}))).await.0,
        200
    );
    assert_eq!(chat_with(b, &text).await, 429, "the lowered limit holds on B");
    assert_eq!(call(a, "POST", &format!("/api/potluck/keys/{id}/reset"), Some(&t), None).await.0, 200);
    assert_eq!(chat_with(b, &text).await, 200, "reset on A frees B");
    assert_eq!(
        call(b, "POST", &format!("/api/potluck/keys/{id}/toggle"), Some(&t), None).await.1["data"]["enabled"],
        false
    );
    assert_eq!(chat_with(a, &text).await, 403, "disabled");
    assert_eq!(call(a, "GET", "/api/potluckuser/usage", Some(&text), None).await.0, 401);
    call(b, "POST", &format!("/api/potluck/keys/{id}/toggle"), Some(&t), None).await;
    let (_, renamed) =
        call(a, "PUT", &format!("/api/potluck/keys/{id}/name"), Some(&t), Some(json!({"name": "alice 2"}))).await;
    assert_eq!(renamed["data"]["name"], "alice 2");
    assert_eq!(
        call(a, "PUT", &format!("/api/potluck/keys/{id}/limit"), Some(&t), Some(json!({"dailyLimit": -1}))).await.0,
        400
    );
    assert_eq!(
        call(a, "PUT", &format!("/api/potluck/keys/{id}"), Some(&t), Some(json!({"rpmLimit": "x"}))).await.0,
        400
    );

    // Regenerate: the old text stops working, the new one carries the counters on.
    let (status, regen) = call(a, "POST", &format!("/api/potluck/keys/{id}/regenerate"), Some(&t), None).await;
    assert_eq!(status, 200, "{regen}");
    let new_text = regen["data"]["newKey"].as_str().expect("new key").to_string();
    assert_eq!(chat_with(b, &text).await, 401, "the old key is gone");
    assert_eq!(chat_with(b, &new_text).await, 200);
    let (_, one) = call(b, "GET", &format!("/api/potluck/keys/{id}"), Some(&t), None).await;
    assert_eq!(one["data"]["totalUsage"], 5, "counters moved with the key: {one}");

    // Per-model statistics, settled after each answer.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, usage) = call(a, "GET", &format!("/api/potluck/usage?days=2&key={id}"), Some(&t), None).await;
        let requests: i64 = usage["data"]["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["model"] == "m")
            .map(|r| r["requests"].as_i64().unwrap_or(0))
            .sum();
        if requests == 5 {
            break;
        }
        assert!(Instant::now() < deadline, "5 answered requests of model m: {usage}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A key a ClientConfig declares: settings read-only, counters resettable.
    let owned = poolgate_store::ClientKey {
        id: "owned".into(),
        name: "from k8s".into(),
        enabled: true,
        owner: Some("ClientConfig/ns/gw".into()),
        ..Default::default()
    };
    f.store.put_client_key(&poolgate_store::ClientKey::hash("maki_owned-key"), &owned).await.expect("put");
    let (status, body) =
        call(a, "PUT", "/api/potluck/keys/owned/limit", Some(&t), Some(json!({"dailyLimit": 1}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("MANAGED_BY_OPERATOR")), "{body}");
    assert_eq!(call(a, "POST", "/api/potluck/keys/owned/reset", Some(&t), None).await.0, 200);
    let (_, applied) = call(a, "POST", "/api/potluck/keys/apply-limit", Some(&t), Some(json!({"dailyLimit": 9}))).await;
    assert_eq!(
        (applied["data"]["total"].as_u64(), applied["data"]["updated"].as_u64()),
        (Some(2), Some(1)),
        "{applied}"
    );

    // Delete; and the guards.
    assert_eq!(call(b, "DELETE", &format!("/api/potluck/keys/{id}"), Some(&t), None).await.0, 200);
    assert_eq!(chat_with(a, &new_text).await, 401);
    assert_eq!(call(a, "GET", "/api/potluck/keys/nope", Some(&t), None).await.0, 404);
    assert_eq!(call(a, "GET", "/api/potluck/keys", Some("bad"), None).await.0, 401);
    let (status, body) = call(a, "GET", "/api/potluckuser/usage", None, None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("API_KEY_REQUIRED")));
    for gw in &f.gws {
        assert!(!gw.logs().contains(&text) && !gw.logs().contains(&new_text), "no key text in logs");
    }
}

/// The reference's `api-potluck-keys.json` moves over with `poolgate migrate`: the same key
/// texts keep working, with their counts, and Redis never holds them in clear.
#[tokio::test]
async fn reference_potluck_keys_migrate_and_keep_working() {
    let server = RedisServer::start().expect("redis");
    let mock = MockUpstream::start().await.expect("mock");
    let dir = tempfile::tempdir().expect("dir");
    let today = (chrono::Utc::now() + chrono::Duration::hours(8)).format("%Y-%m-%d").to_string();
    let text = "maki_0123456789abcdefghijklmnopqrstuv";
    let keys = json!({"keys": {text: {"id": text, "name": "from the reference", "createdAt": "2026-01-01T00:00:00.000Z",
        "dailyLimit": 10, "todayUsage": 4, "totalUsage": 40, "lastResetDate": today, "lastUsedAt": null,
        "enabled": true, "bonusRemaining": 0}}});
    std::fs::write(dir.path().join("api-potluck-keys.json"), keys.to_string()).expect("keys file");
    std::fs::write(dir.path().join("input_system_prompt.txt"), "Be brief.").expect("prompt file");
    let pools = json!({"openai-custom": [account("openai-custom", "acc", &mock.url("/v1"), "sk-up")]});
    std::fs::write(dir.path().join("provider_pools.json"), pools.to_string()).expect("pools");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_poolgate"))
        .args(["migrate", "--json", "--config-dir"])
        .arg(dir.path())
        .args(["--redis-url", &server.url(), "--key-prefix", PREFIX])
        .output()
        .expect("migrate");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert!(out.status.success(), "{summary} {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(summary["clientKeysImported"], 1, "{summary}");
    assert_eq!(summary["systemPromptImported"], true, "{summary}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(text), "the key is never printed");

    let run_dir = tempfile::tempdir().expect("dir");
    let env = [("REDIS_URL", server.url()), ("REDIS_KEY_PREFIX", PREFIX.to_string())];
    let gw = Gateway::start(run_dir.path(), &env).await;
    assert_eq!(chat_with(&gw, text).await, 200);
    let (_, mine) = call(&gw, "GET", "/api/potluckuser/usage", Some(text), None).await;
    assert_eq!(
        (mine["data"]["usage"]["today"].as_i64(), mine["data"]["total"].as_i64()),
        (Some(5), Some(41)),
        "{mine}"
    );
    assert_eq!(mine["data"]["name"], "from the reference");
    let mut redis =
        redis::Client::open(server.url()).expect("client").get_multiplexed_async_connection().await.expect("conn");
    let all: Vec<String> = redis::cmd("KEYS").arg(format!("{PREFIX}*")).query_async(&mut redis).await.expect("keys");
    for k in all {
        let dump: Option<Vec<u8>> = redis::cmd("DUMP").arg(&k).query_async(&mut redis).await.expect("dump");
        assert!(!String::from_utf8_lossy(&dump.unwrap_or_default()).contains(text), "the key's text is in {k}");
    }
    // A second run finds the key and leaves its counts alone.
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_poolgate"))
        .args(["migrate", "--json", "--config-dir"])
        .arg(dir.path())
        .args(["--redis-url", &server.url(), "--key-prefix", PREFIX])
        .output()
        .expect("migrate");
    let s: Value = serde_json::from_slice(&again.stdout).unwrap_or(Value::Null);
    assert_eq!((s["clientKeysImported"].as_u64(), s["clientKeysSkipped"].as_u64()), (Some(0), Some(1)), "{s}");
    let (_, mine) = call(&gw, "GET", "/api/potluckuser/usage", Some(text), None).await;
    assert_eq!(mine["data"]["total"], 41);
    // Export cannot give the key back (only its hash is kept) and says so.
    let out_dir = tempfile::tempdir().expect("dir");
    let export = std::process::Command::new(env!("CARGO_BIN_EXE_poolgate"))
        .args(["export", "--json", "--force", "--output-dir"])
        .arg(out_dir.path())
        .args(["--redis-url", &server.url(), "--key-prefix", PREFIX])
        .output()
        .expect("export");
    let s: Value = serde_json::from_slice(&export.stdout).unwrap_or(Value::Null);
    assert_eq!(s["clientKeysNotExported"], 1, "{s}");
    let prompt = std::fs::read_to_string(out_dir.path().join("input_system_prompt.txt")).expect("prompt exported");
    assert_eq!(prompt, "Be brief.");
}

/// On files, the reference's `api-potluck-keys.json` is adopted at the first start.
#[tokio::test]
async fn file_mode_adopts_reference_potluck_keys() {
    let mock = MockUpstream::start().await.expect("mock");
    let today = (chrono::Utc::now() + chrono::Duration::hours(8)).format("%Y-%m-%d").to_string();
    let text = "maki_filemode0123456789abcdefghijklm";
    let pools = json!({"openai-custom": [account("openai-custom", "acc", &mock.url("/v1"), "sk-up")]});
    let dir = config_dir(&json!({}), &pools);
    let keys = json!({"keys": {text: {"name": "f", "dailyLimit": 5, "todayUsage": 5, "totalUsage": 5, "lastResetDate": today, "enabled": true}}});
    std::fs::write(dir.path().join("api-potluck-keys.json"), keys.to_string()).expect("keys");
    let gw = Gateway::start(dir.path(), &[]).await;
    assert_eq!(chat_with(&gw, text).await, 429, "today's count came along: the limit of 5 is used up");
    let stored = std::fs::read_to_string(dir.path().join("client-keys.json")).expect("client-keys.json");
    assert!(!stored.contains(text), "kept hashed");
    let reference = std::fs::read_to_string(dir.path().join("api-potluck-keys.json")).expect("reference file");
    assert!(reference.contains(text), "the reference's file is left as it was");
}

async fn metrics_text(gw: &Gateway) -> String {
    client().get(gw.url("/metrics")).send().await.expect("metrics").text().await.expect("text")
}

fn series(text: &str, prefix: &str) -> Option<f64> {
    text.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn client_key_metrics_are_aggregate_unless_per_key_is_asked_for() {
    for per_key in [false, true] {
        let env: &[(&str, &str)] = if per_key { &[("CLIENT_KEY_METRICS", "per-key")] } else { &[] };
        let f = fleet(1, env).await;
        let gw = &f.gws[0];
        let t = token(gw).await;
        let (_, created) = call(gw, "POST", "/api/potluck/keys", Some(&t), Some(json!({"name": "metered"}))).await;
        let text = created["data"]["key"].as_str().expect("key").to_string();
        for _ in 0..4 {
            assert_eq!(chat_with(gw, &text).await, 200);
        }
        assert_eq!(chat_with(gw, "maki_not-a-real-key").await, 401);
        let deadline = Instant::now() + Duration::from_secs(3);
        let m = loop {
            let m = metrics_text(gw).await;
            if series(&m, "poolgate_client_key_tokens_total{direction=\"input\"}").unwrap_or(0.0) > 0.0 {
                break m;
            }
            assert!(Instant::now() < deadline, "tokens counted: {m}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(series(&m, "poolgate_client_key_admissions_total{result=\"admitted\"}"), Some(4.0), "{m}");
        assert_eq!(series(&m, "poolgate_client_key_admissions_total{result=\"unknown\"}"), Some(1.0), "{m}");
        let by_key = series(&m, "poolgate_client_key_requests_by_key_total{key=\"metered\"}");
        assert_eq!(by_key, per_key.then_some(4.0), "per-key series only when asked for: {m}");
        assert!(!m.contains("not-a-real-key") && !m.contains(&text), "no key text in metrics");
    }
}

/// The system text the mock upstream (an OpenAI Chat backend) received in its latest request.
fn upstream_system(mock: &MockUpstream) -> Vec<String> {
    let hits = mock.requests();
    let last = hits.last().expect("a request reached the upstream");
    last.body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["role"] == "system")
        .map(|m| m["content"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn a_stored_system_prompt_reaches_every_protocol_on_every_replica() {
    let f = fleet(2, &[("LOGIN_MIN_INTERVAL", "0")]).await;
    let (a, b) = (&f.gws[0], &f.gws[1]);
    let t = token(a).await;
    let (status, body) =
        call(a, "POST", "/api/system-prompt", Some(&t), Some(json!({"content": "Answer as PoolBot."}))).await;
    assert_eq!(status, 200, "{body}");
    let requests: Vec<(&str, Value)> = vec![
        (
            "/v1/chat/completions",
            json!({"model": "m", "messages": [{"role": "system", "content": "Be Claude."}, {"role": "user", "content": "hi"}]}),
        ),
        (
            "/v1/messages",
            json!({"model": "m", "max_tokens": 8, "system": "Be Claude.", "messages": [{"role": "user", "content": "hi"}]}),
        ),
        ("/v1/responses", json!({"model": "m", "instructions": "Be Claude.", "input": "hi"})),
        (
            "/v1beta/models/m:generateContent",
            json!({"systemInstruction": {"parts": [{"text": "Be Claude."}]}, "contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
        ),
    ];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, _) = post(&b.url("/v1/chat/completions"), &requests[0].1).await;
        assert_eq!(status, 200);
        if upstream_system(&f.mock).iter().any(|s| s.contains("PoolBot")) {
            break;
        }
        assert!(Instant::now() < deadline, "B applies the prompt stored through A");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (path, body) in &requests {
        let (status, text) = post(&b.url(path), body).await;
        assert_eq!(status, 200, "{path}: {text}");
        let system = upstream_system(&f.mock).join("\n");
        assert!(system.contains("Be Claude.") && system.contains("Answer as PoolBot."), "{path}: appended: {system:?}");
    }
    // Overwrite mode and replacements, from the config.
    let patch = json!({"SYSTEM_PROMPT_MODE": "overwrite", "SYSTEM_PROMPT_REPLACEMENTS": [{"old": "PoolBot", "new": "GateBot"}]});
    assert_eq!(call(a, "POST", "/api/config", Some(&t), Some(patch)).await.0, 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        post(&b.url("/v1/messages"), &requests[1].1).await;
        let system = upstream_system(&f.mock).join("\n");
        if !system.contains("Be Claude.") {
            assert_eq!(
                system, "Answer as PoolBot.",
                "overwrite: only the configured prompt (replacements apply to the client's text)"
            );
            break;
        }
        assert!(Instant::now() < deadline, "B switches to overwrite: {system}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let bad = json!({"SYSTEM_PROMPT_REPLACEMENTS": [{"old": ""}]});
    assert_eq!(call(a, "POST", "/api/config", Some(&t), Some(bad)).await.0, 400);
    // An empty prompt turns injection off.
    assert_eq!(call(a, "POST", "/api/system-prompt", Some(&t), Some(json!({"content": ""}))).await.0, 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        post(&b.url("/v1/chat/completions"), &requests[0].1).await;
        if upstream_system(&f.mock) == vec!["Be Claude.".to_string()] {
            break;
        }
        assert!(Instant::now() < deadline, "the prompt is gone: {:?}", upstream_system(&f.mock));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn file_mode_reads_the_reference_prompt_and_custom_model_files() {
    let mock = MockUpstream::start().await.expect("mock");
    let pools = json!({"openai-custom": [account("openai-custom", "acc", &mock.url("/v1"), "sk-up")]});
    let dir = config_dir(&json!({"SYSTEM_PROMPT_REPLACEMENTS": [{"old": "Claude", "new": "the assistant"}]}), &pools);
    std::fs::write(dir.path().join("input_system_prompt.txt"), "From the file.\n").expect("prompt");
    let models = json!([{"id": "house", "provider": "openai-custom", "actualModel": "mock-model"}]);
    std::fs::write(dir.path().join("custom_models.json"), models.to_string()).expect("custom models");
    let gw = Gateway::start(dir.path(), &[]).await;
    let body = json!({"model": "house", "messages": [{"role": "system", "content": "Be Claude."}, {"role": "user", "content": "hi"}]});
    assert_eq!(post(&gw.url("/v1/chat/completions"), &body).await.0, 200);
    assert_eq!(upstream_system(&mock), vec!["Be the assistant.".to_string(), "From the file.".to_string()]);
    assert_eq!(
        mock.requests().last().map(|h| h.body["model"].clone()),
        Some(json!("mock-model")),
        "custom_models.json"
    );
}

#[tokio::test]
async fn custom_models_route_list_and_override_on_every_replica() {
    let f = fleet(2, &[("LOGIN_MIN_INTERVAL", "0")]).await;
    let (a, b) = (&f.gws[0], &f.gws[1]);
    let t = token(a).await;
    let other = acc(account("openai-custom", "b-0", &f.mock.url("/v1"), "sk-pool-b"));
    f.store.replace_pool("openai-custom-b", vec![other]).await.expect("pool b");
    let fast = json!({"id": "fast", "alias": "quick", "name": "Fast", "provider": "openai-custom",
        "actualProvider": "openai-custom-b", "actualModel": "mock-model", "maxTokens": 64, "temperature": 0.1});
    let (status, body) = call(a, "POST", "/api/custom-models", Some(&t), Some(fast)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        call(a, "POST", "/api/custom-models", Some(&t), Some(json!({"id": "fast", "provider": "openai-custom"})))
            .await
            .0,
        409
    );
    assert_eq!(
        call(a, "POST", "/api/custom-models", Some(&t), Some(json!({"id": "x", "provider": "nope"}))).await.0,
        400
    );

    // B lists it and routes it: pool b's account, the upstream model, the overrides.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = client().get(b.url("/v1/models")).bearer_auth(KEY).send().await.expect("models");
        let list: Value = r.json().await.expect("json");
        let ids: Vec<&str> = list["data"].as_array().into_iter().flatten().filter_map(|m| m["id"].as_str()).collect();
        if ids.contains(&"fast") && ids.contains(&"quick") {
            break;
        }
        assert!(Instant::now() < deadline, "B lists the custom model: {list}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for name in ["fast", "quick"] {
        let body = json!({"model": name, "temperature": 0.9, "messages": [{"role": "user", "content": "hi"}]});
        let (status, text) = post(&b.url("/v1/chat/completions"), &body).await;
        assert_eq!(status, 200, "{text}");
        let hits = f.mock.requests();
        let hit = hits.last().expect("upstream hit");
        assert_eq!(hit.key.as_deref(), Some("sk-pool-b"), "served by the custom model's provider type");
        assert_eq!((hit.body["model"].clone(), hit.body["max_tokens"].clone()), (json!("mock-model"), json!(64)));
        assert_eq!(hit.body["temperature"], 0.1, "the custom model's parameters win");
    }
    let (_, listed) = call(b, "GET", "/api/custom-models", Some(&t), None).await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    assert_eq!(call(a, "DELETE", "/api/custom-models/fast", Some(&t), None).await.0, 200);
    assert_eq!(call(a, "DELETE", "/api/custom-models/fast", Some(&t), None).await.0, 404);
}

#[tokio::test]
async fn auto_mode_needs_type_prefixed_models_and_lists_them() {
    let mock = MockUpstream::start().await.expect("mock");
    let pools = json!({
        "openai-custom": [account("openai-custom", "o", &mock.url("/v1"), "sk-o")],
        "claude-custom": [account("claude-custom", "c", &mock.url("/v1"), "sk-c")],
    });
    let dir = config_dir(&json!({"MODEL_PROVIDER": "auto", "SCHEDULED_HEALTH_CHECK": {"enabled": false}}), &pools);
    let gw = Gateway::start(dir.path(), &[]).await;
    let (status, text) = post(&gw.url("/v1/chat/completions"), &chat("mock-model", false)).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("providerType:model"), "{text}");
    let (status, _) = post(&gw.url("/v1/chat/completions"), &chat("claude-custom:mock-model", false)).await;
    assert_eq!(status, 200);
    assert_eq!(mock.requests().last().and_then(|h| h.key.clone()).as_deref(), Some("sk-c"));
    let r = client().get(gw.url("/v1/models")).bearer_auth(KEY).send().await.expect("models");
    let list: Value = r.json().await.expect("json");
    let ids: Vec<&str> = list["data"].as_array().into_iter().flatten().filter_map(|m| m["id"].as_str()).collect();
    assert!(ids.contains(&"openai-custom:mock-model") && ids.contains(&"claude-custom:mock-model"), "{ids:?}");
}

#[tokio::test]
async fn the_prompt_log_is_off_by_default_and_never_holds_keys() {
    let mock = MockUpstream::start().await.expect("mock");
    let pools = json!({"openai-custom": [account("openai-custom", "acc", &mock.url("/v1"), "sk-upstream-secret")]});
    let dir = config_dir(&json!({}), &pools);
    let gw = Gateway::start(dir.path(), &[]).await;
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "tell me a story"}]});
    assert_eq!(post(&gw.url("/v1/chat/completions"), &body).await.0, 200);
    let logs = |d: &std::path::Path| {
        std::fs::read_dir(d)
            .expect("dir")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("prompt_log"))
            .count()
    };
    assert_eq!(logs(dir.path()), 0, "off by default");
    assert!(!gw.logs().contains("tell me a story"), "nothing in the server log either");
    drop(gw);

    let gw = Gateway::start(dir.path(), &[("PROMPT_LOG_MODE", "file".into())]).await;
    assert_eq!(post(&gw.url("/v1/chat/completions"), &body).await.0, 200);
    // Streamed answers, relayed (OpenAI Chat) and converted (an Anthropic client).
    let (status, streamed) = post(&gw.url("/v1/chat/completions"), &chat("m", true)).await;
    assert_eq!(status, 200, "{streamed}");
    let anthropic =
        json!({"model": "m", "max_tokens": 16, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(post(&gw.url("/v1/messages"), &anthropic).await.0, 200);
    let entry = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().starts_with("prompt_log-"))
        .expect("a prompt log file");
    let text = std::fs::read_to_string(entry.path()).expect("read");
    assert!(text.contains("[user] tell me a story") && text.contains("Hello from mock"), "{text}");
    let streamed = text.matches("answer (streamed)\ntok0 tok1 tok2 \n").count();
    assert_eq!(streamed, 2, "both streamed answers, in full: {text}");
    assert!(!text.contains(KEY) && !text.contains("sk-upstream-secret"), "no keys: {text}");
    drop(gw);
    let gw = Gateway::start(dir.path(), &[("PROMPT_LOG_MODE", "console".into())]).await;
    assert_eq!(post(&gw.url("/v1/chat/completions"), &body).await.0, 200);
    let deadline = Instant::now() + Duration::from_secs(3);
    while !gw.logs().contains("tell me a story") {
        assert!(Instant::now() < deadline, "console mode logs the prompt");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!gw.logs().contains("sk-upstream-secret"));
}

/// With Redis gone, the admin API says so in its JSON shape (sessions cannot be checked, so
/// nothing is allowed), and works again, with the same session, once Redis is back.
#[tokio::test]
async fn a_dead_redis_gives_503s_and_the_session_survives_the_outage() {
    let mut f = fleet(1, &[("LOGIN_MIN_INTERVAL", "0")]).await;
    let gw = &f.gws[0];
    let t = token(gw).await;
    f.server.stop();
    for (method, path) in [("GET", "/api/providers"), ("POST", "/api/config"), ("GET", "/api/potluck/keys")] {
        let (status, body) = call(gw, method, path, Some(&t), Some(json!({}))).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (503, Some("STORAGE_UNAVAILABLE")),
            "{method} {path}: {body}"
        );
    }
    let (status, body, _) = login(gw, PASSWORD).await;
    assert_eq!(status, 503, "{body}");
    f.server.restart().expect("restart");
    let deadline = Instant::now() + Duration::from_secs(15);
    while call(gw, "GET", "/api/system", Some(&t), None).await.0 != 200 {
        assert!(Instant::now() < deadline, "the session works again after the outage");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let logs = gw.logs();
    assert!(!logs.contains(&t) && !logs.contains(PASSWORD), "no token or password in logs");
}
