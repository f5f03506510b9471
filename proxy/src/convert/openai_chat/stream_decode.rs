//! OpenAI Chat SSE chunks → IR stream events.

use std::collections::HashMap;

use serde_json::Value;

use super::{finish_from_str, usage_from_json};
use crate::convert::ir::StreamEvent;
use crate::convert::json::{arr, obj, text, Obj};
use crate::convert::sse::SseEvent;
use crate::convert::stream::{parse_object, start_from, upstream_error, StreamDecoder};

#[derive(Default)]
pub(crate) struct Decoder {
    started: bool,
    /// OpenAI `tool_calls[].index` → IR tool index.
    tools: HashMap<u64, usize>,
    open_tools: Vec<usize>,
    ended: bool,
}

impl StreamDecoder for Decoder {
    fn decode(&mut self, ev: &SseEvent, out: &mut Vec<StreamEvent>) {
        if ev.data.trim() == "[DONE]" {
            self.end(out);
            return;
        }
        let Some(o) = &parse_object(ev) else { return };
        if let Some(err) = upstream_error(o) {
            out.push(err);
            return;
        }
        if !self.started {
            self.started = true;
            out.push(start_from(Some(o)));
        }
        // Only choice 0 is converted (`n > 1` has no equivalent elsewhere).
        let choice = arr(o, "choices")
            .iter()
            .filter_map(Value::as_object)
            .find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0);
        if let Some(choice) = choice {
            self.decode_choice(choice, out);
        }
        if let Some(u) = obj(o, "usage") {
            out.push(StreamEvent::Usage(usage_from_json(u)));
        }
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        self.close_tools(out);
    }
}

impl Decoder {
    fn decode_choice(&mut self, choice: &Obj, out: &mut Vec<StreamEvent>) {
        if let Some(delta) = obj(choice, "delta") {
            let reasoning = text(delta, "reasoning_content").or_else(|| text(delta, "reasoning"));
            if let Some(t) = reasoning.filter(|t| !t.is_empty()) {
                out.push(StreamEvent::ThinkingDelta(t.to_string()));
            }
            if let Some(t) = text(delta, "content").filter(|t| !t.is_empty()) {
                out.push(StreamEvent::TextDelta(t.to_string()));
            }
            for tc in arr(delta, "tool_calls").iter().filter_map(Value::as_object) {
                self.decode_tool_delta(tc, out);
            }
        }
        if let Some(reason) = text(choice, "finish_reason") {
            self.close_tools(out);
            out.push(StreamEvent::Finish(finish_from_str(reason)));
        }
    }

    fn decode_tool_delta(&mut self, tc: &Obj, out: &mut Vec<StreamEvent>) {
        let key = tc.get("index").and_then(Value::as_u64).unwrap_or(0);
        let f = obj(tc, "function");
        let next = self.tools.len();
        let index = *self.tools.entry(key).or_insert_with(|| {
            out.push(StreamEvent::ToolCallStart {
                index: next,
                id: text(tc, "id").map_or_else(|| format!("call_{next}"), str::to_string),
                name: f.and_then(|f| text(f, "name")).unwrap_or_default().to_string(),
            });
            next
        });
        if index == next {
            self.open_tools.push(index);
        }
        if let Some(args) = f.and_then(|f| text(f, "arguments")).filter(|a| !a.is_empty()) {
            out.push(StreamEvent::ToolCallArgs { index, delta: args.to_string() });
        }
    }

    fn close_tools(&mut self, out: &mut Vec<StreamEvent>) {
        out.extend(self.open_tools.drain(..).map(|index| StreamEvent::ToolCallEnd { index }));
    }

    fn end(&mut self, out: &mut Vec<StreamEvent>) {
        if !self.ended {
            self.ended = true;
            self.close_tools(out);
            out.push(StreamEvent::End);
        }
    }
}
