//! Client keys (the reference's `api-potluck` user keys, extended with rate limits): the record,
//! its usage, and what one admission decides.
//!
//! A key is stored only as the SHA-256 of its text; lookups go by that hash. Admission — check
//! every limit and count the request — is one atomic step of the store (one Lua script on Redis),
//! timed by the store's clock, so any number of replicas grant exactly what one would.

use serde::{Deserialize, Serialize};

/// A client key's settings (never its text).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct ClientKey {
    /// Stable id for the admin API (not secret).
    pub id: String,
    pub name: String,
    pub enabled: bool,
    /// Requests per day (the day of `timezoneOffsetMinutes`); `None`: unlimited.
    pub daily_limit: Option<i64>,
    /// Requests over the key's life; `None`: unlimited.
    pub total_limit: Option<i64>,
    /// Requests per fixed one-minute window.
    pub rpm_limit: Option<i64>,
    /// Tokens per fixed one-minute window (counted after each answer, enforced on the next).
    pub tpm_limit: Option<i64>,
    /// Allowed models (empty: all).
    pub models: Vec<String>,
    /// Allowed provider types (empty: all).
    pub providers: Vec<String>,
    /// Epoch ms after which the key is refused.
    pub expires_at: Option<i64>,
    /// Extra requests beyond the daily limit (the reference's contribution bonus).
    pub bonus: i64,
    /// Epoch ms until which the bonus may be spent.
    pub bonus_expires_at: Option<i64>,
    /// The day boundary's offset from UTC (the reference: Beijing, +480).
    pub timezone_offset_minutes: i32,
    /// The key's first characters, for telling keys apart in lists (`maki_ab12`).
    pub prefix: String,
    /// Set when a Kubernetes `ClientConfig` declares the key (the operator owns its settings).
    pub owner: Option<String>,
    pub created_at: i64,
    /// Hashes the key had before it was regenerated (its statistics are filed under them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub former_hashes: Vec<String>,
}

impl ClientKey {
    /// Why the key refuses every request at `now_ms` (disabled or expired), if it does.
    pub fn refusal(&self, now_ms: i64) -> Option<Admission> {
        if !self.enabled {
            Some(Admission::Disabled)
        } else if self.expires_at.is_some_and(|t| t <= now_ms) {
            Some(Admission::Expired)
        } else {
            None
        }
    }

    /// The stored form of a key's text.
    pub fn hash(key: &str) -> String {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(key.as_bytes()))
    }

    /// A new random key in the reference's shape (`maki_` and 32 alphanumerics).
    pub fn generate() -> String {
        use rand::Rng;
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        let mut rng = rand::thread_rng();
        let body: String = (0..32).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect();
        format!("maki_{body}")
    }
}

/// A key's counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct ClientKeyUsage {
    /// Day number (days since the epoch in the key's time zone) `today_usage` counts.
    pub day: i64,
    pub today_usage: i64,
    pub total_usage: i64,
    pub bonus_used: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub errors: i64,
}

/// One key's use of one model on one day (the per-model statistics).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelUsage {
    pub hash: String,
    pub model: String,
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub errors: i64,
}

/// What admission decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Counted; keep the ticket to refund or settle the request.
    Admitted {
        ticket: Ticket,
        limits: RateInfo,
    },
    /// No such key.
    Unknown,
    Disabled,
    Expired,
    /// The key may not use this model or provider type.
    Forbidden,
    /// A limit is reached; `retry_after` seconds until it resets (`None`: never, e.g. the total).
    Exhausted {
        which: Limit,
        retry_after: Option<u64>,
        limits: RateInfo,
    },
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Daily,
    Total,
    Rpm,
    Tpm,
}

impl Limit {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Daily => "daily request limit",
            Self::Total => "total request limit",
            Self::Rpm => "requests-per-minute limit",
            Self::Tpm => "tokens-per-minute limit",
        }
    }
}

/// The numbers behind the `x-ratelimit-*` headers: the tightest request limit's size, what is
/// left of it, and seconds until it resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateInfo {
    pub limit: Option<i64>,
    pub remaining: Option<i64>,
    pub reset_secs: Option<u64>,
}

/// An admitted request's place in the counters, to refund or settle it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub hash: String,
    pub day: i64,
    /// The minute window (minutes since the epoch) the request was counted in.
    pub minute: i64,
    /// Whether the request spent bonus rather than daily allowance.
    pub bonus: bool,
}

/// What an answered request adds to the key's statistics.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settlement {
    pub model: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub error: bool,
}

/// Decides an admission against `key` and `usage` at `now_ms`, updating `usage` when admitted.
/// The file backend runs this under its lock; the Redis script implements the same rules.
pub fn decide(
    key: &ClientKey,
    usage: &mut ClientKeyUsage,
    minute_requests: i64,
    minute_tokens: i64,
    model: &str,
    provider: &str,
    now_ms: i64,
) -> Admission {
    if let Some(refused) = key.refusal(now_ms) {
        return refused;
    }
    let allowed = |list: &[String], v: &str| list.is_empty() || list.iter().any(|x| x == v);
    if !allowed(&key.models, model) || !allowed(&key.providers, provider) {
        return Admission::Forbidden;
    }
    let offset_ms = i64::from(key.timezone_offset_minutes) * 60_000;
    let day = (now_ms + offset_ms).div_euclid(86_400_000);
    if usage.day != day {
        usage.day = day;
        usage.today_usage = 0;
    }
    let to_midnight = (86_400_000 - (now_ms + offset_ms).rem_euclid(86_400_000)).div_euclid(1000).max(1) as u64;
    let to_minute = (60_000 - now_ms.rem_euclid(60_000)).div_euclid(1000).max(1) as u64;
    let minute = now_ms.div_euclid(60_000);
    let bonus_live = key.bonus > usage.bonus_used && key.bonus_expires_at.is_none_or(|t| t > now_ms);
    let daily = key.daily_limit.map(|l| RateInfo {
        limit: Some(l),
        remaining: Some((l - usage.today_usage).max(0)),
        reset_secs: Some(to_midnight),
    });
    let rpm = key.rpm_limit.map(|l| RateInfo {
        limit: Some(l),
        remaining: Some((l - minute_requests).max(0)),
        reset_secs: Some(to_minute),
    });
    let info = tightest(daily, rpm);
    if key.total_limit.is_some_and(|l| usage.total_usage >= l) {
        return Admission::Exhausted { which: Limit::Total, retry_after: None, limits: info };
    }
    if key.rpm_limit.is_some_and(|l| minute_requests >= l) {
        return Admission::Exhausted { which: Limit::Rpm, retry_after: Some(to_minute), limits: info };
    }
    if key.tpm_limit.is_some_and(|l| minute_tokens >= l) {
        return Admission::Exhausted { which: Limit::Tpm, retry_after: Some(to_minute), limits: info };
    }
    let over_daily = key.daily_limit.is_some_and(|l| usage.today_usage >= l);
    if over_daily && !bonus_live {
        return Admission::Exhausted { which: Limit::Daily, retry_after: Some(to_midnight), limits: info };
    }
    if over_daily {
        usage.bonus_used += 1;
    } else {
        usage.today_usage += 1;
    }
    usage.total_usage += 1;
    let mut limits = info;
    limits.remaining = limits.remaining.map(|r| (r - 1).max(0));
    Admission::Admitted { ticket: Ticket { hash: String::new(), day, minute, bonus: over_daily }, limits }
}

/// The limit with the least left.
fn tightest(a: Option<RateInfo>, b: Option<RateInfo>) -> RateInfo {
    match (a, b) {
        (Some(x), Some(y)) => {
            if y.remaining < x.remaining {
                y
            } else {
                x
            }
        }
        (Some(x), None) | (None, Some(x)) => x,
        (None, None) => RateInfo::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ClientKey {
        ClientKey { enabled: true, daily_limit: Some(2), ..ClientKey::default() }
    }

    #[test]
    fn daily_limit_then_bonus_then_refusal() {
        let mut k = key();
        k.bonus = 1;
        let mut u = ClientKeyUsage::default();
        let now = 1_700_000_000_000;
        for _ in 0..2 {
            assert!(
                matches!(decide(&k, &mut u, 0, 0, "m", "p", now), Admission::Admitted { ticket, .. } if !ticket.bonus)
            );
        }
        assert!(matches!(decide(&k, &mut u, 0, 0, "m", "p", now), Admission::Admitted { ticket, .. } if ticket.bonus));
        let refused = decide(&k, &mut u, 0, 0, "m", "p", now);
        assert!(
            matches!(refused, Admission::Exhausted { which: Limit::Daily, retry_after: Some(s), .. } if s <= 86_400)
        );
        assert_eq!((u.today_usage, u.bonus_used, u.total_usage), (2, 1, 3));
        // The next day (in the key's time zone) starts from zero.
        assert!(matches!(decide(&k, &mut u, 0, 0, "m", "p", now + 86_400_000), Admission::Admitted { .. }));
        assert_eq!(u.today_usage, 1);
    }

    #[test]
    fn other_refusals() {
        let mut u = ClientKeyUsage::default();
        let now = 1_700_000_000_000;
        let mut k = key();
        k.enabled = false;
        assert_eq!(decide(&k, &mut u, 0, 0, "m", "p", now), Admission::Disabled);
        let mut k = key();
        k.expires_at = Some(now);
        assert_eq!(decide(&k, &mut u, 0, 0, "m", "p", now), Admission::Expired);
        let mut k = key();
        k.models = vec!["other".into()];
        assert_eq!(decide(&k, &mut u, 0, 0, "m", "p", now), Admission::Forbidden);
        let mut k = key();
        k.rpm_limit = Some(5);
        assert!(matches!(decide(&k, &mut u, 5, 0, "m", "p", now), Admission::Exhausted { which: Limit::Rpm, .. }));
        assert_eq!(u.total_usage, 0, "refusals count nothing");
    }

    #[test]
    fn generated_keys_are_random_and_hashed() {
        let (a, b) = (ClientKey::generate(), ClientKey::generate());
        assert_ne!(a, b);
        assert!(a.starts_with("maki_") && a.len() == 37);
        assert_eq!(ClientKey::hash(&a).len(), 64);
        assert!(!ClientKey::hash(&a).contains(&a[5..]));
    }
}
