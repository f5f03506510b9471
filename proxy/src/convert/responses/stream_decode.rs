//! OpenAI Responses SSE events → IR stream events.

use std::collections::HashMap;

use serde_json::Value;

use super::{finish_from_response, usage_from_json};
use crate::convert::client_error::status_from_kind;
use crate::convert::ir::{FinishReason, StreamEvent};
use crate::convert::json::{obj, text, Obj};
use crate::convert::sse::SseEvent;
use crate::convert::stream::{event_type, parse_object, start_from, upstream_error, StreamDecoder};

struct Call {
    index: usize,
    got_args: bool,
    open: bool,
}

#[derive(Default)]
pub(crate) struct Decoder {
    /// `output_index` → function call.
    calls: HashMap<u64, Call>,
    /// Item id → `output_index`, for events that only name the item.
    items: HashMap<String, u64>,
    ended: bool,
}

impl StreamDecoder for Decoder {
    fn decode(&mut self, ev: &SseEvent, out: &mut Vec<StreamEvent>) {
        let Some(o) = &parse_object(ev) else { return };
        let kind = event_type(o, ev);
        match kind {
            "response.created" => {
                out.push(start_from(obj(o, "response")));
            }
            "response.output_item.added" => self.item_added(o, out),
            "response.output_text.delta" | "response.refusal.delta" => {
                out.extend(delta(o).map(StreamEvent::TextDelta));
            }
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                out.extend(delta(o).map(StreamEvent::ThinkingDelta));
            }
            "response.function_call_arguments.delta" => {
                if let (Some(call), Some(d)) = (self.call(o), delta(o)) {
                    call.got_args = true;
                    out.push(StreamEvent::ToolCallArgs { index: call.index, delta: d });
                }
            }
            "response.function_call_arguments.done" => {
                let args = text(o, "arguments").map(str::to_string);
                self.whole_args(o, args, out);
            }
            "response.output_item.done" => self.item_done(o, out),
            "response.completed" | "response.incomplete" => self.completed(o, out),
            "response.failed" => {
                let e = obj(o, "response").and_then(|r| obj(r, "error"));
                let code = e.and_then(|e| text(e, "code")).unwrap_or_default();
                let message = e.and_then(|e| text(e, "message")).unwrap_or("response failed");
                out.push(StreamEvent::Error { status: status_from_kind(code), message: message.to_string() });
            }
            "error" => out.extend(upstream_error(o)),
            _ => {}
        }
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        self.close_calls(out);
    }
}

fn delta(o: &Obj) -> Option<String> {
    text(o, "delta").filter(|d| !d.is_empty()).map(str::to_string)
}

impl Decoder {
    fn call(&mut self, o: &Obj) -> Option<&mut Call> {
        let index = o
            .get("output_index")
            .and_then(Value::as_u64)
            .or_else(|| text(o, "item_id").and_then(|id| self.items.get(id).copied()))?;
        self.calls.get_mut(&index)
    }

    fn item_added(&mut self, o: &Obj, out: &mut Vec<StreamEvent>) {
        let Some(item) = obj(o, "item") else { return };
        if text(item, "type") != Some("function_call") {
            return;
        }
        let output_index = o.get("output_index").and_then(Value::as_u64).unwrap_or(0);
        if let Some(id) = text(item, "id") {
            self.items.insert(id.to_string(), output_index);
        }
        let index = self.calls.len();
        self.calls.insert(output_index, Call { index, got_args: false, open: true });
        out.push(StreamEvent::ToolCallStart {
            index,
            id: text(item, "call_id").unwrap_or_default().to_string(),
            name: text(item, "name").unwrap_or_default().to_string(),
        });
        let args = text(item, "arguments").map(str::to_string);
        self.whole_args(o, args, out);
    }

    /// Arguments delivered whole (no deltas) are passed on once.
    fn whole_args(&mut self, o: &Obj, args: Option<String>, out: &mut Vec<StreamEvent>) {
        let Some(args) = args.filter(|a| !a.is_empty()) else { return };
        if let Some(call) = self.call(o).filter(|c| !c.got_args) {
            call.got_args = true;
            out.push(StreamEvent::ToolCallArgs { index: call.index, delta: args });
        }
    }

    fn item_done(&mut self, o: &Obj, out: &mut Vec<StreamEvent>) {
        let Some(item) = obj(o, "item") else { return };
        if text(item, "type") != Some("function_call") {
            return;
        }
        let args = text(item, "arguments").map(str::to_string);
        self.whole_args(o, args, out);
        if let Some(call) = self.call(o).filter(|c| c.open) {
            call.open = false;
            out.push(StreamEvent::ToolCallEnd { index: call.index });
        }
    }

    fn completed(&mut self, o: &Obj, out: &mut Vec<StreamEvent>) {
        self.close_calls(out);
        if let Some(r) = obj(o, "response") {
            if let Some(u) = obj(r, "usage") {
                out.push(StreamEvent::Usage(usage_from_json(u)));
            }
            let finish = finish_from_response(r).unwrap_or(FinishReason::Stop);
            out.push(StreamEvent::Finish(finish));
        }
        if !self.ended {
            self.ended = true;
            out.push(StreamEvent::End);
        }
    }

    fn close_calls(&mut self, out: &mut Vec<StreamEvent>) {
        let mut open: Vec<usize> = self
            .calls
            .values_mut()
            .filter(|c| c.open)
            .map(|c| {
                c.open = false;
                c.index
            })
            .collect();
        open.sort_unstable();
        out.extend(open.into_iter().map(|index| StreamEvent::ToolCallEnd { index }));
    }
}
