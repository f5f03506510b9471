//! The same behaviour, asserted against both backends: a real redis-server and files.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use poolgate_store::{
    Account, AccountSpec, Applied, CasOutcome, ErrorEvent, FileStore, RedisStore, Session, Storage, StoreError,
};
use poolgate_tests::RedisServer;
use serde_json::{json, Map, Value};

enum Guard {
    Redis(#[allow(dead_code)] RedisServer),
    File(#[allow(dead_code)] tempfile::TempDir),
}

async fn redis_backend() -> (Arc<dyn Storage>, Guard) {
    let server = RedisServer::start().expect("redis-server");
    let store = RedisStore::open(server.settings("conf:")).await.expect("open");
    (Arc::new(store), Guard::Redis(server))
}

async fn file_backend() -> (Arc<dyn Storage>, Guard) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = FileStore::open(dir.path()).await.expect("open");
    (Arc::new(store), Guard::File(dir))
}

/// Runs one scenario against both backends.
async fn both<F, Fut>(scenario: F)
where
    F: Fn(Arc<dyn Storage>) -> Fut,
    Fut: Future<Output = ()>,
{
    for make in [0, 1] {
        let (store, _guard) = if make == 0 { redis_backend().await } else { file_backend().await };
        scenario(store).await;
    }
}

fn account(v: Value) -> Account {
    match v {
        Value::Object(m) => Account::from_map(m).expect("account"),
        _ => panic!("not an object"),
    }
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().expect("object")
}

fn done<T>(a: Applied<T>) -> T {
    a.done().expect("applied, not queued")
}

#[tokio::test]
async fn accounts_crud_with_typed_not_found_and_exists() {
    both(|s| async move {
        let added = done(
            s.add_account("openai-custom", account(json!({"uuid": "a1", "OPENAI_API_KEY": "k"}))).await.expect("add"),
        );
        assert!(added.is_healthy() && !added.is_disabled() && added.usage_count() == 0, "defaults filled");
        assert!(matches!(
            s.add_account("openai-custom", account(json!({"uuid": "a1"}))).await,
            Err(StoreError::AlreadyExists { .. })
        ));
        assert_eq!(s.list_pool_types().await.expect("types"), vec!["openai-custom"]);
        let got = s.get_account("openai-custom", "a1").await.expect("get");
        assert_eq!(got.get("OPENAI_API_KEY"), Some(&json!("k")));
        let patched =
            done(s.patch_account("openai-custom", "a1", obj(json!({"customName": "n"}))).await.expect("patch"));
        assert_eq!(patched.custom_name(), Some("n"));
        assert!(
            matches!(
                s.patch_account("openai-custom", "a1", obj(json!({"usageCount": 5}))).await,
                Err(StoreError::Invalid(_))
            ),
            "runtime fields are not patchable"
        );
        assert!(matches!(
            s.patch_account("openai-custom", "nope", obj(json!({"x": 1}))).await,
            Err(StoreError::NotFound { .. })
        ));
        assert!(matches!(s.record_usage("openai-custom", "nope", 1).await, Err(StoreError::NotFound { .. })));
        assert!(matches!(s.get_account("openai-custom", "nope").await, Err(StoreError::NotFound { .. })));
        done(s.delete_account("openai-custom", "a1").await.expect("delete"));
        assert!(matches!(s.delete_account("openai-custom", "a1").await, Err(StoreError::NotFound { .. })));
        assert!(matches!(s.record_usage("openai-custom", "a1", 1).await, Err(StoreError::NotFound { .. })));
        assert!(
            matches!(s.get_account("openai-custom", "a1").await, Err(StoreError::NotFound { .. })),
            "never comes back"
        );
        assert!(s.get_pool("openai-custom").await.expect("pool").is_empty());
    })
    .await;
}

#[tokio::test]
async fn runtime_updates_follow_the_reference_semantics() {
    both(|s| async move {
        done(s.add_account("claude-custom", account(json!({"uuid": "c"}))).await.expect("add"));
        let a = done(s.record_usage("claude-custom", "c", 3).await.expect("usage"));
        assert_eq!(a.usage_count(), 3);
        assert!(a.last_used().is_some_and(|t| t.ends_with('Z') && t.len() == 24));
        let ev = ErrorEvent { message: Some("boom".into()), threshold: Some(2), ..Default::default() };
        let a = done(s.record_error("claude-custom", "c", &ev).await.expect("err"));
        assert!(a.is_healthy() && a.error_count() == 1);
        let a = done(s.record_error("claude-custom", "c", &ev).await.expect("err"));
        assert!(!a.is_healthy() && a.error_count() == 2, "threshold reached in the same update");
        assert_eq!(a.last_error_message(), Some("boom"));
        let a = done(s.set_health("claude-custom", "c", true, Some("m")).await.expect("health"));
        assert!(a.is_healthy() && a.error_count() == 0 && a.last_error_message().is_none());
        assert_eq!(a.usage_count(), 3, "recovery keeps usage");
        let now = ErrorEvent {
            unhealthy_now: true,
            recover_at: Some("2030-01-01T00:00:00.000Z".into()),
            ..Default::default()
        };
        let a = done(s.record_error("claude-custom", "c", &now).await.expect("429"));
        assert!(!a.is_healthy());
        assert_eq!(a.scheduled_recovery_time(), Some("2030-01-01T00:00:00.000Z"));
        assert!(done(s.mark_needs_refresh("claude-custom", "c").await.expect("nr")).needs_refresh());
        assert!(done(s.set_disabled("claude-custom", "c", true).await.expect("dis")).is_disabled());
        let a = done(s.reset_counters("claude-custom", "c").await.expect("reset"));
        assert_eq!((a.usage_count(), a.error_count()), (0, 0));
    })
    .await;
}

#[tokio::test]
async fn apply_spec_never_touches_runtime_fields_and_prunes() {
    both(|s| async move {
        done(
            s.add_account(
                "openai-custom",
                account(json!({"uuid": "keep", "OPENAI_API_KEY": "old", "OPENAI_BASE_URL": "u"})),
            )
            .await
            .expect("add"),
        );
        done(s.add_account("openai-custom", account(json!({"uuid": "gone"}))).await.expect("add"));
        s.set_token("openai-custom", "gone", &json!({"k": 1})).await.expect("token");
        done(s.record_usage("openai-custom", "keep", 7).await.expect("usage"));
        done(s.set_disabled("openai-custom", "keep", false).await.expect("x"));
        let specs = vec![
            AccountSpec {
                uuid: "keep".into(),
                fields: obj(json!({"OPENAI_API_KEY": "new", "customName": "Keep"})),
                remove: vec!["OPENAI_BASE_URL".into()],
            },
            AccountSpec { uuid: "fresh".into(), fields: obj(json!({"OPENAI_API_KEY": "f"})), remove: vec![] },
        ];
        let report = s.apply_spec("openai-custom", &specs, true).await.expect("apply");
        assert_eq!(report.created, vec!["fresh"]);
        assert_eq!(report.updated, vec!["keep"]);
        assert_eq!(report.removed, vec!["gone"]);
        let keep = s.get_account("openai-custom", "keep").await.expect("keep");
        assert_eq!(keep.usage_count(), 7, "runtime counter untouched");
        assert_eq!(keep.get("OPENAI_API_KEY"), Some(&json!("new")));
        assert_eq!(keep.get("OPENAI_BASE_URL"), None);
        let fresh = s.get_account("openai-custom", "fresh").await.expect("fresh");
        assert!(fresh.is_healthy() && fresh.usage_count() == 0);
        assert!(matches!(s.get_account("openai-custom", "gone").await, Err(StoreError::NotFound { .. })));
        assert_eq!(s.get_token("openai-custom", "gone").await.expect("tok"), None, "pruned account's token removed");
        let bad = vec![AccountSpec { uuid: "keep".into(), fields: obj(json!({"usageCount": 0})), remove: vec![] }];
        assert!(matches!(s.apply_spec("openai-custom", &bad, false).await, Err(StoreError::Invalid(_))));
        assert_eq!(s.get_account("openai-custom", "keep").await.expect("keep").usage_count(), 7);
        assert_eq!(s.delete_pool("openai-custom").await.expect("drop").len(), 2);
        assert!(s.list_pool_types().await.expect("types").is_empty());
    })
    .await;
}

#[tokio::test]
async fn tokens_cas_and_delete_with_account() {
    both(|s| async move {
        for (pool, field) in [("openai-qwen-oauth", "refresh_token"), ("claude-kiro-oauth", "refreshToken")] {
            done(s.add_account(pool, account(json!({"uuid": "t"}))).await.expect("add"));
            assert!(
                matches!(s.cas_token(pool, "t", "r0", &json!({field: "r1"})).await, Err(StoreError::NotFound { .. })),
                "CAS never creates a token"
            );
            s.set_token(pool, "t", &json!({field: "r1", "access": "a1", "keep": [1, 2]})).await.expect("set");
            let won = s.cas_token(pool, "t", "r1", &json!({field: "r2", "access": "a2"})).await.expect("cas");
            assert_eq!(won, CasOutcome::Updated);
            match s.cas_token(pool, "t", "r1", &json!({field: "r3"})).await.expect("cas") {
                CasOutcome::Conflict { current } => assert_eq!(current[field], "r2", "loser gets the winner's token"),
                other => panic!("expected conflict, got {other:?}"),
            }
            assert_eq!(s.get_token(pool, "t").await.expect("get"), Some(json!({field: "r2", "access": "a2"})));
            done(s.delete_account(pool, "t").await.expect("del"));
            assert_eq!(s.get_token(pool, "t").await.expect("get"), None, "token deleted with its account");
        }
    })
    .await;
}

#[tokio::test]
async fn refresh_lock_is_owned() {
    both(|s| async move {
        let ttl = Duration::from_millis(300);
        assert!(s.acquire_refresh_lock("p", "u", "A", ttl).await.expect("a"));
        assert!(!s.acquire_refresh_lock("p", "u", "B", ttl).await.expect("b"), "held by A");
        assert!(!s.release_refresh_lock("p", "u", "B").await.expect("rel"), "only the owner releases");
        assert!(s.renew_refresh_lock("p", "u", "A", ttl).await.expect("renew"));
        assert!(!s.renew_refresh_lock("p", "u", "B", ttl).await.expect("renew"));
        assert!(s.release_refresh_lock("p", "u", "A").await.expect("rel"));
        assert!(s.acquire_refresh_lock("p", "u", "A", Duration::from_millis(100)).await.expect("a"));
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(s.acquire_refresh_lock("p", "u", "B", ttl).await.expect("b"), "expired lock taken over");
        assert!(!s.release_refresh_lock("p", "u", "A").await.expect("rel"), "old owner cannot release B's lock");
    })
    .await;
}

#[tokio::test]
async fn sessions_config_password_usage_plugins_metadata() {
    both(|s| async move {
        let now = poolgate_store::time::epoch_ms();
        let live = Session { username: "admin".into(), login_time: now, expiry_time: now + 60_000 };
        let dead = Session { username: "admin".into(), login_time: now - 10, expiry_time: now - 1 };
        done(s.put_session("tok-live", &live).await.expect("put"));
        done(s.put_session("tok-dead", &dead).await.expect("put"));
        assert_eq!(s.get_session("tok-live").await.expect("get"), Some(live));
        assert_eq!(s.get_session("tok-dead").await.expect("get"), None, "expired");
        assert_eq!(s.get_session("other").await.expect("get"), None, "unknown bearer rejected");
        done(s.delete_session("tok-live").await.expect("del"));
        assert_eq!(s.get_session("tok-live").await.expect("get"), None);

        assert_eq!(s.get_config().await.expect("cfg"), None);
        let cfg = json!({"REQUIRED_API_KEY": "k", "SERVER_PORT": 3000, "list": []});
        done(s.set_config(&cfg).await.expect("set"));
        assert_eq!(s.get_config().await.expect("cfg"), Some(cfg));
        assert!(matches!(s.set_config(&json!([1])).await, Err(StoreError::Invalid(_))));
        done(s.set_password(" pw \n").await.expect("pwd"));
        assert_eq!(s.get_password().await.expect("pwd").as_deref(), Some("pw"));
        let usage = json!({"timestamp": "t", "providers": {}});
        done(s.set_usage_cache(&usage).await.expect("usage"));
        assert_eq!(s.get_usage_cache().await.expect("usage"), Some(usage));
        let plugins = json!({"plugins": {"default-auth": {"enabled": true, "description": "默认"}}});
        done(s.set_plugins(&plugins).await.expect("plugins"));
        assert_eq!(s.get_plugins().await.expect("plugins"), Some(plugins));
        let mut meta = BTreeMap::new();
        meta.insert("version".to_string(), "1.0".to_string());
        meta.insert("initializedAt".to_string(), "2026-01-01T00:00:00.000Z".to_string());
        done(s.set_metadata(&meta).await.expect("meta"));
        let got = s.get_metadata().await.expect("meta");
        assert_eq!(got.get("initializedAt").map(String::as_str), Some("2026-01-01T00:00:00.000Z"));
        s.flush().await.expect("flush");
    })
    .await;
}

#[tokio::test]
async fn replace_pool_swaps_the_whole_pool_and_registers_the_type() {
    both(|s| async move {
        done(s.add_account("forward-api", account(json!({"uuid": "old"}))).await.expect("add"));
        let new = vec![account(json!({"uuid": "n1", "usageCount": 4})), account(json!({"uuid": "n2", "x": []}))];
        s.replace_pool("forward-api", new).await.expect("replace");
        let pool = s.get_pool("forward-api").await.expect("pool");
        let mut uuids: Vec<&str> = pool.iter().map(|a| a.uuid()).collect();
        uuids.sort();
        assert_eq!(uuids, vec!["n1", "n2"]);
        assert_eq!(s.get_account("forward-api", "n1").await.expect("n1").usage_count(), 4);
        s.replace_pool("claude-custom", vec![account(json!({"uuid": "c"}))]).await.expect("replace");
        assert_eq!(s.list_pool_types().await.expect("types"), vec!["claude-custom", "forward-api"]);
    })
    .await;
}
