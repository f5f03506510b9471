//! API errors, rendered as `metav1.Status` bodies with the real server's codes and reasons.

use serde_json::{json, Value};

/// One `details.causes` entry of a `Status` (a field-level validation failure or SSA conflict).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// Machine-readable reason, e.g. `FieldValueRequired`, `FieldManagerConflict`.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// The field path, e.g. `spec.replicas`.
    pub field: String,
}

/// An error answered to a client. Every variant maps to an HTTP code and a `Status.reason`.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 BadRequest.
    #[error("{0}")]
    BadRequest(String),
    /// 403 Forbidden.
    #[error("{0}")]
    Forbidden(String),
    /// 404 NotFound for a named object (`kind` is the plural resource, as the real server says).
    #[error("{resource} \"{name}\" not found")]
    NotFound {
        /// Resource (plural) or `group/resource`.
        resource: String,
        /// Object name.
        name: String,
    },
    /// 404 for a path that names no known resource.
    #[error("the server could not find the requested resource")]
    NoSuchResource,
    /// 405 MethodNotAllowed.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 409 AlreadyExists.
    #[error("{resource} \"{name}\" already exists")]
    AlreadyExists {
        /// Resource (plural, with group).
        resource: String,
        /// Object name.
        name: String,
    },
    /// 409 Conflict (stale resourceVersion, failed precondition, SSA conflict).
    #[error("{message}")]
    Conflict {
        /// Message.
        message: String,
        /// SSA conflict causes, if any.
        causes: Vec<Cause>,
    },
    /// 410 Gone / Expired.
    #[error("{0}")]
    Gone(String),
    /// 415 UnsupportedMediaType.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 422 Invalid.
    #[error("{kind}.{group} \"{name}\" is invalid: {}", summary(causes))]
    Invalid {
        /// Kind of the object.
        kind: String,
        /// API group (empty for core).
        group: String,
        /// Object name.
        name: String,
        /// Field errors.
        causes: Vec<Cause>,
    },
    /// 500 InternalError.
    #[error("internal error: {0}")]
    Internal(String),
}

fn summary(causes: &[Cause]) -> String {
    let parts: Vec<String> = causes
        .iter()
        .map(|c| if c.field.is_empty() { c.message.clone() } else { format!("{}: {}", c.field, c.message) })
        .collect();
    match parts.len() {
        1 => parts[0].clone(),
        _ => format!("[{}]", parts.join(", ")),
    }
}

impl ApiError {
    /// A 422 with a single cause.
    pub fn invalid(kind: &str, group: &str, name: &str, field: &str, reason: &str, message: &str) -> Self {
        ApiError::Invalid {
            kind: kind.to_string(),
            group: group.to_string(),
            name: name.to_string(),
            causes: vec![Cause { reason: reason.to_string(), message: message.to_string(), field: field.to_string() }],
        }
    }

    /// A plain 409 Conflict.
    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError::Conflict { message: message.into(), causes: Vec::new() }
    }

    /// The HTTP status code.
    pub fn code(&self) -> u16 {
        match self {
            ApiError::BadRequest(_) => 400,
            ApiError::Forbidden(_) => 403,
            ApiError::NotFound { .. } | ApiError::NoSuchResource => 404,
            ApiError::MethodNotAllowed(_) => 405,
            ApiError::AlreadyExists { .. } | ApiError::Conflict { .. } => 409,
            ApiError::Gone(_) => 410,
            ApiError::UnsupportedMediaType(_) => 415,
            ApiError::Invalid { .. } => 422,
            ApiError::Internal(_) => 500,
        }
    }

    /// The `Status.reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Forbidden(_) => "Forbidden",
            ApiError::NotFound { .. } | ApiError::NoSuchResource => "NotFound",
            ApiError::MethodNotAllowed(_) => "MethodNotAllowed",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict { .. } => "Conflict",
            ApiError::Gone(_) => "Expired",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::Internal(_) => "InternalError",
        }
    }

    /// The `metav1.Status` body.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code(),
        });
        if let Some(details) = self.details() {
            status["details"] = details;
        }
        status
    }

    fn details(&self) -> Option<Value> {
        let causes_json = |causes: &[Cause]| -> Value {
            causes.iter().map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field})).collect()
        };
        match self {
            ApiError::NotFound { resource, name } | ApiError::AlreadyExists { resource, name } => {
                let (kind, group) = split_resource(resource);
                Some(json!({"name": name, "group": group, "kind": kind}))
            }
            ApiError::Conflict { causes, .. } if !causes.is_empty() => Some(json!({"causes": causes_json(causes)})),
            ApiError::Invalid { kind, group, name, causes } => {
                Some(json!({"name": name, "group": group, "kind": kind, "causes": causes_json(causes)}))
            }
            _ => None,
        }
    }
}

/// `jobs.batch` -> (`jobs`, `batch`).
fn split_resource(resource: &str) -> (&str, &str) {
    match resource.split_once('.') {
        Some((r, g)) => (r, g),
        None => (resource, ""),
    }
}

/// Result alias for request handling.
pub type ApiResult<T> = Result<T, ApiError>;
