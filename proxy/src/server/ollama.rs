//! Ollama-compatible endpoints under `/ollama/api/*` (so they cannot collide with the admin
//! API's `/api/*`): `version`, `tags`, `show`, `chat` and `generate`, streaming NDJSON by
//! default as Ollama does. Each request is turned into an OpenAI Chat request and served by the
//! same path as `/v1/chat/completions` (any provider, conversions, failover, client keys); the
//! answer is turned back. Errors come as Ollama's `{"error": "…"}`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::BodyExt;
use serde_json::{json, Map, Value};

use super::AppState;
use crate::convert::sse::SseParser;

/// The Ollama version poolgate answers as (clients check for a recent enough server).
const VERSION: &str = "0.6.0";
/// Largest Ollama request body read (the chat path applies its own limit after conversion).
const MAX_BODY: usize = 32 << 20;

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({"error": message.into()}))).into_response()
}

fn now_iso() -> String {
    poolgate_store::time::iso_now()
}

/// `GET /ollama/api/version`.
pub async fn version() -> Response {
    axum::Json(json!({"version": VERSION})).into_response()
}

/// The client's auth headers and `?key=`, for the internal request.
fn internal(method: &str, path: &str, parts: &axum::http::request::Parts, body: Body) -> Request {
    let uri = match parts.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let mut req = Request::builder().method(method).uri(uri).body(body).unwrap_or_default();
    for name in ["authorization", "x-api-key", "x-goog-api-key", "model-provider", "x-request-id"] {
        if let Some(v) = parts.headers.get(name) {
            req.headers_mut().insert(name, v.clone());
        }
    }
    req.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    req
}

/// The error message of an OpenAI-shaped error answer.
async fn openai_error(resp: Response) -> Response {
    let status = resp.status();
    let bytes = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let message = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v.pointer("/error/message").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| format!("request failed with HTTP {}", status.as_u16()));
    error(status, message)
}

/// `GET /ollama/api/tags`: the models `/v1/models` lists, in Ollama's shape.
pub async fn tags(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let resp = super::models::v1_list(State(state), internal("GET", "/v1/models", &parts, Body::empty())).await;
    if !resp.status().is_success() {
        return openai_error(resp).await;
    }
    let bytes = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let list: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let models: Vec<Value> = list["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["id"].as_str())
        .map(|id| {
            json!({"name": id, "model": id, "modified_at": now_iso(), "size": 0, "digest": "",
                   "details": {"format": "api", "family": "poolgate", "families": ["poolgate"],
                               "parameter_size": "", "quantization_level": ""}})
        })
        .collect();
    axum::Json(json!({"models": models})).into_response()
}

/// `POST /ollama/api/show {model}`: what Ollama clients read about a model.
pub async fn show(body: Bytes) -> Response {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(model) = v.get("model").or_else(|| v.get("name")).and_then(Value::as_str) else {
        return error(StatusCode::BAD_REQUEST, "model is required");
    };
    axum::Json(json!({
        "modelfile": "", "parameters": "", "template": "{{ .Prompt }}",
        "details": {"format": "api", "family": "poolgate", "families": ["poolgate"], "parameter_size": "", "quantization_level": ""},
        "model_info": {"general.architecture": "poolgate", "general.basename": model},
        "capabilities": ["completion", "tools"],
    }))
    .into_response()
}

/// Which Ollama endpoint a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Chat,
    Generate,
}

/// OpenAI content for a text and Ollama's base64 `images`.
fn content(text: &str, images: Option<&Value>) -> Value {
    let images: Vec<&str> = images.and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    if images.is_empty() {
        return Value::String(text.to_string());
    }
    let mut parts = vec![json!({"type": "text", "text": text})];
    parts.extend(
        images
            .iter()
            .map(|b64| json!({"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{b64}")}})),
    );
    Value::Array(parts)
}

/// The OpenAI Chat request for an Ollama one, and whether it streams (Ollama's default: yes).
pub fn to_chat(kind: Kind, v: &Value) -> Result<(Value, bool), String> {
    let model = v.get("model").and_then(Value::as_str).filter(|m| !m.is_empty()).ok_or("model is required")?;
    let stream = v.get("stream").and_then(Value::as_bool).unwrap_or(true);
    let mut messages = Vec::new();
    match kind {
        Kind::Chat => {
            let list = v.get("messages").and_then(Value::as_array).ok_or("messages must be a list")?;
            for m in list {
                let role = m.get("role").and_then(Value::as_str).ok_or("each message needs a role")?;
                let text = m.get("content").and_then(Value::as_str).unwrap_or("");
                let mut out = json!({"role": role, "content": content(text, m.get("images"))});
                if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
                    let calls: Vec<Value> = calls
                        .iter()
                        .enumerate()
                        .map(|(i, c)| {
                            let f = &c["function"];
                            let args = match &f["arguments"] {
                                Value::String(s) => s.clone(),
                                other => other.to_string(),
                            };
                            json!({"id": format!("call_{i}"), "type": "function",
                                   "function": {"name": f["name"], "arguments": args}})
                        })
                        .collect();
                    out["tool_calls"] = Value::Array(calls);
                }
                messages.push(out);
            }
        }
        Kind::Generate => {
            if let Some(system) = v.get("system").and_then(Value::as_str).filter(|s| !s.is_empty()) {
                messages.push(json!({"role": "system", "content": system}));
            }
            let prompt = v.get("prompt").and_then(Value::as_str).unwrap_or("");
            messages.push(json!({"role": "user", "content": content(prompt, v.get("images"))}));
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert("messages".into(), Value::Array(messages));
    body.insert("stream".into(), json!(stream));
    if stream {
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if let Some(tools) = v.get("tools").filter(|t| t.is_array()) {
        body.insert("tools".into(), tools.clone());
    }
    let opts = v.get("options").cloned().unwrap_or(Value::Null);
    for (from, to) in [
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("num_predict", "max_tokens"),
        ("seed", "seed"),
        ("stop", "stop"),
    ] {
        if let Some(x) = opts.get(from).filter(|x| !x.is_null()) {
            body.insert(to.into(), x.clone());
        }
    }
    if v.get("format").and_then(Value::as_str) == Some("json") {
        body.insert("response_format".into(), json!({"type": "json_object"}));
    }
    Ok((Value::Object(body), stream))
}

/// One Ollama answer object (a stream line, or the whole unary answer).
fn line(kind: Kind, model: &str, text: &str, tool_calls: Option<Value>, done: Option<(&str, &Value)>) -> Value {
    let mut v = json!({"model": model, "created_at": now_iso(), "done": done.is_some()});
    match kind {
        Kind::Chat => {
            let mut message = json!({"role": "assistant", "content": text});
            if let Some(calls) = tool_calls {
                message["tool_calls"] = calls;
            }
            v["message"] = message;
        }
        Kind::Generate => v["response"] = json!(text),
    }
    if let Some((reason, usage)) = done {
        v["done_reason"] = json!(reason);
        v["prompt_eval_count"] = usage.get("prompt_tokens").cloned().unwrap_or(json!(0));
        v["eval_count"] = usage.get("completion_tokens").cloned().unwrap_or(json!(0));
        v["total_duration"] = json!(0);
    }
    v
}

/// OpenAI tool calls in Ollama's shape (arguments as an object).
fn ollama_tool_calls(calls: Option<&Value>) -> Option<Value> {
    let calls = calls?.as_array().filter(|c| !c.is_empty())?;
    Some(Value::Array(
        calls
            .iter()
            .map(|c| {
                let args =
                    c["function"]["arguments"].as_str().and_then(|s| serde_json::from_str(s).ok()).unwrap_or(json!({}));
                json!({"function": {"name": c["function"]["name"], "arguments": args}})
            })
            .collect(),
    ))
}

fn ollama_reason(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "length",
        _ => "stop",
    }
}

/// `POST /ollama/api/chat`.
pub async fn chat(State(state): State<Arc<AppState>>, req: Request) -> Response {
    serve(state, Kind::Chat, req).await
}

/// `POST /ollama/api/generate`.
pub async fn generate(State(state): State<Arc<AppState>>, req: Request) -> Response {
    serve(state, Kind::Generate, req).await
}

async fn serve(state: Arc<AppState>, kind: Kind, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = http_body_util::Limited::new(body, MAX_BODY).collect().await.map(|b| b.to_bytes()) else {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large or unreadable");
    };
    let v: Value = match serde_json::from_slice(&bytes) {
        Ok(v @ Value::Object(_)) => v,
        _ => return error(StatusCode::BAD_REQUEST, "the body must be a JSON object"),
    };
    let (chat_body, stream) = match to_chat(kind, &v) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let model = chat_body["model"].as_str().unwrap_or_default().to_string();
    let inner = internal("POST", "/v1/chat/completions", &parts, Body::from(chat_body.to_string()));
    let resp = super::routes::chat(State(state), inner).await;
    if !resp.status().is_success() {
        return openai_error(resp).await;
    }
    if stream {
        ndjson(kind, model, resp)
    } else {
        unary(kind, &model, resp).await
    }
}

async fn unary(kind: Kind, model: &str, resp: Response) -> Response {
    let bytes = resp.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let Ok(v) = serde_json::from_slice::<Value>(&bytes) else {
        return error(StatusCode::BAD_GATEWAY, "the answer could not be read");
    };
    let choice = &v["choices"][0];
    let text = choice["message"]["content"].as_str().unwrap_or_default();
    let calls = ollama_tool_calls(choice["message"].get("tool_calls"));
    let reason = ollama_reason(choice["finish_reason"].as_str());
    axum::Json(line(kind, model, text, calls, Some((reason, &v["usage"])))).into_response()
}

/// Streams OpenAI Chat chunks as Ollama NDJSON lines, ending with the `done` line.
fn ndjson(kind: Kind, model: String, resp: Response) -> Response {
    struct St {
        body: axum::body::BodyDataStream,
        parser: SseParser,
        reason: Option<String>,
        usage: Value,
        calls: Option<Value>,
        ended: bool,
        kind: Kind,
        model: String,
    }
    let st = St {
        body: resp.into_body().into_data_stream(),
        parser: SseParser::new(),
        reason: None,
        usage: json!({}),
        calls: None,
        ended: false,
        kind,
        model,
    };
    let lines = futures::stream::unfold(st, |mut st| async move {
        if st.ended {
            return None;
        }
        let mut out = String::new();
        match st.body.next().await {
            Some(Ok(chunk)) => {
                for ev in st.parser.push(&chunk) {
                    let Ok(v) = serde_json::from_str::<Value>(&ev.data) else { continue };
                    if let Some(msg) = v.pointer("/error/message").and_then(Value::as_str) {
                        out.push_str(&format!("{}\n", json!({"error": msg})));
                        st.ended = true;
                        break;
                    }
                    if v.get("usage").is_some_and(Value::is_object) {
                        st.usage = v["usage"].clone();
                    }
                    let choice = &v["choices"][0];
                    if let Some(r) = choice["finish_reason"].as_str() {
                        st.reason = Some(r.to_string());
                    }
                    if let Some(c) = ollama_tool_calls(choice["delta"].get("tool_calls")) {
                        st.calls = Some(c);
                    }
                    if let Some(text) = choice["delta"]["content"].as_str().filter(|t| !t.is_empty()) {
                        out.push_str(&format!("{}\n", line(st.kind, &st.model, text, None, None)));
                    }
                }
            }
            Some(Err(_)) => {
                out.push_str(&format!("{}\n", json!({"error": "the upstream stream broke off"})));
                st.ended = true;
            }
            None => {
                let reason = ollama_reason(st.reason.as_deref());
                let done = line(st.kind, &st.model, "", st.calls.take(), Some((reason, &st.usage)));
                out.push_str(&format!("{done}\n"));
                st.ended = true;
            }
        }
        Some((Ok::<_, std::convert::Infallible>(Bytes::from(out)), st))
    });
    let mut resp = Response::new(Body::from_stream(lines));
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = Value> {
        let keys = [
            "model",
            "messages",
            "role",
            "content",
            "prompt",
            "images",
            "options",
            "stream",
            "tools",
            "tool_calls",
            "function",
            "arguments",
            "x",
        ];
        crate::test_json::json_value(prop::sample::select(keys.map(String::from).to_vec()), Vec::new())
    }

    proptest! {
        /// Any body converts or is refused with a message; a conversion always has a model and messages.
        #[test]
        fn any_ollama_body_converts_or_is_refused(v in json_value(), generate in any::<bool>()) {
            let kind = if generate { Kind::Generate } else { Kind::Chat };
            if let Ok((body, _)) = to_chat(kind, &v) {
                prop_assert!(body["model"].as_str().is_some_and(|m| !m.is_empty()));
                prop_assert!(body["messages"].is_array());
            }
        }
    }

    #[test]
    fn chat_and_generate_map_to_openai_chat() {
        let (body, stream) = to_chat(
            Kind::Chat,
            &json!({"model": "m", "messages": [{"role": "user", "content": "hi", "images": ["AAAA"]}],
                    "options": {"num_predict": 5, "temperature": 0.1}, "format": "json"}),
        )
        .expect("ok");
        assert!(stream, "Ollama streams unless told not to");
        assert_eq!(body["messages"][0]["content"][1]["image_url"]["url"], "data:image/png;base64,AAAA");
        assert_eq!(
            (body["max_tokens"].clone(), body["response_format"]["type"].clone()),
            (json!(5), json!("json_object"))
        );
        let (body, _) =
            to_chat(Kind::Generate, &json!({"model": "m", "prompt": "p", "system": "s", "stream": false})).expect("ok");
        assert_eq!(body["messages"], json!([{"role": "system", "content": "s"}, {"role": "user", "content": "p"}]));
        assert!(to_chat(Kind::Chat, &json!({"model": "m"})).is_err());
    }
}
