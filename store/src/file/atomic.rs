//! Crash-safe file writes: write a sibling temp file, fsync, rename over the target.

use std::path::Path;

use crate::error::{Result, StoreError};

/// Replaces `path` with `bytes` atomically (readers see the old or the new file, never a mix).
pub async fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    write_mode(path, bytes, 0o644).await
}

/// [`write`] for secrets (token files): readable by the owner only, as the reference writes them.
pub async fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    write_mode(path, bytes, 0o600).await
}

async fn write_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(dir).await.map_err(|e| StoreError::io(dir, e))?;
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp.{}.{}", std::process::id(), crate::time::epoch_ms()));
    let result = async {
        let mut f = tokio::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp).await?;
        tokio::io::AsyncWriteExt::write_all(&mut f, bytes).await?;
        f.sync_all().await?;
        tokio::fs::rename(&tmp, path).await
    }
    .await;
    if let Err(e) = result {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(StoreError::io(path, e));
    }
    Ok(())
}

/// Reads a file; `None` when it does not exist.
pub async fn read(path: &Path) -> Result<Option<String>> {
    match tokio::fs::read_to_string(path).await {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io(path, e)),
    }
}

/// Reads and parses a JSON file; a parse error names the file, line and column.
pub async fn read_json(path: &Path) -> Result<Option<serde_json::Value>> {
    match read(path).await? {
        Some(text) => {
            serde_json::from_str(&text).map(Some).map_err(|e| StoreError::corrupt(path.display().to_string(), &e))
        }
        None => Ok(None),
    }
}

/// Pretty JSON with two-space indent, as the reference writes its files.
pub fn pretty(v: &serde_json::Value) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(v).unwrap_or_default();
    out.push(b'\n');
    out
}
