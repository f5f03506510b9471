//! The refresh engine: one valid access token per account, and one refresh per expiry across
//! every replica.
//!
//! Tokens are kept in memory, so a valid token costs no store round trip. A token near expiry
//! (or one the upstream refused) is refreshed under two locks: an in-process mutex, so a
//! replica's concurrent requests wait for one flight, and the store's refresh lock (owner id,
//! expiry, renewed while the call runs), so replicas wait for each other. Waiters watch the
//! store for the winner's token (pub/sub, with polling as the safety net) instead of calling
//! the token endpoint. The winner re-reads the stored token past every cache, sends its
//! refresh token, and writes the answer with `cas_token` on the refresh token it sent, so an
//! older token can never overwrite a newer one.
//!
//! Each refresh token is marked as sent (a store lease named after its hash) before it goes
//! out. A holder that finds the mark taken knows an earlier holder sent it and stopped (killed
//! mid-refresh): it waits for that holder's write, then tries once, and a refusal is reported
//! as a probably consumed token instead of being retried forever.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use poolgate_store::{Account, AccountOps, CasOutcome, Storage, StoreError};
use serde_json::Value;

use super::grant::{GrantCtx, RefreshError, TokenGrant};
use crate::providers::Settings;

/// What `lastErrorMessage` starts with when a refresh failed (so a later success clears it).
pub const REFRESH_ERROR_PREFIX: &str = "token refresh failed: ";

/// A usable token of one account.
#[derive(Debug)]
pub struct Token {
    /// The provider-native token JSON as stored.
    pub value: Value,
    /// The credential sent upstream.
    pub access: String,
    pub expires_ms: Option<i64>,
    refresh: Option<String>,
}

impl Token {
    fn parse(grant: &dyn TokenGrant, pool: &str, value: Value) -> Option<Self> {
        let access = grant.access_token(&value)?.to_string();
        let expires_ms = grant.expires_at_ms(&value);
        let refresh = poolgate_store::provider::refresh_token_of(pool, &value).map(str::to_string);
        Some(Self { value, access, expires_ms, refresh })
    }

    fn near(&self, window: Duration, now_ms: i64) -> bool {
        self.expires_ms.is_some_and(|e| e <= now_ms + window.as_millis() as i64)
    }

    /// Still valid when used now, and not the one the upstream just refused.
    fn good(&self, window: Duration, refused: Option<&str>) -> bool {
        !self.near(window, poolgate_store::time::epoch_ms()) && refused != Some(self.access.as_str())
    }
}

/// Why no token could be handed out.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    #[error("account has no OAuth token stored")]
    Missing,
    #[error("{0}")]
    Rejected(String),
    #[error("token refresh unavailable: {0}")]
    Unavailable(String),
    #[error("account was deleted")]
    Gone,
}

/// How long a refresh waits for Redis to come back (a Sentinel failover takes seconds) when no
/// token is in memory to serve meanwhile.
const OUTAGE_WAIT: Duration = Duration::from_secs(10);

/// Timings (configurable so tests can make a dead holder's lock expire quickly).
#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub lock_ttl: Duration,
    pub poll: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            lock_ttl: Duration::from_secs(30),
            poll: Duration::from_millis(100),
            backoff_base: Duration::from_secs(30),
            backoff_max: Duration::from_secs(900),
        }
    }
}

impl EngineOptions {
    /// Reads `OAUTH_REFRESH_LOCK_MS`, `OAUTH_REFRESH_POLL_MS`, `OAUTH_REFRESH_BACKOFF_MS` and
    /// `OAUTH_REFRESH_BACKOFF_MAX_MS` from `get` (config or environment).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let d = Self::default();
        let ms = |k: &str, dflt: Duration| {
            get(k).and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_millis).unwrap_or(dflt)
        };
        Self {
            lock_ttl: ms("OAUTH_REFRESH_LOCK_MS", d.lock_ttl).max(Duration::from_millis(200)),
            poll: ms("OAUTH_REFRESH_POLL_MS", d.poll).max(Duration::from_millis(10)),
            backoff_base: ms("OAUTH_REFRESH_BACKOFF_MS", d.backoff_base),
            backoff_max: ms("OAUTH_REFRESH_BACKOFF_MAX_MS", d.backoff_max),
        }
    }

    /// Wait before refresh attempt number `step` (1-based) after refusals.
    pub fn backoff(&self, step: i64) -> Duration {
        let exp = u32::try_from(step.saturating_sub(1).clamp(0, 16)).unwrap_or(16);
        self.backoff_base.saturating_mul(1 << exp).min(self.backoff_max)
    }
}

/// Per-account state in this process.
#[derive(Default)]
struct Slot {
    current: Mutex<Option<Arc<Token>>>,
    flight: tokio::sync::Mutex<()>,
    /// Until when this process does not call the token endpoint again after a refusal.
    refused_until: Mutex<Option<(Instant, String)>>,
    /// Refresh tokens this process sent (a taken "sent" mark of ours is no dead holder's).
    sent: Mutex<Vec<String>>,
}

impl Slot {
    fn get(&self) -> Option<Arc<Token>> {
        self.current.lock().clone()
    }
    fn set(&self, t: Arc<Token>) -> Arc<Token> {
        *self.current.lock() = Some(t.clone());
        t
    }
}

/// Counters for metrics and tests.
#[derive(Debug, Default)]
pub struct EngineStats {
    pub refreshes: AtomicU64,
    pub adopted: AtomicU64,
    pub refused: AtomicU64,
}

/// The refresh engine shared by every OAuth provider of one replica.
pub struct TokenEngine {
    store: Arc<dyn Storage>,
    http: reqwest::Client,
    owner: String,
    opts: EngineOptions,
    slots: Mutex<HashMap<(String, String), Arc<Slot>>>,
    pub stats: EngineStats,
}

/// One account's token request.
pub struct TokenRequest<'a> {
    pub pool: &'a str,
    pub account: &'a Account,
    pub grant: &'a dyn TokenGrant,
    pub settings: &'a Settings<'a>,
    /// The client the token endpoint is called with (the account's outbound proxy, if any);
    /// `None`: the engine's own.
    pub http: Option<&'a reqwest::Client>,
}

impl TokenRequest<'_> {
    fn uuid(&self) -> &str {
        self.account.uuid()
    }
}

impl TokenEngine {
    pub fn new(store: Arc<dyn Storage>, http: reqwest::Client, owner: String, opts: EngineOptions) -> Self {
        Self { store, http, owner, opts, slots: Mutex::default(), stats: EngineStats::default() }
    }

    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    fn slot(&self, pool: &str, uuid: &str) -> Arc<Slot> {
        self.slots.lock().entry((pool.to_string(), uuid.to_string())).or_default().clone()
    }

    /// A valid token for the account: from memory while it is valid (no store round trip),
    /// else loaded or refreshed.
    pub async fn access(&self, req: &TokenRequest<'_>) -> Result<Arc<Token>, TokenError> {
        let slot = self.slot(req.pool, req.uuid());
        let window = req.grant.near_expiry();
        if let Some(t) = slot.get().filter(|t| t.good(window, None)) {
            return Ok(t);
        }
        self.ensure(&slot, req, window, None, false).await
    }

    /// A token other than `refused`, which the upstream just rejected: someone else's newer
    /// token when there is one, else a refresh.
    pub async fn after_rejection(&self, req: &TokenRequest<'_>, refused: &str) -> Result<Arc<Token>, TokenError> {
        let slot = self.slot(req.pool, req.uuid());
        self.ensure(&slot, req, req.grant.near_expiry(), Some(refused), false).await
    }

    /// Background upkeep: refreshes when the token expires within `window` (or `force`).
    /// Returns whether the token endpoint was called by this replica.
    pub async fn keep_fresh(&self, req: &TokenRequest<'_>, window: Duration, force: bool) -> Result<bool, TokenError> {
        let slot = self.slot(req.pool, req.uuid());
        let before = self.stats.refreshes.load(Ordering::Relaxed);
        let refused = if force {
            match self.load(req, false).await? {
                Some(t) => Some(t.access.clone()),
                None => return Err(TokenError::Missing),
            }
        } else {
            None
        };
        if force {
            slot.refused_until.lock().take();
        }
        self.ensure(&slot, req, window.max(req.grant.near_expiry()), refused.as_deref(), force).await?;
        Ok(self.stats.refreshes.load(Ordering::Relaxed) != before)
    }

    async fn ensure(
        &self,
        slot: &Slot,
        req: &TokenRequest<'_>,
        window: Duration,
        refused: Option<&str>,
        retry: bool,
    ) -> Result<Arc<Token>, TokenError> {
        let _flight = slot.flight.lock().await;
        if let Some(t) = slot.get().filter(|t| t.good(window, refused)) {
            return Ok(t);
        }
        if let Some((until, why)) = slot.refused_until.lock().clone() {
            if Instant::now() < until {
                return Err(TokenError::Rejected(why));
            }
        }
        if let Some(t) = self.load(req, false).await? {
            if t.good(window, refused) {
                return Ok(slot.set(t));
            }
        }
        self.refresh_fleet(slot, req, window, refused, retry).await
    }

    /// The refusal another replica recorded for this account (only background retries, on
    /// their backoff step, call the token endpoint again).
    async fn recorded_refusal(&self, req: &TokenRequest<'_>) -> Option<String> {
        let a = self.store.get_account(req.pool, req.uuid()).await.ok()?;
        let m = a.last_error_message().filter(|m| m.starts_with(REFRESH_ERROR_PREFIX))?;
        a.needs_refresh().then(|| m.to_string())
    }

    /// The stored token (`fresh`: past every cache), also from the reference's other places.
    async fn load(&self, req: &TokenRequest<'_>, fresh: bool) -> Result<Option<Arc<Token>>, TokenError> {
        let (pool, uuid) = (req.pool, req.uuid());
        let read = if fresh { self.store.load_token(pool, uuid).await } else { self.store.get_token(pool, uuid).await };
        let value = match read.map_err(store_error)? {
            Some(v) => v,
            None => match self.adopt_elsewhere(req).await? {
                Some(v) => v,
                None => return Ok(None),
            },
        };
        Ok(Token::parse(req.grant, pool, value).map(Arc::new))
    }

    /// A token the reference kept elsewhere — under another token type, or inline base64 —
    /// moved to the canonical key.
    async fn adopt_elsewhere(&self, req: &TokenRequest<'_>) -> Result<Option<Value>, TokenError> {
        let (pool, uuid) = (req.pool, req.uuid());
        for legacy in req.grant.legacy_types() {
            if let Some(v) = self.store.load_token(legacy, uuid).await.map_err(store_error)? {
                self.store.set_token(pool, uuid, &v).await.map_err(store_error)?;
                let _ = self.store.delete_token(legacy, uuid).await;
                tracing::info!(%pool, %uuid, from = %legacy, "moved an OAuth token to its canonical key");
                return Ok(Some(v));
            }
        }
        let Some(field) = req.grant.inline_field() else { return Ok(None) };
        let Some(b64) = req.settings.get(req.account, field) else { return Ok(None) };
        use base64::Engine;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .filter(Value::is_object);
        let Some(v) = decoded else {
            tracing::warn!(%pool, %uuid, field, "inline OAuth token is not base64 JSON; ignored");
            return Ok(None);
        };
        self.store.set_token(pool, uuid, &v).await.map_err(store_error)?;
        Ok(Some(v))
    }

    async fn refresh_fleet(
        &self,
        slot: &Slot,
        req: &TokenRequest<'_>,
        window: Duration,
        refused: Option<&str>,
        retry: bool,
    ) -> Result<Arc<Token>, TokenError> {
        let (pool, uuid) = (req.pool, req.uuid());
        let started = Instant::now();
        let give_up = started + self.opts.lock_ttl * 3 + Duration::from_secs(5);
        let mut changes = self.store.watch_tokens();
        loop {
            match self.store.acquire_refresh_lock(pool, uuid, &self.owner, self.opts.lock_ttl).await {
                Ok(true) => {
                    let out = self.refresh_locked(slot, req, window, refused, retry).await;
                    if let Err(e) = self.store.release_refresh_lock(pool, uuid, &self.owner).await {
                        tracing::debug!(%pool, %uuid, error = %e, "refresh lock release failed (it expires)");
                    }
                    return out;
                }
                Ok(false) => {}
                Err(e) if e.is_unavailable() => {
                    // Redis is away, or failing over: the token in memory serves while valid;
                    // else wait a little for the new master (no refresh without the lock).
                    let now = poolgate_store::time::epoch_ms();
                    let serves = slot.get().is_some_and(|t| t.expires_ms.is_none_or(|x| x > now));
                    if serves || started.elapsed() > OUTAGE_WAIT {
                        return self.outage_token(slot, e);
                    }
                    tokio::time::sleep(self.opts.poll).await;
                    continue;
                }
                Err(e) => return Err(store_error(e)),
            }
            // Another replica is refreshing: wait for its token.
            wait_change(&mut changes, pool, uuid, self.opts.poll).await;
            match self.load(req, true).await {
                Ok(Some(t)) if t.good(window, refused) => {
                    self.stats.adopted.fetch_add(1, Ordering::Relaxed);
                    return Ok(slot.set(t));
                }
                Ok(_) | Err(TokenError::Unavailable(_)) => {}
                Err(e) => return Err(e),
            }
            if !retry {
                if let Some(why) = self.recorded_refusal(req).await {
                    return Err(TokenError::Rejected(why));
                }
            }
            if Instant::now() > give_up {
                return Err(TokenError::Unavailable("timed out waiting for another replica's token refresh".into()));
            }
        }
    }

    /// Redis is down: the token in memory serves until it really expires; none is refreshed
    /// without the fleet lock.
    fn outage_token(&self, slot: &Slot, e: StoreError) -> Result<Arc<Token>, TokenError> {
        let now = poolgate_store::time::epoch_ms();
        match slot.get() {
            Some(t) if t.expires_ms.is_none_or(|x| x > now) => Ok(t),
            _ => Err(store_error(e)),
        }
    }

    async fn refresh_locked(
        &self,
        slot: &Slot,
        req: &TokenRequest<'_>,
        window: Duration,
        refused: Option<&str>,
        retry: bool,
    ) -> Result<Arc<Token>, TokenError> {
        let (pool, uuid) = (req.pool, req.uuid());
        let Some(mut current) = self.load(req, true).await? else { return Err(TokenError::Missing) };
        if current.good(window, refused) {
            self.stats.adopted.fetch_add(1, Ordering::Relaxed);
            return Ok(slot.set(current));
        }
        if !retry {
            if let Some(why) = self.recorded_refusal(req).await {
                return Err(TokenError::Rejected(why));
            }
        }
        let mut suspect = false;
        if let Some(rt) = current.refresh.clone().filter(|_| !retry) {
            // The mark names this refresh token *and* the access token it replaces, so a
            // non-rotating refresh token gets a new mark every expiry.
            let mark = format!("{rt}\n{}", current.access);
            if !self.mark_sent(slot, pool, uuid, &mark).await? {
                // An earlier holder sent this refresh token and never wrote the answer: give its
                // write a last chance, then try once and report a refusal as a probable reuse.
                if let Some(t) = self.wait_for_other_writer(req, &rt).await? {
                    if t.good(window, refused) {
                        return Ok(slot.set(t));
                    }
                    current = t;
                } else {
                    suspect = true;
                }
            }
        }
        let Some(rt) = current.refresh.clone() else {
            return Err(self.refused(slot, req, "the stored token has no refresh token; sign in again".into()).await);
        };
        let renew = self.renew_while_running(pool, uuid);
        let ctx = GrantCtx { http: req.http.unwrap_or(&self.http), account: req.account, settings: req.settings };
        self.stats.refreshes.fetch_add(1, Ordering::Relaxed);
        let answer = req.grant.refresh(&ctx, &current.value).await;
        renew.abort();
        match answer {
            Ok(value) => self.store_refreshed(slot, req, &rt, value).await,
            Err(RefreshError::Rejected(m)) => {
                let why = if suspect {
                    format!("{m} (this refresh token was probably consumed by a replica that stopped mid-refresh; sign in again)")
                } else {
                    m
                };
                Err(self.refused(slot, req, why).await)
            }
            Err(RefreshError::Transient(m)) => {
                tracing::warn!(%pool, %uuid, error = %m, "token refresh failed; will retry");
                Err(TokenError::Unavailable(m))
            }
        }
    }

    /// Marks a refresh as sent; false when someone else's mark is live.
    /// Fails when the mark cannot be recorded (durably): no refresh token is sent unfenced.
    async fn mark_sent(&self, slot: &Slot, pool: &str, uuid: &str, mark: &str) -> Result<bool, TokenError> {
        let ours = slot.sent.lock().iter().any(|s| s == mark);
        let name = format!("oauth-sent:{pool}:{uuid}:{}", short_hash(mark));
        let fresh = self.store.try_lease(&name, &self.owner, Duration::from_secs(86_400)).await.map_err(store_error)?;
        let mut sent = slot.sent.lock();
        sent.push(mark.to_string());
        if sent.len() > 8 {
            sent.remove(0);
        }
        Ok(fresh || ours)
    }

    /// Polls for a token newer than `rt` for up to one lock period.
    async fn wait_for_other_writer(&self, req: &TokenRequest<'_>, rt: &str) -> Result<Option<Arc<Token>>, TokenError> {
        let until = Instant::now() + self.opts.lock_ttl;
        while Instant::now() < until {
            tokio::time::sleep(self.opts.poll).await;
            if let Some(t) = self.load(req, true).await? {
                if t.refresh.as_deref() != Some(rt) {
                    return Ok(Some(t));
                }
            }
            // The earlier holder was refused, not killed: its refusal stands.
            if let Some(why) = self.recorded_refusal(req).await {
                return Err(TokenError::Rejected(why));
            }
        }
        Ok(None)
    }

    fn renew_while_running(&self, pool: &str, uuid: &str) -> tokio::task::JoinHandle<()> {
        let (store, owner, ttl) = (self.store.clone(), self.owner.clone(), self.opts.lock_ttl);
        let (pool, uuid) = (pool.to_string(), uuid.to_string());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(ttl / 3).await;
                match store.renew_refresh_lock(&pool, &uuid, &owner, ttl).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(%pool, %uuid, "refresh lock lost while refreshing");
                        return;
                    }
                    Err(e) => tracing::debug!(%pool, %uuid, error = %e, "refresh lock renewal failed"),
                }
            }
        })
    }

    async fn store_refreshed(
        &self,
        slot: &Slot,
        req: &TokenRequest<'_>,
        sent_rt: &str,
        value: Value,
    ) -> Result<Arc<Token>, TokenError> {
        let (pool, uuid) = (req.pool, req.uuid());
        let Some(token) = Token::parse(req.grant, pool, value.clone()).map(Arc::new) else {
            return Err(TokenError::Unavailable("token endpoint answered without an access token".into()));
        };
        match self.store.cas_token(pool, uuid, sent_rt, &value).await {
            Ok(CasOutcome::Updated) => {
                tracing::info!(%pool, %uuid, provider = req.grant.provider(), "OAuth token refreshed");
                slot.refused_until.lock().take();
                self.clear_refresh_state(pool, req.account).await;
                Ok(slot.set(token))
            }
            Ok(CasOutcome::Conflict { current }) => {
                tracing::warn!(%pool, %uuid, "another writer stored a token first; using theirs");
                let theirs = Token::parse(req.grant, pool, current).map(Arc::new).ok_or(TokenError::Missing)?;
                Ok(slot.set(theirs))
            }
            Err(StoreError::NotFound { .. }) => Err(TokenError::Gone),
            Err(e) => {
                // The new token exists only here: keep serving it and write it when the store
                // is back (the CAS still guards against an older one).
                tracing::warn!(%pool, %uuid, error = %e, "refreshed token not stored yet; retrying in the background");
                self.spawn_pending_write(pool, uuid, sent_rt, value);
                Ok(slot.set(token))
            }
        }
    }

    fn spawn_pending_write(&self, pool: &str, uuid: &str, sent_rt: &str, value: Value) {
        let store = self.store.clone();
        let (pool, uuid, rt) = (pool.to_string(), uuid.to_string(), sent_rt.to_string());
        tokio::spawn(async move {
            let until = Instant::now() + Duration::from_secs(3600);
            while Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(500)).await;
                match store.cas_token(&pool, &uuid, &rt, &value).await {
                    Ok(CasOutcome::Updated) => {
                        tracing::info!(%pool, %uuid, "refreshed token stored after the outage");
                        return;
                    }
                    Ok(CasOutcome::Conflict { .. }) | Err(StoreError::NotFound { .. }) => return,
                    Err(_) => {}
                }
            }
        });
    }

    async fn clear_refresh_state(&self, pool: &str, account: &Account) {
        let failed = account.last_error_message().is_some_and(|m| m.starts_with(REFRESH_ERROR_PREFIX));
        let count = account.get("refreshCount").and_then(Value::as_i64).unwrap_or(0);
        if !account.needs_refresh() && !failed && count == 0 {
            return;
        }
        let mut ops = AccountOps::default().set("needsRefresh", false).set("refreshCount", 0);
        if failed {
            ops = ops.set("isHealthy", true).set("lastErrorMessage", Value::Null).set("errorCount", 0);
        }
        if let Err(e) = self.store.update_account(pool, account.uuid(), ops).await {
            tracing::warn!(%pool, uuid = %account.uuid(), error = %e, "could not clear the refresh state");
        }
    }

    /// Records a refused refresh: the account needs a new sign-in; retries back off, fleet-wide.
    async fn refused(&self, slot: &Slot, req: &TokenRequest<'_>, why: String) -> TokenError {
        let (pool, uuid) = (req.pool, req.uuid());
        self.stats.refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%pool, %uuid, reason = %why, "OAuth refresh refused; account needs a new sign-in");
        let message = format!("{REFRESH_ERROR_PREFIX}{why}");
        // The retry lease is taken before the refusal becomes visible, so no background
        // refresher (which acts on the visible state) can retry before the first step is over.
        let step = req.account.get("refreshCount").and_then(Value::as_i64).unwrap_or(0).max(0) + 1;
        let wait = self.opts.backoff(step);
        let _ = self.store.try_lease(&retry_lease(pool, uuid), &self.owner, wait).await;
        *slot.refused_until.lock() = Some((Instant::now() + wait, message.clone()));
        let ops = AccountOps::default()
            .set("needsRefresh", true)
            .set("isHealthy", false)
            .set("lastErrorMessage", message.as_str())
            .set("lastErrorTime", poolgate_store::time::iso_now())
            .incr("refreshCount", 1);
        if let Err(e) = self.store.update_account(pool, uuid, ops).await {
            tracing::warn!(%pool, %uuid, error = %e, "could not record the refused refresh");
        }
        TokenError::Rejected(message)
    }
}

/// The lease that spaces retries of a refused account's refresh across the fleet.
pub fn retry_lease(pool: &str, uuid: &str) -> String {
    format!("oauth-retry:{pool}:{uuid}")
}

fn short_hash(s: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(s.as_bytes())[..8])
}

fn store_error(e: StoreError) -> TokenError {
    TokenError::Unavailable(e.to_string())
}

/// Returns when a token change for `(pool, uuid)` is announced or `poll` has passed.
async fn wait_change(
    changes: &mut Option<tokio::sync::broadcast::Receiver<(String, String)>>,
    pool: &str,
    uuid: &str,
    poll: Duration,
) {
    let Some(rx) = changes.as_mut() else {
        tokio::time::sleep(poll).await;
        return;
    };
    let deadline = tokio::time::Instant::now() + poll;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Ok((p, u))) if p == pool && u == uuid => return,
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(_)) | Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let o = EngineOptions::default();
        assert_eq!(o.backoff(1), Duration::from_secs(30));
        assert_eq!(o.backoff(2), Duration::from_secs(60));
        assert_eq!(o.backoff(30), Duration::from_secs(900));
        let o = EngineOptions::from_lookup(|k| (k == "OAUTH_REFRESH_LOCK_MS").then(|| "1500".into()));
        assert_eq!(o.lock_ttl, Duration::from_millis(1500));
    }
}
