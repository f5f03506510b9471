//! Google Code Assist backends: `gemini-cli-oauth` (the Gemini CLI's `cloudcode-pa` API) and
//! `gemini-antigravity` (Antigravity's daily/autopush hosts). Both speak Gemini inside the
//! `v1internal` envelope `{model, project, request}` and answer `{"response": …}`; the account's
//! Google Cloud project comes from `PROJECT_ID` or is discovered through `loadCodeAssist` /
//! `onboardUser` (kept in memory, as the reference does).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use poolgate_store::Account;
use serde_json::{json, Value};

use super::google::GoogleGrant;
use super::sse_rewrite::{EventMap, SseRewrite};
use super::{
    AdaptError, FailureKind, Prepared, Provider, ProviderCtx, ProviderError, ResponseAdapter, Settings, UpstreamCall,
};
use crate::convert::{code_assist, Backend, Protocol};
use crate::oauth::TokenGrant;

const GEMINI_CLI_URL: &str = "https://cloudcode-pa.googleapis.com";
const ANTIGRAVITY_URLS: &str = "https://daily-cloudcode-pa.sandbox.googleapis.com,https://daily-cloudcode-pa.googleapis.com,https://autopush-cloudcode-pa.sandbox.googleapis.com";

pub const GEMINI_CLI_MODELS: &[&str] = &[
    "gemini-2.5-flash",
    "gemini-2.5-flash-lite",
    "gemini-2.5-pro",
    "gemini-2.5-pro-preview-06-05",
    "gemini-2.5-flash-preview-09-2025",
    "gemini-3-pro-preview",
    "gemini-3-flash-preview",
];

pub const ANTIGRAVITY_MODELS: &[&str] = &[
    "gemini-2.5-computer-use-preview-10-2025",
    "gemini-3-pro-image-preview",
    "gemini-3-pro-preview",
    "gemini-3-flash-preview",
    "gemini-2.5-flash-preview",
    "gemini-claude-sonnet-4-5",
    "gemini-claude-sonnet-4-5-thinking",
    "gemini-claude-opus-4-5-thinking",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    GeminiCli,
    Antigravity,
}

pub struct CodeAssistProvider {
    flavor: Flavor,
    grant: GoogleGrant,
    /// Discovered projects by account uuid.
    projects: Mutex<HashMap<String, String>>,
    /// Antigravity: the base URL in use; moves on after 429/5xx.
    url_index: AtomicUsize,
}

impl CodeAssistProvider {
    pub fn gemini_cli() -> Self {
        Self::new(
            Flavor::GeminiCli,
            GoogleGrant {
                provider: "gemini-cli-oauth",
                token_url_setting: "GEMINI_OAUTH_TOKEN_URL",
                client_id: "681255809395-oo8ft2oprdrnp9e3aqf6av3hmdib135j.apps.googleusercontent.com",
                client_secret: "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",
                client_settings: ("GEMINI_OAUTH_CLIENT_ID", "GEMINI_OAUTH_CLIENT_SECRET"),
                inline: Some("GEMINI_OAUTH_CREDS_BASE64"),
            },
        )
    }

    pub fn antigravity() -> Self {
        Self::new(
            Flavor::Antigravity,
            GoogleGrant {
                provider: "gemini-antigravity",
                token_url_setting: "ANTIGRAVITY_OAUTH_TOKEN_URL",
                client_id: "1071006060591-tmhssin2h21lcre235vtolojh4g403ep.apps.googleusercontent.com",
                client_secret: "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",
                client_settings: ("ANTIGRAVITY_OAUTH_CLIENT_ID", "ANTIGRAVITY_OAUTH_CLIENT_SECRET"),
                inline: None,
            },
        )
    }

    fn new(flavor: Flavor, grant: GoogleGrant) -> Self {
        Self { flavor, grant, projects: Mutex::default(), url_index: AtomicUsize::new(0) }
    }

    fn base_url(&self, settings: &Settings<'_>, account: &Account) -> String {
        match self.flavor {
            Flavor::GeminiCli => settings.get_or(account, "GEMINI_BASE_URL", GEMINI_CLI_URL),
            Flavor::Antigravity => {
                let list = settings.get_or(account, "ANTIGRAVITY_BASE_URL", ANTIGRAVITY_URLS);
                let urls: Vec<&str> = list.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
                let i = self.url_index.load(Ordering::Relaxed) % urls.len().max(1);
                urls.get(i).copied().unwrap_or(GEMINI_CLI_URL).to_string()
            }
        }
        .trim_end_matches('/')
        .to_string()
    }

    fn user_agent(&self) -> &'static str {
        match self.flavor {
            Flavor::GeminiCli => "google-api-nodejs-client/10.9.1",
            Flavor::Antigravity => "antigravity/1.104.0 darwin/arm64 google-api-nodejs-client/10.9.1",
        }
    }

    /// The upstream model for a client model name.
    pub fn upstream_model(&self, model: &str) -> String {
        let m = crate::convert::model::strip_models_prefix(model);
        match self.flavor {
            Flavor::GeminiCli if m.starts_with("gemini-") => m.to_string(),
            Flavor::GeminiCli => "gemini-2.5-flash".to_string(),
            Flavor::Antigravity => antigravity_alias(m),
        }
    }

    async fn project(
        &self,
        ctx: &ProviderCtx,
        account: &Account,
        base: &str,
        access: &str,
    ) -> Result<String, ProviderError> {
        if let Some(p) = ctx.settings().get(account, "PROJECT_ID") {
            return Ok(p);
        }
        if let Some(p) = self.projects.lock().get(account.uuid()) {
            return Ok(p.clone());
        }
        let found = match discover_project(ctx, base, access, self.user_agent()).await {
            Ok(p) => p,
            Err(e) if self.flavor == Flavor::Antigravity => {
                tracing::warn!(uuid = %account.uuid(), error = %e, "project discovery failed; using a generated project id");
                format!("poolgate-{:05x}", rand::random::<u32>() & 0xfffff)
            }
            Err(e) => return Err(ProviderError::Upstream(format!("Code Assist project discovery failed: {e}"))),
        };
        self.projects.lock().insert(account.uuid().to_string(), found.clone());
        Ok(found)
    }

    /// `retrieveUserQuota` (Gemini CLI) or `fetchAvailableModels` (Antigravity), per model.
    async fn quota(&self, ctx: &ProviderCtx, pool: &str, account: &Account) -> Result<Value, String> {
        let token = ctx.token(pool, account, &self.grant, None).await.map_err(|e| e.to_string())?;
        let base = self.base_url(&ctx.settings(), account);
        let project = self.project(ctx, account, &base, &token.access).await.map_err(|e| e.to_string())?;
        let method = match self.flavor {
            Flavor::GeminiCli => "retrieveUserQuota",
            Flavor::Antigravity => "fetchAvailableModels",
        };
        let rb = ctx
            .http
            .post(format!("{base}/v1internal:{method}"))
            .bearer_auth(&token.access)
            .header("user-agent", self.user_agent())
            .json(&json!({"project": project}))
            .timeout(Duration::from_secs(10));
        let answer = json_answer(rb).await?;
        let mut models: Vec<(String, f64, Option<String>)> = match self.flavor {
            Flavor::GeminiCli => answer
                .get("buckets")
                .and_then(Value::as_array)
                .map(|b| {
                    b.iter()
                        .filter_map(|b| {
                            let id = b.get("modelId")?.as_str()?.to_string();
                            let rem = b.get("remainingFraction").and_then(Value::as_f64).unwrap_or(0.0);
                            Some((id, rem, b.get("resetTime").and_then(Value::as_str).map(str::to_string)))
                        })
                        .collect()
                })
                .unwrap_or_default(),
            Flavor::Antigravity => answer
                .get("models")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(id, v)| {
                            let q = v.get("quotaInfo");
                            let rem = q
                                .and_then(|q| q.get("remainingFraction").or_else(|| q.get("remaining")))
                                .and_then(Value::as_f64)
                                .unwrap_or(0.0);
                            let reset = q.and_then(|q| q.get("resetTime")).and_then(Value::as_str).map(str::to_string);
                            (id.clone(), rem, reset)
                        })
                        .collect()
                })
                .unwrap_or_default(),
        };
        models.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(crate::usage::model_breakdown(models))
    }

    fn shape_body(&self, request: Value, model: &str, project: &str) -> Value {
        let mut request = request;
        if let Some(o) = request.as_object_mut() {
            o.remove("model");
            if let Some(si) = o.remove("system_instruction") {
                o.entry("systemInstruction").or_insert(si);
            }
        }
        match self.flavor {
            Flavor::GeminiCli => code_assist::wrap_request(model, project, request),
            Flavor::Antigravity => antigravity_body(request, model, project),
        }
    }
}

fn antigravity_alias(m: &str) -> String {
    let mapped = match m {
        "gemini-2.5-computer-use-preview-10-2025" => "rev19-uic3-1p",
        "gemini-3-pro-image-preview" => "gemini-3-pro-image",
        "gemini-3-pro-preview" => "gemini-3-pro-high",
        "gemini-3-flash-preview" => "gemini-3-flash",
        "gemini-2.5-flash-preview" => "gemini-2.5-flash",
        other => {
            return other
                .strip_prefix("gemini-claude-")
                .map(|c| format!("claude-{c}"))
                .unwrap_or_else(|| other.to_string())
        }
    };
    mapped.to_string()
}

/// Antigravity's request rewrites (§4): its own envelope, a session id derived from the first
/// user text, no safety settings or output cap, validated function calling, no tools for Claude,
/// and image models asked for 4K images without thoughts.
fn antigravity_body(mut request: Value, model: &str, project: &str) -> Value {
    if let Some(o) = request.as_object_mut() {
        o.remove("safetySettings");
        if let Some(gc) = o.get_mut("generationConfig").and_then(Value::as_object_mut) {
            gc.remove("maxOutputTokens");
        }
        if model.contains("image") {
            let gc = o.entry("generationConfig").or_insert_with(|| json!({}));
            if let Some(gc) = gc.as_object_mut() {
                gc.insert("imageConfig".into(), json!({"imageSize": "4K"}));
                let thinking = gc.entry("thinkingConfig").or_insert_with(|| json!({}));
                if let Some(t) = thinking.as_object_mut() {
                    t.insert("includeThoughts".into(), false.into());
                }
            }
        }
        if model.starts_with("claude") {
            o.remove("tools");
            o.remove("toolConfig");
        } else if o.contains_key("tools") {
            o.insert("toolConfig".into(), json!({"functionCallingConfig": {"mode": "VALIDATED"}}));
        }
        o.insert("sessionId".into(), Value::String(session_id(o.get("contents"))));
    }
    json!({
        "project": project,
        "requestId": format!("agent-{}", uuid::Uuid::new_v4()),
        "request": request,
        "model": model,
        "userAgent": "antigravity",
        "requestType": "agent",
    })
}

fn session_id(contents: Option<&Value>) -> String {
    use sha2::{Digest, Sha256};
    let first = contents
        .and_then(Value::as_array)
        .and_then(|c| c.iter().find(|m| m.get("role").and_then(Value::as_str) != Some("model")))
        .and_then(|m| m.pointer("/parts/0/text"))
        .and_then(Value::as_str);
    match first {
        Some(text) => {
            let d = Sha256::digest(text.as_bytes());
            let mut b = [0u8; 8];
            b.copy_from_slice(&d[..8]);
            format!("-{}", u64::from_be_bytes(b) & (u64::MAX >> 1))
        }
        None => format!("-{}", rand::random::<u16>() % 9000),
    }
}

async fn discover_project(ctx: &ProviderCtx, base: &str, access: &str, ua: &str) -> Result<String, String> {
    let metadata = json!({"ideType": "IDE_UNSPECIFIED", "platform": "PLATFORM_UNSPECIFIED", "pluginType": "GEMINI", "duetProject": ""});
    let call = |method: &str, body: Value| {
        ctx.http
            .post(format!("{base}/v1internal:{method}"))
            .bearer_auth(access)
            .header("user-agent", ua)
            .json(&body)
            .timeout(Duration::from_secs(30))
    };
    let load =
        json_answer(call("loadCodeAssist", json!({"cloudaicompanionProject": "", "metadata": metadata}))).await?;
    if let Some(p) = load.get("cloudaicompanionProject").and_then(Value::as_str).filter(|p| !p.is_empty()) {
        return Ok(p.to_string());
    }
    let tier = load
        .get("allowedTiers")
        .and_then(Value::as_array)
        .and_then(|t| t.iter().find(|t| t.get("isDefault").and_then(Value::as_bool) == Some(true)))
        .and_then(|t| t.get("id").and_then(Value::as_str))
        .unwrap_or("free-tier")
        .to_string();
    let poll = ctx
        .settings()
        .global("CODE_ASSIST_ONBOARD_POLL_MS")
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(Duration::from_secs(2));
    for _ in 0..30 {
        let body = json!({"tierId": tier, "cloudaicompanionProject": "", "metadata": metadata});
        let op = json_answer(call("onboardUser", body)).await?;
        if op.get("done").and_then(Value::as_bool) == Some(true) {
            return op
                .pointer("/response/cloudaicompanionProject/id")
                .and_then(Value::as_str)
                .filter(|p| !p.is_empty() && *p != "default")
                .map(str::to_string)
                .ok_or_else(|| "onboardUser finished without a project".to_string());
        }
        tokio::time::sleep(poll).await;
    }
    Err("onboardUser did not finish".into())
}

async fn json_answer(rb: reqwest::RequestBuilder) -> Result<Value, String> {
    let resp = rb.send().await.map_err(|e| crate::server::relay::error_chain(&e.without_url()))?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("HTTP {}", status.as_u16()));
    }
    serde_json::from_slice(&body).map_err(|_| "answer is not JSON".to_string())
}

#[async_trait]
impl Provider for CodeAssistProvider {
    fn base_type(&self) -> &'static str {
        self.grant.provider
    }
    fn backend(&self) -> Backend {
        Backend::Protocol(Protocol::Gemini)
    }
    fn default_check_model(&self) -> &'static str {
        "gemini-2.5-flash"
    }
    fn grant(&self) -> Option<&dyn TokenGrant> {
        Some(&self.grant)
    }
    fn static_models(&self) -> &'static [&'static str] {
        match self.flavor {
            Flavor::GeminiCli => GEMINI_CLI_MODELS,
            Flavor::Antigravity => ANTIGRAVITY_MODELS,
        }
    }

    async fn request(
        &self,
        ctx: &ProviderCtx,
        account: &Account,
        call: &UpstreamCall<'_>,
    ) -> Result<Prepared, ProviderError> {
        let token = ctx.token(call.pool, account, &self.grant, None).await?;
        let settings = ctx.settings();
        let base = self.base_url(&settings, account);
        let project = self.project(ctx, account, &base, &token.access).await?;
        let inner = super::json_body(call)?;
        let model = self.upstream_model(call.model);
        let body = self.shape_body(inner, &model, &project);
        let url = if call.stream {
            format!("{base}/v1internal:streamGenerateContent?alt=sse")
        } else {
            format!("{base}/v1internal:generateContent")
        };
        let mut rb = ctx
            .http
            .post(url)
            .bearer_auth(&token.access)
            .header("content-type", "application/json")
            .header("user-agent", self.user_agent())
            .header("x-goog-api-client", "gl-node/22.17.0");
        if call.stream {
            rb = rb.header("accept", "text/event-stream");
        }
        let body = super::to_body(&body)?;
        Ok(Prepared {
            builder: rb.body(body),
            access: Some(token.access.clone()),
            adapter: Some(Box::new(Unwrap::new())),
        })
    }

    fn has_usage(&self) -> bool {
        true
    }

    async fn usage(&self, ctx: &ProviderCtx, pool: &str, account: &Account) -> Option<Result<Value, String>> {
        Some(self.quota(ctx, pool, account).await)
    }

    fn classify(&self, status: u16, _body: &[u8]) -> FailureKind {
        let kind = super::oauth_classify(status);
        if self.flavor == Flavor::Antigravity && matches!(kind, FailureKind::RateLimited | FailureKind::Server) {
            self.url_index.fetch_add(1, Ordering::Relaxed);
        }
        kind
    }
}

/// Takes the Gemini answer out of the Code Assist envelope.
pub struct Unwrap {
    sse: SseRewrite<EventMap>,
}

impl Unwrap {
    pub fn new() -> Self {
        Self { sse: SseRewrite::new(unwrap_event) }
    }
}

impl Default for Unwrap {
    fn default() -> Self {
        Self::new()
    }
}

fn unwrap_event(_event: Option<&str>, data: &str) -> Option<String> {
    match serde_json::from_str::<Value>(data) {
        Ok(v) => Some(code_assist::unwrap_response(&v).to_string()),
        Err(_) => Some(data.to_string()),
    }
}

impl ResponseAdapter for Unwrap {
    fn push(&mut self, chunk: &[u8]) -> Result<Bytes, AdaptError> {
        Ok(self.sse.push(chunk))
    }
    fn finish(&mut self) -> Result<Bytes, AdaptError> {
        Ok(self.sse.finish())
    }
    fn unary(&mut self, body: &[u8]) -> Result<Bytes, AdaptError> {
        let v: Value = serde_json::from_slice(body)
            .map_err(|_| AdaptError { status: 502, message: "Code Assist answered non-JSON".into() })?;
        Ok(Bytes::from(code_assist::unwrap_response(&v).to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn antigravity_rewrites() {
        assert_eq!(antigravity_alias("gemini-3-pro-preview"), "gemini-3-pro-high");
        assert_eq!(antigravity_alias("gemini-claude-sonnet-4-5"), "claude-sonnet-4-5");
        let req = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "safetySettings": [],
                         "generationConfig": {"maxOutputTokens": 5}, "tools": [{"functionDeclarations": []}]});
        let b = antigravity_body(req.clone(), "claude-sonnet-4-5", "p");
        assert!(b["request"].get("tools").is_none() && b["request"].get("safetySettings").is_none());
        assert_eq!(b["project"], "p");
        let b2 = antigravity_body(req, "gemini-3-flash", "p");
        assert_eq!(b2["request"]["toolConfig"]["functionCallingConfig"]["mode"], "VALIDATED");
        assert_eq!(b2["request"]["sessionId"], b["request"]["sessionId"], "session id is derived from the text");
        assert!(b2["request"]["generationConfig"].get("maxOutputTokens").is_none());
        assert!(b2["request"]["generationConfig"].get("imageConfig").is_none(), "only image models");
        let img = antigravity_body(json!({"contents": []}), "gemini-3-pro-image", "p");
        assert_eq!(img["request"]["generationConfig"]["imageConfig"]["imageSize"], "4K");
        assert_eq!(img["request"]["generationConfig"]["thinkingConfig"]["includeThoughts"], false);
    }

    #[test]
    fn envelope_is_unwrapped_in_streams_and_unary() {
        let mut u = Unwrap::new();
        let out = u.push(b"data: {\"response\":{\"candidates\":[]}}\n\n").unwrap_or_default();
        assert_eq!(&out[..], b"data: {\"candidates\":[]}\n\n");
        let out = u.unary(br#"{"response":{"candidates":[1]},"traceId":"t"}"#).unwrap_or_default();
        assert_eq!(&out[..], br#"{"candidates":[1]}"#);
    }
}
