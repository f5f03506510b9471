//! `openai-qwen-oauth`: Qwen Code accounts. OpenAI Chat upstream at the token's
//! `resource_url` (the portal otherwise), DashScope headers, rotating refresh tokens.

use std::time::Duration;

use async_trait::async_trait;
use poolgate_store::Account;
use serde_json::{json, Map, Value};

use super::{FailureKind, Prepared, Provider, ProviderCtx, ProviderError, UpstreamCall};
use crate::convert::{Backend, Protocol};
use crate::oauth::grant::{copy_strings, required, send};
use crate::oauth::token::{merged, str_field, time_ms};
use crate::oauth::{GrantCtx, RefreshError, TokenGrant};

const OAUTH_BASE: &str = "https://chat.qwen.ai";
const BASE_URL: &str = "https://portal.qwen.ai/v1";
const CLIENT_ID: &str = "f0304373b74a44d2b584a3fb70ca9e56";
pub const MODELS: &[&str] = &["qwen3-coder-plus", "qwen3-coder-flash"];

#[derive(Default)]
pub struct QwenGrant;

#[async_trait]
impl TokenGrant for QwenGrant {
    fn provider(&self) -> &'static str {
        "openai-qwen-oauth"
    }
    fn near_expiry(&self) -> Duration {
        Duration::from_secs(3 * 60)
    }
    fn expires_at_ms(&self, token: &Value) -> Option<i64> {
        // A device-flow file without `expiry_date` is treated as expired: the first use refreshes.
        Some(token.get("expiry_date").and_then(time_ms).unwrap_or(0))
    }
    fn access_token<'a>(&self, token: &'a Value) -> Option<&'a str> {
        str_field(token, &["access_token"])
    }

    async fn refresh(&self, ctx: &GrantCtx<'_>, token: &Value) -> Result<Value, RefreshError> {
        let rt =
            str_field(token, &["refresh_token"]).ok_or_else(|| RefreshError::Rejected("no refresh_token".into()))?;
        let base = ctx.settings.get_or(ctx.account, "QWEN_OAUTH_BASE_URL", OAUTH_BASE);
        let url = super::join_url(&base, "api/v1/oauth2/token");
        let form = [("grant_type", "refresh_token"), ("refresh_token", rt), ("client_id", CLIENT_ID)];
        let answer = send(ctx.http.post(url).form(&form).timeout(Duration::from_secs(30))).await?;
        let access = required(&answer, "access_token")?;
        let expires_in = answer.get("expires_in").and_then(Value::as_i64).unwrap_or(21600);
        let mut new = Map::new();
        new.insert("access_token".into(), access.into());
        new.insert("expiry_date".into(), (poolgate_store::time::epoch_ms() + expires_in * 1000).into());
        copy_strings(&answer, &["refresh_token", "token_type", "resource_url"], &mut new);
        Ok(merged(token, new))
    }
}

#[derive(Default)]
pub struct QwenProvider {
    grant: QwenGrant,
}

/// The API base for a token: `resource_url` (scheme added when absent) + `/v1`.
pub fn api_base(token: &Value, fallback: &str) -> String {
    match str_field(token, &["resource_url"]) {
        Some(r) => {
            let with_scheme = if r.contains("://") { r.to_string() } else { format!("https://{r}") };
            let trimmed = with_scheme.trim_end_matches('/');
            if trimmed.ends_with("/v1") {
                trimmed.to_string()
            } else {
                format!("{trimmed}/v1")
            }
        }
        None => fallback.to_string(),
    }
}

/// Qwen's body rules: a known model, and the `ext` tool Qwen Code always declares first.
pub fn qwen_body(mut body: Value, model: &str) -> Value {
    if let Some(o) = body.as_object_mut() {
        let model = if MODELS.contains(&model) || model.starts_with("qwen") { model } else { MODELS[0] };
        o.insert("model".into(), model.into());
        let mut tools = o.remove("tools").and_then(|t| t.as_array().cloned()).unwrap_or_default();
        tools.insert(0, json!({"type": "function", "function": {"name": "ext", "description": "", "parameters": {"type": "object", "properties": {}}}}));
        o.insert("tools".into(), Value::Array(tools));
    }
    body
}

#[async_trait]
impl Provider for QwenProvider {
    fn base_type(&self) -> &'static str {
        "openai-qwen-oauth"
    }
    fn backend(&self) -> Backend {
        Backend::Protocol(Protocol::OpenAiChat)
    }
    fn default_check_model(&self) -> &'static str {
        "qwen3-coder-flash"
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
        let fallback = ctx.settings().get_or(account, "QWEN_BASE_URL", BASE_URL);
        let base = api_base(&token.value, &fallback);
        let body = super::json_body(call)?;
        let body = super::to_body(&qwen_body(body, call.model))?;
        let ua = format!("QwenCode/0.2.1 ({}; {})", std::env::consts::OS, std::env::consts::ARCH);
        let rb = ctx
            .http
            .post(super::join_url(&base, "chat/completions"))
            .bearer_auth(&token.access)
            .header("content-type", "application/json")
            .header("accept", if call.stream { "text/event-stream" } else { "application/json" })
            .header("x-dashscope-cachecontrol", "enable")
            .header("x-dashscope-useragent", ua.as_str())
            .header("user-agent", ua.as_str())
            .header("x-dashscope-authtype", "qwen-oauth")
            .body(body);
        Ok(Prepared { builder: rb, access: Some(token.access.clone()), adapter: None })
    }

    fn classify(&self, status: u16, _body: &[u8]) -> FailureKind {
        match status {
            403 => FailureKind::Expired,
            s => super::oauth_classify(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_url_becomes_the_base() {
        assert_eq!(api_base(&json!({"resource_url": "portal.qwen.ai"}), "x"), "https://portal.qwen.ai/v1");
        assert_eq!(api_base(&json!({"resource_url": "http://127.0.0.1:9/qwen"}), "x"), "http://127.0.0.1:9/qwen/v1");
        assert_eq!(api_base(&json!({}), "http://f/v1"), "http://f/v1");
        let b = qwen_body(json!({"messages": [], "tools": [{"type": "function", "function": {"name": "t"}}]}), "gpt-x");
        assert_eq!(b["model"], "qwen3-coder-plus");
        assert_eq!(b["tools"][0]["function"]["name"], "ext");
        assert_eq!(b["tools"][1]["function"]["name"], "t");
    }
}
