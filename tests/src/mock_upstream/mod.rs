//! Mock AI provider upstreams speaking the real wire formats of OpenAI Chat Completions, OpenAI
//! Responses, Anthropic Messages and Gemini `generateContent` (unary and SSE), with scripted
//! behaviour per API key: success, SSE with delays, any error status in the provider's error
//! shape, 429 with `Retry-After`, slow answers, and connections dropped mid-stream.
//!
//! Routes (any prefix before them is accepted, so base URLs like `http://mock/v1` work):
//! `POST …/chat/completions`, `POST …/responses`, `POST …/messages`,
//! `POST …/models/{model}:generateContent|:streamGenerateContent`, `GET …/models`.

pub mod formats;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures::stream::{self, StreamExt};
use parking_lot::Mutex;
use serde_json::{json, Value};

pub use formats::Wire;

/// What the mock does with a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    /// HTTP status; 200 answers normally, anything else answers an error in the wire's shape.
    pub status: u16,
    /// `Retry-After` header value on errors.
    pub retry_after: Option<String>,
    /// Wait before sending the response headers.
    pub delay: Duration,
    /// Text chunks in a streamed answer.
    pub chunks: usize,
    /// Wait before each stream chunk.
    pub chunk_delay: Duration,
    /// Abort the connection after this many stream chunks (no terminator).
    pub drop_after: Option<usize>,
    /// Answer 200 with exactly this content type and body (a misbehaving upstream).
    pub raw: Option<(String, String)>,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            status: 200,
            retry_after: None,
            delay: Duration::ZERO,
            chunks: 3,
            chunk_delay: Duration::ZERO,
            drop_after: None,
            raw: None,
        }
    }
}

impl Script {
    pub fn ok() -> Self {
        Self::default()
    }
    /// An error status answered in the wire format's error shape.
    pub fn status(status: u16) -> Self {
        Self { status, ..Self::default() }
    }
    /// 429 with `Retry-After: secs`.
    pub fn rate_limited(secs: u64) -> Self {
        Self { status: 429, retry_after: Some(secs.to_string()), ..Self::default() }
    }
    pub fn slow(delay: Duration) -> Self {
        Self { delay, ..Self::default() }
    }
    pub fn stream(chunks: usize, chunk_delay: Duration) -> Self {
        Self { chunks, chunk_delay, ..Self::default() }
    }
    /// A 200 answer of `content_type` with `body` verbatim, whatever was asked.
    pub fn raw(content_type: &str, body: &str) -> Self {
        Self { raw: Some((content_type.to_string(), body.to_string())), ..Self::default() }
    }
    pub fn drop_after(mut self, chunks: usize) -> Self {
        self.drop_after = Some(chunks);
        self
    }
}

/// One request the mock received.
#[derive(Debug, Clone)]
pub struct Hit {
    pub path: String,
    /// The API key presented (Bearer, `x-api-key`, `x-goog-api-key` or `?key=`).
    pub key: Option<String>,
    pub headers: HeaderMap,
    pub body: Value,
}

/// Shared state of a running mock.
#[derive(Default)]
pub struct MockState {
    default: Mutex<Script>,
    by_key: Mutex<HashMap<String, Script>>,
    hits: AtomicU64,
    hits_by_key: Mutex<HashMap<String, u64>>,
    log: Mutex<Vec<Hit>>,
    /// key → (requests in progress, most ever in progress).
    concurrency: Mutex<HashMap<String, (u64, u64)>>,
    /// Keep every request (tests); off for the benchmark binary.
    record: bool,
}

/// A mock upstream listening on a loopback port; stops when dropped.
pub struct MockUpstream {
    addr: SocketAddr,
    state: Arc<MockState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockUpstream {
    /// Starts on a free 127.0.0.1 port, recording every request.
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(MockState { record: true, ..MockState::default() });
        let app = router(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, state, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// `http://127.0.0.1:PORT` + `path` (e.g. `/v1`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
    /// Behaviour for requests whose key has no script of its own.
    pub fn set_default(&self, script: Script) {
        *self.state.default.lock() = script;
    }
    /// Behaviour for requests presenting `key`.
    pub fn set_for_key(&self, key: &str, script: Script) {
        self.state.by_key.lock().insert(key.to_string(), script);
    }
    pub fn hits(&self) -> u64 {
        self.state.hits.load(Ordering::SeqCst)
    }
    pub fn hits_for_key(&self, key: &str) -> u64 {
        self.state.hits_by_key.lock().get(key).copied().unwrap_or(0)
    }
    /// The most requests with `key` ever in progress at once (unary answers, until sent).
    pub fn max_concurrent(&self, key: &str) -> u64 {
        self.state.concurrency.lock().get(key).map(|c| c.1).unwrap_or(0)
    }
    pub fn requests(&self) -> Vec<Hit> {
        self.state.log.lock().clone()
    }
}

/// The mock's routes over `state` (used by the benchmark binary with `record` off).
pub fn router(state: Arc<MockState>) -> Router {
    Router::new().fallback(handle).with_state(state)
}

/// State for the benchmark binary: answers `script` to everything, records nothing.
pub fn bench_state(script: Script) -> Arc<MockState> {
    Arc::new(MockState { default: Mutex::new(script), ..MockState::default() })
}

fn presented_key(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    h("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| h("x-api-key"))
        .or_else(|| h("x-goog-api-key"))
        .or_else(|| query.and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("key="))))
        .map(str::to_string)
}

fn wire_of(path: &str) -> Option<(Wire, Option<(String, bool)>)> {
    if path.ends_with("/chat/completions") {
        return Some((Wire::OpenAiChat, None));
    }
    if path.ends_with("/responses") {
        return Some((Wire::Responses, None));
    }
    if path.ends_with("/messages") {
        return Some((Wire::Anthropic, None));
    }
    let (_, rest) = path.split_once("models/")?;
    let (model, method) = rest.rsplit_once(':')?;
    match method {
        "generateContent" => Some((Wire::Gemini, Some((model.to_string(), false)))),
        "streamGenerateContent" => Some((Wire::Gemini, Some((model.to_string(), true)))),
        _ => None,
    }
}

async fn handle(State(state): State<Arc<MockState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let key = presented_key(&parts.headers, parts.uri.query());
    let bytes = axum::body::to_bytes(body, 64 << 20).await.unwrap_or_default();
    let form =
        if path.ends_with("/images/edits") { Some(read_form(&parts.headers, bytes.clone()).await) } else { None };
    let body: Value = match &form {
        Some(Ok(f)) => f.clone(),
        _ => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    };
    state.hits.fetch_add(1, Ordering::SeqCst);
    if let Some(k) = &key {
        *state.hits_by_key.lock().entry(k.clone()).or_insert(0) += 1;
    }
    if state.record {
        state.log.lock().push(Hit {
            path: path.clone(),
            key: key.clone(),
            headers: parts.headers.clone(),
            body: body.clone(),
        });
    }
    let _busy = key.as_ref().filter(|_| state.record).map(|k| Busy::new(&state, k));
    let script =
        key.as_ref().and_then(|k| state.by_key.lock().get(k).cloned()).unwrap_or_else(|| state.default.lock().clone());
    if !script.delay.is_zero() {
        tokio::time::sleep(script.delay).await;
    }
    if let Some((content_type, body)) = script.raw {
        return ([("content-type", content_type)], body).into_response();
    }
    if parts.method == axum::http::Method::GET && path.ends_with("/models") {
        let data = json!({"object": "list", "data": [{"id": "mock-model", "object": "model", "created": 1, "owned_by": "mock"}]});
        return axum::Json(data).into_response();
    }
    if path.ends_with("/images/generations") || path.ends_with("/images/edits") {
        return images(script.status, form, &body);
    }
    let Some((wire, gemini)) = wire_of(&path) else {
        return (StatusCode::NOT_FOUND, axum::Json(json!({"error": {"message": format!("no route {path}")}})))
            .into_response();
    };
    let (model, stream) = match gemini {
        Some((m, s)) => (m, s),
        None => (
            body.get("model").and_then(Value::as_str).unwrap_or("unknown").to_string(),
            body.get("stream").and_then(Value::as_bool).unwrap_or(false),
        ),
    };
    if script.status != 200 {
        let status = StatusCode::from_u16(script.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp =
            (status, axum::Json(formats::error(wire, script.status, &format!("mock error {}", script.status))))
                .into_response();
        if let Some(ra) = script.retry_after.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
            resp.headers_mut().insert("retry-after", ra);
        }
        return resp;
    }
    if !stream {
        return axum::Json(formats::unary(wire, &model)).into_response();
    }
    sse(wire, model, script)
}

/// OpenAI's images API: `n` images, or its 400 for a request it would refuse.
fn images(status: u16, form: Option<Result<Value, String>>, body: &Value) -> Response {
    let refuse = |message: String| {
        let err = json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}});
        (StatusCode::BAD_REQUEST, axum::Json(err)).into_response()
    };
    if status != 200 {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (code, axum::Json(formats::error(Wire::OpenAiChat, status, &format!("mock error {status}"))))
            .into_response();
    }
    if let Some(Err(e)) = form {
        return refuse(e);
    }
    let field = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    if field("prompt").is_none_or(|p| p.is_empty()) || field("model").is_none() {
        return refuse("prompt and model are required".into());
    }
    let is_edit = body.get("files").is_some();
    if is_edit
        && !body["files"].as_array().is_some_and(|f| f.iter().any(|f| f["field"] == "image" || f["field"] == "image[]"))
    {
        return refuse("an image file is required".into());
    }
    let n = body.get("n").and_then(|n| n.as_u64().or_else(|| n.as_str().and_then(|s| s.parse().ok()))).unwrap_or(1);
    axum::Json(formats::images(n, field("response_format").as_deref() == Some("url"))).into_response()
}

/// A multipart form as JSON: text fields by name, and `files` (field, filename, content type, size).
async fn read_form(headers: &HeaderMap, bytes: Bytes) -> Result<Value, String> {
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let boundary = multer::parse_boundary(ct).map_err(|e| format!("not multipart: {e}"))?;
    let stream = stream::once(async move { Ok::<Bytes, std::convert::Infallible>(bytes) });
    let mut mp = multer::Multipart::new(stream, boundary);
    let mut out = serde_json::Map::new();
    let mut files = Vec::new();
    while let Some(field) = mp.next_field().await.map_err(|e| e.to_string())? {
        let name = field.name().unwrap_or_default().to_string();
        let filename = field.file_name().map(str::to_string);
        let content_type = field.content_type().map(ToString::to_string);
        let data = field.bytes().await.map_err(|e| e.to_string())?;
        match filename {
            Some(f) => files
                .push(json!({"field": name, "filename": f, "content_type": content_type, "size": data.len(),
                                         "sha256": sha256_hex(&data)})),
            None => {
                out.insert(name, String::from_utf8_lossy(&data).into_owned().into());
            }
        }
    }
    out.insert("files".into(), files.into());
    Ok(Value::Object(out))
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// Counts a request in progress for [`MockUpstream::max_concurrent`].
struct Busy {
    state: Arc<MockState>,
    key: String,
}

impl Busy {
    fn new(state: &Arc<MockState>, key: &str) -> Self {
        let mut c = state.concurrency.lock();
        let e = c.entry(key.to_string()).or_insert((0, 0));
        e.0 += 1;
        e.1 = e.1.max(e.0);
        Self { state: state.clone(), key: key.to_string() }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if let Some(e) = self.state.concurrency.lock().get_mut(&self.key) {
            e.0 -= 1;
        }
    }
}

fn sse(wire: Wire, model: String, script: Script) -> Response {
    let head: Vec<Result<Bytes, std::io::Error>> =
        formats::stream_head(wire, &model).into_iter().map(|f| Ok(Bytes::from(f))).collect();
    let n = script.chunks;
    let drop_after = script.drop_after;
    let delay = script.chunk_delay;
    let m = model.clone();
    let chunks = stream::iter(0..n).then(move |i| {
        let m = m.clone();
        async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if drop_after == Some(i) {
                return Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "mock dropped the connection"));
            }
            Ok(Bytes::from(formats::stream_chunk(wire, &m, i)))
        }
    });
    let tail = stream::iter(if drop_after.is_some_and(|d| d >= n) {
        vec![Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "mock dropped the connection"))]
    } else {
        formats::stream_tail(wire, &model, n).into_iter().map(|f| Ok(Bytes::from(f))).collect()
    });
    // Stop at the first error so nothing follows a drop.
    let body = stream::iter(head).chain(chunks).chain(tail).scan(false, |failed, item| {
        let out = if *failed { None } else { Some(item) };
        if let Some(Err(_)) = &out {
            *failed = true;
        }
        futures::future::ready(out)
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
