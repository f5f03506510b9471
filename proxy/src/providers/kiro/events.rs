//! Decoded Kiro frames → IR [`StreamEvent`]s, incrementally (spec §2.6, §2.7).
//!
//! Event order: `Start` and an estimated `Usage` with the first frame (so `message_start` has
//! input usage), then text / thinking / tool-call events as they complete, and at
//! [`Translator::finish`] the final `Usage`, `Finish` (`ToolCalls` if any tool call was emitted,
//! else `Stop`) and `End`. An exception or error frame is returned as
//! [`KiroError::Upstream`] and the translator emits nothing more: a failed stream never ends
//! like a normal `end_turn` (the reference's bug).
//!
//! Tool calls are buffered per `toolUseId` until their `stop` event, then sent whole
//! (start, arguments, end) under the client's original tool name. Text of the form
//! `[Called NAME with args: {…}]` becomes a tool call too; text that might start one is held
//! back (at most 64 KiB) until it is decided. Identical calls (name and arguments) are sent once.
//!
//! Token accounting: output tokens are estimated from the emitted text, thinking and tool
//! arguments at 4 ASCII characters per token plus one per other character (as
//! [`crate::convert::tokens::text_tokens`]). Input tokens come from `contextUsageEvent`:
//! round(window · pct / 100) − output, else from the caller's estimate; both are split
//! 1:2:25 into input / cache write / cache read as the reference does ([`split_input_tokens`]).

use serde_json::{Map, Value};

use super::eventstream::Frame;
use super::request::{estimate_input_tokens, ToolNames};
use super::KiroError;
use crate::convert::ir::{FinishReason, Request, StreamEvent, Usage};

/// The reference's context window for `contextUsagePercentage`.
pub const DEFAULT_CONTEXT_WINDOW: u64 = 172_500;
/// Below this many input tokens no cache split is reported.
const CACHE_SPLIT_THRESHOLD: u64 = 100;
const OPEN_TAG: &str = "<thinking>";
const CLOSE_TAG: &str = "</thinking>";
const CALL_PREFIX: &str = "[Called ";
const ARGS_MARKER: &str = " with args: ";
/// Longest text held back while it could still be a bracket tool call.
const MAX_BRACKET_HOLD: usize = 64 * 1024;

type Obj = Map<String, Value>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranslatorOptions {
    /// The request enabled thinking: `<thinking>…</thinking>` text becomes thinking events.
    pub thinking: bool,
    pub tool_names: ToolNames,
    /// Used when the stream reports no context usage.
    pub input_tokens_estimate: u64,
    pub context_window: u64,
}

impl Default for TranslatorOptions {
    fn default() -> Self {
        Self {
            thinking: false,
            tool_names: ToolNames::default(),
            input_tokens_estimate: 0,
            context_window: DEFAULT_CONTEXT_WINDOW,
        }
    }
}

impl TranslatorOptions {
    /// Options for the answer to `req`, whose body was built with `tool_names`: thinking as requested, the request's
    /// input-token estimate, the default context window.
    pub fn for_request(req: &Request, tool_names: ToolNames) -> Self {
        Self {
            thinking: req.reasoning.is_some(),
            tool_names,
            input_tokens_estimate: estimate_input_tokens(req),
            context_window: DEFAULT_CONTEXT_WINDOW,
        }
    }
}

/// Input tokens from a `contextUsagePercentage`: round(window · pct / 100) − output, ≥ 0.
pub fn input_from_context(pct: f64, window: u64, output: u64) -> u64 {
    // Float-to-int casts saturate; NaN becomes 0.
    ((window as f64 * pct / 100.0).round() as u64).saturating_sub(output)
}

/// `(input, cache_creation, cache_read)` in the reference's 1:2:25 ratio; all input below 100.
pub fn split_input_tokens(n: u64) -> (u64, u64, u64) {
    if n < CACHE_SPLIT_THRESHOLD {
        return (n, 0, 0);
    }
    let input = n / 28;
    let creation = u64::try_from(u128::from(n) * 2 / 28).unwrap_or(u64::MAX);
    (input, creation, n - input - creation)
}

/// Incremental translator for one response.
#[derive(Debug)]
pub struct Translator {
    opts: TranslatorOptions,
    started: bool,
    /// An error was returned or `finish` ran; nothing more is emitted.
    done: bool,
    last_content: Option<String>,
    thinking: ThinkingSplitter,
    brackets: BracketScanner,
    tools: Vec<PendingTool>,
    current_tool: Option<String>,
    seen_calls: Vec<(String, String)>,
    tool_calls: usize,
    output: OutputCounter,
    context_pct: Option<f64>,
}

#[derive(Debug)]
struct PendingTool {
    id: String,
    name: String,
    input: String,
}

impl Translator {
    pub fn new(opts: TranslatorOptions) -> Self {
        Self {
            opts,
            started: false,
            done: false,
            last_content: None,
            thinking: ThinkingSplitter::default(),
            brackets: BracketScanner::default(),
            tools: Vec::new(),
            current_tool: None,
            seen_calls: Vec::new(),
            tool_calls: 0,
            output: OutputCounter::default(),
            context_pct: None,
        }
    }

    /// Translates one frame. Exception and error frames are returned as errors.
    pub fn frame(&mut self, f: &Frame, out: &mut Vec<StreamEvent>) -> Result<(), KiroError> {
        if self.done {
            return Ok(());
        }
        if let Some(err) = frame_error(f) {
            self.done = true;
            return Err(err);
        }
        self.start(out);
        let Ok(Value::Object(p)) = serde_json::from_slice::<Value>(&f.payload) else {
            tracing::warn!(event = ?f.event_type(), len = f.payload.len(), "skipping Kiro event without a JSON object");
            return Ok(());
        };
        match f.event_type().unwrap_or_else(|| infer_event_type(&p)) {
            "assistantResponseEvent" => self.on_text(&p, out),
            "toolUseEvent" => self.on_tool(&p, out),
            "contextUsageEvent" => {
                self.context_pct = p.get("contextUsagePercentage").and_then(Value::as_f64);
            }
            "meteringEvent" | "followupPromptEvent" => {}
            other => tracing::debug!(event = other, "ignoring Kiro event"),
        }
        Ok(())
    }

    /// The stream ended normally: flushes held text and unfinished tool calls, then usage,
    /// finish reason and end. Does nothing after an error.
    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), KiroError> {
        if self.done {
            return Ok(());
        }
        self.start(out);
        let mut pieces = Vec::new();
        self.thinking.finish(&mut pieces);
        for p in pieces {
            self.on_piece(p, out);
        }
        let mut scans = Vec::new();
        self.brackets.finish(&mut scans);
        self.on_scans(scans, out);
        for t in std::mem::take(&mut self.tools) {
            self.emit_tool_call(&t.id, &t.name, &t.input, out);
        }
        self.done = true;
        out.push(StreamEvent::Usage(self.usage(self.output.tokens())));
        out.push(StreamEvent::Finish(if self.tool_calls > 0 { FinishReason::ToolCalls } else { FinishReason::Stop }));
        out.push(StreamEvent::End);
        Ok(())
    }

    fn start(&mut self, out: &mut Vec<StreamEvent>) {
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start { id: None, model: None });
            out.push(StreamEvent::Usage(self.usage(0)));
        }
    }

    fn usage(&self, output: u64) -> Usage {
        let input = match self.context_pct {
            Some(p) if p.is_finite() && p > 0.0 => input_from_context(p, self.opts.context_window, output),
            _ => self.opts.input_tokens_estimate,
        };
        let (_, creation, read) = split_input_tokens(input);
        Usage {
            input_tokens: Some(input),
            output_tokens: Some(output),
            cached_input_tokens: Some(read),
            cache_creation_input_tokens: Some(creation),
            reasoning_tokens: None,
        }
    }

    fn on_text(&mut self, p: &Obj, out: &mut Vec<StreamEvent>) {
        if p.contains_key("followupPrompt") {
            return;
        }
        let Some(content) = p.get("content").and_then(Value::as_str) else { return };
        // The upstream sometimes repeats a content event; the reference drops the repeat.
        if self.last_content.as_deref() == Some(content) {
            return;
        }
        self.last_content = Some(content.to_string());
        if !self.opts.thinking {
            return self.on_piece(Piece::Text(content.to_string()), out);
        }
        let mut pieces = Vec::new();
        self.thinking.push(content, &mut pieces);
        for piece in pieces {
            self.on_piece(piece, out);
        }
    }

    fn on_piece(&mut self, p: Piece, out: &mut Vec<StreamEvent>) {
        match p {
            Piece::Thinking(t) => {
                self.output.add(&t);
                out.push(StreamEvent::ThinkingDelta(t));
            }
            Piece::Text(t) => {
                let mut scans = Vec::new();
                self.brackets.push(&t, &mut scans);
                self.on_scans(scans, out);
            }
        }
    }

    fn on_scans(&mut self, scans: Vec<Scan>, out: &mut Vec<StreamEvent>) {
        for s in scans {
            match s {
                Scan::Text(t) => {
                    self.output.add(&t);
                    out.push(StreamEvent::TextDelta(t));
                }
                Scan::Call { name, args } => {
                    let id = format!("tooluse_{}", uuid::Uuid::new_v4().simple());
                    self.emit_tool_call(&id, &name, &args, out);
                }
            }
        }
    }

    fn on_tool(&mut self, p: &Obj, out: &mut Vec<StreamEvent>) {
        let id = match p.get("toolUseId").and_then(Value::as_str) {
            Some(id) => id.to_string(),
            None => match &self.current_tool {
                Some(id) => id.clone(),
                None => return tracing::warn!("ignoring Kiro tool event without a toolUseId"),
            },
        };
        self.current_tool = Some(id.clone());
        let at = match self.tools.iter().position(|t| t.id == id) {
            Some(i) => i,
            None => {
                self.tools.push(PendingTool { id: id.clone(), name: String::new(), input: String::new() });
                self.tools.len() - 1
            }
        };
        let tool = &mut self.tools[at];
        if let Some(name) = p.get("name").and_then(Value::as_str) {
            tool.name = name.to_string();
        }
        match p.get("input") {
            Some(Value::String(s)) => tool.input.push_str(s),
            Some(v @ Value::Object(_)) => tool.input = v.to_string(),
            _ => {}
        }
        if p.get("stop").and_then(Value::as_bool) == Some(true) {
            let t = self.tools.remove(at);
            self.current_tool = None;
            self.emit_tool_call(&t.id, &t.name, &t.input, out);
        }
    }

    fn emit_tool_call(&mut self, id: &str, upstream_name: &str, input: &str, out: &mut Vec<StreamEvent>) {
        let name = self.opts.tool_names.original(upstream_name).to_string();
        let args = if input.trim().is_empty() { "{}".to_string() } else { input.to_string() };
        let key = (name.clone(), canonical_json(&args));
        if self.seen_calls.contains(&key) {
            return;
        }
        self.seen_calls.push(key);
        let index = self.tool_calls;
        self.tool_calls += 1;
        self.output.add(&args);
        out.push(StreamEvent::ToolCallStart { index, id: id.to_string(), name });
        out.push(StreamEvent::ToolCallArgs { index, delta: args });
        out.push(StreamEvent::ToolCallEnd { index });
    }
}

/// An exception (`:message-type exception`) or error frame as an error.
fn frame_error(f: &Frame) -> Option<KiroError> {
    match f.message_type() {
        Some("exception") => {
            let p: Option<Obj> = serde_json::from_slice(&f.payload).ok();
            let from_payload = p.as_ref().and_then(|p| p.get("__type")).and_then(Value::as_str);
            let kind = f.exception_type().or(from_payload).unwrap_or("UnknownException");
            let kind = kind.rsplit('#').next().unwrap_or(kind);
            let message = p
                .as_ref()
                .and_then(|p| p.get("message").or_else(|| p.get("Message")))
                .and_then(Value::as_str)
                .map_or_else(|| String::from_utf8_lossy(&f.payload).into_owned(), str::to_string);
            Some(KiroError::upstream(kind, &message))
        }
        Some("error") => {
            let kind = f.header_str(":error-code").unwrap_or("UnknownError");
            let message = f.header_str(":error-message").unwrap_or("upstream error");
            Some(KiroError::upstream(kind, message))
        }
        _ => None,
    }
}

/// Event type from the payload's first key, for frames without `:event-type`.
fn infer_event_type(p: &Obj) -> &'static str {
    if p.contains_key("content") || p.contains_key("followupPrompt") {
        "assistantResponseEvent"
    } else if ["toolUseId", "input", "stop"].iter().any(|k| p.contains_key(*k)) {
        "toolUseEvent"
    } else if p.contains_key("contextUsagePercentage") {
        "contextUsageEvent"
    } else {
        "unknown"
    }
}

fn canonical_json(s: &str) -> String {
    serde_json::from_str::<Value>(s).map_or_else(|_| s.to_string(), |v| v.to_string())
}

/// Output-token estimate over everything emitted: ASCII at 4 characters per token, other
/// characters 1 each.
#[derive(Debug, Default)]
struct OutputCounter {
    ascii: u64,
    other: u64,
}

impl OutputCounter {
    fn add(&mut self, s: &str) {
        for c in s.chars() {
            if c.is_ascii() {
                self.ascii += 1;
            } else {
                self.other += 1;
            }
        }
    }

    fn tokens(&self) -> u64 {
        self.ascii.div_ceil(4) + self.other
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Thinking(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Phase {
    #[default]
    Before,
    Inside,
    /// After `</thinking>`; `strip` while one leading `\n\n` may still be removed.
    After {
        strip: bool,
    },
}

/// Splits text into the first `<thinking>…</thinking>` block and the text around it. A tag
/// next to a quote or backtick is text (the model quoting the tag); a possible partial tag
/// at the end of a chunk is held back until the next one.
#[derive(Debug, Default)]
struct ThinkingSplitter {
    phase: Phase,
    pending: String,
    /// The last character already emitted, to check quotes before a tag.
    prev: Option<char>,
}

enum TagScan {
    Found(usize),
    /// Emit up to here and keep the rest.
    Hold(usize),
}

impl ThinkingSplitter {
    fn push(&mut self, s: &str, out: &mut Vec<Piece>) {
        self.pending.push_str(s);
        self.drain(out, false);
    }

    fn finish(&mut self, out: &mut Vec<Piece>) {
        self.drain(out, true);
    }

    fn drain(&mut self, out: &mut Vec<Piece>, at_end: bool) {
        loop {
            match self.phase {
                Phase::Before | Phase::Inside => {
                    let inside = self.phase == Phase::Inside;
                    let tag = if inside { CLOSE_TAG } else { OPEN_TAG };
                    let piece = |s: String| if inside { Piece::Thinking(s) } else { Piece::Text(s) };
                    match find_tag(&self.pending, tag, self.prev, at_end) {
                        TagScan::Found(i) => {
                            self.emit(i, piece, out);
                            self.pending.drain(..tag.len());
                            self.prev = Some('>');
                            self.phase = if inside { Phase::After { strip: true } } else { Phase::Inside };
                        }
                        TagScan::Hold(i) => return self.emit(i, piece, out),
                    }
                }
                Phase::After { strip: true } => {
                    if self.pending.starts_with("\n\n") {
                        self.pending.drain(..2);
                    } else if !at_end && "\n\n".starts_with(self.pending.as_str()) {
                        return;
                    }
                    self.phase = Phase::After { strip: false };
                }
                Phase::After { strip: false } => {
                    let n = self.pending.len();
                    return self.emit(n, Piece::Text, out);
                }
            }
        }
    }

    /// Emits `pending[..n]` as a piece (if non-empty) and removes it.
    fn emit(&mut self, n: usize, piece: impl Fn(String) -> Piece, out: &mut Vec<Piece>) {
        if n == 0 {
            return;
        }
        let s: String = self.pending.drain(..n).collect();
        self.prev = s.chars().last();
        out.push(piece(s));
    }
}

fn is_quote(c: Option<char>) -> bool {
    matches!(c, Some('"' | '\'' | '`'))
}

fn find_tag(hay: &str, tag: &str, prev: Option<char>, at_end: bool) -> TagScan {
    for (i, _) in hay.match_indices(tag) {
        let before = if i == 0 { prev } else { hay[..i].chars().next_back() };
        let after = hay[i + tag.len()..].chars().next();
        if after.is_none() && !at_end {
            return TagScan::Hold(i);
        }
        if !is_quote(before) && !is_quote(after) {
            return TagScan::Found(i);
        }
    }
    if at_end {
        return TagScan::Hold(hay.len());
    }
    // Hold back the longest suffix that could begin the tag (the tag is ASCII, so the cut is
    // on a char boundary).
    let keep = (1..tag.len()).rev().find(|&k| hay.ends_with(&tag[..k])).unwrap_or(0);
    TagScan::Hold(hay.len() - keep)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Scan {
    Text(String),
    Call { name: String, args: String },
}

/// Finds `[Called NAME with args: {…}]` in streamed text.
#[derive(Debug, Default)]
struct BracketScanner {
    pending: String,
}

enum CallParse {
    Call { len: usize, name: String, args: String },
    NeedMore,
    NotCall,
}

impl BracketScanner {
    fn push(&mut self, s: &str, out: &mut Vec<Scan>) {
        self.pending.push_str(s);
        self.drain(out, false);
    }

    fn finish(&mut self, out: &mut Vec<Scan>) {
        self.drain(out, true);
    }

    fn drain(&mut self, out: &mut Vec<Scan>, at_end: bool) {
        let mut text = String::new();
        loop {
            let Some(i) = self.pending.find('[') else {
                text.push_str(&self.pending);
                self.pending.clear();
                break;
            };
            text.extend(self.pending.drain(..i));
            match parse_call(&self.pending) {
                CallParse::Call { len, name, args } => {
                    if !text.is_empty() {
                        out.push(Scan::Text(std::mem::take(&mut text)));
                    }
                    out.push(Scan::Call { name, args });
                    self.pending.drain(..len);
                }
                CallParse::NeedMore if !at_end && self.pending.len() <= MAX_BRACKET_HOLD => break,
                CallParse::NeedMore | CallParse::NotCall => {
                    text.push('[');
                    self.pending.drain(..1);
                }
            }
        }
        if !text.is_empty() {
            out.push(Scan::Text(text));
        }
    }
}

/// Needs more input when `s` is a proper prefix of `want`, else it is not a call.
fn prefix_or_not(s: &str, want: &str) -> CallParse {
    if want.starts_with(s) {
        CallParse::NeedMore
    } else {
        CallParse::NotCall
    }
}

/// Parses a bracket call at the start of `s` (which starts with `[`).
fn parse_call(s: &str) -> CallParse {
    let Some(rest) = s.strip_prefix(CALL_PREFIX) else { return prefix_or_not(s, CALL_PREFIX) };
    let name_len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || "_-.:".contains(c))).unwrap_or(rest.len());
    let (name, after) = rest.split_at(name_len);
    if name.is_empty() {
        return if after.is_empty() { CallParse::NeedMore } else { CallParse::NotCall };
    }
    let Some(json) = after.strip_prefix(ARGS_MARKER) else { return prefix_or_not(after, ARGS_MARKER) };
    let ws = json.len() - json.trim_start().len();
    let n = match json_object_len(&json[ws..]) {
        JsonScan::Len(n) => ws + n,
        JsonScan::Incomplete => return CallParse::NeedMore,
        JsonScan::NotObject => return CallParse::NotCall,
    };
    let tail = &json[n..];
    let tail_ws = tail.len() - tail.trim_start().len();
    match tail[tail_ws..].chars().next() {
        None => CallParse::NeedMore,
        Some(']') => CallParse::Call {
            len: s.len() - tail.len() + tail_ws + 1,
            name: name.to_string(),
            args: json[ws..n].to_string(),
        },
        Some(_) => CallParse::NotCall,
    }
}

enum JsonScan {
    Len(usize),
    Incomplete,
    NotObject,
}

/// Length of the JSON object at the start of `s`, by string-aware brace matching.
fn json_object_len(s: &str) -> JsonScan {
    if s.is_empty() {
        return JsonScan::Incomplete;
    }
    if !s.starts_with('{') {
        return JsonScan::NotObject;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, b) in s.bytes().enumerate() {
        match (in_string, escaped, b) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (true, false, b'"') => in_string = false,
            (true, false, _) => {}
            (false, _, b'"') => in_string = true,
            (false, _, b'{') => depth += 1,
            (false, _, b'}') => {
                depth -= 1;
                if depth == 0 {
                    return JsonScan::Len(i + 1);
                }
            }
            _ => {}
        }
    }
    JsonScan::Incomplete
}

#[cfg(test)]
mod tests {
    use super::super::eventstream::{encode_frame, tests::event, Decoder};
    use super::*;

    fn frames(bytes: &[u8]) -> Vec<Frame> {
        Decoder::new().push(bytes).unwrap()
    }

    fn run(opts: TranslatorOptions, payloads: &[(&str, &str)]) -> Result<Vec<StreamEvent>, KiroError> {
        let mut t = Translator::new(opts);
        let mut out = Vec::new();
        for (kind, p) in payloads {
            for f in frames(&event(kind, p)) {
                t.frame(&f, &mut out)?;
            }
        }
        t.finish(&mut out)?;
        Ok(out)
    }

    fn content(events: &[StreamEvent]) -> Vec<StreamEvent> {
        events.iter().filter(|e| !matches!(e, StreamEvent::Start { .. } | StreamEvent::Usage(_))).cloned().collect()
    }

    fn text(s: &str) -> StreamEvent {
        StreamEvent::TextDelta(s.into())
    }

    #[test]
    fn options_for_a_request() {
        let req = Request { reasoning: Some(Default::default()), ..Request::default() };
        let o = TranslatorOptions::for_request(&req, ToolNames::default());
        assert!(o.thinking);
        assert_eq!(o.input_tokens_estimate, estimate_input_tokens(&req));
        assert_eq!(o.context_window, DEFAULT_CONTEXT_WINDOW);
    }

    #[test]
    fn verified_split_example() {
        let n = input_from_context(1.25, DEFAULT_CONTEXT_WINDOW, 21);
        assert_eq!(n, 2135);
        assert_eq!(split_input_tokens(n), (76, 152, 1907));
        assert_eq!(split_input_tokens(99), (99, 0, 0));
        assert_eq!(input_from_context(0.001, 100, 50), 0);
        assert_eq!(input_from_context(f64::NAN, 100, 0), 0);
        let (a, b, c) = split_input_tokens(u64::MAX);
        assert_eq!(a as u128 + b as u128 + c as u128, u64::MAX as u128);
    }

    #[test]
    fn text_with_duplicate_dropped_and_usage_from_context() {
        let out = run(
            TranslatorOptions { input_tokens_estimate: 5, ..TranslatorOptions::default() },
            &[
                ("assistantResponseEvent", r#"{"content":"Hel"}"#),
                ("assistantResponseEvent", r#"{"content":"Hel"}"#),
                ("assistantResponseEvent", r#"{"content":"lo"}"#),
                ("meteringEvent", r#"{"unit":"credit","unitPlural":"credits","usage":0.0123}"#),
                ("followupPromptEvent", r#"{"followupPrompt":{"content":"x"}}"#),
                ("contextUsageEvent", r#"{"contextUsagePercentage":1.25}"#),
            ],
        )
        .unwrap();
        assert_eq!(out[0], StreamEvent::Start { id: None, model: None });
        assert!(matches!(out[1], StreamEvent::Usage(Usage { input_tokens: Some(5), .. })));
        assert_eq!(
            content(&out),
            vec![text("Hel"), text("lo"), StreamEvent::Finish(FinishReason::Stop), StreamEvent::End]
        );
        let StreamEvent::Usage(u) = &out[out.len() - 3] else { panic!("usage before finish: {out:?}") };
        // output "Hello" = 2 tokens; 2156 - 2 = 2154.
        assert_eq!(u.input_tokens, Some(2154));
        assert_eq!(u.output_tokens, Some(2));
        assert_eq!((u.cache_creation_input_tokens, u.cached_input_tokens), Some((153, 1925)).unzip());
    }

    #[test]
    fn tool_use_accumulates_and_maps_names_back() {
        let long = "x".repeat(70);
        let mut names = ToolNames::default();
        let short = names.shorten(&long);
        let p1 = format!(r#"{{"name":"{short}","toolUseId":"t1","input":"{{\"city\":"}}"#);
        let p2 = format!(r#"{{"name":"{short}","toolUseId":"t1","input":"\"Paris\"}}"}}"#);
        let p3 = format!(r#"{{"name":"{short}","toolUseId":"t1","stop":true}}"#);
        let out = run(
            TranslatorOptions { tool_names: names, ..TranslatorOptions::default() },
            &[("toolUseEvent", &p1), ("toolUseEvent", &p2), ("toolUseEvent", &p3)],
        )
        .unwrap();
        assert_eq!(
            content(&out),
            vec![
                StreamEvent::ToolCallStart { index: 0, id: "t1".into(), name: long },
                StreamEvent::ToolCallArgs { index: 0, delta: r#"{"city":"Paris"}"#.into() },
                StreamEvent::ToolCallEnd { index: 0 },
                StreamEvent::Finish(FinishReason::ToolCalls),
                StreamEvent::End,
            ]
        );
    }

    #[test]
    fn bare_tool_fragments_and_unstopped_tools_finish() {
        let out = run(
            TranslatorOptions::default(),
            &[
                ("toolUseEvent", r#"{"name":"a","toolUseId":"t1","input":"{\"k\":"}"#),
                ("toolUseEvent", r#"{"input":"1}"}"#),
                ("toolUseEvent", r#"{"stop":true}"#),
                ("toolUseEvent", r#"{"name":"b","toolUseId":"t2"}"#),
            ],
        )
        .unwrap();
        let c = content(&out);
        assert_eq!(c[1], StreamEvent::ToolCallArgs { index: 0, delta: r#"{"k":1}"#.into() });
        assert_eq!(c[3], StreamEvent::ToolCallStart { index: 1, id: "t2".into(), name: "b".into() });
        assert_eq!(c[4], StreamEvent::ToolCallArgs { index: 1, delta: "{}".into() });
    }

    #[test]
    fn exception_frame_is_an_error_not_an_end_turn() {
        let f = encode_frame(
            &[(":exception-type", "ThrottlingException"), (":message-type", "exception")],
            br#"{"message":"Too many requests"}"#,
        );
        let mut t = Translator::new(TranslatorOptions::default());
        let mut out = Vec::new();
        for f in frames(&event("assistantResponseEvent", r#"{"content":"a"}"#)) {
            t.frame(&f, &mut out).unwrap();
        }
        let err = t.frame(&frames(&f)[0], &mut out).unwrap_err();
        assert_eq!(
            err,
            KiroError::Upstream {
                kind: "ThrottlingException".into(),
                message: "Too many requests".into(),
                status: 429
            }
        );
        t.finish(&mut out).unwrap();
        assert!(!out.iter().any(|e| matches!(e, StreamEvent::Finish(_) | StreamEvent::End)), "{out:?}");
    }

    #[test]
    fn exception_kinds_and_error_frames() {
        let status = |f: Vec<u8>| {
            Translator::new(TranslatorOptions::default()).frame(&frames(&f)[0], &mut Vec::new()).unwrap_err()
        };
        let e = status(encode_frame(&[(":message-type", "exception")], br#"{"__type":"a#ValidationException"}"#));
        assert_eq!((e.status(), e.kind()), (400, Some("ValidationException")));
        let e = status(encode_frame(&[(":message-type", "exception"), (":exception-type", "InternalFailure")], b"x"));
        assert_eq!(e.status(), 502);
        let e =
            status(encode_frame(&[(":message-type", "error"), (":error-code", "Boom"), (":error-message", "m")], b""));
        assert_eq!(e, KiroError::Upstream { kind: "Boom".into(), message: "m".into(), status: 502 });
    }

    #[test]
    fn bracket_calls_in_text() {
        let out = run(
            TranslatorOptions::default(),
            &[
                ("assistantResponseEvent", r#"{"content":"ok [Call"}"#),
                ("assistantResponseEvent", r#"{"content":"ed get_weather with args: {\"city\": \"P]"}"#),
                ("assistantResponseEvent", r#"{"content":"aris\"}] done [x] [Called y"}"#),
            ],
        )
        .unwrap();
        let c = content(&out);
        assert_eq!(c[0], text("ok "));
        let StreamEvent::ToolCallStart { name, id, .. } = &c[1] else { panic!("{c:?}") };
        assert_eq!(name, "get_weather");
        assert!(id.starts_with("tooluse_"));
        assert_eq!(c[2], StreamEvent::ToolCallArgs { index: 0, delta: r#"{"city": "P]aris"}"#.into() });
        assert_eq!(c[4], text(" done [x] "));
        assert_eq!(c[5], text("[Called y"), "unfinished call flushed as text at the end");
        assert_eq!(c[6], StreamEvent::Finish(FinishReason::ToolCalls));
    }

    #[test]
    fn identical_calls_are_sent_once() {
        let out = run(
            TranslatorOptions::default(),
            &[
                ("toolUseEvent", r#"{"name":"f","toolUseId":"t1","input":"{\"a\":1}","stop":true}"#),
                ("assistantResponseEvent", r#"{"content":"[Called f with args: {\"a\": 1}]"}"#),
            ],
        )
        .unwrap();
        assert_eq!(out.iter().filter(|e| matches!(e, StreamEvent::ToolCallStart { .. })).count(), 1);
    }

    fn split_thinking(chunks: &[&str]) -> Vec<Piece> {
        let mut s = ThinkingSplitter::default();
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut out);
        }
        s.finish(&mut out);
        // Merge adjacent pieces of one kind: chunking must not change the content.
        let mut merged: Vec<Piece> = Vec::new();
        for p in out {
            match (merged.last_mut(), p) {
                (Some(Piece::Text(a)), Piece::Text(b)) | (Some(Piece::Thinking(a)), Piece::Thinking(b)) => {
                    a.push_str(&b)
                }
                (_, p) => merged.push(p),
            }
        }
        merged
    }

    #[test]
    fn thinking_tags_across_chunks() {
        let t = |s: &str| Piece::Text(s.into());
        let th = |s: &str| Piece::Thinking(s.into());
        let want = vec![t("pre "), th("deep"), t("answer <thinking>x")];
        assert_eq!(split_thinking(&["pre <thinking>deep</thinking>\n\nanswer <thinking>x"]), want);
        assert_eq!(split_thinking(&["pre <thi", "nking>de", "ep</", "thinking>", "\n", "\nanswer <thinking>x"]), want);
        assert_eq!(split_thinking(&["say `<thinking>` ok"]), vec![t("say `<thinking>` ok")]);
        assert_eq!(split_thinking(&["say \"", "<thinking>", "\" ok"]), vec![t("say \"<thinking>\" ok")]);
        assert_eq!(split_thinking(&["<thinking>a"]), vec![th("a")]);
        assert_eq!(split_thinking(&["<thinking>a</thinking>\nb"]), vec![th("a"), t("\nb")]);
    }

    #[test]
    fn thinking_mode_emits_thinking_deltas() {
        let out = run(
            TranslatorOptions { thinking: true, ..TranslatorOptions::default() },
            &[
                ("assistantResponseEvent", r#"{"content":"<thinking>plan"}"#),
                ("assistantResponseEvent", r#"{"content":"</thinking>\n\nHi"}"#),
            ],
        )
        .unwrap();
        assert_eq!(content(&out)[..2], [StreamEvent::ThinkingDelta("plan".into()), text("Hi")],);
    }

    #[test]
    fn bad_payloads_are_skipped() {
        let out = run(
            TranslatorOptions::default(),
            &[("assistantResponseEvent", "not json"), ("assistantResponseEvent", "[1]"), ("unknownEvent", "{}")],
        )
        .unwrap();
        assert_eq!(content(&out), vec![StreamEvent::Finish(FinishReason::Stop), StreamEvent::End]);
    }

    #[test]
    fn frames_without_event_type_are_inferred() {
        let mut t = Translator::new(TranslatorOptions::default());
        let mut out = Vec::new();
        t.frame(&frames(&encode_frame(&[], br#"{"content":"x"}"#))[0], &mut out).unwrap();
        assert!(out.contains(&text("x")));
    }
}
