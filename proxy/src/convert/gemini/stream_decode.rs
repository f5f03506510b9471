//! Gemini SSE chunks (`data: {GenerateContentResponse}`) → IR stream events. Gemini sends each
//! function call whole, so a call becomes start + one argument delta + end.

use serde_json::Value;

use super::{decode_output_part, finish_from_str, unwrap_envelope, usage_from_json};
use crate::convert::ir::{Part, StreamEvent};
use crate::convert::json::{arr, obj, text};
use crate::convert::sse::SseEvent;
use crate::convert::stream::{parse_data, upstream_error, StreamDecoder};

#[derive(Default)]
pub(crate) struct Decoder {
    started: bool,
    calls: usize,
}

impl StreamDecoder for Decoder {
    fn decode(&mut self, ev: &SseEvent, out: &mut Vec<StreamEvent>) {
        let Some(v) = parse_data(ev) else { return };
        // A non-SSE stream is a JSON array of responses; accept one per event too.
        let items = match &v {
            Value::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        for item in items {
            if let Some(o) = item.as_object() {
                self.decode_chunk(unwrap_envelope(o), out);
            }
        }
    }

    fn finish(&mut self, _out: &mut Vec<StreamEvent>) {}
}

impl Decoder {
    fn decode_chunk(&mut self, o: &serde_json::Map<String, Value>, out: &mut Vec<StreamEvent>) {
        if let Some(err) = upstream_error(o) {
            out.push(err);
            return;
        }
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: text(o, "responseId").map(str::to_string),
                model: text(o, "modelVersion").map(str::to_string),
            });
        }
        let candidate = arr(o, "candidates").first().and_then(Value::as_object);
        let parts = candidate.and_then(|c| obj(c, "content")).map(|c| arr(c, "parts")).unwrap_or(&[]);
        for p in parts.iter().filter_map(Value::as_object) {
            match decode_output_part(p, &mut self.calls) {
                Some(Part::Text(t)) if !t.is_empty() => out.push(StreamEvent::TextDelta(t)),
                Some(Part::Thinking { text, signature }) => {
                    if !text.is_empty() {
                        out.push(StreamEvent::ThinkingDelta(text));
                    }
                    out.extend(signature.map(StreamEvent::ThinkingSignature));
                }
                Some(Part::ToolCall(tc)) => {
                    let index = self.calls.saturating_sub(1);
                    out.push(StreamEvent::ToolCallStart { index, id: tc.id, name: tc.name });
                    out.push(StreamEvent::ToolCallArgs { index, delta: tc.arguments });
                    out.push(StreamEvent::ToolCallEnd { index });
                }
                _ => {}
            }
        }
        // Gemini repeats cumulative usage on every chunk; the last one wins.
        if let Some(u) = obj(o, "usageMetadata") {
            out.push(StreamEvent::Usage(usage_from_json(u)));
        }
        if let Some(reason) = candidate.and_then(|c| text(c, "finishReason")) {
            out.push(StreamEvent::Finish(finish_from_str(reason)));
        }
    }
}
