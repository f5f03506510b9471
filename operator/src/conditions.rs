//! Condition bookkeeping: transition times kept while a status holds (Stackable's
//! `compute_conditions`), and comparison that ignores timestamps (Linkerd's
//! `eq_time_insensitive_conditions`) so an unchanged status is never re-patched.

use poolgate_crds::Condition;

/// Merges freshly computed conditions with the previous ones: a condition keeps its
/// `lastTransitionTime` while its status is unchanged, gets `now` when it changes, and every
/// condition is stamped with `generation`. Output is sorted by type.
pub fn merge(old: &[Condition], new: Vec<Condition>, now: &str, generation: Option<i64>) -> Vec<Condition> {
    let mut out: Vec<Condition> = new
        .into_iter()
        .map(|mut c| {
            let prev = old.iter().find(|o| o.type_ == c.type_);
            c.last_transition_time = match prev {
                Some(p) if p.status == c.status => p.last_transition_time.clone().or_else(|| Some(now.to_string())),
                _ => Some(now.to_string()),
            };
            c.observed_generation = generation;
            c
        })
        .collect();
    out.sort_by(|a, b| a.type_.cmp(&b.type_));
    out
}

/// Equal apart from `lastTransitionTime`, in any order.
pub fn eq_time_insensitive(a: &[Condition], b: &[Condition]) -> bool {
    a.len() == b.len()
        && a.iter().all(|x| {
            b.iter().any(|y| {
                x.type_ == y.type_
                    && x.status == y.status
                    && x.reason == y.reason
                    && x.message == y.message
                    && x.observed_generation == y.observed_generation
            })
        })
}

/// Conditions whose status or reason differs from before (for events).
pub fn changed<'a>(old: &[Condition], new: &'a [Condition]) -> Vec<&'a Condition> {
    new.iter()
        .filter(|c| !old.iter().any(|o| o.type_ == c.type_ && o.status == c.status && o.reason == c.reason))
        .collect()
}

/// `Ready`: true when every condition in `required` is true; otherwise false with the reason and
/// message of the first one that is false; when none is false, unknown with the first unknown
/// one's (a condition that is false wins over one that is not yet checked).
pub fn ready(conditions: &[Condition], required: &[&str]) -> Condition {
    if let Some(c) =
        required.iter().filter_map(|t| conditions.iter().find(|c| c.type_ == *t)).find(|c| c.status == "False")
    {
        return Condition::new("Ready", false, &c.reason, c.message.clone());
    }
    for t in required {
        match conditions.iter().find(|c| c.type_ == *t) {
            Some(c) if c.is_true() => continue,
            Some(c) if c.status == "Unknown" => return Condition::unknown("Ready", &c.reason, c.message.clone()),
            Some(c) => return Condition::new("Ready", false, &c.reason, c.message.clone()),
            None => return Condition::unknown("Ready", "Pending", format!("{t} not yet known")),
        }
    }
    Condition::new("Ready", true, "Ready", "all conditions are true")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_kept_while_status_holds() {
        let old = merge(&[], vec![Condition::new("Synced", true, "Synced", "a")], "t1", Some(1));
        let same = merge(&old, vec![Condition::new("Synced", true, "Synced", "b")], "t2", Some(2));
        assert_eq!(same[0].last_transition_time.as_deref(), Some("t1"));
        let flipped = merge(&same, vec![Condition::new("Synced", false, "X", "c")], "t3", Some(2));
        assert_eq!(flipped[0].last_transition_time.as_deref(), Some("t3"));
    }

    #[test]
    fn comparison_ignores_time_and_order() {
        let a = merge(&[], vec![Condition::new("A", true, "R", ""), Condition::new("B", false, "R", "")], "t1", None);
        let mut b =
            merge(&[], vec![Condition::new("B", false, "R", ""), Condition::new("A", true, "R", "")], "t9", None);
        assert!(eq_time_insensitive(&a, &b));
        b[0].message = "other".into();
        assert!(!eq_time_insensitive(&a, &b));
        assert_eq!(changed(&a, &b).len(), 0, "message-only changes are not transitions");
    }

    #[test]
    fn ready_summarises_the_first_blocking_condition() {
        let cs = vec![
            Condition::new("RedisReachable", true, "Connected", ""),
            Condition::unknown("Initialized", "JobRunning", "init running"),
        ];
        let r = ready(&cs, &["RedisReachable", "Initialized"]);
        assert_eq!((r.status.as_str(), r.reason.as_str()), ("Unknown", "JobRunning"));
        let cs = vec![Condition::new("RedisReachable", false, "ConnectFailed", "x")];
        assert_eq!(ready(&cs, &["RedisReachable"]).status, "False");
        let cs = vec![Condition::new("RedisReachable", true, "Connected", "")];
        assert!(ready(&cs, &["RedisReachable"]).is_true());
        let cs = vec![
            Condition::unknown("RedisReachable", "NotChecked", ""),
            Condition::new("Synced", false, "InvalidRedisUrl", "x"),
        ];
        let r = ready(&cs, &["RedisReachable", "Synced"]);
        assert_eq!((r.status.as_str(), r.reason.as_str()), ("False", "InvalidRedisUrl"), "false wins over unknown");
    }
}
