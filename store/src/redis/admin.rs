//! Redis side of [`crate::admin`]: the login guard and replica heartbeats, one script call
//! each, timed by the server's clock so replicas with skewed clocks agree.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;

use super::Shared;
use crate::admin::{LoginFailure, LoginGate, LoginPolicy, ReplicaBeat};
use crate::error::{Result, StoreError};

static GUARD: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/login_guard.lua")));
static REPLICAS: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/replicas.lua")));

/// The client's record key; the client (an IP) is hashed so keys do not list addresses.
fn guard_key(shared: &Shared, client: &str) -> String {
    use sha2::{Digest, Sha256};
    shared.keys.login_guard(&hex::encode(Sha256::digest(client.as_bytes())))
}

async fn guard(shared: &Shared, client: &str, op: &str, policy: &LoginPolicy) -> Result<(i64, i64)> {
    let mut c = shared.link.conn()?;
    shared.link.count_command();
    GUARD
        .key(guard_key(shared, client))
        .arg(op)
        .arg(policy.max_attempts)
        .arg(policy.lockout.as_millis() as u64)
        .arg(policy.min_interval.as_millis() as u64)
        .invoke_async(&mut c)
        .await
        .map_err(|e| shared.link.fail(e))
}

pub(crate) async fn login_attempt(shared: &Shared, client: &str, policy: &LoginPolicy) -> Result<LoginGate> {
    Ok(match guard(shared, client, "attempt", policy).await? {
        (1, ms) => LoginGate::LockedOut { retry_after_ms: ms },
        (2, ms) => LoginGate::TooSoon { retry_after_ms: ms },
        _ => LoginGate::Open,
    })
}

pub(crate) async fn login_failed(shared: &Shared, client: &str, policy: &LoginPolicy) -> Result<LoginFailure> {
    Ok(match guard(shared, client, "fail", policy).await? {
        (1, ms) => LoginFailure::LockedOut { retry_after_ms: ms },
        (_, left) => LoginFailure::Remaining(u32::try_from(left).unwrap_or(0)),
    })
}

pub(crate) async fn login_succeeded(shared: &Shared, client: &str) -> Result<()> {
    let policy = LoginPolicy { max_attempts: 1, lockout: Duration::ZERO, min_interval: Duration::ZERO };
    guard(shared, client, "ok", &policy).await.map(|_| ())
}

pub(crate) async fn heartbeat(shared: &Shared, beat: &ReplicaBeat, ttl: Duration) -> Result<()> {
    let json = serde_json::to_string(beat).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let mut c = shared.link.conn()?;
    shared.link.count_command();
    let _: Vec<String> = REPLICAS
        .key(shared.keys.replicas())
        .arg("beat")
        .arg(&beat.id)
        .arg(ttl.as_millis() as u64)
        .arg(json)
        .invoke_async(&mut c)
        .await
        .map_err(|e| shared.link.fail(e))?;
    Ok(())
}

pub(crate) async fn list_replicas(shared: &Shared) -> Result<Vec<ReplicaBeat>> {
    let mut c = shared.link.conn()?;
    shared.link.count_command();
    let rows: Vec<String> =
        REPLICAS.key(shared.keys.replicas()).arg("list").invoke_async(&mut c).await.map_err(|e| shared.link.fail(e))?;
    let mut out: Vec<ReplicaBeat> = rows
        .iter()
        .filter_map(|row| {
            let (seen, json) = row.split_once('\t')?;
            let mut beat: ReplicaBeat = serde_json::from_str(json).ok()?;
            beat.seen_at = seen.parse().ok()?;
            Some(beat)
        })
        .collect();
    out.sort_by(|a, b| a.started_at.cmp(&b.started_at).then_with(|| a.id.cmp(&b.id)));
    Ok(out)
}
