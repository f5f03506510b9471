//! Kiro (`claude-kiro-oauth`) tokens: `kiro-auth-token.json` (`accessToken`, `refreshToken`,
//! `expiresAt` ISO, `authMethod`, `profileArn`, `region`, `idcRegion`, `clientId`,
//! `clientSecret`). Social accounts refresh at the Kiro desktop auth endpoint; every other
//! auth method (builder-id, IdC, absent) at the AWS OIDC token endpoint with the client's id
//! and secret. Refresh tokens rotate.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use crate::oauth::grant::{copy_strings, required, send};
use crate::oauth::token::{iso_in, merged, str_field, time_ms};
use crate::oauth::{GrantCtx, RefreshError, TokenGrant};

const SOCIAL_URL: &str = "https://prod.{{region}}.auth.desktop.kiro.dev/refreshToken";
const OIDC_URL: &str = "https://oidc.{{region}}.amazonaws.com/token";

#[derive(Default)]
pub struct KiroGrant;

/// The account's API region (`region`, default `us-east-1`).
pub fn region(token: &Value) -> &str {
    str_field(token, &["region"]).unwrap_or("us-east-1")
}

/// True for social (Google/GitHub) sign-ins; anything else refreshes through OIDC.
pub fn is_social(token: &Value) -> bool {
    token.get("authMethod").and_then(Value::as_str) == Some("social")
}

#[async_trait]
impl TokenGrant for KiroGrant {
    fn provider(&self) -> &'static str {
        "claude-kiro-oauth"
    }
    fn near_expiry(&self) -> Duration {
        Duration::from_secs(10 * 60)
    }
    fn expires_at_ms(&self, token: &Value) -> Option<i64> {
        token.get("expiresAt").and_then(time_ms)
    }
    fn access_token<'a>(&self, token: &'a Value) -> Option<&'a str> {
        str_field(token, &["accessToken"])
    }
    fn inline_field(&self) -> Option<&'static str> {
        Some("KIRO_OAUTH_CREDS_BASE64")
    }

    async fn refresh(&self, ctx: &GrantCtx<'_>, token: &Value) -> Result<Value, RefreshError> {
        let rt = str_field(token, &["refreshToken"]).ok_or_else(|| RefreshError::Rejected("no refreshToken".into()))?;
        let rb = if is_social(token) {
            let url = ctx.settings.get_or(ctx.account, "KIRO_REFRESH_URL", SOCIAL_URL).replacen(
                "{{region}}",
                region(token),
                1,
            );
            ctx.http.post(url).json(&json!({"refreshToken": rt}))
        } else {
            let idc = str_field(token, &["idcRegion"]).unwrap_or(region(token));
            let url = ctx.settings.get_or(ctx.account, "KIRO_REFRESH_IDC_URL", OIDC_URL).replacen("{{region}}", idc, 1);
            let body = json!({
                "refreshToken": rt,
                "clientId": str_field(token, &["clientId"]).unwrap_or_default(),
                "clientSecret": str_field(token, &["clientSecret"]).unwrap_or_default(),
                "grantType": "refresh_token",
            });
            ctx.http.post(url).json(&body).header("user-agent", "aws-sdk-js/3.738.0 KiroIDE")
        };
        let answer = send(rb.timeout(Duration::from_secs(15))).await?;
        let access = required(&answer, "accessToken")?;
        let expires_in = answer.get("expiresIn").and_then(Value::as_i64).unwrap_or(3600);
        let mut new = Map::new();
        new.insert("accessToken".into(), access.into());
        new.insert("expiresAt".into(), iso_in(expires_in * 1000).into());
        copy_strings(&answer, &["refreshToken", "profileArn"], &mut new);
        Ok(merged(token, new))
    }
}
