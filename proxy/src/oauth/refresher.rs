//! The background refresher: keeps near-expiry tokens fresh, brings back accounts marked
//! `needsRefresh`, and retries refused ones on the backoff schedule — each account handled by
//! one replica at a time (a store lease), cooling-down accounts included so they come back
//! with a live token.

use std::sync::Arc;
use std::time::Duration;

use poolgate_store::Account;
use serde_json::Value;

use super::engine::{retry_lease, TokenRequest};
use crate::server::AppState;

/// `CRON_NEAR_MINUTES` (default 15), `CRON_REFRESH_TOKEN` (default on; the reference's is
/// off, which leaves tokens to expire on the request path), `OAUTH_REFRESH_TICK_MS` (60 s).
struct Schedule {
    enabled: bool,
    window: Duration,
    tick: Duration,
}

fn schedule(state: &AppState) -> Schedule {
    let cfg = state.config();
    let s = crate::providers::Settings::new(&cfg.raw);
    let enabled = s.global("CRON_REFRESH_TOKEN").and_then(|v| poolgate_store::settings::parse_bool(&v)).unwrap_or(true);
    let minutes = s.global("CRON_NEAR_MINUTES").and_then(|v| v.parse::<u64>().ok()).unwrap_or(15);
    let tick = s.global("OAUTH_REFRESH_TICK_MS").and_then(|v| v.parse::<u64>().ok()).unwrap_or(60_000);
    Schedule { enabled, window: Duration::from_secs(minutes * 60), tick: Duration::from_millis(tick.max(100)) }
}

pub async fn run(state: Arc<AppState>) {
    loop {
        let sch = schedule(&state);
        tokio::time::sleep(sch.tick).await;
        round(&state, &sch).await;
    }
}

async fn round(state: &Arc<AppState>, sch: &Schedule) {
    let Ok(types) = state.store.list_pool_types().await else { return };
    for pool in types {
        let Some(provider) = state.providers.get(&pool).cloned() else { continue };
        if provider.grant().is_none() {
            continue;
        }
        let Ok(accounts) = state.store.get_pool(&pool).await else { continue };
        for account in accounts.iter().filter(|a| !a.is_disabled()) {
            upkeep(state, &pool, provider.as_ref(), account, sch).await;
        }
    }
}

async fn upkeep(
    state: &Arc<AppState>,
    pool: &str,
    provider: &dyn crate::providers::Provider,
    account: &Account,
    sch: &Schedule,
) {
    let Some(grant) = provider.grant() else { return };
    let uuid = account.uuid();
    let refused_before = account.get("refreshCount").and_then(Value::as_i64).unwrap_or(0);
    let (force, lease, ttl) = if account.needs_refresh() && refused_before > 0 {
        let next = state.tokens.options().backoff(refused_before + 1);
        (true, retry_lease(pool, uuid), next)
    } else if account.needs_refresh() {
        (true, format!("oauth-upkeep:{pool}:{uuid}"), sch.tick)
    } else if sch.enabled {
        (false, format!("oauth-upkeep:{pool}:{uuid}"), sch.tick)
    } else {
        return;
    };
    if !force && !near(state, pool, account, grant, sch.window).await {
        return;
    }
    match state.store.try_lease(&lease, &state.replica_id, ttl).await {
        Ok(true) => {}
        _ => return,
    }
    let cfg = state.config();
    let settings = crate::providers::Settings::new(&cfg.raw);
    let http = state.outbound.client_for(&cfg.raw, pool, account);
    let req = TokenRequest { pool, account, grant, settings: &settings, http: Some(&http) };
    match state.tokens.keep_fresh(&req, sch.window, force).await {
        Ok(true) => tracing::debug!(%pool, %uuid, "background token refresh done"),
        Ok(false) => {}
        Err(e) => tracing::debug!(%pool, %uuid, error = %e, "background token refresh failed"),
    }
}

async fn near(
    state: &AppState,
    pool: &str,
    account: &Account,
    grant: &dyn super::TokenGrant,
    window: Duration,
) -> bool {
    match state.store.get_token(pool, account.uuid()).await {
        Ok(Some(t)) => {
            grant.expires_at_ms(&t).is_some_and(|e| e <= poolgate_store::time::epoch_ms() + window.as_millis() as i64)
        }
        _ => false,
    }
}
