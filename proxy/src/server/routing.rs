//! Which provider type and model serve a request (reference-proxy.md §2.4): the default
//! `MODEL_PROVIDER`, then the `Model-Provider` header, then a `/{providerType}/…` path prefix,
//! then a `type:model` model name; then the plan of fallbacks (`providerFallbackChain`, same
//! protocol only, and `modelFallbackMapping`, any protocol, followed by its own chain).

use axum::http::HeaderMap;

use super::config::GatewayConfig;
use super::errors::ApiError;
use crate::convert::backend_for_provider;
use crate::providers::Registry;

/// One pool to try, with the model to ask it for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub pool: String,
    pub model: String,
}

/// Validates a provider type named by a client.
fn served(registry: &Registry, pool: &str) -> Result<(), ApiError> {
    if registry.get(pool).is_some() {
        return Ok(());
    }
    if Registry::is_known(pool) {
        return Err(ApiError::bad_request(format!("Provider {pool} is not available in this gateway")));
    }
    Err(ApiError::bad_request(format!("Unknown provider type {pool}")))
}

/// The provider type and model for a request.
pub fn choose(
    cfg: &GatewayConfig,
    registry: &Registry,
    headers: &HeaderMap,
    path_provider: Option<&str>,
    model: &str,
    known_pools: &[String],
) -> Result<(String, String), ApiError> {
    let mut pool = cfg.default_provider().to_string();
    if let Some(h) = headers.get("model-provider") {
        let h = h.to_str().map_err(|_| ApiError::bad_request("Model-Provider header is not text"))?.trim();
        served(registry, h)?;
        pool = h.to_string();
    }
    if let Some(p) = path_provider {
        served(registry, p)?;
        pool = p.to_string();
    }
    let mut model = model.to_string();
    if let Some((prefix, rest)) = model.split_once(':') {
        if !rest.is_empty() && (known_pools.iter().any(|k| k == prefix) || registry.get(prefix).is_some()) {
            served(registry, prefix)?;
            pool = prefix.to_string();
            model = rest.to_string();
        }
    }
    if pool == AUTO {
        return Err(ApiError::bad_request(format!(
            "MODEL_PROVIDER is auto: name the model as providerType:model (GET /v1/models lists them), not {model:?}"
        )));
    }
    served(registry, &pool)?;
    Ok((pool, model))
}

/// `MODEL_PROVIDER` value under which every request names its provider type (`type:model`).
pub const AUTO: &str = "auto";

/// The pools to try in order.
pub fn plan(cfg: &GatewayConfig, pool: &str, model: &str) -> Vec<Target> {
    let mut out = vec![Target { pool: pool.to_string(), model: model.to_string() }];
    chain(cfg, pool, model, &mut out);
    if let Some(fb) = cfg.model_fallback.get(model) {
        let t = Target { pool: fb.provider.clone(), model: fb.model.clone() };
        if !out.contains(&t) {
            out.push(t);
        }
        chain(cfg, &fb.provider, &fb.model, &mut out);
    }
    out
}

fn chain(cfg: &GatewayConfig, pool: &str, model: &str, out: &mut Vec<Target>) {
    let backend = backend_for_provider(pool);
    for next in cfg.fallback_chain.get(pool).into_iter().flatten() {
        let t = Target { pool: next.clone(), model: model.to_string() };
        if backend_for_provider(next) == backend && !out.contains(&t) {
            out.push(t);
        } else if backend_for_provider(next) != backend {
            tracing::debug!(from = %pool, to = %next, "fallback chain skips a type of another protocol");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg() -> GatewayConfig {
        GatewayConfig::from_value(
            json!({
                "MODEL_PROVIDER": "openai-custom",
                "providerFallbackChain": {"openai-custom": ["claude-custom", "openai-custom-2"], "claude-custom": ["claude-custom-b"]},
                "modelFallbackMapping": {"gpt-4o": {"targetProviderType": "claude-custom", "targetModel": "claude-x"}}
            }),
            |_| None,
        )
    }

    #[test]
    fn later_sources_override_earlier_ones() {
        let r = Registry::default();
        let c = cfg();
        let mut h = HeaderMap::new();
        assert_eq!(choose(&c, &r, &h, None, "m", &[]), Ok(("openai-custom".into(), "m".into())));
        h.insert("model-provider", "claude-custom".parse().expect("h"));
        assert_eq!(choose(&c, &r, &h, None, "m", &[]), Ok(("claude-custom".into(), "m".into())));
        assert_eq!(choose(&c, &r, &h, Some("forward-api"), "m", &[]), Ok(("forward-api".into(), "m".into())));
        assert_eq!(
            choose(&c, &r, &h, Some("forward-api"), "openaiResponses-custom:gpt-5", &[]),
            Ok(("openaiResponses-custom".into(), "gpt-5".into()))
        );
        assert_eq!(choose(&c, &r, &h, None, "weird:model", &[]), Ok(("claude-custom".into(), "weird:model".into())));
        assert_eq!(
            choose(&c, &r, &h, Some("claude-kiro-oauth"), "m", &[]),
            Ok(("claude-kiro-oauth".into(), "m".into())),
            "OAuth types are served"
        );
        let e = choose(&c, &r, &h, Some("nope"), "m", &[]).expect_err("unknown");
        assert!(e.message.contains("nope"));
    }

    #[test]
    fn plan_follows_chain_of_same_protocol_then_model_mapping() {
        let p = plan(&cfg(), "openai-custom", "gpt-4o");
        let pools: Vec<(&str, &str)> = p.iter().map(|t| (t.pool.as_str(), t.model.as_str())).collect();
        assert_eq!(
            pools,
            vec![
                ("openai-custom", "gpt-4o"),
                ("openai-custom-2", "gpt-4o"),
                ("claude-custom", "claude-x"),
                ("claude-custom-b", "claude-x")
            ]
        );
    }
}
