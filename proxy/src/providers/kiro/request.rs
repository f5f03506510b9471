//! IR request → CodeWhisperer `generateAssistantResponse` body (`conversationState`).
//!
//! Follows the reference's `buildCodewhispererRequest` (spec §2.4) with its known bugs fixed:
//! - the system prompt is prepended to the first user turn *once*; a single user turn is the
//!   current message only, not also a history entry (reference §12.4);
//! - history strictly alternates user/assistant, starting with user and ending with assistant,
//!   with `Continue` fillers only where a turn is missing;
//! - tool names over 64 characters are shortened reversibly ([`short_tool_name`], mapped back
//!   through [`ToolNames`]), consistently in `tools` and in history `toolUses`;
//! - `$`-prefixed schema keys (`$schema`, `$id`, `$ref`, `$defs`, `$comment`, …) are removed: the
//!   fork's Go rewrite strips them after upstream 400s. `additionalProperties` is kept: no
//!   evidence the upstream refuses it ([`REFUSED_SCHEMA_KEY`] documents the rule);
//! - with no declared tools, history tool calls and results become plain text, because
//!   `toolUses` without `tools` is refused with 400 "Improperly formed request";
//! - a tool result is sent structured only after the assistant turn that made the call, and a
//!   call only before the turn that answers it; unpaired ones become text (the upstream's 400);
//! - tool results carry `status: "error"` for failed calls (the reference always says success).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::convert::ir::{ImageSource, Message, Part, Request, Role, Tool, ToolCall, ToolResult};
use crate::convert::tokens;

/// How many trailing messages keep their images (older ones get a placeholder).
pub const DEFAULT_RECENT_IMAGE_MESSAGES: usize = 5;
/// The upstream's limit on tool names.
pub const MAX_TOOL_NAME_LEN: usize = 64;
const SHORT_NAME_PREFIX_LEN: usize = 51;
const MAX_DESCRIPTION_CHARS: usize = 9216;
const DEFAULT_THINKING_BUDGET: u64 = 20_000;
const MAX_THINKING_BUDGET: u64 = 24_576;
const ORIGIN: &str = "AI_EDITOR";
const CONTINUE: &str = "Continue";
const TOOL_RESULTS_PROVIDED: &str = "Tool results provided.";
/// Schema keys starting with this are removed recursively (property names are kept).
pub const REFUSED_SCHEMA_KEY: &str = "$";

/// Per-call inputs that are not in the IR request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOptions {
    /// Social (Google/GitHub) accounts only.
    pub profile_arn: Option<String>,
    /// A fresh UUID v4 per call.
    pub conversation_id: String,
    pub recent_image_messages: usize,
}

impl BuildOptions {
    pub fn new(conversation_id: impl Into<String>) -> Self {
        Self {
            profile_arn: None,
            conversation_id: conversation_id.into(),
            recent_image_messages: DEFAULT_RECENT_IMAGE_MESSAGES,
        }
    }
}

/// The upstream body and what is needed to translate its answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Built {
    pub body: Value,
    pub tool_names: ToolNames,
}

/// Shortened tool name → the client's original.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolNames {
    originals: HashMap<String, String>,
}

impl ToolNames {
    /// The upstream name for `name`, remembering the mapping when it differs.
    pub fn shorten(&mut self, name: &str) -> String {
        let short = short_tool_name(name);
        if short != name {
            self.originals.insert(short.to_string(), name.to_string());
        }
        short.into_owned()
    }

    /// The client's name for an upstream tool name (itself when it was not shortened).
    pub fn original<'a>(&'a self, upstream: &'a str) -> &'a str {
        self.originals.get(upstream).map_or(upstream, String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.originals.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("request has no messages and no system prompt")]
    Empty,
}

/// CodeWhisperer model id for a client model name (spec §2.3); unknown models get Sonnet 4.5.
pub fn model_id(client_model: &str) -> &'static str {
    let m = client_model.to_ascii_lowercase().replace('.', "-");
    if m.starts_with("claude-haiku-4-5") {
        "claude-haiku-4.5"
    } else if m.starts_with("claude-opus-4-5") {
        "claude-opus-4.5"
    } else {
        "CLAUDE_SONNET_4_5_20250929_V1_0"
    }
}

/// `name` if it fits 64 bytes, else its first 51 bytes (on a char boundary), `_` and the first
/// 12 hex digits of its SHA-256 — the original project's scheme, stable across calls.
pub fn short_tool_name(name: &str) -> Cow<'_, str> {
    if name.len() <= MAX_TOOL_NAME_LEN {
        return Cow::Borrowed(name);
    }
    let digest = hex::encode(Sha256::digest(name.as_bytes()));
    let prefix = &name[..name.floor_char_boundary(SHORT_NAME_PREFIX_LEN)];
    Cow::Owned(format!("{prefix}_{}", &digest[..12]))
}

/// Input-token estimate for [`super::events::TranslatorOptions::input_tokens_estimate`]: the
/// gateway's shared approximation ([`tokens::count_request`]) plus the thinking prefix.
pub fn estimate_input_tokens(req: &Request) -> u64 {
    let prefix = thinking_budget(req).map_or(0, |b| tokens::text_tokens(&thinking_prefix(b)));
    tokens::count_request(req) + prefix
}

/// The system-prompt prefix that switches Kiro's emulated thinking on.
pub fn thinking_prefix(budget: u64) -> String {
    format!("<thinking_mode>enabled</thinking_mode><max_thinking_length>{budget}</max_thinking_length>")
}

/// Builds the `generateAssistantResponse` body for `req`.
pub fn build(req: &Request, opts: &BuildOptions) -> Result<Built, BuildError> {
    let mut names = ToolNames::default();
    let tools = encode_tools(&req.tools, &mut names);
    let (history, current) = conversation(req, opts, !tools.is_empty(), &mut names)?;
    let model = model_id(&req.model);
    let mut state = json!({
        "chatTriggerType": "MANUAL",
        "conversationId": opts.conversation_id,
        "currentMessage": {"userInputMessage": current.to_json(model, &tools)},
    });
    if !history.is_empty() {
        state["history"] = history.iter().map(|t| t.to_json(model)).collect();
    }
    let mut body = json!({"conversationState": state});
    if let Some(arn) = &opts.profile_arn {
        body["profileArn"] = Value::String(arn.clone());
    }
    Ok(Built { body, tool_names: names })
}

/// The alternating history and the current user turn.
fn conversation(
    req: &Request,
    opts: &BuildOptions,
    structured_tools: bool,
    names: &mut ToolNames,
) -> Result<(Vec<Turn>, UserTurn), BuildError> {
    let messages = prepare_messages(&req.messages);
    let ctx = TurnCtx { structured_tools, total: messages.len(), recent: opts.recent_image_messages };
    let mut turns: Vec<Turn> =
        messages.iter().enumerate().map(|(i, m)| Turn::from_message(m, i, &ctx, names)).collect();
    if let Some(system) = system_text(req) {
        prepend_system(&mut turns, system);
    }
    // A trailing assistant turn goes to history; the current message is then `Continue`.
    let current = match turns.pop() {
        Some(Turn::User(u)) => u,
        Some(assistant) => {
            turns.push(assistant);
            UserTurn::text(CONTINUE)
        }
        None => return Err(BuildError::Empty),
    };
    let mut turns = alternate(turns);
    turns.push(Turn::User(current));
    pair_tool_calls(&mut turns);
    match turns.pop() {
        Some(Turn::User(current)) => Ok((turns, current)),
        _ => Err(BuildError::Empty),
    }
}

/// The flattened system prompt with the thinking prefix (spec §2.4 step 1).
fn system_text(req: &Request) -> Option<String> {
    let system = req.system.iter().filter(|s| !s.is_empty()).cloned().collect::<Vec<_>>().join("\n");
    let Some(budget) = thinking_budget(req) else { return (!system.is_empty()).then_some(system) };
    let prefix = thinking_prefix(budget);
    Some(if system.is_empty() {
        prefix
    } else if system.contains("<thinking_mode>") || system.contains("<max_thinking_length>") {
        system
    } else {
        format!("{prefix}\n{system}")
    })
}

/// The thinking budget when thinking is on: the client's (or its effort level's) budget, 20,000
/// when it gave none, at most 24,576.
fn thinking_budget(req: &Request) -> Option<u64> {
    let r = req.reasoning?;
    let budget = match r.budget_tokens {
        Some(b) if b > 0 => b,
        None if r.effort.is_some() => r.budget(),
        _ => DEFAULT_THINKING_BUDGET,
    };
    Some(budget.min(MAX_THINKING_BUDGET))
}

/// Drops a trailing `{` assistant prefill and merges adjacent same-role messages, separating
/// merged text with a newline.
fn prepare_messages(messages: &[Message]) -> Vec<Message> {
    let mut msgs = messages.to_vec();
    if let Some(last) = msgs.last() {
        if last.role == Role::Assistant && matches!(last.parts.first(), Some(Part::Text(t)) if t.trim() == "{") {
            msgs.pop();
        }
    }
    let mut out: Vec<Message> = Vec::with_capacity(msgs.len());
    for m in msgs {
        match out.last_mut() {
            Some(prev) if prev.role == m.role => {
                prev.parts.push(Part::Text("\n".into()));
                prev.parts.extend(m.parts);
            }
            _ => out.push(m),
        }
    }
    out
}

/// Puts the system prompt in front of the first user turn, or in a user turn of its own.
fn prepend_system(turns: &mut Vec<Turn>, system: String) {
    match turns.first_mut() {
        Some(Turn::User(u)) if u.content.is_empty() => u.content = system,
        Some(Turn::User(u)) => u.content = format!("{system}\n\n{}", u.content),
        _ => turns.insert(0, Turn::User(UserTurn::text(&system))),
    }
}

/// Inserts `Continue` turns so that history runs user, assistant, user, …, assistant.
fn alternate(turns: Vec<Turn>) -> Vec<Turn> {
    let mut out = Vec::with_capacity(turns.len() + 2);
    for t in turns {
        let expect_user = out.len() % 2 == 0;
        match (&t, expect_user) {
            (Turn::Assistant(_), true) => out.push(Turn::User(UserTurn::text(CONTINUE))),
            (Turn::User(_), false) => out.push(Turn::Assistant(AssistantTurn::text(CONTINUE))),
            _ => {}
        }
        out.push(t);
    }
    if out.len() % 2 == 1 {
        out.push(Turn::Assistant(AssistantTurn::text(CONTINUE)));
    }
    out
}

/// Keeps a tool result only if the assistant turn just before it made that call, and a call
/// only if the user turn just after it answers it; the others become text, since the upstream
/// refuses unpaired ones with 400 "Improperly formed request". `turns` alternates from user.
fn pair_tool_calls(turns: &mut [Turn]) {
    let ids: Vec<HashSet<String>> = turns.iter().map(Turn::tool_ids).collect();
    let none = HashSet::new();
    for (i, t) in turns.iter_mut().enumerate() {
        match t {
            Turn::User(u) => u.keep_results(i.checked_sub(1).map_or(&none, |p| &ids[p])),
            Turn::Assistant(a) => a.keep_uses(ids.get(i + 1).unwrap_or(&none)),
        }
    }
}

fn tool_use_id(v: &Value) -> &str {
    v.get("toolUseId").and_then(Value::as_str).unwrap_or_default()
}

struct TurnCtx {
    structured_tools: bool,
    total: usize,
    recent: usize,
}

enum Turn {
    User(UserTurn),
    Assistant(AssistantTurn),
}

#[derive(Default)]
struct UserTurn {
    content: String,
    images: Vec<Value>,
    tool_results: Vec<Value>,
}

#[derive(Default)]
struct AssistantTurn {
    content: String,
    tool_uses: Vec<Value>,
}

impl Turn {
    fn from_message(m: &Message, index: usize, ctx: &TurnCtx, names: &mut ToolNames) -> Self {
        match m.role {
            Role::User => {
                // The last message becomes the current one, which always keeps its images.
                let keep_images = index + ctx.recent >= ctx.total || index + 1 == ctx.total;
                Turn::User(UserTurn::from_parts(&m.parts, keep_images, ctx.structured_tools))
            }
            Role::Assistant => Turn::Assistant(AssistantTurn::from_parts(&m.parts, ctx.structured_tools, names)),
        }
    }

    /// Ids of the tool results (user) or tool calls (assistant) of this turn.
    fn tool_ids(&self) -> HashSet<String> {
        let items = match self {
            Turn::User(u) => &u.tool_results,
            Turn::Assistant(a) => &a.tool_uses,
        };
        items.iter().map(|v| tool_use_id(v).to_string()).collect()
    }

    fn to_json(&self, model: &str) -> Value {
        match self {
            Turn::User(u) => json!({"userInputMessage": u.to_json(model, &[])}),
            Turn::Assistant(a) => a.to_json(),
        }
    }
}

impl UserTurn {
    fn text(s: &str) -> Self {
        Self { content: s.to_string(), ..Self::default() }
    }

    fn from_parts(parts: &[Part], keep_images: bool, structured_tools: bool) -> Self {
        let mut turn = Self::default();
        let mut seen = HashSet::new();
        let mut omitted = 0usize;
        for p in parts {
            match p {
                Part::Text(t) => turn.content.push_str(t),
                Part::Image(ImageSource::Base64 { media_type, data }) if keep_images => {
                    let format = media_type.rsplit('/').next().unwrap_or(media_type);
                    turn.images.push(json!({"format": format, "source": {"bytes": data}}));
                }
                // Remote images cannot be inlined by a pure codec; they count as omitted.
                Part::Image(_) => omitted += 1,
                Part::ToolResult(r) if !seen.insert(r.call_id.as_str()) => {}
                Part::ToolResult(r) if structured_tools => turn.tool_results.push(tool_result_json(r)),
                Part::ToolResult(r) => push_line(&mut turn.content, &tool_result_text(r)),
                Part::Thinking { .. } | Part::ToolCall(_) => {}
            }
        }
        if omitted > 0 {
            push_line(&mut turn.content, &format!("[此消息包含 {omitted} 张图片，已在历史记录中省略]"));
        }
        turn
    }

    fn keep_results(&mut self, calls: &HashSet<String>) {
        let (kept, orphans): (Vec<Value>, Vec<Value>) =
            std::mem::take(&mut self.tool_results).into_iter().partition(|r| calls.contains(tool_use_id(r)));
        self.tool_results = kept;
        for r in orphans {
            let text = r.pointer("/content/0/text").and_then(Value::as_str).unwrap_or_default();
            let status = r.get("status").and_then(Value::as_str).unwrap_or("success");
            push_line(&mut self.content, &format!("[Tool result for {} ({status})]\n{text}", tool_use_id(&r)));
        }
    }

    fn to_json(&self, model: &str, tools: &[Value]) -> Value {
        let content = match (self.content.is_empty(), self.tool_results.is_empty()) {
            (false, _) => self.content.as_str(),
            (true, false) => TOOL_RESULTS_PROVIDED,
            (true, true) => CONTINUE,
        };
        let mut m = json!({"content": content, "modelId": model, "origin": ORIGIN});
        if !self.images.is_empty() {
            m["images"] = Value::Array(self.images.clone());
        }
        let mut ctx = Map::new();
        if !self.tool_results.is_empty() {
            ctx.insert("toolResults".into(), Value::Array(self.tool_results.clone()));
        }
        if !tools.is_empty() {
            ctx.insert("tools".into(), Value::Array(tools.to_vec()));
        }
        if !ctx.is_empty() {
            m["userInputMessageContext"] = Value::Object(ctx);
        }
        m
    }
}

impl AssistantTurn {
    fn text(s: &str) -> Self {
        Self { content: s.to_string(), ..Self::default() }
    }

    fn from_parts(parts: &[Part], structured_tools: bool, names: &mut ToolNames) -> Self {
        let mut thinking = String::new();
        let mut turn = Self::default();
        for p in parts {
            match p {
                Part::Text(t) => turn.content.push_str(t),
                Part::Thinking { text, .. } => thinking.push_str(text),
                Part::ToolCall(tc) if structured_tools => turn.tool_uses.push(tool_use_json(tc, names)),
                Part::ToolCall(tc) => push_line(&mut turn.content, &tool_call_text(tc)),
                Part::Image(_) | Part::ToolResult(_) => {}
            }
        }
        if !thinking.is_empty() {
            turn.content = format!("<thinking>{thinking}</thinking>\n\n{}", turn.content);
        }
        turn
    }

    fn keep_uses(&mut self, results: &HashSet<String>) {
        let (kept, orphans): (Vec<Value>, Vec<Value>) =
            std::mem::take(&mut self.tool_uses).into_iter().partition(|u| results.contains(tool_use_id(u)));
        self.tool_uses = kept;
        for u in orphans {
            let name = u.get("name").and_then(Value::as_str).unwrap_or_default();
            let input = u.get("input").map(Value::to_string).unwrap_or_default();
            push_line(&mut self.content, &format!("[Tool call {name} ({}) with input: {input}]", tool_use_id(&u)));
        }
    }

    fn to_json(&self) -> Value {
        let content = if self.content.is_empty() && self.tool_uses.is_empty() { CONTINUE } else { &self.content };
        let mut m = json!({"content": content});
        if !self.tool_uses.is_empty() {
            m["toolUses"] = Value::Array(self.tool_uses.clone());
        }
        json!({"assistantResponseMessage": m})
    }
}

fn push_line(content: &mut String, line: &str) {
    if !content.is_empty() {
        content.push('\n');
    }
    content.push_str(line);
}

fn tool_result_json(r: &ToolResult) -> Value {
    json!({
        "content": [{"text": r.text()}],
        "status": if r.is_error { "error" } else { "success" },
        "toolUseId": r.call_id,
    })
}

fn tool_use_json(tc: &ToolCall, names: &mut ToolNames) -> Value {
    json!({"input": arguments(&tc.arguments), "name": names.shorten(&tc.name), "toolUseId": tc.id})
}

fn tool_call_text(tc: &ToolCall) -> String {
    format!("[Tool call {} ({}) with input: {}]", tc.name, tc.id, arguments(&tc.arguments))
}

fn tool_result_text(r: &ToolResult) -> String {
    let status = if r.is_error { "error" } else { "success" };
    format!("[Tool result for {} ({status})]\n{}", r.call_id, r.text())
}

/// Tool-call argument text as a JSON object; empty or broken text becomes `{}`.
fn arguments(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => v,
        _ => Value::Object(Map::new()),
    }
}

/// `toolSpecification`s for the declared tools, without hosted web search.
fn encode_tools(tools: &[Tool], names: &mut ToolNames) -> Vec<Value> {
    tools
        .iter()
        .filter(|t| !matches!(t.name.to_ascii_lowercase().as_str(), "web_search" | "websearch"))
        .map(|t| {
            json!({"toolSpecification": {
                "name": names.shorten(&t.name),
                "description": cut_description(t.description.as_deref().unwrap_or_default()),
                "inputSchema": {"json": clean_schema_root(&t.parameters)},
            }})
        })
        .collect()
}

fn cut_description(d: &str) -> Cow<'_, str> {
    match d.char_indices().nth(MAX_DESCRIPTION_CHARS) {
        Some((at, _)) => Cow::Owned(format!("{}...", &d[..at])),
        None => Cow::Borrowed(d),
    }
}

fn clean_schema_root(schema: &Value) -> Value {
    match schema {
        Value::Object(_) => clean_schema(schema),
        _ => json!({"type": "object", "properties": {}}),
    }
}

/// Removes keys starting with [`REFUSED_SCHEMA_KEY`], keeping every property name.
fn clean_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with(REFUSED_SCHEMA_KEY))
                .map(|(k, v)| {
                    let v = match (k.as_str(), v) {
                        ("properties", Value::Object(props)) => {
                            Value::Object(props.iter().map(|(n, s)| (n.clone(), clean_schema(s))).collect())
                        }
                        _ => clean_schema(v),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(clean_schema).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::ir::Reasoning;

    fn user(parts: Vec<Part>) -> Message {
        Message { role: Role::User, parts }
    }

    fn assistant(parts: Vec<Part>) -> Message {
        Message { role: Role::Assistant, parts }
    }

    fn text(s: &str) -> Part {
        Part::Text(s.into())
    }

    fn req(messages: Vec<Message>) -> Request {
        Request { model: "claude-sonnet-4-5".into(), messages, ..Request::default() }
    }

    fn body(r: &Request) -> Value {
        build(r, &BuildOptions::new("conv-1")).unwrap().body
    }

    fn weather_tool(name: &str) -> Tool {
        Tool { name: name.into(), description: Some("Weather".into()), parameters: json!({"type": "object"}) }
    }

    fn call(id: &str, name: &str) -> Part {
        Part::ToolCall(ToolCall { id: id.into(), name: name.into(), arguments: r#"{"city":"Paris"}"#.into() })
    }

    fn result(id: &str, is_error: bool) -> Part {
        Part::ToolResult(ToolResult { call_id: id.into(), name: None, content: vec![text("18C")], is_error })
    }

    #[test]
    fn model_ids() {
        assert_eq!(model_id("claude-haiku-4-5"), "claude-haiku-4.5");
        assert_eq!(model_id("claude-haiku-4-5-20251001"), "claude-haiku-4.5");
        assert_eq!(model_id("claude-opus-4-5-20251101"), "claude-opus-4.5");
        assert_eq!(model_id("claude-sonnet-4-5-20250929"), "CLAUDE_SONNET_4_5_20250929_V1_0");
        assert_eq!(model_id("claude-3-7-sonnet-20250219"), "CLAUDE_SONNET_4_5_20250929_V1_0");
    }

    #[test]
    fn system_and_single_user_turn_are_sent_once() {
        let mut r = req(vec![user(vec![text("Hi")])]);
        r.system = vec!["Be brief".into()];
        let b = body(&r);
        let s = &b["conversationState"];
        assert_eq!(s["chatTriggerType"], "MANUAL");
        assert_eq!(s["conversationId"], "conv-1");
        assert!(s.get("history").is_none(), "no duplicate history entry: {s}");
        let cur = &s["currentMessage"]["userInputMessage"];
        assert_eq!(cur["content"], "Be brief\n\nHi");
        assert_eq!(cur["modelId"], "CLAUDE_SONNET_4_5_20250929_V1_0");
        assert_eq!(cur["origin"], "AI_EDITOR");
        assert!(cur.get("userInputMessageContext").is_none());
        assert!(b.get("profileArn").is_none());
    }

    #[test]
    fn profile_arn_only_when_given() {
        let mut o = BuildOptions::new("c");
        o.profile_arn = Some("arn:aws:codewhisperer:us-east-1:0:profile/X".into());
        let b = build(&req(vec![user(vec![text("Hi")])]), &o).unwrap().body;
        assert_eq!(b["profileArn"], "arn:aws:codewhisperer:us-east-1:0:profile/X");
    }

    #[test]
    fn history_alternates_and_merges() {
        let r = req(vec![
            assistant(vec![text("hello")]),
            user(vec![text("a")]),
            user(vec![text("b")]),
            assistant(vec![text("c")]),
            assistant(vec![text("d")]),
        ]);
        let s = &body(&r)["conversationState"];
        let h = s["history"].as_array().unwrap();
        let contents: Vec<&str> = h
            .iter()
            .map(|e| {
                e.pointer("/userInputMessage/content")
                    .or_else(|| e.pointer("/assistantResponseMessage/content"))
                    .and_then(Value::as_str)
                    .unwrap()
            })
            .collect();
        assert_eq!(contents, ["Continue", "hello", "a\nb", "c\nd"]);
        assert!(h[0].get("userInputMessage").is_some());
        assert!(h[3].get("assistantResponseMessage").is_some());
        assert_eq!(s["currentMessage"]["userInputMessage"]["content"], "Continue");
    }

    #[test]
    fn system_before_an_assistant_first_turn_is_its_own_user_turn() {
        let mut r = req(vec![assistant(vec![text("hello")]), user(vec![text("q")])]);
        r.system = vec!["S".into()];
        let s = &body(&r)["conversationState"];
        assert_eq!(s["history"][0]["userInputMessage"]["content"], "S");
        assert_eq!(s["history"][1]["assistantResponseMessage"]["content"], "hello");
        assert_eq!(s["currentMessage"]["userInputMessage"]["content"], "q");
    }

    #[test]
    fn brace_prefill_is_dropped() {
        let r = req(vec![user(vec![text("q")]), assistant(vec![text("{")])]);
        let s = &body(&r)["conversationState"];
        assert!(s.get("history").is_none());
        assert_eq!(s["currentMessage"]["userInputMessage"]["content"], "q");
    }

    #[test]
    fn thinking_prefix_budgets() {
        let mut r = req(vec![user(vec![text("q")])]);
        let content = |r: &Request| {
            body(r)["conversationState"]["currentMessage"]["userInputMessage"]["content"].as_str().unwrap().to_string()
        };
        r.reasoning = Some(Reasoning { effort: None, budget_tokens: Some(50_000) });
        assert_eq!(content(&r), format!("{}\n\nq", thinking_prefix(24_576)));
        r.reasoning = Some(Reasoning { effort: None, budget_tokens: None });
        assert_eq!(content(&r), format!("{}\n\nq", thinking_prefix(20_000)));
        r.reasoning = Some(Reasoning { effort: None, budget_tokens: Some(2048) });
        r.system = vec!["S".into()];
        assert_eq!(content(&r), format!("{}\nS\n\nq", thinking_prefix(2048)));
        r.system = vec!["<thinking_mode>enabled</thinking_mode> S".into()];
        assert_eq!(content(&r), "<thinking_mode>enabled</thinking_mode> S\n\nq");
    }

    #[test]
    fn tools_results_and_uses() {
        let long = "t".repeat(80);
        let mut r = req(vec![
            user(vec![text("weather?")]),
            assistant(vec![Part::Thinking { text: "hm".into(), signature: None }, call("tu_1", &long)]),
            user(vec![result("tu_1", false), result("tu_1", false)]),
        ]);
        r.tools = vec![
            weather_tool(&long),
            Tool { name: "WebSearch".into(), description: None, parameters: Value::Null },
            Tool {
                name: "f".into(),
                description: Some("é".repeat(MAX_DESCRIPTION_CHARS + 1)),
                parameters: json!({"$schema": "x", "type": "object", "additionalProperties": false,
                    "properties": {"$ref": {"type": "string", "$comment": "c"}}}),
            },
        ];
        let built = build(&r, &BuildOptions::new("c")).unwrap();
        let short = short_tool_name(&long).into_owned();
        assert_eq!(short.len(), 64);
        assert!(short.starts_with(&"t".repeat(51)));
        assert_eq!(built.tool_names.original(&short), long);
        assert_eq!(built.tool_names.original("f"), "f");
        let s = &built.body["conversationState"];
        let a = &s["history"][1]["assistantResponseMessage"];
        assert_eq!(a["content"], "<thinking>hm</thinking>\n\n");
        assert_eq!(a["toolUses"], json!([{"input": {"city": "Paris"}, "name": short, "toolUseId": "tu_1"}]));
        let cur = &s["currentMessage"]["userInputMessage"];
        assert_eq!(cur["content"], "Tool results provided.");
        let ctx = &cur["userInputMessageContext"];
        assert_eq!(
            ctx["toolResults"],
            json!([{"content": [{"text": "18C"}], "status": "success", "toolUseId": "tu_1"}])
        );
        let tools = ctx["tools"].as_array().unwrap();
        assert_eq!(tools.len(), 2, "web search dropped");
        assert_eq!(tools[0]["toolSpecification"]["name"], short.as_str());
        let f = &tools[1]["toolSpecification"];
        assert_eq!(f["description"].as_str().unwrap().chars().count(), MAX_DESCRIPTION_CHARS + 3);
        assert_eq!(
            f["inputSchema"]["json"],
            json!({"type": "object", "additionalProperties": false, "properties": {"$ref": {"type": "string"}}})
        );
    }

    #[test]
    fn error_results_carry_error_status() {
        let mut r = req(vec![user(vec![text("q")]), assistant(vec![call("a", "w")]), user(vec![result("a", true)])]);
        r.tools = vec![weather_tool("w")];
        let s = &body(&r)["conversationState"];
        assert_eq!(
            s["currentMessage"]["userInputMessage"]["userInputMessageContext"]["toolResults"][0]["status"],
            "error"
        );
    }

    #[test]
    fn unpaired_tool_calls_and_results_become_text() {
        let mut r = req(vec![
            user(vec![text("q"), result("ghost", false)]),
            assistant(vec![text("t"), call("a", "w"), call("b", "w2")]),
            user(vec![result("a", false)]),
            assistant(vec![call("c", "w")]),
        ]);
        r.tools = vec![weather_tool("w"), weather_tool("w2")];
        let s = &body(&r)["conversationState"];
        let h = &s["history"];
        assert!(h[0]["userInputMessage"].get("userInputMessageContext").is_none());
        assert_eq!(h[0]["userInputMessage"]["content"], "q\n[Tool result for ghost (success)]\n18C");
        let a = &h[1]["assistantResponseMessage"];
        assert_eq!(a["toolUses"].as_array().unwrap().len(), 1);
        assert_eq!(a["toolUses"][0]["toolUseId"], "a");
        assert_eq!(
            a["content"],
            r#"t
[Tool call w2 (b) with input: {"city":"Paris"}]"#
        );
        assert_eq!(h[2]["userInputMessage"]["userInputMessageContext"]["toolResults"][0]["toolUseId"], "a");
        let last = &h[3]["assistantResponseMessage"];
        assert!(last.get("toolUses").is_none(), "the current message answers no call: {last}");
        assert_eq!(s["currentMessage"]["userInputMessage"]["content"], "Continue");
    }

    #[test]
    fn input_estimate_counts_the_thinking_prefix() {
        let mut r = req(vec![user(vec![text("abcd")])]);
        let plain = estimate_input_tokens(&r);
        r.reasoning = Some(Reasoning::default());
        assert_eq!(estimate_input_tokens(&r), plain + tokens::text_tokens(&thinking_prefix(20_000)));
    }

    #[test]
    fn tool_history_without_tools_becomes_text() {
        let r = req(vec![user(vec![text("q")]), assistant(vec![call("a", "w")]), user(vec![result("a", false)])]);
        let s = &body(&r)["conversationState"];
        let a = &s["history"][1]["assistantResponseMessage"];
        assert!(a.get("toolUses").is_none());
        assert_eq!(a["content"], r#"[Tool call w (a) with input: {"city":"Paris"}]"#);
        let cur = &s["currentMessage"]["userInputMessage"];
        assert!(cur.get("userInputMessageContext").is_none());
        assert_eq!(cur["content"], "[Tool result for a (success)]\n18C");
    }

    #[test]
    fn only_recent_messages_keep_images() {
        let img = || Part::Image(ImageSource::Base64 { media_type: "image/png".into(), data: "AA==".into() });
        let mut msgs = vec![user(vec![text("old"), img(), img()])];
        for i in 0..3 {
            msgs.push(assistant(vec![text(&format!("a{i}"))]));
            msgs.push(user(vec![text(&format!("u{i}")), img()]));
        }
        let s = &body(&req(msgs))["conversationState"];
        assert_eq!(s["history"][0]["userInputMessage"]["content"], "old\n[此消息包含 2 张图片，已在历史记录中省略]");
        assert!(s["history"][0]["userInputMessage"].get("images").is_none());
        assert_eq!(
            s["history"][2]["userInputMessage"]["images"],
            json!([{"format": "png", "source": {"bytes": "AA=="}}])
        );
        assert_eq!(s["currentMessage"]["userInputMessage"]["images"][0]["format"], "png");
    }

    #[test]
    fn empty_request_is_an_error() {
        assert_eq!(build(&req(vec![]), &BuildOptions::new("c")), Err(BuildError::Empty));
        let mut r = req(vec![]);
        r.system = vec!["S".into()];
        assert_eq!(body(&r)["conversationState"]["currentMessage"]["userInputMessage"]["content"], "S");
    }
}
