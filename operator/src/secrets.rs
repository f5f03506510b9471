//! Reading referenced Secrets. Values stay in memory only: `Debug` shows names and keys, never
//! data, and errors name the Secret and key, never the content.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Api;

/// The data of one Secret or ConfigMap.
pub type Data = BTreeMap<String, Vec<u8>>;

/// Why a referenced value is unusable. Names only, never content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("Secret {name:?} not found in the namespace; create it or fix the reference")]
    NotFound { name: String },
    #[error("Secret {name:?} has no key {key:?}; add the key or set the reference's key")]
    MissingKey { name: String, key: String },
    #[error("Secret {name:?} key {key:?} is empty")]
    Empty { name: String, key: String },
    #[error("Secret {name:?} key {key:?} is not UTF-8 text")]
    NotUtf8 { name: String, key: String },
    #[error("Secret {name:?} key {key:?} is not a JSON object (an OAuth token must be the provider's token JSON)")]
    NotJsonObject { name: String, key: String },
}

impl SecretError {
    /// Condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "SecretNotFound",
            Self::MissingKey { .. } => "SecretKeyMissing",
            Self::Empty { .. } | Self::NotUtf8 { .. } | Self::NotJsonObject { .. } => "SecretInvalid",
        }
    }
}

/// Secrets by name; `None` for a Secret that does not exist.
#[derive(Clone, Default, PartialEq)]
pub struct SecretSet(BTreeMap<String, Option<Data>>);

impl std::fmt::Debug for SecretSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown: BTreeMap<&String, Option<Vec<&String>>> =
            self.0.iter().map(|(n, d)| (n, d.as_ref().map(|d| d.keys().collect()))).collect();
        f.debug_tuple("SecretSet").field(&shown).finish()
    }
}

impl SecretSet {
    pub fn insert(&mut self, name: impl Into<String>, data: Option<Data>) {
        self.0.insert(name.into(), data);
    }

    /// Builds a set from `(name, [(key, value)])` (tests and fixtures).
    pub fn from_pairs<'a>(items: impl IntoIterator<Item = (&'a str, Vec<(&'a str, &'a str)>)>) -> Self {
        let mut s = Self::default();
        for (name, kv) in items {
            s.insert(name, Some(kv.into_iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect()));
        }
        s
    }

    /// Raw bytes of `name[key]`.
    pub fn bytes(&self, name: &str, key: &str) -> Result<&[u8], SecretError> {
        let data =
            self.0.get(name).and_then(Option::as_ref).ok_or_else(|| SecretError::NotFound { name: name.into() })?;
        let v = data.get(key).ok_or_else(|| SecretError::MissingKey { name: name.into(), key: key.into() })?;
        if v.is_empty() {
            return Err(SecretError::Empty { name: name.into(), key: key.into() });
        }
        Ok(v)
    }

    /// `name[key]` as trimmed text.
    pub fn text(&self, name: &str, key: &str) -> Result<String, SecretError> {
        let raw = self.bytes(name, key)?;
        let s = std::str::from_utf8(raw).map_err(|_| SecretError::NotUtf8 { name: name.into(), key: key.into() })?;
        let t = s.trim();
        if t.is_empty() {
            return Err(SecretError::Empty { name: name.into(), key: key.into() });
        }
        Ok(t.to_string())
    }

    /// `name[key]` parsed as a JSON object.
    pub fn json_object(&self, name: &str, key: &str) -> Result<serde_json::Value, SecretError> {
        let raw = self.bytes(name, key)?;
        match serde_json::from_slice::<serde_json::Value>(raw) {
            Ok(v @ serde_json::Value::Object(_)) => Ok(v),
            _ => Err(SecretError::NotJsonObject { name: name.into(), key: key.into() }),
        }
    }
}

/// Fetches the named Secrets (missing ones are recorded as `None`).
pub async fn fetch(api: &Api<Secret>, names: &BTreeSet<String>) -> Result<SecretSet, kube::Error> {
    let mut set = SecretSet::default();
    for name in names {
        let data = api.get_opt(name).await?.map(secret_data);
        set.insert(name.clone(), data);
    }
    Ok(set)
}

/// A Secret's `data` (with `stringData` folded in, for objects not yet round-tripped).
pub fn secret_data(s: Secret) -> Data {
    let mut out: Data = s.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
    for (k, v) in s.string_data.unwrap_or_default() {
        out.insert(k, v.into_bytes());
    }
    out
}

/// A ConfigMap's `data` and `binaryData`.
pub fn config_map_data(c: ConfigMap) -> Data {
    let mut out: Data = c.binary_data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect();
    for (k, v) in c.data.unwrap_or_default() {
        out.insert(k, v.into_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_secret_and_key_never_the_value() {
        let s = SecretSet::from_pairs([("creds", vec![("apiKey", "sk-very-secret"), ("blank", "  ")])]);
        assert_eq!(s.text("creds", "apiKey").as_deref(), Ok("sk-very-secret"));
        let e = s.text("creds", "nope").expect_err("missing key");
        assert_eq!(e.reason(), "SecretKeyMissing");
        assert!(e.to_string().contains("\"nope\""));
        assert_eq!(s.text("creds", "blank").expect_err("blank").reason(), "SecretInvalid");
        assert_eq!(s.text("other", "k").expect_err("absent").reason(), "SecretNotFound");
        let e = s.json_object("creds", "apiKey").expect_err("not json");
        assert!(!e.to_string().contains("sk-very"));
        assert!(!format!("{s:?}").contains("sk-very"), "Debug must not show values");
    }
}
