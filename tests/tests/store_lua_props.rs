//! Property tests of the server-side JSON splicer (`lua/json.lua`): for arbitrary stored account
//! JSON and arbitrary updates, Redis produces exactly what the in-memory `AccountOps::apply`
//! produces (same text, field order kept), and arbitrary malformed input is reported as corrupt and
//! left untouched.

use poolgate_store::{Account, AccountOps, Applied, RedisStore, Storage, StoreError};
use poolgate_tests::RedisServer;
use proptest::prelude::*;
use redis::AsyncCommands;
use serde_json::{Map, Value};

const P: &str = "lp:";
const POOL: &str = "openai-custom";

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1.0e9f64..1.0e9).prop_map(|f| serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)),
        "[a-z\"\\\\{}\\[\\],: é中\u{1F600}\\n\\t]{0,12}".prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z_\"\\\\ ]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn account_json() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::vec(("[a-zA-Z\"\\\\{}:, ]{1,10}", json_value()), 0..8).prop_map(|fields| {
        let mut m = Map::new();
        m.insert("uuid".into(), Value::from("u"));
        for (k, v) in fields {
            if k != "uuid" {
                m.insert(k, v);
            }
        }
        m
    })
}

fn ops() -> impl Strategy<Value = AccountOps> {
    let field = prop_oneof![
        Just("usageCount".to_string()),
        Just("errorCount".to_string()),
        Just("isHealthy".to_string()),
        "[a-zA-Z\"\\\\ ]{1,6}",
    ];
    (
        prop::collection::vec(field.clone(), 0..2),
        prop::collection::vec((field.clone(), json_value()), 0..3),
        prop::collection::vec((field, -5i64..50), 0..3),
        prop::option::of(0i64..5),
    )
        .prop_map(|(unset, set, incr, t)| {
            let mut o = AccountOps { unset, unhealthy_at: t, ..AccountOps::default() };
            for (f, v) in set {
                o.set.insert(f, v);
            }
            for (f, n) in incr {
                *o.incr.entry(f).or_insert(0) += n;
            }
            o
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, .. ProptestConfig::default() })]

    #[test]
    fn redis_splice_equals_in_memory_apply(acc in account_json(), ops in ops()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
        rt.block_on(async {
            let server = RedisServer::start().expect("redis");
            let mut con = server.connection().await.expect("con");
            let raw = Value::Object(acc.clone()).to_string();
            let _: () = con.hset(format!("{P}pools:{POOL}"), "u", &raw).await.expect("hset");
            let store = RedisStore::open(server.settings(P)).await.expect("open");
            let mut want = Account::from_map(acc).expect("account");
            ops.apply(&mut want);
            // Counters are exact up to 2^53, JavaScript's safe-integer range, which the reference
            // (Node) shares; beyond it Lua's doubles round like Node's would.
            let safe = ops.incr.keys().all(|f| want.get(f).and_then(Value::as_i64).is_none_or(|n| n.abs() < 1 << 53));
            prop_assume!(safe);
            let got = store.update_account(POOL, "u", ops.clone()).await.expect("update");
            let stored: String = con.hget(format!("{P}pools:{POOL}"), "u").await.expect("hget");
            prop_assert_eq!(&stored, &want.to_json(), "stored text (ops {:?})", ops);
            prop_assert_eq!(got, Applied::Done(want));
            Ok(())
        })?;
    }

    #[test]
    fn malformed_stored_json_is_reported_and_left_alone(junk in "\\{\"uuid\":\"u\",[ -~]{0,30}") {
        prop_assume!(serde_json::from_str::<Value>(&junk).is_err());
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
        rt.block_on(async {
            let server = RedisServer::start().expect("redis");
            let mut con = server.connection().await.expect("con");
            let _: () = con.hset(format!("{P}pools:{POOL}"), "u", &junk).await.expect("hset");
            let store = RedisStore::open(server.settings(P)).await.expect("open");
            let r = store.record_usage(POOL, "u", 1).await;
            prop_assert!(matches!(r, Err(StoreError::Corrupt { .. })), "{:?}", r);
            let stored: String = con.hget(format!("{P}pools:{POOL}"), "u").await.expect("hget");
            prop_assert_eq!(stored, junk);
            Ok(())
        })?;
    }
}
