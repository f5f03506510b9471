//! The storage API: one trait, two backends (Redis and files).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::account::{runtime, Account, AccountOps, ErrorEvent};
use crate::admin::{Change, LoginFailure, LoginGate, LoginPolicy, ReplicaBeat};
use crate::client_key::{Admission, ClientKey, ClientKeyUsage, Settlement, Ticket};
use crate::coord::{SlotGrant, SlotRequest};
use crate::error::Result;
use crate::model::{AccountSpec, Applied, ApplyReport, CasOutcome, Session, StorageKind, StorageStatus};
use crate::time::iso_now;

/// Everything poolgate reads or changes in shared state goes through this trait.
#[async_trait]
pub trait Storage: Send + Sync {
    fn kind(&self) -> StorageKind;

    // -- config, password ------------------------------------------------------------------
    /// The config.json object; `None` when none is stored.
    async fn get_config(&self) -> Result<Option<Value>>;
    async fn set_config(&self, config: &Value) -> Result<Applied>;
    async fn get_password(&self) -> Result<Option<String>>;
    async fn set_password(&self, password: &str) -> Result<Applied>;

    // -- provider pools --------------------------------------------------------------------
    /// Provider types that have a pool, sorted.
    async fn list_pool_types(&self) -> Result<Vec<String>>;
    /// The accounts of one pool (empty when the pool does not exist).
    /// The pool's accounts, shared with the cache (cloning the list copies no account).
    async fn get_pool(&self, pool: &str) -> Result<Vec<Arc<Account>>>;
    /// One account; `NotFound` when absent.
    async fn get_account(&self, pool: &str, uuid: &str) -> Result<Account>;
    /// Adds an account (runtime defaults filled in); `AlreadyExists` when its uuid is taken.
    async fn add_account(&self, pool: &str, account: Account) -> Result<Applied<Account>>;
    /// Replaces a whole pool (migration/import). Not for the request path: it would clobber
    /// concurrent runtime updates, which is why runtime changes use [`Storage::update_account`].
    async fn replace_pool(&self, pool: &str, accounts: Vec<Account>) -> Result<()>;
    /// Atomically applies `ops` to one account and returns the result; `NotFound` when absent.
    async fn update_account(&self, pool: &str, uuid: &str, ops: AccountOps) -> Result<Applied<Account>>;
    /// Deletes an account with its token and Kiro refresh index; `NotFound` when absent.
    async fn delete_account(&self, pool: &str, uuid: &str) -> Result<Applied>;
    /// Applies the spec-owned fields of `specs` (creating missing accounts) without touching runtime
    /// fields; with `prune`, deletes accounts of the pool that are not in `specs` (with their tokens).
    async fn apply_spec(&self, pool: &str, specs: &[AccountSpec], prune: bool) -> Result<ApplyReport>;
    /// Deletes every account of the pool (with tokens and indexes) and the pool type itself;
    /// returns the uuids removed.
    async fn delete_pool(&self, pool: &str) -> Result<Vec<String>>;

    // -- tokens ----------------------------------------------------------------------------
    async fn get_token(&self, pool: &str, uuid: &str) -> Result<Option<Value>>;
    /// The token as stored right now, past any cache: what a refresh decision must read.
    async fn load_token(&self, pool: &str, uuid: &str) -> Result<Option<Value>> {
        self.get_token(pool, uuid).await
    }
    /// Tokens other processes changed, as `(pool, uuid)`; `None` when the backend has no
    /// other processes to hear from (files).
    fn watch_tokens(&self) -> Option<tokio::sync::broadcast::Receiver<(String, String)>> {
        None
    }
    /// Stores a token unconditionally (import, seeding). Never with a TTL.
    async fn set_token(&self, pool: &str, uuid: &str, token: &Value) -> Result<Applied>;
    /// Stores `token` only if the stored token's provider-native refresh field still equals
    /// `expected_refresh`. `NotFound` when no token is stored (a deleted account stays deleted).
    async fn cas_token(&self, pool: &str, uuid: &str, expected_refresh: &str, token: &Value) -> Result<CasOutcome>;
    async fn delete_token(&self, pool: &str, uuid: &str) -> Result<Applied>;
    /// The account whose Kiro token has this refresh token (dedup on import).
    async fn find_kiro_account_by_refresh_token(&self, refresh_token: &str) -> Result<Option<String>>;
    /// Takes the refresh lock for `owner` unless another live owner holds it.
    async fn acquire_refresh_lock(&self, pool: &str, uuid: &str, owner: &str, ttl: Duration) -> Result<bool>;
    /// Extends the lock if `owner` still holds it.
    async fn renew_refresh_lock(&self, pool: &str, uuid: &str, owner: &str, ttl: Duration) -> Result<bool>;
    /// Releases the lock only if `owner` holds it (compare-and-delete).
    async fn release_refresh_lock(&self, pool: &str, uuid: &str, owner: &str) -> Result<bool>;

    // -- web sessions ----------------------------------------------------------------------
    /// Stores a session under SHA-256 of `token`, expiring at `session.expiry_time`.
    async fn put_session(&self, token: &str, session: &Session) -> Result<Applied>;
    /// The live session for `token`; `None` when missing or expired.
    async fn get_session(&self, token: &str) -> Result<Option<Session>>;
    async fn delete_session(&self, token: &str) -> Result<Applied>;

    // -- admin: login guard, replicas, change feed -----------------------------------------
    /// Checks (and records) a login attempt of `client` (its IP) against the guard.
    async fn login_attempt(&self, client: &str, policy: &LoginPolicy) -> Result<LoginGate>;
    /// Counts a wrong password of `client`.
    async fn login_failed(&self, client: &str, policy: &LoginPolicy) -> Result<LoginFailure>;
    /// Forgets `client`'s failures after a good password.
    async fn login_succeeded(&self, client: &str) -> Result<()>;
    /// Records that a replica is alive; it is listed until `ttl` passes without a beat.
    async fn heartbeat(&self, beat: &ReplicaBeat, ttl: Duration) -> Result<()>;
    /// Live replicas, oldest first.
    async fn list_replicas(&self) -> Result<Vec<ReplicaBeat>>;
    /// Every change made to the store by any process (this one included), as it is heard of.
    fn watch_changes(&self) -> tokio::sync::broadcast::Receiver<Change>;

    // -- client keys (stored as SHA-256 of the key; see client_key.rs) -----------------------
    async fn put_client_key(&self, hash: &str, key: &ClientKey) -> Result<()>;
    /// Settings and counters of one key.
    async fn get_client_key(&self, hash: &str) -> Result<Option<(ClientKey, ClientKeyUsage)>>;
    /// Every key as `(hash, settings, counters)`, oldest first.
    async fn list_client_keys(&self) -> Result<Vec<(String, ClientKey, ClientKeyUsage)>>;
    /// Removes a key and its counters; false when there was none.
    async fn delete_client_key(&self, hash: &str) -> Result<bool>;
    /// Sets the key's count of today back to zero (totals and statistics stay), as the
    /// reference's "reset".
    async fn reset_client_key_usage(&self, hash: &str) -> Result<()>;
    /// Moves a key's settings and counters to a new hash (a regenerated key text); false when
    /// there was no key under `old`.
    async fn rekey_client_key(&self, old: &str, new: &str) -> Result<bool>;
    /// Every key's per-model statistics of `day` (days since the epoch in each key's time zone).
    async fn client_key_stats(&self, day: i64) -> Result<Vec<crate::client_key::ModelUsage>>;
    /// Checks every limit of the key and counts the request, atomically (the store's clock).
    async fn admit_client_key(&self, hash: &str, model: &str, provider: &str) -> Result<Admission>;
    /// Gives back an admitted request that got no upstream answer.
    async fn refund_client_key(&self, ticket: &Ticket) -> Result<()>;
    /// Adds `n` requests of `day` that a replica admitted while the store was unreachable.
    async fn replay_client_key_usage(&self, hash: &str, day: i64, n: i64) -> Result<()>;
    /// Adds an answered request's tokens and errors to the key's counters and statistics.
    /// Group-committed: on Redis it is queued and sent with others within a few milliseconds
    /// ([`Storage::flush`] waits for it).
    async fn settle_client_key(&self, ticket: &Ticket, settlement: &Settlement) -> Result<()>;

    // -- usage cache, plugins, metadata ----------------------------------------------------
    async fn get_usage_cache(&self) -> Result<Option<Value>>;
    async fn set_usage_cache(&self, cache: &Value) -> Result<Applied>;
    async fn get_plugins(&self) -> Result<Option<Value>>;
    async fn set_plugins(&self, plugins: &Value) -> Result<Applied>;
    /// The system prompt injected into requests (`input_system_prompt.txt` on files).
    async fn get_system_prompt(&self) -> Result<Option<String>>;
    async fn set_system_prompt(&self, prompt: &str) -> Result<Applied>;
    /// The custom models (`custom_models.json`: an array of `{id, alias, provider, actualModel, …}`).
    async fn get_custom_models(&self) -> Result<Option<Value>>;
    async fn set_custom_models(&self, models: &Value) -> Result<Applied>;
    async fn get_metadata(&self) -> Result<BTreeMap<String, String>>;
    async fn set_metadata(&self, fields: &BTreeMap<String, String>) -> Result<Applied>;

    // -- cross-replica coordination (poolgate additions; see `coord`) ------------------------
    /// Takes (or renews, or waits in line for) a concurrency slot of one account, shared by
    /// every replica. One server round trip.
    async fn acquire_slot(&self, pool: &str, uuid: &str, req: &SlotRequest) -> Result<SlotGrant>;
    /// Frees the holder's slot or queue place (idempotent).
    async fn release_slot(&self, pool: &str, uuid: &str, holder: &str) -> Result<()>;
    /// `(held, queued)` concurrency slots of each account, fleet-wide (admin status; expired
    /// leases may count until the next acquire sweeps them).
    async fn slot_loads(&self, pool: &str, uuids: &[String]) -> Result<Vec<(u32, u32)>>;
    /// Takes the lease `name` for `ttl` unless it is live (held by anyone, including `owner`).
    async fn try_lease(&self, name: &str, owner: &str, ttl: Duration) -> Result<bool>;

    // -- lifecycle -------------------------------------------------------------------------
    fn status(&self) -> StorageStatus;
    /// Sends every pending write (graceful shutdown); returns once they are durable or queued.
    async fn flush(&self) -> Result<()>;

    // -- provided: the reference's runtime updates, each one atomic update -------------------
    async fn get_pools(&self) -> Result<BTreeMap<String, Vec<Account>>> {
        let mut out = BTreeMap::new();
        for t in self.list_pool_types().await? {
            let pool = self.get_pool(&t).await?;
            out.insert(t, pool.iter().map(|a| Account::clone(a)).collect());
        }
        Ok(out)
    }

    /// Shallow-merges `patch` into the account. Runtime fields are refused: they belong to
    /// the proxies, and only the runtime updates below may change them.
    async fn patch_account(&self, pool: &str, uuid: &str, patch: Map<String, Value>) -> Result<Applied<Account>> {
        if let Some(f) = patch.keys().find(|k| crate::account::is_runtime_field(k) || *k == "uuid") {
            return Err(crate::StoreError::Invalid(format!("field {f:?} is runtime-owned and cannot be patched")));
        }
        self.update_account(pool, uuid, AccountOps::patch(patch)).await
    }
    async fn record_usage(&self, pool: &str, uuid: &str, n: i64) -> Result<Applied<Account>> {
        self.update_account(pool, uuid, runtime::usage(n, &iso_now())).await
    }
    async fn record_error(&self, pool: &str, uuid: &str, ev: &ErrorEvent) -> Result<Applied<Account>> {
        self.update_account(pool, uuid, runtime::error(ev, &iso_now())).await
    }
    async fn set_health(&self, pool: &str, uuid: &str, healthy: bool, model: Option<&str>) -> Result<Applied<Account>> {
        self.update_account(pool, uuid, runtime::health(healthy, model, &iso_now())).await
    }
    async fn mark_needs_refresh(&self, pool: &str, uuid: &str) -> Result<Applied<Account>> {
        self.update_account(pool, uuid, runtime::needs_refresh()).await
    }
    async fn set_disabled(&self, pool: &str, uuid: &str, disabled: bool) -> Result<Applied<Account>> {
        self.update_account(pool, uuid, runtime::disabled(disabled)).await
    }
    async fn reset_counters(&self, pool: &str, uuid: &str) -> Result<Applied<Account>> {
        self.update_account(pool, uuid, runtime::reset_counters()).await
    }
}

/// Validates specs and turns each into the ops that apply it (shared by both backends).
pub(crate) fn spec_ops(specs: &[AccountSpec]) -> Result<Vec<(String, AccountOps)>> {
    let mut seen = std::collections::HashSet::new();
    specs
        .iter()
        .map(|s| {
            if s.uuid.is_empty() || !seen.insert(s.uuid.as_str()) {
                return Err(crate::StoreError::Invalid(format!("spec uuid {:?} is empty or repeated", s.uuid)));
            }
            let bad =
                s.fields.keys().chain(s.remove.iter()).find(|k| crate::account::is_runtime_field(k) || *k == "uuid");
            if let Some(f) = bad {
                return Err(crate::StoreError::Invalid(format!("spec field {f:?} is runtime-owned")));
            }
            let ops = AccountOps {
                unset: s.remove.clone(),
                set: s.fields.clone().into_iter().collect(),
                ..AccountOps::default()
            };
            Ok((s.uuid.clone(), ops))
        })
        .collect()
}
