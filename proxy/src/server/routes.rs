//! Client API handlers: auth, body limits and parsing, then [`dispatch`].

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::dispatch::{dispatch, ClientCall};
use super::errors::ApiError;
use super::AppState;
use crate::client_keys::{identify, Caller};
use crate::convert::model::parse_gemini_path;
use crate::convert::{count_tokens, parse_body, Protocol};

/// A request id: the client's `x-request-id` when sane, else 16 random hex digits.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_string)
        .unwrap_or_else(|| format!("{:016x}", rand::random::<u64>()))
}

/// Checks the client key for endpoints that count nothing (model lists, token counts): the main
/// key, or a client key that exists, is enabled and has not expired.
pub async fn check_auth(state: &AppState, headers: &HeaderMap, query: Option<&str>) -> Result<(), ApiError> {
    match identify(&state.config().api_key, headers, query)? {
        Caller::Main => Ok(()),
        Caller::Key(hash) => match state.store.get_client_key(&hash).await {
            Ok(Some((k, _))) => match k.refusal(poolgate_store::time::epoch_ms()) {
                None => Ok(()),
                Some(_) => Err(ApiError::new(403, "This API key is disabled or expired")),
            },
            Ok(None) => Err(ApiError::unauthorized()),
            Err(e) if e.is_unavailable() => Err(ApiError::new(503, "Client key store is unreachable; retry shortly")),
            Err(_) => Err(ApiError::new(503, "Client key check is unavailable; retry shortly")),
        },
    }
}

/// Reads the body up to the configured limit (413 beyond it); a body that stops arriving for
/// `BODY_READ_TIMEOUT_MS` gets 408.
async fn read_body(state: &AppState, headers: &HeaderMap, body: Body) -> Result<bytes::Bytes, ApiError> {
    read_body_up_to(state, headers, body, state.config().max_body_bytes).await
}

/// [`read_body`] with its own size limit.
pub(super) async fn read_body_up_to(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<bytes::Bytes, ApiError> {
    use http_body_util::BodyExt;
    let idle = state.config().body_read_timeout;
    let too_large = || ApiError::new(413, format!("Request body is larger than the limit of {limit} bytes"));
    let declared = headers.get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = body;
    let mut first: Option<bytes::Bytes> = None;
    let mut rest = bytes::BytesMut::new();
    loop {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => {
                let message = format!("Request body stalled: nothing arrived for {} ms", idle.as_millis());
                return Err(ApiError::new(408, message));
            }
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(ApiError::bad_request("Could not read the request body")),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else { continue };
        let have = first.as_ref().map_or(0, bytes::Bytes::len) + rest.len();
        if have + data.len() > limit {
            return Err(too_large());
        }
        match &first {
            None => first = Some(data),
            Some(f) => {
                if rest.is_empty() {
                    rest.extend_from_slice(f);
                }
                rest.extend_from_slice(&data);
            }
        }
    }
    Ok(if rest.is_empty() { first.unwrap_or_default() } else { rest.freeze() })
}

/// The span of one client request; with traces on, a server span with the HTTP and GenAI
/// attributes that [`super::dispatch`] fills in.
pub(super) fn request_span(request_id: &str, route: &'static str, path: &str) -> tracing::Span {
    if !crate::telemetry::enabled() {
        return tracing::info_span!("request", id = %request_id, route);
    }
    tracing::info_span!(
        "request",
        id = %request_id,
        route,
        otel.name = %format!("POST {path}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = "POST",
        url.path = %path,
        http.response.status_code = tracing::field::Empty,
        gen_ai.operation.name = "chat",
        gen_ai.request.model = tracing::field::Empty,
    )
}

/// What differs between the generation endpoints.
struct Endpoint {
    protocol: Protocol,
    route: &'static str,
    /// Gemini: model and stream flag from the URL.
    gemini: Option<(String, bool)>,
}

async fn generate(state: Arc<AppState>, ep: Endpoint, path_provider: Option<String>, req: Request) -> Response {
    let request_id = request_id(req.headers());
    let span = request_span(&request_id, ep.route, req.uri().path());
    crate::telemetry::adopt_parent(&span, req.headers());
    tracing::Instrument::instrument(generate_in_span(state, ep, path_provider, req, request_id), span).await
}

async fn generate_in_span(
    state: Arc<AppState>,
    ep: Endpoint,
    mut path_provider: Option<String>,
    req: Request,
    request_id: String,
) -> Response {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let protocol = ep.protocol;
    let fail = |e: ApiError| {
        state.metrics.request(ep.route, "none", e.status);
        e.into_response_for(protocol)
    };
    let caller = match identify(&state.config().api_key, &parts.headers, parts.uri.query()) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let mut raw = match read_body(&state, &parts.headers, body).await {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    let mut body = match parse_body(&raw) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return fail(ApiError::bad_request("Request body must be a JSON object")),
        Err(e) => return fail(ApiError::bad_request(e.to_string())),
    };
    // Every route checks the request's shape, also those that relay it unconverted.
    if let Err(e) = crate::convert::validate::validate_request(protocol, &body) {
        return fail(ApiError::bad_request(e.to_string()));
    }
    if state.injection().apply(protocol, &mut body) {
        raw = match serde_json::to_vec(&body) {
            Ok(v) => v.into(),
            Err(e) => return fail(ApiError::new(500, e.to_string())),
        };
    }
    let (mut model, stream) = match &ep.gemini {
        Some((m, s)) => (m.clone(), *s),
        None => (
            body.get("model").and_then(Value::as_str).unwrap_or_default().to_string(),
            body.get("stream").and_then(Value::as_bool).unwrap_or(false),
        ),
    };
    if model.is_empty() {
        return fail(ApiError::bad_request("`model` is required"));
    }
    state.config().prompt_log.request(&request_id, protocol, &model, &body);
    let path = parts.uri.path();
    // A custom model names its provider type, upstream model and parameters.
    let below_provider = path_provider.clone();
    if let Some(cm) = state.custom_models().find(&model).cloned() {
        cm.apply(protocol, &mut body);
        raw = match serde_json::to_vec(&body) {
            Ok(v) => v.into(),
            Err(e) => return fail(ApiError::new(500, e.to_string())),
        };
        path_provider = Some(cm.provider);
        model = cm.model;
    }
    let below = match &below_provider {
        Some(p) => path.strip_prefix(&format!("/{p}")).unwrap_or(path),
        None => path,
    };
    let path_and_query = match parts.uri.query() {
        Some(q) => format!("{below}?{q}"),
        None => below.to_string(),
    };
    let call = ClientCall {
        protocol,
        route: ep.route,
        headers: parts.headers,
        path_and_query,
        path_provider,
        raw,
        body,
        model,
        stream,
        request_id,
        started,
        caller,
        charge: None,
        images: None,
    };
    dispatch(state, call).await
}

fn ep(protocol: Protocol, route: &'static str) -> Endpoint {
    Endpoint { protocol, route, gemini: None }
}

pub async fn chat(State(s): State<Arc<AppState>>, req: Request) -> Response {
    generate(s, ep(Protocol::OpenAiChat, "chat_completions"), None, req).await
}
pub async fn chat_p(State(s): State<Arc<AppState>>, Path(p): Path<String>, req: Request) -> Response {
    generate(s, ep(Protocol::OpenAiChat, "chat_completions"), Some(p), req).await
}
pub async fn responses(State(s): State<Arc<AppState>>, req: Request) -> Response {
    generate(s, ep(Protocol::OpenAiResponses, "responses"), None, req).await
}
pub async fn responses_p(State(s): State<Arc<AppState>>, Path(p): Path<String>, req: Request) -> Response {
    generate(s, ep(Protocol::OpenAiResponses, "responses"), Some(p), req).await
}
pub async fn messages(State(s): State<Arc<AppState>>, req: Request) -> Response {
    generate(s, ep(Protocol::Anthropic, "messages"), None, req).await
}
pub async fn messages_p(State(s): State<Arc<AppState>>, Path(p): Path<String>, req: Request) -> Response {
    generate(s, ep(Protocol::Anthropic, "messages"), Some(p), req).await
}

async fn gemini(state: Arc<AppState>, path_provider: Option<String>, req: Request) -> Response {
    if req.uri().path().ends_with(":countTokens") {
        return gemini_count_tokens(state, req).await;
    }
    match parse_gemini_path(req.uri().path()) {
        Some(g) => {
            generate(
                state,
                Endpoint { protocol: Protocol::Gemini, route: "gemini_generate", gemini: Some(g) },
                path_provider,
                req,
            )
            .await
        }
        None => {
            let msg = format!("Unknown Gemini method in {}", req.uri().path());
            ApiError::new(404, msg).into_response_for(Protocol::Gemini)
        }
    }
}

pub async fn gemini_generate(State(s): State<Arc<AppState>>, req: Request) -> Response {
    gemini(s, None, req).await
}
pub async fn gemini_generate_p(
    State(s): State<Arc<AppState>>,
    Path((p, _)): Path<(String, String)>,
    req: Request,
) -> Response {
    gemini(s, Some(p), req).await
}

/// `POST /v1/messages/count_tokens`: counted locally, never sent upstream.
pub async fn count_tokens_handler(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    if let Err(e) = check_auth(&state, &parts.headers, parts.uri.query()).await {
        return e.into_response_for(Protocol::Anthropic);
    }
    let raw = match read_body(&state, &parts.headers, body).await {
        Ok(b) => b,
        Err(e) => return e.into_response_for(Protocol::Anthropic),
    };
    let counted = parse_body(&raw).and_then(|v| count_tokens(Protocol::Anthropic, &v));
    match counted {
        Ok(n) => Json(json!({"input_tokens": n})).into_response(),
        Err(e) => ApiError::bad_request(e.to_string()).into_response_for(Protocol::Anthropic),
    }
}

/// `POST …/models/{model}:countTokens` (Gemini): counted locally, never sent upstream, in
/// Gemini's shape `{totalTokens}`. The body is a `generateContent` request, or one wrapped as
/// `{generateContentRequest: …}`.
async fn gemini_count_tokens(state: Arc<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    if let Err(e) = check_auth(&state, &parts.headers, parts.uri.query()).await {
        return e.into_response_for(Protocol::Gemini);
    }
    let raw = match read_body(&state, &parts.headers, body).await {
        Ok(b) => b,
        Err(e) => return e.into_response_for(Protocol::Gemini),
    };
    let counted = parse_body(&raw).and_then(|v| {
        let inner = v.get("generateContentRequest").cloned().unwrap_or(v);
        count_tokens(Protocol::Gemini, &inner)
    });
    match counted {
        Ok(n) => Json(json!({"totalTokens": n})).into_response(),
        Err(e) => ApiError::bad_request(e.to_string()).into_response_for(Protocol::Gemini),
    }
}

/// Unknown paths: 404 in OpenAI's shape (the most common client).
pub async fn not_found(req: Request) -> Response {
    let protocol = if req.uri().path().contains("/v1beta/") { Protocol::Gemini } else { Protocol::OpenAiChat };
    ApiError::new(404, format!("Not found: {} {}", req.method(), req.uri().path())).into_response_for(protocol)
}
