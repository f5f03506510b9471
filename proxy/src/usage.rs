//! Per-account quota (US7): each OAuth provider's usage endpoint, queried on demand
//! (`GET /api/usage?refresh=true`) and on a timer by one replica at a time, written to the
//! store's usage cache in the reference's shape so every replica serves the same numbers.

use std::sync::Arc;
use std::time::Duration;

use poolgate_store::Account;
use serde_json::{json, Map, Value};

use crate::server::AppState;

/// How long one account's usage query may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Queries every account of every pool whose provider has a usage endpoint (only `only`,
/// when given), stores the result as the usage cache and returns it.
pub async fn refresh(state: &Arc<AppState>, only: Option<&str>) -> Result<Value, String> {
    let types = state.store.list_pool_types().await.map_err(|e| e.to_string())?;
    let mut providers = match state.store.get_usage_cache().await {
        Ok(Some(Value::Object(c))) => c.get("providers").and_then(Value::as_object).cloned().unwrap_or_default(),
        _ => Map::new(),
    };
    for pool in types.iter().filter(|t| only.is_none_or(|o| o == t.as_str())) {
        let Some(provider) = state.providers.get(pool).cloned() else { continue };
        if !provider.has_usage() {
            continue;
        }
        let accounts = state.store.get_pool(pool).await.map_err(|e| e.to_string())?;
        let mut instances = Vec::new();
        for a in &accounts {
            instances.push(instance(state, pool, provider.as_ref(), a).await);
        }
        let ok = instances.iter().filter(|i| i["success"] == true).count();
        providers.insert(
            pool.clone(),
            json!({"providerType": pool, "instances": instances, "totalCount": accounts.len(),
                   "successCount": ok, "errorCount": accounts.len() - ok}),
        );
    }
    let cache = json!({"timestamp": poolgate_store::time::iso_now(), "providers": providers});
    state.store.set_usage_cache(&cache).await.map_err(|e| e.to_string())?;
    Ok(cache)
}

async fn instance(state: &Arc<AppState>, pool: &str, provider: &dyn crate::providers::Provider, a: &Account) -> Value {
    let mut out = json!({"uuid": a.uuid(), "name": a.custom_name().unwrap_or(a.uuid()),
                         "isHealthy": a.is_healthy(), "isDisabled": a.is_disabled()});
    let result = if a.is_disabled() {
        Err("account is disabled".to_string())
    } else {
        let ctx = state.provider_ctx(pool, a);
        match tokio::time::timeout(QUERY_TIMEOUT, provider.usage(&ctx, pool, a)).await {
            Ok(Some(r)) => r,
            Ok(None) => Err("no usage endpoint".into()),
            Err(_) => Err("usage query timed out".into()),
        }
    };
    match result {
        Ok(u) => {
            out["success"] = true.into();
            out["usage"] = u;
        }
        Err(e) => {
            out["success"] = false.into();
            out["error"] = e.into();
        }
    }
    out
}

/// Re-queries usage every `USAGE_REFRESH_INTERVAL_MS` (default 10 min) on one replica.
pub async fn run(state: Arc<AppState>) {
    loop {
        let cfg = state.config();
        let every = crate::providers::Settings::new(&cfg.raw)
            .global("USAGE_REFRESH_INTERVAL_MS")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(600_000)
            .max(1000);
        tokio::time::sleep(Duration::from_millis(every)).await;
        let leased = state.store.try_lease("usage-refresh", &state.replica_id, Duration::from_millis(every)).await;
        if leased.unwrap_or(false) {
            if let Err(e) = refresh(&state, None).await {
                tracing::warn!(error = %e, "usage refresh failed");
            }
        }
    }
}

/// One usage item per model from `(model, remaining fraction, reset time)`, as the reference
/// shows Gemini quotas.
pub fn model_breakdown(models: Vec<(String, f64, Option<String>)>) -> Value {
    let items: Vec<Value> = models
        .into_iter()
        .map(|(model, remaining, reset)| {
            let used = ((1.0 - remaining.clamp(0.0, 1.0)) * 10_000.0).round() / 100.0;
            json!({"resourceType": "MODEL_USAGE", "displayName": model, "currentUsage": used, "usageLimit": 100,
                   "remaining": remaining, "remainingPercent": (remaining * 10_000.0).round() / 100.0,
                   "resetTime": reset.as_deref().map(beijing_short), "resetTimeRaw": reset})
        })
        .collect();
    json!({"lastUpdated": poolgate_store::time::epoch_ms(), "usageBreakdown": items})
}

/// `MM-DD HH:mm` in Beijing time (UTC+8), the reference's display form.
fn beijing_short(iso: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(iso)
        .map(|t| (t.with_timezone(&chrono::Utc) + chrono::Duration::hours(8)).format("%m-%d %H:%M").to_string())
        .unwrap_or_else(|_| iso.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breakdown_in_the_references_shape() {
        let v = model_breakdown(vec![("gemini-2.5-flash".into(), 0.75, Some("2026-12-03T00:00:00Z".into()))]);
        let i = &v["usageBreakdown"][0];
        assert_eq!((i["currentUsage"].clone(), i["remainingPercent"].clone()), (json!(25.0), json!(75.0)));
        assert_eq!(i["resetTime"], "12-03 08:00");
    }
}
