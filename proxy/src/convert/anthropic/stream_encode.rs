//! IR stream events → Anthropic Messages SSE (`message_start` … `message_stop`).

use bytes::Bytes;
use serde_json::{json, Value};

use super::{finish_to_json, tool_id, usage_to_json};
use crate::convert::client_error;
use crate::convert::ids;
use crate::convert::ir::{FinishReason, StreamEvent, Usage};
use crate::convert::protocol::Protocol;
use crate::convert::sse::frame;
use crate::convert::stream::{EncodeCtx, StreamEncoder};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Thinking,
    Tool(usize),
}

pub(crate) struct Encoder {
    ctx: EncodeCtx,
    id: Option<String>,
    /// The upstream announced the message; `message_start` goes out at the end of that batch.
    announced: bool,
    started: bool,
    /// The open content block and its index.
    open: Option<(Open, u64)>,
    next_block: u64,
    usage: Usage,
    finish: Option<FinishReason>,
    done: bool,
}

impl Encoder {
    pub(crate) fn new(ctx: EncodeCtx) -> Self {
        Self {
            ctx,
            id: None,
            announced: false,
            started: false,
            open: None,
            next_block: 0,
            usage: Usage::default(),
            finish: None,
            done: false,
        }
    }

    fn emit(out: &mut Vec<Bytes>, data: Value) {
        let kind = data.get("type").and_then(Value::as_str).unwrap_or("message").to_string();
        out.push(frame(Some(&kind), &data.to_string()));
    }

    /// `message_start` waits until the end of the upstream chunk that started the message (or
    /// the first content), so that input usage reported alongside the start is included.
    fn ensure_started(&mut self, out: &mut Vec<Bytes>) {
        if self.started {
            return;
        }
        self.started = true;
        let id = self.id.get_or_insert_with(|| ids::fresh("msg_")).clone();
        let mut usage = usage_to_json(&self.usage);
        usage["output_tokens"] = 0.into();
        Self::emit(
            out,
            json!({"type": "message_start", "message": {
                "id": id, "type": "message", "role": "assistant", "model": self.ctx.model,
                "content": [], "stop_reason": null, "stop_sequence": null, "usage": usage,
            }}),
        );
    }

    fn close_block(&mut self, out: &mut Vec<Bytes>) {
        if let Some((_, index)) = self.open.take() {
            Self::emit(out, json!({"type": "content_block_stop", "index": index}));
        }
    }

    /// Makes `kind` the open block, closing another one; returns its index.
    fn open_block(&mut self, kind: Open, block: Value, out: &mut Vec<Bytes>) -> u64 {
        if let Some((k, index)) = self.open {
            if k == kind {
                return index;
            }
        }
        self.close_block(out);
        let index = self.next_block;
        self.next_block += 1;
        self.open = Some((kind, index));
        Self::emit(out, json!({"type": "content_block_start", "index": index, "content_block": block}));
        index
    }

    fn delta(out: &mut Vec<Bytes>, index: u64, delta: Value) {
        Self::emit(out, json!({"type": "content_block_delta", "index": index, "delta": delta}));
    }

    fn encode_content(&mut self, ev: StreamEvent, out: &mut Vec<Bytes>) {
        match ev {
            StreamEvent::TextDelta(t) => {
                let i = self.open_block(Open::Text, json!({"type": "text", "text": ""}), out);
                Self::delta(out, i, json!({"type": "text_delta", "text": t}));
            }
            StreamEvent::ThinkingDelta(t) => {
                let block = json!({"type": "thinking", "thinking": "", "signature": ""});
                let i = self.open_block(Open::Thinking, block, out);
                Self::delta(out, i, json!({"type": "thinking_delta", "thinking": t}));
            }
            StreamEvent::ThinkingSignature(s) => {
                if let Some((Open::Thinking, i)) = self.open {
                    Self::delta(out, i, json!({"type": "signature_delta", "signature": s}));
                }
            }
            StreamEvent::ToolCallStart { index, id, name } => {
                self.close_block(out);
                let block = json!({"type": "tool_use", "id": tool_id(&id), "name": name, "input": {}});
                self.open_block(Open::Tool(index), block, out);
            }
            StreamEvent::ToolCallArgs { index, delta } => match self.open {
                Some((Open::Tool(t), i)) if t == index => {
                    Self::delta(out, i, json!({"type": "input_json_delta", "partial_json": delta}));
                }
                // Anthropic blocks cannot be reopened; interleaved arguments are lost.
                _ => tracing::warn!(index, "dropping arguments for a tool call that is not open"),
            },
            StreamEvent::ToolCallEnd { index } => {
                if matches!(self.open, Some((Open::Tool(t), _)) if t == index) {
                    self.close_block(out);
                }
            }
            _ => {}
        }
    }
}

impl StreamEncoder for Encoder {
    fn encode(&mut self, ev: StreamEvent, out: &mut Vec<Bytes>) {
        if self.done {
            return;
        }
        match ev {
            StreamEvent::Start { id, model } => {
                self.ctx.adopt_start(&mut self.id, id, model.as_deref());
                self.announced = true;
            }
            StreamEvent::Usage(u) => self.usage.merge(&u),
            StreamEvent::Finish(f) => self.finish = Some(f),
            StreamEvent::Error { status, message } => {
                let (_, body) = client_error::error_body(Protocol::Anthropic, status, &message);
                out.push(frame(Some("error"), &body.to_string()));
                // Anthropic ends a failed stream with the error event itself.
                self.done = true;
            }
            StreamEvent::End => self.finish(out),
            content => {
                self.ensure_started(out);
                self.encode_content(content, out);
            }
        }
    }

    fn flush(&mut self, out: &mut Vec<Bytes>) {
        if self.announced && !self.done {
            self.ensure_started(out);
        }
    }

    fn finish(&mut self, out: &mut Vec<Bytes>) {
        if self.done {
            return;
        }
        self.done = true;
        self.ensure_started(out);
        self.close_block(out);
        let (stop_reason, stop_sequence) = self.finish.as_ref().map_or(("end_turn", Value::Null), finish_to_json);
        Self::emit(
            out,
            json!({
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                "usage": usage_to_json(&self.usage),
            }),
        );
        Self::emit(out, json!({"type": "message_stop"}));
    }
}
