//! Stream behaviour: incremental relay, terminators, mid-stream failures, relays, envelopes.

use std::path::Path;

use bytes::Bytes;
use poolgate_proxy::convert::sse::SseParser;
use poolgate_proxy::convert::{stream_error_event, Protocol, StreamConverter};
use serde_json::Value;

fn fixture(rel: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/streams").join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn text(frames: &[Bytes]) -> String {
    frames.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect()
}

/// Upstream SSE events as separate byte strings, split after each blank line.
fn events(bytes: &[u8]) -> Vec<Vec<u8>> {
    let s = String::from_utf8(bytes.to_vec()).unwrap();
    let sep = if s.contains("\r\n\r\n") { "\r\n\r\n" } else { "\n\n" };
    s.split_inclusive(sep).map(|e| e.as_bytes().to_vec()).collect()
}

fn tool_use(p: Protocol) -> Vec<u8> {
    fixture(&format!("tool_use/{p}.sse"))
}

fn cross_pairs() -> impl Iterator<Item = (Protocol, Protocol)> {
    Protocol::ALL.into_iter().flat_map(|a| Protocol::ALL.into_iter().map(move |b| (a, b))).filter(|(a, b)| a != b)
}

#[test]
fn first_upstream_event_yields_client_output_at_once() {
    // Every client protocol except Gemini (which has no start event) announces the response
    // as soon as the upstream does.
    for (backend, client) in cross_pairs().filter(|(_, c)| *c != Protocol::Gemini) {
        let upstream = tool_use(backend);
        let first = events(&upstream).into_iter().find(|e| !e.starts_with(b":")).unwrap();
        let mut c = StreamConverter::new(backend, client, "m");
        let out = c.push(&first);
        assert!(!out.is_empty(), "{backend} -> {client}: nothing after the first event");
    }
}

#[test]
fn text_is_relayed_before_later_input_exists() {
    for (backend, client) in cross_pairs() {
        let mut c = StreamConverter::new(backend, client, "m");
        let mut seen = String::new();
        for ev in events(&tool_use(backend)) {
            seen.push_str(&text(&c.push(&ev)));
            if String::from_utf8_lossy(&ev).contains("Let me check") {
                break;
            }
        }
        // The first text delta is out, the second (" the weather.") not yet pushed.
        assert!(seen.contains("Let me check"), "{backend} -> {client}: {seen}");
        assert!(!seen.contains("the weather."), "{backend} -> {client}");
    }
}

#[test]
fn openai_chat_clients_always_get_done() {
    for backend in Protocol::ALL {
        let full = tool_use(backend);
        // Cut the upstream off halfway: no upstream terminator was seen.
        let cut = &full[..full.len() / 2];
        let mut c = StreamConverter::new(backend, Protocol::OpenAiChat, "m");
        let mut out = c.push(cut);
        out.extend(c.finish());
        let s = text(&out);
        assert!(s.ends_with("data: [DONE]\n\n"), "{backend}: {s}");
        assert_eq!(s.matches("[DONE]").count(), 1, "{backend}");
    }
}

#[test]
fn anthropic_clients_always_get_message_stop() {
    for backend in Protocol::ALL {
        let full = tool_use(backend);
        let mut c = StreamConverter::new(backend, Protocol::Anthropic, "m");
        let mut out = c.push(&full[..full.len() / 2]);
        out.extend(c.finish());
        let s = text(&out);
        assert!(s.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"), "{backend}: {s}");
        assert_eq!(s.matches("event: message_stop").count(), 1, "{backend}");
    }
}

#[test]
fn responses_clients_get_response_completed_when_converting() {
    for backend in [Protocol::OpenAiChat, Protocol::Anthropic, Protocol::Gemini] {
        let mut c = StreamConverter::new(backend, Protocol::OpenAiResponses, "m");
        let mut out = c.push(&tool_use(backend));
        out.extend(c.finish());
        let s = text(&out);
        let last = s.trim_end().rsplit("\n\n").next().unwrap();
        assert!(last.starts_with("event: response.completed"), "{backend}: {last}");
    }
}

#[test]
fn same_protocol_relays_every_event_unchanged() {
    for p in [Protocol::OpenAiChat, Protocol::OpenAiResponses, Protocol::Anthropic] {
        let upstream = tool_use(p);
        let mut c = StreamConverter::new(p, p, "m");
        let mut out = Vec::new();
        for piece in upstream.chunks(13) {
            out.extend(c.push(piece));
        }
        out.extend(c.finish());
        let relayed: Vec<u8> = out.iter().flat_map(|b| b.to_vec()).collect();
        // Events are re-framed one by one; comments (keep-alives) are not relayed.
        assert_eq!(SseParser::new().push(&relayed), SseParser::new().push(&upstream), "{p}: relay changed events");
    }
}

#[test]
fn same_protocol_drops_malformed_events() {
    let mut c = StreamConverter::new(Protocol::OpenAiChat, Protocol::OpenAiChat, "m");
    let mut out = c.push(b"data: <html>oops</html>\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n");
    out.extend(c.push(b"data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n"));
    assert!(c.finished());
    out.extend(c.finish());
    let s = text(&out);
    assert!(!s.contains("html"), "{s}");
    assert!(s.contains(r#""content":"hi""#) && s.ends_with("data: [DONE]\n\n"), "{s}");
}

#[test]
fn a_stream_without_a_finish_is_not_finished() {
    for p in Protocol::ALL {
        let upstream = tool_use(p);
        let mut c = StreamConverter::new(p, p, "m");
        c.push(&upstream[..upstream.len() / 2]);
        assert!(!c.finished(), "{p}: half a stream");
        let mut c = StreamConverter::new(p, Protocol::OpenAiChat, "m");
        c.push(&upstream);
        c.finish();
        assert!(c.finished(), "{p}: the whole stream");
        assert!(!StreamConverter::new(p, p, "m").finished(), "{p}: an empty stream");
    }
}

#[test]
fn frames_after_the_finish_wait_for_finish() {
    // The caller commits the usage between the upstream's end and `finish()`, so the client's
    // last bytes are only sent once the count is safe.
    for (backend, client) in cross_pairs() {
        let upstream = tool_use(backend);
        let mut c = StreamConverter::new(backend, client, "m");
        let streamed = text(&c.push(&upstream));
        let tail = text(&c.finish());
        let last = tail.trim_end().rsplit("\n\n").next().unwrap_or_default().to_string();
        assert!(!tail.is_empty(), "{backend} -> {client}: nothing held back");
        assert!(!streamed.contains(&last), "{backend} -> {client}: the last frame was sent early");
    }
}

#[test]
fn relay_adds_missing_terminator_after_a_partial_event() {
    let mut c = StreamConverter::new(Protocol::OpenAiChat, Protocol::OpenAiChat, "m");
    let mut out = c.push(b"data: {\"choices\":[]}");
    out.extend(c.finish());
    assert_eq!(text(&out), "data: {\"choices\":[]}\n\ndata: [DONE]\n\n");
}

#[test]
fn failing_midway_emits_the_client_error_shape() {
    let expectations = [
        (Protocol::OpenAiChat, None, "/error/type", "server_error"),
        (Protocol::Anthropic, Some("error"), "/error/type", "api_error"),
        (Protocol::Gemini, None, "/error/status", "UNAVAILABLE"),
        (Protocol::OpenAiResponses, Some("error"), "/type", "error"),
    ];
    for backend in Protocol::ALL {
        for (client, event, pointer, want) in expectations {
            let status = if client == Protocol::Gemini { 503 } else { 500 };
            let upstream = tool_use(backend);
            let mut c = StreamConverter::new(backend, client, "m");
            c.push(&upstream[..upstream.len() / 3]);
            let out = c.fail(status, "upstream connection reset");
            let mut parser = SseParser::new();
            let evs: Vec<_> = out.iter().flat_map(|b| parser.push(b)).collect();
            let err = evs
                .iter()
                .find(|e| e.data.contains("upstream connection reset"))
                .unwrap_or_else(|| panic!("{backend} -> {client}: no error event in {evs:?}"));
            assert_eq!(err.event.as_deref(), event, "{backend} -> {client}");
            let v: Value = serde_json::from_str(&err.data).unwrap();
            assert_eq!(v.pointer(pointer).and_then(Value::as_str), Some(want), "{backend} -> {client}");
            // The error ends the stream: nothing a client could take for a normal end follows.
            assert!(std::ptr::eq(err, evs.last().unwrap_or(err)), "{backend} -> {client}: frames after the error");
            assert!(!evs.iter().any(|e| e.data == "[DONE]"), "{backend} -> {client}: [DONE] after an error");
            assert!(c.push(b"data: {}\n\n").is_empty(), "{backend} -> {client}: output after fail");
            assert!(c.finish().is_empty(), "{backend} -> {client}: output after fail");
        }
    }
}

#[test]
fn stand_alone_error_events() {
    let s = stream_error_event(Protocol::Anthropic, 429, "slow down");
    assert_eq!(
        &s[..],
        b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"slow down\"}}\n\n"
    );
    let s = String::from_utf8(stream_error_event(Protocol::OpenAiResponses, 500, "x").to_vec()).unwrap();
    assert!(s.starts_with("event: error\ndata: {\"type\":\"error\",\"code\":\"server_error\""));
}

#[test]
fn streamed_tool_arguments_reassemble_exactly() {
    for (backend, client) in cross_pairs().filter(|(_, c)| *c != Protocol::Gemini) {
        let mut c = StreamConverter::new(backend, client, "m");
        let mut out = c.push(&tool_use(backend));
        out.extend(c.finish());
        let mut parser = SseParser::new();
        let mut args = String::new();
        for ev in out.iter().flat_map(|b| parser.push(b)) {
            let Ok(v) = serde_json::from_str::<Value>(&ev.data) else { continue };
            let piece = v
                .pointer("/choices/0/delta/tool_calls/0/function/arguments")
                .or_else(|| v.pointer("/delta/partial_json"))
                .or_else(|| (v["type"] == "response.function_call_arguments.delta").then(|| &v["delta"]));
            args.push_str(piece.and_then(Value::as_str).unwrap_or_default());
        }
        let parsed: Value =
            serde_json::from_str(&args).unwrap_or_else(|e| panic!("{backend} -> {client}: {args:?}: {e}"));
        assert_eq!(parsed, serde_json::json!({"city": "Paris"}), "{backend} -> {client}");
    }
}

#[test]
fn parallel_openai_tool_calls_become_separate_blocks() {
    let chunk = |delta: &str| {
        format!("data: {{\"id\":\"c\",\"model\":\"g\",\"choices\":[{{\"index\":0,\"delta\":{delta}}}]}}\n\n")
    };
    let upstream = [
        chunk(r#"{"tool_calls":[{"index":0,"id":"a","function":{"name":"f","arguments":"{\"x\":"}}]}"#),
        chunk(r#"{"tool_calls":[{"index":0,"function":{"arguments":"1}"}}]}"#),
        chunk(r#"{"tool_calls":[{"index":1,"id":"b","function":{"name":"g","arguments":"{}"}}]}"#),
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n".into(),
    ]
    .concat();
    let mut c = StreamConverter::new(Protocol::OpenAiChat, Protocol::Anthropic, "m");
    let mut out = c.push(upstream.as_bytes());
    out.extend(c.finish());
    let s = text(&out);
    assert!(s.contains(r#""content_block":{"type":"tool_use","id":"a","name":"f","input":{}}"#), "{s}");
    assert!(s.contains(r#""index":1,"content_block":{"type":"tool_use","id":"b","name":"g","input":{}}"#), "{s}");
    assert!(s.contains(r#""stop_reason":"tool_use""#), "{s}");
}

#[test]
fn gemini_finish_with_function_call_becomes_tool_calls() {
    let mut c = StreamConverter::new(Protocol::Gemini, Protocol::OpenAiChat, "m");
    let mut out = c.push(&tool_use(Protocol::Gemini));
    out.extend(c.finish());
    assert!(text(&out).contains(r#""finish_reason":"tool_calls""#));
}

#[test]
fn code_assist_envelope_is_removed() {
    let inner =
        r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"hi"}]},"finishReason":"STOP","index":0}]}"#;
    let upstream = format!("data: {{\"response\":{inner},\"traceId\":\"t\"}}\r\n\r\n");
    let mut relay = StreamConverter::new(Protocol::Gemini, Protocol::Gemini, "m");
    let mut out = relay.push(upstream.as_bytes());
    out.extend(relay.finish());
    assert_eq!(text(&out), format!("data: {inner}\n\n"));

    let mut conv = StreamConverter::new(Protocol::Gemini, Protocol::OpenAiChat, "m");
    let mut out = conv.push(upstream.as_bytes());
    out.extend(conv.finish());
    let out = text(&out);
    assert!(out.contains(r#""delta":{"content":"hi"}"#), "{out}");
}

#[test]
fn client_model_name_is_shown() {
    let mut c = StreamConverter::new(Protocol::Anthropic, Protocol::OpenAiChat, "my-alias");
    let mut out = c.push(&tool_use(Protocol::Anthropic));
    out.extend(c.finish());
    let out = text(&out);
    assert!(out.contains(r#""model":"my-alias""#));
    assert!(!out.contains("claude-sonnet"));
}

#[test]
fn usage_with_cached_tokens_reaches_every_client() {
    let checks: [(Protocol, &str); 4] = [
        (
            Protocol::OpenAiChat,
            r#""prompt_tokens":120,"completion_tokens":30,"total_tokens":150,"prompt_tokens_details":{"cached_tokens":100}"#,
        ),
        (
            Protocol::Anthropic,
            r#""input_tokens":20,"cache_creation_input_tokens":0,"cache_read_input_tokens":100,"output_tokens":30"#,
        ),
        (Protocol::Gemini, r#""promptTokenCount":120,"#),
        (
            Protocol::OpenAiResponses,
            r#""input_tokens":120,"input_tokens_details":{"cached_tokens":100},"output_tokens":30"#,
        ),
    ];
    for (backend, client) in cross_pairs() {
        let mut c = StreamConverter::new(backend, client, "m");
        let mut out = c.push(&tool_use(backend));
        out.extend(c.finish());
        let s = text(&out);
        let want = checks.iter().find(|(p, _)| *p == client).unwrap().1;
        assert!(s.contains(want), "{backend} -> {client}: missing {want}");
        if client == Protocol::Gemini {
            assert!(s.contains(r#""cachedContentTokenCount":100"#), "{backend} -> gemini");
        }
    }
}

#[test]
fn only_the_first_openai_choice_is_converted() {
    let upstream = concat!(
        "data: {\"id\":\"c\",\"choices\":[{\"index\":1,\"delta\":{\"content\":\"other\"}}]}\n\n",
        "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"mine\"}}]}\n\n",
    );
    let mut c = StreamConverter::new(Protocol::OpenAiChat, Protocol::Anthropic, "m");
    let out = text(&c.push(upstream.as_bytes()));
    assert!(out.contains(r#""text":"mine""#), "{out}");
    assert!(!out.contains("other"), "{out}");
}
