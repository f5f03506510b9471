//! Google OAuth2 tokens (`gemini-cli-oauth`, `gemini-antigravity`): the `oauth_creds.json`
//! shape (`access_token`, `refresh_token`, `expiry_date` in ms, `token_type`) and the refresh
//! grant. Google refresh tokens do not rotate.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::oauth::grant::{copy_strings, required, send};
use crate::oauth::token::{merged, str_field, time_ms};
use crate::oauth::{GrantCtx, RefreshError, TokenGrant};

const TOKEN_URL: &str = "https://oauth2.googleapis.com/token";

/// One Google OAuth client (the public installed-app client of the CLI it imitates).
pub struct GoogleGrant {
    pub provider: &'static str,
    /// Setting naming the token endpoint (default Google's).
    pub token_url_setting: &'static str,
    pub client_id: &'static str,
    pub client_secret: &'static str,
    /// Settings overriding the client id / secret.
    pub client_settings: (&'static str, &'static str),
    pub inline: Option<&'static str>,
}

#[async_trait]
impl TokenGrant for GoogleGrant {
    fn provider(&self) -> &'static str {
        self.provider
    }
    fn near_expiry(&self) -> Duration {
        Duration::from_secs(5 * 60)
    }
    fn expires_at_ms(&self, token: &Value) -> Option<i64> {
        token.get("expiry_date").and_then(time_ms)
    }
    fn access_token<'a>(&self, token: &'a Value) -> Option<&'a str> {
        str_field(token, &["access_token"])
    }
    fn inline_field(&self) -> Option<&'static str> {
        self.inline
    }

    async fn refresh(&self, ctx: &GrantCtx<'_>, token: &Value) -> Result<Value, RefreshError> {
        let rt =
            str_field(token, &["refresh_token"]).ok_or_else(|| RefreshError::Rejected("no refresh_token".into()))?;
        let url = ctx.settings.get_or(ctx.account, self.token_url_setting, TOKEN_URL);
        let id = ctx.settings.get_or(ctx.account, self.client_settings.0, self.client_id);
        let secret = ctx.settings.get_or(ctx.account, self.client_settings.1, self.client_secret);
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", id.as_str()),
            ("client_secret", secret.as_str()),
        ];
        let rb = ctx.http.post(url).form(&form).timeout(Duration::from_secs(30));
        let answer = send(rb).await?;
        let access = required(&answer, "access_token")?;
        let expires_in = answer.get("expires_in").and_then(Value::as_i64).unwrap_or(3600);
        let mut new = Map::new();
        new.insert("access_token".into(), access.into());
        new.insert("expiry_date".into(), (poolgate_store::time::epoch_ms() + expires_in * 1000).into());
        copy_strings(&answer, &["refresh_token", "token_type", "scope", "id_token"], &mut new);
        Ok(merged(token, new))
    }
}
