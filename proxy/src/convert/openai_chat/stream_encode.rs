//! IR stream events → OpenAI Chat SSE chunks (`data: {chunk}` … `data: [DONE]`).

use bytes::Bytes;
use serde_json::{json, Value};

use super::{finish_to_str, usage_to_json};
use crate::convert::client_error;
use crate::convert::ids;
use crate::convert::ir::{StreamEvent, Usage};
use crate::convert::protocol::Protocol;
use crate::convert::sse::frame;
use crate::convert::stream::{EncodeCtx, StreamEncoder};

pub(crate) struct Encoder {
    ctx: EncodeCtx,
    id: Option<String>,
    started: bool,
    usage: Usage,
    done: bool,
}

impl Encoder {
    pub(crate) fn new(ctx: EncodeCtx) -> Self {
        Self { ctx, id: None, started: false, usage: Usage::default(), done: false }
    }

    /// The first chunk announces the assistant role.
    fn ensure_started(&mut self, out: &mut Vec<Bytes>) {
        if !self.started {
            self.started = true;
            if self.id.is_none() {
                self.id = Some(ids::fresh("chatcmpl-"));
            }
            self.emit(json!({"role": "assistant", "content": ""}), None, out);
        }
    }

    fn encode_content(&mut self, ev: StreamEvent, out: &mut Vec<Bytes>) {
        match ev {
            StreamEvent::TextDelta(t) => self.emit(json!({"content": t}), None, out),
            StreamEvent::ThinkingDelta(t) => self.emit(json!({"reasoning_content": t}), None, out),
            StreamEvent::ToolCallStart { index, id, name } => self.emit(
                json!({"tool_calls": [{
                    "index": index, "id": id, "type": "function",
                    "function": {"name": name, "arguments": ""},
                }]}),
                None,
                out,
            ),
            StreamEvent::ToolCallArgs { index, delta } => {
                self.emit(json!({"tool_calls": [{"index": index, "function": {"arguments": delta}}]}), None, out)
            }
            StreamEvent::Finish(f) => self.emit(json!({}), Some(finish_to_str(&f)), out),
            _ => {}
        }
    }

    fn chunk(&self, choices: Value) -> Value {
        json!({
            "id": self.id.as_deref().unwrap_or_default(),
            "object": "chat.completion.chunk",
            "created": self.ctx.created,
            "model": self.ctx.model,
            "choices": choices,
        })
    }

    fn emit(&self, delta: Value, finish: Option<&str>, out: &mut Vec<Bytes>) {
        let choice = json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]);
        out.push(frame(None, &self.chunk(choice).to_string()));
    }
}

impl StreamEncoder for Encoder {
    fn encode(&mut self, ev: StreamEvent, out: &mut Vec<Bytes>) {
        if self.done {
            return;
        }
        match ev {
            StreamEvent::Start { id, model } => {
                self.ctx.adopt_model(model.as_deref());
                if self.id.is_none() {
                    self.id = id;
                    self.ensure_started(out);
                }
            }
            StreamEvent::Usage(u) => self.usage.merge(&u),
            StreamEvent::Error { status, message } => {
                let (_, body) = client_error::error_body(Protocol::OpenAiChat, status, &message);
                out.push(frame(None, &body.to_string()));
                // The error ends the stream: a `[DONE]` after it would read as a normal end.
                self.usage = Usage::default();
                self.done = true;
            }
            StreamEvent::End => self.finish(out),
            StreamEvent::ThinkingSignature(_) | StreamEvent::ToolCallEnd { .. } => {}
            content => {
                self.ensure_started(out);
                self.encode_content(content, out);
            }
        }
    }

    /// Usage goes in a final `choices: []` chunk (OpenAI's `include_usage` shape), then
    /// `[DONE]`, which OpenAI clients always get.
    fn finish(&mut self, out: &mut Vec<Bytes>) {
        if self.done {
            return;
        }
        self.done = true;
        if !self.usage.is_empty() && self.started {
            let mut chunk = self.chunk(json!([]));
            if let Some(m) = chunk.as_object_mut() {
                m.insert("usage".into(), usage_to_json(&self.usage));
            }
            out.push(frame(None, &chunk.to_string()));
        }
        out.push(Bytes::from_static(b"data: [DONE]\n\n"));
    }
}
