//! Cleanup decisions on delete (pure): what the finalizer of each resource does with the Redis
//! data. The Redis URL is validated exactly as on the apply path, so a value that is not a usable
//! URL is reported by Secret and key (never echoed), and every blocked cleanup names its way out.

use poolgate_crds::{ClientConfig, DeletionPolicy, ProviderPool};

use super::clientconfig::dereference::CcRefs;
use super::providerpool::dereference::PoolRefs;
use super::providerpool::validate::{redis_target, Invalid, RedisTarget};
use super::{annotation_true, SKIP_CLEANUP_ANNOTATION};

/// What deleting a resource does.
#[derive(Debug, Clone, PartialEq)]
pub enum Cleanup {
    /// Not yet: the ClientConfig outlives the ProviderPools that refer to it.
    WaitForPools(Vec<String>),
    /// The data stays in Redis (`deletionPolicy: Retain`, skip-cleanup, another owner); the note says why.
    Leave { reason: &'static str, note: String },
    /// The cleanup cannot run; the finalizer stays until the problem is fixed or a way out is taken.
    Blocked(Invalid),
    /// Delete the data in this Redis.
    Delete(RedisTarget),
}

fn blocked(inv: Invalid) -> Cleanup {
    Cleanup::Blocked(Invalid {
        reason: inv.reason,
        message: format!("cannot delete the Redis data: {}; {}", inv.message, super::CLEANUP_WAY_OUT),
    })
}

/// The ClientConfig's cleanup.
pub fn client_config(cc: &ClientConfig, refs: &CcRefs) -> Cleanup {
    if !refs.pools.is_empty() {
        return Cleanup::WaitForPools(refs.pools.clone());
    }
    let prefix = &cc.spec.redis.key_prefix;
    if annotation_true(&cc.metadata, SKIP_CLEANUP_ANNOTATION) {
        let note = format!("annotation {SKIP_CLEANUP_ANNOTATION}: data under prefix {prefix:?} is left in Redis");
        return Cleanup::Leave { reason: "CleanupSkipped", note };
    }
    if cc.spec.deletion_policy == DeletionPolicy::Retain {
        let note = format!("deletionPolicy Retain: data under prefix {prefix:?} is left in Redis");
        return Cleanup::Leave { reason: "Retained", note };
    }
    match redis_target(cc, &refs.secrets, "spec.redis.urlSecretRef") {
        Ok(t) => Cleanup::Delete(t),
        Err(inv) => blocked(inv),
    }
}

/// The ProviderPool's cleanup.
pub fn provider_pool(pool: &ProviderPool, refs: &PoolRefs) -> Cleanup {
    let Some(cc) = refs.client_config.as_ref() else {
        let note = "ClientConfig is gone: Redis cannot be reached, data (if any) is left in place".to_string();
        return Cleanup::Leave { reason: "CleanupSkipped", note };
    };
    if annotation_true(&pool.metadata, SKIP_CLEANUP_ANNOTATION) {
        let note = format!("annotation {SKIP_CLEANUP_ANNOTATION}: pool {} is left in Redis", pool.spec.provider_type);
        return Cleanup::Leave { reason: "CleanupSkipped", note };
    }
    if refs.older_sibling.is_some() {
        let note = "another ProviderPool owns this provider type: its accounts are left in Redis".to_string();
        return Cleanup::Leave { reason: "Retained", note };
    }
    if cc.spec.deletion_policy == DeletionPolicy::Retain {
        let note = format!("deletionPolicy Retain: pool {} is left in Redis", pool.spec.provider_type);
        return Cleanup::Leave { reason: "Retained", note };
    }
    match redis_target(cc, &refs.secrets, "ClientConfig spec.redis.urlSecretRef") {
        Ok(t) => Cleanup::Delete(t),
        Err(inv) => blocked(inv),
    }
}

/// The message of a cleanup that failed on Redis itself (unreachable, refused): the error text
/// with the URL and its password scrubbed, and the way out.
pub fn redis_failed(target: &RedisTarget, error: &str) -> Invalid {
    Invalid {
        reason: "RedisUnreachable",
        message: format!(
            "cannot delete the Redis data at {} (prefix {:?}): {}; {}",
            poolgate_store::settings::redact_url(&target.url),
            target.prefix,
            crate::redact::scrub(error, &target.url),
            super::CLEANUP_WAY_OUT
        ),
    }
}
