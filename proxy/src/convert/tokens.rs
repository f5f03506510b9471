//! Approximate prompt token counting for `/v1/messages/count_tokens` (answered locally, never
//! upstream).
//!
//! How it approximates (no model tokenizer is bundled):
//! - ASCII text: 1 token per 4 characters (rounded up per text run), the usual figure for
//!   English and code with BPE tokenizers;
//! - other characters (CJK, emoji, …): 1 token each, since those tokenizers rarely merge them;
//! - each message: +3 tokens of role/framing overhead, the system prompt likewise;
//! - each image: a flat 1,600 tokens, Anthropic's cost of a maximum-size (~1.15 MP) image,
//!   because the image is not decoded to read its size;
//! - tools: their name, description and JSON schema as text, +10 per tool, plus 346 tokens once
//!   for the tool-use system prompt Anthropic adds;
//! - tool calls and results: name, argument JSON and result text.
//!
//! Expect roughly ±20 % against the real count for text-heavy prompts.

use serde_json::Value;

use super::error::ConvertError;
use super::ir::{ImageSource, Part, Request};
use super::json::to_text;
use super::protocol::Protocol;

const MESSAGE_OVERHEAD: u64 = 3;
const IMAGE_TOKENS: u64 = 1600;
const TOOL_OVERHEAD: u64 = 10;
const TOOL_SYSTEM_PROMPT: u64 = 346;

/// Approximate input tokens of a request body in `protocol`'s format.
pub fn count_tokens(protocol: Protocol, body: &Value) -> Result<u64, ConvertError> {
    let req = super::decode_request(protocol, body)?;
    Ok(count_request(&req))
}

/// Approximate input tokens of a decoded request.
pub fn count_request(req: &Request) -> u64 {
    let mut n = 0u64;
    for s in &req.system {
        n += MESSAGE_OVERHEAD + text_tokens(s);
    }
    for m in &req.messages {
        n += MESSAGE_OVERHEAD + m.parts.iter().map(part_tokens).sum::<u64>();
    }
    if !req.tools.is_empty() {
        n += TOOL_SYSTEM_PROMPT;
    }
    for t in &req.tools {
        n += TOOL_OVERHEAD + text_tokens(&t.name) + text_tokens(&to_text(&t.parameters));
        n += t.description.as_deref().map_or(0, text_tokens);
    }
    n
}

fn part_tokens(p: &Part) -> u64 {
    match p {
        Part::Text(t) | Part::Thinking { text: t, .. } => text_tokens(t),
        Part::Image(ImageSource::Base64 { .. } | ImageSource::Url(_)) => IMAGE_TOKENS,
        Part::ToolCall(tc) => text_tokens(&tc.name) + text_tokens(&tc.arguments),
        Part::ToolResult(r) => r.content.iter().map(part_tokens).sum(),
    }
}

/// Tokens of one text: ASCII runs at 4 characters per token, other characters 1 each.
pub fn text_tokens(s: &str) -> u64 {
    let mut tokens = 0u64;
    let mut run = 0u64;
    for c in s.chars() {
        if c.is_ascii() {
            run += 1;
        } else {
            tokens += run.div_ceil(4) + 1;
            run = 0;
        }
    }
    tokens + run.div_ceil(4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_estimates() {
        assert_eq!(text_tokens(""), 0);
        assert_eq!(text_tokens("abcd"), 1);
        assert_eq!(text_tokens("abcde"), 2);
        assert_eq!(text_tokens("你好"), 2);
    }

    #[test]
    fn counts_messages_images_and_tools() {
        let body = json!({
            "model": "claude-x",
            "max_tokens": 10,
            "system": "abcdefgh",
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "abcd"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA=="}}
            ]}],
            "tools": [{"name": "f", "input_schema": {}}]
        });
        // system 3+2, message 3+1+1600, tools 346 + 10 + 1 ("f") + 1 ("{}").
        assert_eq!(count_tokens(Protocol::Anthropic, &body), Ok(5 + 1604 + 358));
    }
}
