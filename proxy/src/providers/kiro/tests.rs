//! Golden event streams through [`KiroStream`] and [`unary`].

use proptest::prelude::*;
use serde_json::{json, Value};

use super::eventstream::{encode_frame, tests::event, FrameError, DEFAULT_MAX_FRAME_LEN};
use super::request::ToolNames;
use super::*;

/// The canonical sequence of the spec's mock checklist (§11).
fn canonical() -> Vec<u8> {
    [
        event("assistantResponseEvent", r#"{"content":"Hel"}"#),
        event("assistantResponseEvent", r#"{"content":"lo"}"#),
        event("toolUseEvent", r#"{"name":"get_weather","toolUseId":"tooluse_abc123","input":"{\"city\":"}"#),
        event("toolUseEvent", r#"{"name":"get_weather","toolUseId":"tooluse_abc123","input":"\"Paris\"}"}"#),
        event("toolUseEvent", r#"{"name":"get_weather","toolUseId":"tooluse_abc123","stop":true}"#),
        event("meteringEvent", r#"{"unit":"credit","unitPlural":"credits","usage":0.0123}"#),
        event("contextUsageEvent", r#"{"contextUsagePercentage":1.25}"#),
    ]
    .concat()
}

fn opts() -> TranslatorOptions {
    TranslatorOptions { input_tokens_estimate: 12, ..TranslatorOptions::default() }
}

/// Parses SSE frames to `(event, data)` with the random message id removed.
fn parse(frames: &[Bytes]) -> Vec<(String, Value)> {
    let text: String = frames.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect();
    text.split("\n\n")
        .filter(|f| !f.is_empty())
        .map(|f| {
            let (event, data) = f.split_once('\n').unwrap();
            let mut data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            if let Some(m) = data.get_mut("message").and_then(Value::as_object_mut) {
                m.remove("id");
            }
            (event.strip_prefix("event: ").unwrap().to_string(), data)
        })
        .collect()
}

/// Feeds `bytes` cut at `cuts`; the frames, or the error frames after a failure.
fn run_split(bytes: &[u8], cuts: &[usize]) -> (Vec<Bytes>, Option<KiroError>) {
    let mut s = KiroStream::new("claude-sonnet-4-5", opts());
    let mut out = Vec::new();
    let mut at = 0;
    for &c in cuts.iter().chain([bytes.len()].iter()) {
        match s.push(&bytes[at..c]) {
            Ok(f) => out.extend(f),
            Err(e) => {
                out.extend(s.fail(e.status(), &e.to_string()));
                return (out, Some(e));
            }
        }
        at = c;
    }
    match s.finish() {
        Ok(f) => out.extend(f),
        Err(e) => {
            out.extend(s.fail(e.status(), &e.to_string()));
            return (out, Some(e));
        }
    }
    (out, None)
}

fn events_of(parsed: &[(String, Value)]) -> Vec<&str> {
    parsed.iter().map(|(e, _)| e.as_str()).collect()
}

#[test]
fn canonical_sequence_to_anthropic_sse() {
    let (frames, err) = run_split(&canonical(), &[]);
    assert_eq!(err, None);
    let p = parse(&frames);
    assert_eq!(
        events_of(&p),
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let start = &p[0].1["message"];
    assert_eq!(start["model"], "claude-sonnet-4-5");
    assert_eq!(
        start["usage"],
        json!({"input_tokens": 12, "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0, "output_tokens": 0})
    );
    assert_eq!(p[2].1["delta"], json!({"type": "text_delta", "text": "Hel"}));
    assert_eq!(p[3].1["delta"]["text"], "lo");
    assert_eq!(
        p[5].1["content_block"],
        json!({"type": "tool_use", "id": "tooluse_abc123", "name": "get_weather", "input": {}})
    );
    assert_eq!(p[5].1["index"], 1);
    assert_eq!(p[6].1["delta"], json!({"type": "input_json_delta", "partial_json": "{\"city\":\"Paris\"}"}));
    assert_eq!(p[8].1["delta"]["stop_reason"], "tool_use");
    // 2156 context tokens − 6 estimated output tokens ("Hello" + 16 argument characters).
    assert_eq!(
        p[8].1["usage"],
        json!({"input_tokens": 76, "cache_creation_input_tokens": 153, "cache_read_input_tokens": 1921,
            "output_tokens": 6})
    );
}

#[test]
fn byte_by_byte_equals_aligned() {
    let bytes = canonical();
    let cuts: Vec<usize> = (1..bytes.len()).collect();
    assert_eq!(parse(&run_split(&bytes, &cuts).0), parse(&run_split(&bytes, &[]).0));
}

#[test]
fn utf8_and_many_tool_fragments_survive_byte_by_byte_delivery() {
    let args = r#"{"city":"Zürich 你好","n":[1,2]}"#;
    let mut frames = vec![event("assistantResponseEvent", r#"{"content":"héllo 你好"}"#)];
    for c in args.chars() {
        let input = serde_json::to_string(&c.to_string()).unwrap();
        frames.push(event("toolUseEvent", &format!(r#"{{"name":"f","toolUseId":"t9","input":{input}}}"#)));
    }
    frames.push(event("toolUseEvent", r#"{"name":"f","toolUseId":"t9","stop":true}"#));
    let bytes = frames.concat();
    let cuts: Vec<usize> = (1..bytes.len()).collect();
    let (out, err) = run_split(&bytes, &cuts);
    assert_eq!(err, None);
    let p = parse(&out);
    assert_eq!(p, parse(&run_split(&bytes, &[]).0));
    assert_eq!(p[2].1["delta"]["text"], "héllo 你好");
    assert_eq!(p[5].1["delta"]["partial_json"], args);
}

#[test]
fn thinking_stream() {
    let bytes = [
        event("assistantResponseEvent", r#"{"content":"<thinking>Let me"}"#),
        event("assistantResponseEvent", r#"{"content":" think</thin"}"#),
        event("assistantResponseEvent", r#"{"content":"king>\n\nAnswer"}"#),
    ]
    .concat();
    let mut s = KiroStream::new("m", TranslatorOptions { thinking: true, ..opts() });
    let mut frames = s.push(&bytes).unwrap();
    frames.extend(s.finish().unwrap());
    let p = parse(&frames);
    assert_eq!(p[1].1["content_block"]["type"], "thinking");
    let thinking: String = p.iter().filter_map(|(_, d)| d.pointer("/delta/thinking").and_then(Value::as_str)).collect();
    assert_eq!(thinking, "Let me think");
    let text: String = p.iter().filter_map(|(_, d)| d.pointer("/delta/text").and_then(Value::as_str)).collect();
    assert_eq!(text, "Answer");
    assert_eq!(p[p.len() - 2].1["delta"]["stop_reason"], "end_turn");
}

#[test]
fn exception_ends_with_an_error_event() {
    let bytes = [
        event("assistantResponseEvent", r#"{"content":"Hel"}"#),
        encode_frame(
            &[
                (":exception-type", "ThrottlingException"),
                (":content-type", "application/json"),
                (":message-type", "exception"),
            ],
            br#"{"message":"Too many requests"}"#,
        ),
    ]
    .concat();
    let (frames, err) = run_split(&bytes, &[]);
    let err = err.unwrap();
    assert_eq!(err.status(), 429);
    let p = parse(&frames);
    assert_eq!(events_of(&p), ["message_start", "content_block_start", "content_block_delta", "error"]);
    assert_eq!(p[3].1["error"]["type"], "rate_limit_error");
    assert!(p[3].1["error"]["message"].as_str().unwrap().contains("Too many requests"));
}

type ErrorCheck = fn(&FrameError) -> bool;

#[test]
fn corrupted_streams_are_clear_errors() {
    let good = event("assistantResponseEvent", r#"{"content":"Hi"}"#);
    let mut bad_prelude = good.clone();
    bad_prelude[3] ^= 0x40;
    let mut bad_message = good.clone();
    bad_message[100] ^= 1;
    let mut oversized = ((DEFAULT_MAX_FRAME_LEN + 1) as u32).to_be_bytes().to_vec();
    oversized.extend_from_slice(&0u32.to_be_bytes());
    let crc = crc32fast::hash(&oversized);
    oversized.extend_from_slice(&crc.to_be_bytes());
    let truncated = &good[..good.len() - 3];
    let cases: [(&[u8], ErrorCheck); 4] = [
        (&bad_prelude, |e| matches!(e, FrameError::PreludeCrc { .. })),
        (&bad_message, |e| matches!(e, FrameError::MessageCrc { .. })),
        (&oversized, |e| matches!(e, FrameError::TooLong { .. })),
        (truncated, |e| matches!(e, FrameError::Truncated { buffered: 121 })),
    ];
    for (bytes, want) in cases {
        let (frames, err) = run_split(&[good.as_slice(), bytes].concat(), &[]);
        let Some(KiroError::Frame(e)) = &err else { panic!("{err:?}") };
        assert!(want(e), "{e}");
        assert_eq!(err.as_ref().map(KiroError::status), Some(502));
        let p = parse(&frames);
        assert_eq!(p[2].1["delta"]["text"], "Hi", "the good frame before the bad one is delivered");
        assert_eq!(p.last().unwrap().0, "error");
        assert!(!events_of(&p).contains(&"message_stop"));
    }
}

#[test]
fn unary_response() {
    let v = unary(&canonical(), "claude-sonnet-4-5", opts()).unwrap();
    assert_eq!(v["type"], "message");
    assert_eq!(v["model"], "claude-sonnet-4-5");
    assert_eq!(
        v["content"],
        json!([
            {"type": "text", "text": "Hello"},
            {"type": "tool_use", "id": "tooluse_abc123", "name": "get_weather", "input": {"city": "Paris"}}
        ])
    );
    assert_eq!(v["stop_reason"], "tool_use");
    assert_eq!(v["usage"]["input_tokens"], 76);
    assert_eq!(v["usage"]["output_tokens"], 6);
}

#[test]
fn unary_thinking_and_errors() {
    let body = event("assistantResponseEvent", r#"{"content":"<thinking>t</thinking>\n\nA"}"#);
    let v = unary(&body, "m", TranslatorOptions { thinking: true, ..opts() }).unwrap();
    assert_eq!(
        v["content"],
        json!([{"type": "thinking", "thinking": "t", "signature": ""}, {"type": "text", "text": "A"}])
    );
    assert_eq!(v["stop_reason"], "end_turn");
    let v = unary(&body, "m", opts()).unwrap();
    assert_eq!(v["content"][0]["text"], "<thinking>t</thinking>\n\nA");
    let exc = encode_frame(&[(":message-type", "exception"), (":exception-type", "ValidationException")], b"{}");
    assert_eq!(unary(&exc, "m", opts()).unwrap_err().status(), 400);
    assert!(matches!(unary(&body[..10], "m", opts()), Err(KiroError::Frame(FrameError::Truncated { .. }))));
}

#[test]
fn tool_names_are_mapped_back_in_the_stream() {
    let long = "n".repeat(100);
    let mut names = ToolNames::default();
    let short = names.shorten(&long);
    let p = format!(r#"{{"name":"{short}","toolUseId":"t","input":"{{}}","stop":true}}"#);
    let mut s = KiroStream::new("m", TranslatorOptions { tool_names: names, ..opts() });
    let mut frames = s.push(&event("toolUseEvent", &p)).unwrap();
    frames.extend(s.finish().unwrap());
    assert_eq!(parse(&frames)[1].1["content_block"]["name"], long);
}

#[test]
fn errors_display_without_secrets_and_bounded() {
    let e = KiroError::upstream("X", &"é".repeat(2000));
    let KiroError::Upstream { message, .. } = &e else { unreachable!() };
    assert!(message.len() <= 1000);
    assert_eq!(
        KiroError::from(FrameError::TooShort(3)).to_string(),
        "Kiro event stream is malformed: event-stream frame declares 3 bytes, below the minimum of 16"
    );
    assert_eq!(KiroError::Build(request::BuildError::Empty).status(), 400);
}

#[test]
fn empty_body_is_an_empty_end_turn() {
    let (frames, err) = run_split(&[], &[]);
    assert_eq!(err, None);
    let p = parse(&frames);
    assert_eq!(events_of(&p), ["message_start", "message_delta", "message_stop"]);
}

proptest! {
    #[test]
    fn any_chunking_gives_the_same_anthropic_output(cuts in prop::collection::vec(any::<usize>(), 0..20)) {
        let bytes = canonical();
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        prop_assert_eq!(parse(&run_split(&bytes, &cuts).0), parse(&run_split(&bytes, &[]).0));
    }

    #[test]
    fn random_bytes_never_panic(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..6)) {
        let mut s = KiroStream::with_decoder(Decoder::with_max_frame_len(4096), "m", opts());
        for c in &chunks {
            if let Err(e) = s.push(c) {
                let _ = s.fail(e.status(), &e.to_string());
                break;
            }
        }
        let _ = s.finish();
    }

    #[test]
    fn random_payloads_in_valid_frames_never_panic(
        frames in prop::collection::vec((
            prop::sample::select(vec!["assistantResponseEvent", "toolUseEvent", "contextUsageEvent", "x"]),
            "[\\[\\]{}\"a-z:<>/ ]{0,40}|\\{\"content\":\"[\\[<>/a-z ]{0,30}\"\\}",
        ), 0..8)
    ) {
        let bytes: Vec<u8> = frames.iter().flat_map(|(k, p)| event(k, p)).collect();
        let mut s = KiroStream::new("m", TranslatorOptions { thinking: true, ..opts() });
        prop_assert!(s.push(&bytes).is_ok());
        prop_assert!(s.finish().is_ok());
    }
}
