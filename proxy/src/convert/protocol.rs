//! The four wire protocols and how provider types map onto them.

use std::fmt;

/// A wire protocol spoken by a client or by an upstream provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// `POST /v1/chat/completions`.
    OpenAiChat,
    /// `POST /v1/responses`.
    OpenAiResponses,
    /// `POST /v1/messages`.
    Anthropic,
    /// `POST /v1beta/models/{model}:generateContent` / `:streamGenerateContent`.
    Gemini,
}

impl Protocol {
    pub const ALL: [Protocol; 4] =
        [Protocol::OpenAiChat, Protocol::OpenAiResponses, Protocol::Anthropic, Protocol::Gemini];

    /// Short stable name, used in fixtures, logs and error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::OpenAiChat => "openai-chat",
            Protocol::OpenAiResponses => "openai-responses",
            Protocol::Anthropic => "anthropic",
            Protocol::Gemini => "gemini",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a provider type speaks upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Converted to and from this protocol.
    Protocol(Protocol),
    /// `forward-api`: the client's body and path are relayed untouched.
    PassThrough,
}

/// Maps a provider type such as `openai-custom-2` or `gemini-cli-oauth` to its backend protocol.
///
/// A `<type>-<suffix>` pool uses its base type's protocol; the protocol is decided by the
/// prefix before the first `-` (`openaiResponses-…`, `openai-…`, `claude-…`, `gemini-…`), as in
/// the reference proxy. Unknown prefixes yield `None`.
pub fn backend_for_provider(provider_type: &str) -> Option<Backend> {
    if provider_type == "forward-api" || provider_type.starts_with("forward-api-") {
        return Some(Backend::PassThrough);
    }
    let prefix = provider_type.split('-').next().unwrap_or_default();
    let protocol = match prefix {
        "openai" | "atlascloud" => Protocol::OpenAiChat,
        "openaiResponses" => Protocol::OpenAiResponses,
        "claude" => Protocol::Anthropic,
        "gemini" => Protocol::Gemini,
        _ => return None,
    };
    Some(Backend::Protocol(protocol))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_types_map_to_protocols() {
        let cases = [
            ("openai-custom", Backend::Protocol(Protocol::OpenAiChat)),
            ("openai-custom-2", Backend::Protocol(Protocol::OpenAiChat)),
            ("atlascloud", Backend::Protocol(Protocol::OpenAiChat)),
            ("openaiResponses-custom", Backend::Protocol(Protocol::OpenAiResponses)),
            ("claude-custom", Backend::Protocol(Protocol::Anthropic)),
            ("claude-kiro-oauth", Backend::Protocol(Protocol::Anthropic)),
            ("gemini-cli-oauth", Backend::Protocol(Protocol::Gemini)),
            ("gemini-antigravity", Backend::Protocol(Protocol::Gemini)),
            ("forward-api", Backend::PassThrough),
        ];
        for (name, want) in cases {
            assert_eq!(backend_for_provider(name), Some(want), "{name}");
        }
        assert_eq!(backend_for_provider("grok-web"), None);
        assert_eq!(backend_for_provider(""), None);
    }
}
