//! Incremental stream conversion: upstream SSE bytes in, client SSE frames out.
//!
//! Pipeline per pushed chunk: [`SseParser`] → protocol decoder (upstream events → IR
//! [`StreamEvent`]s) → protocol encoder (IR → client frames). Nothing waits for later input:
//! every complete upstream event is converted and returned by the same `push` call. The only
//! state kept is what a protocol itself needs (open blocks, item ids, running text for the
//! Responses `*.done` events, tool arguments for Gemini, which sends calls whole).
//!
//! Cancellation: the converter owns no task or connection. The HTTP layer drops the upstream
//! body when the client goes away; dropping a converter mid-stream is always fine.

use bytes::Bytes;
use serde_json::Value;

use super::client_error::{error_body, status_from_kind};
use super::ids;
use super::ir::{FinishReason, StreamEvent};
use super::json::{obj, text, Obj};
use super::protocol::Protocol;
use super::sse::{frame, SseEvent, SseParser};
use super::stream_watch::{self, Signal};
use super::{anthropic, gemini, openai_chat, responses};

/// Turns one upstream SSE event into IR events.
pub(crate) trait StreamDecoder: Send {
    fn decode(&mut self, ev: &SseEvent, out: &mut Vec<StreamEvent>);
    /// The upstream closed; emit whatever closing events are implied.
    fn finish(&mut self, out: &mut Vec<StreamEvent>);
}

/// Turns IR events into client SSE frames.
pub(crate) trait StreamEncoder: Send {
    fn encode(&mut self, ev: StreamEvent, out: &mut Vec<Bytes>);
    /// Emit the client protocol's terminators still owed; idempotent.
    fn finish(&mut self, out: &mut Vec<Bytes>);
    /// Called after each batch of events from one `push`: emit anything held back only to
    /// gather details arriving in the same upstream chunk.
    fn flush(&mut self, _out: &mut Vec<Bytes>) {}
}

/// What encoders need to know beyond the events.
#[derive(Debug, Clone)]
pub(crate) struct EncodeCtx {
    /// Model name shown to the client; the upstream's when empty.
    pub(crate) model: String,
    pub(crate) created: i64,
}

impl EncodeCtx {
    pub(crate) fn adopt_model(&mut self, upstream: Option<&str>) {
        if self.model.is_empty() {
            if let Some(m) = upstream {
                self.model = m.to_string();
            }
        }
    }

    /// Takes what an upstream `Start` announces: its model (see [`Self::adopt_model`]) and, unless
    /// `id` is set already, its non-empty response id.
    pub(crate) fn adopt_start(&mut self, id: &mut Option<String>, start_id: Option<String>, model: Option<&str>) {
        self.adopt_model(model);
        if id.is_none() {
            *id = start_id.filter(|i| !i.is_empty());
        }
    }
}

/// Converts one streamed response from `backend`'s SSE format into `client`'s.
///
/// Only well-formed upstream events pass (data that is not JSON is dropped). Once the upstream
/// has finished the answer, the frames that follow are held back until [`Self::finish`], so the
/// caller can commit the usage before the client receives the answer's last byte.
pub struct StreamConverter {
    parser: SseParser,
    mode: Mode,
    backend: Protocol,
    client: Protocol,
    model: String,
    finished: bool,
    upstream_error: Option<String>,
    held: Vec<Bytes>,
    /// Highest (input, output) token counts the upstream reported so far.
    tokens: (i64, i64),
    /// Whether usage events are parsed for [`Self::tokens`] (only when someone is charged).
    count_tokens: bool,
    /// The answer's text, kept only for the prompt log.
    transcript: Option<Transcript>,
}

/// Most answer text kept for the prompt log.
const TRANSCRIPT_LIMIT: usize = 1 << 20;

/// Decodes the upstream's events a second time, for their text only.
struct Transcript {
    decoder: Box<dyn StreamDecoder>,
    text: String,
}

impl Transcript {
    fn note(&mut self, ev: &SseEvent) {
        let mut ir = Vec::new();
        self.decoder.decode(ev, &mut ir);
        for e in ir {
            if let StreamEvent::TextDelta(t) = e {
                if self.text.len() + t.len() <= TRANSCRIPT_LIMIT {
                    self.text.push_str(&t);
                }
            }
        }
    }
}

enum Mode {
    /// Same protocol: events are re-framed one by one as they come; only missing terminators
    /// are added.
    Relay(Relay),
    Convert(Box<Pipeline>),
}

struct Pipeline {
    decoder: Box<dyn StreamDecoder>,
    encoder: Box<dyn StreamEncoder>,
    saw_tool_call: bool,
}

struct Relay {
    protocol: Protocol,
    terminated: bool,
    closed: bool,
}

impl StreamConverter {
    /// `model` is the name the client asked for (shown in converted chunks); pass `""` to use
    /// the upstream's.
    pub fn new(backend: Protocol, client: Protocol, model: &str) -> Self {
        Self::build(backend, client, model, ids::now())
    }

    /// Makes [`Self::tokens`] follow the upstream's usage events. Off by default: parsing
    /// them costs a JSON decode per chunk for backends that report usage in every chunk.
    pub fn counting_tokens(mut self) -> Self {
        self.count_tokens = true;
        self
    }

    /// Keeps the answer's text for [`Self::answer_text`] (the prompt log); off by default.
    pub fn collecting_text(mut self) -> Self {
        self.transcript = Some(Transcript { decoder: decoder(self.backend), text: String::new() });
        self
    }

    /// The answer's text so far, when collected.
    pub fn answer_text(&self) -> Option<&str> {
        self.transcript.as_ref().map(|t| t.text.as_str())
    }

    /// Fixes the `created` timestamp of converted chunks (replays, golden tests). Call before
    /// the first `push`.
    pub fn with_created(self, created: i64) -> Self {
        let collecting = self.transcript.is_some();
        let mut rebuilt = Self::build(self.backend, self.client, &self.model, created);
        rebuilt.count_tokens = self.count_tokens;
        if collecting {
            rebuilt = rebuilt.collecting_text();
        }
        rebuilt
    }

    fn build(backend: Protocol, client: Protocol, model: &str, created: i64) -> Self {
        let mode = if backend == client {
            Mode::Relay(Relay { protocol: client, terminated: false, closed: false })
        } else {
            let ctx = EncodeCtx { model: model.to_string(), created };
            Mode::Convert(Box::new(Pipeline {
                decoder: decoder(backend),
                encoder: encoder(client, ctx),
                saw_tool_call: false,
            }))
        };
        Self {
            parser: SseParser::new(),
            mode,
            backend,
            client,
            model: model.to_string(),
            finished: false,
            upstream_error: None,
            held: Vec::new(),
            tokens: (0, 0),
            count_tokens: false,
            transcript: None,
        }
    }

    /// `(input, output)` tokens the upstream reported so far (its usage events are cumulative).
    pub fn tokens(&self) -> (i64, i64) {
        self.tokens
    }

    /// The upstream has sent its answer's finish (a finish reason or its protocol's last event).
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// The error the upstream reported inside the stream, if it did.
    pub fn upstream_error(&self) -> Option<&str> {
        self.upstream_error.as_deref()
    }

    /// Keeps the events worth relaying and notes what they say about the answer's end. Nothing
    /// after an upstream error is taken.
    fn screen(&mut self, events: Vec<SseEvent>) -> Vec<SseEvent> {
        let mut kept = Vec::with_capacity(events.len());
        for ev in events {
            if self.upstream_error.is_some() {
                break;
            }
            match stream_watch::inspect(self.backend, &ev) {
                Signal::Invalid => {
                    tracing::warn!(len = ev.data.len(), "dropping a malformed upstream SSE event");
                    continue;
                }
                Signal::Finished => self.finished = true,
                Signal::Error(m) => self.upstream_error = Some(m),
                Signal::Content => {}
            }
            if self.count_tokens && ev.data.contains("sage") {
                self.note_usage(&ev);
            }
            if let Some(t) = &mut self.transcript {
                t.note(&ev);
            }
            kept.push(ev);
        }
        kept
    }

    fn note_usage(&mut self, ev: &SseEvent) {
        if let Ok(v) = serde_json::from_str::<Value>(&ev.data) {
            let (i, o) = stream_watch::usage_tokens(self.backend, &v);
            self.tokens.0 = self.tokens.0.max(i.unwrap_or(0));
            self.tokens.1 = self.tokens.1.max(o.unwrap_or(0));
        }
    }

    /// Frames for the client now, or held until [`Self::finish`] once the answer is finished.
    fn release(&mut self, out: Vec<Bytes>) -> Vec<Bytes> {
        if self.finished && self.upstream_error.is_none() {
            self.held.extend(out);
            Vec::new()
        } else {
            out
        }
    }

    /// Feeds upstream bytes; returns the client frames they complete, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Bytes> {
        let events = self.parser.push(bytes);
        let events = self.screen(events);
        let out = match &mut self.mode {
            Mode::Relay(r) => r.relay(&events, self.upstream_error.is_some()),
            Mode::Convert(p) => p.run(&events),
        };
        self.release(out)
    }

    /// The upstream ended normally: flushes a trailing event and adds missing terminators
    /// (`data: [DONE]` for OpenAI Chat, `message_stop` for Anthropic, `response.completed` for
    /// Responses when converting).
    pub fn finish(&mut self) -> Vec<Bytes> {
        let events = self.parser.finish();
        let events = self.screen(events);
        let failed = self.upstream_error.is_some();
        let mut out = std::mem::take(&mut self.held);
        match &mut self.mode {
            Mode::Relay(r) => {
                out.extend(r.relay(&events, failed));
                if !failed {
                    r.terminate(&mut out);
                }
            }
            Mode::Convert(p) => {
                out.extend(p.run(&events));
                if !failed {
                    let mut ir = Vec::new();
                    p.decoder.finish(&mut ir);
                    p.encode_all(ir, &mut out);
                    p.encoder.finish(&mut out);
                }
            }
        }
        out
    }

    /// The upstream failed midway (connection reset, timeout, cut short): the stream ends with an
    /// error event in the client protocol and nothing after it, so no client mistakes the
    /// answer for a complete one. Frames held back are dropped with the answer.
    pub fn fail(&mut self, status: u16, message: &str) -> Vec<Bytes> {
        self.held.clear();
        match &mut self.mode {
            Mode::Relay(r) => {
                let mut out = Vec::new();
                if !r.closed {
                    out.push(stream_error_event(r.protocol, status, message));
                    r.closed = true;
                }
                out
            }
            Mode::Convert(p) => {
                let mut out = Vec::new();
                let ev = StreamEvent::Error { status, message: message.to_string() };
                p.encoder.encode(ev, &mut out);
                out
            }
        }
    }
}

impl Pipeline {
    fn run(&mut self, events: &[SseEvent]) -> Vec<Bytes> {
        let mut ir = Vec::new();
        for ev in events {
            self.decoder.decode(ev, &mut ir);
        }
        let mut out = Vec::new();
        self.encode_all(ir, &mut out);
        self.encoder.flush(&mut out);
        out
    }

    fn encode_all(&mut self, ir: Vec<StreamEvent>, out: &mut Vec<Bytes>) {
        for ev in ir {
            let ev = match ev {
                StreamEvent::ToolCallStart { .. } => {
                    self.saw_tool_call = true;
                    ev
                }
                // Gemini and some OpenAI-compatible servers finish tool turns with a plain stop.
                StreamEvent::Finish(FinishReason::Stop) if self.saw_tool_call => {
                    StreamEvent::Finish(FinishReason::ToolCalls)
                }
                other => other,
            };
            self.encoder.encode(ev, out);
        }
    }
}

impl Relay {
    /// Re-frames `events` for the client; after an upstream error nothing more is sent.
    fn relay(&mut self, events: &[SseEvent], failed: bool) -> Vec<Bytes> {
        if self.closed {
            return Vec::new();
        }
        self.observe(events);
        let out = events
            .iter()
            .map(|ev| {
                if self.protocol == Protocol::Gemini {
                    reframe_gemini(ev)
                } else {
                    frame(ev.event.as_deref(), &ev.data)
                }
            })
            .collect();
        self.closed |= failed;
        out
    }

    fn observe(&mut self, events: &[SseEvent]) {
        for ev in events {
            let done = match self.protocol {
                Protocol::OpenAiChat => ev.data.trim() == "[DONE]",
                Protocol::Anthropic => {
                    ev.event.as_deref() == Some("message_stop") || ev.data.contains("\"message_stop\"")
                }
                Protocol::OpenAiResponses | Protocol::Gemini => false,
            };
            self.terminated |= done;
        }
    }

    fn terminate(&mut self, out: &mut Vec<Bytes>) {
        if self.terminated || self.closed {
            return;
        }
        self.closed = true;
        match self.protocol {
            Protocol::OpenAiChat => out.push(Bytes::from_static(b"data: [DONE]\n\n")),
            Protocol::Anthropic => out.push(frame(Some("message_stop"), r#"{"type":"message_stop"}"#)),
            Protocol::OpenAiResponses | Protocol::Gemini => {}
        }
    }
}

/// Gemini events are re-framed one by one rather than relayed as raw bytes, so that the Code
/// Assist `{"response": …}` envelope of Gemini CLI / Antigravity backends can be removed.
fn reframe_gemini(ev: &SseEvent) -> Bytes {
    if ev.data.contains("\"response\"") {
        if let Ok(v) = serde_json::from_str::<Value>(&ev.data) {
            return frame(None, &super::code_assist::unwrap_response(&v).to_string());
        }
    }
    frame(None, &ev.data)
}

/// A stand-alone error event in `client`'s stream format, for failures outside a converter.
pub fn stream_error_event(client: Protocol, status: u16, message: &str) -> Bytes {
    let (status, body) = error_body(client, status, message);
    match client {
        Protocol::OpenAiChat | Protocol::Gemini => frame(None, &body.to_string()),
        Protocol::Anthropic => frame(Some("error"), &body.to_string()),
        Protocol::OpenAiResponses => {
            let data = serde_json::json!({
                "type": "error",
                "code": body["error"]["type"],
                "message": message,
                "param": null,
                "status": status,
            });
            frame(Some("error"), &data.to_string())
        }
    }
}

fn decoder(backend: Protocol) -> Box<dyn StreamDecoder> {
    match backend {
        Protocol::OpenAiChat => Box::<openai_chat::stream_decode::Decoder>::default(),
        Protocol::OpenAiResponses => Box::<responses::stream_decode::Decoder>::default(),
        Protocol::Anthropic => Box::<anthropic::stream_decode::Decoder>::default(),
        Protocol::Gemini => Box::<gemini::stream_decode::Decoder>::default(),
    }
}

pub(crate) fn encoder(client: Protocol, ctx: EncodeCtx) -> Box<dyn StreamEncoder> {
    match client {
        Protocol::OpenAiChat => Box::new(openai_chat::stream_encode::Encoder::new(ctx)),
        Protocol::OpenAiResponses => Box::new(responses::stream_encode::Encoder::new(ctx)),
        Protocol::Anthropic => Box::new(anthropic::stream_encode::Encoder::new(ctx)),
        Protocol::Gemini => Box::new(gemini::stream_encode::Encoder::new(ctx)),
    }
}

/// Parses an event's JSON data; malformed events are logged and skipped, never fatal.
pub(crate) fn parse_data(ev: &SseEvent) -> Option<Value> {
    match serde_json::from_str(&ev.data) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(error = %e, len = ev.data.len(), "skipping SSE event with invalid JSON");
            None
        }
    }
}

/// Parses an event's JSON data as an object; invalid JSON is logged (see [`parse_data`]), other
/// values are skipped.
pub(crate) fn parse_object(ev: &SseEvent) -> Option<Obj> {
    match parse_data(ev)? {
        Value::Object(o) => Some(o),
        _ => None,
    }
}

/// The event's type: the data's `type` field, else the SSE `event:` name.
pub(crate) fn event_type<'a>(o: &'a Obj, ev: &'a SseEvent) -> &'a str {
    text(o, "type").or(ev.event.as_deref()).unwrap_or_default()
}

/// A `Start` event from the `id` and `model` fields of the object announcing the response.
pub(crate) fn start_from(o: Option<&Obj>) -> StreamEvent {
    StreamEvent::Start {
        id: o.and_then(|o| text(o, "id")).map(str::to_string),
        model: o.and_then(|o| text(o, "model")).map(str::to_string),
    }
}

/// An error object embedded in a stream event of any protocol.
pub(crate) fn upstream_error(o: &Obj) -> Option<StreamEvent> {
    if let Some(e) = obj(o, "error") {
        let status = e
            .get("code")
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok())
            .unwrap_or_else(|| status_from_kind(text(e, "type").or_else(|| text(e, "status")).unwrap_or_default()));
        let message = text(e, "message").unwrap_or("upstream error").to_string();
        return Some(StreamEvent::Error { status, message });
    }
    if text(o, "type") == Some("error") {
        let status = status_from_kind(text(o, "code").unwrap_or_default());
        let message = text(o, "message").unwrap_or("upstream error").to_string();
        return Some(StreamEvent::Error { status, message });
    }
    None
}
