//! `openai-iflow`: iFlow CLI accounts. The OAuth token is exchanged for an API key
//! (`getUserInfo`) after every refresh; requests carry that key and the original project's
//! HMAC-SHA256 request signature (`x-iflow-signature` over `UA:session-id:timestamp`).

use std::time::Duration;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use poolgate_store::Account;
use serde_json::{json, Map, Value};

use super::{FailureKind, Prepared, Provider, ProviderCtx, ProviderError, UpstreamCall};
use crate::convert::{Backend, Protocol};
use crate::oauth::grant::{copy_strings, required, send};
use crate::oauth::token::{merged, str_field, time_ms};
use crate::oauth::{GrantCtx, RefreshError, TokenGrant};

const OAUTH_BASE: &str = "https://iflow.cn";
const BASE_URL: &str = "https://apis.iflow.cn/v1";
const CLIENT_ID: &str = "10009311001";
const CLIENT_SECRET: &str = "4Z3YjXycVsQvyGF1etiNlIBB4RsqSDtW";
const USER_AGENT: &str = "iFlow-Cli";

pub const MODELS: &[&str] = &[
    "iflow-rome-30ba3b",
    "qwen3-coder-plus",
    "qwen3-max",
    "qwen3-vl-plus",
    "qwen3-max-preview",
    "qwen3-32b",
    "qwen3-235b-a22b-thinking-2507",
    "qwen3-235b-a22b-instruct",
    "qwen3-235b",
    "kimi-k2-0905",
    "kimi-k2",
    "glm-4.6",
    "glm-4.7",
    "deepseek-v3.2",
    "deepseek-r1",
    "deepseek-v3",
];

/// hex(HMAC-SHA256(key = api key, "<user agent>:<session id>:<timestamp ms>")).
pub fn signature(api_key: &str, user_agent: &str, session: &str, timestamp_ms: i64) -> String {
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(api_key.as_bytes()) else { return String::new() };
    mac.update(format!("{user_agent}:{session}:{timestamp_ms}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[derive(Default)]
pub struct IFlowGrant;

#[async_trait]
impl TokenGrant for IFlowGrant {
    fn provider(&self) -> &'static str {
        "openai-iflow"
    }
    fn near_expiry(&self) -> Duration {
        Duration::from_secs(24 * 3600)
    }
    fn expires_at_ms(&self, token: &Value) -> Option<i64> {
        token.get("expiry_date").or_else(|| token.get("expiryDate")).and_then(time_ms)
    }
    fn access_token<'a>(&self, token: &'a Value) -> Option<&'a str> {
        str_field(token, &["apiKey", "api_key"])
    }

    async fn refresh(&self, ctx: &GrantCtx<'_>, token: &Value) -> Result<Value, RefreshError> {
        let rt = str_field(token, &["refresh_token", "refreshToken"])
            .ok_or_else(|| RefreshError::Rejected("no refresh_token".into()))?;
        let base = ctx.settings.get_or(ctx.account, "IFLOW_OAUTH_BASE_URL", OAUTH_BASE);
        let id = ctx.settings.get_or(ctx.account, "IFLOW_OAUTH_CLIENT_ID", CLIENT_ID);
        let secret = ctx.settings.get_or(ctx.account, "IFLOW_OAUTH_CLIENT_SECRET", CLIENT_SECRET);
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", id.as_str()),
            ("client_secret", secret.as_str()),
        ];
        let rb = ctx
            .http
            .post(super::join_url(&base, "oauth/token"))
            .basic_auth(&id, Some(&secret))
            .form(&form)
            .timeout(Duration::from_secs(30));
        let answer = send(rb).await?;
        let access = required(&answer, "access_token")?;
        let info_url = super::join_url(&base, "api/oauth/getUserInfo");
        let info = send(ctx.http.get(info_url).query(&[("accessToken", access)]).timeout(Duration::from_secs(30)))
            .await
            .map_err(|e| RefreshError::Transient(format!("getUserInfo: {e}")))?;
        let Some(api_key) = info.pointer("/data/apiKey").and_then(Value::as_str).filter(|s| !s.is_empty()) else {
            return Err(RefreshError::Transient("getUserInfo answered without an apiKey".into()));
        };
        let expires_in = answer.get("expires_in").and_then(Value::as_i64).unwrap_or(3600);
        let mut new = Map::new();
        new.insert("access_token".into(), access.into());
        new.insert("expiry_date".into(), (poolgate_store::time::epoch_ms() + expires_in * 1000).into());
        new.insert("apiKey".into(), api_key.into());
        copy_strings(&answer, &["refresh_token", "token_type", "scope"], &mut new);
        let mut out = merged(token, new);
        if let Some(o) = out.as_object_mut() {
            // One spelling per field, the one iFlow's own CLI writes.
            for k in ["accessToken", "refreshToken", "expiryDate", "api_key"] {
                o.remove(k);
            }
        }
        Ok(out)
    }
}

#[derive(Default)]
pub struct IFlowProvider {
    grant: IFlowGrant,
}

/// iFlow's body rules: no OpenAI reasoning fields, GLM thinking switch, a no-op tool for an
/// empty tool list.
pub fn iflow_body(mut body: Value, model: &str) -> Value {
    if let Some(o) = body.as_object_mut() {
        o.insert("model".into(), model.into());
        let thinking = o.remove("reasoning_effort").is_some() | o.remove("thinking").is_some();
        if model.starts_with("glm-4") {
            o.insert("chat_template_kwargs".into(), json!({"enable_thinking": thinking, "clear_thinking": false}));
        }
        if o.get("tools").and_then(Value::as_array).is_some_and(Vec::is_empty) {
            o.insert("tools".into(), json!([{"type": "function", "function": {"name": "noop", "description": "No operation", "parameters": {"type": "object", "properties": {}}}}]));
        }
    }
    body
}

#[async_trait]
impl Provider for IFlowProvider {
    fn base_type(&self) -> &'static str {
        "openai-iflow"
    }
    fn backend(&self) -> Backend {
        Backend::Protocol(Protocol::OpenAiChat)
    }
    fn default_check_model(&self) -> &'static str {
        "qwen3-coder-plus"
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
        let base = ctx.settings().get_or(account, "IFLOW_BASE_URL", BASE_URL);
        let body = super::json_body(call)?;
        let body = super::to_body(&iflow_body(body, call.model))?;
        let session = format!("session-{}", uuid::Uuid::new_v4());
        let ts = poolgate_store::time::epoch_ms();
        let rb = ctx
            .http
            .post(super::join_url(&base, "chat/completions"))
            .bearer_auth(&token.access)
            .header("content-type", "application/json")
            .header("accept", if call.stream { "text/event-stream" } else { "application/json" })
            .header("user-agent", USER_AGENT)
            .header("session-id", &session)
            .header("x-iflow-timestamp", ts.to_string())
            .header("x-iflow-signature", signature(&token.access, USER_AGENT, &session, ts))
            .body(body);
        Ok(Prepared { builder: rb, access: Some(token.access.clone()), adapter: None })
    }

    fn classify(&self, status: u16, _body: &[u8]) -> FailureKind {
        super::oauth_classify(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_original_projects_vector() {
        let s = signature("sk-example-key", "iFlow-Cli", "session-00000000-0000-4000-8000-000000000000", 1767225600000);
        assert_eq!(s, "1c3a1291b25c617ed413e1932dbae41da42e1fffa8478ca2776728bd0d3a7503");
    }

    #[test]
    fn body_rules() {
        let b = iflow_body(json!({"reasoning_effort": "high", "tools": []}), "glm-4.6");
        assert_eq!(b["chat_template_kwargs"]["enable_thinking"], true);
        assert!(b.get("reasoning_effort").is_none());
        assert_eq!(b["tools"][0]["function"]["name"], "noop");
    }
}
