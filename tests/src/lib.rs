//! Harnesses for poolgate's system tests: a private Redis launcher, helpers to run the test
//! worker binaries, and fixtures in the reference implementation's exact formats.

pub mod forward_proxy;
pub mod mock_oauth;
pub mod mock_upstream;
pub mod otlp_receiver;
pub mod redis_ha;
pub mod redis_server;

pub use redis_server::RedisServer;

use std::path::PathBuf;

/// Directory of the fixture files (`tests/fixtures`).
pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}
