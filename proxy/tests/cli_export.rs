//! `poolgate export` end to end: round trip through files into a second, empty Redis, and the
//! exported files in the reference's formats.

mod cli_common;

use std::collections::BTreeMap;
use std::path::Path;

use cli_common::*;
use poolgate_store::redis::bulk::{DumpEntry, DumpValue};
use poolgate_store::{provider, transfer};
use poolgate_tests::RedisServer;
use serde_json::Value;

fn migrate_dir(server: &RedisServer, dir: &Path) -> Run {
    let (url, dir) = (server.url(), dir.display().to_string());
    poolgate(&["migrate", "--config-dir", &dir, "--redis-url", &url, "--verify"])
}

fn export_to(server: &RedisServer, dir: &Path, extra: &[&str]) -> Run {
    let (url, dir) = (server.url(), dir.display().to_string());
    let mut args = vec!["export", "--output-dir", &dir, "--redis-url", &url];
    args.extend_from_slice(extra);
    poolgate(&args)
}

/// `d` with every account's token path field pointing at its exported token file — the one
/// deliberate difference export introduces.
fn with_exported_token_paths(d: &BTreeMap<String, DumpEntry>) -> BTreeMap<String, DumpEntry> {
    let mut out = d.clone();
    for (key, entry) in out.iter_mut() {
        let Some(pool) = key.strip_prefix("aiclient:pools:") else { continue };
        let Some(field) = provider::kind_of(pool).and_then(|k| k.token_path_field) else { continue };
        let DumpValue::Hash(h) = &mut entry.value else { panic!("{key} is a hash") };
        for (uuid, json) in h.iter_mut() {
            if !d.contains_key(&format!("aiclient:tokens:{pool}:{uuid}")) {
                continue;
            }
            let mut acc: serde_json::Map<String, Value> = serde_json::from_str(json).expect("json");
            acc.insert(field.to_string(), Value::String(transfer::export::token_file(pool, uuid)));
            *json = serde_json::to_string(&acc).expect("json");
        }
    }
    out
}

fn files_under(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).expect("prefix").display().to_string();
                out.insert(rel, std::fs::read(&p).expect("read"));
            }
        }
    }
    out
}

#[tokio::test]
async fn export_then_migrate_into_an_empty_redis_reproduces_the_data() {
    let (r1, r2, r3) =
        (RedisServer::start().expect("r1"), RedisServer::start().expect("r2"), RedisServer::start().expect("r3"));
    let fx = Fixture::clean();
    assert_eq!(migrate_dir(&r1, &fx.configs()).code, 0);
    let d1 = dump(&r1, PREFIX).await;

    let out = tempfile::tempdir().expect("tmp");
    let run = export_to(&r1, out.path(), &["--json"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let s = run.json();
    assert_eq!(s["tokensExported"], 6);
    assert_eq!(s["providersExported"], 12);
    assert_eq!(s["sessionsExported"], 1);

    let run = migrate_dir(&r2, out.path());
    assert_eq!(run.code, 0, "{}", run.all());
    let d2 = dump(&r2, PREFIX).await;
    assert_same_dump(&with_exported_token_paths(&d1), &d2, &["migratedAt"]);

    // A second round is an exact fixed point: same files, same Redis.
    let out2 = tempfile::tempdir().expect("tmp");
    assert_eq!(export_to(&r2, out2.path(), &[]).code, 0);
    assert_eq!(files_under(out.path()), files_under(out2.path()), "export is deterministic");
    assert_eq!(migrate_dir(&r3, out2.path()).code, 0);
    assert_same_dump(&d2, &dump(&r3, PREFIX).await, &["migratedAt"]);
}

#[tokio::test]
async fn exported_files_parse_in_the_reference_formats() {
    let server = RedisServer::start().expect("redis");
    let fx = Fixture::clean();
    assert_eq!(migrate_dir(&server, &fx.configs()).code, 0);
    let out = tempfile::tempdir().expect("tmp");
    assert_eq!(export_to(&server, out.path(), &[]).code, 0);
    let o = out.path();

    assert_eq!(read_json(&o.join("config.json")), fx.read_json("config.json"));
    assert_eq!(std::fs::read_to_string(o.join("pwd")).expect("pwd"), "s3cret-demo");
    assert_eq!(read_json(&o.join("plugins.json")), fx.read_json("plugins.json"));
    assert_eq!(read_json(&o.join("usage-cache.json")), fx.read_json("usage-cache.json"));

    // provider_pools.json: {type: [account]}, empty pools kept, token paths → exported files.
    let pools = read_json(&o.join("provider_pools.json"));
    let src = fx.read_json("provider_pools.json");
    assert_eq!(pools.as_object().map(|m| m.len()), src.as_object().map(|m| m.len()));
    assert_eq!(pools["claude-custom-empty"], Value::Array(vec![]));
    for (t, accounts) in pools.as_object().expect("obj") {
        let field = provider::kind_of(t).and_then(|k| k.token_path_field);
        for a in accounts.as_array().expect("array") {
            assert!(a["uuid"].is_string());
            let Some(path) = field.and_then(|f| a[f].as_str()) else { continue };
            let token = read_json(&poolgate_store::file::paths::resolve_token_path(o, path));
            let native = provider::refresh_field(t);
            assert!(token[native].is_string(), "{t} token keeps its native field {native}");
        }
    }
    assert_eq!(pools["openai-custom-eu"][0]["customName"], src["openai-custom-eu"][0]["customName"], "unicode/escapes");
    assert_eq!(pools["gemini-antigravity"][0]["extraNested"], src["gemini-antigravity"][0]["extraNested"]);
    assert_eq!(pools["openai-custom-eu"][0]["usageCount"], 9007199254740000u64);

    // token-store.json: {tokens: {sha256 hex: {username, loginTime, expiryTime}}}.
    let store = read_json(&o.join("token-store.json"));
    let tokens = store["tokens"].as_object().expect("tokens");
    assert_eq!(tokens.len(), 1);
    let (hash, session) = tokens.iter().next().expect("one");
    assert_eq!(hash.len(), 64);
    assert!(session["username"].is_string() && session["loginTime"].is_i64() && session["expiryTime"].is_i64());
    assert!(session.get("keyFormat").is_none(), "the marker stays in Redis: {session}");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(o.join("pwd")).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "credentials are owner-only");
    }
}

#[tokio::test]
async fn existing_files_are_kept_unless_force() {
    let server = RedisServer::start().expect("redis");
    let fx = Fixture::clean();
    assert_eq!(migrate_dir(&server, &fx.configs()).code, 0);
    let out = tempfile::tempdir().expect("tmp");
    std::fs::write(out.path().join("pwd"), "keep-me").expect("write");
    let run = export_to(&server, out.path(), &["--json"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(run.json()["filesSkipped"], serde_json::json!(["pwd"]));
    assert_eq!(std::fs::read_to_string(out.path().join("pwd")).expect("pwd"), "keep-me");
    assert_eq!(export_to(&server, out.path(), &["--force"]).code, 0);
    assert_eq!(std::fs::read_to_string(out.path().join("pwd")).expect("pwd"), "s3cret-demo");
}

#[tokio::test]
async fn export_never_prints_secrets_and_fails_with_1_when_redis_is_down() {
    let server = RedisServer::start().expect("redis");
    let fx = Fixture::clean();
    assert_eq!(migrate_dir(&server, &fx.configs()).code, 0);
    let out = tempfile::tempdir().expect("tmp");
    let run = export_to(&server, out.path(), &[]);
    for secret in ["s3cret-demo", "sk-demo-key", "aoaAAAAA"] {
        assert!(!run.all().contains(secret), "{secret}");
    }
    let dir = out.path().display().to_string();
    let run = poolgate(&["export", "--output-dir", &dir, "--redis-url", "redis://:pw-secret@127.0.0.1:1/0"]);
    assert_eq!(run.code, 1);
    assert!(!run.all().contains("pw-secret"));
}

#[tokio::test]
async fn sessions_the_reference_wrote_are_exported_under_their_hash() {
    use poolgate_store::Storage;
    let server = RedisServer::start().expect("redis");
    let raw = "ab".repeat(32);
    let expiry = poolgate_store::time::epoch_ms() + 3_600_000;
    let value = serde_json::json!({"username": "admin", "loginTime": 1, "expiryTime": expiry}).to_string();
    // The reference: key = the raw bearer token.
    server.cli(&["SET", &format!("aiclient:sessions:{raw}"), &value, "EX", "3600"]).expect("redis-cli");
    let store = poolgate_store::RedisStore::open(server.settings("aiclient:")).await.expect("store");
    let own = poolgate_store::Session { username: "admin".into(), login_time: 2, expiry_time: expiry };
    store.put_session("cd".repeat(32).as_str(), &own).await.expect("session");
    store.flush().await.expect("flush");
    let out = tempfile::tempdir().expect("dir");
    let run = export_to(&server, out.path(), &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    let doc = read_json(&out.path().join("token-store.json"));
    assert_eq!(doc["keyFormat"], "sha256");
    let tokens = doc["tokens"].as_object().expect("tokens");
    assert!(tokens.contains_key(&transfer::session_hash(&raw)), "the raw token is hashed: {doc}");
    assert!(!tokens.contains_key(&raw), "{doc}");
    assert!(tokens.contains_key(&transfer::session_hash(&"cd".repeat(32))), "poolgate's own key as is: {doc}");
}
