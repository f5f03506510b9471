//! Protocol-neutral intermediate representation.
//!
//! Every protocol has one decoder into these types and one encoder out of them, so N protocols
//! need 2·N converters instead of N·(N-1) pairwise ones (the TensorZero approach).

use serde_json::Value;

/// A normalised generation request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Request {
    pub model: String,
    /// System / developer prompts, in order.
    pub system: Vec<String>,
    pub messages: Vec<Message>,
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
    pub parallel_tool_calls: Option<bool>,
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u64>,
    pub stop: Vec<String>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    pub seed: Option<i64>,
    /// `Some` when the client asked for thinking / reasoning.
    pub reasoning: Option<Reasoning>,
    pub response_format: Option<ResponseFormat>,
    pub stream: bool,
    pub user: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: Role,
    pub parts: Vec<Part>,
}

/// One piece of message or response content.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    Image(ImageSource),
    Thinking {
        text: String,
        /// Anthropic signature / Gemini thought signature; required to replay thinking to those.
        signature: Option<String>,
    },
    ToolCall(ToolCall),
    ToolResult(ToolResult),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    Base64 { media_type: String, data: String },
    Url(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// JSON text of the arguments object, as OpenAI carries it.
    pub arguments: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolResult {
    pub call_id: String,
    /// Tool name when the protocol carries it (Gemini needs it, others only the id).
    pub name: Option<String>,
    /// Text and image parts.
    pub content: Vec<Part>,
    pub is_error: bool,
}

impl ToolResult {
    /// The text parts joined, for protocols whose tool results are plain strings.
    pub fn text(&self) -> String {
        join_text(&self.content)
    }
}

/// Concatenates the text parts of `parts`.
pub fn join_text(parts: &[Part]) -> String {
    parts
        .iter()
        .filter_map(|p| match p {
            Part::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("")
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    /// JSON schema of the arguments object.
    pub parameters: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    Auto,
    None,
    /// Must call some tool (OpenAI `required`, Anthropic `any`, Gemini `ANY`).
    Required,
    /// Must call this tool.
    Tool(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum ResponseFormat {
    JsonObject,
    JsonSchema { name: String, schema: Value, strict: Option<bool> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effort {
    Minimal,
    Low,
    Medium,
    High,
}

impl Effort {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "minimal" => Some(Self::Minimal),
            "low" => Some(Self::Low),
            "medium" => Some(Self::Medium),
            "high" => Some(Self::High),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minimal => "minimal",
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }
}

/// Thinking request. Protocols speak either an effort level (OpenAI) or a token budget
/// (Anthropic, Gemini); the other is derived with the fixed table below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reasoning {
    pub effort: Option<Effort>,
    pub budget_tokens: Option<u64>,
}

impl Reasoning {
    /// Token budget; from the effort level if only that was given (medium by default).
    pub fn budget(&self) -> u64 {
        if let Some(b) = self.budget_tokens {
            return b;
        }
        match self.effort.unwrap_or(Effort::Medium) {
            Effort::Minimal => 1024,
            Effort::Low => 4096,
            Effort::Medium => 16384,
            Effort::High => 32768,
        }
    }

    /// Effort level; from the budget if only that was given (medium by default).
    pub fn effort(&self) -> Effort {
        if let Some(e) = self.effort {
            return e;
        }
        match self.budget_tokens {
            Some(b) if b <= 1024 => Effort::Minimal,
            Some(b) if b <= 4096 => Effort::Low,
            Some(b) if b <= 16384 => Effort::Medium,
            Some(_) => Effort::High,
            None => Effort::Medium,
        }
    }
}

/// Why generation stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    /// A client stop sequence matched (Anthropic reports which one).
    StopSequence(Option<String>),
    Length,
    ToolCalls,
    ContentFilter,
}

/// Token usage. `input_tokens` is the *total* prompt size including cached and cache-write
/// tokens (OpenAI and Gemini semantics); `output_tokens` includes reasoning tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    /// Prompt tokens served from cache (subset of `input_tokens`).
    pub cached_input_tokens: Option<u64>,
    /// Prompt tokens written to cache (Anthropic; subset of `input_tokens`).
    pub cache_creation_input_tokens: Option<u64>,
    /// Reasoning tokens (subset of `output_tokens`).
    pub reasoning_tokens: Option<u64>,
}

impl Usage {
    /// Overlays the fields `newer` knows; streams report usage piecewise.
    pub fn merge(&mut self, newer: &Usage) {
        self.input_tokens = newer.input_tokens.or(self.input_tokens);
        self.output_tokens = newer.output_tokens.or(self.output_tokens);
        self.cached_input_tokens = newer.cached_input_tokens.or(self.cached_input_tokens);
        self.cache_creation_input_tokens = newer.cache_creation_input_tokens.or(self.cache_creation_input_tokens);
        self.reasoning_tokens = newer.reasoning_tokens.or(self.reasoning_tokens);
    }

    pub fn is_empty(&self) -> bool {
        *self == Usage::default()
    }

    pub fn input(&self) -> u64 {
        self.input_tokens.unwrap_or(0)
    }

    pub fn output(&self) -> u64 {
        self.output_tokens.unwrap_or(0)
    }

    pub fn total(&self) -> u64 {
        self.input().saturating_add(self.output())
    }
}

/// A normalised unary response.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Response {
    pub id: String,
    pub model: String,
    /// Unix seconds, when the upstream reported it.
    pub created: Option<i64>,
    /// Text, thinking and tool-call parts in output order.
    pub parts: Vec<Part>,
    pub finish: Option<FinishReason>,
    pub usage: Usage,
}

impl Response {
    pub fn has_tool_calls(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::ToolCall(_)))
    }
}

/// One incremental stream event. Tool calls are numbered in order of appearance (`index`),
/// independent of any protocol's block or output index.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    Start {
        id: Option<String>,
        model: Option<String>,
    },
    TextDelta(String),
    ThinkingDelta(String),
    ThinkingSignature(String),
    ToolCallStart {
        index: usize,
        id: String,
        name: String,
    },
    ToolCallArgs {
        index: usize,
        delta: String,
    },
    ToolCallEnd {
        index: usize,
    },
    Usage(Usage),
    Finish(FinishReason),
    /// The upstream reported an error inside the stream.
    Error {
        status: u16,
        message: String,
    },
    /// The upstream's own terminator was seen.
    End,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasoning_effort_and_budget_round_trip() {
        for e in [Effort::Minimal, Effort::Low, Effort::Medium, Effort::High] {
            let from_effort = Reasoning { effort: Some(e), budget_tokens: None };
            let from_budget = Reasoning { effort: None, budget_tokens: Some(from_effort.budget()) };
            assert_eq!(from_budget.effort(), e);
        }
    }

    #[test]
    fn usage_merge_keeps_known_fields() {
        let mut u = Usage { input_tokens: Some(10), cached_input_tokens: Some(4), ..Usage::default() };
        u.merge(&Usage { output_tokens: Some(7), ..Usage::default() });
        assert_eq!(u.input_tokens, Some(10));
        assert_eq!(u.cached_input_tokens, Some(4));
        assert_eq!(u.output_tokens, Some(7));
        assert_eq!(u.total(), 17);
    }
}
