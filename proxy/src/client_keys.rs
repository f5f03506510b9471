//! Client keys on the request path: who is calling, admission (one atomic store call), refunds
//! for requests that got no upstream answer, token settlement after the answer, the
//! `x-ratelimit-*` headers, and what happens while the store is unreachable.
//!
//! The main `REQUIRED_API_KEY` is checked first and costs nothing; any other key is looked up by
//! its SHA-256 in the store.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue};
use parking_lot::Mutex;
use poolgate_store::client_key::{Limit, RateInfo};
use poolgate_store::{Admission, ClientKey, Settlement, Storage, Ticket};

use crate::server::auth::{key_matches, presented_key};
use crate::server::errors::ApiError;

/// Longest key text looked up (anything longer is refused without a store call).
const MAX_KEY_LEN: usize = 512;
/// How long a key admitted before may still be admitted from local counts while the store is down.
const OFFLINE_TRUST: Duration = Duration::from_secs(24 * 3600);

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The main `REQUIRED_API_KEY`: no limits.
    Main,
    /// A client key, by its SHA-256.
    Key(String),
}

/// Identifies the caller from the presented key (no store call): the main key, or a candidate
/// client key that admission will look up.
pub fn identify(main_key: &str, headers: &HeaderMap, query: Option<&str>) -> Result<Caller, ApiError> {
    let presented = presented_key(headers, query);
    if key_matches(presented, main_key) {
        return Ok(Caller::Main);
    }
    match presented {
        Some(k) if !k.is_empty() && k.len() <= MAX_KEY_LEN => Ok(Caller::Key(ClientKey::hash(k))),
        _ => Err(ApiError::unauthorized()),
    }
}

/// An admitted client-key request.
#[derive(Debug, Clone)]
pub struct Charge {
    pub ticket: Ticket,
    pub limits: RateInfo,
    /// Counted locally while the store was unreachable (replayed later; nothing to refund).
    pub offline: bool,
    /// The key's name, for per-key metrics (only when `CLIENT_KEY_METRICS=per-key`).
    pub label: Option<Arc<str>>,
}

/// A refused request: the error and, when known, the limits for the headers.
pub struct Refusal {
    pub error: ApiError,
    pub limits: Option<RateInfo>,
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Self {
        Self { error, limits: None }
    }
}

/// What a replica remembers to admit known keys while the store is unreachable.
#[derive(Debug, Clone)]
struct Known {
    day: i64,
    /// What was left of the tightest request limit at the last admission (`None`: unlimited).
    remaining: Option<i64>,
    seen: std::time::Instant,
}

/// The client-key state of one replica.
#[derive(Default)]
pub struct ClientKeys {
    known: Mutex<HashMap<String, Known>>,
    /// Requests admitted offline, per (hash, day), to replay.
    pending: Mutex<HashMap<(String, i64), i64>>,
    /// Key names by hash, for per-key metrics, with when they were read.
    names: Mutex<HashMap<String, (Arc<str>, std::time::Instant)>>,
}

/// How long a key's name is used for metrics before it is read again (renames show up).
const NAME_TTL: Duration = Duration::from_secs(60);

impl ClientKeys {
    /// Admits `caller` for `model` on provider type `pool`; `Ok(None)` for the main key.
    /// With `per_key`, the charge carries the key's name for metrics.
    pub async fn admit(
        &self,
        store: &Arc<dyn Storage>,
        caller: &Caller,
        model: &str,
        pool: &str,
        offline_allow: bool,
        per_key: bool,
    ) -> Result<Option<Charge>, Refusal> {
        let Caller::Key(hash) = caller else { return Ok(None) };
        let mut charge = self.admit_key(store, hash, model, pool, offline_allow).await?;
        if per_key {
            charge.label = self.name(store, hash).await;
        }
        Ok(Some(charge))
    }

    /// The key's name, from a short-lived cache (one store read per key per minute).
    async fn name(&self, store: &Arc<dyn Storage>, hash: &str) -> Option<Arc<str>> {
        if let Some((n, at)) = self.names.lock().get(hash) {
            if at.elapsed() < NAME_TTL {
                return Some(n.clone());
            }
        }
        let (key, _) = store.get_client_key(hash).await.ok().flatten()?;
        let name: Arc<str> = Arc::from(key.name.as_str());
        self.names.lock().insert(hash.to_string(), (name.clone(), std::time::Instant::now()));
        Some(name)
    }

    async fn admit_key(
        &self,
        store: &Arc<dyn Storage>,
        hash: &str,
        model: &str,
        pool: &str,
        offline_allow: bool,
    ) -> Result<Charge, Refusal> {
        match store.admit_client_key(hash, model, pool).await {
            Ok(Admission::Admitted { ticket, limits }) => {
                let known = Known { day: ticket.day, remaining: limits.remaining, seen: std::time::Instant::now() };
                self.known.lock().insert(hash.to_string(), known);
                Ok(Charge { ticket, limits, offline: false, label: None })
            }
            Ok(Admission::Unknown) => Err(ApiError::unauthorized().into()),
            Ok(Admission::Disabled) => Err(ApiError::new(403, "This API key is disabled").into()),
            Ok(Admission::Expired) => Err(ApiError::new(403, "This API key has expired").into()),
            Ok(Admission::Forbidden) => {
                Err(ApiError::new(403, format!("This API key may not use model {model} on provider {pool}")).into())
            }
            Ok(Admission::Exhausted { which, retry_after, limits }) => {
                let mut error = ApiError::new(429, exhausted_message(which));
                error.retry_after = retry_after;
                Err(Refusal { error, limits: Some(limits) })
            }
            Err(e) if e.is_unavailable() => self.admit_offline(hash, offline_allow),
            Err(e) => {
                tracing::error!(error = %e, "client key admission failed");
                Err(ApiError::new(503, "Client key check is unavailable; retry shortly").into())
            }
        }
    }

    /// With the store unreachable: keys this replica admitted recently go on against a local
    /// count (replayed when the store is back); others are refused. Logged either way.
    fn admit_offline(&self, hash: &str, allow: bool) -> Result<Charge, Refusal> {
        let refused = || Refusal::from(ApiError::new(503, "Client key store is unreachable; retry shortly"));
        if !allow {
            tracing::warn!("client key refused: the store is unreachable (CLIENT_KEYS_WHEN_STORE_DOWN=deny)");
            return Err(refused());
        }
        let mut known = self.known.lock();
        let Some(k) = known.get_mut(hash).filter(|k| k.seen.elapsed() < OFFLINE_TRUST) else {
            tracing::warn!("client key refused: the store is unreachable and this replica has not seen the key");
            return Err(refused());
        };
        if k.remaining.is_some_and(|r| r <= 0) {
            let mut error = ApiError::new(429, "API key limit reached");
            error.retry_after = Some(60);
            return Err(error.into());
        }
        k.remaining = k.remaining.map(|r| r - 1);
        let day = k.day;
        *self.pending.lock().entry((hash.to_string(), day)).or_insert(0) += 1;
        tracing::warn!("client key admitted from the local count: the store is unreachable");
        let ticket = Ticket { hash: hash.to_string(), day, minute: 0, bonus: false };
        Ok(Charge { ticket, limits: RateInfo::default(), offline: true, label: None })
    }

    /// Replays requests admitted offline, once the store answers again.
    pub async fn replay(&self, store: &Arc<dyn Storage>) {
        let pending: Vec<((String, i64), i64)> = self.pending.lock().drain().collect();
        for ((hash, day), n) in pending {
            if let Err(e) = store.replay_client_key_usage(&hash, day, n).await {
                *self.pending.lock().entry((hash, day)).or_insert(0) += n;
                tracing::debug!(error = %e, "client key replay deferred");
                return;
            }
        }
    }
}

fn exhausted_message(which: Limit) -> String {
    format!("API key {} reached", which.as_str())
}

/// Gives an admitted request back (it got no upstream answer). Runs in the background.
pub fn refund(tasks: &crate::pool::outcome::Tasks, store: &Arc<dyn Storage>, charge: &Charge) {
    if charge.offline {
        return;
    }
    let (store, ticket) = (store.clone(), charge.ticket.clone());
    tasks.spawn(async move {
        if let Err(e) = store.refund_client_key(&ticket).await {
            tracing::warn!(error = %e, "could not refund a client key request");
        }
    });
}

/// Adds an answered request's tokens to its key. Runs in the background.
pub fn settle(tasks: &crate::pool::outcome::Tasks, store: &Arc<dyn Storage>, charge: &Charge, s: Settlement) {
    let (store, ticket) = (store.clone(), charge.ticket.clone());
    tasks.spawn(async move {
        if let Err(e) = store.settle_client_key(&ticket, &s).await {
            tracing::debug!(error = %e, "could not settle a client key request");
        }
    });
}

/// `(input, output)` tokens of a unary answer in the client's protocol.
pub fn answer_tokens(protocol: crate::convert::Protocol, body: &[u8]) -> (i64, i64) {
    crate::convert::answer_tokens(protocol, body)
}

/// Sets the `x-ratelimit-*` headers (OpenAI's names) for the tightest request limit.
pub fn set_headers(headers: &mut HeaderMap, limits: &RateInfo) {
    let mut put = |name: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            headers.insert(name, v);
        }
    };
    if let Some(l) = limits.limit {
        put("x-ratelimit-limit-requests", l.to_string());
    }
    if let Some(r) = limits.remaining {
        put("x-ratelimit-remaining-requests", r.to_string());
    }
    if let Some(s) = limits.reset_secs {
        put("x-ratelimit-reset-requests", format!("{s}s"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_main_key_is_told_apart_without_the_store() {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer main"));
        assert_eq!(identify("main", &h, None).ok(), Some(Caller::Main));
        h.insert("authorization", HeaderValue::from_static("Bearer maki_x"));
        assert_eq!(identify("main", &h, None).ok(), Some(Caller::Key(ClientKey::hash("maki_x"))));
        assert!(identify("main", &HeaderMap::new(), None).is_err());
    }

    #[test]
    fn offline_admission_needs_a_known_key_and_counts_it() {
        let keys = ClientKeys::default();
        assert!(keys.admit_offline("h", true).is_err(), "unknown keys are refused");
        keys.known.lock().insert("h".into(), Known { day: 3, remaining: Some(1), seen: std::time::Instant::now() });
        assert!(keys.admit_offline("h", false).is_err(), "deny refuses all");
        assert!(keys.admit_offline("h", true).is_ok());
        assert!(keys.admit_offline("h", true).is_err(), "the local count holds the limit");
        assert_eq!(keys.pending.lock().get(&("h".to_string(), 3)), Some(&1));
    }
}
