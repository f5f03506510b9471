//! Status (pure): conditions, per-account runtime state read from Redis, totals, and whether a
//! patch is worth sending (timestamps ignored; counter-only changes wait for the refresh period so
//! that status writes never drive a reconcile loop).

use std::collections::BTreeMap;
use std::time::Duration;

use poolgate_crds::{AccountStatus, Condition, ProviderPool, ProviderPoolStatus};
use poolgate_store::Account;

use crate::conditions;

/// What the reconcile found out, for the status.
#[derive(Debug)]
pub enum Outcome<'a> {
    /// The spec or its inputs are unusable.
    Invalid { reason: &'static str, message: String },
    /// Redis could not be reached or refused the writes.
    RedisFailed { reachable: bool, message: String },
    /// Applied; `accounts` is the pool as Redis holds it, `seeded` the token hash per account name.
    Synced { plan: &'a [(String, String)], accounts: &'a [Account], seeded: &'a BTreeMap<String, String> },
}

/// The new status for `pool`.
pub fn compute(pool: &ProviderPool, outcome: &Outcome<'_>, now: &str) -> ProviderPoolStatus {
    let old = pool.status.clone().unwrap_or_default();
    let generation = pool.metadata.generation;
    let mut status = ProviderPoolStatus { observed_generation: generation, ..old.clone() };
    let fresh = match outcome {
        Outcome::Invalid { reason, message } => {
            // The spec's accounts (not what an older spec or Redis held), with their last known
            // runtime state; nothing is read from Redis while the spec is invalid.
            let uid = pool.metadata.uid.clone().unwrap_or_default();
            status.accounts = pool
                .spec
                .accounts
                .iter()
                .map(|a| {
                    let uuid = super::validate::account_uuid(&uid, a);
                    old.accounts.iter().find(|o| o.name == a.name && o.uuid == uuid).cloned().unwrap_or(AccountStatus {
                        name: a.name.clone(),
                        uuid,
                        ..Default::default()
                    })
                })
                .collect();
            totals(&mut status);
            vec![
                Condition::unknown("RedisReachable", "NotChecked", "the spec must be valid before Redis is used"),
                Condition::new("Synced", false, reason, message.clone()),
            ]
        }
        Outcome::RedisFailed { reachable, message } => vec![
            if *reachable {
                Condition::new("RedisReachable", true, "Connected", "Redis answered")
            } else {
                Condition::new("RedisReachable", false, "ConnectFailed", message.clone())
            },
            Condition::new(
                "Synced",
                false,
                if *reachable { "ApplyFailed" } else { "RedisUnreachable" },
                message.clone(),
            ),
        ],
        Outcome::Synced { plan, accounts, seeded } => {
            let by_uuid: BTreeMap<&str, &Account> = accounts.iter().map(|a| (a.uuid(), a)).collect();
            status.accounts = plan
                .iter()
                .map(|(name, uuid)| account_status(name, uuid, by_uuid.get(uuid.as_str()).copied(), seeded.get(name)))
                .collect();
            totals(&mut status);
            status.last_refreshed = Some(now.to_string());
            vec![
                Condition::new("RedisReachable", true, "Connected", "Redis answered"),
                Condition::new(
                    "Synced",
                    true,
                    "Synced",
                    format!("{} account(s) applied to pool {}", plan.len(), pool.spec.provider_type),
                ),
            ]
        }
    };
    let mut all = fresh;
    let ready = conditions::ready(&all, &["Synced", "RedisReachable"]);
    all.push(ready);
    status.conditions = conditions::merge(&old.conditions, all, now, generation);
    status
}

fn totals(status: &mut ProviderPoolStatus) {
    status.total_accounts = status.accounts.len() as i64;
    status.healthy_accounts = status.accounts.iter().filter(|a| a.present && a.healthy && !a.disabled).count() as i64;
    status.total_usage = status.accounts.iter().map(|a| a.usage_count).sum();
    status.total_errors = status.accounts.iter().map(|a| a.error_count).sum();
}

fn account_status(name: &str, uuid: &str, acc: Option<&Account>, seeded: Option<&String>) -> AccountStatus {
    let mut s = AccountStatus {
        name: name.into(),
        uuid: uuid.into(),
        seeded_token_hash: seeded.cloned(),
        ..Default::default()
    };
    if let Some(a) = acc {
        s.present = true;
        s.healthy = a.is_healthy();
        s.disabled = a.is_disabled();
        s.usage_count = a.usage_count();
        s.error_count = a.error_count();
        s.last_used = a.last_used().map(str::to_string);
        s.last_error = a.last_error_message().map(redact_error);
        s.needs_refresh = a.needs_refresh();
    }
    s
}

/// Error messages come from upstreams; keep them short and drop anything token-like.
fn redact_error(m: &str) -> String {
    let words: Vec<String> = m
        .split_whitespace()
        .map(|w| {
            let secretish = w.len() >= 20 && w.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if secretish || w.starts_with("sk-") || w.starts_with("Bearer") {
                "***".to_string()
            } else {
                w.to_string()
            }
        })
        .collect();
    let mut s = words.join(" ");
    if s.len() > 256 {
        let mut cut = 256;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// Whether `new` must be written over `old`. Equal statuses (timestamps aside) never are; a
/// change of runtime counters only is written once the previous refresh is `interval` old.
pub fn needs_patch(
    old: Option<&ProviderPoolStatus>,
    new: &ProviderPoolStatus,
    now: chrono::DateTime<chrono::Utc>,
    interval: Duration,
) -> bool {
    let Some(old) = old else { return true };
    let structural = old.observed_generation != new.observed_generation
        || old.applied_hash != new.applied_hash
        || !conditions::eq_time_insensitive(&old.conditions, &new.conditions)
        || old.accounts.len() != new.accounts.len()
        || old.accounts.iter().zip(&new.accounts).any(|(a, b)| {
            (&a.name, &a.uuid, a.present, &a.seeded_token_hash, a.healthy, a.disabled, a.needs_refresh)
                != (&b.name, &b.uuid, b.present, &b.seeded_token_hash, b.healthy, b.disabled, b.needs_refresh)
        });
    if structural {
        return true;
    }
    let counters_same =
        old.accounts == new.accounts && old.total_usage == new.total_usage && old.total_errors == new.total_errors;
    if counters_same {
        return false;
    }
    let refreshed = old
        .last_refreshed
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc));
    match refreshed {
        Some(t) => (now - t).to_std().map(|age| age >= interval.mul_f64(0.8)).unwrap_or(true),
        None => true,
    }
}
