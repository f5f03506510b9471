//! Pure tests of validate, build and status (no Kubernetes, no Redis): every condition branch,
//! deterministic uuids, Secret resolution errors, account removal, the token rule, Job shapes.

use std::collections::BTreeMap;

use poolgate_crds::{
    ClientConfig, ClientConfigSpec, ClientConfigStatus, CredentialsRef, DeletionPolicy, GatewaySettings, KeyToPath,
    LocalObjectRef, MigrationPolicy, MigrationSource, MigrationSpec, MigrationStatus, PluginSetting, PoolAccount,
    ProviderPool, ProviderPoolSpec, ProviderSettings, RedisSpec, SecretKeyRef,
};
use poolgate_operator::controller::clientconfig::build::{self as ccbuild, Observed};
use poolgate_operator::controller::clientconfig::dereference::{CcRefs, SourceData};
use poolgate_operator::controller::clientconfig::validate as ccvalidate;
use poolgate_operator::controller::providerpool::build::{self, token_action, TokenAction};
use poolgate_operator::controller::providerpool::dereference::{older_sibling, PoolRefs};
use poolgate_operator::controller::providerpool::status;
use poolgate_operator::controller::providerpool::validate::{self, account_uuid};
use poolgate_operator::jobs::{self, JobKind, JobState};
use poolgate_operator::secrets::SecretSet;
use poolgate_store::Account;
use serde_json::{json, Value};

// ---- fixtures -------------------------------------------------------------------------------

fn skr(name: &str, key: &str) -> SecretKeyRef {
    SecretKeyRef { name: name.into(), key: key.into() }
}

fn client_config(name: &str) -> ClientConfig {
    let mut cc = ClientConfig::new(
        name,
        ClientConfigSpec {
            redis: RedisSpec { url_secret_ref: skr("redis", "url"), key_prefix: "pg:".into() },
            api_key_secret_ref: skr("gateway", "apiKey"),
            admin_password_secret_ref: Some(skr("gateway", "password")),
            gateway: GatewaySettings::default(),
            migration: None,
            deletion_policy: DeletionPolicy::Retain,
            client_keys: Vec::new(),
        },
    );
    cc.metadata.namespace = Some("ns".into());
    cc.metadata.uid = Some("cc-uid".into());
    cc.metadata.generation = Some(1);
    cc
}

fn account(name: &str) -> PoolAccount {
    PoolAccount {
        name: name.into(),
        uuid: None,
        display_name: None,
        disabled: false,
        check_health: None,
        check_model: None,
        supported_models: vec![],
        not_supported_models: vec![],
        concurrency_limit: None,
        queue_limit: None,
        settings: ProviderSettings::default(),
        credentials_secret_ref: Some(CredentialsRef { name: format!("{name}-creds"), key: None }),
    }
}

fn pool(ptype: &str, accounts: Vec<PoolAccount>) -> ProviderPool {
    let mut p = ProviderPool::new(
        "pool",
        ProviderPoolSpec {
            client_config_ref: LocalObjectRef { name: "gw".into() },
            provider_type: ptype.into(),
            accounts,
        },
    );
    p.metadata.namespace = Some("ns".into());
    p.metadata.uid = Some("3b7c0d5e-pool-uid".into());
    p.metadata.generation = Some(3);
    p
}

fn secrets() -> SecretSet {
    SecretSet::from_pairs([
        ("redis", vec![("url", "redis://:hunter2@127.0.0.1:1/0")]),
        ("gateway", vec![("apiKey", "sk-client"), ("password", "admin-pw")]),
        ("a-creds", vec![("apiKey", "sk-a"), ("token.json", r#"{"refresh_token":"r1","access_token":"x"}"#)]),
        ("b-creds", vec![("apiKey", "sk-b"), ("token.json", "not json")]),
    ])
}

fn refs() -> PoolRefs {
    PoolRefs { client_config: Some(ready_client_config("gw")), secrets: secrets(), older_sibling: None }
}

fn reason(r: Result<validate::ValidPool, validate::Invalid>) -> &'static str {
    r.expect_err("invalid").reason
}

// ---- uuids ----------------------------------------------------------------------------------

#[test]
fn account_uuids_are_deterministic_per_resource_and_name() {
    let a = account("a");
    let u1 = account_uuid("uid-1", &a);
    assert_eq!(u1, account_uuid("uid-1", &a), "same inputs, same uuid");
    assert_ne!(u1, account_uuid("uid-2", &a), "another resource gets other uuids");
    assert_ne!(u1, account_uuid("uid-1", &account("b")));
    assert!(uuid::Uuid::parse_str(&u1).is_ok());
    let explicit = PoolAccount { uuid: Some("2c69d0ac-b86f-43d8-9d17-0d300afc5cfd".into()), ..account("a") };
    assert_eq!(account_uuid("uid-1", &explicit), "2c69d0ac-b86f-43d8-9d17-0d300afc5cfd");
}

// ---- pool validation: every reason ------------------------------------------------------------

#[test]
fn pool_validation_reports_each_problem_with_its_reason() {
    let ok = pool("openai-custom", vec![account("a")]);
    assert!(validate::validate(&ok, &refs()).is_ok());

    let mut r = refs();
    r.client_config = None;
    let e = validate::validate(&ok, &r).expect_err("no cc");
    assert_eq!(e.reason, "ClientConfigNotFound");
    assert!(e.message.contains("spec.clientConfigRef"), "{}", e.message);

    let mut r = refs();
    if let Some(cc) = r.client_config.as_mut() {
        cc.metadata.deletion_timestamp = Some(serde_json::from_value(json!("2026-01-01T00:00:00Z")).expect("time"));
    }
    assert_eq!(reason(validate::validate(&ok, &r)), "ClientConfigDeleting");

    let r = PoolRefs { older_sibling: Some("first".into()), ..refs() };
    assert_eq!(reason(validate::validate(&ok, &r)), "DuplicateProviderType");

    assert_eq!(reason(validate::validate(&pool("openai-customer", vec![]), &refs())), "UnknownProviderType");
    assert!(validate::validate(&pool("openai-custom-eu", vec![account("a")]), &refs()).is_ok(), "suffixed types");

    let mut r = refs();
    r.secrets = SecretSet::from_pairs([("a-creds", vec![("apiKey", "sk-a")])]);
    let e = validate::validate(&ok, &r).expect_err("no redis secret");
    assert_eq!(e.reason, "SecretNotFound");
    assert!(e.message.contains("urlSecretRef") && !e.message.contains("hunter2"));

    let missing_key = PoolAccount {
        credentials_secret_ref: Some(CredentialsRef { name: "a-creds".into(), key: Some("nope".into()) }),
        ..account("a")
    };
    assert_eq!(reason(validate::validate(&pool("openai-custom", vec![missing_key]), &refs())), "SecretKeyMissing");

    let no_secret = PoolAccount {
        credentials_secret_ref: Some(CredentialsRef { name: "ghost".into(), key: None }),
        ..account("a")
    };
    assert_eq!(reason(validate::validate(&pool("openai-custom", vec![no_secret]), &refs())), "SecretNotFound");

    let bad_token = pool("gemini-cli-oauth", vec![account("b")]);
    let e = validate::validate(&bad_token, &refs()).expect_err("token not json");
    assert_eq!(e.reason, "SecretInvalid");
    assert!(!e.message.contains("not json"), "the value never shows");

    let no_creds = PoolAccount { credentials_secret_ref: None, ..account("a") };
    assert_eq!(
        reason(validate::validate(&pool("claude-custom", vec![no_creds.clone()]), &refs())),
        "CredentialsMissing"
    );
    assert!(
        validate::validate(&pool("gemini-cli-oauth", vec![no_creds]), &refs()).is_ok(),
        "OAuth token may already be in Redis"
    );

    let wrong_setting = PoolAccount {
        settings: ProviderSettings { project_id: Some("p".into()), ..Default::default() },
        ..account("a")
    };
    let e = validate::validate(&pool("openai-custom", vec![wrong_setting]), &refs()).expect_err("setting");
    assert_eq!(e.reason, "InvalidSpec");
    assert!(e.message.contains("projectId"));

    for reserved in ["usageCount", "uuid", "OPENAI_API_KEY", "OPENAI_BASE_URL", "customName"] {
        let extra = PoolAccount {
            settings: ProviderSettings {
                extra: BTreeMap::from([(reserved.to_string(), "x".to_string())]),
                ..Default::default()
            },
            ..account("a")
        };
        assert_eq!(
            reason(validate::validate(&pool("openai-custom", vec![extra]), &refs())),
            "InvalidSpec",
            "{reserved}"
        );
    }

    let bad_uuid = PoolAccount { uuid: Some("nope".into()), ..account("a") };
    assert_eq!(reason(validate::validate(&pool("openai-custom", vec![bad_uuid]), &refs())), "InvalidSpec");
    let u = "2c69d0ac-b86f-43d8-9d17-0d300afc5cfd".to_string();
    let twins =
        vec![PoolAccount { uuid: Some(u.clone()), ..account("a") }, PoolAccount { uuid: Some(u), ..account("b") }];
    assert_eq!(reason(validate::validate(&pool("openai-custom", twins), &refs())), "InvalidSpec");
    assert_eq!(
        reason(validate::validate(&pool("openai-custom", vec![account("a"), account("a")]), &refs())),
        "InvalidSpec"
    );
}

#[test]
fn the_oldest_pool_of_a_type_wins() {
    let mut first = pool("openai-custom", vec![]);
    first.metadata.name = Some("first".into());
    first.metadata.uid = Some("u1".into());
    first.metadata.creation_timestamp = Some(serde_json::from_value(json!("2026-01-01T00:00:00Z")).expect("t"));
    let mut second = first.clone();
    second.metadata.name = Some("second".into());
    second.metadata.uid = Some("u2".into());
    second.metadata.creation_timestamp = Some(serde_json::from_value(json!("2026-01-02T00:00:00Z")).expect("t"));
    let mut other_type = second.clone();
    other_type.spec.provider_type = "claude-custom".into();
    let all = vec![first.clone(), second.clone(), other_type.clone()];
    assert_eq!(older_sibling(&second, &all).as_deref(), Some("first"));
    assert_eq!(older_sibling(&first, &all), None);
    assert_eq!(older_sibling(&other_type, &all), None);
}

// ---- build ----------------------------------------------------------------------------------

#[test]
fn build_maps_spec_fields_and_removes_fields_that_left_the_spec() {
    let a = PoolAccount {
        display_name: Some("Primary".into()),
        disabled: true,
        check_model: Some("gpt-4o".into()),
        not_supported_models: vec!["gpt-4-turbo".into()],
        concurrency_limit: Some(4),
        settings: ProviderSettings { base_url: Some("http://127.0.0.1:9/v1".into()), ..Default::default() },
        ..account("a")
    };
    let v = validate::validate(
        &pool(
            "openai-custom",
            vec![a, account("b-plain")]
                .into_iter()
                .map(|mut x| {
                    if x.name == "b-plain" {
                        x.credentials_secret_ref = Some(CredentialsRef { name: "a-creds".into(), key: None });
                    }
                    x
                })
                .collect(),
        ),
        &refs(),
    )
    .expect("valid");
    let plan = build::build(&v);
    assert_eq!(plan.accounts.len(), 2);
    let f = &plan.accounts[0].spec.fields;
    assert_eq!(f["customName"], json!("Primary"));
    assert_eq!(f["isDisabled"], json!(true));
    assert_eq!(f["checkModelName"], json!("gpt-4o"));
    assert_eq!(f["notSupportedModels"], json!(["gpt-4-turbo"]));
    assert_eq!(f["concurrencyLimit"], json!(4));
    assert_eq!(f["OPENAI_BASE_URL"], json!("http://127.0.0.1:9/v1"));
    assert_eq!(f["OPENAI_API_KEY"], json!("sk-a"));
    for runtime in poolgate_store::account::RUNTIME_FIELDS {
        assert!(!f.contains_key(*runtime), "spec never writes runtime field {runtime}");
    }
    let removed = &plan.accounts[0].spec.remove;
    assert!(removed.contains(&"queueLimit".to_string()) && removed.contains(&"supportedModels".to_string()));
    assert!(!removed.contains(&"OPENAI_BASE_URL".to_string()));
    let b = &plan.accounts[1].spec;
    assert_eq!(b.fields["customName"], json!("b-plain"), "display name defaults to the name");
    assert!(b.remove.contains(&"OPENAI_BASE_URL".to_string()), "a base URL dropped from the spec is removed");

    // An account that left the spec is not in the plan: apply_spec(prune) deletes it with its token.
    let v = validate::validate(&pool("openai-custom", vec![account("a")]), &refs()).expect("valid");
    let uuids: Vec<String> = build::build(&v).accounts.iter().map(|a| a.uuid.clone()).collect();
    assert_eq!(uuids, vec![account_uuid("3b7c0d5e-pool-uid", &account("a"))]);
}

#[test]
fn oauth_tokens_are_planned_with_their_secret_hash_and_never_as_fields() {
    let v = validate::validate(&pool("gemini-cli-oauth", vec![account("a")]), &refs()).expect("valid");
    let plan = build::build(&v);
    let (token, hash) = plan.accounts[0].token.clone().expect("token");
    assert_eq!(token["refresh_token"], json!("r1"));
    assert_eq!(hash.len(), 16);
    assert!(!plan.accounts[0].spec.fields.values().any(|v| v.to_string().contains("r1")));
    assert!(!format!("{v:?}").contains("sk-"), "Debug of a validated pool holds no secret");
}

// ---- the token rule -------------------------------------------------------------------------

#[test]
fn a_stale_secret_never_overwrites_a_newer_token() {
    let secret = json!({"refresh_token": "r1", "access_token": "a1"});
    let rotated = json!({"refresh_token": "r2", "access_token": "a2"});
    let t = "gemini-cli-oauth";
    // Redis has none: seed.
    assert_eq!(token_action(t, &secret, "h1", None, None).0, TokenAction::Seed { expected_refresh: None });
    assert_eq!(token_action(t, &secret, "h1", Some("h0"), None).0, TokenAction::Seed { expected_refresh: None });
    // Seeded before from the same Secret content; a proxy rotated it since: keep Redis.
    assert_eq!(token_action(t, &secret, "h1", Some("h1"), Some(&rotated)).0, TokenAction::Keep);
    // Never seeded by the operator (migrated or adopted) and Redis differs: keep Redis.
    assert_eq!(token_action(t, &secret, "h1", None, Some(&rotated)).0, TokenAction::Keep);
    // Same refresh token already in Redis: keep (the access token there may be newer).
    assert_eq!(
        token_action(t, &secret, "h9", Some("h0"), Some(&json!({"refresh_token": "r1", "access_token": "newer"}))).0,
        TokenAction::Keep
    );
    // The Secret's content changed: seed, compare-and-set against what Redis holds now.
    assert_eq!(
        token_action(t, &secret, "h1", Some("h0"), Some(&rotated)).0,
        TokenAction::Seed { expected_refresh: Some("r2".into()) }
    );
    // Kiro tokens use camelCase refreshToken.
    let kiro = json!({"refreshToken": "k1"});
    assert_eq!(
        token_action("claude-kiro-oauth", &kiro, "h", Some("h0"), Some(&json!({"refreshToken": "k1"}))).0,
        TokenAction::Keep
    );
}

// ---- pool status ----------------------------------------------------------------------------

fn stored(uuid: &str, usage: i64, healthy: bool) -> Account {
    let Value::Object(m) = json!({"uuid": uuid, "usageCount": usage, "errorCount": 1, "isHealthy": healthy,
        "isDisabled": false, "lastUsed": "2026-01-01T00:00:00.000Z", "lastErrorMessage": "429 quota sk-abcdefghijklmnopqrstuvwxyz"})
    else {
        unreachable!()
    };
    Account::from_map(m).expect("account")
}

#[test]
fn pool_status_reports_runtime_state_totals_and_conditions() {
    let p = pool("openai-custom", vec![account("a"), account("b")]);
    let (ua, ub) = (account_uuid("3b7c0d5e-pool-uid", &account("a")), account_uuid("3b7c0d5e-pool-uid", &account("b")));
    let plan = vec![("a".to_string(), ua.clone()), ("b".to_string(), ub.clone())];
    let accounts = vec![stored(&ua, 5, true), stored(&ub, 7, false), stored("u-other", 100, true)];
    let seeded = BTreeMap::new();
    let st = status::compute(&p, &status::Outcome::Synced { plan: &plan, accounts: &accounts, seeded: &seeded }, "t1");
    assert_eq!((st.total_accounts, st.healthy_accounts, st.total_usage, st.total_errors), (2, 1, 12, 2));
    assert_eq!(st.observed_generation, Some(3));
    assert_eq!(st.accounts[0].last_error.as_deref(), Some("429 quota ***"), "token-like words are masked");
    let ready = st.conditions.iter().find(|c| c.type_ == "Ready").expect("Ready");
    assert!(ready.is_true());

    // Invalid: conditions say why, the last known account state stays.
    let mut p2 = p.clone();
    p2.status = Some(st.clone());
    let inv = status::compute(&p2, &status::Outcome::Invalid { reason: "SecretNotFound", message: "m".into() }, "t2");
    assert_eq!(inv.accounts, st.accounts);
    let ready = inv.conditions.iter().find(|c| c.type_ == "Ready").expect("Ready");
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "SecretNotFound"));

    let down =
        status::compute(&p2, &status::Outcome::RedisFailed { reachable: false, message: "refused".into() }, "t3");
    let rr = down.conditions.iter().find(|c| c.type_ == "RedisReachable").expect("cond");
    assert_eq!((rr.status.as_str(), rr.reason.as_str()), ("False", "ConnectFailed"));
}

#[test]
fn status_patches_skip_timestamps_and_batch_counter_changes() {
    let p = pool("openai-custom", vec![account("a")]);
    let plan = vec![("a".to_string(), "u-a".to_string())];
    let seeded = BTreeMap::new();
    let acc1 = vec![stored("u-a", 5, true)];
    let now = chrono::Utc::now();
    let t0 = now.to_rfc3339();
    let old = status::compute(&p, &status::Outcome::Synced { plan: &plan, accounts: &acc1, seeded: &seeded }, &t0);
    let mut p2 = p.clone();
    p2.status = Some(old.clone());
    let interval = std::time::Duration::from_secs(30);
    let same =
        status::compute(&p2, &status::Outcome::Synced { plan: &plan, accounts: &acc1, seeded: &seeded }, "later");
    assert!(!status::needs_patch(Some(&old), &same, now, interval), "no change: no patch");
    let acc2 = vec![stored("u-a", 6, true)];
    let more =
        status::compute(&p2, &status::Outcome::Synced { plan: &plan, accounts: &acc2, seeded: &seeded }, "later");
    assert!(!status::needs_patch(Some(&old), &more, now + chrono::Duration::seconds(5), interval), "counters wait");
    assert!(status::needs_patch(Some(&old), &more, now + chrono::Duration::seconds(31), interval), "then they go");
    let acc3 = vec![stored("u-a", 6, false)];
    let sick =
        status::compute(&p2, &status::Outcome::Synced { plan: &plan, accounts: &acc3, seeded: &seeded }, "later");
    assert!(status::needs_patch(Some(&old), &sick, now, interval), "health changes go at once");
    assert!(status::needs_patch(None, &old, now, interval));
}

// ---- ClientConfig ---------------------------------------------------------------------------

fn fixtures_configs() -> std::path::PathBuf {
    poolgate_tests::fixtures_dir().join("reference/configs")
}

/// The fixture tree as ConfigMap data: file basename -> content (codex file renamed: '@' is not
/// allowed in a ConfigMap key).
fn fixture_source() -> SourceData {
    let mut data = BTreeMap::new();
    fn walk(dir: &std::path::Path, data: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).expect("read fixtures").flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, data);
            } else {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default().replace('@', "-at-");
                data.insert(name, std::fs::read(&p).expect("read"));
            }
        }
    }
    walk(&fixtures_configs(), &mut data);
    SourceData(data)
}

fn cc_refs(source: Option<Option<SourceData>>) -> CcRefs {
    CcRefs { secrets: secrets(), source, jobs: BTreeMap::new(), pools: vec![] }
}

fn with_migration(policy: MigrationPolicy) -> ClientConfig {
    let mut cc = client_config("gw");
    cc.spec.migration = Some(MigrationSpec {
        source: MigrationSource {
            config_map_ref: Some(LocalObjectRef { name: "legacy".into() }),
            secret_ref: None,
            items: vec![KeyToPath {
                key: "codex-dev-at-example.com.json".into(),
                path: "codex/codex-dev@example.com.json".into(),
            }],
        },
        policy,
    });
    cc
}

#[test]
fn clientconfig_validation_names_what_is_wrong() {
    let cc = client_config("gw");
    let v = ccvalidate::validate(&cc, &cc_refs(None)).expect("valid");
    assert_eq!(v.api_key, "sk-client");
    assert!(!format!("{v:?}").contains("hunter2") && !format!("{v:?}").contains("sk-client"));

    let mut r = cc_refs(None);
    r.secrets = SecretSet::from_pairs([("redis", vec![("url", "redis://127.0.0.1:1")])]);
    assert_eq!(ccvalidate::validate(&cc, &r).expect_err("x").reason, "SecretNotFound");
    let mut r = cc_refs(None);
    r.secrets = SecretSet::from_pairs([
        ("redis", vec![("url", "http://x")]),
        ("gateway", vec![("apiKey", "k"), ("password", "p")]),
    ]);
    assert_eq!(ccvalidate::validate(&cc, &r).expect_err("x").reason, "InvalidRedisUrl");

    let m = with_migration(MigrationPolicy::IfEmpty);
    let e = ccvalidate::validate(&m, &cc_refs(Some(None))).expect_err("no source");
    assert_eq!(e.reason, "MigrationSourceNotFound");
    assert!(ccvalidate::validate(&with_migration(MigrationPolicy::Never), &cc_refs(Some(None))).is_ok());
}

#[test]
fn the_migration_source_is_laid_out_as_the_reference_tree() {
    let m = with_migration(MigrationPolicy::IfEmpty);
    let v = ccvalidate::validate(&m, &cc_refs(Some(Some(fixture_source())))).expect("valid");
    let src = v.source.expect("source");
    let items: BTreeMap<String, String> = src.volume.items.into_iter().collect();
    assert_eq!(items["provider_pools.json"], "configs/provider_pools.json");
    assert_eq!(items["pwd"], "configs/pwd");
    assert_eq!(
        items["1769176045109_kiro-auth-token.json"],
        "configs/kiro/1769176045109_kiro-auth-token/1769176045109_kiro-auth-token.json",
        "derived from KIRO_OAUTH_CREDS_FILE_PATH"
    );
    assert_eq!(items["gemini-1.json"], "configs/gemini/gemini-1.json");
    assert_eq!(items["codex-dev-at-example.com.json"], "configs/codex/codex-dev@example.com.json", "explicit item");
    // The hash follows the content.
    let mut changed = fixture_source();
    changed.0.insert("pwd".into(), b"other".to_vec());
    let v2 = ccvalidate::validate(&m, &cc_refs(Some(Some(changed)))).expect("valid");
    assert_ne!(v2.source.expect("src").hash, src.hash);
    let v3 = ccvalidate::validate(&m, &cc_refs(Some(Some(fixture_source())))).expect("valid");
    assert_eq!(v3.source.expect("src").hash, src.hash);
    let mut bad = m.clone();
    if let Some(mig) = bad.spec.migration.as_mut() {
        mig.source.items = vec![KeyToPath { key: "pwd".into(), path: "../etc/passwd".into() }];
    }
    assert_eq!(
        ccvalidate::validate(&bad, &cc_refs(Some(Some(fixture_source())))).expect_err("x").reason,
        "InvalidMigrationSource"
    );
}

fn obs(redis: Result<bool, &str>, init: JobState, migrate: JobState) -> Observed {
    Observed {
        redis: redis.map_err(str::to_string),
        init_job: init,
        migrate_job: migrate,
        previous_migrate_job: JobState::Absent,
    }
}

fn cond<'a>(p: &'a ccbuild::CcPlan, t: &str) -> (&'a str, &'a str) {
    p.conditions.iter().find(|c| c.type_ == t).map(|c| (c.status.as_str(), c.reason.as_str())).unwrap_or(("-", "-"))
}

#[test]
fn clientconfig_plan_covers_every_branch() {
    let plain = client_config("gw");
    let v = ccvalidate::validate(&plain, &cc_refs(None)).expect("valid");
    let m = with_migration(MigrationPolicy::IfEmpty);
    let mv = ccvalidate::validate(&m, &cc_refs(Some(Some(fixture_source())))).expect("valid");
    let hash = mv.source.as_ref().map(|s| s.hash.clone()).expect("hash");
    use JobState::*;

    let p = ccbuild::plan(&plain, &v, &obs(Err("refused"), Absent, Absent), None, "t");
    assert_eq!(cond(&p, "RedisReachable"), ("False", "ConnectFailed"));
    assert!(!p.sync && p.create_job.is_none());

    let p = ccbuild::plan(&plain, &v, &obs(Ok(false), Absent, Absent), None, "t");
    assert_eq!(p.create_job, Some(JobKind::Init));
    assert_eq!(cond(&p, "Initialized"), ("Unknown", "JobCreated"));
    assert!(!p.sync, "the config waits for init (else init would see data and skip)");
    let p = ccbuild::plan(&plain, &v, &obs(Ok(false), Running, Absent), None, "t");
    assert_eq!((cond(&p, "Initialized"), p.sync, p.create_job.clone()), (("Unknown", "JobRunning"), false, None));
    let p = ccbuild::plan(&plain, &v, &obs(Ok(true), Succeeded, Absent), None, "t");
    assert_eq!((cond(&p, "Initialized"), p.sync), (("True", "InitJobSucceeded"), true));
    let p = ccbuild::plan(&plain, &v, &obs(Ok(false), Failed("BackoffLimitExceeded: x".into()), Absent), None, "t");
    assert_eq!((cond(&p, "Initialized"), p.sync), (("False", "JobFailed"), false));
    let p = ccbuild::plan(&plain, &v, &obs(Ok(true), Absent, Absent), None, "t");
    assert_eq!((cond(&p, "Initialized"), p.sync, cond(&p, "Migrated")), (("True", "DataPresent"), true, ("-", "-")));

    // Migration.
    let p = ccbuild::plan(&m, &mv, &obs(Ok(false), Absent, Absent), None, "t");
    assert_eq!(p.create_job, Some(JobKind::Migrate { hash: hash.clone() }), "empty Redis + IfEmpty: migrate, no init");
    assert_eq!(
        (cond(&p, "Migrated"), cond(&p, "Initialized"), p.sync),
        (("Unknown", "JobCreated"), ("Unknown", "Migrating"), false)
    );
    let p = ccbuild::plan(&m, &mv, &obs(Ok(true), Absent, Running), None, "t");
    assert_eq!((cond(&p, "Migrated"), p.sync), (("Unknown", "JobRunning"), false));
    let p = ccbuild::plan(&m, &mv, &obs(Ok(true), Absent, Succeeded), None, "t");
    assert_eq!((cond(&p, "Migrated"), p.sync), (("True", "Succeeded"), true));
    let recorded = p.migration.clone().expect("recorded");
    assert_eq!((recorded.source_hash.as_str(), recorded.outcome.as_str()), (hash.as_str(), "Succeeded"));
    let p = ccbuild::plan(&m, &mv, &obs(Ok(true), Absent, Failed("BackoffLimitExceeded: x".into())), None, "t");
    assert_eq!((cond(&p, "Migrated"), p.sync), (("False", "JobFailed"), false));
    assert_eq!(p.migration.as_ref().map(|m| m.outcome.as_str()), Some("Failed"));

    // Never re-run once succeeded for the same content, even if Redis is emptied.
    let prev = ClientConfigStatus { migration: Some(recorded.clone()), ..Default::default() };
    let p = ccbuild::plan(&m, &mv, &obs(Ok(false), Absent, Absent), Some(&prev), "t2");
    assert_ne!(p.create_job, Some(JobKind::Migrate { hash: hash.clone() }));
    assert_eq!(cond(&p, "Migrated"), ("True", "Succeeded"));
    assert_eq!(p.migration, Some(recorded.clone()), "the record (and its time) stays as it was");

    // A failed attempt left data behind: a new version of the source is still imported.
    let failed = ClientConfigStatus {
        migration: Some(MigrationStatus { source_hash: "old".into(), outcome: "Failed".into(), ..recorded.clone() }),
        ..Default::default()
    };
    let p = ccbuild::plan(&m, &mv, &obs(Ok(true), Absent, Absent), Some(&failed), "t");
    assert_eq!(p.create_job, Some(JobKind::Migrate { hash: hash.clone() }));
    // ... but not while the Job of the previous version still runs.
    let running = ClientConfigStatus {
        migration: Some(MigrationStatus { source_hash: "old".into(), outcome: "Running".into(), ..recorded.clone() }),
        ..Default::default()
    };
    let busy = Observed { previous_migrate_job: Running, ..obs(Ok(true), Absent, Absent) };
    let p = ccbuild::plan(&m, &mv, &busy, Some(&running), "t");
    assert_eq!((p.create_job.clone(), cond(&p, "Migrated"), p.sync), (None, ("Unknown", "PreviousJobRunning"), false));

    // Redis not empty, never migrated: skipped.
    let p = ccbuild::plan(&m, &mv, &obs(Ok(true), Absent, Absent), None, "t");
    assert_eq!((cond(&p, "Migrated"), p.sync), (("False", "SkippedRedisNotEmpty"), true));
    // Changed source after a success: not re-imported into a non-empty Redis.
    let old = ClientConfigStatus {
        migration: Some(MigrationStatus { source_hash: "old".into(), ..recorded }),
        ..Default::default()
    };
    let p = ccbuild::plan(&m, &mv, &obs(Ok(true), Absent, Absent), Some(&old), "t");
    assert_eq!((cond(&p, "Migrated"), p.create_job.clone()), (("True", "Succeeded"), None));

    // Policy Never: init as without a source.
    let n = with_migration(MigrationPolicy::Never);
    let nv = ccvalidate::validate(&n, &cc_refs(Some(None))).expect("valid");
    let p = ccbuild::plan(&n, &nv, &obs(Ok(false), Absent, Absent), None, "t");
    assert_eq!((cond(&p, "Migrated"), p.create_job.clone()), (("False", "PolicyNever"), Some(JobKind::Init)));
}

#[test]
fn the_config_overlays_spec_settings_and_keeps_the_rest() {
    let stored = json!({"REQUIRED_API_KEY": "old", "SERVER_PORT": 3000, "MODEL_PROVIDER": "a", "custom": [1]});
    let g = GatewaySettings {
        default_provider: Some("claude-custom".into()),
        max_error_count: Some(3),
        provider_fallback_chain: Some(BTreeMap::from([("claude-custom".into(), vec!["openai-custom".into()])])),
        plugins: Some(BTreeMap::from([("default-auth".into(), PluginSetting { enabled: false, description: None })])),
        ..Default::default()
    };
    let doc = ccbuild::config_doc(Some(&stored), &g, "sk-new");
    assert_eq!(doc["REQUIRED_API_KEY"], json!("sk-new"));
    assert_eq!(doc["MODEL_PROVIDER"], json!("claude-custom"));
    assert_eq!(doc["MAX_ERROR_COUNT"], json!(3));
    assert_eq!(doc["SERVER_PORT"], json!(3000));
    assert_eq!(doc["custom"], json!([1]));
    assert_eq!(doc["providerFallbackChain"], json!({"claude-custom": ["openai-custom"]}));
    let plugins = json!({"plugins": {"default-auth": {"enabled": true, "description": "d"}, "x": {"enabled": true}}});
    let want = ccbuild::plugins_doc(Some(&plugins), &g).expect("plugins");
    assert_eq!(want["plugins"]["default-auth"], json!({"enabled": false, "description": "d"}));
    assert_eq!(want["plugins"]["x"], json!({"enabled": true}));
    assert!(ccbuild::plugins_doc(Some(&plugins), &GatewaySettings::default()).is_none());
}

#[test]
fn jobs_are_named_deterministically_owned_and_hold_no_secret() {
    let m = with_migration(MigrationPolicy::IfEmpty);
    let mut m = m;
    m.spec.admin_password_secret_ref = Some(skr("gateway", "password"));
    let mv = ccvalidate::validate(&m, &cc_refs(Some(Some(fixture_source())))).expect("valid");
    let src = mv.source.clone().expect("source");
    let kind = JobKind::Migrate { hash: src.hash.clone() };
    let cfg = poolgate_operator::OperatorConfig::default();
    let job = jobs::build_job(&m, &kind, Some(&src.volume), &cfg);
    assert_eq!(job.metadata.name, Some(format!("gw-migrate-{}", &src.hash[..10])));
    assert_eq!(job, jobs::build_job(&m, &kind, Some(&src.volume), &cfg), "same inputs, same Job");
    let owner = job.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(owner.len(), 1);
    assert_eq!((owner[0].kind.as_str(), owner[0].controller), ("ClientConfig", Some(true)));
    let text = serde_json::to_string(&job).expect("json");
    for secret in ["hunter2", "sk-client", "admin-pw"] {
        assert!(!text.contains(secret), "{secret} leaked into the Job");
    }
    let spec = job.spec.expect("spec");
    assert_eq!(spec.backoff_limit, Some(3));
    let pod = spec.template.spec.expect("pod");
    let c = &pod.containers[0];
    let cmd = c.command.clone().unwrap_or_default();
    assert_eq!(&cmd[..4], &["poolgate", "migrate", "--config-dir", "/var/run/poolgate/migration/configs"]);
    assert!(cmd.contains(&"--verify".to_string()) && !cmd.iter().any(|a| a.contains("$(")));
    let vol = pod.volumes.expect("volumes");
    assert_eq!(vol[0].config_map.as_ref().map(|c| c.name.as_str()), Some("legacy"));
    assert_eq!(c.security_context.as_ref().and_then(|s| s.read_only_root_filesystem), Some(true));

    let init = jobs::build_job(&m, &JobKind::Init, None, &cfg);
    let cmd = init
        .spec
        .and_then(|s| s.template.spec)
        .map(|p| p.containers[0].command.clone().unwrap_or_default())
        .unwrap_or_default();
    assert_eq!(&cmd[..2], &["poolgate", "init"]);
    assert!(!cmd.iter().any(|a| a.contains("$(")), "secrets only by environment: {cmd:?}");
    let long = "x".repeat(80);
    assert!(jobs::job_name(&long, &JobKind::Migrate { hash: "0123456789abcdef".into() }).len() <= 63);
}

// ---- regressions ----------------------------------------------------------------------------

use poolgate_crds::Condition;
use poolgate_operator::controller::clientconfig::status as ccstatus;

fn ready_of(conds: &[Condition]) -> (String, String) {
    conds.iter().find(|c| c.type_ == "Ready").map(|c| (c.status.clone(), c.reason.clone())).unwrap_or_default()
}

/// A ClientConfig whose status says it is Ready (init or migration finished).
fn ready_client_config(name: &str) -> ClientConfig {
    let mut cc = client_config(name);
    cc.status = Some(ClientConfigStatus {
        observed_generation: Some(1),
        conditions: vec![Condition::new("Ready", true, "Ready", "all conditions are true")],
        ..Default::default()
    });
    cc
}

#[test]
fn an_invalid_clientconfig_is_ready_false_with_the_real_reason() {
    let cc = client_config("gw");
    let st =
        ccstatus::compute(&cc, None, Some(("InvalidRedisUrl", "spec.redis.urlSecretRef: not a URL")), None, None, "t");
    assert_eq!(ready_of(&st.conditions), ("False".to_string(), "InvalidRedisUrl".to_string()));
}

#[test]
fn a_malformed_redis_url_is_refused_by_pools_and_never_echoed() {
    let p = pool("openai-custom", vec![account("a")]);
    for url in ["redis:/:SOMEPASSWORD@127.0.0.1:6379/0", "SOMEPASSWORD"] {
        let mut r = refs();
        r.client_config = Some(ready_client_config("gw"));
        r.secrets.insert("redis", Some(BTreeMap::from([("url".to_string(), url.as_bytes().to_vec())])));
        let e = validate::validate(&p, &r).expect_err("malformed URL");
        assert_eq!(e.reason, "InvalidRedisUrl", "{url}");
        assert!(!e.message.contains("SOMEPASSWORD"), "{}", e.message);
    }
    let shown = poolgate_store::settings::redact_url("redis:/:SOMEPASSWORD@127.0.0.1:6379/0");
    assert!(!shown.contains("SOMEPASSWORD"), "{shown}");
    let shown = poolgate_store::settings::redact_url("redis://:SOME/PASSWORD@127.0.0.1:6379/0");
    assert!(!shown.contains("SOME") && !shown.contains("PASSWORD"), "{shown}");
    assert!(!poolgate_store::settings::redact_url("sk-client").contains("sk-client"));
}

#[test]
fn pools_wait_until_their_clientconfig_has_finished_init_or_migration() {
    let p = pool("openai-custom", vec![account("a")]);
    let mut r = refs();
    r.client_config = Some(client_config("gw")); // no status yet: init/migration not run
    let e = validate::validate(&p, &r).expect_err("must wait");
    assert_eq!(e.reason, "WaitingForClientConfig");
    let mut cc = ready_client_config("gw");
    if let Some(st) = cc.status.as_mut() {
        st.conditions = vec![Condition::unknown("Ready", "Migrating", "the migration Job seeds Redis")];
    }
    r.client_config = Some(cc);
    assert_eq!(reason(validate::validate(&p, &r)), "WaitingForClientConfig");
    r.client_config = Some(ready_client_config("gw"));
    assert!(validate::validate(&p, &r).is_ok());
    let st = status::compute(&p, &status::Outcome::Invalid { reason: e.reason, message: e.message }, "t");
    assert_eq!(ready_of(&st.conditions), ("False".to_string(), "WaitingForClientConfig".to_string()));
}

#[test]
fn a_migration_skipped_because_redis_is_not_empty_never_reads_as_ready() {
    let m = with_migration(MigrationPolicy::IfEmpty);
    let mv = ccvalidate::validate(&m, &cc_refs(Some(Some(fixture_source())))).expect("valid");
    let p = ccbuild::plan(&m, &mv, &obs(Ok(true), JobState::Absent, JobState::Absent), None, "t");
    assert_eq!(cond(&p, "Migrated"), ("False", "SkippedRedisNotEmpty"));
    let st = ccstatus::compute(&m, Some(&p), None, Some(Ok(false)), None, "t");
    let (status, reason) = ready_of(&st.conditions);
    assert_ne!(status, "True", "nothing imported and no init ran: not Ready");
    assert_eq!(reason, "SkippedRedisNotEmpty");
}

#[test]
fn accounts_record_the_pool_that_owns_them() {
    let v = validate::validate(&pool("openai-custom", vec![account("a")]), &refs()).expect("valid");
    let plan = build::build(&v);
    assert_eq!(plan.accounts[0].spec.fields.get("poolgateOwner"), Some(&json!("ns/pool")));
    let extra = PoolAccount {
        settings: ProviderSettings {
            extra: BTreeMap::from([("poolgateOwner".to_string(), "ns/other".to_string())]),
            ..Default::default()
        },
        ..account("a")
    };
    assert_eq!(reason(validate::validate(&pool("openai-custom", vec![extra]), &refs())), "InvalidSpec");
}

#[test]
fn a_base_url_must_be_an_http_or_https_url_with_a_host() {
    let with = |u: &str| PoolAccount {
        settings: ProviderSettings { base_url: Some(u.into()), ..Default::default() },
        ..account("a")
    };
    for bad in ["not a url", "ftp://example.com/v1", "http://", "https:///v1", "example.com/v1"] {
        let e = validate::validate(&pool("openai-custom", vec![with(bad)]), &refs()).expect_err(bad);
        assert_eq!(e.reason, "InvalidSpec", "{bad}");
        assert!(e.message.contains("settings.baseUrl"), "{}", e.message);
    }
    for good in ["https://api.openai.com/v1", "http://127.0.0.1:9/v1"] {
        assert!(validate::validate(&pool("openai-custom", vec![with(good)]), &refs()).is_ok(), "{good}");
    }
}

#[test]
fn jobs_pass_secrets_by_environment_never_argv() {
    let cfg = poolgate_operator::OperatorConfig::default();
    let mut cc = with_migration(MigrationPolicy::IfEmpty);
    cc.spec.admin_password_secret_ref = None;
    let mv = ccvalidate::validate(&cc, &cc_refs(Some(Some(fixture_source())))).expect("valid");
    let src = mv.source.clone().expect("source");
    for (kind, vol) in [(JobKind::Init, None), (JobKind::Migrate { hash: src.hash.clone() }, Some(&src.volume))] {
        let job = jobs::build_job(&cc, &kind, vol, &cfg);
        let c = job.spec.and_then(|s| s.template.spec).map(|p| p.containers[0].clone()).expect("container");
        let argv: Vec<String> = c.command.iter().flatten().chain(c.args.iter().flatten()).cloned().collect();
        assert!(!argv.iter().any(|a| a.contains("$(")), "{kind:?}: secrets expanded into argv: {argv:?}");
        let env: BTreeMap<String, String> = c
            .env
            .iter()
            .flatten()
            .filter_map(|e| {
                let r = e.value_from.as_ref()?.secret_key_ref.as_ref()?;
                Some((e.name.clone(), format!("{}/{}", r.name, r.key)))
            })
            .collect();
        assert_eq!(env.get("REDIS_URL").map(String::as_str), Some("redis/url"));
        if kind == JobKind::Init {
            assert!(argv.contains(&"--quiet-secrets".to_string()), "{argv:?}");
            assert_eq!(env.get("POOLGATE_API_KEY").map(String::as_str), Some("gateway/apiKey"));
            assert_eq!(
                env.get("POOLGATE_ADMIN_PASSWORD").map(String::as_str),
                Some("gw-admin-password/password"),
                "a generated password comes from the operator's Secret"
            );
        }
    }
}

#[test]
fn an_invalid_pool_lists_the_accounts_of_its_spec() {
    let p = pool("openai-custom", vec![account("a"), account("b")]);
    let ua = account_uuid("3b7c0d5e-pool-uid", &account("a"));
    let plan = vec![("a".to_string(), ua.clone())];
    let accounts = vec![stored(&ua, 5, true), stored("u-redis-only", 9, true)];
    let seeded = BTreeMap::new();
    let mut old = pool("openai-custom", vec![account("a"), account("gone")]);
    let plan_old = vec![("a".to_string(), ua.clone()), ("gone".to_string(), "u-redis-only".to_string())];
    old.status = Some(status::compute(
        &old,
        &status::Outcome::Synced { plan: &plan_old, accounts: &accounts, seeded: &seeded },
        "t1",
    ));
    let mut p2 = p.clone();
    p2.status = old.status.clone();
    let inv = status::compute(&p2, &status::Outcome::Invalid { reason: "SecretNotFound", message: "m".into() }, "t2");
    let names: Vec<&str> = inv.accounts.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, vec!["a", "b"], "the spec's accounts, not what Redis (or an older spec) held");
    assert_eq!(inv.accounts[0].usage_count, 5, "last known state of an account still in the spec");
    assert!(!inv.accounts[1].present);
    assert_eq!((inv.total_accounts, inv.total_usage), (2, 5));
    let _ = plan;
}

#[test]
fn operator_logs_carry_no_colour_codes_when_stderr_is_not_a_terminal() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_poolgate-operator"))
        .env_clear()
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env("HOME", "/nonexistent")
        .args(["run", "--leader-election", "false", "--admin-addr", "127.0.0.1:0"])
        .output()
        .expect("run the operator");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!err.is_empty(), "the failure is logged");
    assert!(!err.contains('\u{1b}'), "ANSI escape codes in a non-terminal log: {err:?}");
}

fn marked(uuid: &str, owner: Option<&str>) -> Account {
    let mut m = serde_json::Map::new();
    m.insert("uuid".into(), json!(uuid));
    if let Some(o) = owner {
        m.insert(build::OWNER_FIELD.into(), json!(o));
    }
    Account::from_map(m).expect("account")
}

#[test]
fn a_pool_prunes_only_the_accounts_it_created() {
    use std::collections::BTreeSet;
    let redis = vec![
        marked("kept", Some("ns/pool")),
        marked("mine-gone", Some("ns/pool")),
        marked("retained-of-openai", Some("ns/openai")),
        marked("migrated", None),
        marked("legacy-mine", None),
    ];
    let keep = BTreeSet::from(["kept"]);
    let listed = BTreeSet::from(["legacy-mine".to_string(), "kept".to_string()]);
    let p = build::prune("ns/pool", &keep, &listed, &redis, false);
    assert_eq!(p.delete, vec!["mine-gone", "legacy-mine"]);
    assert_eq!(p.foreign, vec!["retained-of-openai", "migrated"], "never another pool's or a migration's");
    // Taking the type over is explicit.
    let p = build::prune("ns/pool", &keep, &listed, &redis, true);
    assert_eq!(p.delete.len(), 4);
    assert!(p.foreign.is_empty());
}

#[test]
fn a_refresh_writes_nothing_unless_the_plan_changed() {
    let v = validate::validate(&pool("openai-custom", vec![account("a")]), &refs()).expect("valid");
    let plan = build::build(&v);
    let h = build::plan_hash(&plan, &v.redis, false);
    assert_eq!(h, build::plan_hash(&build::build(&v), &v.redis, false), "deterministic");
    assert_ne!(h, build::plan_hash(&plan, &v.redis, true));
    let v2 = validate::validate(&pool("openai-custom", vec![PoolAccount { disabled: true, ..account("a") }]), &refs())
        .expect("valid");
    assert_ne!(h, build::plan_hash(&build::build(&v2), &v2.redis, false), "a spec change changes the hash");
    let present = vec![marked(&plan.accounts[0].uuid, Some("ns/pool"))];
    let none = build::Prune::default();
    let seeded = BTreeMap::new();
    assert!(!build::needs_apply(Some(&h), &h, &plan, &present, &none, &seeded), "unchanged: no write");
    assert!(build::needs_apply(None, &h, &plan, &present, &none, &seeded), "never applied");
    assert!(build::needs_apply(Some("old"), &h, &plan, &present, &none, &seeded), "changed");
    assert!(build::needs_apply(Some(&h), &h, &plan, &[], &none, &seeded), "an account went missing in Redis");
    let prune = build::Prune { delete: vec!["x".into()], foreign: vec![] };
    assert!(build::needs_apply(Some(&h), &h, &plan, &present, &prune, &seeded));
    let ov = validate::validate(&pool("gemini-cli-oauth", vec![account("a")]), &refs()).expect("valid");
    let oplan = build::build(&ov);
    let oh = build::plan_hash(&oplan, &ov.redis, false);
    let opresent = vec![marked(&oplan.accounts[0].uuid, Some("ns/pool"))];
    assert!(build::needs_apply(Some(&oh), &oh, &oplan, &opresent, &none, &seeded), "a token never seeded");
    let seeded = BTreeMap::from([("a".to_string(), "h".to_string())]);
    assert!(!build::needs_apply(Some(&oh), &oh, &oplan, &opresent, &none, &seeded));
}

#[test]
fn cleanup_validates_the_redis_url_like_apply_and_names_the_way_out() {
    use poolgate_operator::controller::cleanup::{self, Cleanup};
    let mut cc = client_config("gw");
    cc.spec.deletion_policy = DeletionPolicy::Delete;
    for url in ["redis:/:SOMEPASSWORD@127.0.0.1:6379/0", "sk-client"] {
        let mut r = cc_refs(None);
        r.secrets.insert("redis", Some(BTreeMap::from([("url".to_string(), url.as_bytes().to_vec())])));
        match cleanup::client_config(&cc, &r) {
            Cleanup::Blocked(inv) => {
                assert_eq!(inv.reason, "InvalidRedisUrl");
                assert!(!inv.message.contains("SOMEPASSWORD") && !inv.message.contains("sk-client"), "{}", inv.message);
                assert!(inv.message.contains("poolgate.dev/skip-cleanup") && inv.message.contains("Retain"));
            }
            other => panic!("{url}: {other:?}"),
        }
        // The ways out.
        let mut skip = cc.clone();
        skip.metadata.annotations = Some(BTreeMap::from([("poolgate.dev/skip-cleanup".into(), "true".into())]));
        assert!(matches!(cleanup::client_config(&skip, &r), Cleanup::Leave { reason: "CleanupSkipped", .. }));
        let mut retain = cc.clone();
        retain.spec.deletion_policy = DeletionPolicy::Retain;
        assert!(matches!(cleanup::client_config(&retain, &r), Cleanup::Leave { reason: "Retained", .. }));
    }
    assert!(matches!(cleanup::client_config(&cc, &cc_refs(None)), Cleanup::Delete(_)));
    let waiting = CcRefs { pools: vec!["p".into()], ..cc_refs(None) };
    assert!(matches!(cleanup::client_config(&cc, &waiting), Cleanup::WaitForPools(_)));

    // A pool's cleanup: the same rule.
    let p = pool("openai-custom", vec![account("a")]);
    let mut r = refs();
    if let Some(c) = r.client_config.as_mut() {
        c.spec.deletion_policy = DeletionPolicy::Delete;
    }
    assert!(matches!(cleanup::provider_pool(&p, &r), Cleanup::Delete(_)));
    r.secrets.insert("redis", Some(BTreeMap::from([("url".to_string(), b"redis:/:SOMEPASSWORD@h:1/0".to_vec())])));
    match cleanup::provider_pool(&p, &r) {
        Cleanup::Blocked(inv) => assert!(!inv.message.contains("SOMEPASSWORD")),
        other => panic!("{other:?}"),
    }
    let target = validate::RedisTarget { url: "redis://:SOMEPASSWORD@h:1/0".into(), prefix: "pg:".into() };
    let inv = cleanup::redis_failed(&target, "connection to redis://:SOMEPASSWORD@h:1/0 refused");
    assert!(!inv.message.contains("SOMEPASSWORD"), "{}", inv.message);
}

#[test]
fn a_pool_is_triggered_by_changes_of_its_siblings() {
    use std::sync::Arc;
    let mut first = pool("openai-custom", vec![]);
    first.metadata.name = Some("openai".into());
    first.metadata.uid = Some("u1".into());
    let mut second = first.clone();
    second.metadata.name = Some("openai-2".into());
    second.metadata.uid = Some("u2".into());
    let mut other = first.clone();
    other.metadata.name = Some("claude".into());
    other.metadata.uid = Some("u3".into());
    other.spec.provider_type = "claude-custom".into();
    let all: Vec<Arc<ProviderPool>> = [first.clone(), second, other].into_iter().map(Arc::new).collect();
    let hit = poolgate_operator::controller::run::siblings_of(&all, &first);
    assert_eq!(hit.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), vec!["openai-2"]);
}
