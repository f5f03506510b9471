//! What black-box probes found (issue "Hardening"), each as a regression test against real
//! `poolgate` processes: unchecked pass-through answers and requests, streams that end without a
//! finish or go on after an error, upstream URLs in client errors, HTTP-layer rejections without
//! a body, clients that never finish their headers or bodies, connection caps, timeouts retried
//! on the same account, and usage lost to `kill -9`.

mod gateway_common;

use std::time::{Duration, Instant};

use futures::StreamExt;
use gateway_common::*;
use poolgate_store::{Account, RedisStore, Storage};
use poolgate_tests::mock_upstream::{MockUpstream, Script};
use poolgate_tests::RedisServer;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The account entries of `/provider_health` (with the key), by custom name.
async fn health_items(gw: &Gateway) -> Vec<Value> {
    let v: Value = client()
        .get(gw.url("/provider_health"))
        .bearer_auth(KEY)
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    v["items"].as_array().cloned().unwrap_or_default()
}

/// Polls `check` for up to 2 s.
async fn eventually<F, Fut>(check: F) -> bool
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    false
}

fn item<'a>(items: &'a [Value], name: &str) -> &'a Value {
    items.iter().find(|i| i["customName"] == name).unwrap_or_else(|| panic!("no {name} in {items:?}"))
}

#[tokio::test]
async fn relayed_answers_and_requests_are_checked() {
    let mock = MockUpstream::start().await.expect("mock");
    mock.set_for_key("html", Script::raw("text/html", "<html><body>502 Bad Gateway</body></html>"));
    mock.set_for_key("errjson", Script::raw("application/json", r#"{"error":{"message":"overloaded"}}"#));
    mock.set_for_key("empty", Script::raw("text/event-stream", ""));
    let garbage = concat!(
        "garbage line without a field\n\n",
        "data: <html>nope</html>\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok0 \"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
        "data: [DONE]\n\n"
    );
    mock.set_for_key("garbage", Script::raw("text/event-stream", garbage));
    let base = mock.url("/v1");
    let pools = json!({
        "openai-custom": [
            account("openai-custom", "html", &base, "html"),
            account("openai-custom", "errjson", &base, "errjson"),
            account("openai-custom", "good", &base, "good"),
        ],
        "openai-custom-empty": [account("openai-custom", "empty", &base, "empty")],
        "openai-custom-garbage": [account("openai-custom", "garbage", &base, "garbage")],
    });
    let dir = config_dir(&json!({"SCHEDULED_HEALTH_CHECK": {"enabled": false}}), &pools);
    let gw = Gateway::start(dir.path(), &[]).await;

    // Unary OpenAI → OpenAI: an unparsable 200 (or a 200 carrying an error) fails over.
    for _ in 0..6 {
        let (s, body) = post(&gw.url("/v1/chat/completions"), &chat("m", false)).await;
        assert_eq!(s, 200, "{body}");
        assert!(parse(&body)["choices"].is_array(), "{body}");
    }
    assert!(mock.hits_for_key("html") >= 1 && mock.hits_for_key("errjson") >= 1, "both bad accounts were tried");
    let items = health_items(&gw).await;
    for bad in ["html", "errjson"] {
        let i = item(&items, bad);
        assert!(i["lastErrorMessage"].as_str().is_some_and(|m| !m.is_empty()), "{bad} accounted as failed: {i}");
    }
    assert!(item(&items, "good")["lastErrorMessage"].is_null(), "{items:?}");
    let pools_file: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("provider_pools.json")).expect("pools"))
            .expect("j");
    let usage = |name: &str| {
        let accounts = pools_file["openai-custom"].as_array().cloned().unwrap_or_default();
        accounts.iter().find(|x| x["uuid"] == name).and_then(|a| a["usageCount"].as_i64()).unwrap_or(0)
    };
    for bad in ["html", "errjson"] {
        assert_eq!(usage(bad), 0, "{bad} answered nothing the client got");
    }

    // A 200 stream with no events is an error for the client, not an empty completion.
    let (s, body) = post(&gw.url("/openai-custom-empty/v1/chat/completions"), &chat("m", true)).await;
    assert_eq!(s, 200);
    assert!(body.contains("\"error\""), "{body}");
    assert!(!body.contains("[DONE]") && !body.contains("finish_reason"), "{body}");
    let failed = eventually(|| async {
        let items = health_items(&gw).await;
        item(&items, "empty")["lastErrorMessage"].as_str().is_some_and(|m| m.contains("ended before"))
    })
    .await;
    assert!(failed, "the account is charged with the cut-short stream: {:?}", health_items(&gw).await);

    // Garbage lines are not relayed; the well-formed events are.
    let (s, body) = post(&gw.url("/openai-custom-garbage/v1/chat/completions"), &chat("m", true)).await;
    assert_eq!(s, 200);
    assert!(!body.contains("garbage") && !body.contains("html"), "{body}");
    assert_eq!(sse_text(&body), "tok0 ");
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");

    // A request of the wrong shape is refused before any upstream sees it.
    let hits = mock.hits();
    let bad = json!({"model": "m", "messages": "not-a-list"});
    let (s, body) = post(&gw.url("/v1/chat/completions"), &bad).await;
    assert_eq!(s, 400, "{body}");
    assert!(parse(&body)["error"]["message"].as_str().is_some_and(|m| m.contains("messages")), "{body}");
    let bad = json!({"model": "m", "max_tokens": 5, "messages": [{"content": "no role"}]});
    let (s, _) = post(&gw.url("/v1/messages"), &bad).await;
    assert_eq!(s, 400);
    assert_eq!(mock.hits(), hits, "nothing reached the upstream");
}

#[tokio::test]
async fn upstream_urls_never_reach_clients_or_logs() {
    const SECRET: &str = "QUERYSECRET123";
    let closed = free_port();
    let pools = json!({
        "openai-custom": [account("openai-custom", "acct-down", &format!("http://127.0.0.1:{closed}/v1"), "k1")],
        "openai-custom-q": [account("openai-custom", "acct-query", &format!("http://127.0.0.1:{closed}/v1?api-key={SECRET}"), "k2")],
    });
    let dir = config_dir(&json!({"SCHEDULED_HEALTH_CHECK": {"enabled": false}, "REQUEST_MAX_RETRIES": 0}), &pools);
    let gw = Gateway::start(dir.path(), &[]).await;
    let (s, body) = post(&gw.url("/v1/chat/completions"), &chat("m", false)).await;
    assert_eq!(s, 502, "{body}");
    assert!(body.contains("acct-down"), "the account is named: {body}");
    assert!(!body.contains(&closed.to_string()) && !body.contains("http://"), "no URL: {body}");
    let (s, body) = post(&gw.url("/openai-custom-q/v1/chat/completions"), &chat("m", false)).await;
    assert!(s >= 500, "{s} {body}");
    assert!(body.contains("query string"), "a base URL with a query string is refused: {body}");
    assert!(!body.contains(SECRET), "{body}");
    let items = health_items(&gw).await;
    assert!(!serde_json::to_string(&items).expect("json").contains(SECRET), "{items:?}");
    assert!(!serde_json::to_string(&items).expect("json").contains(&closed.to_string()), "{items:?}");
    let logs = gw.logs();
    assert!(!logs.contains(SECRET), "secret in logs:\n{logs}");
}

#[tokio::test]
async fn timeouts_move_to_the_next_account_and_the_deadline_bounds_a_request() {
    let mock = MockUpstream::start().await.expect("mock");
    mock.set_for_key("hang", Script::slow(Duration::from_secs(5)));
    let base = mock.url("/v1");
    let hanging: Vec<Value> = (0..6).map(|i| account("openai-custom", &format!("h{i}"), &base, "hang")).collect();
    let pools = json!({
        "openai-custom-one": [account("openai-custom", "only", &base, "hang")],
        "openai-custom-two": [account("openai-custom", "hangs", &base, "hang"), account("openai-custom", "ok", &base, "good")],
        "openai-custom-many": hanging,
    });
    let config = json!({
        "SCHEDULED_HEALTH_CHECK": {"enabled": false},
        "UPSTREAM_TIMEOUT_MS": 400,
        "REQUEST_MAX_RETRIES": 3,
        "REQUEST_BASE_DELAY": 50,
        "REQUEST_DEADLINE_MS": 1000,
    });
    let dir = config_dir(&config, &pools);
    let gw = Gateway::start(dir.path(), &[]).await;

    // One hanging account: one timeout, no retries on it (before: 4 × 400 ms and backoff).
    let t = Instant::now();
    let (s, body) = post(&gw.url("/openai-custom-one/v1/chat/completions"), &chat("m", false)).await;
    assert_eq!(s, 504, "{body}");
    assert!(t.elapsed() < Duration::from_millis(1000), "{:?}", t.elapsed());
    assert_eq!(mock.hits_for_key("hang"), 1, "the timed-out account was not retried");

    // A hanging and a good account: the good one answers after one timeout at most.
    for _ in 0..2 {
        let t = Instant::now();
        let (s, body) = post(&gw.url("/openai-custom-two/v1/chat/completions"), &chat("m", false)).await;
        assert_eq!(s, 200, "{body}");
        assert!(t.elapsed() < Duration::from_millis(1000), "{:?}", t.elapsed());
    }

    // Six hanging accounts would take 6 × 400 ms; the 1 s deadline ends the request first.
    let t = Instant::now();
    let (s, body) = post(&gw.url("/openai-custom-many/v1/chat/completions"), &chat("m", false)).await;
    assert_eq!(s, 504, "{body}");
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(900) && took < Duration::from_millis(1600), "{took:?}");
}

/// Reads what the server sends until it closes the connection (bounded).
async fn read_to_close(tcp: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&out).into_owned()),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// The JSON body of a raw HTTP response.
fn json_body(raw: &str) -> Value {
    let (_, body) = raw.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no head in {raw:?}"));
    parse(body)
}

#[tokio::test]
async fn http_layer_rejections_have_json_bodies_and_stalled_clients_are_cut() {
    let mock = MockUpstream::start().await.expect("mock");
    let pools = json!({"openai-custom": [account("openai-custom", "a", &mock.url("/v1"), "good")]});
    let config = json!({"SCHEDULED_HEALTH_CHECK": {"enabled": false}, "HEADER_READ_TIMEOUT_MS": 1000, "BODY_READ_TIMEOUT_MS": 800});
    let dir = config_dir(&config, &pools);
    let gw = Gateway::start(dir.path(), &[]).await;
    let addr = format!("127.0.0.1:{}", gw.port);

    // Headers far over the limit: 431 with a JSON error.
    let mut tcp = TcpStream::connect(&addr).await.expect("connect");
    let big = "x".repeat(200 << 10);
    let req = format!("GET /health HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\n\r\n");
    let _ = tcp.write_all(req.as_bytes()).await;
    let raw = read_to_close(&mut tcp, Duration::from_secs(5)).await.expect("answered");
    assert!(raw.starts_with("HTTP/1.1 431"), "{raw:.200}");
    assert_eq!(json_body(&raw)["error"]["code"], 431);

    // A Content-Length that is not a number: 400 with a JSON error.
    let mut tcp = TcpStream::connect(&addr).await.expect("connect");
    let req = "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: abc\r\n\r\n{}";
    tcp.write_all(req.as_bytes()).await.expect("write");
    let raw = read_to_close(&mut tcp, Duration::from_secs(5)).await.expect("answered");
    assert!(raw.starts_with("HTTP/1.1 400"), "{raw}");
    assert!(json_body(&raw)["error"]["message"].as_str().is_some(), "{raw}");

    // Headers that never end: the connection is closed after HEADER_READ_TIMEOUT_MS.
    let mut tcp = TcpStream::connect(&addr).await.expect("connect");
    tcp.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n").await.expect("write");
    let t = Instant::now();
    assert!(read_to_close(&mut tcp, Duration::from_secs(5)).await.is_some(), "closed by the server");
    assert!(t.elapsed() >= Duration::from_millis(800), "{:?}", t.elapsed());

    // A body that stops arriving: 408 in the client's protocol after BODY_READ_TIMEOUT_MS.
    let mut tcp = TcpStream::connect(&addr).await.expect("connect");
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"model\""
    );
    tcp.write_all(head.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 8192];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await.expect("answered").expect("read");
    let raw = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(raw.starts_with("HTTP/1.1 408"), "{raw}");
    assert!(json_body(&raw)["error"]["message"].as_str().is_some_and(|m| m.contains("stalled")), "{raw}");
}

/// How many connections this process may hold open, leaving room for everything else.
fn connection_budget(wanted: usize) -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|x| x.starts_with("Max open files"))
                .and_then(|x| x.split_whitespace().nth(3).and_then(|n| n.parse::<usize>().ok()))
        })
        .unwrap_or(1024);
    wanted.min(soft.saturating_sub(512))
}

#[tokio::test]
async fn clients_are_served_while_thousands_of_connections_hold_half_sent_headers() {
    let mock = MockUpstream::start().await.expect("mock");
    let pools = json!({"openai-custom": [account("openai-custom", "a", &mock.url("/v1"), "good")]});
    // A long header timeout: opening 5,000 connections can take seconds on a loaded machine, and
    // they must all still be open while the requests are served. (The timeout itself is tested
    // in `http_layer_rejections_have_json_bodies_and_stalled_clients_are_cut`.)
    let config = json!({"SCHEDULED_HEALTH_CHECK": {"enabled": false}, "HEADER_READ_TIMEOUT_MS": 120000});
    let dir = config_dir(&config, &pools);
    let gw = Gateway::start(dir.path(), &[]).await;
    let addr = format!("127.0.0.1:{}", gw.port);
    let n = connection_budget(5000);
    assert!(n >= 1000, "too few file descriptors for the test: {n}");
    let opened = Instant::now();
    let held: Vec<TcpStream> = futures::stream::iter(0..n)
        .map(|_| {
            let addr = addr.clone();
            async move {
                let mut tcp = TcpStream::connect(&addr).await.expect("connect");
                tcp.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-slow: 1\r\n").await.expect("write");
                tcp
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let opened_in = opened.elapsed();
    // Served meanwhile: 200 requests, 20 at a time.
    let client = client();
    let url = gw.url("/v1/chat/completions");
    let started = Instant::now();
    let latencies: Vec<(u16, Duration)> = futures::stream::iter(0..200)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let t = Instant::now();
                let s = match client.post(url).bearer_auth(KEY).json(&chat("m", false)).send().await {
                    Ok(r) => r.status().as_u16(),
                    Err(_) => 599,
                };
                (s, t.elapsed())
            }
        })
        .buffer_unordered(20)
        .collect()
        .await;
    let served_in = started.elapsed();
    assert!(latencies.iter().all(|(s, _)| *s == 200), "{:?}", latencies.iter().filter(|(s, _)| *s != 200).count());
    let mut ms: Vec<f64> = latencies.iter().map(|(_, d)| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    println!(
        "held {n} half-sent connections (opened in {opened_in:?}); 200 requests in {served_in:?}: p50 {:.2} ms, p99 {:.2} ms",
        ms[ms.len() / 2],
        ms[ms.len() * 99 / 100]
    );
    // They were all still open (nothing to read, not closed) while the requests were served.
    let mut b = [0u8; 64];
    let open = held
        .iter()
        .filter(|t| matches!(t.try_read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock))
        .count();
    assert_eq!(open, n, "held connections open after serving (opened in {opened_in:?})");
    drop(held);
}

#[tokio::test]
async fn connections_over_the_cap_get_a_json_503() {
    let dir = config_dir(&json!({"MAX_CONNECTIONS": 20}), &json!({}));
    let gw = Gateway::start(dir.path(), &[]).await;
    // The start-up health poll's connection must be closed on the server's side first, or it
    // takes one of the 20 places and the connection after the cap is accepted instead.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let addr = format!("127.0.0.1:{}", gw.port);
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(TcpStream::connect(&addr).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut extra = TcpStream::connect(&addr).await.expect("connect");
    let raw = read_to_close(&mut extra, Duration::from_secs(5)).await.expect("answered and closed");
    assert!(raw.starts_with("HTTP/1.1 503"), "{raw}");
    assert!(json_body(&raw)["error"]["message"].as_str().is_some_and(|m| m.contains("connections")), "{raw}");
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = client().get(gw.url("/health")).send().await.expect("served again");
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test]
async fn kill_9_loses_no_answer_the_client_fully_received() {
    const PREFIX: &str = "pgk:";
    const CLIENTS: usize = 24;
    let server = RedisServer::start().expect("redis");
    let mock = MockUpstream::start().await.expect("mock");
    mock.set_default(Script::stream(3, Duration::from_millis(2)));
    let store = RedisStore::open(server.settings(PREFIX)).await.expect("store");
    store.set_config(&json!({"SCHEDULED_HEALTH_CHECK": {"enabled": false}})).await.expect("config");
    let accounts: Vec<Account> = (0..4)
        .map(|i| {
            let v = account("openai-custom", &format!("a{i}"), &mock.url("/v1"), &format!("k{i}"));
            Account::from_map(v.as_object().cloned().expect("object")).expect("account")
        })
        .collect();
    store.replace_pool("openai-custom", accounts).await.expect("pool");
    let env = vec![("REDIS_URL", server.url()), ("REDIS_KEY_PREFIX", PREFIX.to_string())];
    let dir = tempfile::tempdir().expect("dir");
    let mut completed = 0usize;
    for round in 0..4u64 {
        let gw = Gateway::start(dir.path(), &env).await;
        let url = gw.url("/v1/chat/completions");
        let stop_at = Instant::now() + Duration::from_millis(400 + round * 97);
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let url = url.clone();
                tokio::spawn(async move {
                    let client = client();
                    let mut ok = 0usize;
                    // Bounded: each client sends at most 2,000 requests before the kill.
                    for n in 0..2000 {
                        let stream = (i + n) % 2 == 0;
                        let Ok(r) = client.post(&url).bearer_auth(KEY).json(&chat("m", stream)).send().await else {
                            break;
                        };
                        let Ok(body) = r.text().await else { break };
                        let complete = if stream {
                            body.trim_end().ends_with("data: [DONE]") && sse_text(&body) == "tok0 tok1 tok2 "
                        } else {
                            serde_json::from_str::<Value>(&body).is_ok_and(|v| v["choices"].is_array())
                        };
                        if !complete {
                            break;
                        }
                        ok += 1;
                    }
                    ok
                })
            })
            .collect();
        tokio::time::sleep_until(stop_at.into()).await;
        let _ = std::process::Command::new("kill").args(["-KILL", &gw.pid().to_string()]).status();
        for t in tasks {
            completed += tokio::time::timeout(Duration::from_secs(30), t).await.expect("client ended").expect("task");
        }
        drop(gw);
    }
    let reader = RedisStore::open(server.settings(PREFIX)).await.expect("reader");
    let usage: i64 = reader.get_pool("openai-custom").await.expect("pool").iter().map(|a| a.usage_count()).sum();
    println!("{completed} answers fully received across 4 kill -9 rounds; {usage} usages stored");
    assert!(completed > 100, "traffic flowed: {completed}");
    assert!(usage >= completed as i64, "usage lost to kill -9: {usage} stored < {completed} received");
    assert!(usage <= (completed + 4 * CLIENTS) as i64, "at most the in-flight answers are extra: {usage}");
}

/// Starts `poolgate serve` on `dir` and `port` without `--host` (and without a key unless `key`).
fn spawn_plain(dir: &std::path::Path, port: u16, key: Option<&str>) -> (std::process::Child, std::path::PathBuf) {
    let log = dir.join(format!("plain-{port}.log"));
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_poolgate"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .args(["serve", "--config-dir"])
        .arg(dir)
        .args(["--port", &port.to_string()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"));
    if let Some(k) = key {
        cmd.env("REQUIRED_API_KEY", k);
    }
    (cmd.spawn().expect("spawn"), log)
}

async fn wait_listening(log: &std::path::Path) -> String {
    for _ in 0..200 {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains("poolgate listening") {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not listening:\n{}", std::fs::read_to_string(log).unwrap_or_default());
}

#[tokio::test]
async fn the_public_default_key_listens_on_loopback_only() {
    let dir = tempfile::tempdir().expect("dir");
    let port = free_port();
    let (mut child, log) = spawn_plain(dir.path(), port, None);
    let text = wait_listening(&log).await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(text.contains(&format!("addr=127.0.0.1:{port}")), "{text}");
    assert!(text.contains("listens on 127.0.0.1 only") && text.contains("REQUIRED_API_KEY"), "{text}");
    assert!(!text.contains('\u{1b}'), "no colour codes in a log file:\n{text:?}");

    let port = free_port();
    let (mut child, log) = spawn_plain(dir.path(), port, Some("a-real-key-123"));
    let text = wait_listening(&log).await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(text.contains(&format!("addr=0.0.0.0:{port}")), "a configured key serves the network: {text}");
    assert!(!text.contains("a-real-key-123"));
}

#[tokio::test]
async fn the_startup_log_says_where_the_config_came_from() {
    let server = RedisServer::start().expect("redis");
    let store = RedisStore::open(server.settings("pgl:")).await.expect("store");
    store.set_config(&json!({"SCHEDULED_HEALTH_CHECK": {"enabled": false}})).await.expect("config");
    let dir = tempfile::tempdir().expect("dir");
    let env = vec![("REDIS_URL", server.url()), ("REDIS_KEY_PREFIX", "pgl:".to_string())];
    let gw = Gateway::start(dir.path(), &env).await;
    let logs = gw.logs();
    assert!(logs.contains("config: from Redis (no config.json)"), "{logs}");
    assert!(!logs.contains("no config file"), "{logs}");
}
