//! `poolgate migrate` end to end: the real binary against a private redis-server, on copies of
//! the reference fixtures (every provider type, empty pool, `<type>-<suffix>` pool, unicode,
//! unknown nested fields, a missing token file, live and expired sessions).

mod cli_common;

use cli_common::*;
use poolgate_store::redis::bulk::DumpValue;
use poolgate_store::{provider, transfer, Keys};
use poolgate_tests::RedisServer;
use serde_json::{json, Value};

fn migrate(server: &RedisServer, fx: &Fixture, extra: &[&str]) -> Run {
    let url = server.url();
    let dir = fx.configs_str();
    let mut args = vec!["migrate", "--config-dir", &dir, "--redis-url", &url];
    args.extend_from_slice(extra);
    poolgate(&args)
}

#[tokio::test]
async fn migrate_with_verify_passes_and_names_the_account_whose_token_file_is_missing() {
    let server = RedisServer::start().expect("redis");
    let fx = Fixture::new();
    let run = migrate(&server, &fx, &["--verify", "--json"]);
    let s = run.json();
    assert_eq!(run.code, 3, "an item failed, so exit 3: {}", run.all());
    assert_eq!(s["verified"], true, "{s}");
    assert_eq!(s["verifyErrors"], json!([]));
    let errors = s["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = errors[0].to_string();
    assert!(e.contains(MISSING_TOKEN_UUID) && e.contains("Codex missing token file"), "{e}");
    assert!(e.contains("codex-missing@example.com.json"), "{e}");
    // The account itself still imports; only its token is missing.
    let d = dump(&server, PREFIX).await;
    match &d["aiclient:pools:openai-codex-oauth"].value {
        DumpValue::Hash(h) => assert!(h.contains_key(MISSING_TOKEN_UUID)),
        other => panic!("{other:?}"),
    }
    assert!(!d.contains_key(&format!("aiclient:tokens:openai-codex-oauth:{MISSING_TOKEN_UUID}")));
}

#[tokio::test]
async fn clean_fixtures_migrate_with_exit_0_and_summary_counts() {
    let server = RedisServer::start().expect("redis");
    let fx = Fixture::clean();
    let run = migrate(&server, &fx, &["--verify", "--json"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let s = run.json();
    assert_eq!(s["success"], true);
    assert_eq!(s["poolsImported"], 12);
    assert_eq!(s["providersImported"], 12);
    assert_eq!(s["tokensImported"], 6, "one token per OAuth type (Kiro's Redis-native account has none)");
    assert_eq!(s["configImported"], true);
    assert_eq!(s["passwordImported"], true);
    assert_eq!(s["usageCacheImported"], true);
    assert_eq!(s["pluginsImported"], true);
    assert_eq!(s["sessionsImported"], 1);
    assert_eq!(s["sessionsExpired"], 1);
    assert_eq!(s["verified"], true);
}

#[tokio::test]
async fn every_item_lands_under_the_reference_keys() {
    let server = RedisServer::start().expect("redis");
    let fx = Fixture::clean();
    assert_eq!(migrate(&server, &fx, &[]).code, 0);
    let d = dump(&server, PREFIX).await;
    let k = Keys::default();

    // Pools: every type (suffixed and empty ones included) in pool-types; accounts verbatim.
    let pools = fx.read_json("provider_pools.json");
    let types: Vec<String> = pools.as_object().expect("obj").keys().cloned().collect();
    match &d[&k.pool_types()].value {
        DumpValue::Set(s) => assert_eq!(s.iter().cloned().collect::<Vec<_>>(), sorted(types.clone())),
        other => panic!("{other:?}"),
    }
    assert!(!d.contains_key(&k.pool("claude-custom-empty")), "Redis has no empty hashes");
    for (t, accounts) in pools.as_object().expect("obj") {
        for a in accounts.as_array().expect("array") {
            let uuid = a["uuid"].as_str().expect("uuid");
            let DumpValue::Hash(h) = &d[&k.pool(t)].value else { panic!("hash") };
            let stored: Value = serde_json::from_str(&h[uuid]).expect("json");
            assert_eq!(&stored, a, "account {t}/{uuid} verbatim");
            // Field order survives too (Node/Go readers and diffs of exported files).
            assert_eq!(h[uuid], serde_json::to_string(a).expect("json"));
        }
    }

    // Tokens: stored under the account uuid, for the right path field of every OAuth type.
    for (t, accounts) in pools.as_object().expect("obj") {
        let Some(field) = provider::kind_of(t).and_then(|k| k.token_path_field) else { continue };
        for a in accounts.as_array().expect("array") {
            let Some(path) = a[field].as_str() else { continue };
            let file = poolgate_store::file::paths::resolve_token_path(&fx.configs(), path);
            let expected = read_json(&file);
            let key = k.token(t, a["uuid"].as_str().expect("uuid"));
            assert_eq!(string_json(&d, &key), expected, "{key}");
            assert_eq!(d[&key].expires_at_ms, None, "tokens never get a TTL: {key}");
        }
    }
    for t in ["claude-kiro-oauth", "gemini-cli-oauth", "gemini-antigravity", "openai-qwen-oauth", "openai-iflow"] {
        assert!(d.keys().any(|key| key.starts_with(&format!("aiclient:tokens:{t}:"))), "a token for {t}");
    }
    assert!(d.keys().any(|key| key.starts_with("aiclient:tokens:openai-codex-oauth:")));

    // Kiro dedup index → account uuid.
    let kiro = fx.read_json("kiro/1769176045109_kiro-auth-token/1769176045109_kiro-auth-token.json");
    let rt = kiro["refreshToken"].as_str().expect("refresh token");
    let idx = k.kiro_refresh_index(&provider::kiro_index_hash(rt));
    assert_eq!(d[&idx].value, DumpValue::String("2c69d0ac-b86f-43d8-9d17-0d300afc5cfd".into()));

    // Singles.
    assert_eq!(string_json(&d, &k.config()), fx.read_json("config.json"));
    assert_eq!(d[&k.password()].value, DumpValue::String("s3cret-demo".into()), "trimmed");
    assert_eq!(string_json(&d, &k.usage_cache()), fx.read_json("usage-cache.json"));
    assert_eq!(string_json(&d, &k.plugins()), fx.read_json("plugins.json"));

    // Sessions: live one re-keyed by SHA-256 with its expiry kept; expired one skipped.
    let live = "3f9c0000000000000000000000000000000000000000000000000000000000aa";
    let expired = "3f9c0000000000000000000000000000000000000000000000000000000000bb";
    let key = k.session(&transfer::session_hash(live));
    assert_eq!(string_json(&d, &key)["expiryTime"], 4102444800000i64);
    assert_eq!(d[&key].expires_at_ms.map(|t| (t - 4102444800000i64).abs() < 2000), Some(true));
    assert!(!d.contains_key(&k.session(&transfer::session_hash(expired))));
    assert!(!d.contains_key(&k.session(live)), "the raw token is never a key");

    // Metadata.
    let DumpValue::Hash(meta) = &d[&k.meta()].value else { panic!("meta") };
    assert_eq!(meta["version"], "1.0");
    assert_eq!(meta["migratedFrom"], "file");
    // As the reference: the number of accounts (nodes), not of pools.
    let accounts: usize = pools.as_object().expect("pools").values().map(|v| v.as_array().map_or(0, Vec::len)).sum();
    assert_eq!(meta["providerPoolsMigrated"], accounts.to_string());
    assert_eq!(meta["configMigrated"], "true");
    assert!(meta.contains_key("migratedAt"));
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
async fn a_second_run_changes_nothing() {
    let server = RedisServer::start().expect("redis");
    let fx = Fixture::clean();
    assert_eq!(migrate(&server, &fx, &[]).code, 0);
    let first = dump(&server, PREFIX).await;
    let run = migrate(&server, &fx, &["--json"]);
    assert_eq!(run.code, 0, "{}", run.all());
    let s = run.json();
    assert_eq!(s["poolsImported"], 0);
    assert_eq!(s["poolsSkipped"], 12);
    assert_eq!(s["tokensSkipped"], 6);
    assert_eq!(s["sessionsSkipped"], 1);
    let second = dump(&server, PREFIX).await;
    assert_same_dump(&first, &second, &[]);
}

#[tokio::test]
async fn dry_run_leaves_redis_untouched() {
    let server = RedisServer::start().expect("redis");
    let fx = Fixture::clean();
    let run = migrate(&server, &fx, &["--dry-run", "--json"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(run.json()["poolsImported"], 12, "reports what it would do");
    assert_eq!(dbsize(&server), 0, "nothing written");

    // On populated Redis, even --force --dry-run changes nothing.
    assert_eq!(migrate(&server, &fx, &[]).code, 0);
    server.cli(&["SET", "aiclient:pwd", "changed"]).expect("set");
    let before = dump(&server, PREFIX).await;
    assert_eq!(migrate(&server, &fx, &["--dry-run", "--force"]).code, 0);
    assert_same_dump(&before, &dump(&server, PREFIX).await, &[]);
}

#[tokio::test]
async fn existing_items_are_kept_unless_force_and_verify_fails_loudly_on_differences() {
    let server = RedisServer::start().expect("redis");
    let fx = Fixture::clean();
    assert_eq!(migrate(&server, &fx, &[]).code, 0);
    let uuid = "2f579c65-d3c5-41b1-9985-9f6e3d7bf39c";
    let changed = json!({"uuid": uuid, "customName": "changed"}).to_string();
    server.cli(&["HSET", "aiclient:pools:openai-custom", uuid, &changed]).expect("hset");

    let run = migrate(&server, &fx, &["--verify", "--json"]);
    assert_eq!(run.code, 3, "verification failed: {}", run.all());
    let s = run.json();
    assert_eq!(s["verified"], false);
    let errs = s["verifyErrors"].to_string();
    assert!(errs.contains(uuid) && errs.contains("$.customName: value differs"), "{errs}");
    assert!(errs.contains("$.OPENAI_API_KEY: missing in Redis"), "{errs}");
    assert!(!errs.contains("sk-demo-key"), "values are never printed");

    let run = migrate(&server, &fx, &["--verify", "--force"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("verification passed"));
}

#[tokio::test]
async fn malformed_files_are_reported_with_path_line_and_column_and_nothing_is_written() {
    let server = RedisServer::start().expect("redis");
    let fx = Fixture::clean();
    fx.write("plugins.json", "{\n  \"plugins\": {\n    \"a\": [1,, 2]\n  }\n}\n");
    fx.write("qwen/oauth_creds.json", "{\"access_token\": \"q\",\n\"refresh_token\": }");
    let run = migrate(&server, &fx, &["--json"]);
    assert_eq!(run.code, 3, "{}", run.all());
    let s = run.json();
    let errors = s["errors"].as_array().expect("errors").clone();
    let text = serde_json::to_string(&errors).expect("json");
    assert_eq!(errors.len(), 2, "{text}");
    assert!(text.contains("plugins.json") && text.contains("line 3, column"), "{text}");
    assert!(text.contains("openai-qwen-oauth/a0b1c2d3") && text.contains("oauth_creds.json"), "{text}");
    assert!(text.contains("line 2, column"), "{text}");
    assert_eq!(s["nothingWritten"], true, "{s}");
    assert!(dump(&server, PREFIX).await.is_empty(), "a source that does not parse writes nothing");

    // With --partial, what parses is imported and the broken items are left out.
    let run = migrate(&server, &fx, &["--json", "--partial"]);
    assert_eq!(run.code, 3, "{}", run.all());
    let d = dump(&server, PREFIX).await;
    let k = Keys::default();
    assert!(!d.contains_key(&k.plugins()), "a bad item is not written at all");
    assert!(!d.contains_key(&k.token("openai-qwen-oauth", "a0b1c2d3-e4f5-4061-8273-8495a6b7c8d9")));
    assert!(d.contains_key(&k.config()), "other items import");
    assert!(d.contains_key(&k.pool("openai-qwen-oauth")), "the account imports without its token");
    assert!(d.contains_key(&k.token("openai-iflow", "11223344-5566-7788-99aa-bbccddeeff00")));
}

#[tokio::test]
async fn a_malformed_pools_file_writes_nothing_and_links_no_orphan_tokens() {
    let server = RedisServer::start().expect("redis");
    let fx = Fixture::clean();
    let good = std::fs::read_to_string(fx.configs().join("provider_pools.json")).expect("pools");
    fx.write("provider_pools.json", "{\n  \"gemini-cli-oauth\": [\n    {\"uuid\": \"x\",, }\n  ]\n}\n");
    let run = migrate(&server, &fx, &["--json"]);
    assert_eq!(run.code, 3, "{}", run.all());
    assert!(run.all().contains("provider_pools.json") && run.all().contains("line 3"), "{}", run.all());
    assert!(dump(&server, PREFIX).await.is_empty(), "config, pwd, plugins, sessions and meta wait for a clean source");
    // Even importing what parses, the token files the broken file would link are not guessed.
    let run = migrate(&server, &fx, &["--json", "--partial"]);
    assert_eq!(run.code, 3);
    let d = dump(&server, PREFIX).await;
    assert!(d.contains_key(&Keys::default().config()));
    let orphans: Vec<&String> = d.keys().filter(|k| k.starts_with("aiclient:tokens:")).collect();
    assert!(orphans.is_empty(), "orphan token keys: {orphans:?}");
    // The corrected file then imports cleanly, with every token under its account.
    fx.write("provider_pools.json", &good);
    let run = migrate(&server, &fx, &["--json", "--verify"]);
    assert_eq!(run.code, 0, "{}", run.all());
}

#[tokio::test]
async fn legacy_token_directories_are_imported_by_file_name() {
    let server = RedisServer::start().expect("redis");
    let fx = Fixture::clean();
    fx.write("gemini/gemini-legacy.json", r#"{"access_token":"ya29.legacy","refresh_token":"1//legacy"}"#);
    fx.write(
        "kiro/1770000000000_kiro-auth-token/1770000000000_kiro-auth-token.json",
        r#"{"accessToken":"a","refreshToken":"r"}"#,
    );
    fx.write("codex/codex-other@example.com.json", r#"{"access_token":"cx","refresh_token":"cxr"}"#);
    let run = migrate(&server, &fx, &["--json", "--verify"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert_eq!(run.json()["legacyTokensImported"], 3);
    let d = dump(&server, PREFIX).await;
    assert_eq!(string_json(&d, "aiclient:tokens:gemini-cli-oauth:legacy")["access_token"], "ya29.legacy");
    assert_eq!(string_json(&d, "aiclient:tokens:claude-kiro-oauth:1770000000000")["accessToken"], "a");
    assert_eq!(string_json(&d, "aiclient:tokens:openai-codex-oauth:other@example.com")["access_token"], "cx");
    // Files referenced by accounts are imported once, under the account uuid only.
    assert!(!d.keys().any(|k| k.ends_with(":gemini-cli-oauth:1")));
}

#[tokio::test]
async fn key_prefix_and_env_connection_settings_are_honoured() {
    let server = RedisServer::start().expect("redis");
    let fx = Fixture::clean();
    let dir = fx.configs_str();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_poolgate"));
    cmd.args(["migrate", "--config-dir", &dir, "--key-prefix", "pg:"]).env("REDIS_URL", server.url());
    let out = cmd.output().expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let d = dump(&server, "pg:").await;
    assert!(d.contains_key("pg:config") && d.contains_key("pg:pool-types"));
    assert!(dump(&server, PREFIX).await.is_empty());
}

#[tokio::test]
async fn unreachable_redis_exits_1_without_printing_the_password() {
    let fx = Fixture::clean();
    let dir = fx.configs_str();
    let run = poolgate(&["migrate", "--config-dir", &dir, "--redis-url", "redis://:hunter2@127.0.0.1:1/0"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(!run.all().contains("hunter2"), "{}", run.all());
    assert!(run.stderr.contains("***"), "{}", run.stderr);
    // Malformed URLs are not echoed either, whatever part the password sits in.
    for url in [
        "redis:/:hunter2@127.0.0.1:6379/0",
        "redis://user:hunter2@[::1",
        "hunter2",
        "redis//:hunter2@host:6379",
        "redis://:hunter2@host:port/0?x=hunter2",
    ] {
        let run = poolgate(&["migrate", "--config-dir", &dir, "--redis-url", url]);
        assert_eq!(run.code, 1, "{url}: {}", run.all());
        assert!(!run.all().contains("hunter2"), "{url}: {}", run.all());
    }
}

#[test]
fn usage_errors_exit_2_and_help_documents_exit_codes() {
    assert_eq!(poolgate(&["migrate"]).code, 2, "--config-dir is required");
    assert_eq!(poolgate(&["migrate", "--config-dir", "x", "--bogus"]).code, 2);
    for cmd in ["migrate", "export", "init"] {
        let run = poolgate(&[cmd, "--help"]);
        assert_eq!(run.code, 0);
        assert!(run.stdout.contains("Exit codes") && run.stdout.contains("3  verification failed"), "{cmd}");
    }
}

#[tokio::test]
async fn secrets_are_never_printed() {
    let server = RedisServer::start().expect("redis");
    let fx = Fixture::new();
    for extra in [&["--verify"][..], &["--json", "--verify"], &["--dry-run"]] {
        let run = migrate(&server, &fx, extra);
        let all = run.all();
        for secret in ["s3cret-demo", "sk-demo-key", "sk-demo-7f3a", "aoaAAAAA", "3f9c0000000000"] {
            assert!(!all.contains(secret), "{secret} printed with {extra:?}:\n{all}");
        }
    }
}
