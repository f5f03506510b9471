//! `migrate --verify`: reads back every item of the source from Redis and compares it field by
//! field. Any difference (missing, extra, changed field, missing TTL) is one error naming the
//! item and the JSON path — never the value, which may be a credential.

use std::collections::BTreeMap;

use serde_json::Value;

use super::diff::json_diff;
use super::report::ItemError;
use super::source::{account_label, Source};
use super::TransferError;
use crate::RedisStore;

/// How far a session's expiry read back may drift from the source (PTTL is relative).
const EXPIRY_SLACK_MS: i64 = 2000;

/// Differences between `src` and Redis (empty when everything matches).
pub async fn verify(store: &RedisStore, src: &Source) -> Result<Vec<ItemError>, TransferError> {
    let mut errs = Vec::new();
    verify_singles(store, src, &mut errs).await?;
    verify_pools(store, src, &mut errs).await?;
    verify_tokens(store, src, &mut errs).await?;
    verify_sessions(store, src, &mut errs).await?;
    Ok(errs)
}

fn compare_json(item: &str, source: &Value, stored: Option<&str>, errs: &mut Vec<ItemError>) {
    let Some(raw) = stored else {
        errs.push(ItemError::new(item, "missing in Redis"));
        return;
    };
    match serde_json::from_str::<Value>(raw) {
        Ok(v) => errs.extend(json_diff(source, &v).into_iter().map(|d| ItemError::new(item, d))),
        Err(e) => errs.push(ItemError::new(item, format!("stored value is not JSON: {e}"))),
    }
}

async fn verify_singles(store: &RedisStore, src: &Source, errs: &mut Vec<ItemError>) -> Result<(), TransferError> {
    let k = store.keys();
    let got = store.get_each(&[k.config(), k.password(), k.usage_cache(), k.plugins()]).await?;
    let json_items = [("config", &src.config, &got[0]), ("usage:cache", &src.usage_cache, &got[2])];
    for (name, source, stored) in json_items.into_iter().chain([("plugins", &src.plugins, &got[3])]) {
        if let Some(source) = source {
            compare_json(name, source, stored.as_deref(), errs);
        }
    }
    if let Some(pwd) = &src.password {
        match got[1].as_deref() {
            None => errs.push(ItemError::new("pwd", "missing in Redis")),
            Some(p) if p != pwd => errs.push(ItemError::new("pwd", "value differs")),
            Some(_) => {}
        }
    }
    Ok(())
}

async fn verify_pools(store: &RedisStore, src: &Source, errs: &mut Vec<ItemError>) -> Result<(), TransferError> {
    let k = store.keys();
    let types = store.set_members(&k.pool_types()).await?;
    let pool_keys: Vec<String> = src.pools.iter().map(|p| k.pool(&p.name)).collect();
    let hashes = store.hgetall_each(&pool_keys).await?;
    for (pool, mut stored) in src.pools.iter().zip(hashes) {
        if !types.contains(&pool.name) {
            errs.push(ItemError::new(format!("pool {}", pool.name), "missing from pool-types"));
        }
        for acc in &pool.accounts {
            let item = account_label(&pool.name, acc);
            let source = Value::Object(acc.as_map().clone());
            compare_json(&item, &source, stored.remove(acc.uuid()).as_deref(), errs);
        }
        for uuid in stored.keys() {
            errs.push(ItemError::new(format!("account {}/{uuid}", pool.name), "in Redis but not in the source"));
        }
    }
    Ok(())
}

async fn verify_tokens(store: &RedisStore, src: &Source, errs: &mut Vec<ItemError>) -> Result<(), TransferError> {
    let k = store.keys();
    let token_keys: Vec<String> = src.tokens.iter().map(|t| k.token(&t.pool, &t.id)).collect();
    let got = store.get_each(&token_keys).await?;
    let ttls = store.expiry_each(&token_keys).await?;
    for ((t, stored), ttl) in src.tokens.iter().zip(got).zip(ttls) {
        let item = format!("token {}/{} ({})", t.pool, t.id, t.path.display());
        compare_json(&item, &t.token, stored.as_deref(), errs);
        if ttl.is_some() {
            // A TTL on a credential key deletes the refresh token with it (§4 pitfall).
            errs.push(ItemError::new(item, "has a TTL"));
        }
    }
    Ok(())
}

async fn verify_sessions(store: &RedisStore, src: &Source, errs: &mut Vec<ItemError>) -> Result<(), TransferError> {
    let k = store.keys();
    let session_keys: Vec<String> = src.sessions.iter().map(|s| k.session(&s.hash)).collect();
    let got = store.get_each(&session_keys).await?;
    let ttls = store.expiry_each(&session_keys).await?;
    let by_hash: BTreeMap<&str, usize> = src.sessions.iter().enumerate().map(|(i, s)| (s.hash.as_str(), i)).collect();
    for ((s, stored), ttl) in src.sessions.iter().zip(got).zip(ttls) {
        let item = format!("session #{}", by_hash[s.hash.as_str()] + 1);
        // The key-format marker migrate adds is not part of the source's session.
        let stored = stored.map(|raw| match serde_json::from_str::<Value>(&raw) {
            Ok(Value::Object(mut o)) => {
                o.remove(crate::file::paths::SESSION_KEY_FORMAT_FIELD);
                Value::Object(o).to_string()
            }
            _ => raw,
        });
        compare_json(&item, &s.session, stored.as_deref(), errs);
        match ttl {
            Some(at) if (at - s.expires_at_ms).abs() <= EXPIRY_SLACK_MS => {}
            Some(_) => errs.push(ItemError::new(item, "expiry differs from expiryTime")),
            None if stored.is_some() => errs.push(ItemError::new(item, "has no TTL")),
            None => {}
        }
    }
    Ok(())
}
