//! The conversation log (`PROMPT_LOG_MODE`: `none`, the default, `console` or `file`): each
//! generation request's prompt and the answer's text (streamed answers when they end), tagged
//! with the request id. It holds message text only — never headers, keys, tokens or the account used.
//! `file` appends to `{config dir}/{PROMPT_LOG_BASE_NAME}-{YYYY-MM-DD}.log` (UTC days).

use std::io::Write;
use std::path::PathBuf;

use serde_json::Value;

use crate::convert::ir::{Part, Role};
use crate::convert::{decode_request, decode_response, Protocol};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PromptLog {
    #[default]
    Off,
    Console,
    File {
        dir: PathBuf,
        base: String,
    },
}

impl PromptLog {
    pub fn settings(raw: &Value, env: &impl Fn(&str) -> Option<String>, dir: PathBuf) -> Self {
        let s = |k: &str| env(k).or_else(|| raw.get(k).and_then(Value::as_str).map(str::to_string));
        match s("PROMPT_LOG_MODE").map(|m| m.trim().to_ascii_lowercase()).as_deref() {
            Some("console") => Self::Console,
            Some("file") => {
                let base = s("PROMPT_LOG_BASE_NAME")
                    .map(|b| b.replace(['/', '\\', '.'], "_"))
                    .filter(|b| !b.trim().is_empty())
                    .unwrap_or_else(|| "prompt_log".into());
                Self::File { dir, base }
            }
            _ => Self::Off,
        }
    }

    pub fn is_on(&self) -> bool {
        *self != Self::Off
    }

    /// Logs a request's prompt (system text and messages, role by role).
    pub fn request(&self, request_id: &str, protocol: Protocol, model: &str, body: &Value) {
        if !self.is_on() {
            return;
        }
        let Ok(req) = decode_request(protocol, body) else { return };
        let mut text = String::new();
        for s in &req.system {
            text.push_str(&format!("[system] {s}\n"));
        }
        for m in &req.messages {
            let role = match m.role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            text.push_str(&format!("[{role}] {}\n", parts_text(&m.parts)));
        }
        self.write(&format!("=== {request_id} request {protocol} model={model}\n{text}"));
    }

    /// Logs a unary answer's text (in the client's protocol).
    pub fn answer(&self, request_id: &str, protocol: Protocol, body: &[u8]) {
        if !self.is_on() {
            return;
        }
        let Ok(v) = serde_json::from_slice::<Value>(body) else { return };
        let Ok(resp) = decode_response(protocol, &v) else { return };
        self.write(&format!("=== {request_id} answer\n{}\n", parts_text(&resp.parts)));
    }

    /// Logs a streamed answer's text when it ends (`complete`: finished, not cut short).
    pub fn streamed_answer(&self, request_id: &str, text: &str, complete: bool) {
        if !self.is_on() {
            return;
        }
        let how = if complete { "answer (streamed)" } else { "answer (streamed, cut short)" };
        self.write(&format!("=== {request_id} {how}\n{text}\n"));
    }

    fn write(&self, entry: &str) {
        match self {
            Self::Off => {}
            Self::Console => tracing::info!(target: "prompt_log", "{entry}"),
            Self::File { dir, base } => {
                let day = chrono::Utc::now().format("%Y-%m-%d");
                let path = dir.join(format!("{base}-{day}.log"));
                let opened = std::fs::OpenOptions::new().create(true).append(true).open(&path);
                if let Err(e) = opened.and_then(|mut f| f.write_all(entry.as_bytes())) {
                    tracing::warn!(path = %path.display(), error = %e, "prompt log not written");
                }
            }
        }
    }
}

fn parts_text(parts: &[Part]) -> String {
    parts
        .iter()
        .filter_map(|p| match p {
            Part::Text(t) => Some(t.clone()),
            Part::Image(_) => Some("[image]".into()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn file_mode_writes_prompts_and_answers_only() {
        let dir = tempfile::tempdir().expect("dir");
        let raw = json!({"PROMPT_LOG_MODE": "file", "PROMPT_LOG_BASE_NAME": "../escape"});
        let log = PromptLog::settings(&raw, &|_| None, dir.path().to_path_buf());
        let body = json!({"model": "m", "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "hello there"}]});
        log.request("req-1", Protocol::OpenAiChat, "m", &body);
        log.answer("req-1", Protocol::OpenAiChat, br#"{"id":"x","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi back"},"finish_reason":"stop"}]}"#);
        let files: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").filter_map(Result::ok).collect();
        assert_eq!(files.len(), 1, "one file, inside the directory");
        let text = std::fs::read_to_string(files[0].path()).expect("read");
        assert!(
            text.contains("[system] S") && text.contains("[user] hello there") && text.contains("hi back"),
            "{text}"
        );
        assert!(PromptLog::settings(&json!({}), &|_| None, dir.path().to_path_buf()) == PromptLog::Off);
    }
}
