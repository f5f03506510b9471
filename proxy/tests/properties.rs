//! Property tests: no input makes a converter panic, and SSE parsing and stream conversion do
//! not depend on how the input bytes are split. Case counts are bounded to keep the suite fast.

use std::path::Path;

use poolgate_proxy::convert::sse::{SseEvent, SseParser};
use poolgate_proxy::convert::{
    convert_error, convert_request, convert_response, count_tokens, Protocol, StreamConverter,
};
use proptest::prelude::*;
use serde_json::{Map, Value};

const KEYS: &[&str] = &[
    "model",
    "messages",
    "role",
    "content",
    "type",
    "text",
    "tool_calls",
    "function",
    "name",
    "arguments",
    "input",
    "tools",
    "parts",
    "contents",
    "functionCall",
    "functionResponse",
    "candidates",
    "choices",
    "delta",
    "output",
    "usage",
    "image_url",
    "url",
    "source",
    "data",
    "id",
    "call_id",
    "tool_use_id",
    "system",
    "instructions",
    "thinking",
    "index",
    "item",
    "response",
    "stop_reason",
    "finish_reason",
    "finishReason",
    "message",
    "error",
    "args",
    "inlineData",
    "mimeType",
    "generationConfig",
    "thinkingConfig",
    "tool_choice",
    "max_tokens",
];
const WORDS: &[&str] = &[
    "user",
    "assistant",
    "model",
    "tool",
    "system",
    "developer",
    "text",
    "image",
    "image_url",
    "tool_use",
    "tool_result",
    "thinking",
    "function",
    "function_call",
    "function_call_output",
    "message",
    "reasoning",
    "input_text",
    "input_image",
    "base64",
    "url",
    "auto",
    "any",
    "none",
    "required",
    "enabled",
    "STOP",
    "MAX_TOKENS",
    "stop",
    "length",
    "tool_calls",
    "end_turn",
    "message_start",
    "content_block_start",
    "content_block_delta",
    "text_delta",
    "input_json_delta",
    "message_delta",
    "response.created",
    "response.output_item.added",
    "response.output_text.delta",
    "response.function_call_arguments.delta",
    "response.completed",
    "data:image/png;base64,AAAA",
    "{\"a\":1}",
    "{",
    "",
];

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop::sample::select(WORDS).prop_map(Value::from),
        ".{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect::<Map<_, _>>())
            }),
        ]
    })
}

fn fixture(rel: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fixture_json(rel: &str) -> Value {
    serde_json::from_slice(&fixture(rel)).unwrap()
}

/// Replaces the `n`-th node (pre-order, modulo the node count) of `v` with `with`.
fn mutate(v: &mut Value, n: usize, with: Value) {
    fn count(v: &Value) -> usize {
        1 + match v {
            Value::Array(a) => a.iter().map(count).sum(),
            Value::Object(o) => o.values().map(count).sum(),
            _ => 0,
        }
    }
    fn walk(v: &mut Value, n: &mut usize, with: &mut Option<Value>) {
        if *n == 0 {
            if let Some(w) = with.take() {
                *v = w;
            }
            return;
        }
        *n -= 1;
        let children: Vec<&mut Value> = match v {
            Value::Array(a) => a.iter_mut().collect(),
            Value::Object(o) => o.values_mut().collect(),
            _ => Vec::new(),
        };
        for c in children {
            walk(c, n, with);
            if with.is_none() {
                return;
            }
        }
    }
    let mut n = n % count(v);
    walk(v, &mut n, &mut Some(with));
}

fn protocol() -> impl Strategy<Value = Protocol> {
    prop::sample::select(Protocol::ALL.to_vec())
}

fn all_converters_survive(body: &Value) {
    for client in Protocol::ALL {
        let _ = count_tokens(client, body);
        for backend in Protocol::ALL {
            let _ = convert_request(client, backend, body);
            let _ = convert_response(client, backend, body);
        }
    }
}

/// Splits `bytes` at the given cut points.
fn split<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut out = Vec::new();
    let mut last = 0;
    for p in points {
        out.push(&bytes[last..p]);
        last = p;
    }
    out.push(&bytes[last..]);
    out
}

fn run_stream(backend: Protocol, client: Protocol, pieces: &[&[u8]]) -> Vec<u8> {
    let mut c = StreamConverter::new(backend, client, "m").with_created(1);
    let mut out = Vec::new();
    for p in pieces {
        c.push(p).iter().for_each(|b| out.extend_from_slice(b));
    }
    c.finish().iter().for_each(|b| out.extend_from_slice(b));
    out
}

const REQUESTS: &[&str] = &[
    "requests/full/openai-chat.json",
    "requests/full/openai-responses.json",
    "requests/full/anthropic.json",
    "requests/full/gemini.json",
    "requests/structured/anthropic.json",
    "requests/structured/gemini.json",
];
const RESPONSES: &[&str] = &[
    "responses/tool_use/openai-chat.json",
    "responses/tool_use/openai-responses.json",
    "responses/tool_use/anthropic.json",
    "responses/tool_use/gemini.json",
];
const STREAMS: &[(&str, Protocol)] = &[
    ("streams/tool_use/openai-chat.sse", Protocol::OpenAiChat),
    ("streams/tool_use/openai-responses.sse", Protocol::OpenAiResponses),
    ("streams/tool_use/anthropic.sse", Protocol::Anthropic),
    ("streams/tool_use/gemini.sse", Protocol::Gemini),
    ("streams/error/anthropic.sse", Protocol::Anthropic),
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_json_never_panics(body in arb_json()) {
        all_converters_survive(&body);
    }

    #[test]
    fn mutated_fixtures_never_panic(
        which in 0..REQUESTS.len() + RESPONSES.len(),
        node in any::<usize>(),
        with in arb_json(),
    ) {
        let rel = REQUESTS.iter().chain(RESPONSES).nth(which).unwrap();
        let mut body = fixture_json(rel);
        mutate(&mut body, node, with);
        all_converters_survive(&body);
    }

    #[test]
    fn arbitrary_error_bodies_never_panic(status in any::<u16>(), body in prop::collection::vec(any::<u8>(), 0..64)) {
        for client in Protocol::ALL {
            let (s, v) = convert_error(client, status, &body);
            prop_assert!((400..=599).contains(&s));
            prop_assert!(v.is_object());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_stream_converters(
        backend in protocol(),
        client in protocol(),
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        run_stream(backend, client, &split(&bytes, &cuts));
    }

    #[test]
    fn mutated_streams_never_panic(
        which in 0..STREAMS.len(),
        client in protocol(),
        flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let (rel, backend) = STREAMS[which];
        let mut bytes = fixture(rel);
        for (at, b) in flips {
            let i = at % bytes.len();
            bytes[i] = b;
        }
        run_stream(backend, client, &split(&bytes, &cuts));
    }

    /// Converted output does not depend on where the upstream bytes were split.
    #[test]
    fn stream_conversion_is_chunking_invariant(
        which in 0..STREAMS.len(),
        client in protocol(),
        cuts in prop::collection::vec(any::<usize>(), 1..12),
    ) {
        let (rel, backend) = STREAMS[which];
        let bytes = fixture(rel);
        let whole = run_stream(backend, client, &[&bytes]);
        prop_assert_eq!(run_stream(backend, client, &split(&bytes, &cuts)), whole);
    }
}

/// A generated SSE event and its wire text with a chosen line ending.
fn arb_sse() -> impl Strategy<Value = (Vec<SseEvent>, String)> {
    let line = "[a-z0-9 {}\":,]{0,12}";
    let event = (prop::option::of("[a-z_.]{1,10}"), prop::collection::vec(line, 1..4), any::<bool>());
    (prop::collection::vec(event, 0..6), prop::sample::select(vec!["\n", "\r\n", "\r"])).prop_map(|(events, nl)| {
        let mut text = String::new();
        let mut parsed = Vec::new();
        for (name, lines, comment) in events {
            if comment {
                text.push_str(&format!(": keep-alive{nl}"));
            }
            if let Some(n) = &name {
                text.push_str(&format!("event: {n}{nl}"));
            }
            for l in &lines {
                text.push_str(&format!("data: {l}{nl}"));
            }
            text.push_str(nl);
            parsed.push(SseEvent { event: name, data: lines.join("\n") });
        }
        (parsed, text)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The parser yields the same events however the bytes are split, and they are the events
    /// that were written.
    #[test]
    fn sse_parsing_is_chunking_invariant((events, text) in arb_sse(), cuts in prop::collection::vec(any::<usize>(), 0..16)) {
        let mut p = SseParser::new();
        let mut got = Vec::new();
        for piece in split(text.as_bytes(), &cuts) {
            got.extend(p.push(piece));
        }
        got.extend(p.finish());
        prop_assert_eq!(got, events);
    }
}

/// Events a misbehaving same-protocol upstream might send: well-formed ones, garbage, HTML,
/// comments, `[DONE]`.
fn arb_relay_input() -> impl Strategy<Value = String> {
    let event = prop_oneof![
        Just("data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n".to_string()),
        Just(
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"x\"}}\n\n"
                .to_string()
        ),
        Just("data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"x\"}]}}]}\n\n".to_string()),
        Just("data: [DONE]\n\n".to_string()),
        Just(": keep-alive\n\n".to_string()),
        Just("data: <html>502</html>\n\n".to_string()),
        "[ -~]{0,20}\n\n".prop_map(|s| format!("data: {s}")),
        "[ -~]{0,20}\n".prop_map(|s| s),
    ];
    prop::collection::vec(event, 0..12).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Same-protocol relays pass only well-formed events (JSON data, or OpenAI's `[DONE]`),
    /// whatever the upstream sends and wherever its bytes are split.
    #[test]
    fn relayed_streams_carry_only_well_formed_events(
        p in protocol(),
        input in arb_relay_input(),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let out = run_stream(p, p, &split(input.as_bytes(), &cuts));
        prop_assert_eq!(&out, &run_stream(p, p, &[input.as_bytes()]));
        for ev in SseParser::new().push(&out) {
            let done = p == Protocol::OpenAiChat && ev.data == "[DONE]";
            prop_assert!(done || serde_json::from_str::<Value>(&ev.data).is_ok(), "{:?} relayed {:?}", p, ev.data);
        }
    }
}
