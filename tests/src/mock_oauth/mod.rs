//! Mock OAuth "subscription" providers, speaking the wire formats of
//! `shared/spec/oauth-providers.md` §11: token endpoints (Google, Codex, Qwen, iFlow, Kiro social
//! and OIDC) that issue, rotate and police refresh tokens, and the upstream APIs (Code Assist,
//! Codex Responses SSE, Qwen and iFlow OpenAI Chat, Kiro's AWS event-stream) that accept only
//! live access tokens. Counters and recorded requests let tests assert what reached them.
//!
//! One in-process axum server on `127.0.0.1:0`; routes under [`MockOAuth::base`]:
//!
//! | route | provider state |
//! |---|---|
//! | `POST /google/token` (form) | [`Prov::Google`] (Gemini CLI and Antigravity) |
//! | `POST /codeassist/v1internal:{generateContent, streamGenerateContent, loadCodeAssist, onboardUser, retrieveUserQuota, fetchAvailableModels, countTokens}` | Google |
//! | `POST /codex/oauth/token` (form), `POST /codex/backend-api/codex/responses`, `GET /codex/backend-api/wham/usage` | [`Prov::Codex`] |
//! | `POST /qwen/api/v1/oauth2/token` (form), `POST /qwen/v1/chat/completions` | [`Prov::Qwen`] |
//! | `POST /iflow/oauth/token` (form + Basic), `GET /iflow/api/oauth/getUserInfo?accessToken=…`, `POST /iflow/v1/chat/completions`, `GET /iflow/v1/models` | [`Prov::IFlow`] |
//! | `POST /kiro/refreshToken` (JSON) | [`Prov::KiroSocial`] |
//! | `POST /kiro/oidc/token` (JSON) | [`Prov::KiroOidc`] |
//! | `POST /kiro/generateAssistantResponse`, `GET /kiro/getUsageLimits` | either Kiro kind |
//!
//! Token endpoints hand out `ya29.mock-<n>` (Google) or `at-<n>` access tokens and, for rotating
//! providers, `rt-<n>` refresh tokens; the presented refresh token is then invalid, and presenting
//! it again answers the provider's refusal and is listed by [`MockOAuth::reused_refresh_tokens`].
//! The token state changes when the answer is produced, i.e. after [`MockOAuth::set_token_delay`].
//! The APIs answer 401 in the provider's error shape for an unknown or expired bearer (iFlow: the
//! bearer is an `apiKey` from getUserInfo, and the request must carry the HMAC headers of §7).
//! Without declared tools the answer is text (`Hello from <provider>`); with tools, a call of the
//! first declared tool with arguments `{"city":"Paris"}`.
//!
//! Kiro API requests are counted and recorded under the Kiro kind whose access token they carry
//! (unknown tokens: [`Prov::KiroSocial`]); the Kiro API follows the script set on `KiroSocial`, or
//! the one on `KiroOidc` when `KiroSocial`'s is [`ApiScript::Normal`].

mod replies;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use parking_lot::Mutex;
use serde_json::{json, Value};

pub use replies::{fake_jwt, kiro_frame, signature};

/// Which provider's token state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prov {
    /// Gemini CLI and Antigravity (Google OAuth, Code Assist API).
    Google,
    Codex,
    Qwen,
    IFlow,
    /// Kiro `authMethod: social` (`/kiro/refreshToken`).
    KiroSocial,
    /// Kiro builder-id / IdC (`/kiro/oidc/token`).
    KiroOidc,
}

/// A forced token-endpoint failure (applies to every call while set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFailure {
    /// The provider's refusal of the refresh token (400 `invalid_grant`; Kiro social 401).
    InvalidGrant,
    /// 500 `{"error":"server_error"}`.
    Server500,
    /// 401 `{"error":"invalid_client"}` (Kiro: `{"message":"Unauthorized"}`).
    Unauthorized401,
}

/// How the Kiro event-stream body is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunking {
    /// One frame per write.
    Aligned,
    /// Writes of random sizes in `1..=max` bytes (frames split anywhere), each after a small
    /// delay so the client sees separate reads.
    Arbitrary { max: usize },
}

/// What an upstream API does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ApiScript {
    /// Normal answers (Kiro: the stream is written in 37-byte pieces).
    #[default]
    Normal,
    /// An error status with the provider's error body (Kiro: the §11 bodies for 400, 402, 403,
    /// 429, 500). Applies to the generation calls, not to discovery, quota or usage calls.
    Status(u16),
    /// Kiro: some text, then an exception frame (`ThrottlingException`, "Too many requests").
    KiroException,
    /// Kiro: a normal answer written with this chunking.
    KiroChunking(Chunking),
    /// A normal answer after this delay (every API route of the provider).
    Delay(Duration),
}

/// One request the mock received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path, plus `?query` when there is one.
    pub path: String,
    /// Lowercase names.
    pub headers: HashMap<String, String>,
    pub body: Bytes,
    /// When it arrived.
    pub at: Instant,
}

#[derive(Default)]
struct ProvState {
    rotating: bool,
    access_ttl: u64,
    token_delay: Duration,
    failure: Option<TokenFailure>,
    valid_rt: HashSet<String>,
    /// Rotated-away refresh tokens.
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
    /// iFlow API keys (getUserInfo's and seeded ones) → expiry (epoch ms).
    api_keys: HashMap<String, i64>,
    project: Option<String>,
    onboard_polls: u64,
    counter: u64,
    base: String,
}

/// The running mock (cheap to clone); the server task stops with the test's runtime.
#[derive(Clone)]
pub struct MockOAuth {
    inner: Arc<Mutex<Inner>>,
}

/// Bound of every recorded list (requests, tokens seen, reuses).
const RECORD_LIMIT: usize = 5000;
/// Largest request body read.
const BODY_LIMIT: usize = 32 << 20;

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn push_bounded<T>(v: &mut Vec<T>, item: T) {
    if v.len() < RECORD_LIMIT {
        v.push(item);
    }
}

impl MockOAuth {
    /// Binds `127.0.0.1:0` and serves in a task of the current runtime. Defaults (§11):
    /// access TTL Google 3599 s, Codex 864000 s, Qwen 21600 s, iFlow 172800 s, Kiro 3600 s;
    /// rotating refresh tokens for all but Google; Code Assist project `mock-proj`.
    pub async fn start() -> anyhow::Result<MockOAuth> {
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
        let mock = MockOAuth { inner: Arc::new(Mutex::new(inner)) };
        let app = Router::new().fallback(handle).with_state(mock.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(mock)
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn base(&self) -> String {
        self.inner.lock().base.clone()
    }

    fn with<T>(&self, p: Prov, f: impl FnOnce(&mut ProvState) -> T) -> T {
        f(self.inner.lock().provs.entry(p).or_default())
    }

    /// Makes `refresh_token` a valid refresh token of `provider`.
    pub fn seed_refresh_token(&self, provider: Prov, refresh_token: &str) {
        self.with(provider, |s| s.valid_rt.insert(refresh_token.to_string()));
    }
    /// Makes `access_token` accepted by `provider`'s API for `valid_for` (iFlow: an `apiKey`).
    pub fn seed_access_token(&self, provider: Prov, access_token: &str, valid_for: Duration) {
        let until = now_ms().saturating_add(valid_for.as_millis().min(i64::MAX as u128) as i64);
        self.with(provider, |s| s.access.insert(access_token.to_string(), until));
        if provider == Prov::IFlow {
            self.inner.lock().api_keys.insert(access_token.to_string(), until);
        }
    }
    /// Whether a refresh issues a new refresh token and invalidates the presented one.
    pub fn set_rotating(&self, provider: Prov, rotating: bool) {
        self.with(provider, |s| s.rotating = rotating);
    }
    /// `expires_in` (seconds) of the tokens issued from now on.
    pub fn set_access_ttl(&self, provider: Prov, secs: u64) {
        self.with(provider, |s| s.access_ttl = secs);
    }
    /// Delay before the token endpoint answers (the call is counted on arrival).
    pub fn set_token_delay(&self, provider: Prov, d: Duration) {
        self.with(provider, |s| s.token_delay = d);
    }
    pub fn set_token_failure(&self, provider: Prov, f: Option<TokenFailure>) {
        self.with(provider, |s| s.failure = f);
    }
    /// The refresh token is refused from now on (not counted as a reuse).
    pub fn revoke_refresh_token(&self, provider: Prov, rt: &str) {
        self.with(provider, |s| s.valid_rt.remove(rt));
    }
    pub fn set_api_script(&self, provider: Prov, s: ApiScript) {
        self.with(provider, |st| st.script = s);
    }
    /// `None`: loadCodeAssist answers no project and onboardUser answers `{"done":false}` once,
    /// then done with `mock-proj`.
    pub fn set_code_assist_project(&self, project: Option<&str>) {
        self.inner.lock().project = project.map(str::to_string);
    }
    /// Token endpoint hits, all outcomes.
    pub fn token_calls(&self, provider: Prov) -> u64 {
        self.with(provider, |s| s.token_calls)
    }
    pub fn token_calls_for(&self, provider: Prov, refresh_token: &str) -> u64 {
        self.with(provider, |s| s.calls_for.get(refresh_token).copied().unwrap_or(0))
    }
    /// Rotated-away refresh tokens that were presented again, once per presentation.
    pub fn reused_refresh_tokens(&self, provider: Prov) -> Vec<String> {
        self.with(provider, |s| s.reused.clone())
    }
    /// API hits (authorized or not; getUserInfo is not an API hit).
    pub fn api_calls(&self, provider: Prov) -> u64 {
        self.with(provider, |s| s.api_calls)
    }
    /// Every request of the provider (token endpoint and API), in arrival order.
    pub fn requests(&self, provider: Prov) -> Vec<Recorded> {
        self.with(provider, |s| s.requests.clone())
    }
    /// Bearer tokens presented to the provider's API, in order (empty string: none).
    pub fn access_tokens_seen(&self, provider: Prov) -> Vec<String> {
        self.with(provider, |s| s.seen.clone())
    }

    fn next_id(&self) -> u64 {
        let mut g = self.inner.lock();
        g.counter += 1;
        g.counter
    }

    fn record(&self, p: Prov, rec: Recorded) {
        self.with(p, |s| push_bounded(&mut s.requests, rec));
    }

    /// The Kiro API's script: `KiroSocial`'s unless Normal, else `KiroOidc`'s.
    fn kiro_script(&self) -> ApiScript {
        match self.with(Prov::KiroSocial, |s| s.script) {
            ApiScript::Normal => self.with(Prov::KiroOidc, |s| s.script),
            s => s,
        }
    }

    fn script(&self, p: Prov) -> ApiScript {
        match p {
            Prov::KiroSocial | Prov::KiroOidc => self.kiro_script(),
            p => self.with(p, |s| s.script),
        }
    }
}

fn json_status(status: u16, body: Value) -> Response {
    (StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST), axum::Json(body)).into_response()
}

/// The provider whose API serves `path`, if it is an API route.
fn api_provider(path: &str) -> Option<Prov> {
    match path {
        p if p.starts_with("/codeassist/") => Some(Prov::Google),
        p if p.starts_with("/codex/backend-api/") => Some(Prov::Codex),
        "/qwen/v1/chat/completions" => Some(Prov::Qwen),
        "/iflow/v1/chat/completions" | "/iflow/v1/models" => Some(Prov::IFlow),
        "/kiro/generateAssistantResponse" | "/kiro/getUsageLimits" => Some(Prov::KiroSocial),
        _ => None,
    }
}

async fn handle(State(mock): State<MockOAuth>, req: Request) -> Response {
    let at = Instant::now();
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let headers: HashMap<String, String> = req
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_ascii_lowercase(), v.to_str().ok()?.to_string())))
        .collect();
    let raw_headers = req.headers().clone();
    let body = match axum::body::to_bytes(req.into_body(), BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => return json_status(400, json!({"error": "body too large"})),
    };
    let full = if query.is_empty() { path.clone() } else { format!("{path}?{query}") };
    let rec = Recorded { method, path: full, headers, body, at };
    if let Some(p) = api_provider(&path) {
        if let ApiScript::Delay(d) = mock.script(p) {
            tokio::time::sleep(d).await;
        }
    }
    let route = |p: Prov| (p, rec.clone());
    match path.as_str() {
        "/google/token" => token(&mock, route(Prov::Google), &raw_headers).await,
        "/codex/oauth/token" => token(&mock, route(Prov::Codex), &raw_headers).await,
        "/qwen/api/v1/oauth2/token" => token(&mock, route(Prov::Qwen), &raw_headers).await,
        "/iflow/oauth/token" => token(&mock, route(Prov::IFlow), &raw_headers).await,
        "/kiro/refreshToken" => token(&mock, route(Prov::KiroSocial), &raw_headers).await,
        "/kiro/oidc/token" => token(&mock, route(Prov::KiroOidc), &raw_headers).await,
        "/iflow/api/oauth/getUserInfo" => replies::iflow_user_info(&mock, rec, &query),
        p if p.starts_with("/codeassist/v1internal:") => {
            let m = p["/codeassist/v1internal:".len()..].to_string();
            replies::code_assist(&mock, rec, &m)
        }
        "/codex/backend-api/codex/responses" => replies::codex(&mock, rec),
        "/codex/backend-api/wham/usage" => replies::codex_usage(&mock, rec),
        "/qwen/v1/chat/completions" => replies::qwen(&mock, rec),
        "/iflow/v1/chat/completions" => replies::iflow(&mock, rec),
        "/iflow/v1/models" => replies::iflow_models(&mock, rec),
        "/kiro/generateAssistantResponse" => replies::kiro(&mock, rec),
        "/kiro/getUsageLimits" => replies::kiro_usage(&mock, rec),
        _ => json_status(404, json!({"error": format!("mock has no route {path}")})),
    }
}

/// The refresh token presented to a token endpoint (JSON body for Kiro, else a form), and all
/// string fields.
fn presented_refresh(p: Prov, body: &[u8]) -> (Option<String>, HashMap<String, String>) {
    if matches!(p, Prov::KiroSocial | Prov::KiroOidc) {
        let v = serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
        let fields: HashMap<String, String> = v
            .as_object()
            .map(|o| o.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
            .unwrap_or_default();
        return (fields.get("refreshToken").cloned(), fields);
    }
    let fields = url_form(std::str::from_utf8(body).unwrap_or(""));
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
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
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

/// The provider's refusal of a refresh token (`reused`: a rotated-away one).
fn token_refusal(p: Prov, reused: bool) -> Response {
    match p {
        Prov::Codex if reused => json_status(
            400,
            json!({"error": "refresh_token_reused", "error_description": "refresh token already used"}),
        ),
        Prov::KiroSocial => json_status(401, json!({"message": "Invalid refresh token", "error": "invalid_grant"})),
        Prov::KiroOidc => json_status(
            400,
            json!({"error": "invalid_grant", "error_description": "Invalid refresh token provided", "message": "Invalid refresh token provided"}),
        ),
        _ => json_status(
            400,
            json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."}),
        ),
    }
}

fn token_failure(p: Prov, f: TokenFailure) -> Response {
    match (f, p) {
        (TokenFailure::InvalidGrant, p) => token_refusal(p, false),
        (TokenFailure::Server500, _) => json_status(500, json!({"error": "server_error", "message": "mock 500"})),
        (TokenFailure::Unauthorized401, Prov::KiroSocial | Prov::KiroOidc) => {
            json_status(401, json!({"message": "Unauthorized"}))
        }
        (TokenFailure::Unauthorized401, _) => {
            json_status(401, json!({"error": "invalid_client", "error_description": "Unauthorized"}))
        }
    }
}

/// `None` when the request has the grant type the provider's endpoint expects.
fn bad_grant_type(p: Prov, fields: &HashMap<String, String>) -> Option<Response> {
    let (key, ok) = match p {
        Prov::KiroSocial => return None,
        Prov::KiroOidc => ("grantType", fields.get("grantType").map(String::as_str) == Some("refresh_token")),
        _ => ("grant_type", fields.get("grant_type").map(String::as_str) == Some("refresh_token")),
    };
    (!ok).then(|| {
        json_status(
            400,
            json!({"error": "unsupported_grant_type", "error_description": format!("{key} must be refresh_token")}),
        )
    })
}

async fn token(mock: &MockOAuth, (p, rec): (Prov, Recorded), headers: &HeaderMap) -> Response {
    let (rt, fields) = presented_refresh(p, &rec.body);
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
        return json_status(
            401,
            json!({"error": "invalid_client", "error_description": "Authorization: Basic base64(client_id:client_secret) must match the form"}),
        );
    }
    if let Some(r) = bad_grant_type(p, &fields) {
        return r;
    }
    let Some(rt) = rt.filter(|r| !r.is_empty()) else {
        return json_status(400, json!({"error": "invalid_request", "error_description": "no refresh token"}));
    };
    if let Some(f) = mock.with(p, |s| s.failure) {
        return token_failure(p, f);
    }
    let n = mock.next_id();
    let base = mock.base();
    let outcome = mock.with(p, |s| {
        if !s.valid_rt.contains(&rt) {
            let reused = s.used_rt.contains(&rt);
            if reused {
                push_bounded(&mut s.reused, rt.clone());
            }
            return Err(reused);
        }
        let new_rt = s.rotating.then(|| {
            s.valid_rt.remove(&rt);
            s.used_rt.insert(rt.clone());
            let r = format!("rt-{n}");
            s.valid_rt.insert(r.clone());
            r
        });
        let at = if p == Prov::Google { format!("ya29.mock-{n}") } else { format!("at-{n}") };
        let ttl_ms = i64::try_from(s.access_ttl.saturating_mul(1000)).unwrap_or(i64::MAX);
        s.access.insert(at.clone(), now_ms().saturating_add(ttl_ms));
        Ok((at, new_rt, s.access_ttl))
    });
    let (at, new_rt, ttl) = match outcome {
        Ok(v) => v,
        Err(reused) => return token_refusal(p, reused),
    };
    let mut body = match p {
        Prov::Google => json!({"access_token": at, "expires_in": ttl, "token_type": "Bearer",
            "scope": "https://www.googleapis.com/auth/cloud-platform"}),
        Prov::Codex => json!({"id_token": fake_jwt(), "access_token": at, "expires_in": ttl}),
        Prov::Qwen => json!({"access_token": at, "token_type": "Bearer", "expires_in": ttl,
            "resource_url": format!("{base}/qwen")}),
        Prov::IFlow => json!({"access_token": at, "token_type": "bearer", "expires_in": ttl, "scope": "read"}),
        Prov::KiroSocial => json!({"accessToken": at,
            "profileArn": "arn:aws:codewhisperer:us-east-1:000000000000:profile/MOCK", "expiresIn": ttl}),
        Prov::KiroOidc => json!({"accessToken": at, "tokenType": "Bearer", "expiresIn": ttl}),
    };
    if let Some(r) = new_rt {
        let key = if matches!(p, Prov::KiroSocial | Prov::KiroOidc) { "refreshToken" } else { "refresh_token" };
        body[key] = json!(r);
    }
    json_status(200, body)
}

fn bearer(rec: &Recorded) -> String {
    let a = rec.headers.get("authorization").map(String::as_str).unwrap_or("");
    a.strip_prefix("Bearer ").or_else(|| a.strip_prefix("bearer ")).unwrap_or("").trim().to_string()
}

/// The provider's 401 body for an unknown or expired access token.
fn unauthorized(p: Prov) -> Response {
    let body = match p {
        Prov::Google => json!({"error": {"code": 401,
            "message": "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
            "status": "UNAUTHENTICATED"}}),
        Prov::Codex => {
            json!({"error": {"message": "Provided authentication token is expired or invalid. Please try signing in again.",
            "type": "invalid_request_error", "code": "token_expired"}})
        }
        Prov::Qwen => json!({"error": {"message": "Invalid access token or token expired",
            "type": "invalid_request_error", "code": "invalid_api_key"}}),
        Prov::IFlow => {
            json!({"error": {"message": "Invalid API key", "type": "invalid_request_error", "code": "invalid_api_key"}})
        }
        Prov::KiroSocial | Prov::KiroOidc => {
            json!({"message": "The bearer token included in the request is expired or unknown.", "reason": null})
        }
    };
    json_status(401, body)
}

/// `Ok(kind)` when the request's bearer token is live for one of `provs` (the kind it belongs
/// to), else the 401 to send. Counts the call and records the request and the token under that
/// kind (unknown tokens: under `provs[0]`).
fn authorize(mock: &MockOAuth, provs: &[Prov], rec: &Recorded) -> Result<Prov, Box<Response>> {
    let bearer = bearer(rec);
    let now = now_ms();
    let matched = if provs == [Prov::IFlow] {
        mock.inner.lock().api_keys.get(&bearer).is_some_and(|e| *e > now).then_some(Prov::IFlow)
    } else {
        provs.iter().copied().find(|p| mock.with(*p, |s| s.access.get(&bearer).is_some_and(|e| *e > now)))
    };
    let who = matched.unwrap_or(provs[0]);
    mock.with(who, |s| {
        s.api_calls += 1;
        push_bounded(&mut s.seen, bearer);
        push_bounded(&mut s.requests, rec.clone());
    });
    matched.ok_or_else(|| Box::new(unauthorized(provs[0])))
}

fn sse(events: Vec<String>) -> Response {
    let chunks = events.into_iter().map(|e| Ok::<_, std::convert::Infallible>(Bytes::from(e)));
    let mut r = Response::new(Body::from_stream(futures::stream::iter(chunks)));
    r.headers_mut().insert("content-type", axum::http::HeaderValue::from_static("text/event-stream"));
    r.headers_mut().insert("cache-control", axum::http::HeaderValue::from_static("no-cache"));
    r
}
