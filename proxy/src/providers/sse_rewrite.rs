//! Rewriting an upstream's SSE stream event by event (Code Assist envelopes, Codex).

use bytes::{Bytes, BytesMut};

use crate::convert::sse::{frame, SseParser};

/// An event mapper given the event name and data.
pub type EventMap = fn(Option<&str>, &str) -> Option<String>;

/// Re-frames every `data:` event through `map` (which may drop it).
pub struct SseRewrite<F> {
    parser: SseParser,
    map: F,
}

impl<F: FnMut(Option<&str>, &str) -> Option<String> + Send> SseRewrite<F> {
    pub fn new(map: F) -> Self {
        Self { parser: SseParser::new(), map }
    }

    pub fn push(&mut self, chunk: &[u8]) -> Bytes {
        let events = self.parser.push(chunk);
        self.emit(events)
    }

    pub fn finish(&mut self) -> Bytes {
        let events = self.parser.finish();
        self.emit(events)
    }

    fn emit(&mut self, events: Vec<crate::convert::sse::SseEvent>) -> Bytes {
        let mut out = BytesMut::new();
        for ev in events {
            if let Some(data) = (self.map)(ev.event.as_deref(), &ev.data) {
                out.extend_from_slice(&frame(ev.event.as_deref(), &data));
            }
        }
        out.freeze()
    }
}
