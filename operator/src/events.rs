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
    let ev = Event {
        type_: if warning { EventType::Warning } else { EventType::Normal },
        reason: reason.into(),
        note: Some(truncate(note.into(), 1000)),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&ev, &obj.object_ref(&())).await {
        tracing::warn!(reason, "could not publish event: {e}");
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
