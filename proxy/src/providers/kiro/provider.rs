//! The `claude-kiro-oauth` provider: Claude models through Kiro accounts on the CodeWhisperer
//! `generateAssistantResponse` API. Requests are built from the IR of the client's call
//! ([`super::request`]); answers (AWS event-stream) are decoded into Anthropic frames or one
//! Anthropic response ([`super::KiroStream`], [`super::unary`]), so every client protocol gets
//! them through the usual converters.

use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use poolgate_store::Account;
use serde_json::{json, Value};

use super::events::TranslatorOptions;
use super::request::{build, BuildOptions};
use super::{unary, KiroError, KiroStream};
use crate::convert::{Backend, Protocol};
use crate::oauth::token::str_field;
use crate::oauth::TokenGrant;
use crate::providers::kiro_auth::{is_social, region, KiroGrant};
use crate::providers::{
    AdaptError, FailureKind, Prepared, Provider, ProviderCtx, ProviderError, ResponseAdapter, UpstreamCall,
};

const API_URL: &str = "https://q.{{region}}.amazonaws.com/generateAssistantResponse";
const KIRO_VERSION: &str = "0.8.140";

pub const MODELS: &[&str] = &[
    "claude-haiku-4-5",
    "claude-opus-4-5",
    "claude-opus-4-5-20251101",
    "claude-sonnet-4-5",
    "claude-sonnet-4-5-20250929",
    "claude-sonnet-4-20250514",
    "claude-3-7-sonnet-20250219",
];

#[derive(Default)]
pub struct KiroProvider {
    grant: KiroGrant,
}

fn api_url(ctx: &ProviderCtx, account: &Account, token: &Value) -> String {
    ctx.settings().get_or(account, "KIRO_BASE_URL", API_URL).replacen("{{region}}", region(token), 1)
}

/// hex SHA-256 of the first of uuid, profile ARN, client id: a stable per-account machine id.
fn machine_id(account: &Account, token: &Value) -> String {
    use sha2::{Digest, Sha256};
    let seed = [Some(account.uuid()), str_field(token, &["profileArn"]), str_field(token, &["clientId"])]
        .into_iter()
        .flatten()
        .find(|s| !s.is_empty())
        .unwrap_or("poolgate");
    hex::encode(Sha256::digest(seed.as_bytes()))
}

fn headers(rb: reqwest::RequestBuilder, access: &str, machine: &str) -> reqwest::RequestBuilder {
    let ua = format!(
        "aws-sdk-js/1.0.0 ua/2.1 os/{} lang/js md/nodejs#22.17.0 api/codewhispererruntime#1.0.0 m/E KiroIDE-{KIRO_VERSION}-{machine}",
        std::env::consts::OS
    );
    rb.bearer_auth(access)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .header("amz-sdk-request", "attempt=1; max=1")
        .header("amz-sdk-invocation-id", uuid::Uuid::new_v4().to_string())
        .header("x-amzn-kiro-agent-mode", "vibe")
        .header("x-amz-user-agent", format!("aws-sdk-js/1.0.0 KiroIDE-{KIRO_VERSION}-{machine}"))
        .header("user-agent", ua)
}

/// Spaces request starts across the fleet by `KIRO_REQUEST_MIN_INTERVAL_MS`: a store lease
/// timed by the Redis server, not a per-process sleep.
async fn gate(ctx: &ProviderCtx, account: &Account) -> Result<(), ProviderError> {
    let every = ctx.settings().get(account, "KIRO_REQUEST_MIN_INTERVAL_MS").and_then(|v| v.parse::<u64>().ok());
    let Some(every) = every.filter(|v| *v > 0).map(Duration::from_millis) else { return Ok(()) };
    let me = uuid::Uuid::new_v4().to_string();
    let give_up = tokio::time::Instant::now() + ctx.config.upstream_timeout;
    loop {
        match ctx.store.try_lease("kiro-request-gate", &me, every).await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => {
                tracing::debug!(error = %e, "request gate unavailable; not spacing this request");
                return Ok(());
            }
        }
        if tokio::time::Instant::now() > give_up {
            return Err(ProviderError::Upstream("request spacing gate timed out".into()));
        }
        tokio::time::sleep((every / 4).clamp(Duration::from_millis(5), Duration::from_millis(200))).await;
    }
}

#[async_trait]
impl Provider for KiroProvider {
    fn base_type(&self) -> &'static str {
        "claude-kiro-oauth"
    }
    fn backend(&self) -> Backend {
        Backend::Protocol(Protocol::Anthropic)
    }
    fn default_check_model(&self) -> &'static str {
        "claude-haiku-4-5"
    }
    fn grant(&self) -> Option<&dyn TokenGrant> {
        Some(&self.grant)
    }
    fn static_models(&self) -> &'static [&'static str] {
        MODELS
    }

    async fn request(
        &self,
        ctx: &ProviderCtx,
        account: &Account,
        call: &UpstreamCall<'_>,
    ) -> Result<Prepared, ProviderError> {
        let token = ctx.token(call.pool, account, &self.grant, None).await?;
        let body = crate::providers::json_body(call)?;
        let ir = crate::convert::decode_request(Protocol::Anthropic, &body)
            .map_err(|e| ProviderError::Upstream(format!("request cannot be sent to Kiro: {e}")))?;
        let mut opts = BuildOptions::new(uuid::Uuid::new_v4().to_string());
        if is_social(&token.value) {
            opts.profile_arn = str_field(&token.value, &["profileArn"]).map(str::to_string);
        }
        let built = build(&ir, &opts).map_err(|e| ProviderError::Upstream(KiroError::from(e).to_string()))?;
        gate(ctx, account).await?;
        let translator = TranslatorOptions::for_request(&ir, built.tool_names);
        let machine = machine_id(account, &token.value);
        let rb = headers(ctx.http.post(api_url(ctx, account, &token.value)), &token.access, &machine);
        let bytes = crate::providers::to_body(&built.body)?;
        let adapter = KiroAnswer { model: call.model.to_string(), stream: None, opts: Some(translator) };
        Ok(Prepared { builder: rb.body(bytes), access: Some(token.access.clone()), adapter: Some(Box::new(adapter)) })
    }

    fn classify(&self, status: u16, body: &[u8]) -> FailureKind {
        let text = String::from_utf8_lossy(body).to_ascii_lowercase();
        match status {
            402 => FailureKind::QuotaUntilNextMonth,
            403 if text.contains("token") || text.contains("expired") || text.contains("invalid") => {
                FailureKind::Expired
            }
            s => crate::providers::oauth_classify(s),
        }
    }

    fn has_usage(&self) -> bool {
        true
    }

    async fn usage(&self, ctx: &ProviderCtx, pool: &str, account: &Account) -> Option<Result<Value, String>> {
        Some(usage_limits(ctx, pool, account, &self.grant).await)
    }
}

/// `getUsageLimits` in the reference's usage-cache shape (§2.9).
async fn usage_limits(ctx: &ProviderCtx, pool: &str, account: &Account, grant: &KiroGrant) -> Result<Value, String> {
    let token = ctx.token(pool, account, grant, None).await.map_err(|e| e.to_string())?;
    let url = api_url(ctx, account, &token.value).replacen("generateAssistantResponse", "getUsageLimits", 1);
    let mut query = vec![("isEmailRequired", "true"), ("origin", "AI_EDITOR"), ("resourceType", "AGENTIC_REQUEST")];
    let arn = str_field(&token.value, &["profileArn"]).filter(|_| is_social(&token.value));
    if let Some(a) = arn {
        query.push(("profileArn", a));
    }
    let machine = machine_id(account, &token.value);
    let rb = headers(ctx.http.get(url).query(&query), &token.access, &machine).timeout(Duration::from_secs(10));
    let resp = rb.send().await.map_err(|e| crate::server::relay::error_chain(&e.without_url()))?;
    if !resp.status().is_success() {
        return Err(format!("getUsageLimits answered HTTP {}", resp.status().as_u16()));
    }
    let v: Value = resp.json().await.map_err(|_| "getUsageLimits answer is not JSON".to_string())?;
    Ok(json!({
        "daysUntilReset": v.get("daysUntilReset"),
        "nextDateReset": v.get("nextDateReset"),
        "subscription": v.get("subscriptionInfo"),
        "user": v.get("userInfo"),
        "usageBreakdown": v.get("usageBreakdownList").cloned().unwrap_or_else(|| json!([])),
    }))
}

/// Decodes Kiro's event-stream answer into Anthropic frames (streams) or JSON (unary).
struct KiroAnswer {
    model: String,
    stream: Option<KiroStream>,
    opts: Option<TranslatorOptions>,
}

fn adapt(e: KiroError) -> AdaptError {
    AdaptError { status: e.status(), message: e.to_string() }
}

fn joined(frames: Vec<Bytes>) -> Bytes {
    let mut out = BytesMut::new();
    for f in frames {
        out.extend_from_slice(&f);
    }
    out.freeze()
}

impl KiroAnswer {
    fn stream(&mut self) -> &mut KiroStream {
        let (model, opts) = (&self.model, &mut self.opts);
        self.stream.get_or_insert_with(|| KiroStream::new(model, opts.take().unwrap_or_default()))
    }
}

impl ResponseAdapter for KiroAnswer {
    fn push(&mut self, chunk: &[u8]) -> Result<Bytes, AdaptError> {
        self.stream().push(chunk).map(joined).map_err(adapt)
    }
    fn finish(&mut self) -> Result<Bytes, AdaptError> {
        self.stream().finish().map(joined).map_err(adapt)
    }
    fn unary(&mut self, body: &[u8]) -> Result<Bytes, AdaptError> {
        let opts = self.opts.take().unwrap_or_default();
        unary(body, &self.model, opts).map(|v| Bytes::from(v.to_string())).map_err(adapt)
    }
}
