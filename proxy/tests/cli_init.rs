//! `poolgate init` end to end: seeding a fresh Redis, idempotent retries (Kubernetes Jobs),
//! generated credentials printed once, given credentials never printed.

mod cli_common;

use cli_common::*;
use poolgate_store::redis::bulk::DumpValue;
use poolgate_store::{provider, transfer, Keys, RedisStore, Storage};
use poolgate_tests::RedisServer;

fn init(server: &RedisServer, extra: &[&str]) -> Run {
    let url = server.url();
    let mut args = vec!["init", "--redis-url", &url];
    args.extend_from_slice(extra);
    poolgate(&args)
}

#[tokio::test]
async fn init_seeds_everything_the_proxy_needs_and_prints_generated_credentials_once() {
    let server = RedisServer::start().expect("redis");
    let run = init(&server, &[]);
    assert_eq!(run.code, 0, "{}", run.all());
    let d = dump(&server, PREFIX).await;
    let k = Keys::default();

    let config = string_json(&d, &k.config());
    let key = config["REQUIRED_API_KEY"].as_str().expect("api key");
    assert!(key.starts_with("sk-") && key.len() == 51, "{key}");
    assert_eq!(run.stdout.matches(key).count(), 1, "printed exactly once");
    assert_eq!(config["SERVER_PORT"], 3000);
    let DumpValue::String(stored) = &d[&k.password()].value else { panic!("pwd") };
    assert!(stored.starts_with("pbkdf2:"), "stored hashed: {stored}");
    let line = run.stdout.lines().find(|l| l.starts_with("Generated web UI password: ")).expect("printed");
    let pwd = line.trim_start_matches("Generated web UI password: ").trim();
    assert!(poolgate_store::password::verify(pwd, stored), "the printed password opens the stored hash");
    assert_eq!(run.stdout.matches(pwd).count(), 1);
    assert_ne!(pwd, "admin123", "no well-known default password");
    assert_eq!(string_json(&d, &k.plugins()), transfer::init::default_plugins());
    let DumpValue::Set(types) = &d[&k.pool_types()].value else { panic!("pool-types") };
    assert_eq!(types.len(), provider::known_types().count());
    let DumpValue::Hash(meta) = &d[&k.meta()].value else { panic!("meta") };
    assert_eq!(meta["initializedFrom"], "cli-init");
    assert_eq!(meta["version"], "1.0");

    // The storage layer (what the proxy starts on) reads it all without any file.
    let store = RedisStore::open_connected(server.settings(PREFIX)).await.expect("open");
    assert!(store.has_data().await.expect("has data"));
    assert_eq!(store.get_config().await.expect("config").expect("some")["REQUIRED_API_KEY"], key);
    assert_eq!(store.list_pool_types().await.expect("types").len(), provider::known_types().count());
    assert!(store.get_pool("claude-kiro-oauth").await.expect("pool").is_empty());
}

#[tokio::test]
async fn a_retried_init_changes_nothing_and_exits_0() {
    let server = RedisServer::start().expect("redis");
    assert_eq!(init(&server, &[]).code, 0);
    let before = dump(&server, PREFIX).await;
    let run = init(&server, &["--json"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(run.json()["alreadyInitialized"], true);
    assert!(run.json().get("generatedApiKey").is_none());
    assert_same_dump(&before, &dump(&server, PREFIX).await, &[]);
    let human = init(&server, &[]);
    assert!(human.stdout.contains("already initialised"), "{}", human.stdout);
}

#[tokio::test]
async fn given_credentials_are_stored_and_never_printed() {
    let server = RedisServer::start().expect("redis");
    let run = init(&server, &["--api-key", "sk-given-123", "--password", "pw-given-456", "--port", "8080"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(!run.all().contains("sk-given-123") && !run.all().contains("pw-given-456"), "{}", run.all());
    let d = dump(&server, PREFIX).await;
    assert_eq!(string_json(&d, "aiclient:config")["REQUIRED_API_KEY"], "sk-given-123");
    assert_eq!(string_json(&d, "aiclient:config")["SERVER_PORT"], 8080);
    let DumpValue::String(stored) = &d["aiclient:pwd"].value else { panic!("pwd") };
    assert!(stored.starts_with("pbkdf2:") && poolgate_store::password::verify("pw-given-456", stored));
}

#[tokio::test]
async fn dry_run_writes_nothing_and_generates_nothing() {
    let server = RedisServer::start().expect("redis");
    let run = init(&server, &["--dry-run", "--json"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(dbsize(&server), 0);
    let s = run.json();
    assert!(s.get("generatedApiKey").is_none() && s.get("generatedPassword").is_none());
    assert_eq!(s["written"], serde_json::json!(["config", "pwd", "plugins", "pool-types", "meta"]));
}

#[tokio::test]
async fn defaults_fills_in_missing_keys_and_force_overwrites() {
    let server = RedisServer::start().expect("redis");
    // A migrated deployment without a password or plugins (the reference's 6042bbf lesson).
    server.cli(&["SET", "aiclient:config", r#"{"REQUIRED_API_KEY":"sk-mine"}"#]).expect("set");
    assert_eq!(init(&server, &[]).code, 0);
    assert_eq!(dbsize(&server), 1, "initialised Redis: no change without --defaults/--force");

    let run = init(&server, &["--defaults", "--password", "pw-x", "--json"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let s = run.json();
    assert_eq!(s["kept"], serde_json::json!(["config"]));
    assert!(s.get("generatedApiKey").is_none());
    let d = dump(&server, PREFIX).await;
    assert_eq!(string_json(&d, "aiclient:config")["REQUIRED_API_KEY"], "sk-mine", "never overwritten");
    assert!(
        d.contains_key("aiclient:pwd") && d.contains_key("aiclient:plugins") && d.contains_key("aiclient:pool-types")
    );

    assert_eq!(init(&server, &["--force", "--api-key", "sk-new"]).code, 0);
    let d = dump(&server, PREFIX).await;
    assert_eq!(string_json(&d, "aiclient:config")["REQUIRED_API_KEY"], "sk-new");
}

#[tokio::test]
async fn init_after_migrate_is_a_no_op() {
    let server = RedisServer::start().expect("redis");
    let fx = Fixture::clean();
    let (url, dir) = (server.url(), fx.configs_str());
    assert_eq!(poolgate(&["migrate", "--config-dir", &dir, "--redis-url", &url]).code, 0);
    let before = dump(&server, PREFIX).await;
    assert_eq!(init(&server, &[]).code, 0);
    assert_same_dump(&before, &dump(&server, PREFIX).await, &[]);
}

#[test]
fn unreachable_redis_exits_1_and_bad_port_exits_2() {
    assert_eq!(poolgate(&["init", "--redis-url", "redis://127.0.0.1:1/0"]).code, 1);
    assert_eq!(poolgate(&["init", "--port", "0"]).code, 2);
    assert_eq!(poolgate(&["init", "--port", "70000"]).code, 2);
}

/// `poolgate init` with secrets only in the environment (as the operator's init Job runs it).
fn init_with_env(server: &RedisServer, env: &[(&str, &str)], extra: &[&str]) -> Run {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_poolgate"));
    for var in ["REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD", "REDIS_DB", "REDIS_KEY_PREFIX", "REDIS_ENABLED"] {
        cmd.env_remove(var);
    }
    cmd.env("REDIS_URL", server.url());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.arg("init").args(extra).output().expect("run poolgate");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test]
async fn init_takes_credentials_from_the_environment_and_quiet_secrets_never_prints_one() {
    let server = RedisServer::start().expect("redis");
    let run = init_with_env(
        &server,
        &[("POOLGATE_API_KEY", "sk-from-env-0123"), ("POOLGATE_ADMIN_PASSWORD", "pw-from-env-0123")],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.all());
    let d = dump(&server, PREFIX).await;
    let k = Keys::default();
    assert_eq!(string_json(&d, &k.config())["REQUIRED_API_KEY"], "sk-from-env-0123");
    let DumpValue::String(stored) = &d[&k.password()].value else { panic!("pwd") };
    assert!(poolgate_store::password::verify("pw-from-env-0123", stored), "stored hashed: {stored}");
    assert!(!run.all().contains("from-env"), "given credentials are never printed: {}", run.all());

    // Generated ones are not printed either with --quiet-secrets (human or JSON).
    for extra in [&["--quiet-secrets"][..], &["--quiet-secrets", "--json"][..]] {
        let server = RedisServer::start().expect("redis");
        let run = init_with_env(&server, &[], extra);
        assert_eq!(run.code, 0, "{}", run.all());
        let d = dump(&server, PREFIX).await;
        let DumpValue::String(pwd) = &d[&k.password()].value else { panic!("pwd") };
        let key = string_json(&d, &k.config())["REQUIRED_API_KEY"].as_str().map(str::to_string).expect("key");
        assert!(!run.all().contains(pwd.as_str()) && !run.all().contains(&key), "{extra:?}: {}", run.all());
    }
    let help = init_with_env(&server, &[("POOLGATE_ADMIN_PASSWORD", "pw-in-help-0123")], &["--help"]);
    assert!(!help.all().contains("pw-in-help-0123"), "--help must not show env values");
}
