//! Typed conversion errors: every rejection names the offending field.

/// Why a body could not be converted. Rendered to clients as a 400 in their own error shape
/// (see [`super::client_error::error_body`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    #[error("body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("invalid multipart body: {0}")]
    InvalidMultipart(String),
    #[error("`{0}` is required")]
    Missing(String),
    #[error("`{field}` must be {expected}")]
    WrongType { field: String, expected: &'static str },
    #[error("`{field}` has unsupported value {value}")]
    InvalidValue { field: String, value: String },
    #[error("`{0}` has no equivalent in the target protocol")]
    Unsupported(String),
}

impl ConvertError {
    pub(crate) fn wrong_type(field: impl Into<String>, expected: &'static str) -> Self {
        Self::WrongType { field: field.into(), expected }
    }

    pub(crate) fn invalid_value(field: impl Into<String>, value: impl std::fmt::Display) -> Self {
        Self::InvalidValue { field: field.into(), value: value.to_string() }
    }
}
