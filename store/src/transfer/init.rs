//! `init`: seeds an empty Redis with everything the proxy needs to start without files —
//! config, empty pools for the default provider types (with `pool-types`), default plugins,
//! password, metadata. On an initialised Redis it changes nothing unless asked: `defaults`
//! fills in only missing keys, `force` overwrites config, password and plugins (never pools).

use serde_json::{json, Value};

use super::report::InitSummary;
use super::{TransferError, META_VERSION};
use crate::provider;
use crate::redis::bulk::BulkWrite;
use crate::time::iso_now;
use crate::RedisStore;

/// Reference default port.
pub const DEFAULT_PORT: u16 = 3000;

/// Flags of `poolgate init`.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub api_key: Option<String>,
    pub port: u16,
    pub password: Option<String>,
    /// On an initialised Redis, write the keys that are missing (never overwrite).
    pub defaults: bool,
    pub force: bool,
    pub dry_run: bool,
}

impl Default for InitOptions {
    fn default() -> Self {
        Self { api_key: None, port: DEFAULT_PORT, password: None, defaults: false, force: false, dry_run: false }
    }
}

/// The reference's default config.json (`init-redis.js`).
pub fn default_config(api_key: &str, port: u16) -> Value {
    json!({
        "REQUIRED_API_KEY": api_key, "SERVER_PORT": port, "HOST": "0.0.0.0", "MODEL_PROVIDER": "gemini-cli-oauth",
        "SYSTEM_PROMPT_FILE_PATH": "configs/input_system_prompt.txt", "SYSTEM_PROMPT_MODE": "append",
        "PROMPT_LOG_BASE_NAME": "prompt_log", "PROMPT_LOG_MODE": "none", "REQUEST_MAX_RETRIES": 3,
        "REQUEST_BASE_DELAY": 1000, "CREDENTIAL_SWITCH_MAX_RETRIES": 5, "CRON_NEAR_MINUTES": 15,
        "CRON_REFRESH_TOKEN": false, "PROVIDER_POOLS_FILE_PATH": "configs/provider_pools.json",
        "MAX_ERROR_COUNT": 10, "WARMUP_TARGET": 0, "REFRESH_TOKENS_AT_STARTUP": true,
        "providerFallbackChain": {}, "modelFallbackMapping": {}
    })
}

/// The reference's default plugins.json.
pub fn default_plugins() -> Value {
    json!({"plugins": {
        "api-potluck": {"enabled": true, "description": "API 大锅饭 - Key 管理和用量统计插件"},
        "default-auth": {"enabled": true, "description": "默认 API Key 认证插件"}
    }})
}

/// `sk-` + 24 random bytes in hex, as the reference generates API keys.
pub fn generate_api_key() -> String {
    format!("sk-{}", hex::encode(rand::random::<[u8; 24]>()))
}

/// A random web UI password (16 random bytes in hex).
pub fn generate_password() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

pub async fn init(store: &RedisStore, opts: &InitOptions) -> Result<InitSummary, TransferError> {
    let k = store.keys();
    let mut sum = InitSummary { dry_run: opts.dry_run, ..InitSummary::default() };
    if store.has_data().await? && !opts.force && !opts.defaults {
        sum.already_initialized = true;
        sum.success = true;
        return Ok(sum);
    }
    let names = ["config", "pwd", "plugins", "pool-types"];
    let keys = [k.config(), k.password(), k.plugins(), k.pool_types()];
    let exists = store.exists_each(&keys).await?;
    let mut items = Vec::new();
    for ((name, key), exists) in names.into_iter().zip(keys).zip(exists) {
        if exists && !opts.force {
            sum.kept.push(name.to_string());
            continue;
        }
        sum.written.push(name.to_string());
        items.push(write_for(name, key, opts, &mut sum));
    }
    if items.is_empty() {
        sum.success = true;
        return Ok(sum);
    }
    sum.written.push("meta".into());
    items.push(vec![meta(k)]);
    if !opts.dry_run {
        store.write_items(&items, &mut |_| {}).await?;
    }
    sum.success = true;
    Ok(sum)
}

/// The commands seeding one key; generates credentials that were not given (never in a dry run).
fn write_for(name: &str, key: String, opts: &InitOptions, sum: &mut InitSummary) -> Vec<BulkWrite> {
    let generate = |given: &Option<String>, gen: fn() -> String| match given {
        Some(v) => (v.clone(), false),
        None if opts.dry_run => (String::new(), false),
        None => (gen(), true),
    };
    match name {
        "config" => {
            let (api_key, generated) = generate(&opts.api_key, generate_api_key);
            if generated {
                sum.generated_api_key = Some(api_key.clone());
            }
            vec![BulkWrite::Set { key, value: default_config(&api_key, opts.port).to_string() }]
        }
        "pwd" => {
            let (pwd, generated) = generate(&opts.password, generate_password);
            if generated {
                sum.generated_password = Some(pwd.clone());
            }
            // Stored hashed; an empty value (dry run) stays empty.
            let value = if pwd.is_empty() { pwd } else { crate::password::hash(&pwd) };
            vec![BulkWrite::Set { key, value }]
        }
        "plugins" => vec![BulkWrite::Set { key, value: default_plugins().to_string() }],
        _ => {
            sum.pool_types = provider::known_types().map(str::to_string).collect();
            // Empty pools exist only as `pool-types` members: Redis has no empty hashes.
            sum.pool_types.iter().map(|t| BulkWrite::SAdd { key: key.clone(), member: t.clone() }).collect()
        }
    }
}

fn meta(k: &crate::Keys) -> BulkWrite {
    let fields =
        [("version", META_VERSION.to_string()), ("initializedAt", iso_now()), ("initializedFrom", "cli-init".into())];
    BulkWrite::HSet { key: k.meta(), fields: fields.into_iter().map(|(f, v)| (f.to_string(), v)).collect() }
}
