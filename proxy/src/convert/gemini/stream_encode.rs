//! IR stream events → Gemini SSE chunks. Gemini has no partial function calls, so a call's
//! argument deltas are collected until the call ends and then sent whole; text and thinking
//! are relayed as they arrive. The last chunk carries `finishReason` and usage.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::{json, Value};

use super::{finish_to_str, usage_to_json};
use crate::convert::client_error;
use crate::convert::ids;
use crate::convert::ir::{FinishReason, StreamEvent, Usage};
use crate::convert::json::arguments_object;
use crate::convert::protocol::Protocol;
use crate::convert::sse::frame;
use crate::convert::stream::{EncodeCtx, StreamEncoder};

pub(crate) struct Encoder {
    ctx: EncodeCtx,
    id: Option<String>,
    /// Tool calls being assembled: index → (name, argument text).
    calls: BTreeMap<usize, (String, String)>,
    usage: Usage,
    finish: Option<FinishReason>,
    done: bool,
}

impl Encoder {
    pub(crate) fn new(ctx: EncodeCtx) -> Self {
        Self { ctx, id: None, calls: BTreeMap::new(), usage: Usage::default(), finish: None, done: false }
    }

    fn chunk(&mut self, candidate: Value, usage: bool) -> Bytes {
        let id = self.id.get_or_insert_with(|| ids::fresh("resp-")).clone();
        let mut v = json!({
            "candidates": [candidate],
            "modelVersion": self.ctx.model,
            "responseId": id,
        });
        if usage {
            v["usageMetadata"] = usage_to_json(&self.usage);
        }
        frame(None, &v.to_string())
    }

    fn parts(&mut self, parts: Value, out: &mut Vec<Bytes>) {
        let c = json!({"content": {"role": "model", "parts": parts}, "index": 0});
        out.push(self.chunk(c, false));
    }

    fn flush_call(&mut self, index: usize, out: &mut Vec<Bytes>) {
        if let Some((name, args)) = self.calls.remove(&index) {
            let part = json!({"functionCall": {"name": name, "args": arguments_object(&args)}});
            self.parts(json!([part]), out);
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
            }
            StreamEvent::TextDelta(t) => self.parts(json!([{"text": t}]), out),
            StreamEvent::ThinkingDelta(t) => self.parts(json!([{"text": t, "thought": true}]), out),
            StreamEvent::ToolCallStart { index, name, .. } => {
                self.calls.insert(index, (name, String::new()));
            }
            StreamEvent::ToolCallArgs { index, delta } => {
                if let Some((_, args)) = self.calls.get_mut(&index) {
                    args.push_str(&delta);
                }
            }
            StreamEvent::ToolCallEnd { index } => self.flush_call(index, out),
            StreamEvent::Usage(u) => self.usage.merge(&u),
            StreamEvent::Finish(f) => self.finish = Some(f),
            StreamEvent::Error { status, message } => {
                let (_, body) = client_error::error_body(Protocol::Gemini, status, &message);
                out.push(frame(None, &body.to_string()));
                self.done = true;
            }
            StreamEvent::End => self.finish(out),
            StreamEvent::ThinkingSignature(_) => {}
        }
    }

    fn finish(&mut self, out: &mut Vec<Bytes>) {
        if self.done {
            return;
        }
        self.done = true;
        let pending: Vec<usize> = self.calls.keys().copied().collect();
        for index in pending {
            self.flush_call(index, out);
        }
        let reason = self.finish.as_ref().map_or("STOP", finish_to_str);
        let c = json!({"finishReason": reason, "index": 0});
        out.push(self.chunk(c, !self.usage.is_empty()));
    }
}
