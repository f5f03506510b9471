//! The mock against real HTTP calls (reqwest) on its loopback port.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};

use super::*;

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().expect("client")
}

async fn form(mock: &MockOAuth, path: &str, fields: &[(&str, &str)]) -> (u16, Value) {
    let r = client().post(format!("{}{path}", mock.base())).form(fields).send().await.expect("send");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn post_json(mock: &MockOAuth, path: &str, body: &Value, headers: &[(&str, &str)]) -> (u16, Vec<u8>) {
    let mut rb = client().post(format!("{}{path}", mock.base())).json(body);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let r = rb.send().await.expect("send");
    (r.status().as_u16(), r.bytes().await.expect("body").to_vec())
}

fn parse(b: &[u8]) -> Value {
    serde_json::from_slice(b).unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(b)))
}

fn jwt_claims(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).expect("payload");
    parse(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64url"))
}

async fn codex_refresh(mock: &MockOAuth, rt: &str) -> (u16, Value) {
    form(
        mock,
        "/codex/oauth/token",
        &[("grant_type", "refresh_token"), ("client_id", "app_EMoamEEZ73f0CkXaXp7hrann"), ("refresh_token", rt)],
    )
    .await
}

/// (headers in order, payload).
type Frame = (Vec<(String, String)>, Vec<u8>);

/// Decodes AWS event-stream frames, checking both CRCs.
fn decode_frames(mut b: &[u8]) -> Vec<Frame> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let total = u32::from_be_bytes(b[0..4].try_into().expect("4")) as usize;
        let hlen = u32::from_be_bytes(b[4..8].try_into().expect("4")) as usize;
        assert_eq!(u32::from_be_bytes(b[8..12].try_into().expect("4")), crc32fast::hash(&b[0..8]), "prelude CRC");
        let frame = &b[..total];
        assert_eq!(
            u32::from_be_bytes(frame[total - 4..].try_into().expect("4")),
            crc32fast::hash(&frame[..total - 4]),
            "message CRC"
        );
        let mut h = &frame[12..12 + hlen];
        let mut headers = Vec::new();
        while !h.is_empty() {
            let n = h[0] as usize;
            let name = String::from_utf8(h[1..1 + n].to_vec()).expect("name");
            assert_eq!(h[1 + n], 7, "string header");
            let len = u16::from_be_bytes([h[2 + n], h[3 + n]]) as usize;
            let value = String::from_utf8(h[4 + n..4 + n + len].to_vec()).expect("value");
            headers.push((name, value));
            h = &h[4 + n + len..];
        }
        out.push((headers, frame[12 + hlen..total - 4].to_vec()));
        b = &b[total..];
    }
    out
}

fn kiro_body(tools: bool) -> Value {
    let mut msg = json!({"content": "weather?", "modelId": "CLAUDE_SONNET_4_5_20250929_V1_0", "origin": "AI_EDITOR"});
    if tools {
        msg["userInputMessageContext"] = json!({"tools": [{"toolSpecification": {"name": "get_weather",
            "description": "w", "inputSchema": {"json": {"type": "object"}}}}]});
    }
    json!({"conversationState": {"chatTriggerType": "MANUAL", "conversationId": "c-1",
        "currentMessage": {"userInputMessage": msg}}})
}

/// (status, content type, the pieces as read, the whole body).
async fn kiro_call(mock: &MockOAuth, token: &str, tools: bool) -> (u16, String, usize, Vec<u8>) {
    let r = client()
        .post(format!("{}/kiro/generateAssistantResponse", mock.base()))
        .bearer_auth(token)
        .header("amz-sdk-request", "attempt=1; max=1")
        .header("amz-sdk-invocation-id", "00000000-0000-4000-8000-000000000001")
        .header("x-amzn-kiro-agent-mode", "vibe")
        .header("x-amz-user-agent", "aws-sdk-js/1.0.0 KiroIDE-0.8.140-abc")
        .json(&kiro_body(tools))
        .send()
        .await
        .expect("send");
    let status = r.status().as_u16();
    let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let mut stream = r.bytes_stream();
    let (mut reads, mut all) = (0, Vec::new());
    while let Some(c) = stream.next().await {
        reads += 1;
        all.extend_from_slice(&c.expect("chunk"));
    }
    (status, ct, reads, all)
}

#[test]
fn kiro_frame_is_the_specs_124_bytes() {
    // The hexdump of §11, row by row.
    let want: String = "
        00 00 00 7c 00 00 00 5c 3b dd cf 78 0b 3a 65 76
        65 6e 74 2d 74 79 70 65 07 00 16 61 73 73 69 73
        74 61 6e 74 52 65 73 70 6f 6e 73 65 45 76 65 6e
        74 0d 3a 63 6f 6e 74 65 6e 74 2d 74 79 70 65 07
        00 10 61 70 70 6c 69 63 61 74 69 6f 6e 2f 6a 73
        6f 6e 0d 3a 6d 65 73 73 61 67 65 2d 74 79 70 65
        07 00 05 65 76 65 6e 74 7b 22 63 6f 6e 74 65 6e
        74 22 3a 22 48 69 22 7d b0 2b ab dc"
        .split_whitespace()
        .collect();
    let f = kiro_frame(
        &[(":event-type", "assistantResponseEvent"), (":content-type", "application/json"), (":message-type", "event")],
        br#"{"content":"Hi"}"#,
    );
    assert_eq!(f.len(), 124);
    assert_eq!(hex::encode(&f), want);
    assert_eq!(&f[8..12], &0x3bdd_cf78u32.to_be_bytes());
    assert_eq!(&f[120..], &0xb02b_abdcu32.to_be_bytes());
    // The other two frames the spec's script measured.
    let ctx = kiro_frame(
        &[(":event-type", "contextUsageEvent"), (":content-type", "application/json"), (":message-type", "event")],
        br#"{"contextUsagePercentage":1.25}"#,
    );
    assert_eq!(
        (ctx.len(), &ctx[8..12], &ctx[130..]),
        (134, &0xae8b_5e0cu32.to_be_bytes()[..], &0x78a7_22ecu32.to_be_bytes()[..])
    );
    let stop = kiro_frame(
        &[(":event-type", "toolUseEvent"), (":content-type", "application/json"), (":message-type", "event")],
        br#"{"name":"get_weather","toolUseId":"tooluse_abc123","stop":true}"#,
    );
    assert_eq!(
        (stop.len(), &stop[8..12], &stop[157..]),
        (161, &0xad00_5997u32.to_be_bytes()[..], &0x8eae_221eu32.to_be_bytes()[..])
    );
}

#[test]
fn iflow_signature_vector() {
    let s = signature("sk-example-key", "iFlow-Cli", "session-00000000-0000-4000-8000-000000000000", "1767225600000");
    assert_eq!(s, "1c3a1291b25c617ed413e1932dbae41da42e1fffa8478ca2776728bd0d3a7503");
}

#[tokio::test]
async fn codex_rotates_and_detects_reuse() {
    let mock = MockOAuth::start().await.expect("mock");
    assert!(mock.base().starts_with("http://127.0.0.1:"));
    mock.seed_refresh_token(Prov::Codex, "rt-seed");
    let (status, first) = codex_refresh(&mock, "rt-seed").await;
    assert_eq!(status, 200, "{first}");
    let rt2 = first["refresh_token"].as_str().expect("rotated").to_string();
    assert!(rt2.starts_with("rt-") && rt2 != "rt-seed");
    assert!(first["access_token"].as_str().expect("at").starts_with("at-"));
    assert_eq!(first["expires_in"], 864_000);
    let claims = jwt_claims(first["id_token"].as_str().expect("id_token"));
    assert_eq!(claims["email"], "m@example.com");
    assert_eq!(claims["https://api.openai.com/auth"]["chatgpt_account_id"], "acct-mock");
    // The rotated-away token again: refused as a reuse, and recorded.
    let (status, again) = codex_refresh(&mock, "rt-seed").await;
    assert_eq!((status, again["error"].as_str()), (400, Some("refresh_token_reused")));
    assert_eq!(mock.reused_refresh_tokens(Prov::Codex), vec!["rt-seed".to_string()]);
    // The new one works once and rotates again; an unknown one is invalid_grant, no reuse.
    let (status, second) = codex_refresh(&mock, &rt2).await;
    assert_eq!(status, 200);
    assert_ne!(second["refresh_token"], json!(rt2));
    assert_ne!(second["access_token"], first["access_token"]);
    let (status, unknown) = codex_refresh(&mock, "rt-never-issued").await;
    assert_eq!((status, unknown["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(mock.reused_refresh_tokens(Prov::Codex).len(), 1);
    assert_eq!(mock.token_calls(Prov::Codex), 4);
    assert_eq!(mock.token_calls_for(Prov::Codex, "rt-seed"), 2);
    assert_eq!(mock.token_calls_for(Prov::Codex, &rt2), 1);
    let recorded = mock.requests(Prov::Codex);
    assert_eq!(recorded.len(), 4);
    assert_eq!(recorded[0].path, "/codex/oauth/token");
    assert!(String::from_utf8_lossy(&recorded[0].body).contains("grant_type=refresh_token"));
    // Non-rotating: the same token serves again and no refresh_token is answered.
    mock.set_rotating(Prov::Codex, false);
    let rt3 = second["refresh_token"].as_str().expect("rt").to_string();
    for _ in 0..2 {
        let (status, b) = codex_refresh(&mock, &rt3).await;
        assert_eq!(status, 200);
        assert!(b.get("refresh_token").is_none(), "{b}");
    }
}

#[tokio::test]
async fn google_keeps_its_refresh_token_and_refuses_revoked_ones() {
    let mock = MockOAuth::start().await.expect("mock");
    mock.seed_refresh_token(Prov::Google, "1//g");
    let fields =
        [("grant_type", "refresh_token"), ("refresh_token", "1//g"), ("client_id", "cid"), ("client_secret", "cs")];
    let (s1, a) = form(&mock, "/google/token", &fields).await;
    let (s2, b) = form(&mock, "/google/token", &fields).await;
    assert_eq!((s1, s2), (200, 200));
    assert!(a["access_token"].as_str().expect("at").starts_with("ya29.mock-"));
    assert_ne!(a["access_token"], b["access_token"]);
    assert_eq!((a["expires_in"].as_u64(), a.get("refresh_token")), (Some(3599), None));
    mock.revoke_refresh_token(Prov::Google, "1//g");
    let (s, e) = form(&mock, "/google/token", &fields).await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_grant")));
    assert!(mock.reused_refresh_tokens(Prov::Google).is_empty(), "a revocation is not a reuse");
    let (s, _) = form(&mock, "/google/token", &[("grant_type", "password"), ("refresh_token", "1//g")]).await;
    assert_eq!(s, 400);
    assert_eq!(mock.token_calls(Prov::Google), 4);
}

#[tokio::test]
async fn kiro_social_and_oidc_rotate_and_both_tokens_reach_the_api() {
    let mock = MockOAuth::start().await.expect("mock");
    mock.seed_refresh_token(Prov::KiroSocial, "aor-1");
    mock.seed_refresh_token(Prov::KiroOidc, "aor-i1");
    let (s, b) = post_json(&mock, "/kiro/refreshToken", &json!({"refreshToken": "aor-1"}), &[]).await;
    let social = parse(&b);
    assert_eq!(s, 200, "{social}");
    assert_eq!(social["profileArn"], "arn:aws:codewhisperer:us-east-1:000000000000:profile/MOCK");
    assert_eq!(social["expiresIn"], 3600);
    assert!(social["refreshToken"].as_str().is_some_and(|r| r != "aor-1"));
    let (s, b) = post_json(&mock, "/kiro/refreshToken", &json!({"refreshToken": "aor-1"}), &[]).await;
    assert_eq!(s, 401);
    assert!(parse(&b)["message"].is_string());
    assert_eq!(mock.reused_refresh_tokens(Prov::KiroSocial), vec!["aor-1".to_string()]);
    let oidc_req =
        |grant: &str| json!({"refreshToken": "aor-i1", "clientId": "cid", "clientSecret": "cs", "grantType": grant});
    let (s, _) = post_json(&mock, "/kiro/oidc/token", &oidc_req("password"), &[]).await;
    assert_eq!(s, 400);
    let (s, b) = post_json(&mock, "/kiro/oidc/token", &oidc_req("refresh_token"), &[]).await;
    let oidc = parse(&b);
    assert_eq!((s, oidc["tokenType"].as_str()), (200, Some("Bearer")));
    assert_eq!(mock.token_calls(Prov::KiroOidc), 2);
    assert_eq!(mock.token_calls(Prov::KiroSocial), 2);
    for (p, t) in [(Prov::KiroSocial, &social), (Prov::KiroOidc, &oidc)] {
        let token = t["accessToken"].as_str().expect("at");
        let (status, ct, _, body) = kiro_call(&mock, token, false).await;
        assert_eq!((status, ct.as_str()), (200, "application/vnd.amazon.eventstream"));
        let text: String = decode_frames(&body)
            .into_iter()
            .filter_map(|(_, p)| parse(&p)["content"].as_str().map(str::to_string))
            .collect();
        assert_eq!(text, "Hello from kiro");
        assert_eq!(mock.access_tokens_seen(p), vec![token.to_string()], "{p:?}");
        assert_eq!(mock.api_calls(p), 1, "{p:?}");
    }
}

#[tokio::test]
async fn token_delay_holds_the_answer_and_the_call_counts_on_arrival() {
    let mock = MockOAuth::start().await.expect("mock");
    mock.seed_refresh_token(Prov::Qwen, "qr-1");
    mock.set_token_delay(Prov::Qwen, Duration::from_millis(400));
    let started = Instant::now();
    let m = mock.clone();
    let call = tokio::spawn(async move {
        form(
            &m,
            "/qwen/api/v1/oauth2/token",
            &[("grant_type", "refresh_token"), ("refresh_token", "qr-1"), ("client_id", "f0")],
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(mock.token_calls(Prov::Qwen), 1, "counted before it answers");
    assert!(!call.is_finished());
    let (status, b) = call.await.expect("join");
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["resource_url"], json!(format!("{}/qwen", mock.base())));
    assert_eq!(b["expires_in"], 21_600);
    // A refresher given up on mid-call: the call still counts.
    mock.set_token_delay(Prov::Qwen, Duration::from_secs(5));
    let rt = b["refresh_token"].as_str().expect("rt").to_string();
    let url = format!("{}/qwen/api/v1/oauth2/token", mock.base());
    let r = client()
        .post(url)
        .form(&[("grant_type", "refresh_token"), ("refresh_token", rt.as_str())])
        .timeout(Duration::from_millis(100))
        .send()
        .await;
    assert!(r.is_err(), "timed out");
    assert_eq!(mock.token_calls_for(Prov::Qwen, &rt), 1);
}

#[tokio::test]
async fn token_failure_knobs() {
    let mock = MockOAuth::start().await.expect("mock");
    mock.seed_refresh_token(Prov::Codex, "rt-f");
    for (f, status) in
        [(TokenFailure::InvalidGrant, 400), (TokenFailure::Server500, 500), (TokenFailure::Unauthorized401, 401)]
    {
        mock.set_token_failure(Prov::Codex, Some(f));
        let (s, b) = codex_refresh(&mock, "rt-f").await;
        assert_eq!(s, status, "{f:?}: {b}");
    }
    mock.set_token_failure(Prov::KiroSocial, Some(TokenFailure::InvalidGrant));
    let (s, _) = post_json(&mock, "/kiro/refreshToken", &json!({"refreshToken": "x"}), &[]).await;
    assert_eq!(s, 401);
    mock.set_token_failure(Prov::Codex, None);
    let (s, _) = codex_refresh(&mock, "rt-f").await;
    assert_eq!(s, 200, "the token survived the forced failures");
}

#[tokio::test]
async fn expired_or_unknown_access_tokens_get_401() {
    let mock = MockOAuth::start().await.expect("mock");
    mock.seed_access_token(Prov::Codex, "at-short", Duration::from_millis(300));
    let req = json!({"model": "gpt-5-codex", "instructions": "x", "store": false, "stream": false, "input": []});
    let auth = [("authorization", "Bearer at-short")];
    let (s, body) = post_json(&mock, "/codex/backend-api/codex/responses", &req, &auth).await;
    let text = String::from_utf8_lossy(&body).to_string();
    assert_eq!(s, 200);
    assert!(text.starts_with("data: {\"type\":\"response.created\""), "SSE even for stream:false: {text}");
    assert!(text.contains("response.output_text.delta") && text.contains("\"total_tokens\":7"), "{text}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (s, body) = post_json(&mock, "/codex/backend-api/codex/responses", &req, &auth).await;
    assert_eq!(s, 401);
    assert_eq!(parse(&body)["error"]["code"], "token_expired");
    let (s, _) =
        post_json(&mock, "/codex/backend-api/codex/responses", &req, &[("authorization", "Bearer nope")]).await;
    assert_eq!(s, 401);
    assert_eq!(mock.access_tokens_seen(Prov::Codex), vec!["at-short", "at-short", "nope"]);
    assert_eq!(mock.api_calls(Prov::Codex), 3);
    // An issued token expires by its TTL.
    mock.seed_refresh_token(Prov::Google, "1//t");
    mock.set_access_ttl(Prov::Google, 1);
    let (_, t) = form(&mock, "/google/token", &[("grant_type", "refresh_token"), ("refresh_token", "1//t")]).await;
    assert_eq!(t["expires_in"], 1);
    let bearer = format!("Bearer {}", t["access_token"].as_str().expect("at"));
    let load = json!({"cloudaicompanionProject": "", "metadata": {}});
    let path = "/codeassist/v1internal:loadCodeAssist";
    let (s, _) = post_json(&mock, path, &load, &[("authorization", &bearer)]).await;
    assert_eq!(s, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (s, body) = post_json(&mock, path, &load, &[("authorization", &bearer)]).await;
    assert_eq!((s, parse(&body)["error"]["status"].as_str()), (401, Some("UNAUTHENTICATED")));
}

#[tokio::test]
async fn iflow_checks_basic_auth_user_info_and_the_signature() {
    let mock = MockOAuth::start().await.expect("mock");
    mock.seed_refresh_token(Prov::IFlow, "ir-1");
    let url = format!("{}/iflow/oauth/token", mock.base());
    let fields = [
        ("grant_type", "refresh_token"),
        ("refresh_token", "ir-1"),
        ("client_id", "10009311001"),
        ("client_secret", "4Z3Y"),
    ];
    let r = client().post(&url).form(&fields).basic_auth("10009311001", Some("wrong")).send().await.expect("send");
    assert_eq!(r.status().as_u16(), 401, "Basic must match the form");
    let r = client().post(&url).form(&fields).basic_auth("10009311001", Some("4Z3Y")).send().await.expect("send");
    assert_eq!(r.status().as_u16(), 200);
    let t: Value = r.json().await.expect("json");
    assert_eq!((t["token_type"].as_str(), t["expires_in"].as_u64()), (Some("bearer"), Some(172_800)));
    let at = t["access_token"].as_str().expect("at");
    let info: Value = client()
        .get(format!("{}/iflow/api/oauth/getUserInfo", mock.base()))
        .query(&[("accessToken", at)])
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!((info["success"].as_bool(), info["data"]["phone"].as_str()), (Some(true), Some("13800000000")));
    let key = info["data"]["apiKey"].as_str().expect("apiKey").to_string();
    assert!(key.starts_with("sk-mock-"));
    let chat = |key: String, sig: Option<String>| {
        let mock = mock.clone();
        async move {
            let (session, ts) = ("session-00000000-0000-4000-8000-000000000000", "1767225600000");
            let mut rb = client()
                .post(format!("{}/iflow/v1/chat/completions", mock.base()))
                .bearer_auth(&key)
                .header("user-agent", "iFlow-Cli")
                .json(&json!({"model": "glm-4.6", "messages": [{"role": "user", "content": "hi"}]}));
            if let Some(sig) = sig {
                rb = rb.header("session-id", session).header("x-iflow-timestamp", ts).header("x-iflow-signature", sig);
            }
            let r = rb.send().await.expect("send");
            (r.status().as_u16(), r.text().await.unwrap_or_default())
        }
    };
    let good = signature(&key, "iFlow-Cli", "session-00000000-0000-4000-8000-000000000000", "1767225600000");
    let (s, body) = chat(key.clone(), Some(good)).await;
    assert_eq!(s, 200, "{body}");
    assert!(body.contains("Hello from iflow"), "{body}");
    let (s, body) = chat(key.clone(), Some("00".repeat(32))).await;
    assert_eq!(s, 401);
    assert!(body.contains("mismatch"), "{body}");
    let (s, body) = chat(key.clone(), None).await;
    assert_eq!(s, 400);
    assert!(body.contains("missing signature headers"), "{body}");
    let bad = signature("sk-unknown", "iFlow-Cli", "session-00000000-0000-4000-8000-000000000000", "1767225600000");
    let (s, _) = chat("sk-unknown".into(), Some(bad)).await;
    assert_eq!(s, 401, "unknown apiKey");
    assert_eq!(mock.api_calls(Prov::IFlow), 4);
}

#[tokio::test]
async fn qwen_needs_the_dashscope_headers_and_the_ext_tool() {
    let mock = MockOAuth::start().await.expect("mock");
    mock.seed_access_token(Prov::Qwen, "qa-1", Duration::from_secs(60));
    let body = json!({"model": "qwen3-coder-plus", "stream": true, "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "ext"}},
                  {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]});
    let (s, b) = post_json(&mock, "/qwen/v1/chat/completions", &body, &[("authorization", "Bearer qa-1")]).await;
    assert_eq!(s, 400);
    assert!(String::from_utf8_lossy(&b).contains("x-dashscope-authtype"));
    let headers = [
        ("authorization", "Bearer qa-1"),
        ("x-dashscope-authtype", "qwen-oauth"),
        ("x-dashscope-cachecontrol", "enable"),
        ("x-dashscope-useragent", "QwenCode/0.2.1 (linux; x64)"),
    ];
    let (s, b) = post_json(&mock, "/qwen/v1/chat/completions", &body, &headers).await;
    let text = String::from_utf8_lossy(&b);
    assert_eq!(s, 200, "{text}");
    assert!(text.contains("\"get_weather\"") && text.contains(r#"{\"city\":\"Paris\"}"#), "{text}");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let mut no_ext = body.clone();
    no_ext["tools"] = json!([]);
    let (s, _) = post_json(&mock, "/qwen/v1/chat/completions", &no_ext, &headers).await;
    assert_eq!(s, 400);
    mock.set_api_script(Prov::Qwen, ApiScript::Status(429));
    let (s, b) = post_json(&mock, "/qwen/v1/chat/completions", &body, &headers).await;
    assert_eq!((s, parse(&b)["error"]["code"].as_str()), (429, Some("rate_limit_exceeded")));
}

#[tokio::test]
async fn code_assist_envelope_discovery_and_quota() {
    let mock = MockOAuth::start().await.expect("mock");
    mock.seed_access_token(Prov::Google, "ya29.t", Duration::from_secs(60));
    let auth = [("authorization", "Bearer ya29.t")];
    let call = |method: &'static str, body: Value| {
        let mock = mock.clone();
        async move {
            let (s, b) = post_json(&mock, &format!("/codeassist/v1internal:{method}"), &body, &auth).await;
            (s, String::from_utf8_lossy(&b).to_string())
        }
    };
    let (s, b) = call("loadCodeAssist", json!({})).await;
    assert_eq!((s, parse(b.as_bytes())["cloudaicompanionProject"].as_str()), (200, Some("mock-proj")));
    mock.set_code_assist_project(None);
    let (_, b) = call("loadCodeAssist", json!({})).await;
    assert!(parse(b.as_bytes()).get("cloudaicompanionProject").is_none(), "{b}");
    let (_, b) = call("onboardUser", json!({"tierId": "free-tier"})).await;
    assert_eq!(parse(b.as_bytes()), json!({"done": false}));
    let (_, b) = call("onboardUser", json!({"tierId": "free-tier"})).await;
    assert_eq!(parse(b.as_bytes())["response"]["cloudaicompanionProject"]["id"], "mock-proj");
    let inner = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    let (s, _) = call("generateContent", json!({"model": "gemini-2.5-flash", "request": inner})).await;
    assert_eq!(s, 400, "no project in the envelope");
    let envelope = json!({"model": "gemini-2.5-flash", "project": "mock-proj", "request": inner});
    let (s, b) = call("generateContent", envelope.clone()).await;
    let v = parse(b.as_bytes());
    assert_eq!((s, v["traceId"].as_str()), (200, Some("t-1")));
    assert_eq!(v["response"]["candidates"][0]["content"]["parts"][0]["text"], "Hello from code-assist");
    assert_eq!(v["response"]["usageMetadata"]["totalTokenCount"], 4);
    let (s, b) = call("streamGenerateContent?alt=sse", envelope.clone()).await;
    assert_eq!(s, 200);
    let events: Vec<Value> = b.lines().filter_map(|l| l.strip_prefix("data: ")).map(|d| parse(d.as_bytes())).collect();
    assert_eq!(events.len(), 2, "{b}");
    assert_eq!(events[1]["response"]["candidates"][0]["finishReason"], "STOP");
    let mut tools = envelope.clone();
    tools["request"]["tools"] = json!([{"functionDeclarations": [{"name": "get_weather"}]}]);
    let (_, b) = call("generateContent", tools).await;
    assert_eq!(
        parse(b.as_bytes())["response"]["candidates"][0]["content"]["parts"][0]["functionCall"],
        json!({"name": "get_weather", "args": {"city": "Paris"}})
    );
    let (_, b) = call("retrieveUserQuota", json!({"project": "mock-proj"})).await;
    assert_eq!(
        parse(b.as_bytes()),
        json!({"buckets":[{"modelId":"gemini-2.5-flash","remainingFraction":0.75,"resetTime":"2026-12-03T00:00:00Z"}]})
    );
    let (_, b) = call("fetchAvailableModels", json!({})).await;
    assert_eq!(
        parse(b.as_bytes()),
        json!({"models":{"gemini-3-flash":{"quotaInfo":{"remainingFraction":0.9,"resetTime":"2026-12-03T00:00:00Z"}}}})
    );
    let (s, _) = call("countTokens", json!({"request": inner})).await;
    assert_eq!(s, 200);
    mock.set_api_script(Prov::Google, ApiScript::Status(429));
    let (s, b) = call("generateContent", envelope).await;
    assert_eq!((s, parse(b.as_bytes())["error"]["status"].as_str()), (429, Some("RESOURCE_EXHAUSTED")));
    let (s, _) = call("retrieveUserQuota", json!({})).await;
    assert_eq!(s, 200, "quota calls ignore the status script");
}

#[tokio::test]
async fn kiro_streams_decode_to_the_canonical_sequence_in_every_chunking() {
    let mock = MockOAuth::start().await.expect("mock");
    mock.seed_access_token(Prov::KiroSocial, "aoa-1", Duration::from_secs(60));
    let canonical = [
        ("assistantResponseEvent", json!({"content": "Hel"})),
        ("assistantResponseEvent", json!({"content": "lo"})),
        ("toolUseEvent", json!({"name": "get_weather", "toolUseId": "tooluse_abc123", "input": "{\"city\":"})),
        ("toolUseEvent", json!({"name": "get_weather", "toolUseId": "tooluse_abc123", "input": "\"Paris\"}"})),
        ("toolUseEvent", json!({"name": "get_weather", "toolUseId": "tooluse_abc123", "stop": true})),
        ("meteringEvent", json!({"unit": "credit", "unitPlural": "credits", "usage": 0.0123})),
        ("contextUsageEvent", json!({"contextUsagePercentage": 1.25})),
    ];
    for script in [
        ApiScript::Normal,
        ApiScript::KiroChunking(Chunking::Aligned),
        ApiScript::KiroChunking(Chunking::Arbitrary { max: 9 }),
    ] {
        mock.set_api_script(Prov::KiroSocial, script);
        let (status, _, reads, body) = kiro_call(&mock, "aoa-1", true).await;
        assert_eq!(status, 200, "{script:?}");
        let frames = decode_frames(&body);
        assert_eq!(frames.len(), canonical.len(), "{script:?}");
        for ((headers, payload), (kind, want)) in frames.iter().zip(&canonical) {
            let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(names, [":event-type", ":content-type", ":message-type"]);
            assert_eq!((headers[0].1.as_str(), headers[2].1.as_str()), (*kind, "event"));
            // Exact bytes: the payload starts with the key the reference scans for.
            assert_eq!(payload, &want.to_string().into_bytes(), "{script:?}");
        }
        if let ApiScript::KiroChunking(Chunking::Arbitrary { .. }) = script {
            assert!(reads > frames.len(), "split writes reach the client as separate reads ({reads})");
        }
    }
    mock.set_api_script(Prov::KiroSocial, ApiScript::KiroException);
    let (_, _, _, body) = kiro_call(&mock, "aoa-1", true).await;
    let frames = decode_frames(&body);
    let (headers, payload) = frames.last().expect("frames");
    assert_eq!(headers[0], (":exception-type".to_string(), "ThrottlingException".to_string()));
    assert_eq!(headers[2].1, "exception");
    assert_eq!(payload, br#"{"message":"Too many requests"}"#);
}

#[tokio::test]
async fn kiro_status_scripts_delay_and_request_checks() {
    let mock = MockOAuth::start().await.expect("mock");
    mock.seed_access_token(Prov::KiroOidc, "aoa-i", Duration::from_secs(60));
    for (status, message) in [
        (400, "Improperly formed request."),
        (402, "Limit reached"),
        (403, "The bearer token included in the request is invalid."),
        (429, "Too many requests"),
        (500, "unexpected error"),
    ] {
        mock.set_api_script(Prov::KiroOidc, ApiScript::Status(status));
        let (s, _, _, body) = kiro_call(&mock, "aoa-i", false).await;
        let v = parse(&body);
        assert_eq!(s, status);
        assert!(v["message"].as_str().is_some_and(|m| m.contains(message)), "{v}");
        if status == 402 {
            assert_eq!(v["reason"], "MONTHLY_REQUEST_COUNT");
        }
    }
    mock.set_api_script(Prov::KiroOidc, ApiScript::Delay(Duration::from_millis(300)));
    let started = Instant::now();
    let (s, _, _, _) = kiro_call(&mock, "aoa-i", false).await;
    assert_eq!(s, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    mock.set_api_script(Prov::KiroOidc, ApiScript::Normal);
    // Without the §2.3 headers: 400 naming them.
    let (s, b) =
        post_json(&mock, "/kiro/generateAssistantResponse", &kiro_body(false), &[("authorization", "Bearer aoa-i")])
            .await;
    assert_eq!(s, 400);
    assert!(String::from_utf8_lossy(&b).contains("x-amzn-kiro-agent-mode"));
    let (s, _, _, _) = kiro_call(&mock, "aoa-expired-or-unknown", false).await;
    assert_eq!(s, 401);
    // Usage endpoints.
    let r = client()
        .get(format!("{}/kiro/getUsageLimits?isEmailRequired=true&origin=AI_EDITOR", mock.base()))
        .bearer_auth("aoa-i")
        .send()
        .await
        .expect("send");
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["usageBreakdownList"][0]["usageLimit"], 50);
    assert_eq!(v["subscriptionInfo"]["subscriptionTitle"], "KIRO FREE");
    let recorded = mock.requests(Prov::KiroOidc);
    assert_eq!(recorded.last().expect("rec").path, "/kiro/getUsageLimits?isEmailRequired=true&origin=AI_EDITOR");
    mock.seed_access_token(Prov::Codex, "at-u", Duration::from_secs(60));
    let r = client().get(format!("{}/codex/backend-api/wham/usage", mock.base())).bearer_auth("at-u").send().await;
    let v: Value = r.expect("send").json().await.expect("json");
    assert_eq!(v["rate_limit"]["primary_window"]["used_percent"], 12.5);
    assert_eq!(v["rate_limit"]["secondary_window"]["reset_at"], 1_767_600_000);
}
