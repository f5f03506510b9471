//! IR stream events → OpenAI Responses SSE (`response.created` … `response.completed`).
//!
//! Deltas are relayed at once; each item's text is also accumulated because the protocol's
//! `*.done` events and the final `response.completed` repeat it in full.

use bytes::Bytes;
use serde_json::{json, Value};

use super::response::{message_item, output_text, reasoning_item};
use super::{finish_to_status, item_id, ResponseObject};
use crate::convert::client_error::error_body;
use crate::convert::ids;
use crate::convert::ir::{FinishReason, StreamEvent, Usage};
use crate::convert::protocol::Protocol;
use crate::convert::sse::frame;
use crate::convert::stream::{EncodeCtx, StreamEncoder};

enum Item {
    Message { id: String, text: String },
    Reasoning { id: String, text: String },
    Call { index: usize, id: String, call_id: String, name: String, args: String },
}

pub(crate) struct Encoder {
    ctx: EncodeCtx,
    id: Option<String>,
    started: bool,
    seq: u64,
    /// The item being streamed; its output index is `output.len()`.
    open: Option<Item>,
    output: Vec<Value>,
    usage: Usage,
    finish: Option<FinishReason>,
    done: bool,
}

impl Encoder {
    pub(crate) fn new(ctx: EncodeCtx) -> Self {
        Self {
            ctx,
            id: None,
            started: false,
            seq: 0,
            open: None,
            output: Vec::new(),
            usage: Usage::default(),
            finish: None,
            done: false,
        }
    }

    fn emit(&mut self, out: &mut Vec<Bytes>, mut v: Value) {
        let kind = v.get("type").and_then(Value::as_str).unwrap_or("error").to_string();
        if let Some(m) = v.as_object_mut() {
            m.insert("sequence_number".into(), self.seq.into());
        }
        self.seq += 1;
        out.push(frame(Some(&kind), &v.to_string()));
    }

    fn emit_some(&mut self, out: &mut Vec<Bytes>, v: Option<Value>) {
        if let Some(v) = v {
            self.emit(out, v);
        }
    }

    fn response_id(&mut self) -> String {
        self.id.get_or_insert_with(|| ids::fresh("resp_")).clone()
    }

    fn response(&mut self, status: &str, incomplete: Value, usage: bool) -> Value {
        let id = self.response_id();
        ResponseObject {
            id: &id,
            model: &self.ctx.model,
            created_at: self.ctx.created,
            status,
            incomplete_details: incomplete,
            output: self.output.clone(),
            usage: usage.then_some(&self.usage),
        }
        .to_json()
    }

    fn ensure_started(&mut self, out: &mut Vec<Bytes>) {
        if self.started {
            return;
        }
        self.started = true;
        let r = self.response("in_progress", Value::Null, false);
        self.emit(out, json!({"type": "response.created", "response": r}));
        self.emit(out, json!({"type": "response.in_progress", "response": r}));
    }

    fn output_index(&self) -> usize {
        self.output.len()
    }

    /// Closes the open item and announces the next one, `item` built from its id (`prefix`…);
    /// returns its output index and id.
    fn add_item(&mut self, prefix: &str, out: &mut Vec<Bytes>, item: impl FnOnce(&str) -> Value) -> (usize, String) {
        self.close_item(out);
        let (n, rid) = (self.output_index(), self.response_id());
        let id = item_id(prefix, &rid, n);
        self.emit(out, json!({"type": "response.output_item.added", "output_index": n, "item": item(&id)}));
        (n, id)
    }

    fn open_message(&mut self, out: &mut Vec<Bytes>) {
        if matches!(self.open, Some(Item::Message { .. })) {
            return;
        }
        let (n, id) = self.add_item(
            "msg",
            out,
            |id| json!({"type": "message", "id": id, "status": "in_progress", "role": "assistant", "content": []}),
        );
        self.emit(
            out,
            json!({"type": "response.content_part.added", "item_id": id, "output_index": n,
                   "content_index": 0, "part": output_text("")}),
        );
        self.open = Some(Item::Message { id, text: String::new() });
    }

    fn open_reasoning(&mut self, out: &mut Vec<Bytes>) {
        if matches!(self.open, Some(Item::Reasoning { .. })) {
            return;
        }
        let (n, id) = self.add_item("rs", out, |id| json!({"type": "reasoning", "id": id, "summary": []}));
        self.emit(
            out,
            json!({"type": "response.reasoning_summary_part.added", "item_id": id, "output_index": n,
                   "summary_index": 0, "part": {"type": "summary_text", "text": ""}}),
        );
        self.open = Some(Item::Reasoning { id, text: String::new() });
    }

    fn open_call(&mut self, index: usize, call_id: String, name: String, out: &mut Vec<Bytes>) {
        let (_, id) = self.add_item("fc", out, |id| {
            json!({"type": "function_call", "id": id, "call_id": call_id, "name": name,
                   "arguments": "", "status": "in_progress"})
        });
        self.open = Some(Item::Call { index, id, call_id, name, args: String::new() });
    }

    fn close_item(&mut self, out: &mut Vec<Bytes>) {
        let n = self.output_index();
        let item = match self.open.take() {
            None => return,
            Some(Item::Message { id, text }) => {
                let base = json!({"item_id": id, "output_index": n, "content_index": 0});
                self.emit(out, with(&base, json!({"type": "response.output_text.done", "text": text})));
                self.emit(out, with(&base, json!({"type": "response.content_part.done", "part": output_text(&text)})));
                message_item(&id, vec![output_text(&text)])
            }
            Some(Item::Reasoning { id, text }) => {
                let base = json!({"item_id": id, "output_index": n, "summary_index": 0});
                self.emit(out, with(&base, json!({"type": "response.reasoning_summary_text.done", "text": text})));
                let part = json!({"type": "summary_text", "text": text});
                self.emit(out, with(&base, json!({"type": "response.reasoning_summary_part.done", "part": part})));
                reasoning_item(&id, &text)
            }
            Some(Item::Call { id, call_id, name, args, .. }) => {
                self.emit(
                    out,
                    json!({"type": "response.function_call_arguments.done", "item_id": id,
                           "output_index": n, "arguments": args}),
                );
                json!({"type": "function_call", "id": id, "call_id": call_id, "name": name,
                       "arguments": args, "status": "completed"})
            }
        };
        self.emit(out, json!({"type": "response.output_item.done", "output_index": n, "item": item}));
        self.output.push(item);
    }

    fn encode_content(&mut self, ev: StreamEvent, out: &mut Vec<Bytes>) {
        match ev {
            StreamEvent::TextDelta(t) => {
                self.open_message(out);
                let n = self.output_index();
                let v = match &mut self.open {
                    Some(Item::Message { id, text }) => {
                        text.push_str(&t);
                        Some(json!({"type": "response.output_text.delta", "item_id": id, "output_index": n,
                                    "content_index": 0, "delta": t, "logprobs": []}))
                    }
                    _ => None,
                };
                self.emit_some(out, v);
            }
            StreamEvent::ThinkingDelta(t) => {
                self.open_reasoning(out);
                let n = self.output_index();
                let v = match &mut self.open {
                    Some(Item::Reasoning { id, text }) => {
                        text.push_str(&t);
                        Some(json!({"type": "response.reasoning_summary_text.delta", "item_id": id,
                                    "output_index": n, "summary_index": 0, "delta": t}))
                    }
                    _ => None,
                };
                self.emit_some(out, v);
            }
            StreamEvent::ToolCallStart { index, id, name } => self.open_call(index, id, name, out),
            StreamEvent::ToolCallArgs { index, delta } => {
                let n = self.output_index();
                let v = match &mut self.open {
                    Some(Item::Call { index: i, id, args, .. }) if *i == index => {
                        args.push_str(&delta);
                        Some(json!({"type": "response.function_call_arguments.delta", "item_id": id,
                                    "output_index": n, "delta": delta}))
                    }
                    _ => {
                        tracing::warn!(index, "dropping arguments for a tool call that is not open");
                        None
                    }
                };
                self.emit_some(out, v);
            }
            StreamEvent::ToolCallEnd { index } => {
                if matches!(&self.open, Some(Item::Call { index: i, .. }) if *i == index) {
                    self.close_item(out);
                }
            }
            _ => {}
        }
    }
}

/// `base` fields merged into `v`.
fn with(base: &Value, mut v: Value) -> Value {
    if let (Some(b), Some(m)) = (base.as_object(), v.as_object_mut()) {
        for (k, val) in b {
            m.insert(k.clone(), val.clone());
        }
    }
    v
}

impl StreamEncoder for Encoder {
    fn encode(&mut self, ev: StreamEvent, out: &mut Vec<Bytes>) {
        if self.done {
            return;
        }
        match ev {
            StreamEvent::Start { id, model } => {
                self.ctx.adopt_start(&mut self.id, id, model.as_deref());
                self.ensure_started(out);
            }
            StreamEvent::Usage(u) => self.usage.merge(&u),
            StreamEvent::Finish(f) => self.finish = Some(f),
            StreamEvent::Error { status, message } => {
                let (_, body) = error_body(Protocol::OpenAiResponses, status, &message);
                let code = body.pointer("/error/type").cloned().unwrap_or(Value::Null);
                self.emit(out, json!({"type": "error", "code": code, "message": message, "param": null}));
                self.done = true;
            }
            StreamEvent::End => self.finish(out),
            StreamEvent::ThinkingSignature(_) => {}
            content => {
                self.ensure_started(out);
                self.encode_content(content, out);
            }
        }
    }

    fn finish(&mut self, out: &mut Vec<Bytes>) {
        if self.done {
            return;
        }
        self.done = true;
        self.ensure_started(out);
        self.close_item(out);
        let (status, incomplete) = finish_to_status(self.finish.as_ref());
        let kind = if status == "completed" { "response.completed" } else { "response.incomplete" };
        let r = self.response(status, incomplete, true);
        self.emit(out, json!({"type": kind, "response": r}));
    }
}
