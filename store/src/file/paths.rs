//! Where the reference's files live, and how account token paths resolve.

use std::path::{Path, PathBuf};

pub const CONFIG: &str = "config.json";
pub const POOLS: &str = "provider_pools.json";
pub const PASSWORD: &str = "pwd";
pub const SESSIONS: &str = "token-store.json";
pub const USAGE: &str = "usage-cache.json";
pub const PLUGINS: &str = "plugins.json";
/// The reference's system prompt file (`SYSTEM_PROMPT_FILE_PATH`'s default).
pub const SYSTEM_PROMPT: &str = "input_system_prompt.txt";
/// The reference's custom models (`CUSTOM_MODELS_FILE_PATH`'s default).
pub const CUSTOM_MODELS: &str = "custom_models.json";

/// Marker in token-store.json saying its keys are SHA-256 hashes of the session tokens (poolgate
/// writes it; the reference's files have raw tokens as keys and no marker).
pub const SESSION_KEY_FORMAT_FIELD: &str = "keyFormat";
pub const SESSION_KEY_FORMAT_SHA256: &str = "sha256";

/// Resolves an account's token path as the reference's migration does: `./x` is relative to the
/// parent of the config directory (the process working directory of a standard layout), other
/// relative paths to the config directory, absolute paths as they are.
pub fn resolve_token_path(config_dir: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else if let Some(rest) = path.strip_prefix("./") {
        config_dir.parent().unwrap_or(Path::new(".")).join(rest)
    } else {
        config_dir.join(p)
    }
}

/// Default token file of an account that names none: `{dir}/{export_dir}/{short}-{uuid}.json`.
pub fn default_token_path(config_dir: &Path, pool: &str, uuid: &str) -> PathBuf {
    match crate::provider::kind_of(pool) {
        Some(k) => config_dir.join(k.export_dir).join(format!("{}-{uuid}.json", k.short_name)),
        None => config_dir.join(pool).join(format!("{uuid}.json")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_paths_resolve_like_the_reference() {
        let dir = Path::new("/srv/app/configs");
        assert_eq!(resolve_token_path(dir, "./configs/kiro/a.json"), Path::new("/srv/app/configs/kiro/a.json"));
        assert_eq!(resolve_token_path(dir, "kiro/a.json"), Path::new("/srv/app/configs/kiro/a.json"));
        assert_eq!(resolve_token_path(dir, "/abs/a.json"), Path::new("/abs/a.json"));
        assert_eq!(default_token_path(dir, "openai-qwen-oauth", "u"), Path::new("/srv/app/configs/qwen/qwen-u.json"));
    }
}
