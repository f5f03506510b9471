//! Arbitrary JSON for property tests of request parsers: scalars, `extra` leaves, and arrays and
//! objects nested three deep with keys from `keys`.

use proptest::prelude::*;
use serde_json::{json, Value};

pub fn json_value(
    keys: impl Strategy<Value = String> + Clone + 'static,
    extra: Vec<Value>,
) -> impl Strategy<Value = Value> {
    let extra = if extra.is_empty() { vec![Value::Null] } else { extra };
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[ -~]{0,12}".prop_map(Value::String),
        prop::sample::select(extra),
    ];
    leaf.prop_recursive(3, 24, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(keys.clone(), inner, 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
