//! Golden tests: every protocol pair, for requests (client → backend), unary responses and
//! streams (backend → client) and error bodies. Inputs are real wire-format fixtures under
//! `tests/golden/<kind>/<scenario>/<protocol>.{json,sse}`; expected outputs live next to them in
//! `expected/<from>-to-<to>.*`. Run with `UPDATE_GOLDEN=1` to (re)write expected files, then
//! review the diff.

use std::fs;
use std::path::{Path, PathBuf};

use poolgate_proxy::convert::{
    convert_error, convert_request_with, convert_response_at, parse_body, Protocol, RequestOverrides, StreamConverter,
};
use serde_json::{json, Value};

const CREATED: i64 = 1_700_000_099;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn read_json(path: &Path) -> Value {
    parse_body(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Compares with the expected file, or writes it when `UPDATE_GOLDEN` is set.
fn check(path: &Path, actual: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).unwrap();
        }
        fs::write(path, actual).unwrap();
        return;
    }
    let expected = String::from_utf8(read(path)).unwrap();
    assert!(
        expected == actual,
        "golden mismatch for {}\n--- expected\n{expected}\n--- actual\n{actual}\n(rerun with UPDATE_GOLDEN=1 to accept)",
        path.display()
    );
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap() + "\n"
}

fn pairs() -> impl Iterator<Item = (Protocol, Protocol)> {
    Protocol::ALL.into_iter().flat_map(|a| Protocol::ALL.into_iter().map(move |b| (a, b))).filter(|(a, b)| a != b)
}

fn expected_path(kind: &str, scenario: &str, from: Protocol, to: Protocol, ext: &str) -> PathBuf {
    root().join(kind).join(scenario).join("expected").join(format!("{from}-to-{to}.{ext}"))
}

fn request_case(scenario: &str, stream: bool) {
    for (client, backend) in pairs() {
        let input = read_json(&root().join("requests").join(scenario).join(format!("{client}.json")));
        // A Gemini client names the model and streaming in the URL.
        let overrides = match client {
            Protocol::Gemini => RequestOverrides { model: Some("gemini-2.5-flash".into()), stream: Some(stream) },
            _ => RequestOverrides::default(),
        };
        let out = convert_request_with(client, backend, &input, &overrides)
            .unwrap_or_else(|e| panic!("{scenario} {client} -> {backend}: {e}"));
        assert_eq!(out.stream, stream, "{scenario} {client} -> {backend}");
        let actual = json!({"model": out.model, "stream": out.stream, "body": out.body});
        check(&expected_path("requests", scenario, client, backend, "json"), &pretty(&actual));
    }
}

#[test]
fn requests_full_conversation() {
    request_case("full", true);
}

#[test]
fn requests_structured_output() {
    request_case("structured", false);
}

fn response_case(scenario: &str) {
    for (backend, client) in pairs() {
        let input = read_json(&root().join("responses").join(scenario).join(format!("{backend}.json")));
        let out = convert_response_at(backend, client, &input, CREATED)
            .unwrap_or_else(|e| panic!("{scenario} {backend} -> {client}: {e}"));
        check(&expected_path("responses", scenario, backend, client, "json"), &pretty(&out));
    }
}

#[test]
fn responses_tool_use() {
    response_case("tool_use");
}

#[test]
fn responses_truncated() {
    response_case("truncated");
}

fn convert_stream(backend: Protocol, client: Protocol, input: &[u8], chunk: usize) -> String {
    let mut conv = StreamConverter::new(backend, client, "").with_created(CREATED);
    let mut out = Vec::new();
    for piece in input.chunks(chunk) {
        out.extend(conv.push(piece));
    }
    out.extend(conv.finish());
    out.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect()
}

fn stream_case(scenario: &str) {
    for (backend, client) in pairs() {
        let input = read(&root().join("streams").join(scenario).join(format!("{backend}.sse")));
        let whole = convert_stream(backend, client, &input, input.len().max(1));
        // Same output when the upstream bytes arrive one at a time or in odd-sized pieces.
        for chunk in [1, 7] {
            assert_eq!(
                convert_stream(backend, client, &input, chunk),
                whole,
                "{scenario} {backend} -> {client} chunk {chunk}"
            );
        }
        check(&expected_path("streams", scenario, backend, client, "sse"), &whole);
    }
}

#[test]
fn streams_tool_use() {
    stream_case("tool_use");
}

#[test]
fn streams_truncated() {
    stream_case("truncated");
}

#[test]
fn streams_error_midway() {
    stream_case("error");
}

#[test]
fn upstream_errors() {
    for backend in Protocol::ALL {
        let input = read_json(&root().join("errors").join(format!("{backend}.json")));
        let status = u16::try_from(input["status"].as_u64().unwrap()).unwrap();
        let body = serde_json::to_vec(&input["body"]).unwrap();
        for client in Protocol::ALL {
            let (status, body) = convert_error(client, status, &body);
            let actual = json!({"status": status, "body": body});
            let path = root().join("errors/expected").join(format!("{backend}-to-{client}.json"));
            check(&path, &pretty(&actual));
        }
    }
}
