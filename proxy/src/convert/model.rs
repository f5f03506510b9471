//! Model-name helpers for Gemini's model-in-the-URL convention.

/// `models/gemini-2.5-pro` → `gemini-2.5-pro`; other names unchanged.
pub fn strip_models_prefix(model: &str) -> &str {
    model.strip_prefix("models/").unwrap_or(model)
}

/// `gemini-2.5-pro` → `models/gemini-2.5-pro` (idempotent).
pub fn gemini_model_path(model: &str) -> String {
    format!("models/{}", strip_models_prefix(model))
}

/// The request path below the API version for a Gemini call, e.g.
/// `models/gemini-2.5-pro:streamGenerateContent?alt=sse`. Streams are always requested as SSE,
/// the only streaming format the converters read.
pub fn gemini_method_path(model: &str, stream: bool) -> String {
    let path = gemini_model_path(model);
    if stream {
        format!("{path}:streamGenerateContent?alt=sse")
    } else {
        format!("{path}:generateContent")
    }
}

/// Parses a client path such as `/v1beta/models/gemini-2.5-pro:streamGenerateContent` into
/// `(model, stream)`; `None` for other paths or methods.
pub fn parse_gemini_path(path: &str) -> Option<(String, bool)> {
    let path = path.split('?').next().unwrap_or_default();
    let (_, rest) = path.split_once("models/")?;
    let (model, method) = rest.rsplit_once(':')?;
    if model.is_empty() || model.contains('/') {
        return None;
    }
    match method {
        "generateContent" => Some((model.to_string(), false)),
        "streamGenerateContent" => Some((model.to_string(), true)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_paths() {
        assert_eq!(gemini_model_path("gemini-2.5-pro"), "models/gemini-2.5-pro");
        assert_eq!(gemini_model_path("models/gemini-2.5-pro"), "models/gemini-2.5-pro");
        assert_eq!(
            gemini_method_path("gemini-2.5-flash", true),
            "models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        );
        assert_eq!(gemini_method_path("x", false), "models/x:generateContent");
    }

    #[test]
    fn parses_client_paths() {
        assert_eq!(
            parse_gemini_path("/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"),
            Some(("gemini-2.5-pro".into(), true))
        );
        assert_eq!(
            parse_gemini_path("/v1beta/models/gemini-2.5-pro:generateContent"),
            Some(("gemini-2.5-pro".into(), false))
        );
        assert_eq!(parse_gemini_path("/v1beta/models/x:countTokens"), None);
        assert_eq!(parse_gemini_path("/v1/chat/completions"), None);
    }
}
