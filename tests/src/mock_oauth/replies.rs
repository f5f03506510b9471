//! The upstream APIs' answers: Code Assist, Codex, Qwen, iFlow, Kiro.

use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{json, Value};

use super::{authorize, json_status, sse, ApiScript, MockOAuth, Prov, Recorded};

fn body_json(rec: &Recorded) -> Value {
    serde_json::from_slice(&rec.body).unwrap_or(Value::Null)
}

/// An unsigned JWT carrying the claims Codex reads.
pub fn fake_jwt() -> String {
    use base64::Engine;
    let enc = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let claims = json!({"email": "m@example.com", "https://api.openai.com/auth": {"chatgpt_account_id": "acct-mock"}});
    format!("{}.{}.sig", enc(json!({"alg": "none"})), enc(claims))
}

// ---- Code Assist ----------------------------------------------------------------------------

pub async fn code_assist(mock: &MockOAuth, rec: Recorded, method: &str) -> Response {
    if let Some(r) = authorize(mock, &[Prov::Google], &rec) {
        return r;
    }
    let body = body_json(&rec);
    let project = mock.inner.lock().project.clone();
    match method {
        "loadCodeAssist" => match project {
            Some(p) => json_status(
                200,
                json!({"cloudaicompanionProject": p, "allowedTiers": [{"id": "free-tier", "isDefault": true}]}),
            ),
            None => json_status(200, json!({"allowedTiers": [{"id": "free-tier", "isDefault": true}]})),
        },
        "onboardUser" => {
            let polls = {
                let mut g = mock.inner.lock();
                g.onboard_polls += 1;
                g.onboard_polls
            };
            if polls % 2 == 1 {
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
        "generateContent" | "streamGenerateContent" => {
            if body.get("project").and_then(Value::as_str).is_none_or(str::is_empty) || body.get("request").is_none() {
                return json_status(
                    400,
                    json!({"error": {"code": 400, "message": "envelope needs project and request", "status": "INVALID_ARGUMENT"}}),
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
                json!({"response": {"candidates": [cand], "usageMetadata": usage, "modelVersion": "mock"}, "traceId": "t-1"})
            };
            let parts = |text: &str| match &tool {
                Some(t) => json!([{"functionCall": {"name": t, "args": {"city": "Paris"}}}]),
                None => json!([{"text": text}]),
            };
            if method == "generateContent" {
                return json_status(200, wrap(parts("Hello from code-assist"), true));
            }
            let mut events = Vec::new();
            if tool.is_none() {
                events.push(format!("data: {}\n\n", wrap(json!([{"text": "Hello from "}]), false)));
            }
            events.push(format!("data: {}\n\n", wrap(parts("code-assist"), true)));
            sse(events)
        }
        _ => json_status(404, json!({"error": {"code": 404, "message": "unknown method"}})),
    }
}

// ---- Codex ----------------------------------------------------------------------------------

pub fn codex(mock: &MockOAuth, rec: Recorded) -> Response {
    if let Some(r) = authorize(mock, &[Prov::Codex], &rec) {
        return r;
    }
    let body = body_json(&rec);
    if body.get("instructions").is_none() || body.get("store") != Some(&json!(false)) {
        return json_status(400, json!({"detail": "Instructions are required and store must be false"}));
    }
    let tool = body.pointer("/tools/0/name").and_then(Value::as_str).map(str::to_string);
    let ev = |v: Value| format!("data: {v}\n\n");
    let mut out = vec![ev(json!({"type": "response.created", "response": {"id": "resp_1", "status": "in_progress"}}))];
    match tool {
        Some(name) => {
            let item =
                json!({"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": name, "arguments": ""});
            out.push(ev(json!({"type": "response.output_item.added", "output_index": 0, "item": item})));
            out.push(ev(json!({"type": "response.function_call_arguments.delta", "output_index": 0, "item_id": "fc_1", "delta": "{\"city\":\"Paris\"}"})));
            let done = json!({"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": name, "arguments": "{\"city\":\"Paris\"}", "status": "completed"});
            out.push(ev(json!({"type": "response.output_item.done", "output_index": 0, "item": done})));
        }
        None => {
            let item =
                json!({"type": "message", "id": "msg_1", "role": "assistant", "status": "in_progress", "content": []});
            out.push(ev(json!({"type": "response.output_item.added", "output_index": 0, "item": item})));
            for d in ["Hello from ", "codex"] {
                out.push(ev(json!({"type": "response.output_text.delta", "output_index": 0, "content_index": 0, "item_id": "msg_1", "delta": d})));
            }
            let done = json!({"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": "Hello from codex", "annotations": []}]});
            out.push(ev(json!({"type": "response.output_item.done", "output_index": 0, "item": done})));
        }
    }
    out.push(ev(json!({"type": "response.completed", "response": {"id": "resp_1", "status": "completed", "model": body.get("model"),
        "usage": {"input_tokens": 5, "output_tokens": 2, "total_tokens": 7}}})));
    sse(out)
}

pub fn codex_usage(mock: &MockOAuth, rec: Recorded) -> Response {
    if let Some(r) = authorize(mock, &[Prov::Codex], &rec) {
        return r;
    }
    json_status(
        200,
        json!({"plan_type": "plus", "rate_limit": {"primary_window": {"used_percent": 12.5, "reset_at": 1767225600},
        "secondary_window": {"used_percent": 40, "reset_at": 1767600000}}}),
    )
}

// ---- OpenAI Chat (Qwen, iFlow) --------------------------------------------------------------

fn chat_answer(body: &Value, tool: Option<&str>, who: &str) -> Response {
    let model = body.get("model").cloned().unwrap_or(json!("m"));
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let call = tool.map(|t| json!([{"index": 0, "id": "call_1", "type": "function", "function": {"name": t, "arguments": "{\"city\":\"Paris\"}"}}]));
    let finish = if call.is_some() { "tool_calls" } else { "stop" };
    let usage = json!({"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5});
    if !stream {
        let mut msg = json!({"role": "assistant", "content": if call.is_some() { Value::Null } else { json!(format!("Hello from {who}")) }});
        if let Some(c) = &call {
            msg["tool_calls"] = c.clone();
        }
        return json_status(
            200,
            json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model,
            "choices": [{"index": 0, "message": msg, "finish_reason": finish}], "usage": usage}),
        );
    }
    let chunk = |delta: Value, fin: Value| {
        format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": fin}]})
        )
    };
    let mut out = vec![chunk(json!({"role": "assistant"}), Value::Null)];
    match call {
        Some(c) => out.push(chunk(json!({"tool_calls": c}), Value::Null)),
        None => {
            out.push(chunk(json!({"content": "Hello from "}), Value::Null));
            out.push(chunk(json!({"content": who}), Value::Null));
        }
    }
    out.push(chunk(json!({}), json!(finish)));
    out.push("data: [DONE]\n\n".to_string());
    sse(out)
}

pub fn qwen(mock: &MockOAuth, rec: Recorded) -> Response {
    if let Some(r) = authorize(mock, &[Prov::Qwen], &rec) {
        return r;
    }
    if rec.headers.get("x-dashscope-authtype").map(String::as_str) != Some("qwen-oauth") {
        return json_status(400, json!({"error": {"message": "missing DashScope headers"}}));
    }
    let body = body_json(&rec);
    if body.pointer("/tools/0/function/name").and_then(Value::as_str) != Some("ext") {
        return json_status(400, json!({"error": {"message": "the ext tool must come first"}}));
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

pub fn iflow(mock: &MockOAuth, rec: Recorded) -> Response {
    if let Some(r) = authorize(mock, &[Prov::IFlow], &rec) {
        return r;
    }
    let h = |n: &str| rec.headers.get(n).cloned().unwrap_or_default();
    let key = h("authorization").trim_start_matches("Bearer ").to_string();
    let expected = signature(&key, &h("user-agent"), &h("session-id"), &h("x-iflow-timestamp"));
    if h("x-iflow-signature").is_empty() || h("x-iflow-signature") != expected {
        return json_status(401, json!({"error": {"message": "bad request signature"}}));
    }
    let body = body_json(&rec);
    let tool = body.pointer("/tools/0/function/name").and_then(Value::as_str).filter(|t| *t != "noop");
    chat_answer(&body, tool, "iflow")
}

pub fn iflow_basic_ok(headers: &HeaderMap, form: &std::collections::HashMap<String, String>) -> bool {
    use base64::Engine;
    let id = form.get("client_id").cloned().unwrap_or_default();
    let secret = form.get("client_secret").cloned().unwrap_or_default();
    let want = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}")));
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(want.as_str())
}

pub fn iflow_user_info(mock: &MockOAuth, query: &str) -> Response {
    let at = super::url_form(query).get("accessToken").cloned().unwrap_or_default();
    let live = mock.with(Prov::IFlow, |s| s.access.contains_key(&at));
    if !live {
        return json_status(401, json!({"success": false, "message": "invalid access token"}));
    }
    let key = format!("sk-mock-{}", mock.next_id());
    mock.inner.lock().api_keys.insert(key.clone());
    json_status(200, json!({"success": true, "data": {"apiKey": key, "phone": "13800000000"}}))
}

// ---- Kiro -----------------------------------------------------------------------------------

/// One AWS event-stream message with string headers (prelude CRC and message CRC).
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

fn kiro_event(kind: &str, payload: Value) -> Vec<u8> {
    kiro_frame(
        &[(":event-type", kind), (":content-type", "application/json"), (":message-type", "event")],
        payload.to_string().as_bytes(),
    )
}

pub fn kiro(mock: &MockOAuth, rec: Recorded) -> Response {
    if let Some(r) = authorize(mock, &[Prov::KiroSocial, Prov::KiroOidc], &rec) {
        return r;
    }
    let body = body_json(&rec);
    if body.pointer("/conversationState/currentMessage/userInputMessage").is_none() {
        return json_status(400, json!({"message": "Improperly formed request.", "reason": null}));
    }
    match mock.with(Prov::KiroSocial, |s| s.script) {
        ApiScript::Status(402) => {
            return json_status(402, json!({"message": "Limit reached", "reason": "MONTHLY_REQUEST_COUNT"}))
        }
        ApiScript::Status(400) => {
            return json_status(400, json!({"message": "Improperly formed request.", "reason": null}))
        }
        ApiScript::Status(s) => return json_status(s, json!({"message": format!("mock status {s}")})),
        _ => {}
    }
    let tool = body
        .pointer(
            "/conversationState/currentMessage/userInputMessage/userInputMessageContext/tools/0/toolSpecification/name",
        )
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut frames = vec![
        kiro_event("assistantResponseEvent", json!({"content": "Hel"})),
        kiro_event("assistantResponseEvent", json!({"content": "lo from kiro"})),
    ];
    if mock.with(Prov::KiroSocial, |s| s.script) == ApiScript::KiroException {
        frames.push(kiro_frame(
            &[
                (":exception-type", "ThrottlingException"),
                (":content-type", "application/json"),
                (":message-type", "exception"),
            ],
            br#"{"message":"Too many requests"}"#,
        ));
    } else {
        if let Some(name) = tool {
            let id = "tooluse_abc123";
            frames.push(kiro_event("toolUseEvent", json!({"name": name, "toolUseId": id, "input": "{\"city\":"})));
            frames.push(kiro_event("toolUseEvent", json!({"name": name, "toolUseId": id, "input": "\"Paris\"}"})));
            frames.push(kiro_event("toolUseEvent", json!({"name": name, "toolUseId": id, "stop": true})));
        }
        frames.push(kiro_event("meteringEvent", json!({"unit": "credit", "unitPlural": "credits", "usage": 0.0123})));
        frames.push(kiro_event("contextUsageEvent", json!({"contextUsagePercentage": 1.25})));
    }
    // Frames split at odd offsets, so the client sees partial frames in its reads.
    let all: Vec<u8> = frames.concat();
    let chunks: Vec<Result<Bytes, std::convert::Infallible>> =
        all.chunks(37).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    let stream = futures::StreamExt::then(futures::stream::iter(chunks), |c| async move {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        c
    });
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert("content-type", axum::http::HeaderValue::from_static("application/vnd.amazon.eventstream"));
    r
}

pub fn kiro_usage(mock: &MockOAuth, rec: Recorded) -> Response {
    if let Some(r) = authorize(mock, &[Prov::KiroSocial, Prov::KiroOidc], &rec) {
        return r;
    }
    json_status(
        200,
        json!({"daysUntilReset": 12, "nextDateReset": 1769904000, "subscriptionInfo": {"subscriptionTitle": "KIRO FREE"},
        "userInfo": {"email": "m@example.com"}, "usageBreakdownList": [{"resourceType": "AGENTIC_REQUEST", "currentUsage": 10, "usageLimit": 50, "bonuses": []}]}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kiro_frame_is_the_specs_124_bytes() {
        let f = kiro_frame(
            &[
                (":event-type", "assistantResponseEvent"),
                (":content-type", "application/json"),
                (":message-type", "event"),
            ],
            br#"{"content":"Hi"}"#,
        );
        assert_eq!(f.len(), 124);
        assert_eq!(&f[8..12], &[0x3b, 0xdd, 0xcf, 0x78]);
        assert_eq!(&f[120..], &[0xb0, 0x2b, 0xab, 0xdc]);
    }

    #[test]
    fn iflow_signature_vector() {
        let s =
            signature("sk-example-key", "iFlow-Cli", "session-00000000-0000-4000-8000-000000000000", "1767225600000");
        assert_eq!(s, "1c3a1291b25c617ed413e1932dbae41da42e1fffa8478ca2776728bd0d3a7503");
    }
}
