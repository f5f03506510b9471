//! Types shared by both resources: references and conditions.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A key of a Secret in the resource's own namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret (same namespace as the resource).
    pub name: String,
    /// Key inside the Secret's data.
    pub key: String,
}

/// An object in the resource's own namespace, by name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalObjectRef {
    pub name: String,
}

/// Places one key of a ConfigMap/Secret at a relative path (like a volume's `items`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyToPath {
    /// Key in the source's data.
    pub key: String,
    /// Relative path under the reference's `configs/` directory, e.g. `kiro/a/token.json`.
    pub path: String,
}

/// Status of a condition: `True`, `False` or `Unknown`.
pub type ConditionStatus = String;

/// A status condition (the shape of `metav1.Condition`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready`, `RedisReachable`, `Initialized`, `Migrated` or `Synced`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// A PascalCase reason a program can match on.
    pub reason: String,
    /// What happened and, when it failed, what to do about it. Never holds a secret.
    #[serde(default)]
    pub message: String,
    /// When the status last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// The `metadata.generation` the condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl Condition {
    /// A condition without a transition time (the operator stamps it when the status changes).
    pub fn new(type_: &str, status: bool, reason: &str, message: impl Into<String>) -> Self {
        Self {
            type_: type_.into(),
            status: if status { "True" } else { "False" }.into(),
            reason: reason.into(),
            message: message.into(),
            last_transition_time: None,
            observed_generation: None,
        }
    }

    /// A condition whose status is `Unknown` (work in progress).
    pub fn unknown(type_: &str, reason: &str, message: impl Into<String>) -> Self {
        Self { status: "Unknown".into(), ..Self::new(type_, false, reason, message) }
    }

    pub fn is_true(&self) -> bool {
        self.status == "True"
    }
}

/// Finds a condition by type.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}
