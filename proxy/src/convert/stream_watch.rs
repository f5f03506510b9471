//! Reads each upstream SSE event just far enough to know whether it is well formed, whether it
//! finishes the answer and whether it reports an error. The relay uses this to drop garbage, to
//! tell a complete answer from one cut short, and to hold the closing frames until the usage is
//! committed.

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::protocol::Protocol;
use super::sse::SseEvent;

/// What one upstream event means for the answer as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Signal {
    /// Ordinary content (or metadata).
    Content,
    /// The answer is complete (a finish reason, or the protocol's last event).
    Finished,
    /// The upstream reports a failure in the stream; the message is the upstream's.
    Error(String),
    /// Not a well-formed event of the protocol (data that is not JSON).
    Invalid,
}

#[derive(Deserialize)]
struct ChatChunk {
    #[serde(default)]
    choices: Vec<ChatChoice>,
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct ChatChoice {
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct TypedEvent {
    #[serde(rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct AnthropicEvent {
    #[serde(rename = "type")]
    kind: Option<String>,
    delta: Option<AnthropicDelta>,
}

#[derive(Deserialize)]
struct AnthropicDelta {
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct GeminiChunk {
    #[serde(default)]
    candidates: Vec<GeminiCandidate>,
    response: Option<Box<GeminiChunk>>,
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct GeminiCandidate {
    #[serde(rename = "finishReason")]
    finish_reason: Option<String>,
}

/// Classifies one event of a `protocol` stream.
pub(crate) fn inspect(protocol: Protocol, ev: &SseEvent) -> Signal {
    match peek(protocol, ev) {
        // JSON of an unexpected shape is still content: only what is not JSON at all is dropped.
        Signal::Invalid if serde_json::from_str::<IgnoredAny>(ev.data.trim()).is_ok() => Signal::Content,
        s => s,
    }
}

fn peek(protocol: Protocol, ev: &SseEvent) -> Signal {
    let data = ev.data.trim();
    match protocol {
        Protocol::OpenAiChat => {
            if data == "[DONE]" {
                return Signal::Finished;
            }
            match serde_json::from_str::<ChatChunk>(data) {
                Err(_) => Signal::Invalid,
                Ok(c) if c.error.is_some() => error(data),
                Ok(c) if c.choices.iter().any(|ch| ch.finish_reason.is_some()) => Signal::Finished,
                Ok(_) => Signal::Content,
            }
        }
        Protocol::Anthropic => match serde_json::from_str::<AnthropicEvent>(data) {
            Err(_) => Signal::Invalid,
            Ok(e) => {
                let kind = e.kind.as_deref().or(ev.event.as_deref()).unwrap_or_default();
                match kind {
                    "error" => error(data),
                    "message_stop" => Signal::Finished,
                    "message_delta" if e.delta.is_some_and(|d| d.stop_reason.is_some()) => Signal::Finished,
                    _ => Signal::Content,
                }
            }
        },
        Protocol::OpenAiResponses => match serde_json::from_str::<TypedEvent>(data) {
            Err(_) => Signal::Invalid,
            Ok(e) => match e.kind.as_deref().or(ev.event.as_deref()).unwrap_or_default() {
                "error" | "response.failed" => error(data),
                "response.completed" | "response.incomplete" => Signal::Finished,
                _ => Signal::Content,
            },
        },
        Protocol::Gemini => match serde_json::from_str::<GeminiChunk>(data) {
            Err(_) => Signal::Invalid,
            Ok(c) => {
                let c = match c.response {
                    Some(inner) if c.candidates.is_empty() => *inner,
                    _ => c,
                };
                if c.error.is_some() {
                    error(data)
                } else if c.candidates.iter().any(|cand| cand.finish_reason.is_some()) {
                    Signal::Finished
                } else {
                    Signal::Content
                }
            }
        },
    }
}

fn error(data: &str) -> Signal {
    Signal::Error(super::upstream_message(data.as_bytes()).unwrap_or_else(|| "upstream stream error".into()))
}

/// `(input, output)` token counts a `protocol` body or stream event reports, where present.
pub(crate) fn usage_tokens(protocol: Protocol, v: &serde_json::Value) -> (Option<i64>, Option<i64>) {
    let n = |v: Option<&serde_json::Value>| v.and_then(serde_json::Value::as_i64);
    match protocol {
        Protocol::OpenAiChat => {
            let u = v.get("usage");
            (n(u.and_then(|u| u.get("prompt_tokens"))), n(u.and_then(|u| u.get("completion_tokens"))))
        }
        Protocol::OpenAiResponses => {
            let u = v.get("usage").or_else(|| v.pointer("/response/usage"));
            (n(u.and_then(|u| u.get("input_tokens"))), n(u.and_then(|u| u.get("output_tokens"))))
        }
        Protocol::Anthropic => {
            let u = v.get("usage").or_else(|| v.pointer("/message/usage"));
            (n(u.and_then(|u| u.get("input_tokens"))), n(u.and_then(|u| u.get("output_tokens"))))
        }
        Protocol::Gemini => {
            let u = v.get("usageMetadata").or_else(|| v.pointer("/response/usageMetadata"));
            (n(u.and_then(|u| u.get("promptTokenCount"))), n(u.and_then(|u| u.get("candidatesTokenCount"))))
        }
    }
}

/// Token counts of a whole unary answer in `protocol` (0 where it reports none).
pub fn answer_tokens(protocol: Protocol, body: &[u8]) -> (i64, i64) {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => {
            let (i, o) = usage_tokens(protocol, &v);
            (i.unwrap_or(0), o.unwrap_or(0))
        }
        Err(_) => (0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ev(event: Option<&str>, data: &str) -> SseEvent {
        SseEvent { event: event.map(str::to_string), data: data.to_string() }
    }

    #[test]
    fn chat_finishes_on_a_reason_or_done() {
        let p = Protocol::OpenAiChat;
        assert_eq!(
            inspect(p, &ev(None, r#"{"choices":[{"delta":{"content":"x"},"finish_reason":null}]}"#)),
            Signal::Content
        );
        assert_eq!(inspect(p, &ev(None, r#"{"choices":[{"delta":{},"finish_reason":"stop"}]}"#)), Signal::Finished);
        assert_eq!(inspect(p, &ev(None, "[DONE]")), Signal::Finished);
        assert_eq!(inspect(p, &ev(None, "garbage line")), Signal::Invalid);
        assert!(matches!(inspect(p, &ev(None, r#"{"error":{"message":"boom"}}"#)), Signal::Error(m) if m == "boom"));
    }

    #[test]
    fn other_protocols_know_their_last_events() {
        let a = Protocol::Anthropic;
        assert_eq!(inspect(a, &ev(Some("message_stop"), r#"{"type":"message_stop"}"#)), Signal::Finished);
        assert_eq!(
            inspect(a, &ev(None, r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"}}"#)),
            Signal::Finished
        );
        assert_eq!(inspect(a, &ev(None, r#"{"type":"content_block_delta","delta":{"text":"x"}}"#)), Signal::Content);
        assert!(matches!(
            inspect(a, &ev(Some("error"), r#"{"type":"error","error":{"message":"overloaded"}}"#)),
            Signal::Error(_)
        ));
        let r = Protocol::OpenAiResponses;
        assert_eq!(inspect(r, &ev(None, r#"{"type":"response.completed","response":{}}"#)), Signal::Finished);
        assert!(matches!(inspect(r, &ev(None, r#"{"type":"response.failed"}"#)), Signal::Error(_)));
        let g = Protocol::Gemini;
        assert_eq!(inspect(g, &ev(None, r#"{"candidates":[{"content":{}}]}"#)), Signal::Content);
        assert_eq!(inspect(g, &ev(None, r#"{"response":{"candidates":[{"finishReason":"STOP"}]}}"#)), Signal::Finished);
        assert_eq!(inspect(g, &ev(None, "<html>")), Signal::Invalid);
    }

    #[test]
    fn usage_is_read_in_each_protocol() {
        let cases = [
            (Protocol::OpenAiChat, r#"{"usage":{"prompt_tokens":3,"completion_tokens":4}}"#),
            (
                Protocol::OpenAiResponses,
                r#"{"type":"response.completed","response":{"usage":{"input_tokens":3,"output_tokens":4}}}"#,
            ),
            (Protocol::Anthropic, r#"{"type":"message","usage":{"input_tokens":3,"output_tokens":4}}"#),
            (Protocol::Gemini, r#"{"response":{"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":4}}}"#),
        ];
        for (p, body) in cases {
            assert_eq!(answer_tokens(p, body.as_bytes()), (3, 4), "{p}");
        }
        assert_eq!(answer_tokens(Protocol::OpenAiChat, b"not json"), (0, 0));
    }

    proptest! {
        /// Arbitrary event text never panics, and text that is not JSON is always dropped.
        #[test]
        fn arbitrary_events_are_classified(data in ".{0,80}", named in any::<bool>()) {
            for p in [Protocol::OpenAiChat, Protocol::OpenAiResponses, Protocol::Anthropic, Protocol::Gemini] {
                let e = ev(named.then_some("message_stop"), &data);
                let s = inspect(p, &e);
                let is_json = serde_json::from_str::<serde_json::Value>(data.trim()).is_ok();
                let done = p == Protocol::OpenAiChat && data.trim() == "[DONE]";
                if !is_json && !done {
                    prop_assert_eq!(s, Signal::Invalid);
                }
            }
        }
    }
}
