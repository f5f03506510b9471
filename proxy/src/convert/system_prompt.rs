//! System prompt injection (`SYSTEM_PROMPT_MODE`, `SYSTEM_PROMPT_REPLACEMENTS`, the prompt from
//! the store): applied to the client's request in its own protocol, on the field each protocol
//! keeps system text in — the IR's `system` — so it works for every client and every backend,
//! also when the body is relayed unconverted. Everything else in the body stays as sent.

use serde_json::{json, Value};

use super::Protocol;

/// How the configured prompt meets the client's own system text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// After the client's system text (the reference's default).
    #[default]
    Append,
    /// Instead of it.
    Overwrite,
}

/// What to do to every request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Injection {
    pub prompt: Option<String>,
    pub mode: Mode,
    /// `(old, new)` text replacements in the system text, in order.
    pub replacements: Vec<(String, String)>,
}

impl Injection {
    /// Reads `SYSTEM_PROMPT_MODE` and `SYSTEM_PROMPT_REPLACEMENTS` (`[{old, new}]`) from the config.
    pub fn settings(raw: &Value, prompt: Option<String>) -> Self {
        let mode = match raw.get("SYSTEM_PROMPT_MODE").and_then(Value::as_str) {
            Some(m) if m.eq_ignore_ascii_case("overwrite") => Mode::Overwrite,
            _ => Mode::Append,
        };
        let replacements = raw
            .get("SYSTEM_PROMPT_REPLACEMENTS")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| {
                let old = r.get("old")?.as_str()?;
                (!old.is_empty()).then(|| (old.to_string(), r.get("new").and_then(Value::as_str).unwrap_or("").into()))
            })
            .collect();
        let prompt = prompt.map(|p| p.trim().to_string()).filter(|p| !p.is_empty());
        Self { prompt, mode, replacements }
    }

    /// True when requests are changed at all.
    pub fn is_active(&self) -> bool {
        self.prompt.is_some() || !self.replacements.is_empty()
    }

    fn replace(&self, text: &str) -> String {
        self.replacements.iter().fold(text.to_string(), |t, (old, new)| t.replace(old.as_str(), new))
    }

    fn joined(&self, existing: Option<&str>) -> String {
        match (&self.prompt, existing, self.mode) {
            (Some(p), Some(e), Mode::Append) if !e.is_empty() => format!("{e}\n\n{p}"),
            (Some(p), _, _) => p.clone(),
            (None, e, _) => e.unwrap_or_default().to_string(),
        }
    }

    /// Applies the injection to `body`, a request of `protocol`. Returns whether it changed.
    pub fn apply(&self, protocol: Protocol, body: &mut Value) -> bool {
        if !self.is_active() || !body.is_object() {
            return false;
        }
        let before = body.clone();
        match protocol {
            Protocol::OpenAiChat => self.chat(body),
            Protocol::OpenAiResponses => self.responses(body),
            Protocol::Anthropic => self.anthropic(body),
            Protocol::Gemini => self.gemini(body),
        }
        *body != before
    }

    fn chat(&self, body: &mut Value) {
        let Some(messages) = body.get_mut("messages").and_then(Value::as_array_mut) else { return };
        let is_system = |m: &Value| matches!(m.get("role").and_then(Value::as_str), Some("system" | "developer"));
        for m in messages.iter_mut().filter(|m| is_system(m)) {
            self.replace_content(m, "content");
        }
        let Some(prompt) = &self.prompt else { return };
        if self.mode == Mode::Overwrite {
            messages.retain(|m| !is_system(m));
        }
        // Appended as the last system message, so the client's own come first.
        let at = messages.iter().rposition(is_system).map_or(0, |i| i + 1);
        messages.insert(at, json!({"role": "system", "content": prompt}));
    }

    fn responses(&self, body: &mut Value) {
        let existing = body.get("instructions").and_then(Value::as_str).map(|s| self.replace(s));
        let next = self.joined(existing.as_deref());
        if !next.is_empty() {
            body["instructions"] = Value::String(next);
        }
    }

    fn anthropic(&self, body: &mut Value) {
        match body.get_mut("system") {
            Some(Value::Array(blocks)) => {
                for b in blocks.iter_mut() {
                    self.replace_content(b, "text");
                }
                if let Some(p) = &self.prompt {
                    if self.mode == Mode::Overwrite {
                        blocks.clear();
                    }
                    blocks.push(json!({"type": "text", "text": p}));
                }
            }
            other => {
                let existing = other.and_then(|v| v.as_str()).map(|s| self.replace(s));
                let next = self.joined(existing.as_deref());
                if !next.is_empty() {
                    body["system"] = Value::String(next);
                }
            }
        }
    }

    fn gemini(&self, body: &mut Value) {
        let field = if body.get("system_instruction").is_some() { "system_instruction" } else { "systemInstruction" };
        let mut parts: Vec<Value> =
            body.get(field).and_then(|s| s.get("parts")).and_then(Value::as_array).cloned().unwrap_or_default();
        for p in parts.iter_mut() {
            self.replace_content(p, "text");
        }
        if let Some(p) = &self.prompt {
            if self.mode == Mode::Overwrite {
                parts.clear();
            }
            parts.push(json!({"text": p}));
        }
        if !parts.is_empty() {
            body[field] = json!({"parts": parts});
        }
    }

    /// Applies the replacements to a string field, or to each text part of a content array.
    fn replace_content(&self, obj: &mut Value, field: &str) {
        match obj.get_mut(field) {
            Some(Value::String(s)) => *s = self.replace(s),
            Some(Value::Array(parts)) => {
                for part in parts.iter_mut() {
                    if let Some(Value::String(t)) = part.get_mut("text") {
                        *t = self.replace(t);
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inj(prompt: &str, mode: Mode) -> Injection {
        Injection { prompt: Some(prompt.into()), mode, replacements: vec![("Claude".into(), "the assistant".into())] }
    }

    #[test]
    fn each_protocol_gets_the_prompt_where_it_keeps_system_text() {
        let mut chat = json!({"model": "m", "messages": [{"role": "system", "content": "Be Claude."}, {"role": "user", "content": "hi"}]});
        assert!(inj("P", Mode::Append).apply(Protocol::OpenAiChat, &mut chat));
        assert_eq!(chat["messages"][0]["content"], "Be the assistant.");
        assert_eq!(chat["messages"][1], json!({"role": "system", "content": "P"}));
        assert_eq!(chat["messages"][2]["role"], "user");
        let mut chat = json!({"model": "m", "messages": [{"role": "system", "content": "old"}, {"role": "user", "content": "hi"}]});
        inj("P", Mode::Overwrite).apply(Protocol::OpenAiChat, &mut chat);
        assert_eq!(chat["messages"], json!([{"role": "system", "content": "P"}, {"role": "user", "content": "hi"}]));

        let mut resp = json!({"model": "m", "input": "hi", "instructions": "Be Claude."});
        inj("P", Mode::Append).apply(Protocol::OpenAiResponses, &mut resp);
        assert_eq!(resp["instructions"], "Be the assistant.\n\nP");

        let mut an = json!({"model": "m", "max_tokens": 5, "system": "Be Claude.", "messages": []});
        inj("P", Mode::Append).apply(Protocol::Anthropic, &mut an);
        assert_eq!(an["system"], "Be the assistant.\n\nP");
        let mut an = json!({"model": "m", "max_tokens": 5, "system": [{"type": "text", "text": "a", "cache_control": {"type": "ephemeral"}}], "messages": []});
        inj("P", Mode::Append).apply(Protocol::Anthropic, &mut an);
        assert_eq!(an["system"][1], json!({"type": "text", "text": "P"}));
        assert_eq!(an["system"][0]["cache_control"]["type"], "ephemeral", "the client's blocks stay whole");

        let mut gem = json!({"contents": [], "systemInstruction": {"parts": [{"text": "Claude here"}]}});
        inj("P", Mode::Overwrite).apply(Protocol::Gemini, &mut gem);
        assert_eq!(gem["systemInstruction"], json!({"parts": [{"text": "P"}]}));
        let mut gem = json!({"contents": []});
        inj("P", Mode::Append).apply(Protocol::Gemini, &mut gem);
        assert_eq!(gem["systemInstruction"], json!({"parts": [{"text": "P"}]}));
    }

    #[test]
    fn settings_are_read_in_the_reference_shape_and_nothing_changes_when_idle() {
        let raw = json!({"SYSTEM_PROMPT_MODE": "overwrite", "SYSTEM_PROMPT_REPLACEMENTS": [{"old": "a", "new": "b"}, {"old": ""}]});
        let i = Injection::settings(&raw, Some("  \n".into()));
        assert_eq!((i.mode, i.prompt.clone(), i.replacements.len()), (Mode::Overwrite, None, 1));
        let idle = Injection::settings(&json!({}), None);
        let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
        assert!(!idle.apply(Protocol::OpenAiChat, &mut body));
        assert!(!idle.is_active());
    }
}
