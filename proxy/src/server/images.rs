//! `POST /v1/images/generations` and `POST /v1/images/edits` (OpenAI Images API), routed by
//! model like chat. Accounts with an images API get the request as sent (the upstream makes
//! the `n` images); other providers get one chat request per image (see
//! [`crate::convert::images`]), and the images in their answers are returned.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::{json, Value};

use super::dispatch::{dispatch, ClientCall};
use super::errors::ApiError;
use super::routes::{read_body_up_to, request_id};
use super::AppState;
use crate::client_keys::identify;
use crate::convert::images::{self, ImageCall, MAX_IMAGE_BYTES};
use crate::convert::Protocol;

/// Images are answered in OpenAI's shapes, errors too.
const PROTOCOL: Protocol = Protocol::OpenAiChat;
/// An edit's body carries its images: up to two full-size ones fit.
const EDIT_BODY_LIMIT: usize = 2 * MAX_IMAGE_BYTES + (1 << 20);
/// An answer read back from dispatch (its images, base64).
const ANSWER_LIMIT: usize = 256 << 20;

pub async fn generations(State(s): State<Arc<AppState>>, req: Request) -> Response {
    serve(s, false, None, req).await
}
pub async fn generations_p(State(s): State<Arc<AppState>>, Path(p): Path<String>, req: Request) -> Response {
    serve(s, false, Some(p), req).await
}
pub async fn edits(State(s): State<Arc<AppState>>, req: Request) -> Response {
    serve(s, true, None, req).await
}
pub async fn edits_p(State(s): State<Arc<AppState>>, Path(p): Path<String>, req: Request) -> Response {
    serve(s, true, Some(p), req).await
}

async fn serve(state: Arc<AppState>, edit: bool, path_provider: Option<String>, req: Request) -> Response {
    let request_id = request_id(req.headers());
    let route = if edit { "images_edits" } else { "images_generations" };
    let span = super::routes::request_span(&request_id, route, req.uri().path());
    crate::telemetry::adopt_parent(&span, req.headers());
    let served = serve_in_span(state, edit, route, path_provider, req, request_id);
    tracing::Instrument::instrument(served, span).await
}

async fn serve_in_span(
    state: Arc<AppState>,
    edit: bool,
    route: &'static str,
    mut path_provider: Option<String>,
    req: Request,
    request_id: String,
) -> Response {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let fail = |e: ApiError| {
        state.metrics.request(route, "none", e.status);
        e.into_response_for(PROTOCOL)
    };
    let caller = match identify(&state.config().api_key, &parts.headers, parts.uri.query()) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let limit = if edit { EDIT_BODY_LIMIT.max(state.config().max_body_bytes) } else { state.config().max_body_bytes };
    let raw = match read_body_up_to(&state, &parts.headers, body, limit).await {
        Ok(b) => b,
        Err(e) => return fail(e),
    };
    let parsed = if edit { parse_edit(&parts.headers, raw.clone()).await } else { parse_generation(&raw) };
    let mut img = match parsed {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    if let Some(cm) = state.custom_models().find(&img.model).cloned() {
        path_provider = Some(cm.provider);
        img.model = cm.model;
    }
    let chat = img.chat_request();
    state.config().prompt_log.request(&request_id, PROTOCOL, &img.model, &chat);
    let below = match &path_provider {
        Some(p) => parts.uri.path().strip_prefix(&format!("/{p}")).unwrap_or(parts.uri.path()).to_string(),
        None => parts.uri.path().to_string(),
    };
    let img = Arc::new(img);
    let call = |raw: Bytes| ClientCall {
        protocol: PROTOCOL,
        route,
        headers: parts.headers.clone(),
        path_and_query: below.clone(),
        path_provider: path_provider.clone(),
        raw,
        body: chat.clone(),
        model: img.model.clone(),
        stream: false,
        request_id: request_id.clone(),
        started,
        caller: caller.clone(),
        charge: None,
        images: Some(img.clone()),
    };
    let mut data = Vec::new();
    // One chat request per image; an images API makes all `n` in one call.
    while (data.len() as u64) < img.n {
        let resp = dispatch(state.clone(), call(raw.clone())).await;
        if !resp.status().is_success() {
            return if data.is_empty() { resp } else { answer(data) };
        }
        if resp.extensions().get::<images::NativeAnswer>().is_some() {
            // The upstream's own images API answered (all `n` images), as it came.
            return resp;
        }
        let Ok(bytes) = http_body_util::Limited::new(resp.into_body(), ANSWER_LIMIT).collect().await else {
            return fail(ApiError::new(502, "the upstream's answer could not be read"));
        };
        let bytes = bytes.to_bytes();
        let Ok(v) = serde_json::from_slice::<Value>(&bytes) else {
            return fail(ApiError::new(502, "the upstream's answer is not JSON"));
        };
        match images::from_chat_answer(&v) {
            Ok((found, _)) if found.is_empty() => {
                if !data.is_empty() {
                    break;
                }
                let message = format!("Model {} answered without an image", img.model);
                return fail(ApiError::new(502, message));
            }
            Ok((found, text)) => {
                let text = Some(text.as_str()).filter(|t| !t.is_empty());
                data.extend(found.iter().map(|src| images::data_item(src, img.format, text)));
            }
            Err(e) => return fail(ApiError::new(502, format!("the upstream's answer could not be read: {e}"))),
        }
    }
    data.truncate(img.n as usize);
    answer(data)
}

fn answer(data: Vec<Value>) -> Response {
    axum::Json(json!({"created": chrono::Utc::now().timestamp(), "data": data})).into_response()
}

fn parse_generation(raw: &[u8]) -> Result<ImageCall, ApiError> {
    let v: Value =
        serde_json::from_slice(raw).map_err(|e| ApiError::bad_request(format!("body is not valid JSON: {e}")))?;
    images::parse_generation(&v).map_err(|e| ApiError::bad_request(e.to_string()))
}

async fn parse_edit(headers: &axum::http::HeaderMap, raw: Bytes) -> Result<ImageCall, ApiError> {
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let form = images::read_form(content_type, raw).await.map_err(|e| ApiError::bad_request(e.to_string()))?;
    images::parse_edit(form).map_err(|e| ApiError::bad_request(e.to_string()))
}
