//! `migrate`: legacy files → Redis. Every item (a pool, a token, a session, config, password,
//! usage cache, plugins) is skipped when already in Redis unless `force`, and written whole or
//! not at all: pools by one atomic script each (DEL + HSET + SADD pool-types), the rest in
//! pipelined MULTI/EXEC chunks. Metadata is written only when something was imported, so a
//! second run changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;

use super::report::MigrateSummary;
use super::source::{PoolSource, Source};
use super::{verify, Progress, TransferError, META_VERSION};
use crate::keys::Keys;
use crate::provider;
use crate::redis::bulk::BulkWrite;
use crate::time::{epoch_ms, iso_now};
use crate::RedisStore;
use crate::Storage;

/// Flags of `poolgate migrate`.
#[derive(Debug, Clone, Default)]
pub struct MigrateOptions {
    pub config_dir: PathBuf,
    pub dry_run: bool,
    pub force: bool,
    pub verify: bool,
    /// Import what parses even when some source file does not (otherwise nothing is written).
    pub partial: bool,
}

/// What will be written.
#[derive(Default)]
struct Plan {
    pools: Vec<PoolSource>,
    items: Vec<Vec<BulkWrite>>,
}

/// Runs a migration; `Err` only for fatal problems (unreadable directory, Redis gone).
pub async fn migrate(
    store: &RedisStore,
    opts: &MigrateOptions,
    progress: &dyn Progress,
) -> Result<MigrateSummary, TransferError> {
    let src = Source::load(&opts.config_dir, epoch_ms()).await?;
    let mut sum = MigrateSummary {
        dry_run: opts.dry_run,
        sessions_expired: src.sessions_expired,
        errors: src.errors.clone(),
        ..MigrateSummary::default()
    };
    let plan = plan(store, &src, opts.force, &mut sum).await?;
    // All or nothing: a source that does not parse writes nothing unless asked to.
    sum.nothing_written = src.unparsable > 0 && !opts.partial && !opts.dry_run;
    if !opts.dry_run && !sum.nothing_written {
        write(store, plan, progress).await?;
        if sum.imported() > 0 {
            store.write_items(&[vec![meta(store.keys(), &sum)]], &mut |_| {}).await?;
        }
    }
    if opts.verify && !opts.dry_run && !sum.nothing_written {
        sum.verify_errors = verify::verify(store, &src).await?;
        sum.verified = Some(sum.verify_errors.is_empty());
    }
    sum.success = sum.errors.is_empty() && sum.verified != Some(false);
    Ok(sum)
}

/// Decides item by item what to write, filling in the summary's counts.
async fn plan(store: &RedisStore, src: &Source, force: bool, sum: &mut MigrateSummary) -> Result<Plan, TransferError> {
    let keys = store.keys();
    let mut plan = Plan::default();
    plan_pools(store, src, force, sum, &mut plan).await?;
    plan_client_keys(store, src, force, sum, &mut plan).await?;

    let singles = [
        ("config", keys.config(), src.config.as_ref().map(Value::to_string)),
        ("pwd", keys.password(), src.password.clone()),
        ("usage:cache", keys.usage_cache(), src.usage_cache.as_ref().map(Value::to_string)),
        ("plugins", keys.plugins(), src.plugins.as_ref().map(Value::to_string)),
        ("system-prompt", keys.system_prompt(), src.system_prompt.clone()),
        ("custom-models", keys.custom_models(), src.custom_models.as_ref().map(Value::to_string)),
    ];
    let token_keys: Vec<String> = src.tokens.iter().map(|t| keys.token(&t.pool, &t.id)).collect();
    let session_keys: Vec<String> = src.sessions.iter().map(|s| keys.session(&s.hash)).collect();
    let mut all: Vec<String> = singles.iter().map(|(_, k, _)| k.clone()).collect();
    all.extend(token_keys.iter().cloned());
    all.extend(session_keys.iter().cloned());
    let exists = store.exists_each(&all).await?;
    let (single_exists, rest) = exists.split_at(singles.len());
    let (token_exists, session_exists) = rest.split_at(token_keys.len());

    for ((name, key, value), exists) in singles.into_iter().zip(single_exists) {
        let Some(value) = value else { continue };
        if *exists && !force {
            sum.skipped.push(name.to_string());
            continue;
        }
        match name {
            "config" => sum.config_imported = true,
            "pwd" => sum.password_imported = true,
            "usage:cache" => sum.usage_cache_imported = true,
            "system-prompt" => sum.system_prompt_imported = true,
            "custom-models" => sum.custom_models_imported = true,
            _ => sum.plugins_imported = true,
        }
        plan.items.push(vec![BulkWrite::Set { key, value }]);
    }
    for ((t, key), exists) in src.tokens.iter().zip(token_keys).zip(token_exists) {
        if *exists && !force {
            sum.tokens_skipped += 1;
            continue;
        }
        if t.legacy {
            sum.legacy_tokens_imported += 1;
        } else {
            sum.tokens_imported += 1;
        }
        let mut item = vec![BulkWrite::Set { key, value: t.token.to_string() }];
        // Kiro's dedup index (refresh-token hash → account) must exist for UI re-imports.
        if !t.legacy && provider::is_kiro(&t.pool) {
            if let Some(rt) = provider::refresh_token_of(&t.pool, &t.token) {
                let key = keys.kiro_refresh_index(&provider::kiro_index_hash(rt));
                item.push(BulkWrite::Set { key, value: t.id.clone() });
            }
        }
        plan.items.push(item);
    }
    for ((s, key), exists) in src.sessions.iter().zip(session_keys).zip(session_exists) {
        if *exists && !force {
            sum.sessions_skipped += 1;
            continue;
        }
        sum.sessions_imported += 1;
        // Marked as poolgate marks the sessions it writes (the key is the token's SHA-256).
        let mut value = s.session.clone();
        if let Some(o) = value.as_object_mut() {
            o.insert(
                crate::file::paths::SESSION_KEY_FORMAT_FIELD.into(),
                crate::file::paths::SESSION_KEY_FORMAT_SHA256.into(),
            );
        }
        plan.items.push(vec![BulkWrite::SetAt { key, value: value.to_string(), expires_at_ms: s.expires_at_ms }]);
    }
    Ok(plan)
}

/// Client keys from `api-potluck-keys.json`: a key already in Redis (same hash) is left alone
/// unless `force`, which replaces its settings and counters.
async fn plan_client_keys(
    store: &RedisStore,
    src: &Source,
    force: bool,
    sum: &mut MigrateSummary,
    plan: &mut Plan,
) -> Result<(), TransferError> {
    if src.potluck_data_present {
        sum.skipped.push(format!(
            "{} (credential contributions are not imported; bonuses come with the keys)",
            super::potluck::DATA_FILE
        ));
    }
    if src.client_keys.is_empty() {
        return Ok(());
    }
    let keys = store.keys();
    let present: BTreeSet<String> = store.hash_fields(&keys.client_keys()).await?;
    for (hash, key, usage) in &src.client_keys {
        if present.contains(hash) && !force {
            sum.client_keys_skipped += 1;
            continue;
        }
        sum.client_keys_imported += 1;
        let settings = serde_json::to_string(key).map_err(|e| crate::StoreError::Invalid(e.to_string()))?;
        let counters = vec![
            ("day".to_string(), usage.day.to_string()),
            ("todayUsage".to_string(), usage.today_usage.to_string()),
            ("totalUsage".to_string(), usage.total_usage.to_string()),
            ("bonusUsed".to_string(), usage.bonus_used.to_string()),
        ];
        plan.items.push(vec![
            BulkWrite::HSet { key: keys.client_keys(), fields: vec![(hash.clone(), settings)] },
            BulkWrite::Del { key: keys.client_key_usage(hash) },
            BulkWrite::HSet { key: keys.client_key_usage(hash), fields: counters },
        ]);
    }
    Ok(())
}

/// A pool is skipped whole when its type is already known to Redis (hash or `pool-types`).
async fn plan_pools(
    store: &RedisStore,
    src: &Source,
    force: bool,
    sum: &mut MigrateSummary,
    plan: &mut Plan,
) -> Result<(), TransferError> {
    let keys = store.keys();
    let types: BTreeSet<String> = store.set_members(&keys.pool_types()).await?;
    let pool_keys: Vec<String> = src.pools.iter().map(|p| keys.pool(&p.name)).collect();
    let exists = store.exists_each(&pool_keys).await?;
    for (pool, exists) in src.pools.iter().zip(exists) {
        if (exists || types.contains(&pool.name)) && !force {
            sum.pools_skipped += 1;
            sum.providers_skipped += pool.accounts.len();
            sum.skipped.push(format!("pool {}", pool.name));
            continue;
        }
        sum.pools_imported += 1;
        sum.providers_imported += pool.accounts.len();
        plan.pools.push(pool.clone());
    }
    Ok(())
}

async fn write(store: &RedisStore, plan: Plan, progress: &dyn Progress) -> Result<(), TransferError> {
    let accounts: usize = plan.pools.iter().map(|p| p.accounts.len()).sum();
    progress.start("provider accounts", accounts);
    for pool in plan.pools {
        let n = pool.accounts.len();
        store.replace_pool(&pool.name, pool.accounts).await?;
        progress.advance(n);
    }
    progress.finish();
    progress.start("tokens, sessions and settings", plan.items.len());
    store.write_items(&plan.items, &mut |n| progress.advance(n)).await?;
    progress.finish();
    Ok(())
}

fn meta(keys: &Keys, sum: &MigrateSummary) -> BulkWrite {
    let fields: BTreeMap<&str, String> = BTreeMap::from([
        ("version", META_VERSION.to_string()),
        ("migratedAt", iso_now()),
        ("migratedFrom", "file".to_string()),
        // The reference counts accounts here (its `providerPoolsMigrated` is the number of nodes).
        ("providerPoolsMigrated", sum.providers_imported.to_string()),
        ("providersMigrated", sum.providers_imported.to_string()),
        ("tokensMigrated", sum.tokens_imported.to_string()),
        ("legacyTokensMigrated", sum.legacy_tokens_imported.to_string()),
        ("sessionsMigrated", sum.sessions_imported.to_string()),
        ("clientKeysMigrated", sum.client_keys_imported.to_string()),
        ("configMigrated", sum.config_imported.to_string()),
        ("passwordMigrated", sum.password_imported.to_string()),
    ]);
    BulkWrite::HSet { key: keys.meta(), fields: fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect() }
}
