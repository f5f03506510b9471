//! Incremental Server-Sent Events parsing and framing.
//!
//! The parser accepts input split at arbitrary byte boundaries and yields each event as soon as
//! its terminating blank line arrives. It follows the WHATWG rules that matter for LLM streams:
//! `\n`, `\r\n` and `\r` line endings (also when a `\r\n` pair is split across chunks), `:`
//! comments, multi-line `data`, one optional space after the colon, and a leading BOM.

use bytes::Bytes;

/// Longest line kept; longer ones are dropped so a broken upstream cannot exhaust memory.
const MAX_LINE: usize = 16 * 1024 * 1024;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined by `\n`.
    pub data: String,
}

#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    /// The previous chunk ended in `\r`; a leading `\n` belongs to that line break.
    after_cr: bool,
    started: bool,
    overlong: bool,
    event: Option<String>,
    data: String,
    has_data: bool,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; returns the events completed by them.
    pub fn push(&mut self, mut bytes: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        if self.after_cr && !bytes.is_empty() {
            self.after_cr = false;
            if let Some(rest) = bytes.strip_prefix(b"\n") {
                bytes = rest;
            }
        }
        while let Some(pos) = bytes.iter().position(|b| *b == b'\n' || *b == b'\r') {
            self.append(&bytes[..pos]);
            self.end_line(&mut out);
            let is_cr = bytes[pos] == b'\r';
            bytes = &bytes[pos + 1..];
            if is_cr {
                match bytes.first() {
                    Some(b'\n') => bytes = &bytes[1..],
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
        }
        self.append(bytes);
        out
    }

    /// Ends the input: a final event without its blank line is still delivered, since
    /// upstreams that close right after the last `data:` line are common.
    pub fn finish(&mut self) -> Vec<SseEvent> {
        let mut out = Vec::new();
        if !self.line.is_empty() {
            self.end_line(&mut out);
        }
        self.dispatch(&mut out);
        self.after_cr = false;
        out
    }

    /// True when bytes of an unfinished event are held.
    pub fn has_pending(&self) -> bool {
        !self.line.is_empty() || self.has_data || self.event.is_some()
    }

    fn append(&mut self, bytes: &[u8]) {
        if self.overlong || self.line.len() + bytes.len() > MAX_LINE {
            if !self.overlong {
                tracing::warn!("dropping SSE line longer than {MAX_LINE} bytes");
            }
            self.overlong = true;
            self.line.clear();
            return;
        }
        self.line.extend_from_slice(bytes);
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        if self.overlong {
            self.overlong = false;
            return;
        }
        let raw = std::mem::take(&mut self.line);
        let mut line = String::from_utf8_lossy(&raw).into_owned();
        if !self.started {
            self.started = true;
            if let Some(rest) = line.strip_prefix('\u{feff}') {
                line = rest.to_string();
            }
        }
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (name, value) = match line.split_once(':') {
            Some((n, v)) => (n, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_str(), ""),
        };
        match name {
            "event" => self.event = Some(value.to_string()),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            _ => {} // `id`, `retry` and unknown fields do not matter to a relay.
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = self.event.take();
        if self.has_data {
            self.has_data = false;
            out.push(SseEvent { event, data: std::mem::take(&mut self.data) });
        }
    }
}

/// Frames one event: `event: <name>\n` (optional), one `data:` line per data line, blank line.
pub fn frame(event: Option<&str>, data: &str) -> Bytes {
    let mut s = String::with_capacity(data.len() + 32);
    if let Some(e) = event {
        s.push_str("event: ");
        s.push_str(e);
        s.push('\n');
    }
    for line in data.split('\n') {
        s.push_str("data: ");
        s.push_str(line);
        s.push('\n');
    }
    s.push('\n');
    Bytes::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: Option<&str>, data: &str) -> SseEvent {
        SseEvent { event: event.map(str::to_string), data: data.to_string() }
    }

    #[test]
    fn parses_events_comments_and_multiline_data() {
        let mut p = SseParser::new();
        let got = p.push(b": keep-alive\n\nevent: a\ndata: 1\ndata:2\n\ndata: x\r\n\r\n");
        assert_eq!(got, vec![ev(Some("a"), "1\n2"), ev(None, "x")]);
        assert!(!p.has_pending());
    }

    #[test]
    fn split_crlf_is_one_line_break() {
        let mut p = SseParser::new();
        assert!(p.push(b"data: a\r").is_empty());
        // The `\n` completing `\r\n` must not be read as the blank line.
        assert!(p.push(b"\n").is_empty());
        assert_eq!(p.push(b"\r\n"), vec![ev(None, "a")]);
    }

    #[test]
    fn bare_cr_line_endings() {
        let mut p = SseParser::new();
        assert_eq!(p.push(b"data: a\r\rdata: b\r\r"), vec![ev(None, "a"), ev(None, "b")]);
    }

    #[test]
    fn finish_delivers_unterminated_event() {
        let mut p = SseParser::new();
        assert!(p.push(b"data: [DONE]").is_empty());
        assert!(p.has_pending());
        assert_eq!(p.finish(), vec![ev(None, "[DONE]")]);
    }

    #[test]
    fn strips_leading_bom_and_ignores_event_without_data() {
        let mut p = SseParser::new();
        let got = p.push("\u{feff}data: a\n\nevent: ping\n\n".as_bytes());
        assert_eq!(got, vec![ev(None, "a")]);
    }

    #[test]
    fn frame_writes_event_and_data_lines() {
        assert_eq!(&frame(Some("x"), "a\nb")[..], b"event: x\ndata: a\ndata: b\n\n");
        assert_eq!(&frame(None, "{}")[..], b"data: {}\n\n");
    }
}
