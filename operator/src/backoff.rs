//! Per-object exponential backoff for failed reconciles (kube#1916: not built into kube).

use std::collections::HashMap;
use std::time::Duration;

/// Per-object failure counts behind a std mutex (never held across an await).
#[derive(Default)]
pub struct FailureCounter(std::sync::Mutex<HashMap<String, u32>>);

impl FailureCounter {
    /// Records a failure and returns the delay before the next attempt (1 s doubling, max 5 min).
    pub fn fail(&self, uid: &str) -> Duration {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(uid.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        Duration::from_secs(1u64 << (*n - 1).min(8)).min(Duration::from_secs(300))
    }

    pub fn reset(&self, uid: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_per_failure_and_resets() {
        let f = FailureCounter::default();
        assert_eq!(f.fail("a"), Duration::from_secs(1));
        assert_eq!(f.fail("a"), Duration::from_secs(2));
        assert_eq!(f.fail("a"), Duration::from_secs(4));
        f.reset("a");
        assert_eq!(f.fail("a"), Duration::from_secs(1));
        for _ in 0..20 {
            f.fail("b");
        }
        assert_eq!(f.fail("b"), Duration::from_secs(256));
    }
}
