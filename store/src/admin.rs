//! What the admin API keeps in the store besides config, password and sessions: the login
//! brute-force guard (per client, shared by every replica), replica heartbeats, and the change
//! feed the live event stream is built from.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `LOGIN_MAX_ATTEMPTS`, `LOGIN_LOCKOUT_DURATION`, `LOGIN_MIN_INTERVAL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginPolicy {
    /// Failed attempts that lock the client out (at least 1).
    pub max_attempts: u32,
    pub lockout: Duration,
    /// Shortest gap between two attempts of one client.
    pub min_interval: Duration,
}

/// May a client try a password now?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginGate {
    Open,
    /// Too many failures; locked for this many more milliseconds.
    LockedOut {
        retry_after_ms: i64,
    },
    /// The previous attempt was less than the minimum interval ago.
    TooSoon {
        retry_after_ms: i64,
    },
}

/// What a wrong password did to the client's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginFailure {
    /// Attempts left before the lockout.
    Remaining(u32),
    /// This failure locked the client out for the lockout duration.
    LockedOut { retry_after_ms: i64 },
}

/// One client's record (the same fields the Redis script keeps in its hash).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoginRecord {
    pub failures: u32,
    pub locked_until: i64,
    pub last_attempt: i64,
}

impl LoginRecord {
    /// Checks an attempt at `now` and, when it may go on, records its time.
    pub fn attempt(&mut self, policy: &LoginPolicy, now: i64) -> LoginGate {
        if self.locked_until > now {
            return LoginGate::LockedOut { retry_after_ms: self.locked_until - now };
        }
        if self.locked_until > 0 {
            // The lockout is over: start afresh.
            self.failures = 0;
            self.locked_until = 0;
        }
        let gap = policy.min_interval.as_millis() as i64;
        if self.last_attempt > 0 && now - self.last_attempt < gap {
            return LoginGate::TooSoon { retry_after_ms: gap - (now - self.last_attempt) };
        }
        self.last_attempt = now;
        LoginGate::Open
    }

    /// Counts a wrong password at `now`.
    pub fn fail(&mut self, policy: &LoginPolicy, now: i64) -> LoginFailure {
        self.failures += 1;
        let max = policy.max_attempts.max(1);
        if self.failures >= max {
            let ms = policy.lockout.as_millis() as i64;
            self.locked_until = now + ms;
            return LoginFailure::LockedOut { retry_after_ms: ms };
        }
        LoginFailure::Remaining(max - self.failures)
    }
}

/// What each replica writes about itself, every few seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaBeat {
    pub id: String,
    pub version: String,
    pub hostname: String,
    /// Epoch ms.
    pub started_at: i64,
    /// Requests being answered right now.
    pub in_flight: i64,
    /// Epoch ms of the last heartbeat, by the store's clock (filled in by the store).
    #[serde(default)]
    pub seen_at: i64,
}

/// Something in the store changed (by this process or any other): what the admin event
/// stream and live reconfiguration listen to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Config,
    Password,
    Plugins,
    UsageCache,
    SystemPrompt,
    CustomModels,
    /// The set of pool types.
    PoolTypes,
    /// A whole pool (replaced, dropped, or an account added or removed).
    Pool(String),
    /// One account's fields.
    Account {
        pool: String,
        uuid: String,
    },
    Token {
        pool: String,
        uuid: String,
    },
    /// Changes may have been missed (the feed reconnected): re-read everything.
    Resync,
}

/// How many changes a slow listener may fall behind before it sees `Lagged`.
pub(crate) const CHANGE_FEED_CAPACITY: usize = 1024;

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> LoginPolicy {
        LoginPolicy { max_attempts: 3, lockout: Duration::from_secs(60), min_interval: Duration::from_millis(500) }
    }

    #[test]
    fn failures_lock_out_then_the_lockout_ends() {
        let p = policy();
        let mut r = LoginRecord::default();
        assert_eq!(r.attempt(&p, 1_000), LoginGate::Open);
        assert_eq!(r.fail(&p, 1_000), LoginFailure::Remaining(2));
        assert_eq!(r.attempt(&p, 1_200), LoginGate::TooSoon { retry_after_ms: 300 });
        assert_eq!(r.attempt(&p, 2_000), LoginGate::Open);
        assert_eq!(r.fail(&p, 2_000), LoginFailure::Remaining(1));
        assert_eq!(r.attempt(&p, 3_000), LoginGate::Open);
        assert_eq!(r.fail(&p, 3_000), LoginFailure::LockedOut { retry_after_ms: 60_000 });
        assert_eq!(r.attempt(&p, 10_000), LoginGate::LockedOut { retry_after_ms: 53_000 });
        assert_eq!(r.attempt(&p, 63_000), LoginGate::Open);
        assert_eq!(r.fail(&p, 63_000), LoginFailure::Remaining(2), "a new round after the lockout");
    }
}
