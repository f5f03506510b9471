//! The upstream APIs' answers: Code Assist, Codex, Qwen, iFlow, Kiro.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use serde_json::{json, Value};

use super::{authorize, json_status, now_ms, sse, ApiScript, Chunking, MockOAuth, Prov, Recorded};

fn body_json(rec: &Recorded) -> Value {
    serde_json::from_slice(&rec.body).unwrap_or(Value::Null)
}

fn header<'a>(rec: &'a Recorded, name: &str) -> &'a str {
    rec.headers.get(name).map(String::as_str).unwrap_or("")
}

/// An unsigned JWT (`alg: none`, base64url header.payload.sig) carrying the claims Codex reads:
/// `email` and `https://api.openai.com/auth` → `chatgpt_account_id: acct-mock`.
pub fn fake_jwt() -> String {
    use base64::Engine;
    let enc = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let claims = json!({"email": "m@example.com", "sub": "user-mock", "exp": now_ms() / 1000 + 864_000,
        "https://api.openai.com/auth": {"chatgpt_account_id": "acct-mock", "chatgpt_plan_type": "plus"}});
    format!("{}.{}.c2ln", enc(json!({"alg": "none", "typ": "JWT"})), enc(claims))
}

// ---- Code Assist ----------------------------------------------------------------------------

fn google_error(status: u16) -> Response {
    let name = match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        _ => "INTERNAL",
    };
    json_status(status, json!({"error": {"code": status, "message": format!("mock {name}"), "status": name}}))
}

pub fn code_assist(mock: &MockOAuth, rec: Recorded, method: &str) -> Response {
    if let Err(r) = authorize(mock, &[Prov::Google], &rec) {
        return *r;
    }
    let body = body_json(&rec);
    let project = mock.inner.lock().project.clone();
    let query = rec.path.split_once('?').map(|(_, q)| q).unwrap_or("");
    let generation = matches!(method, "generateContent" | "streamGenerateContent" | "countTokens");
    if let (true, ApiScript::Status(s)) = (generation, mock.script(Prov::Google)) {
        return google_error(s);
    }
    match method {
        "loadCodeAssist" => {
            let mut answer = json!({"allowedTiers": [{"id": "free-tier", "isDefault": true}]});
            if let Some(p) = project {
                answer["cloudaicompanionProject"] = json!(p);
            }
            json_status(200, answer)
        }
        "onboardUser" => {
            let polls = {
                let mut g = mock.inner.lock();
                g.onboard_polls += 1;
                g.onboard_polls
            };
            if polls == 1 {
                json_status(200, json!({"done": false}))
            } else {
                json_status(200, json!({"done": true, "response": {"cloudaicompanionProject": {"id": "mock-proj"}}}))
            }
        }
        "retrieveUserQuota" => json_status(
            200,
            json!({"buckets": [{"modelId": "gemini-2.5-flash", "remainingFraction": 0.75, "resetTime": "2026-12-03T00:00:00Z"}]}),
        ),
        "fetchAvailableModels" => json_status(
            200,
            json!({"models": {"gemini-3-flash": {"quotaInfo": {"remainingFraction": 0.9, "resetTime": "2026-12-03T00:00:00Z"}}}}),
        ),
        "countTokens" => json_status(200, json!({"totalTokens": 3})),
        "generateContent" | "streamGenerateContent" => {
            let has_project = body.get("project").and_then(Value::as_str).is_some_and(|p| !p.is_empty());
            if !has_project || !body.get("request").is_some_and(Value::is_object) || body.get("model").is_none() {
                return json_status(
                    400,
                    json!({"error": {"code": 400, "message": "the envelope needs model, project and request", "status": "INVALID_ARGUMENT"}}),
                );
            }
            let tool = body
                .pointer("/request/tools/0/functionDeclarations/0/name")
                .and_then(Value::as_str)
                .map(str::to_string);
            let usage = json!({"promptTokenCount": 3, "candidatesTokenCount": 1, "totalTokenCount": 4});
            let wrap = |parts: Value, finish: bool| {
                let mut cand = json!({"content": {"role": "model", "parts": parts}});
                if finish {
                    cand["finishReason"] = json!("STOP");
                }
                json!({"response": {"candidates": [cand], "usageMetadata": usage, "modelVersion": "mock",
                    "responseId": "r-1"}, "traceId": "t-1"})
            };
            let last = |text: &str| match &tool {
                Some(t) => json!([{"functionCall": {"name": t, "args": {"city": "Paris"}}}]),
                None => json!([{"text": text}]),
            };
            if method == "generateContent" {
                // Image models answer with inline image data beside their text.
                if body.get("model").and_then(Value::as_str).is_some_and(|m| m.contains("image")) {
                    let image = json!({"inlineData": {"mimeType": "image/png", "data": crate::mock_upstream::formats::PNG_B64}});
                    return json_status(200, wrap(json!([{"text": "Here is your image"}, image]), true));
                }
                return json_status(200, wrap(last("Hello from code-assist"), true));
            }
            if query != "alt=sse" {
                return json_status(
                    400,
                    json!({"error": {"code": 400, "message": "streamGenerateContent needs ?alt=sse", "status": "INVALID_ARGUMENT"}}),
                );
            }
            let mut events = Vec::new();
            if tool.is_none() {
                events.push(format!("data: {}\n\n", wrap(json!([{"text": "Hello from "}]), false)));
            }
            events.push(format!("data: {}\n\n", wrap(last("code-assist"), true)));
            sse(events)
        }
        _ => google_error(404),
    }
}

// ---- Codex ----------------------------------------------------------------------------------

fn codex_error(status: u16) -> Response {
    let body = match status {
        429 => json!({"error": {"type": "usage_limit_reached", "message": "The usage limit has been reached",
            "plan_type": "plus", "resets_in_seconds": 3600}}),
        401 => {
            json!({"error": {"message": "Provided authentication token is expired.", "type": "invalid_request_error",
            "code": "token_expired"}})
        }
        s => json!({"error": {"message": format!("mock status {s}"), "type": "server_error", "code": null}}),
    };
    json_status(status, body)
}

/// Always SSE, `stream:false` too, as the real endpoint.
pub fn codex(mock: &MockOAuth, rec: Recorded) -> Response {
    if let Err(r) = authorize(mock, &[Prov::Codex], &rec) {
        return *r;
    }
    if let ApiScript::Status(s) = mock.script(Prov::Codex) {
        return codex_error(s);
    }
    let body = body_json(&rec);
    if body.get("instructions").is_none() || body.get("store") != Some(&json!(false)) {
        return json_status(400, json!({"detail": "Instructions are required and store must be false"}));
    }
    let tool = body.pointer("/tools/0/name").and_then(Value::as_str).map(str::to_string);
    let ev = |v: Value| format!("data: {v}\n\n");
    let model = body.get("model").cloned().unwrap_or(Value::Null);
    let mut out = vec![ev(json!({"type": "response.created",
        "response": {"id": "resp_1", "object": "response", "status": "in_progress", "model": model}}))];
    match tool {
        Some(name) => {
            let item =
                json!({"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": name, "arguments": ""});
            out.push(ev(json!({"type": "response.output_item.added", "output_index": 0, "item": item})));
            out.push(ev(json!({"type": "response.function_call_arguments.delta", "output_index": 0,
                "item_id": "fc_1", "delta": "{\"city\":\"Paris\"}"})));
            let done = json!({"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": name,
                "arguments": "{\"city\":\"Paris\"}", "status": "completed"});
            out.push(ev(json!({"type": "response.output_item.done", "output_index": 0, "item": done})));
        }
        None => {
            let item =
                json!({"type": "message", "id": "msg_1", "role": "assistant", "status": "in_progress", "content": []});
            out.push(ev(json!({"type": "response.output_item.added", "output_index": 0, "item": item})));
            for d in ["Hello from ", "codex"] {
                out.push(ev(json!({"type": "response.output_text.delta", "output_index": 0, "content_index": 0,
                    "item_id": "msg_1", "delta": d})));
            }
            let done = json!({"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": "Hello from codex", "annotations": []}]});
            out.push(ev(json!({"type": "response.output_item.done", "output_index": 0, "item": done})));
        }
    }
    out.push(ev(json!({"type": "response.completed", "response": {"id": "resp_1", "object": "response",
        "status": "completed", "model": model,
        "usage": {"input_tokens": 5, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 2,
            "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 7}}})));
    sse(out)
}

pub fn codex_usage(mock: &MockOAuth, rec: Recorded) -> Response {
    if let Err(r) = authorize(mock, &[Prov::Codex], &rec) {
        return *r;
    }
    json_status(
        200,
        json!({"plan_type": "plus", "rate_limit": {"primary_window": {"used_percent": 12.5, "reset_at": 1767225600},
        "secondary_window": {"used_percent": 40, "reset_at": 1767600000}}}),
    )
}

// ---- OpenAI Chat (Qwen, iFlow) --------------------------------------------------------------

fn openai_error(status: u16) -> Response {
    let (kind, code) = match status {
        400 => ("invalid_request_error", "invalid_parameter_value"),
        401 => ("invalid_request_error", "invalid_api_key"),
        403 => ("access_denied", "access_denied"),
        429 => ("rate_limit_error", "rate_limit_exceeded"),
        _ => ("server_error", "internal_error"),
    };
    json_status(status, json!({"error": {"message": format!("mock status {status}"), "type": kind, "code": code}}))
}

fn chat_answer(body: &Value, tool: Option<&str>, who: &str) -> Response {
    let model = body.get("model").cloned().unwrap_or(json!("m"));
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let call = tool.map(|t| {
        json!([{"index": 0, "id": "call_1", "type": "function",
            "function": {"name": t, "arguments": "{\"city\":\"Paris\"}"}}])
    });
    let finish = if call.is_some() { "tool_calls" } else { "stop" };
    let usage = json!({"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5});
    if !stream {
        let content = if call.is_some() { Value::Null } else { json!(format!("Hello from {who}")) };
        let mut msg = json!({"role": "assistant", "content": content});
        if let Some(c) = &call {
            msg["tool_calls"] = c.clone();
        }
        return json_status(
            200,
            json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": msg, "finish_reason": finish}], "usage": usage}),
        );
    }
    let chunk = |delta: Value, fin: Value, usage: Option<&Value>| {
        let mut c = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": fin}]});
        if let Some(u) = usage {
            c["usage"] = u.clone();
        }
        format!("data: {c}\n\n")
    };
    let mut out = vec![chunk(json!({"role": "assistant"}), Value::Null, None)];
    match call {
        Some(c) => out.push(chunk(json!({"tool_calls": c}), Value::Null, None)),
        None => {
            out.push(chunk(json!({"content": "Hello from "}), Value::Null, None));
            out.push(chunk(json!({"content": who}), Value::Null, None));
        }
    }
    out.push(chunk(json!({}), json!(finish), Some(&usage)));
    out.push("data: [DONE]\n\n".to_string());
    sse(out)
}

/// Needs the DashScope headers of §6 and the `ext` tool first (400 otherwise).
pub fn qwen(mock: &MockOAuth, rec: Recorded) -> Response {
    if let Err(r) = authorize(mock, &[Prov::Qwen], &rec) {
        return *r;
    }
    let missing: Vec<&str> = [
        ("x-dashscope-authtype", header(&rec, "x-dashscope-authtype") == "qwen-oauth"),
        ("x-dashscope-cachecontrol", header(&rec, "x-dashscope-cachecontrol") == "enable"),
        ("x-dashscope-useragent", header(&rec, "x-dashscope-useragent").starts_with("QwenCode/")),
    ]
    .into_iter()
    .filter_map(|(n, ok)| (!ok).then_some(n))
    .collect();
    if !missing.is_empty() {
        let message = format!("missing or wrong DashScope headers: {}", missing.join(", "));
        return json_status(400, json!({"error": {"message": message, "type": "invalid_request_error"}}));
    }
    if let ApiScript::Status(s) = mock.script(Prov::Qwen) {
        return openai_error(s);
    }
    let body = body_json(&rec);
    if body.pointer("/tools/0/function/name").and_then(Value::as_str) != Some("ext") {
        return json_status(
            400,
            json!({"error": {"message": "the ext tool must come first", "type": "invalid_request_error"}}),
        );
    }
    let tool = body.pointer("/tools/1/function/name").and_then(Value::as_str);
    chat_answer(&body, tool, "qwen")
}

/// hex(HMAC-SHA256(key = api key, "<UA>:<session id>:<timestamp>")), the original project's.
pub fn signature(key: &str, ua: &str, session: &str, ts: &str) -> String {
    use hmac::{Hmac, Mac};
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()) else { return String::new() };
    mac.update(format!("{ua}:{session}:{ts}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// `Some(refusal)` unless the §7 signature headers are present (400 otherwise) and right (401).
fn iflow_signature_refusal(rec: &Recorded) -> Option<Response> {
    let key = super::bearer(rec);
    let (session, ts, sig) =
        (header(rec, "session-id"), header(rec, "x-iflow-timestamp"), header(rec, "x-iflow-signature"));
    let missing: Vec<&str> = [("session-id", session), ("x-iflow-timestamp", ts), ("x-iflow-signature", sig)]
        .into_iter()
        .filter_map(|(n, v)| v.is_empty().then_some(n))
        .collect();
    if !missing.is_empty() {
        let message = format!("missing signature headers: {}", missing.join(", "));
        return Some(json_status(400, json!({"error": {"message": message, "type": "invalid_request_error"}})));
    }
    if ts.parse::<u64>().is_err() {
        let message = format!("x-iflow-timestamp must be epoch ms, got {ts:?}");
        return Some(json_status(400, json!({"error": {"message": message, "type": "invalid_request_error"}})));
    }
    let expected = signature(&key, header(rec, "user-agent"), session, ts);
    if !sig.eq_ignore_ascii_case(&expected) {
        let message = format!(
            "x-iflow-signature mismatch: want hex HMAC-SHA256(apiKey, \"<User-Agent>:<session-id>:<timestamp>\") = {expected}"
        );
        return Some(json_status(401, json!({"error": {"message": message, "type": "invalid_request_error"}})));
    }
    None
}

pub fn iflow(mock: &MockOAuth, rec: Recorded) -> Response {
    if let Err(r) = authorize(mock, &[Prov::IFlow], &rec) {
        return *r;
    }
    if let Some(r) = iflow_signature_refusal(&rec) {
        return r;
    }
    if let ApiScript::Status(s) = mock.script(Prov::IFlow) {
        return openai_error(s);
    }
    let body = body_json(&rec);
    let tool = body.pointer("/tools/0/function/name").and_then(Value::as_str).filter(|t| *t != "noop");
    chat_answer(&body, tool, "iflow")
}

pub fn iflow_models(mock: &MockOAuth, rec: Recorded) -> Response {
    if let Err(r) = authorize(mock, &[Prov::IFlow], &rec) {
        return *r;
    }
    json_status(200, json!({"object": "list", "data": [{"id": "glm-4.6", "object": "model"}]}))
}

/// Whether `Authorization: Basic base64(client_id:client_secret)` matches the form's fields.
pub fn iflow_basic_ok(headers: &HeaderMap, form: &std::collections::HashMap<String, String>) -> bool {
    use base64::Engine;
    let id = form.get("client_id").cloned().unwrap_or_default();
    let secret = form.get("client_secret").cloned().unwrap_or_default();
    let want = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}")));
    !id.is_empty() && headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(want.as_str())
}

/// A new `apiKey` per call for a live access token; earlier keys stay valid.
pub fn iflow_user_info(mock: &MockOAuth, rec: Recorded, query: &str) -> Response {
    let at = super::url_form(query).get("accessToken").cloned().unwrap_or_default();
    let now = now_ms();
    let live = mock.with(Prov::IFlow, |s| {
        super::push_bounded(&mut s.requests, rec);
        s.access.get(&at).is_some_and(|e| *e > now)
    });
    if !live {
        return json_status(401, json!({"success": false, "message": "invalid or expired access token"}));
    }
    let key = format!("sk-mock-{}", mock.next_id());
    mock.inner.lock().api_keys.insert(key.clone(), i64::MAX);
    json_status(200, json!({"success": true, "data": {"apiKey": key, "phone": "13800000000"}}))
}

// ---- Kiro -----------------------------------------------------------------------------------

/// One AWS event-stream message with string headers (type 7), in the given order, with the
/// prelude CRC and the message CRC (CRC-32/IEEE).
pub fn kiro_frame(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
    let mut h = Vec::new();
    for (name, value) in headers {
        h.push(name.len() as u8);
        h.extend_from_slice(name.as_bytes());
        h.push(7);
        h.extend_from_slice(&(value.len() as u16).to_be_bytes());
        h.extend_from_slice(value.as_bytes());
    }
    let total = 12 + h.len() + payload.len() + 4;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&(total as u32).to_be_bytes());
    out.extend_from_slice(&(h.len() as u32).to_be_bytes());
    let prelude = crc32fast::hash(&out);
    out.extend_from_slice(&prelude.to_be_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// An event frame: `:event-type`, `:content-type`, `:message-type` in that order (§11).
fn kiro_event(kind: &str, payload: Value) -> Vec<u8> {
    kiro_frame(
        &[(":event-type", kind), (":content-type", "application/json"), (":message-type", "event")],
        payload.to_string().as_bytes(),
    )
}

fn kiro_error(status: u16) -> Response {
    let body = match status {
        400 => json!({"message": "Improperly formed request.", "reason": null}),
        402 => json!({"message": "Limit reached", "reason": "MONTHLY_REQUEST_COUNT"}),
        403 => json!({"message": "The bearer token included in the request is invalid.", "reason": null}),
        429 => json!({"message": "Too many requests, please wait before trying again.", "reason": null}),
        500 => json!({"message": "Encountered an unexpected error when processing the request, please try again.",
            "reason": null}),
        s => json!({"message": format!("mock status {s}"), "reason": null}),
    };
    json_status(status, body)
}

/// `Some(400)` unless the request carries the §2.3 headers and a §2.4 `conversationState`.
fn kiro_request_refusal(rec: &Recorded, body: &Value) -> Option<Response> {
    let checks = [
        ("amz-sdk-request", header(rec, "amz-sdk-request") == "attempt=1; max=1"),
        ("amz-sdk-invocation-id", !header(rec, "amz-sdk-invocation-id").is_empty()),
        ("x-amzn-kiro-agent-mode", header(rec, "x-amzn-kiro-agent-mode") == "vibe"),
        ("x-amz-user-agent", header(rec, "x-amz-user-agent").starts_with("aws-sdk-js/1.0.0 KiroIDE-")),
        (
            "conversationState.chatTriggerType",
            body.pointer("/conversationState/chatTriggerType") == Some(&json!("MANUAL")),
        ),
        (
            "conversationState.conversationId",
            body.pointer("/conversationState/conversationId").and_then(Value::as_str).is_some_and(|s| !s.is_empty()),
        ),
        (
            "conversationState.currentMessage.userInputMessage.content",
            body.pointer("/conversationState/currentMessage/userInputMessage/content").is_some_and(Value::is_string),
        ),
        (
            "conversationState.currentMessage.userInputMessage.modelId",
            body.pointer("/conversationState/currentMessage/userInputMessage/modelId").is_some_and(Value::is_string),
        ),
    ];
    let bad: Vec<&str> = checks.into_iter().filter_map(|(n, ok)| (!ok).then_some(n)).collect();
    (!bad.is_empty()).then(|| {
        json_status(
            400,
            json!({"message": format!("Improperly formed request. (mock: missing or wrong {})", bad.join(", ")), "reason": null}),
        )
    })
}

/// A small xorshift generator seeded from the clock and the request counter.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The byte pieces written, by chunking.
fn kiro_pieces(frames: Vec<Vec<u8>>, chunking: Option<Chunking>, seed: u64) -> Vec<Bytes> {
    match chunking {
        Some(Chunking::Aligned) => frames.into_iter().map(Bytes::from).collect(),
        Some(Chunking::Arbitrary { max }) => {
            let all = Bytes::from(frames.concat());
            let mut rng = Rng(seed | 1);
            let mut out = Vec::new();
            let mut at = 0;
            while at < all.len() {
                let n = 1 + (rng.next() % max.max(1) as u64) as usize;
                let end = (at + n).min(all.len());
                out.push(all.slice(at..end));
                at = end;
            }
            out
        }
        None => frames.concat().chunks(37).map(Bytes::copy_from_slice).collect(),
    }
}

pub fn kiro(mock: &MockOAuth, rec: Recorded) -> Response {
    if let Err(r) = authorize(mock, &[Prov::KiroSocial, Prov::KiroOidc], &rec) {
        return *r;
    }
    let body = body_json(&rec);
    if let Some(r) = kiro_request_refusal(&rec, &body) {
        return r;
    }
    let script = mock.kiro_script();
    if let ApiScript::Status(s) = script {
        return kiro_error(s);
    }
    let tool = body
        .pointer(
            "/conversationState/currentMessage/userInputMessage/userInputMessageContext/tools/0/toolSpecification/name",
        )
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut frames = vec![kiro_event("assistantResponseEvent", json!({"content": "Hel"}))];
    match (&tool, script) {
        (_, ApiScript::KiroException) => {
            frames.push(kiro_event("assistantResponseEvent", json!({"content": "lo from kiro"})));
            frames.push(kiro_frame(
                &[
                    (":exception-type", "ThrottlingException"),
                    (":content-type", "application/json"),
                    (":message-type", "exception"),
                ],
                br#"{"message":"Too many requests"}"#,
            ));
        }
        (Some(name), _) => {
            // The §11 canonical sequence.
            let id = "tooluse_abc123";
            frames.push(kiro_event("assistantResponseEvent", json!({"content": "lo"})));
            frames.push(kiro_event("toolUseEvent", json!({"name": name, "toolUseId": id, "input": "{\"city\":"})));
            frames.push(kiro_event("toolUseEvent", json!({"name": name, "toolUseId": id, "input": "\"Paris\"}"})));
            frames.push(kiro_event("toolUseEvent", json!({"name": name, "toolUseId": id, "stop": true})));
        }
        (None, _) => frames.push(kiro_event("assistantResponseEvent", json!({"content": "lo from kiro"}))),
    }
    if script != ApiScript::KiroException {
        frames.push(kiro_event("meteringEvent", json!({"unit": "credit", "unitPlural": "credits", "usage": 0.0123})));
        frames.push(kiro_event("contextUsageEvent", json!({"contextUsagePercentage": 1.25})));
    }
    let chunking = match script {
        ApiScript::KiroChunking(c) => Some(c),
        _ => None,
    };
    let pieces = kiro_pieces(frames, chunking, now_ms() as u64 ^ mock.next_id().rotate_left(32));
    // Each write after a short pause, so the client sees separate reads.
    let stream = futures::StreamExt::then(futures::stream::iter(pieces), |c| async move {
        tokio::time::sleep(Duration::from_millis(2)).await;
        Ok::<_, Infallible>(c)
    });
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert("content-type", HeaderValue::from_static("application/vnd.amazon.eventstream"));
    r.headers_mut().insert("x-amzn-requestid", HeaderValue::from_static("00000000-0000-4000-8000-00000000abcd"));
    r
}

pub fn kiro_usage(mock: &MockOAuth, rec: Recorded) -> Response {
    if let Err(r) = authorize(mock, &[Prov::KiroSocial, Prov::KiroOidc], &rec) {
        return *r;
    }
    json_status(
        200,
        json!({"daysUntilReset": 12, "nextDateReset": 1769904000, "subscriptionInfo": {"subscriptionTitle": "KIRO FREE"},
        "userInfo": {"email": "m@example.com"},
        "usageBreakdownList": [{"resourceType": "AGENTIC_REQUEST", "currentUsage": 10, "usageLimit": 50, "bonuses": []}]}),
    )
}
