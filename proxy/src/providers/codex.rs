//! `openai-codex-oauth`: ChatGPT subscription accounts through the Codex backend
//! (`chatgpt.com/backend-api/codex/responses`). The upstream speaks the Responses API but
//! answers every call as SSE, wants `instructions`, `store:false` and the Codex CLI's headers,
//! and rotates single-use refresh tokens. The account id comes from the id token's
//! `https://api.openai.com/auth` claim.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use poolgate_store::Account;
use serde_json::{json, Map, Value};

use super::sse_rewrite::{EventMap, SseRewrite};
use super::{AdaptError, FailureKind, Prepared, Provider, ProviderCtx, ProviderError, ResponseAdapter, UpstreamCall};
use crate::convert::{Backend, Protocol};
use crate::oauth::grant::{copy_strings, required, send};
use crate::oauth::token::{iso_in, merged, str_field, time_ms};
use crate::oauth::{GrantCtx, RefreshError, TokenGrant};

const BASE_URL: &str = "https://chatgpt.com/backend-api/codex";
const TOKEN_URL: &str = "https://auth.openai.com/oauth/token";
const CLIENT_ID: &str = "app_EMoamEEZ73f0CkXaXp7hrann";
const USAGE_URL: &str = "https://chatgpt.com/backend-api/wham/usage";

pub const MODELS: &[&str] = &[
    "gpt-5",
    "gpt-5-codex",
    "gpt-5-codex-mini",
    "gpt-5.1",
    "gpt-5.1-codex",
    "gpt-5.1-codex-mini",
    "gpt-5.1-codex-max",
    "gpt-5.2",
    "gpt-5.2-codex",
];

#[derive(Default)]
pub struct CodexGrant;

/// The claims of a JWT, unverified (the token endpoint is trusted; only ids are read).
pub fn jwt_claims(jwt: &str) -> Option<Value> {
    use base64::Engine;
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn account_id(id_token: &str) -> Option<String> {
    let claims = jwt_claims(id_token)?;
    claims
        .pointer("/https:~1~1api.openai.com~1auth/chatgpt_account_id")
        .or_else(|| claims.get("sub"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

#[async_trait]
impl TokenGrant for CodexGrant {
    fn provider(&self) -> &'static str {
        "openai-codex-oauth"
    }
    fn near_expiry(&self) -> Duration {
        Duration::from_secs(5 * 60)
    }
    fn expires_at_ms(&self, token: &Value) -> Option<i64> {
        token.get("expired").or_else(|| token.get("expires_at")).and_then(time_ms)
    }
    fn access_token<'a>(&self, token: &'a Value) -> Option<&'a str> {
        str_field(token, &["access_token"])
    }
    fn legacy_types(&self) -> &'static [&'static str] {
        &["openai-codex"]
    }

    async fn refresh(&self, ctx: &GrantCtx<'_>, token: &Value) -> Result<Value, RefreshError> {
        let rt =
            str_field(token, &["refresh_token"]).ok_or_else(|| RefreshError::Rejected("no refresh_token".into()))?;
        let url = ctx.settings.get_or(ctx.account, "CODEX_OAUTH_TOKEN_URL", TOKEN_URL);
        let form = [("grant_type", "refresh_token"), ("client_id", CLIENT_ID), ("refresh_token", rt)];
        let answer = send(ctx.http.post(url).form(&form).timeout(Duration::from_secs(30))).await?;
        let access = required(&answer, "access_token")?;
        let expires_in = answer.get("expires_in").and_then(Value::as_i64).unwrap_or(3600);
        let mut new = Map::new();
        new.insert("access_token".into(), access.into());
        new.insert("expired".into(), iso_in(expires_in * 1000).into());
        new.insert("last_refresh".into(), poolgate_store::time::iso_now().into());
        copy_strings(&answer, &["refresh_token", "id_token"], &mut new);
        if let Some(id) = answer.get("id_token").and_then(Value::as_str) {
            if let Some(a) = account_id(id) {
                new.insert("account_id".into(), a.into());
            }
            if let Some(e) = jwt_claims(id).and_then(|c| c.get("email").cloned()) {
                new.insert("email".into(), e);
            }
        }
        Ok(merged(token, new))
    }
}

#[derive(Default)]
pub struct CodexProvider {
    grant: CodexGrant,
}

/// Rewrites a Responses request into what the Codex backend accepts.
pub fn codex_body(mut body: Value, model: &str) -> Value {
    let Some(o) = body.as_object_mut() else { return body };
    o.insert("model".into(), model.into());
    let instructions = o.get("instructions").and_then(Value::as_str).filter(|s| !s.is_empty());
    let instructions = instructions.unwrap_or("You are a helpful assistant.").to_string();
    o.insert("instructions".into(), instructions.into());
    if let Some(Value::String(s)) = o.get("input").cloned() {
        o.insert(
            "input".into(),
            json!([{"type": "message", "role": "user", "content": [{"type": "input_text", "text": s}]}]),
        );
    }
    o.insert("store".into(), false.into());
    o.insert("stream".into(), true.into());
    o.entry("parallel_tool_calls").or_insert(true.into());
    o.insert("include".into(), json!(["reasoning.encrypted_content"]));
    let effort = o.get("reasoning").and_then(|r| r.get("effort")).cloned().unwrap_or_else(|| "medium".into());
    o.insert("reasoning".into(), json!({"effort": effort, "summary": "auto"}));
    // The ChatGPT backend refuses these (the Codex CLI never sends them).
    for k in ["max_output_tokens", "temperature", "top_p", "user", "metadata", "previous_response_id"] {
        o.remove(k);
    }
    body
}

#[async_trait]
impl Provider for CodexProvider {
    fn base_type(&self) -> &'static str {
        "openai-codex-oauth"
    }
    fn backend(&self) -> Backend {
        Backend::Protocol(Protocol::OpenAiResponses)
    }
    fn default_check_model(&self) -> &'static str {
        "gpt-5-codex-mini"
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
        let base = ctx.settings().get_or(account, "CODEX_BASE_URL", BASE_URL);
        let body = super::json_body(call)?;
        let body = codex_body(body, call.model);
        let session = uuid::Uuid::new_v4().to_string();
        let mut rb = ctx
            .http
            .post(super::join_url(&base, "responses"))
            .bearer_auth(&token.access)
            .header("content-type", "application/json")
            .header("accept", "text/event-stream")
            .header("openai-beta", "responses=experimental")
            .header("version", "0.21.0")
            .header("originator", "codex_cli_rs")
            .header("user-agent", "codex_cli_rs/0.50.0")
            .header("conversation_id", &session)
            .header("session_id", &session);
        if let Some(id) = str_field(&token.value, &["account_id"]) {
            rb = rb.header("chatgpt-account-id", id);
        }
        let body = super::to_body(&body)?;
        Ok(Prepared {
            builder: rb.body(body),
            access: Some(token.access.clone()),
            adapter: Some(Box::new(CodexAnswer::default())),
        })
    }

    fn has_usage(&self) -> bool {
        true
    }

    async fn usage(&self, ctx: &ProviderCtx, pool: &str, account: &Account) -> Option<Result<Value, String>> {
        Some(self.quota(ctx, pool, account).await)
    }

    fn classify(&self, status: u16, _body: &[u8]) -> FailureKind {
        super::oauth_classify(status)
    }
}

impl CodexProvider {
    /// `GET …/wham/usage`: the 5-hour and weekly windows, as the original project shows them.
    async fn quota(&self, ctx: &ProviderCtx, pool: &str, account: &Account) -> Result<Value, String> {
        let token = ctx.token(pool, account, &self.grant, None).await.map_err(|e| e.to_string())?;
        let url = ctx.settings().get_or(account, "CODEX_USAGE_URL", USAGE_URL);
        let mut rb = ctx.http.get(url).bearer_auth(&token.access).timeout(Duration::from_secs(10));
        if let Some(id) = str_field(&token.value, &["account_id"]) {
            rb = rb.header("chatgpt-account-id", id);
        }
        let resp = rb.send().await.map_err(|e| crate::server::relay::error_chain(&e.without_url()))?;
        if !resp.status().is_success() {
            return Err(format!("usage endpoint answered HTTP {}", resp.status().as_u16()));
        }
        let v: Value = resp.json().await.map_err(|_| "usage answer is not JSON".to_string())?;
        let window = |name: &str, key: &str| {
            let w = v.pointer(&format!("/rate_limit/{key}"))?;
            let used = w.get("used_percent").and_then(Value::as_f64)?;
            let reset = w.get("reset_at").and_then(Value::as_i64);
            Some(json!({"resourceType": name, "currentUsage": used, "usageLimit": 100,
                        "remainingPercent": 100.0 - used, "resetTimeRaw": reset}))
        };
        let items: Vec<Value> =
            [window("PRIMARY_WINDOW", "primary_window"), window("SECONDARY_WINDOW", "secondary_window")]
                .into_iter()
                .flatten()
                .collect();
        Ok(json!({"lastUpdated": poolgate_store::time::epoch_ms(),
                  "subscription": {"title": v.get("plan_type").cloned().unwrap_or(Value::Null)},
                  "usageBreakdown": items}))
    }
}

/// Streams pass as they are; a unary call (always answered as SSE) is folded into one
/// Responses object from its events.
pub struct CodexAnswer {
    sse: SseRewrite<EventMap>,
}

impl Default for CodexAnswer {
    fn default() -> Self {
        Self { sse: SseRewrite::new(keep_event) }
    }
}

fn keep_event(_event: Option<&str>, data: &str) -> Option<String> {
    Some(data.to_string())
}

impl ResponseAdapter for CodexAnswer {
    fn push(&mut self, chunk: &[u8]) -> Result<Bytes, AdaptError> {
        Ok(self.sse.push(chunk))
    }
    fn finish(&mut self) -> Result<Bytes, AdaptError> {
        Ok(self.sse.finish())
    }
    fn unary(&mut self, body: &[u8]) -> Result<Bytes, AdaptError> {
        fold_sse(body).map(|v| Bytes::from(v.to_string()))
    }
}

/// Builds the final Responses object of an SSE answer: `response.completed`'s object, its
/// `output` filled from the items and text deltas when the event carries none.
pub fn fold_sse(body: &[u8]) -> Result<Value, AdaptError> {
    let bad = |m: &str| AdaptError { status: 502, message: format!("Codex answer: {m}") };
    let mut parser = crate::convert::sse::SseParser::new();
    let mut events = parser.push(body);
    events.extend(parser.finish());
    let (mut text, mut items, mut done) = (String::new(), Vec::new(), None);
    for ev in events {
        let Ok(v) = serde_json::from_str::<Value>(&ev.data) else { continue };
        match v.get("type").and_then(Value::as_str).unwrap_or_default() {
            "response.output_text.delta" => text.push_str(v.get("delta").and_then(Value::as_str).unwrap_or("")),
            "response.output_item.done" => items.extend(v.get("item").cloned()),
            "response.completed" | "response.incomplete" | "response.failed" => done = v.get("response").cloned(),
            "error" => return Err(bad(v.pointer("/error/message").and_then(Value::as_str).unwrap_or("error event"))),
            _ => {}
        }
    }
    let mut resp = done.ok_or_else(|| bad("the stream ended without response.completed"))?;
    let empty = resp.get("output").and_then(Value::as_array).is_none_or(Vec::is_empty);
    if empty {
        let has_message = items.iter().any(|i| i.get("type").and_then(Value::as_str) == Some("message"));
        if !text.is_empty() && !has_message {
            items.insert(
                0,
                json!({"type": "message", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": []}]}),
            );
        }
        resp["output"] = Value::Array(items);
    }
    resp["object"] = "response".into();
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unary_sse_is_folded() {
        let sse = concat!(
            "data: {\"type\":\"response.created\",\"response\":{\"id\":\"resp_1\"}}\n\n",
            "data: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n\n",
            "data: {\"type\":\"response.output_item.done\",\"item\":{\"type\":\"function_call\",\"call_id\":\"c1\",\"name\":\"f\",\"arguments\":\"{}\"}}\n\n",
            "data: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"status\":\"completed\",\"usage\":{\"input_tokens\":5,\"output_tokens\":2,\"total_tokens\":7}}}\n\n",
        );
        let v = fold_sse(sse.as_bytes()).unwrap_or_default();
        assert_eq!(v["output"][0]["content"][0]["text"], "Hi");
        assert_eq!(v["output"][1]["name"], "f");
        assert_eq!(v["usage"]["total_tokens"], 7);
        assert!(fold_sse(b"data: {\"type\":\"response.created\"}\n\n").is_err());
    }

    #[test]
    fn body_has_what_the_backend_needs() {
        let b = codex_body(json!({"model": "x", "input": "hi", "max_output_tokens": 5, "stream": false}), "gpt-5");
        assert_eq!(b["instructions"], "You are a helpful assistant.");
        assert_eq!((b["store"].clone(), b["stream"].clone()), (json!(false), json!(true)));
        assert!(b.get("max_output_tokens").is_none());
        assert_eq!(b["input"][0]["content"][0]["text"], "hi");
    }

    #[test]
    fn account_id_from_the_id_token() {
        use base64::Engine;
        let claims = json!({"email": "a@b", "https://api.openai.com/auth": {"chatgpt_account_id": "acct-1"}});
        let enc = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string());
        assert_eq!(account_id(&format!("h.{enc}.s")).as_deref(), Some("acct-1"));
        assert_eq!(account_id("garbage"), None);
    }
}
