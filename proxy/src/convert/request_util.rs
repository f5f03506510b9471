//! Helpers shared by request decoders.

use super::ir::{Message, Part, Role};

/// Appends parts as a message, merging into the previous message when it has the same role
/// (consecutive OpenAI `tool` messages must become one Anthropic user turn, and Anthropic and
/// Gemini want alternating roles).
pub(crate) fn push_message(messages: &mut Vec<Message>, role: Role, parts: Vec<Part>) {
    if parts.is_empty() {
        return;
    }
    match messages.last_mut() {
        Some(last) if last.role == role => last.parts.extend(parts),
        _ => messages.push(Message { role, parts }),
    }
}
