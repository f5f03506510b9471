//! Mock OAuth "subscription" providers, speaking the wire formats of
//! `shared/spec/oauth-providers.md` §11: token endpoints (Google, Codex, Qwen, iFlow, Kiro social
//! and OIDC) that issue, rotate and police refresh tokens, and the upstream APIs (Code Assist,
//! Codex Responses SSE, Qwen and iFlow OpenAI Chat, Kiro's AWS event-stream) that accept only
//! live access tokens. Counters and recorded requests let tests assert what reached them.
//!
//! Routes under [`MockOAuth::base`]: `/google/token`, `/codeassist/v1internal:{method}`,
//! `/codex/oauth/token`, `/codex/backend-api/codex/responses`, `/codex/backend-api/wham/usage`,
//! `/qwen/api/v1/oauth2/token`, `/qwen/v1/chat/completions`, `/iflow/oauth/token`,
//! `/iflow/api/oauth/getUserInfo`, `/iflow/v1/chat/completions`, `/iflow/v1/models`,
//! `/kiro/refreshToken`, `/kiro/oidc/token`, `/kiro/generateAssistantResponse`,
//! `/kiro/getUsageLimits`.

mod replies;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use parking_lot::Mutex;
use serde_json::{json, Value};

pub use replies::{kiro_frame, signature};

/// Which provider's token state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prov {
    Google,
    Codex,
    Qwen,
    IFlow,
    KiroSocial,
    KiroOidc,
}

/// A forced token-endpoint failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFailure {
    InvalidGrant,
    Server500,
}

/// What an upstream API does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ApiScript {
    #[default]
    Normal,
    /// An error status with the provider's error body.
    Status(u16),
    /// Kiro: some text, then an exception frame.
    KiroException,
}

/// One request an upstream received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Lowercase names.
    pub headers: HashMap<String, String>,
    pub body: Bytes,
}

#[derive(Default)]
struct ProvState {
    rotating: bool,
    access_ttl: u64,
    token_delay: Duration,
    failure: Option<TokenFailure>,
    valid_rt: HashSet<String>,
    used_rt: HashSet<String>,
    /// Access token → expiry (epoch ms).
    access: HashMap<String, i64>,
    token_calls: u64,
    calls_for: HashMap<String, u64>,
    reused: Vec<String>,
    api_calls: u64,
    requests: Vec<Recorded>,
    seen: Vec<String>,
    script: ApiScript,
}

#[derive(Default)]
struct Inner {
    provs: HashMap<Prov, ProvState>,
    /// iFlow API keys handed out by getUserInfo.
    api_keys: HashSet<String>,
    project: Option<String>,
    onboard_polls: u64,
    counter: u64,
    base: String,
}

/// The running mock; stops with the test's runtime.
#[derive(Clone)]
pub struct MockOAuth {
    inner: Arc<Mutex<Inner>>,
}

const RECORD_LIMIT: usize = 2000;

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl MockOAuth {
    pub async fn start() -> anyhow::Result<Self> {
        let mut inner = Inner { project: Some("mock-proj".into()), ..Inner::default() };
        for (p, rotating, ttl) in [
            (Prov::Google, false, 3599),
            (Prov::Codex, true, 864_000),
            (Prov::Qwen, true, 21_600),
            (Prov::IFlow, true, 172_800),
            (Prov::KiroSocial, true, 3600),
            (Prov::KiroOidc, true, 3600),
        ] {
            inner.provs.insert(p, ProvState { rotating, access_ttl: ttl, ..ProvState::default() });
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        inner.base = format!("http://{}", listener.local_addr()?);
        let mock = Self { inner: Arc::new(Mutex::new(inner)) };
        let app = Router::new().fallback(handle).with_state(mock.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(mock)
    }

    pub fn base(&self) -> String {
        self.inner.lock().base.clone()
    }

    fn with<T>(&self, p: Prov, f: impl FnOnce(&mut ProvState) -> T) -> T {
        f(self.inner.lock().provs.entry(p).or_default())
    }

    pub fn seed_refresh_token(&self, p: Prov, rt: &str) {
        self.with(p, |s| s.valid_rt.insert(rt.to_string()));
    }
    pub fn seed_access_token(&self, p: Prov, at: &str, valid_for: Duration) {
        self.with(p, |s| s.access.insert(at.to_string(), now_ms() + valid_for.as_millis() as i64));
        if p == Prov::IFlow {
            self.inner.lock().api_keys.insert(at.to_string());
        }
    }
    pub fn set_rotating(&self, p: Prov, rotating: bool) {
        self.with(p, |s| s.rotating = rotating);
    }
    pub fn set_access_ttl(&self, p: Prov, secs: u64) {
        self.with(p, |s| s.access_ttl = secs);
    }
    pub fn set_token_delay(&self, p: Prov, d: Duration) {
        self.with(p, |s| s.token_delay = d);
    }
    pub fn set_token_failure(&self, p: Prov, f: Option<TokenFailure>) {
        self.with(p, |s| s.failure = f);
    }
    pub fn revoke_refresh_token(&self, p: Prov, rt: &str) {
        self.with(p, |s| s.valid_rt.remove(rt));
    }
    pub fn set_api_script(&self, p: Prov, script: ApiScript) {
        self.with(p, |s| s.script = script);
    }
    /// `None`: loadCodeAssist has no project and onboardUser must be polled.
    pub fn set_code_assist_project(&self, project: Option<&str>) {
        self.inner.lock().project = project.map(str::to_string);
    }
    pub fn token_calls(&self, p: Prov) -> u64 {
        self.with(p, |s| s.token_calls)
    }
    pub fn token_calls_for(&self, p: Prov, rt: &str) -> u64 {
        self.with(p, |s| s.calls_for.get(rt).copied().unwrap_or(0))
    }
    pub fn reused_refresh_tokens(&self, p: Prov) -> Vec<String> {
        self.with(p, |s| s.reused.clone())
    }
    pub fn api_calls(&self, p: Prov) -> u64 {
        self.with(p, |s| s.api_calls)
    }
    pub fn requests(&self, p: Prov) -> Vec<Recorded> {
        self.with(p, |s| s.requests.clone())
    }
    pub fn access_tokens_seen(&self, p: Prov) -> Vec<String> {
        self.with(p, |s| s.seen.clone())
    }

    fn next_id(&self) -> u64 {
        let mut g = self.inner.lock();
        g.counter += 1;
        g.counter
    }

    fn record(&self, p: Prov, rec: Recorded) {
        self.with(p, |s| {
            if s.requests.len() < RECORD_LIMIT {
                s.requests.push(rec);
            }
        });
    }
}

fn json_status(status: u16, body: Value) -> Response {
    (StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST), axum::Json(body)).into_response()
}

async fn handle(State(mock): State<MockOAuth>, req: Request) -> Response {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let headers: HashMap<String, String> = req
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_ascii_lowercase(), v.to_str().ok()?.to_string())))
        .collect();
    let raw_headers = req.headers().clone();
    let body = match axum::body::to_bytes(req.into_body(), 32 << 20).await {
        Ok(b) => b,
        Err(_) => return json_status(400, json!({"error": "body too large"})),
    };
    let rec = Recorded { method, path: format!("{path}?{query}"), headers, body: body.clone() };
    let route = |p: Prov| (p, rec.clone());
    match path.as_str() {
        "/google/token" => token(&mock, route(Prov::Google), &raw_headers).await,
        "/codex/oauth/token" => token(&mock, route(Prov::Codex), &raw_headers).await,
        "/qwen/api/v1/oauth2/token" => token(&mock, route(Prov::Qwen), &raw_headers).await,
        "/iflow/oauth/token" => token(&mock, route(Prov::IFlow), &raw_headers).await,
        "/kiro/refreshToken" => token(&mock, route(Prov::KiroSocial), &raw_headers).await,
        "/kiro/oidc/token" => token(&mock, route(Prov::KiroOidc), &raw_headers).await,
        "/iflow/api/oauth/getUserInfo" => replies::iflow_user_info(&mock, &query),
        p if p.starts_with("/codeassist/v1internal:") => replies::code_assist(&mock, rec, &p[23..]).await,
        "/codex/backend-api/codex/responses" => replies::codex(&mock, rec),
        "/codex/backend-api/wham/usage" => replies::codex_usage(&mock, rec),
        "/qwen/v1/chat/completions" => replies::qwen(&mock, rec),
        "/iflow/v1/chat/completions" => replies::iflow(&mock, rec),
        "/iflow/v1/models" => {
            json_status(200, json!({"object": "list", "data": [{"id": "glm-4.6", "object": "model"}]}))
        }
        "/kiro/generateAssistantResponse" => replies::kiro(&mock, rec),
        "/kiro/getUsageLimits" => replies::kiro_usage(&mock, rec),
        _ => json_status(404, json!({"error": format!("mock has no route {path}")})),
    }
}

/// The refresh token presented to a token endpoint (form or JSON body).
fn presented_refresh(body: &[u8]) -> (Option<String>, HashMap<String, String>) {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        let fields: HashMap<String, String> = v
            .as_object()
            .map(|o| o.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
            .unwrap_or_default();
        return (fields.get("refreshToken").cloned(), fields);
    }
    let fields: HashMap<String, String> = url_form(std::str::from_utf8(body).unwrap_or(""));
    (fields.get("refresh_token").cloned(), fields)
}

fn url_form(s: &str) -> HashMap<String, String> {
    s.split('&')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((decode(k), decode(v)))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.replace('+', " ").into_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn token_error(p: Prov, reused: bool) -> Response {
    match p {
        Prov::Codex if reused => json_status(
            400,
            json!({"error": "refresh_token_reused", "error_description": "refresh token already used"}),
        ),
        Prov::KiroSocial | Prov::KiroOidc => {
            json_status(401, json!({"message": "Invalid refresh token", "error": "invalid_grant"}))
        }
        _ => json_status(
            400,
            json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."}),
        ),
    }
}

async fn token(mock: &MockOAuth, (p, rec): (Prov, Recorded), headers: &HeaderMap) -> Response {
    let (rt, fields) = presented_refresh(&rec.body);
    let delay = mock.with(p, |s| {
        s.token_calls += 1;
        if let Some(rt) = &rt {
            *s.calls_for.entry(rt.clone()).or_default() += 1;
        }
        s.token_delay
    });
    mock.record(p, rec);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if p == Prov::IFlow && !replies::iflow_basic_ok(headers, &fields) {
        return json_status(401, json!({"error": "invalid_client"}));
    }
    let Some(rt) = rt else { return json_status(400, json!({"error": "invalid_request"})) };
    let failure = mock.with(p, |s| s.failure);
    match failure {
        Some(TokenFailure::Server500) => return json_status(500, json!({"error": "server_error"})),
        Some(TokenFailure::InvalidGrant) => return token_error(p, false),
        None => {}
    }
    let n = mock.next_id();
    let base = mock.base();
    let outcome = mock.with(p, |s| {
        if !s.valid_rt.contains(&rt) {
            let reused = s.used_rt.contains(&rt);
            if reused {
                s.reused.push(rt.clone());
            }
            return Err(reused);
        }
        let new_rt = if s.rotating {
            s.valid_rt.remove(&rt);
            s.used_rt.insert(rt.clone());
            let r = format!("rt-{n}");
            s.valid_rt.insert(r.clone());
            Some(r)
        } else {
            None
        };
        let at = format!("at-{n}");
        s.access.insert(at.clone(), now_ms() + s.access_ttl as i64 * 1000);
        Ok((at, new_rt, s.access_ttl))
    });
    let (at, new_rt, ttl) = match outcome {
        Ok(v) => v,
        Err(reused) => return token_error(p, reused),
    };
    let body = match p {
        Prov::Google => {
            json!({"access_token": at, "expires_in": ttl, "token_type": "Bearer", "scope": "https://www.googleapis.com/auth/cloud-platform"})
        }
        Prov::Codex => {
            json!({"id_token": replies::fake_jwt(), "access_token": at, "refresh_token": new_rt, "expires_in": ttl})
        }
        Prov::Qwen => {
            json!({"access_token": at, "refresh_token": new_rt, "token_type": "Bearer", "expires_in": ttl, "resource_url": format!("{base}/qwen")})
        }
        Prov::IFlow => {
            json!({"access_token": at, "refresh_token": new_rt, "token_type": "bearer", "expires_in": ttl, "scope": "read"})
        }
        Prov::KiroSocial => {
            json!({"accessToken": at, "refreshToken": new_rt, "profileArn": "arn:aws:codewhisperer:us-east-1:000000000000:profile/MOCK", "expiresIn": ttl})
        }
        Prov::KiroOidc => json!({"accessToken": at, "refreshToken": new_rt, "tokenType": "Bearer", "expiresIn": ttl}),
    };
    json_status(200, body)
}

/// `None` when the request's bearer token is live for any of `provs`, else the 401 to send;
/// records the token as seen.
fn authorize(mock: &MockOAuth, provs: &[Prov], rec: &Recorded) -> Option<Response> {
    let bearer = rec.headers.get("authorization").and_then(|a| a.strip_prefix("Bearer ")).unwrap_or("").to_string();
    let now = now_ms();
    let mut ok = false;
    for p in provs {
        mock.with(*p, |s| {
            s.api_calls += 1;
            if s.access.get(&bearer).is_some_and(|e| *e > now) {
                ok = true;
            }
        });
    }
    if *provs == [Prov::IFlow] {
        ok = mock.inner.lock().api_keys.contains(&bearer);
    }
    let first = provs[0];
    mock.with(first, |s| {
        if s.seen.len() < RECORD_LIMIT {
            s.seen.push(bearer.clone());
        }
    });
    mock.record(first, rec.clone());
    if ok {
        None
    } else {
        Some(json_status(
            401,
            json!({"error": {"code": 401, "message": "Invalid or expired access token", "status": "UNAUTHENTICATED", "type": "invalid_request_error"}}),
        ))
    }
}

fn sse(events: Vec<String>) -> Response {
    let chunks = events.into_iter().map(|e| Ok::<_, std::convert::Infallible>(Bytes::from(e)));
    let mut r = Response::new(Body::from_stream(futures::stream::iter(chunks)));
    r.headers_mut().insert("content-type", axum::http::HeaderValue::from_static("text/event-stream"));
    r
}
