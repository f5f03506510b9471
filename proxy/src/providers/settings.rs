//! Where a provider setting comes from: the account, then the gateway config, then the
//! environment (the reference's "global config ∪ node", plus env so tests and operators can
//! point a whole fleet at other endpoints).

use poolgate_store::Account;
use serde_json::Value;

/// A view over the config used to look settings up.
#[derive(Clone, Copy)]
pub struct Settings<'a> {
    config: &'a Value,
}

impl<'a> Settings<'a> {
    pub fn new(config: &'a Value) -> Self {
        Self { config }
    }

    /// The non-empty value of `name` for `account`.
    pub fn get(&self, account: &Account, name: &str) -> Option<String> {
        let non_empty = |v: &Value| match v {
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        account
            .get(name)
            .and_then(non_empty)
            .or_else(|| self.config.get(name).and_then(non_empty))
            .or_else(|| std::env::var(name).ok().filter(|s| !s.trim().is_empty()))
    }

    /// [`Settings::get`] with a default.
    pub fn get_or(&self, account: &Account, name: &str, default: &str) -> String {
        self.get(account, name).unwrap_or_else(|| default.to_string())
    }

    /// A global (not per-account) setting.
    pub fn global(&self, name: &str) -> Option<String> {
        self.get(&Account::new(""), name)
    }
}
