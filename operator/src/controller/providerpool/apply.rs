//! Apply (Redis writes through the store): spec-owned fields (never runtime counters), pruning
//! of accounts that left the spec with their tokens, and token seeding by the rule in
//! [`super::build::token_action`].

use std::collections::BTreeMap;

use poolgate_store::{ApplyReport, CasOutcome, RedisStore, Storage, StoreError};

use super::build::{token_action, PoolPlan, TokenAction};

/// What the apply changed.
#[derive(Debug, Default)]
pub struct Applied {
    pub report: ApplyReport,
    /// Names of accounts whose token was written from the Secret.
    pub tokens_seeded: Vec<String>,
    /// Token hash to record per account name.
    pub seeded: BTreeMap<String, String>,
    /// Tokens that lost a compare-and-set to a proxy's refresh (retried on the next reconcile).
    pub token_conflicts: Vec<String>,
}

/// Deletes the accounts a pool owns (see [`super::build::prune`]) and, when no other account is
/// left, the pool type itself. Returns the uuids deleted and how many accounts were left.
pub async fn delete_owned(
    store: &RedisStore,
    pool_type: &str,
    delete: &[String],
    left: usize,
) -> Result<Vec<String>, StoreError> {
    let mut removed = Vec::new();
    for uuid in delete {
        match store.delete_account(pool_type, uuid).await {
            Ok(_) | Err(StoreError::NotFound { .. }) => removed.push(uuid.clone()),
            Err(e) => return Err(e),
        }
    }
    if left == 0 {
        removed.extend(store.delete_pool(pool_type).await?);
    }
    Ok(removed)
}

/// Applies the plan to the pool `pool_type`.
pub async fn apply(
    store: &RedisStore,
    pool_type: &str,
    plan: &PoolPlan,
    previous: &BTreeMap<String, String>,
    delete: &[String],
) -> Result<Applied, StoreError> {
    // Never `prune` in the store: it would delete every account of the type, including accounts
    // this pool did not create. Only the accounts [`super::build::prune`] allows are deleted.
    let mut out = Applied { report: store.apply_spec(pool_type, &plan.specs(), false).await?, ..Applied::default() };
    for uuid in delete {
        match store.delete_account(pool_type, uuid).await {
            Ok(_) | Err(StoreError::NotFound { .. }) => out.report.removed.push(uuid.clone()),
            Err(e) => return Err(e),
        }
    }
    for a in &plan.accounts {
        let Some((token, hash)) = &a.token else {
            if let Some(h) = previous.get(&a.name) {
                out.seeded.insert(a.name.clone(), h.clone());
            }
            continue;
        };
        let current = store.get_token(pool_type, &a.uuid).await?;
        let (action, why) =
            token_action(pool_type, token, hash, previous.get(&a.name).map(String::as_str), current.as_ref());
        tracing::debug!(account = %a.name, ?action, why, "token decision");
        match action {
            TokenAction::Keep => {
                out.seeded.insert(a.name.clone(), hash.clone());
            }
            TokenAction::Seed { expected_refresh: None } => {
                store.set_token(pool_type, &a.uuid, token).await?;
                out.seeded.insert(a.name.clone(), hash.clone());
                out.tokens_seeded.push(a.name.clone());
            }
            TokenAction::Seed { expected_refresh: Some(expected) } => {
                match store.cas_token(pool_type, &a.uuid, &expected, token).await {
                    Ok(CasOutcome::Updated) => {
                        out.seeded.insert(a.name.clone(), hash.clone());
                        out.tokens_seeded.push(a.name.clone());
                    }
                    Ok(CasOutcome::Conflict { .. }) | Err(StoreError::NotFound { .. }) => {
                        if let Some(h) = previous.get(&a.name) {
                            out.seeded.insert(a.name.clone(), h.clone());
                        }
                        out.token_conflicts.push(a.name.clone());
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(out)
}
