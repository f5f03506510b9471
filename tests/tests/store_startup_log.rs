//! Startup logging of the Redis backend. Its own test binary: a thread-local log subscriber is
//! only reliable when no other test in the process registers log callsites concurrently.

use std::sync::Arc;

use poolgate_store::{RedisStore, Storage};
use poolgate_tests::RedisServer;
use serde_json::json;

async fn open(server: &RedisServer) -> RedisStore {
    RedisStore::open(server.settings("log:")).await.expect("open store")
}

/// Collects log output of the current thread.
#[derive(Clone, Default)]
struct LogBuf(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn an_empty_redis_is_announced_with_the_commands_that_fill_it() {
    let server = RedisServer::start().expect("redis");
    let buf = LogBuf::default();
    let sink = buf.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || sink.clone()).with_ansi(false).finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let s = open(&server).await;
    let log = String::from_utf8_lossy(&buf.0.lock().expect("lock")).to_string();
    assert!(log.contains("poolgate migrate") && log.contains("poolgate init"), "{log}");
    s.set_config(&json!({})).await.expect("cfg");
    buf.0.lock().expect("lock").clear();
    let _again = open(&server).await;
    let log = String::from_utf8_lossy(&buf.0.lock().expect("lock")).to_string();
    assert!(!log.contains("poolgate migrate"), "no warning once data exists: {log}");
}
