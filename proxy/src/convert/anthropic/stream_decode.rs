//! Anthropic Messages SSE events → IR stream events.

use std::collections::HashMap;

use serde_json::Value;

use super::{finish_from_str, usage_from_json};
use crate::convert::ir::StreamEvent;
use crate::convert::json::{obj, text, to_text, Obj};
use crate::convert::sse::SseEvent;
use crate::convert::stream::{event_type, parse_object, start_from, upstream_error, StreamDecoder};

#[derive(Clone, Copy)]
enum Block {
    Text,
    Thinking,
    Tool(usize),
    Other,
}

#[derive(Default)]
pub(crate) struct Decoder {
    /// Anthropic content-block index → what it holds.
    blocks: HashMap<u64, Block>,
    tools: usize,
    ended: bool,
}

impl StreamDecoder for Decoder {
    fn decode(&mut self, ev: &SseEvent, out: &mut Vec<StreamEvent>) {
        let Some(o) = &parse_object(ev) else { return };
        let kind = event_type(o, ev);
        match kind {
            "message_start" => {
                let m = obj(o, "message");
                out.push(start_from(m));
                if let Some(u) = m.and_then(|m| obj(m, "usage")) {
                    out.push(StreamEvent::Usage(usage_from_json(u)));
                }
            }
            "content_block_start" => self.block_start(o, out),
            "content_block_delta" => self.block_delta(o, out),
            "content_block_stop" => {
                let index = o.get("index").and_then(Value::as_u64).unwrap_or(0);
                if let Some(Block::Tool(i)) = self.blocks.remove(&index) {
                    out.push(StreamEvent::ToolCallEnd { index: i });
                }
            }
            "message_delta" => {
                if let Some(u) = obj(o, "usage") {
                    out.push(StreamEvent::Usage(usage_from_json(u)));
                }
                let delta = obj(o, "delta");
                if let Some(reason) = delta.and_then(|d| text(d, "stop_reason")) {
                    let seq = delta.and_then(|d| text(d, "stop_sequence"));
                    out.push(StreamEvent::Finish(finish_from_str(reason, seq)));
                }
            }
            "message_stop" => self.end(out),
            "error" => out.extend(upstream_error(o)),
            _ => {} // ping and future event types
        }
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        self.close_tools(out);
    }
}

impl Decoder {
    fn block_start(&mut self, o: &Obj, out: &mut Vec<StreamEvent>) {
        let index = o.get("index").and_then(Value::as_u64).unwrap_or(0);
        let Some(b) = obj(o, "content_block") else { return };
        let block = match text(b, "type") {
            Some("text") => {
                if let Some(t) = text(b, "text").filter(|t| !t.is_empty()) {
                    out.push(StreamEvent::TextDelta(t.to_string()));
                }
                Block::Text
            }
            Some("thinking") => {
                if let Some(t) = text(b, "thinking").filter(|t| !t.is_empty()) {
                    out.push(StreamEvent::ThinkingDelta(t.to_string()));
                }
                Block::Thinking
            }
            Some("tool_use") => {
                let i = self.tools;
                self.tools += 1;
                out.push(StreamEvent::ToolCallStart {
                    index: i,
                    id: text(b, "id").unwrap_or_default().to_string(),
                    name: text(b, "name").unwrap_or_default().to_string(),
                });
                // Normally `{}` with the arguments following as deltas; some relays send it whole.
                if let Some(input) = obj(b, "input").filter(|m| !m.is_empty()) {
                    out.push(StreamEvent::ToolCallArgs { index: i, delta: to_text(&Value::Object(input.clone())) });
                }
                Block::Tool(i)
            }
            _ => Block::Other,
        };
        self.blocks.insert(index, block);
    }

    fn block_delta(&mut self, o: &Obj, out: &mut Vec<StreamEvent>) {
        let index = o.get("index").and_then(Value::as_u64).unwrap_or(0);
        let Some(d) = obj(o, "delta") else { return };
        let block = self.blocks.get(&index).copied().unwrap_or(Block::Other);
        match (text(d, "type"), block) {
            (Some("text_delta"), _) => {
                out.extend(text(d, "text").map(|t| StreamEvent::TextDelta(t.to_string())));
            }
            (Some("thinking_delta"), _) => {
                out.extend(text(d, "thinking").map(|t| StreamEvent::ThinkingDelta(t.to_string())));
            }
            (Some("signature_delta"), _) => {
                out.extend(text(d, "signature").map(|s| StreamEvent::ThinkingSignature(s.to_string())))
            }
            (Some("input_json_delta"), Block::Tool(i)) => {
                if let Some(p) = text(d, "partial_json").filter(|p| !p.is_empty()) {
                    out.push(StreamEvent::ToolCallArgs { index: i, delta: p.to_string() });
                }
            }
            _ => {}
        }
    }

    fn close_tools(&mut self, out: &mut Vec<StreamEvent>) {
        let mut open: Vec<usize> = self
            .blocks
            .drain()
            .filter_map(|(_, b)| match b {
                Block::Tool(i) => Some(i),
                _ => None,
            })
            .collect();
        open.sort_unstable();
        out.extend(open.into_iter().map(|index| StreamEvent::ToolCallEnd { index }));
    }

    fn end(&mut self, out: &mut Vec<StreamEvent>) {
        if !self.ended {
            self.ended = true;
            self.close_tools(out);
            out.push(StreamEvent::End);
        }
    }
}
