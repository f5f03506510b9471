//! What a call's outcome does to its account, written through the store without waiting:
//! successes add exactly one to `usageCount`; failures count errors, bench the account at once
//! (401/403), cool it down until a `Retry-After` time (429), or mark it unhealthy when
//! `MAX_ERROR_COUNT` is reached (5xx, network, timeout).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use poolgate_store::account::runtime;
use poolgate_store::{Account, AccountOps, ErrorEvent, Storage};
use serde_json::Value;

use super::Selector;

/// How long this replica keeps off an account it just saw fail (the store's copy, shared with
/// every replica, decides after that).
const LOCAL_BENCH: Duration = Duration::from_secs(2);

/// A failed attempt, as it affects the account.
#[derive(Debug, Clone)]
pub enum Failure {
    Auth {
        status: u16,
        message: String,
    },
    RateLimited {
        message: String,
        retry_after: Option<Duration>,
    },
    Server {
        status: u16,
        message: String,
    },
    Network {
        message: String,
    },
    Timeout {
        message: String,
    },
    /// Quota used up: unhealthy until `recover_at` (ISO).
    Quota {
        message: String,
        recover_at: String,
    },
}

impl Failure {
    pub fn message(&self) -> &str {
        match self {
            Self::Auth { message, .. }
            | Self::RateLimited { message, .. }
            | Self::Server { message, .. }
            | Self::Network { message }
            | Self::Timeout { message }
            | Self::Quota { message, .. } => message,
        }
    }

    /// Metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Auth { .. } => "auth",
            Self::RateLimited { .. } => "rate_limited",
            Self::Server { .. } => "server",
            Self::Network { .. } => "network",
            Self::Timeout { .. } => "timeout",
            Self::Quota { .. } => "quota",
        }
    }

    /// Worth retrying on the same account (when no other is left).
    pub fn transient(&self) -> bool {
        matches!(self, Self::Server { .. } | Self::Network { .. } | Self::Timeout { .. })
    }
}

/// Error policy from the live config.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub threshold: Option<i64>,
    pub cooldown: Duration,
    pub cooldown_max: Duration,
}

/// Background writes that must be sent before shutdown flushes the store.
#[derive(Clone, Default)]
pub struct Tasks {
    inner: Arc<(AtomicUsize, Notify)>,
}

impl Tasks {
    pub fn spawn<F: Future<Output = ()> + Send + 'static>(&self, f: F) {
        self.inner.0.fetch_add(1, Ordering::SeqCst);
        let me = self.clone();
        tokio::spawn(async move {
            f.await;
            if me.inner.0.fetch_sub(1, Ordering::SeqCst) == 1 {
                me.inner.1.notify_waiters();
            }
        });
    }

    pub fn pending(&self) -> usize {
        self.inner.0.load(Ordering::SeqCst)
    }

    /// Waits until no task is pending (or `timeout`); true when idle.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.inner.1.notified();
            if self.pending() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.pending() == 0;
            }
        }
    }
}

/// Records one success: usage +1 (exact, group-committed), and clears any error state. The
/// receiver resolves once the store has taken the usage (written, or queued during an outage).
pub fn success(
    tasks: &Tasks,
    store: &Arc<dyn Storage>,
    selector: &Selector,
    pool: &str,
    account: &Account,
) -> tokio::sync::oneshot::Receiver<()> {
    let (done, taken) = tokio::sync::oneshot::channel();
    selector.unbench(pool, account.uuid());
    let store = store.clone();
    let pool = pool.to_string();
    let uuid = account.uuid().to_string();
    let recovered = account.error_count() != 0 || !account.is_healthy() || account.scheduled_recovery_time().is_some();
    tasks.spawn(async move {
        if let Err(e) = store.record_usage(&pool, &uuid, 1).await {
            tracing::warn!(%pool, %uuid, error = %e, "could not record usage");
        }
        let _ = done.send(());
        if recovered {
            let ops = AccountOps::default()
                .set("isHealthy", true)
                .set("errorCount", 0)
                .set("scheduledRecoveryTime", Value::Null);
            if let Err(e) = store.update_account(&pool, &uuid, ops).await {
                tracing::warn!(%pool, %uuid, error = %e, "could not clear error state");
            }
        }
    });
    taken
}

/// Records one failure and benches the account locally.
pub fn failure(
    tasks: &Tasks,
    store: &Arc<dyn Storage>,
    selector: &Selector,
    pool: &str,
    uuid: &str,
    f: &Failure,
    policy: Policy,
) {
    let now = chrono::Utc::now();
    let mut ev = ErrorEvent { message: Some(truncate(f.message(), 500)), ..ErrorEvent::default() };
    let mut clear_recovery = false;
    match f {
        Failure::Auth { .. } => {
            ev.unhealthy_now = true;
            clear_recovery = true;
            selector.bench(pool, uuid, LOCAL_BENCH);
        }
        Failure::RateLimited { retry_after, .. } => {
            let wait = retry_after.unwrap_or(policy.cooldown).min(policy.cooldown_max.max(policy.cooldown));
            ev.unhealthy_now = true;
            let at = now + chrono::Duration::from_std(wait).unwrap_or_default();
            ev.recover_at = Some(poolgate_store::time::iso(at));
            selector.bench(pool, uuid, wait.min(LOCAL_BENCH));
        }
        Failure::Quota { recover_at, .. } => {
            ev.unhealthy_now = true;
            ev.recover_at = Some(recover_at.clone());
            selector.bench(pool, uuid, LOCAL_BENCH);
        }
        Failure::Server { .. } | Failure::Network { .. } | Failure::Timeout { .. } => {
            ev.threshold = policy.threshold;
        }
    }
    let mut ops = runtime::error(&ev, &poolgate_store::time::iso(now));
    if clear_recovery {
        ops = ops.set("scheduledRecoveryTime", Value::Null);
    }
    let store = store.clone();
    let (pool, uuid) = (pool.to_string(), uuid.to_string());
    tasks.spawn(async move {
        if let Err(e) = store.update_account(&pool, &uuid, ops).await {
            tracing::warn!(%pool, %uuid, error = %e, "could not record an upstream error");
        }
    });
}

/// 00:00 UTC on the first of next month (Kiro's quota reset), ISO.
pub fn first_of_next_month(now: chrono::DateTime<chrono::Utc>) -> String {
    use chrono::Datelike;
    let (y, m) = if now.month() == 12 { (now.year() + 1, 1) } else { (now.year(), now.month() + 1) };
    let at = chrono::NaiveDate::from_ymd_opt(y, m, 1).and_then(|d| d.and_hms_opt(0, 0, 0)).map(|t| t.and_utc());
    poolgate_store::time::iso(at.unwrap_or(now))
}

/// `Retry-After` as seconds or an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let t = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let ms = t.timestamp_millis() - chrono::Utc::now().timestamp_millis();
    Some(Duration::from_millis(ms.max(0) as u64))
}

pub fn truncate(s: &str, max: usize) -> String {
    let mut cut = s.len().min(max);
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    s[..cut].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(truncate("héllo", 2), "h");
        let dec = chrono::DateTime::parse_from_rfc3339("2026-12-02T11:00:00Z").map(|t| t.to_utc()).unwrap_or_default();
        assert_eq!(first_of_next_month(dec), "2027-01-01T00:00:00.000Z");
    }
}
