//! Kiro (AWS CodeWhisperer `generateAssistantResponse`) codec: pure conversion, no HTTP and
//! no tokens. The provider builds the body with [`request::build`], sends it, and feeds the
//! `application/vnd.amazon.eventstream` answer to a [`KiroStream`] (streaming clients) or
//! [`unary`] (whole body), both producing Anthropic Messages output.
//!
//! - [`eventstream`]: CRC-checked, bounded, split-safe frame decoder (and an encoder for tests);
//! - [`request`]: IR request → `conversationState`, model ids, reversible tool-name shortening;
//! - [`events`]: frames → IR stream events, token accounting, upstream exceptions as errors.
//!
//! ```
//! use poolgate_proxy::providers::kiro::{eventstream::encode_frame, events::TranslatorOptions, KiroStream};
//!
//! let frame = encode_frame(
//!     &[(":event-type", "assistantResponseEvent"), (":message-type", "event")],
//!     br#"{"content":"Hi"}"#,
//! );
//! let mut s = KiroStream::new("claude-sonnet-4-5", TranslatorOptions::default());
//! let mut sse = s.push(&frame[..50]).unwrap();
//! sse.extend(s.push(&frame[50..]).unwrap());
//! sse.extend(s.finish().unwrap());
//! let text: String = sse.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect();
//! assert!(text.contains(r#""text":"Hi""#) && text.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
//! ```

pub mod events;
pub mod eventstream;
pub mod provider;
pub mod request;

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::Value;

use crate::convert::ir::{Part, Response, StreamEvent, ToolCall};
use crate::convert::protocol::Protocol;
use crate::convert::stream::{encoder, EncodeCtx, StreamEncoder};
use events::{Translator, TranslatorOptions};
use eventstream::{Decoder, FrameError};
use request::BuildError;

/// Longest upstream message kept in an error (upstream text, never credentials).
const MAX_ERROR_MESSAGE: usize = 1000;

/// A Kiro call failed after the HTTP status: bad framing, an upstream exception inside the
/// stream, or a request that cannot be expressed. The text never contains credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KiroError {
    /// The event stream is corrupt or truncated (502).
    #[error("Kiro event stream is malformed: {0}")]
    Frame(#[from] FrameError),
    /// An exception or error frame. `status`: ThrottlingException 429, ValidationException
    /// 400, anything else 502 (the upstream failed after answering 200).
    #[error("Kiro upstream {kind}: {message}")]
    Upstream { kind: String, message: String, status: u16 },
    /// The request cannot be sent (400).
    #[error("request cannot be sent to Kiro: {0}")]
    Build(#[from] BuildError),
}

impl KiroError {
    /// An upstream exception of `kind` (the AWS error code), its status derived from the kind.
    pub fn upstream(kind: &str, message: &str) -> Self {
        let status = match kind {
            "ThrottlingException" => 429,
            "ValidationException" => 400,
            _ => 502,
        };
        let mut message = message.to_string();
        message.truncate(message.floor_char_boundary(MAX_ERROR_MESSAGE));
        Self::Upstream { kind: kind.to_string(), message, status }
    }

    /// The HTTP status to report to the client and the account classifier.
    pub fn status(&self) -> u16 {
        match self {
            Self::Frame(_) => 502,
            Self::Upstream { status, .. } => *status,
            Self::Build(_) => 400,
        }
    }

    /// The upstream exception type, for upstream errors.
    pub fn kind(&self) -> Option<&str> {
        match self {
            Self::Upstream { kind, .. } => Some(kind),
            _ => None,
        }
    }
}

/// Upstream event-stream bytes in, Anthropic Messages SSE frames out.
///
/// After `push` or `finish` returns an error, end the client stream with [`KiroStream::fail`]:
/// it returns the frames converted before the error, then an Anthropic `error` event, so a
/// failed stream never looks like a normal `end_turn`.
pub struct KiroStream {
    decoder: Decoder,
    translator: Translator,
    encoder: Box<dyn StreamEncoder>,
    failed: Option<KiroError>,
    /// Frames converted in the call that failed, owed before the error event.
    unsent: Vec<Bytes>,
}

impl KiroStream {
    /// `model` is the client's model name, echoed in the output.
    pub fn new(model: &str, opts: TranslatorOptions) -> Self {
        Self::with_decoder(Decoder::new(), model, opts)
    }

    /// With a decoder of another frame-size limit.
    pub fn with_decoder(decoder: Decoder, model: &str, opts: TranslatorOptions) -> Self {
        let ctx = EncodeCtx { model: model.to_string(), created: 0 };
        Self {
            decoder,
            translator: Translator::new(opts),
            encoder: encoder(Protocol::Anthropic, ctx),
            failed: None,
            unsent: Vec::new(),
        }
    }

    /// Feeds raw upstream bytes (any chunking); returns the SSE frames they complete.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Bytes>, KiroError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let mut ir = Vec::new();
        let result = match self.decoder.push(chunk) {
            Ok(frames) => frames.iter().try_for_each(|f| self.translator.frame(f, &mut ir)),
            Err(e) => Err(e.into()),
        };
        let out = self.encode(ir);
        self.settle(result, out)
    }

    /// The upstream body ended: the closing frames, or an error if it ended inside a frame.
    pub fn finish(&mut self) -> Result<Vec<Bytes>, KiroError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let mut ir = Vec::new();
        let result = self.decoder.finish().map_err(KiroError::from).and_then(|()| self.translator.finish(&mut ir));
        let mut out = self.encode(ir);
        if result.is_ok() {
            self.encoder.finish(&mut out);
        }
        self.settle(result, out)
    }

    /// Ends the client stream with an error (after a failed `push`/`finish`, or when the
    /// connection broke): owed frames, then an Anthropic `error` event. Later calls return
    /// nothing.
    pub fn fail(&mut self, status: u16, message: &str) -> Vec<Bytes> {
        let mut out = std::mem::take(&mut self.unsent);
        self.encoder.encode(StreamEvent::Error { status, message: message.to_string() }, &mut out);
        self.failed.get_or_insert_with(|| KiroError::upstream("StreamFailed", message));
        out
    }

    fn encode(&mut self, ir: Vec<StreamEvent>) -> Vec<Bytes> {
        let mut out = Vec::new();
        for ev in ir {
            self.encoder.encode(ev, &mut out);
        }
        self.encoder.flush(&mut out);
        out
    }

    fn settle(&mut self, result: Result<(), KiroError>, out: Vec<Bytes>) -> Result<Vec<Bytes>, KiroError> {
        match result {
            Ok(()) => Ok(out),
            Err(e) => {
                self.unsent = out;
                self.failed = Some(e.clone());
                Err(e)
            }
        }
    }
}

/// Decodes a whole event-stream body into an Anthropic Messages response: text, thinking
/// (when enabled) and tool_use blocks in output order, `stop_reason` and usage. Unlike the
/// reference, text is kept next to tool calls, and exceptions are errors.
pub fn unary(body: &[u8], model: &str, opts: TranslatorOptions) -> Result<Value, KiroError> {
    let mut decoder = Decoder::new();
    let frames = decoder.push(body)?;
    decoder.finish()?;
    let mut translator = Translator::new(opts);
    let mut ir = Vec::new();
    for f in &frames {
        translator.frame(f, &mut ir)?;
    }
    translator.finish(&mut ir)?;
    let resp = collect(ir, model);
    Ok(crate::convert::encode_response(Protocol::Anthropic, &resp, 0))
}

/// Folds stream events into a unary response.
fn collect(events: Vec<StreamEvent>, model: &str) -> Response {
    let mut resp = Response { model: model.to_string(), ..Response::default() };
    let mut tools: HashMap<usize, usize> = HashMap::new();
    for ev in events {
        match ev {
            StreamEvent::TextDelta(t) => match resp.parts.last_mut() {
                Some(Part::Text(s)) => s.push_str(&t),
                _ => resp.parts.push(Part::Text(t)),
            },
            StreamEvent::ThinkingDelta(t) => match resp.parts.last_mut() {
                Some(Part::Thinking { text, .. }) => text.push_str(&t),
                _ => resp.parts.push(Part::Thinking { text: t, signature: None }),
            },
            StreamEvent::ToolCallStart { index, id, name } => {
                tools.insert(index, resp.parts.len());
                resp.parts.push(Part::ToolCall(ToolCall { id, name, arguments: String::new() }));
            }
            StreamEvent::ToolCallArgs { index, delta } => {
                if let Some(Part::ToolCall(tc)) = tools.get(&index).and_then(|&i| resp.parts.get_mut(i)) {
                    tc.arguments.push_str(&delta);
                }
            }
            StreamEvent::Usage(u) => resp.usage.merge(&u),
            StreamEvent::Finish(f) => resp.finish = Some(f),
            _ => {}
        }
    }
    resp
}

#[cfg(test)]
mod tests;
