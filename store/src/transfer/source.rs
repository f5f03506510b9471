//! Reads a legacy configuration directory (the reference's files, §7) into memory, item by item:
//! a bad item is recorded in `errors` and left out, every other item is still read.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::report::ItemError;
use super::session_hash;
use crate::account::Account;
use crate::file::{atomic, paths};
use crate::provider::{self, ProviderKind};

pub use crate::file::paths::{SESSION_KEY_FORMAT_FIELD, SESSION_KEY_FORMAT_SHA256};

/// Everything read from a configuration directory.
#[derive(Debug, Default)]
pub struct Source {
    pub config: Option<Value>,
    pub pools: Vec<PoolSource>,
    pub tokens: Vec<TokenSource>,
    pub password: Option<String>,
    pub sessions: Vec<SessionSource>,
    pub sessions_expired: usize,
    pub usage_cache: Option<Value>,
    pub plugins: Option<Value>,
    /// `input_system_prompt.txt`.
    pub system_prompt: Option<String>,
    /// `custom_models.json`.
    pub custom_models: Option<Value>,
    /// The reference's `api-potluck-keys.json`, as client keys.
    pub client_keys: Vec<super::potluck::Imported>,
    /// `api-potluck-data.json` is present (not imported: see `potluck`).
    pub potluck_data_present: bool,
    pub errors: Vec<ItemError>,
    /// How many of `errors` are items that do not parse (the rest are missing token files).
    pub unparsable: usize,
}

/// One provider type's accounts, in file order.
#[derive(Debug, Clone)]
pub struct PoolSource {
    pub name: String,
    pub accounts: Vec<Account>,
}

/// One token file and where it goes (`tokens:{pool}:{id}`).
#[derive(Debug, Clone)]
pub struct TokenSource {
    pub pool: String,
    /// The account uuid, or for legacy directory files the id derived from the file name.
    pub id: String,
    pub path: PathBuf,
    pub token: Value,
    /// Found by the legacy directory scan rather than through an account's path field.
    pub legacy: bool,
}

/// One live web UI session, keyed by SHA-256 of its bearer token.
#[derive(Debug, Clone)]
pub struct SessionSource {
    pub hash: String,
    pub session: Value,
    pub expires_at_ms: i64,
}

impl Source {
    /// Records an item that does not parse (as opposed to one that is missing).
    fn broken(&mut self, e: ItemError) {
        self.unparsable += 1;
        self.errors.push(e);
    }

    /// Reads `dir`; fails only when the directory itself cannot be read.
    pub async fn load(dir: &Path, now_ms: i64) -> crate::Result<Self> {
        tokio::fs::metadata(dir).await.map_err(|e| crate::StoreError::io(dir, e))?;
        let mut s = Self::default();
        s.config = s.object_file(&dir.join(paths::CONFIG)).await;
        s.password = s.password_file(&dir.join(paths::PASSWORD)).await;
        s.usage_cache = s.json_file(&dir.join(paths::USAGE)).await;
        s.plugins = s.object_file(&dir.join(paths::PLUGINS)).await;
        s.custom_models = match s.json_file(&dir.join(paths::CUSTOM_MODELS)).await {
            Some(v @ Value::Array(_)) => Some(v),
            Some(_) => {
                s.broken(ItemError::new(dir.join(paths::CUSTOM_MODELS).display().to_string(), "not a JSON array"));
                None
            }
            None => None,
        };
        s.system_prompt = match atomic::read(&dir.join(paths::SYSTEM_PROMPT)).await {
            Ok(p) => p.filter(|p| !p.trim().is_empty()),
            Err(e) => {
                s.broken(ItemError::new(dir.join(paths::SYSTEM_PROMPT).display().to_string(), e));
                None
            }
        };
        let errors_before = s.unparsable;
        if let Some(v) = s.json_file(&dir.join(paths::POOLS)).await {
            s.read_pools(&dir.join(paths::POOLS), v);
        }
        let pools_broken = s.unparsable > errors_before;
        if let Some(v) = s.json_file(&dir.join(paths::SESSIONS)).await {
            s.read_sessions(&dir.join(paths::SESSIONS), &v, now_ms);
        }
        s.read_potluck(dir, now_ms).await;
        let referenced = s.read_account_tokens(dir).await;
        // Token files a broken provider_pools.json would link are not guessed from file names.
        if !pools_broken {
            s.scan_legacy_dirs(dir, &referenced).await;
        }
        Ok(s)
    }

    async fn read_potluck(&mut self, dir: &Path, now_ms: i64) {
        let path = dir.join(super::potluck::KEYS_FILE);
        if let Some(v) = self.json_file(&path).await {
            match super::potluck::import_file(&v, now_ms) {
                Ok((keys, bad)) => {
                    self.client_keys = keys;
                    for (key, why) in bad {
                        self.broken(ItemError::new(format!("client key {key} in {}", path.display()), why));
                    }
                }
                Err(why) => self.broken(ItemError::new(path.display().to_string(), why)),
            }
        }
        self.potluck_data_present = tokio::fs::metadata(dir.join(super::potluck::DATA_FILE)).await.is_ok();
    }

    /// Number of accounts over all pools.
    pub fn account_count(&self) -> usize {
        self.pools.iter().map(|p| p.accounts.len()).sum()
    }

    async fn json_file(&mut self, path: &Path) -> Option<Value> {
        match atomic::read_json(path).await {
            Ok(v) => v,
            Err(e) => {
                self.broken(ItemError::new(path.display().to_string(), e));
                None
            }
        }
    }

    async fn object_file(&mut self, path: &Path) -> Option<Value> {
        match self.json_file(path).await? {
            v @ Value::Object(_) => Some(v),
            _ => {
                self.broken(ItemError::new(path.display().to_string(), "not a JSON object"));
                None
            }
        }
    }

    async fn password_file(&mut self, path: &Path) -> Option<String> {
        match atomic::read(path).await {
            Ok(v) => v.map(|p| p.trim().to_string()).filter(|p| !p.is_empty()),
            Err(e) => {
                self.broken(ItemError::new(path.display().to_string(), e));
                None
            }
        }
    }

    fn read_pools(&mut self, path: &Path, v: Value) {
        let Value::Object(pools) = v else {
            self.broken(ItemError::new(path.display().to_string(), "not a JSON object keyed by provider type"));
            return;
        };
        for (name, accounts) in pools {
            let Value::Array(items) = accounts else {
                self.broken(ItemError::new(format!("pool {name}"), "is not a JSON array of accounts"));
                continue;
            };
            let mut seen = HashSet::new();
            let mut pool = PoolSource { name: name.clone(), accounts: Vec::with_capacity(items.len()) };
            for (i, item) in items.into_iter().enumerate() {
                match account_of(item) {
                    Ok(a) if !seen.insert(a.uuid().to_string()) => self
                        .errors
                        .push(ItemError::new(format!("account {name}/{}", a.uuid()), "uuid repeated in the pool")),
                    Ok(a) => pool.accounts.push(a),
                    Err(msg) => self.broken(ItemError::new(format!("account {name}[{i}]"), msg)),
                }
            }
            self.pools.push(pool);
        }
    }

    fn read_sessions(&mut self, path: &Path, v: &Value, now_ms: i64) {
        let hashed = v.get(SESSION_KEY_FORMAT_FIELD).and_then(Value::as_str) == Some(SESSION_KEY_FORMAT_SHA256);
        let Some(tokens) = v.get("tokens").and_then(Value::as_object) else {
            if v.get("tokens").is_some() {
                self.broken(ItemError::new(path.display().to_string(), "\"tokens\" is not a JSON object"));
            }
            return;
        };
        for (i, (key, session)) in tokens.iter().enumerate() {
            // Name sessions by position: the key is a bearer credential.
            let item = format!("session #{} in {}", i + 1, path.display());
            let Some(expiry) = session.get("expiryTime").and_then(Value::as_i64) else {
                self.broken(ItemError::new(item, "has no integer \"expiryTime\""));
                continue;
            };
            if hashed && !is_sha256_hex(key) {
                self.broken(ItemError::new(item, "key is not a SHA-256 hex digest"));
                continue;
            }
            if expiry <= now_ms {
                self.sessions_expired += 1;
                continue;
            }
            let hash = if hashed { key.to_ascii_lowercase() } else { session_hash(key) };
            self.sessions.push(SessionSource { hash, session: session.clone(), expires_at_ms: expiry });
        }
    }

    /// Reads every account's token file; returns the files accounts point at (readable or not).
    async fn read_account_tokens(&mut self, dir: &Path) -> HashSet<PathBuf> {
        let mut found = Vec::new();
        for pool in &self.pools {
            let Some(kind) = provider::kind_of(&pool.name) else { continue };
            for acc in &pool.accounts {
                found.push((pool.name.clone(), acc.clone(), token_location(dir, kind, &pool.name, acc)));
            }
        }
        let mut referenced = HashSet::new();
        for (pool, acc, loc) in found {
            let Some((path, named)) = loc else { continue };
            referenced.insert(canonical(&path));
            let label = account_label(&pool, &acc);
            match read_token(&path).await {
                Ok(Some(token)) => {
                    self.tokens.push(TokenSource { pool, id: acc.uuid().to_string(), path, token, legacy: false })
                }
                Ok(None) if named => self.errors.push(ItemError::new(
                    format!("token of {label}"),
                    format!("token file {} not found", path.display()),
                )),
                Ok(None) => {}
                Err(msg) => self.broken(ItemError::new(format!("token of {label}"), msg)),
            }
        }
        referenced
    }

    /// Token files under the provider directories that no account points at (the reference's
    /// legacy layout, and `export`'s files for tokens without an account). Home directories
    /// (`~/.gemini` …) are deliberately not read: a migration must only read its config dir.
    async fn scan_legacy_dirs(&mut self, dir: &Path, used: &HashSet<PathBuf>) {
        let mut seen: BTreeSet<(String, String)> = self.tokens.iter().map(|t| (t.pool.clone(), t.id.clone())).collect();
        for kind in provider::known_types().filter_map(provider::kind_of) {
            if kind.token_path_field.is_none() {
                continue;
            }
            for (path, subdir) in legacy_files(&dir.join(kind.export_dir), kind).await {
                if used.contains(&canonical(&path)) {
                    continue;
                }
                let id = legacy_id(kind, &path, subdir.as_deref());
                let item = format!("legacy token {}", path.display());
                if !seen.insert((kind.base.to_string(), id.clone())) {
                    self.errors.push(ItemError::new(item, format!("id {id:?} is already taken in {}", kind.base)));
                    continue;
                }
                match read_token(&path).await {
                    Ok(Some(token)) => {
                        self.tokens.push(TokenSource { pool: kind.base.into(), id, path, token, legacy: true })
                    }
                    Ok(None) => {}
                    Err(msg) => self.broken(ItemError::new(item, msg)),
                }
            }
        }
    }
}

fn account_of(item: Value) -> Result<Account, String> {
    match item {
        Value::Object(map) => Account::from_map(map).map_err(|e| e.to_string()),
        _ => Err("not a JSON object".into()),
    }
}

/// `pool/uuid ("customName")`: how errors name an account.
pub fn account_label(pool: &str, acc: &Account) -> String {
    match acc.custom_name() {
        Some(n) => format!("account {pool}/{} ({n:?})", acc.uuid()),
        None => format!("account {pool}/{}", acc.uuid()),
    }
}

/// Where an account's token file is, and whether the account named it. `None` when the token
/// lives in Redis already (`redis:` marker) or the type has no token.
fn token_location(dir: &Path, kind: &ProviderKind, pool: &str, acc: &Account) -> Option<(PathBuf, bool)> {
    let field = kind.token_path_field?;
    match acc.get(field).and_then(Value::as_str).filter(|p| !p.is_empty()) {
        Some(p) if p.starts_with("redis:") => None,
        Some(p) => Some((paths::resolve_token_path(dir, p), true)),
        None if has_redis_marker(acc) => None,
        None => Some((paths::default_token_path(dir, pool, acc.uuid()), false)),
    }
}

fn has_redis_marker(acc: &Account) -> bool {
    acc.get(provider::KIRO_REDIS_MARKER_FIELD).and_then(Value::as_str).is_some_and(|p| p.starts_with("redis:"))
}

/// A token file as a JSON object; `Ok(None)` when the file does not exist.
async fn read_token(path: &Path) -> Result<Option<Value>, String> {
    match atomic::read_json(path).await.map_err(|e| e.to_string())? {
        Some(v @ Value::Object(_)) => Ok(Some(v)),
        Some(_) => Err(format!("{}: not a JSON object", path.display())),
        None => Ok(None),
    }
}

/// `*.json` files of a provider directory; for Kiro also `*kiro*.json` one subdirectory down
/// (the reference UI's `{epochMs}_kiro-auth-token/` layout). Sorted for a stable order.
async fn legacy_files(dir: &Path, kind: &ProviderKind) -> Vec<(PathBuf, Option<String>)> {
    let mut out = Vec::new();
    for (path, is_dir) in list_dir(dir).await {
        if !is_dir && is_json(&path) {
            out.push((path, None));
        } else if is_dir && provider::is_kiro(kind.base) {
            let sub = path.file_name().map(|n| n.to_string_lossy().into_owned());
            for (p, d) in list_dir(&path).await {
                let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                if !d && is_json(&p) && name.contains("kiro") {
                    out.push((p, sub.clone()));
                }
            }
        }
    }
    out
}

async fn list_dir(dir: &Path) -> Vec<(PathBuf, bool)> {
    let mut out = Vec::new();
    let Ok(mut rd) = tokio::fs::read_dir(dir).await else { return out };
    while let Ok(Some(e)) = rd.next_entry().await {
        let is_dir = e.file_type().await.map(|t| t.is_dir()).unwrap_or(false);
        out.push((e.path(), is_dir));
    }
    out.sort();
    out
}

fn is_json(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "json")
}

/// Id of a legacy token: `export`'s `{short}-{id}.json`, else the reference's rules (part of the
/// Kiro subdirectory before `_`, or the file name without `kiro-`/`codex-`/`gemini-`).
fn legacy_id(kind: &ProviderKind, path: &Path, subdir: Option<&str>) -> String {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    if let Some(rest) = stem.strip_prefix(&format!("{}-", kind.short_name)).filter(|r| !r.is_empty()) {
        return rest.to_string();
    }
    if let Some(sub) = subdir {
        return sub.split('_').next().unwrap_or(sub).to_string();
    }
    ["kiro-", "codex-", "gemini-"]
        .iter()
        .find_map(|p| stem.strip_prefix(p).filter(|r| !r.is_empty()))
        .unwrap_or(&stem)
        .to_string()
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_ids_follow_export_then_reference_rules() {
        let kiro = provider::kind_of("claude-kiro-oauth").expect("kind");
        let gem = provider::kind_of("gemini-cli-oauth").expect("kind");
        assert_eq!(legacy_id(gem, Path::new("/c/gemini/gemini-cli-abc.json"), None), "abc");
        assert_eq!(legacy_id(gem, Path::new("/c/gemini/gemini-1.json"), None), "1");
        assert_eq!(
            legacy_id(kiro, Path::new("/c/kiro/17_kiro-auth-token/17_kiro-auth-token.json"), Some("17_kiro")),
            "17"
        );
        assert_eq!(legacy_id(kiro, Path::new("/c/kiro/kiro-u1.json"), None), "u1");
    }
}
