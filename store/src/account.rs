//! Provider accounts as stored: the JSON object itself, so field order, arrays, integers and
//! unknown provider-specific fields survive every update. Typed accessors read the known fields.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Result, StoreError};

/// Fields owned by the runtime (proxies): specs and UI patches never write them.
pub const RUNTIME_FIELDS: &[&str] = &[
    "usageCount",
    "errorCount",
    "lastUsed",
    "isHealthy",
    "lastErrorTime",
    "lastErrorMessage",
    "lastHealthCheckTime",
    "lastHealthCheckModel",
    "refreshCount",
    "needsRefresh",
    "scheduledRecoveryTime",
    "addedAt",
];

/// True when `field` belongs to the runtime, not to the spec.
pub fn is_runtime_field(field: &str) -> bool {
    RUNTIME_FIELDS.contains(&field)
}

/// One provider account, exactly as the reference stores it (a JSON object).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Account(Map<String, Value>);

impl Account {
    /// A new account with the runtime defaults, `uuid` first.
    pub fn new(uuid: impl Into<String>) -> Self {
        let mut acc = Self(Map::new());
        acc.0.insert("uuid".into(), Value::String(uuid.into()));
        acc.fill_defaults(&crate::time::iso_now());
        acc
    }

    /// Wraps a JSON object; it must carry a non-empty string `uuid`.
    pub fn from_map(map: Map<String, Value>) -> Result<Self> {
        match map.get("uuid") {
            Some(Value::String(u)) if !u.is_empty() => Ok(Self(map)),
            _ => Err(StoreError::Invalid("account needs a non-empty string \"uuid\"".into())),
        }
    }

    /// Parses stored JSON; `location` names the key/field or file for the error.
    pub fn parse(text: &str, location: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(text).map_err(|e| StoreError::corrupt(location, &e))?;
        match value {
            Value::Object(map) => Self::from_map(map)
                .map_err(|e| StoreError::Corrupt { location: location.into(), detail: e.to_string() }),
            _ => Err(StoreError::Corrupt { location: location.into(), detail: "not a JSON object".into() }),
        }
    }

    /// Adds the runtime fields a fresh account starts with, keeping any already present.
    pub fn fill_defaults(&mut self, now: &str) {
        let defaults = [
            ("isHealthy", Value::Bool(true)),
            ("isDisabled", Value::Bool(false)),
            ("usageCount", Value::from(0)),
            ("errorCount", Value::from(0)),
            ("lastUsed", Value::Null),
            ("lastErrorTime", Value::Null),
            ("addedAt", Value::String(now.into())),
        ];
        for (k, v) in defaults {
            self.0.entry(k).or_insert(v);
        }
    }

    pub fn uuid(&self) -> &str {
        self.0.get("uuid").and_then(Value::as_str).unwrap_or_default()
    }
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.0.get(field)
    }
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }
    pub fn into_map(self) -> Map<String, Value> {
        self.0
    }
    pub fn to_json(&self) -> String {
        Value::Object(self.0.clone()).to_string()
    }
    fn int(&self, field: &str) -> i64 {
        self.0.get(field).and_then(number_as_i64).unwrap_or(0)
    }
    fn flag(&self, field: &str, default: bool) -> bool {
        self.0.get(field).and_then(Value::as_bool).unwrap_or(default)
    }
    fn text(&self, field: &str) -> Option<&str> {
        self.0.get(field).and_then(Value::as_str)
    }
    pub fn usage_count(&self) -> i64 {
        self.int("usageCount")
    }
    pub fn error_count(&self) -> i64 {
        self.int("errorCount")
    }
    pub fn is_healthy(&self) -> bool {
        self.flag("isHealthy", true)
    }
    pub fn is_disabled(&self) -> bool {
        self.flag("isDisabled", false)
    }
    pub fn needs_refresh(&self) -> bool {
        self.flag("needsRefresh", false)
    }
    pub fn last_used(&self) -> Option<&str> {
        self.text("lastUsed")
    }
    pub fn last_error_message(&self) -> Option<&str> {
        self.text("lastErrorMessage")
    }
    pub fn custom_name(&self) -> Option<&str> {
        self.text("customName")
    }
    pub fn check_model(&self) -> Option<&str> {
        self.text("checkModelName")
    }
    pub fn scheduled_recovery_time(&self) -> Option<&str> {
        self.text("scheduledRecoveryTime")
    }
    /// `notSupportedModels` as strings (missing → empty).
    pub fn not_supported_models(&self) -> Vec<&str> {
        match self.0.get("notSupportedModels") {
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }
}

/// Integer value of a JSON number; fractions round down, as the Redis script does.
fn number_as_i64(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_f64().map(|f| f.floor() as i64))
}

/// A composable change to one account, applied atomically: `unset`, then `set`, then `incr`,
/// then the unhealthy threshold. Composition (`merge`) equals applying both in order, which is
/// what lets the write queue coalesce without losing anything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccountOps {
    pub unset: Vec<String>,
    pub set: IndexMap<String, Value>,
    pub incr: IndexMap<String, i64>,
    /// Mark `isHealthy=false` when `errorCount` ends at or above this.
    pub unhealthy_at: Option<i64>,
}

impl AccountOps {
    pub fn is_empty(&self) -> bool {
        self.unset.is_empty() && self.set.is_empty() && self.incr.is_empty() && self.unhealthy_at.is_none()
    }

    /// A field-level patch (UI/operator): sets each given field.
    pub fn patch(fields: Map<String, Value>) -> Self {
        Self { set: fields.into_iter().collect(), ..Self::default() }
    }

    pub fn set(mut self, field: &str, value: impl Into<Value>) -> Self {
        self.set.insert(field.into(), value.into());
        self
    }

    pub fn incr(mut self, field: &str, by: i64) -> Self {
        *self.incr.entry(field.into()).or_insert(0) += by;
        self
    }

    /// `self` followed by `later`, as one change.
    pub fn merge(&mut self, later: AccountOps) {
        if later.set.contains_key("isHealthy") || later.set.contains_key("errorCount") {
            self.unhealthy_at = None;
        }
        for f in later.unset {
            self.set.shift_remove(&f);
            self.incr.shift_remove(&f);
            if !self.unset.contains(&f) {
                self.unset.push(f);
            }
        }
        for (f, v) in later.set {
            self.unset.retain(|u| *u != f);
            self.incr.shift_remove(&f);
            self.set.insert(f, v);
        }
        for (f, n) in later.incr {
            *self.incr.entry(f).or_insert(0) += n;
        }
        self.unhealthy_at = match (self.unhealthy_at, later.unhealthy_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }

    /// Applies the change in memory with the same semantics as the Redis script.
    pub fn apply(&self, acc: &mut Account) {
        for f in &self.unset {
            acc.0.shift_remove(f);
        }
        for (f, v) in &self.set {
            acc.0.insert(f.clone(), v.clone());
        }
        for (f, n) in &self.incr {
            let cur = acc.0.get(f).and_then(number_as_i64).unwrap_or(0);
            acc.0.insert(f.clone(), Value::from(cur + n));
        }
        if let Some(t) = self.unhealthy_at {
            if acc.error_count() >= t {
                acc.0.insert("isHealthy".into(), Value::Bool(false));
            }
        }
    }

    /// Fields this change writes.
    pub fn touched(&self) -> impl Iterator<Item = &str> {
        self.unset
            .iter()
            .map(String::as_str)
            .chain(self.set.keys().map(String::as_str))
            .chain(self.incr.keys().map(String::as_str))
    }
}

/// What a failed call did to the account, for [`runtime::error`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ErrorEvent {
    pub message: Option<String>,
    /// Mark unhealthy when errorCount reaches this (`MAX_ERROR_COUNT`).
    pub threshold: Option<i64>,
    /// Mark unhealthy now (401/403, quota).
    pub unhealthy_now: bool,
    /// ISO time at which a cooled-down account may be used again (429).
    pub recover_at: Option<String>,
}

/// Builders for the runtime updates of the reference (§5.1), each one [`AccountOps`].
pub mod runtime {
    use super::{AccountOps, ErrorEvent};
    use serde_json::Value;

    pub fn usage(n: i64, now: &str) -> AccountOps {
        AccountOps::default().incr("usageCount", n).set("lastUsed", now)
    }

    pub fn error(ev: &ErrorEvent, now: &str) -> AccountOps {
        let mut ops = AccountOps::default().incr("errorCount", 1).set("lastErrorTime", now);
        if let Some(m) = &ev.message {
            ops = ops.set("lastErrorMessage", m.as_str());
        }
        if ev.unhealthy_now {
            ops = ops.set("isHealthy", false);
        }
        if let Some(t) = &ev.recover_at {
            ops = ops.set("scheduledRecoveryTime", t.as_str());
        }
        ops.unhealthy_at = ev.threshold;
        ops
    }

    pub fn health(healthy: bool, model: Option<&str>, now: &str) -> AccountOps {
        let mut ops = AccountOps::default().set("isHealthy", healthy).set("lastHealthCheckTime", now);
        if let Some(m) = model {
            ops = ops.set("lastHealthCheckModel", m);
        }
        if healthy {
            ops = ops
                .set("errorCount", 0)
                .set("refreshCount", 0)
                .set("needsRefresh", false)
                .set("lastErrorTime", Value::Null)
                .set("lastErrorMessage", Value::Null)
                .set("scheduledRecoveryTime", Value::Null);
        }
        ops
    }

    pub fn needs_refresh() -> AccountOps {
        AccountOps::default().set("needsRefresh", true)
    }

    pub fn disabled(disabled: bool) -> AccountOps {
        AccountOps::default().set("isDisabled", disabled)
    }

    pub fn reset_counters() -> AccountOps {
        AccountOps::default().set("usageCount", 0).set("errorCount", 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn acc(v: Value) -> Account {
        match v {
            Value::Object(m) => Account::from_map(m).expect("valid"),
            _ => unreachable!(),
        }
    }

    #[test]
    fn apply_keeps_order_arrays_and_unknown_fields() {
        let mut a = acc(json!({"uuid":"u","notSupportedModels":[],"x":{"y":[1,2]},"usageCount":5}));
        runtime::usage(3, "2026-01-01T00:00:00.000Z").apply(&mut a);
        assert_eq!(
            a.to_json(),
            r#"{"uuid":"u","notSupportedModels":[],"x":{"y":[1,2]},"usageCount":8,"lastUsed":"2026-01-01T00:00:00.000Z"}"#
        );
    }

    #[test]
    fn threshold_marks_unhealthy_only_when_reached() {
        let mut a = acc(json!({"uuid":"u","errorCount":1,"isHealthy":true}));
        let ev = ErrorEvent { threshold: Some(3), ..Default::default() };
        runtime::error(&ev, "t").apply(&mut a);
        assert!(a.is_healthy());
        runtime::error(&ev, "t").apply(&mut a);
        assert!(!a.is_healthy());
        assert_eq!(a.error_count(), 3);
    }

    fn arb_ops() -> impl Strategy<Value = AccountOps> {
        let field = prop::sample::select(vec!["usageCount", "errorCount", "isHealthy", "lastUsed"]);
        let one = prop_oneof![
            (field.clone(), -3i64..5).prop_map(|(f, n)| AccountOps::default().incr(f, n)),
            (field.clone(), 0i64..9).prop_map(|(f, n)| AccountOps::default().set(f, n)),
            field.prop_map(|f| AccountOps { unset: vec![f.to_string()], ..Default::default() }),
            (0i64..6).prop_map(|t| AccountOps { unhealthy_at: Some(t), ..Default::default() }),
            Just(runtime::health(true, None, "t")),
        ];
        one
    }

    proptest! {
        /// Coalescing is exact: merged ops equal applying each op in turn (threshold aside,
        /// which is evaluated on the end state and so may only fire where the sequence would).
        #[test]
        fn merge_equals_sequential_application(ops in prop::collection::vec(arb_ops(), 1..8)) {
            let start = acc(json!({"uuid":"u","usageCount":2,"errorCount":1,"isHealthy":true}));
            let mut seq = start.clone();
            for o in &ops { o.apply(&mut seq); }
            let mut merged = AccountOps::default();
            for o in ops.iter().cloned() { merged.merge(o); }
            let mut co = start.clone();
            merged.apply(&mut co);
            for f in ["usageCount", "errorCount", "lastUsed"] {
                prop_assert_eq!(seq.get(f), co.get(f), "field {}", f);
            }
        }
    }
}
