//! API-key providers: `openai-custom`, `openaiResponses-custom`, `claude-custom`.

use async_trait::async_trait;

use super::{field, join_url, Prepared, Provider, ProviderCtx, ProviderError, UpstreamCall};
use crate::convert::images::ImageCall;
use crate::convert::{Backend, Protocol};
use poolgate_store::Account;

/// Anthropic API version sent when the client did not choose one.
const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Which upstream API an API-key provider calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKeyShape {
    OpenAiChat,
    OpenAiResponses,
    Anthropic,
}

pub struct ApiKeyProvider {
    base: &'static str,
    shape: ApiKeyShape,
}

impl ApiKeyProvider {
    pub fn new(base: &'static str, shape: ApiKeyShape) -> Self {
        Self { base, shape }
    }

    fn fields(&self) -> (&'static str, &'static str, &'static str) {
        match self.shape {
            ApiKeyShape::OpenAiChat | ApiKeyShape::OpenAiResponses => {
                ("OPENAI_API_KEY", "OPENAI_BASE_URL", "https://api.openai.com/v1")
            }
            ApiKeyShape::Anthropic => ("CLAUDE_API_KEY", "CLAUDE_BASE_URL", "https://api.anthropic.com/v1"),
        }
    }

    fn authed(
        &self,
        http: &reqwest::Client,
        method: reqwest::Method,
        account: &Account,
        path: &str,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let (key_field, url_field, default_url) = self.fields();
        let key = field(account, key_field).ok_or(ProviderError::MissingCredential(key_field))?;
        let base = field(account, url_field).unwrap_or(default_url);
        super::check_base_url(url_field, base)?;
        let url = reqwest::Url::parse(&join_url(base, path))
            .map_err(|e| ProviderError::BadUrl { field: url_field, detail: e.to_string() })?;
        let rb = http.request(method, url);
        Ok(match self.shape {
            ApiKeyShape::Anthropic => rb.header("x-api-key", key),
            _ => rb.bearer_auth(key),
        })
    }
}

impl ApiKeyProvider {
    /// `POST images/generations` (JSON, already converted) or `images/edits` (the client's form,
    /// rebuilt with the upstream model).
    fn images_request(
        &self,
        ctx: &ProviderCtx,
        account: &Account,
        call: &UpstreamCall<'_>,
        images: &ImageCall,
    ) -> Result<Prepared, ProviderError> {
        let path = if images.is_edit() { "images/edits" } else { "images/generations" };
        let rb = self.authed(&ctx.http, reqwest::Method::POST, account, path)?.header("accept", "application/json");
        if !images.is_edit() {
            return Ok(rb.header("content-type", "application/json").body(call.body.clone()).into());
        }
        let mut form = reqwest::multipart::Form::new();
        let edit = images.edit_form(call.model);
        for (k, v) in edit.fields {
            form = form.text(k, v);
        }
        for f in edit.files {
            let mut part = reqwest::multipart::Part::stream_with_length(f.data.clone(), f.data.len() as u64);
            if let Some(name) = f.filename {
                part = part.file_name(name);
            }
            if let Some(ct) = f.content_type {
                part = part.mime_str(&ct).map_err(|e| ProviderError::Upstream(format!("image content type: {e}")))?;
            }
            form = form.part(f.field, part);
        }
        Ok(rb.multipart(form).into())
    }
}

#[async_trait]
impl Provider for ApiKeyProvider {
    fn base_type(&self) -> &'static str {
        self.base
    }

    fn backend(&self) -> Backend {
        Backend::Protocol(match self.shape {
            ApiKeyShape::OpenAiChat => Protocol::OpenAiChat,
            ApiKeyShape::OpenAiResponses => Protocol::OpenAiResponses,
            ApiKeyShape::Anthropic => Protocol::Anthropic,
        })
    }

    fn images_api(&self) -> bool {
        self.shape != ApiKeyShape::Anthropic
    }

    fn default_check_model(&self) -> &'static str {
        match self.shape {
            ApiKeyShape::Anthropic => "claude-3-7-sonnet-20250219",
            _ => "gpt-4o-mini",
        }
    }

    async fn request(
        &self,
        ctx: &ProviderCtx,
        account: &Account,
        call: &UpstreamCall<'_>,
    ) -> Result<Prepared, ProviderError> {
        if let Some(images) = call.images.filter(|_| self.images_api()) {
            return self.images_request(ctx, account, call, images);
        }
        let path = match self.shape {
            ApiKeyShape::OpenAiChat => "chat/completions",
            ApiKeyShape::OpenAiResponses => "responses",
            ApiKeyShape::Anthropic => "messages",
        };
        let mut rb = self.authed(&ctx.http, reqwest::Method::POST, account, path)?;
        if self.shape == ApiKeyShape::Anthropic {
            let h = |n: &str| call.client_headers.get(n).and_then(|v| v.to_str().ok());
            rb = rb.header("anthropic-version", h("anthropic-version").unwrap_or(ANTHROPIC_VERSION));
            if let Some(beta) = h("anthropic-beta") {
                rb = rb.header("anthropic-beta", beta);
            }
        }
        let accept = if call.stream { "text/event-stream" } else { "application/json" };
        Ok(rb.header("content-type", "application/json").header("accept", accept).body(call.body.clone()).into())
    }

    fn list_models(&self, ctx: &ProviderCtx, account: &Account) -> Option<reqwest::RequestBuilder> {
        let rb = self.authed(&ctx.http, reqwest::Method::GET, account, "models").ok()?;
        Some(match self.shape {
            ApiKeyShape::Anthropic => rb.header("anthropic-version", ANTHROPIC_VERSION),
            _ => rb,
        })
    }
}
