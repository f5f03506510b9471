//! Protocol conversion between OpenAI Chat, OpenAI Responses, Anthropic Messages and Gemini.
//!
//! Every protocol has a decoder into the neutral [`ir`] and an encoder out of it, for requests,
//! unary responses and stream events. Same-protocol traffic is passed through untouched
//! (only the model is renamed and missing stream terminators added), so nothing a client sends
//! is lost when no conversion is needed.
//!
//! What crosses protocols: system prompts (`system` / `systemInstruction` / `developer` /
//! `instructions`), user and assistant turns (consecutive same-role turns merged), text and
//! images (data URLs ⇄ base64 sources ⇄ `inlineData`; remote URLs ⇄ `url` sources ⇄
//! `fileData`), tools with their JSON schemas (cleaned for Gemini), tool choice and parallel
//! tool use, tool calls and results (ids invented and paired for Gemini, which has none),
//! thinking / reasoning (effort ⇄ budget), sampling limits, stop sequences, JSON output
//! formats, finish reasons and usage including cached and reasoning tokens.
//!
//! What does not: hosted / server tools (web search, code execution…), audio and file inputs,
//! Responses `previous_response_id` (rejected with [`ConvertError::Unsupported`]), `n > 1`,
//! logprobs, Anthropic `cache_control` hints, and thinking signatures across vendors (unsigned
//! thinking is dropped when replayed to Anthropic; Gemini thought signatures are not
//! synthesised).
//!
//! Typical use by the HTTP layer:
//! ```
//! use poolgate_proxy::convert::{convert_request, convert_response, Protocol, StreamConverter};
//! use serde_json::json;
//!
//! let body = json!({"model": "claude-x", "max_tokens": 64,
//!                   "messages": [{"role": "user", "content": "hi"}]});
//! let up = convert_request(Protocol::Anthropic, Protocol::OpenAiChat, &body).unwrap();
//! assert_eq!(up.body["messages"][0]["content"], "hi");
//!
//! let reply = json!({"id": "c1", "model": "gpt", "created": 1, "choices": [{"index": 0,
//!     "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}]});
//! let out = convert_response(Protocol::OpenAiChat, Protocol::Anthropic, &reply).unwrap();
//! assert_eq!(out["content"][0]["text"], "hello");
//!
//! let mut stream = StreamConverter::new(Protocol::OpenAiChat, Protocol::Anthropic, "claude-x");
//! let frames = stream.push(b"data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"he\"}}]}\n\n");
//! assert!(!frames.is_empty());
//! let tail = stream.finish(); // content_block_stop, message_delta, message_stop
//! assert!(String::from_utf8_lossy(tail.last().unwrap()).contains("message_stop"));
//! ```

mod build;
pub mod client_error;
pub mod code_assist;
pub mod error;
mod ids;
pub mod images;
pub mod ir;
mod json;
mod media;
pub mod model;
pub mod protocol;
pub mod relay;
mod request_util;
mod schema;
pub mod sse;
pub mod stream;
mod stream_watch;
pub mod system_prompt;
pub use stream_watch::answer_tokens;
pub mod tokens;
pub mod validate;

mod anthropic;
mod gemini;
mod openai_chat;
mod responses;

use serde_json::Value;

pub use client_error::{conversion_error_body, convert_error, error_body, upstream_message};
pub use error::ConvertError;
pub use protocol::{backend_for_provider, Backend, Protocol};
pub use relay::convert_stream;
pub use stream::{stream_error_event, StreamConverter};
pub use tokens::count_tokens;

/// A request ready for the upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvertedRequest {
    /// Body in the backend protocol. For Gemini the model is not in it (it goes in the URL;
    /// see [`model::gemini_method_path`]).
    pub body: Value,
    /// Upstream model name.
    pub model: String,
    /// Whether the client asked for a stream (for Gemini this picks `streamGenerateContent`).
    pub stream: bool,
}

/// Values that come from outside the body: the model and stream flag of a Gemini URL, or a
/// model renamed by routing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestOverrides {
    pub model: Option<String>,
    pub stream: Option<bool>,
}

/// Parses a request or response body.
pub fn parse_body(bytes: &[u8]) -> Result<Value, ConvertError> {
    serde_json::from_slice(bytes).map_err(|e| ConvertError::InvalidJson(e.to_string()))
}

/// Converts a client request to the backend protocol.
pub fn convert_request(client: Protocol, backend: Protocol, body: &Value) -> Result<ConvertedRequest, ConvertError> {
    convert_request_with(client, backend, body, &RequestOverrides::default())
}

/// [`convert_request`] with the model and/or stream flag supplied from outside the body.
pub fn convert_request_with(
    client: Protocol,
    backend: Protocol,
    body: &Value,
    overrides: &RequestOverrides,
) -> Result<ConvertedRequest, ConvertError> {
    if client == backend {
        return pass_through_request(client, body, overrides);
    }
    let mut req = decode_request(client, body)?;
    if let Some(m) = &overrides.model {
        req.model = model::strip_models_prefix(m).to_string();
    }
    if let Some(s) = overrides.stream {
        req.stream = s;
    }
    if req.model.is_empty() {
        return Err(ConvertError::Missing("model".into()));
    }
    tracing::debug!(%client, %backend, model = %req.model, "converting request");
    Ok(ConvertedRequest { body: encode_request(backend, &req), model: req.model, stream: req.stream })
}

fn pass_through_request(
    protocol: Protocol,
    body: &Value,
    overrides: &RequestOverrides,
) -> Result<ConvertedRequest, ConvertError> {
    let mut out = json::as_obj(body, "body")?.clone();
    let body_model = out.get("model").and_then(Value::as_str).map(str::to_string);
    let body_stream = out.get("stream").and_then(Value::as_bool);
    let model = overrides
        .model
        .clone()
        .or(body_model)
        .map(|m| model::strip_models_prefix(&m).to_string())
        .filter(|m| !m.is_empty())
        .ok_or_else(|| ConvertError::Missing("model".into()))?;
    let stream = overrides.stream.or(body_stream).unwrap_or(false);
    if protocol == Protocol::Gemini {
        // Model and stream flag belong in a Gemini URL, not its body.
        out.remove("model");
        out.remove("stream");
    } else {
        out.insert("model".into(), model.clone().into());
    }
    Ok(ConvertedRequest { body: Value::Object(out), model, stream })
}

/// Decodes a request body of `protocol` into the IR.
pub fn decode_request(protocol: Protocol, body: &Value) -> Result<ir::Request, ConvertError> {
    match protocol {
        Protocol::OpenAiChat => openai_chat::request::decode(body),
        Protocol::OpenAiResponses => responses::request::decode(body),
        Protocol::Anthropic => anthropic::request::decode(body),
        Protocol::Gemini => gemini::request::decode(body),
    }
}

/// Encodes an IR request as a `protocol` body.
pub fn encode_request(protocol: Protocol, req: &ir::Request) -> Value {
    match protocol {
        Protocol::OpenAiChat => openai_chat::request::encode(req),
        Protocol::OpenAiResponses => responses::request::encode(req),
        Protocol::Anthropic => anthropic::request::encode(req),
        Protocol::Gemini => gemini::request::encode(req),
    }
}

/// Converts a successful unary upstream response to the client protocol.
pub fn convert_response(backend: Protocol, client: Protocol, body: &Value) -> Result<Value, ConvertError> {
    convert_response_at(backend, client, body, ids::now())
}

/// [`convert_response`] with a fixed timestamp for protocols that need one the upstream did not
/// send (replays, golden tests).
pub fn convert_response_at(
    backend: Protocol,
    client: Protocol,
    body: &Value,
    created: i64,
) -> Result<Value, ConvertError> {
    if backend == client {
        json::as_obj(body, "response")?;
        return Ok(code_assist::unwrap_response(body).clone());
    }
    let mut resp = decode_response(backend, body)?;
    if resp.has_tool_calls() && matches!(resp.finish, None | Some(ir::FinishReason::Stop)) {
        resp.finish = Some(ir::FinishReason::ToolCalls);
    }
    Ok(encode_response(client, &resp, created))
}

/// Decodes a unary response body of `protocol` into the IR.
pub fn decode_response(protocol: Protocol, body: &Value) -> Result<ir::Response, ConvertError> {
    match protocol {
        Protocol::OpenAiChat => openai_chat::response::decode(body),
        Protocol::OpenAiResponses => responses::response::decode(body),
        Protocol::Anthropic => anthropic::response::decode(body),
        Protocol::Gemini => gemini::response::decode(body),
    }
}

/// Encodes an IR response as a `protocol` body; `created` is used where the IR has none.
pub fn encode_response(protocol: Protocol, resp: &ir::Response, created: i64) -> Value {
    match protocol {
        Protocol::OpenAiChat => openai_chat::response::encode(resp, created),
        Protocol::OpenAiResponses => responses::response::encode(resp, created),
        Protocol::Anthropic => anthropic::response::encode(resp),
        Protocol::Gemini => gemini::response::encode(resp),
    }
}
