//! `export`: Redis → the reference's files, everything (config, pools, tokens, password,
//! sessions, usage cache, plugins). Token path fields of the accounts are rewritten to the
//! exported token files (relative to the output directory), so `migrate --config-dir OUT` into an
//! empty Redis reproduces the data. Output is deterministic: pool types and accounts sorted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use futures::StreamExt;
use serde_json::{json, Map, Value};

use super::report::{ExportSummary, ItemError};
use super::source::{SESSION_KEY_FORMAT_FIELD, SESSION_KEY_FORMAT_SHA256};
use super::{Progress, TransferError};
use crate::account::Account;
use crate::file::{atomic, paths};
use crate::provider;
use crate::time::epoch_ms;
use crate::RedisStore;

/// Concurrent file writes (token files are many and small).
const WRITE_CONCURRENCY: usize = 16;

/// Flags of `poolgate export`.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    pub output_dir: PathBuf,
    pub force: bool,
    pub dry_run: bool,
}

/// Everything read from Redis.
#[derive(Default)]
struct Snapshot {
    config: Option<String>,
    password: Option<String>,
    usage: Option<String>,
    plugins: Option<String>,
    system_prompt: Option<String>,
    custom_models: Option<String>,
    pools: BTreeMap<String, BTreeMap<String, String>>,
    tokens: BTreeMap<(String, String), String>,
    sessions: BTreeMap<String, String>,
}

/// A file to write: path relative to the output directory, and its bytes.
struct OutFile {
    rel: String,
    bytes: Vec<u8>,
}

pub async fn export(
    store: &RedisStore,
    opts: &ExportOptions,
    progress: &dyn Progress,
) -> Result<ExportSummary, TransferError> {
    let snap = read(store).await?;
    let client_keys = store.hash_fields(&store.keys().client_keys()).await?.len();
    let mut sum =
        ExportSummary { dry_run: opts.dry_run, client_keys_not_exported: client_keys, ..ExportSummary::default() };
    let files = build(&snap, &mut sum);
    if !opts.dry_run {
        write_files(&opts.output_dir, files, opts.force, &mut sum, progress).await?;
    } else {
        sum.files_written = files.into_iter().map(|f| f.rel).collect();
    }
    sum.success = sum.errors.is_empty();
    Ok(sum)
}

async fn read(store: &RedisStore) -> Result<Snapshot, TransferError> {
    let k = store.keys();
    let keys = [k.config(), k.password(), k.usage_cache(), k.plugins(), k.system_prompt(), k.custom_models()];
    let mut got = store.get_each(&keys).await?.into_iter();
    let mut snap = Snapshot {
        config: got.next().flatten(),
        password: got.next().flatten(),
        usage: got.next().flatten(),
        plugins: got.next().flatten(),
        system_prompt: got.next().flatten(),
        custom_models: got.next().flatten(),
        ..Snapshot::default()
    };
    // pool-types is the index, but a hash missing from it (reference bug 4) is exported too.
    let mut types: BTreeSet<String> = store.set_members(&k.pool_types()).await?;
    let pool_prefix = k.pool("");
    for key in store.scan_prefixed("pools:*").await? {
        types.extend(key.strip_prefix(&pool_prefix).map(str::to_string));
    }
    let types: Vec<String> = types.into_iter().collect();
    let pool_keys: Vec<String> = types.iter().map(|t| k.pool(t)).collect();
    snap.pools = types.into_iter().zip(store.hgetall_each(&pool_keys).await?).collect();

    let token_keys = store.scan_prefixed("tokens:*").await?;
    for (key, value) in token_keys.iter().zip(store.get_each(&token_keys).await?) {
        if let (Some(id), Some(v)) = (k.parse_token(key), value) {
            snap.tokens.insert(id, v);
        }
    }
    let session_keys = store.scan_prefixed("sessions:*").await?;
    let prefix = k.sessions_prefix();
    for (key, value) in session_keys.iter().zip(store.get_each(&session_keys).await?) {
        if let (Some(hash), Some(v)) = (key.strip_prefix(&prefix), value) {
            snap.sessions.insert(hash.to_string(), v);
        }
    }
    Ok(snap)
}

/// Relative path of an exported token file (the same layout `migrate` looks in by default).
pub fn token_file(pool: &str, id: &str) -> String {
    paths::default_token_path(Path::new(""), pool, id).to_string_lossy().replace('\\', "/")
}

fn parse(item: &str, raw: &str, sum: &mut ExportSummary) -> Option<Value> {
    match serde_json::from_str(raw) {
        Ok(v) => Some(v),
        Err(e) => {
            let detail = format!("stored value is not JSON: {e} (line {}, column {})", e.line(), e.column());
            sum.errors.push(ItemError::new(item, detail));
            None
        }
    }
}

fn build(snap: &Snapshot, sum: &mut ExportSummary) -> Vec<OutFile> {
    let mut files = Vec::new();
    let mut json_file = |rel: &str, raw: &Option<String>, sum: &mut ExportSummary| -> bool {
        let Some(v) = raw.as_deref().and_then(|r| parse(rel, r, sum)) else { return false };
        files.push(OutFile { rel: rel.into(), bytes: atomic::pretty(&v) });
        true
    };
    sum.config_exported = json_file(paths::CONFIG, &snap.config, sum);
    sum.usage_cache_exported = json_file(paths::USAGE, &snap.usage, sum);
    sum.plugins_exported = json_file(paths::PLUGINS, &snap.plugins, sum);
    sum.custom_models_exported = json_file(paths::CUSTOM_MODELS, &snap.custom_models, sum);
    if let Some(p) = &snap.password {
        files.push(OutFile { rel: paths::PASSWORD.into(), bytes: p.clone().into_bytes() });
        sum.password_exported = true;
    }
    if let Some(p) = snap.system_prompt.as_ref().filter(|p| !p.is_empty()) {
        files.push(OutFile { rel: paths::SYSTEM_PROMPT.into(), bytes: p.clone().into_bytes() });
        sum.system_prompt_exported = true;
    }
    files.extend(token_files(snap, sum));
    files.push(pools_file(snap, sum));
    if let Some(f) = sessions_file(snap, sum) {
        files.push(f);
    }
    files
}

fn token_files(snap: &Snapshot, sum: &mut ExportSummary) -> Vec<OutFile> {
    let mut out = Vec::new();
    for ((pool, id), raw) in &snap.tokens {
        let item = format!("token {pool}/{id}");
        if id.contains(['/', '\\']) || id.starts_with('.') {
            sum.errors.push(ItemError::new(item, "id cannot be used as a file name"));
            continue;
        }
        if let Some(v) = parse(&item, raw, sum) {
            out.push(OutFile { rel: token_file(pool, id), bytes: atomic::pretty(&v) });
            sum.tokens_exported += 1;
        }
    }
    out
}

fn pools_file(snap: &Snapshot, sum: &mut ExportSummary) -> OutFile {
    let mut pools = Map::new();
    for (pool, accounts) in &snap.pools {
        let mut list = Vec::with_capacity(accounts.len());
        for (uuid, raw) in accounts {
            let location = format!("account {pool}/{uuid}");
            match Account::parse(raw, &location) {
                Ok(acc) => list.push(Value::Object(rewrite_token_path(pool, acc, &snap.tokens))),
                Err(e) => sum.errors.push(ItemError::new(location, e)),
            }
        }
        sum.providers_exported += list.len();
        sum.pools_exported += 1;
        pools.insert(pool.clone(), Value::Array(list));
    }
    OutFile { rel: paths::POOLS.into(), bytes: atomic::pretty(&Value::Object(pools)) }
}

/// Points the account's token path field at its exported token file (when it has a token).
fn rewrite_token_path(pool: &str, acc: Account, tokens: &BTreeMap<(String, String), String>) -> Map<String, Value> {
    let field = provider::kind_of(pool).and_then(|k| k.token_path_field);
    let mut map = acc.into_map();
    let uuid = map.get("uuid").and_then(Value::as_str).unwrap_or_default().to_string();
    if let Some(field) = field {
        if tokens.contains_key(&(pool.to_string(), uuid.clone())) {
            map.insert(field.to_string(), Value::String(token_file(pool, &uuid)));
        }
    }
    map
}

/// token-store.json with SHA-256 keys, marked so `migrate` does not hash them again.
fn sessions_file(snap: &Snapshot, sum: &mut ExportSummary) -> Option<OutFile> {
    if snap.sessions.is_empty() {
        return None;
    }
    let now = epoch_ms();
    let mut tokens = Map::new();
    for (i, (key, raw)) in snap.sessions.iter().enumerate() {
        let Some(mut v) = parse(&format!("session #{}", i + 1), raw, sum) else { continue };
        // poolgate marks the sessions it writes (key = SHA-256 of the token); the reference's keys
        // are the raw tokens, hashed here so the whole file is in the one format it declares.
        let hashed =
            v.as_object_mut().and_then(|o| o.remove(SESSION_KEY_FORMAT_FIELD)).as_ref().and_then(Value::as_str)
                == Some(SESSION_KEY_FORMAT_SHA256);
        let hash = if hashed { key.clone() } else { super::session_hash(key) };
        if v.get("expiryTime").and_then(Value::as_i64).is_some_and(|t| t > now) {
            tokens.insert(hash, v);
            sum.sessions_exported += 1;
        }
    }
    let doc = json!({ SESSION_KEY_FORMAT_FIELD: SESSION_KEY_FORMAT_SHA256, "tokens": tokens });
    Some(OutFile { rel: paths::SESSIONS.into(), bytes: atomic::pretty(&doc) })
}

async fn write_files(
    dir: &Path,
    files: Vec<OutFile>,
    force: bool,
    sum: &mut ExportSummary,
    progress: &dyn Progress,
) -> Result<(), TransferError> {
    tokio::fs::create_dir_all(dir).await.map_err(|e| crate::StoreError::io(dir, e))?;
    progress.start("files", files.len());
    let results: Vec<(String, Result<bool, crate::StoreError>)> = futures::stream::iter(files)
        .map(|f| async move {
            let r = write_one(&dir.join(&f.rel), &f.bytes, force).await;
            progress.advance(1);
            (f.rel, r)
        })
        .buffered(WRITE_CONCURRENCY)
        .collect()
        .await;
    progress.finish();
    for (rel, r) in results {
        match r {
            Ok(true) => sum.files_written.push(rel),
            Ok(false) => sum.files_skipped.push(rel),
            Err(e) => sum.errors.push(ItemError::new(rel, e)),
        }
    }
    Ok(())
}

/// Writes one file atomically and owner-only from the start (every exported file holds
/// credentials): temp file created with mode 0600, synced, renamed over the target.
/// `Ok(false)` when it exists and `force` is off.
async fn write_one(path: &Path, bytes: &[u8], force: bool) -> Result<bool, crate::StoreError> {
    if !force && tokio::fs::try_exists(path).await.unwrap_or(false) {
        return Ok(false);
    }
    let (path, bytes) = (path.to_path_buf(), bytes.to_vec());
    tokio::task::spawn_blocking(move || write_private(&path, &bytes).map_err(|e| crate::StoreError::io(&path, e)))
        .await
        .map_err(|e| crate::StoreError::Invalid(format!("file writer stopped: {e}")))??;
    Ok(true)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp.{}", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let result = (|| {
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
