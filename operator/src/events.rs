//! Kubernetes Events through the one shared [`Recorder`]: significant actions (Normal) and
//! failures (Warning), and one event per condition transition. Notes never hold a secret.

use kube::runtime::events::{Event, EventType, Recorder};
use kube::Resource;
use poolgate_crds::Condition;

/// Publishes one event about `obj`; failures to publish are logged, never fatal.
pub async fn publish<K: Resource<DynamicType = ()>>(
    recorder: &Recorder,
    obj: &K,
    warning: bool,
    reason: &str,
    action: &str,
    note: impl Into<String>,
) {
    let ev = event(warning, reason, action, note);
    if let Err(e) = recorder.publish(&ev, &obj.object_ref(&())).await {
        tracing::warn!(reason, "could not publish event: {e}");
    }
}

/// The event to publish. The recorder aggregates events by type, reason, action and object into
/// one Event whose `series.count` grows while its note stays the first one; the action therefore
/// carries a hash of the note (`Sync-1a2b3c4d`), so a different note is a new Event a person reads,
/// and only repeats of the same note are counted in a series.
pub fn event(warning: bool, reason: &str, action: &str, note: impl Into<String>) -> Event {
    let note = truncate(note.into(), 1000);
    let tag = crate::hash::short_hash(note.as_bytes());
    Event {
        type_: if warning { EventType::Warning } else { EventType::Normal },
        reason: reason.into(),
        action: format!("{action}-{}", &tag[..8]),
        note: Some(note),
        secondary: None,
    }
}

/// One event per condition whose status or reason changed: Warning when it turned false.
pub async fn condition_transitions<K: Resource<DynamicType = ()>>(
    recorder: &Recorder,
    obj: &K,
    old: &[Condition],
    new: &[Condition],
) {
    for c in crate::conditions::changed(old, new) {
        if c.type_ == "Ready" && c.status != "True" {
            continue; // the blocking condition has its own event
        }
        let warning = c.status == "False";
        let note = format!("{} is {}: {}", c.type_, c.status, c.message);
        publish(recorder, obj, warning, &c.reason, &c.type_, note).await;
    }
}

/// At most `max` bytes, cut on a character boundary.
fn truncate(mut s: String, max: usize) -> String {
    s.truncate(s.floor_char_boundary(max));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_note_is_a_new_event_and_a_repeat_joins_its_series() {
        let a = event(true, "RedisUnreachable", "Reconcile", "connection refused");
        let again = event(true, "RedisUnreachable", "Reconcile", "connection refused");
        let b = event(true, "RedisUnreachable", "Reconcile", "timed out");
        // The recorder's grouping key is (type, reason, action, object): the action must differ.
        assert_eq!(a.action, again.action, "the same note is counted in one series");
        assert_ne!(a.action, b.action, "a different note must not hide behind the first one");
        assert_eq!(b.note.as_deref(), Some("timed out"));
        assert!(a.action.starts_with("Reconcile-") && a.action.len() <= 128);
    }
}
