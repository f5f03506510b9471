//! File backend: the reference's files are read and written faithfully, atomically, and bad files
//! are reported without being overwritten.

use poolgate_store::{FileStore, Storage, StoreError};
use poolgate_tests::fixtures_dir;
use serde_json::{json, Value};

fn copy_fixture_configs() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tmp");
    let src = fixtures_dir().join("reference");
    copy_dir(&src, tmp.path());
    tmp
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let dest = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).expect("copy");
        }
    }
}

#[tokio::test]
async fn reference_files_round_trip_through_updates() {
    let tmp = copy_fixture_configs();
    let dir = tmp.path().join("configs");
    let original: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("provider_pools.json")).expect("read")).expect("json");
    let s = FileStore::open(&dir).await.expect("open");
    let kiro = "claude-kiro-oauth";
    let uuid = "2c69d0ac-b86f-43d8-9d17-0d300afc5cfd";
    for _ in 0..3 {
        s.record_usage(kiro, uuid, 1).await.expect("usage");
    }
    // The account's token is read from the path it names, relative to the config dir's parent.
    let tok = s.get_token(kiro, uuid).await.expect("token").expect("present");
    assert_eq!(tok["refreshToken"], "aorAAAAA-demo");
    s.flush().await.expect("flush");
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("provider_pools.json")).expect("read")).expect("json");
    let mut want = original.clone();
    want[kiro][0]["usageCount"] = json!(1237);
    want[kiro][0]["lastUsed"] = written[kiro][0]["lastUsed"].clone();
    assert_eq!(written, want, "only the touched fields changed; arrays, unicode, unknown fields intact");
    assert_eq!(written["claude-custom-empty"], json!([]));
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp."))
        .collect();
    assert!(leftovers.is_empty(), "atomic writes leave no temp files");
    // A new process reads what this one wrote.
    let again = FileStore::open(&dir).await.expect("reopen");
    assert_eq!(again.get_account(kiro, uuid).await.expect("acc").usage_count(), 1237);
    assert_eq!(again.get_password().await.expect("pwd").as_deref(), Some("s3cret-demo"));
}

#[tokio::test]
async fn a_malformed_file_is_named_with_its_position_and_left_alone() {
    let tmp = tempfile::tempdir().expect("tmp");
    let bad = "{\n  \"openai-custom\": [\n    {\"uuid\": \"a\",}\n  ]\n}\n";
    std::fs::write(tmp.path().join("provider_pools.json"), bad).expect("write");
    match FileStore::open(tmp.path()).await {
        Err(e @ StoreError::Corrupt { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("provider_pools.json") && msg.contains("line 3"), "{msg}");
        }
        Err(e) => panic!("expected Corrupt, got {e}"),
        Ok(_) => panic!("a malformed file must not load"),
    }
    assert_eq!(std::fs::read_to_string(tmp.path().join("provider_pools.json")).expect("read"), bad);
    std::fs::write(tmp.path().join("provider_pools.json"), r#"{"openai-custom": [{"no-uuid": 1}]}"#).expect("w");
    assert!(matches!(FileStore::open(tmp.path()).await, Err(StoreError::Corrupt { .. })), "an account needs a uuid");
}

#[tokio::test]
async fn concurrent_updates_in_one_process_are_exact_on_disk() {
    let tmp = tempfile::tempdir().expect("tmp");
    let s = std::sync::Arc::new(FileStore::open(tmp.path()).await.expect("open"));
    let acc = poolgate_store::Account::new("a");
    s.add_account("openai-custom", acc).await.expect("add");
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..50 {
                s.record_usage("openai-custom", "a", 1).await.expect("usage");
            }
        }));
    }
    for t in tasks {
        t.await.expect("join");
    }
    s.flush().await.expect("flush");
    let text = std::fs::read_to_string(tmp.path().join("provider_pools.json")).expect("read");
    let v: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(v["openai-custom"][0]["usageCount"], 1600);
}

#[tokio::test]
async fn reference_sessions_stay_valid_and_are_rewritten_hashed() {
    let tmp = copy_fixture_configs();
    let dir = tmp.path().join("configs");
    let live = "3f9c0000000000000000000000000000000000000000000000000000000000aa";
    let expired = "3f9c0000000000000000000000000000000000000000000000000000000000bb";
    let s = FileStore::open(&dir).await.expect("open");
    assert!(s.get_session(live).await.expect("get").is_some(), "a reference session (raw-token key) still works");
    assert!(s.get_session(expired).await.expect("get").is_none());
    let now = poolgate_store::time::epoch_ms();
    let sess = poolgate_store::Session { username: "admin".into(), login_time: now, expiry_time: now + 60_000 };
    s.put_session("new-token", &sess).await.expect("put");
    let text = std::fs::read_to_string(dir.join("token-store.json")).expect("read");
    assert!(!text.contains("new-token") && !text.contains(live), "no raw token on disk: {text}");
    assert!(text.contains("\"keyFormat\": \"sha256\""), "{text}");
    let again = FileStore::open(&dir).await.expect("reopen");
    assert_eq!(again.get_session("new-token").await.expect("get"), Some(sess));
    assert!(again.get_session(live).await.expect("get").is_some());
}
