//! Client key admission: the Redis script and the file backend (which runs
//! `client_key::decide`) agree on every outcome and counter for arbitrary key settings and
//! arbitrary sequences of admissions, refunds and settlements; many concurrent admissions on
//! Redis grant exactly the limit.

use poolgate_store::client_key::Limit;
use poolgate_store::{Admission, ClientKey, FileStore, RedisStore, Settlement, Storage, Ticket};
use poolgate_tests::RedisServer;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Admit { model_ok: bool },
    RefundLast,
    Settle { tokens: i64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Admit { model_ok: true }),
        1 => Just(Op::Admit { model_ok: false }),
        1 => Just(Op::RefundLast),
        1 => (0i64..40).prop_map(|tokens| Op::Settle { tokens }),
    ]
}

fn settings() -> impl Strategy<Value = ClientKey> {
    (
        prop::bool::weighted(0.1),
        prop::option::of(0i64..5),
        prop::option::of(0i64..7),
        prop::option::of(0i64..6),
        prop::option::of(1i64..60),
        0i64..3,
        -720i32..840,
    )
        .prop_map(|(disabled, daily, total, rpm, tpm, bonus, tz)| ClientKey {
            id: "k".into(),
            name: "k".into(),
            enabled: !disabled,
            daily_limit: daily,
            total_limit: total,
            rpm_limit: rpm,
            tpm_limit: tpm,
            models: vec!["m".into()],
            bonus,
            timezone_offset_minutes: tz,
            ..ClientKey::default()
        })
}

/// What an outcome says, without the timing-dependent parts (reset seconds).
fn shape(a: &Admission) -> String {
    match a {
        Admission::Admitted { ticket, limits } => format!("ok bonus={} left={:?}", ticket.bonus, limits.remaining),
        Admission::Exhausted { which, limits, .. } => {
            let w = match which {
                Limit::Daily => "daily",
                Limit::Total => "total",
                Limit::Rpm => "rpm",
                Limit::Tpm => "tpm",
            };
            format!("exhausted {w} limit={:?} left={:?}", limits.limit, limits.remaining)
        }
        other => format!("{other:?}"),
    }
}

async fn run(store: &dyn Storage, key: &ClientKey, ops: &[Op]) -> (Vec<String>, (i64, i64, i64)) {
    let hash = format!("h-{}", rand_suffix());
    store.put_client_key(&hash, key).await.expect("put");
    let mut last: Option<Ticket> = None;
    let mut out = Vec::new();
    for op in ops {
        match op {
            Op::Admit { model_ok } => {
                let model = if *model_ok { "m" } else { "other" };
                let a = store.admit_client_key(&hash, model, "openai-custom").await.expect("admit");
                if let Admission::Admitted { ticket, .. } = &a {
                    last = Some(ticket.clone());
                }
                out.push(shape(&a));
            }
            Op::RefundLast => {
                if let Some(t) = last.take() {
                    store.refund_client_key(&t).await.expect("refund");
                }
            }
            Op::Settle { tokens } => {
                if let Some(t) = &last {
                    let s = Settlement { model: "m".into(), input_tokens: *tokens, output_tokens: 1, error: false };
                    store.settle_client_key(t, &s).await.expect("settle");
                    // Settlements are group-committed (Redis: within a few ms); wait for it.
                    store.flush().await.expect("flush");
                }
            }
        }
    }
    let (_, u) = store.get_client_key(&hash).await.expect("get").expect("key");
    (out, (u.today_usage, u.total_usage, u.bonus_used))
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Waits until the current minute has enough left for one case (windows are per minute).
fn clear_of_minute_boundary() {
    while poolgate_store::time::epoch_ms() % 60_000 > 57_000 {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn redis_script_and_file_backend_agree() {
    let server = RedisServer::start().expect("redis");
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let redis = rt.block_on(RedisStore::open(server.settings("ck:"))).expect("redis store");
    let dir = tempfile::tempdir().expect("dir");
    let file = rt.block_on(FileStore::open(dir.path())).expect("file store");
    let config = ProptestConfig { cases: 64, ..ProptestConfig::default() };
    proptest!(config, |(key in settings(), ops in prop::collection::vec(op(), 0..14))| {
        clear_of_minute_boundary();
        let (a, ua) = rt.block_on(run(&redis, &key, &ops));
        let (b, ub) = rt.block_on(run(&file, &key, &ops));
        prop_assert_eq!(&a, &b, "outcomes differ for {:?} / {:?}", key, ops);
        prop_assert_eq!(ua, ub, "counters differ for {:?} / {:?}", key, ops);
    });
}

#[tokio::test]
async fn concurrent_admissions_grant_exactly_the_limit() {
    let server = RedisServer::start().expect("redis");
    let store = std::sync::Arc::new(RedisStore::open(server.settings("cc:")).await.expect("store"));
    assert!(store.list_client_keys().await.expect("list with no keys").is_empty());
    let key = ClientKey { enabled: true, daily_limit: Some(50), bonus: 5, ..ClientKey::default() };
    store.put_client_key("h", &key).await.expect("put");
    assert_eq!(store.list_client_keys().await.expect("list").len(), 1);
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let s = store.clone();
            tokio::spawn(async move { s.admit_client_key("h", "m", "p").await })
        })
        .collect();
    let mut granted = 0;
    for t in tasks {
        if let Ok(Admission::Admitted { .. }) = t.await.expect("join") {
            granted += 1;
        }
    }
    assert_eq!(granted, 55, "the daily limit plus the bonus");
    let (_, u) = store.get_client_key("h").await.expect("get").expect("key");
    assert_eq!((u.today_usage, u.bonus_used, u.total_usage), (50, 5, 55));
}
