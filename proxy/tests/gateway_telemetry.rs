//! OpenTelemetry traces against a real OTLP/HTTP receiver (`poolgate_tests::otlp_receiver`):
//! the request is a server span under the client's `traceparent`, each upstream attempt a client
//! span under it with the GenAI attributes (system, model, token counts) and the outcome, the
//! upstream gets the attempt's trace context, `OTEL_EXPORTER_OTLP_HEADERS` reach the collector
//! and never the log, both OTLP encodings work, and without the settings nothing is sent.

mod gateway_common;

use std::time::{Duration, Instant};

use gateway_common::*;
use poolgate_tests::mock_upstream::{MockUpstream, Script};
use poolgate_tests::otlp_receiver::{OtlpReceiver, Span};
use serde_json::json;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";
const OTEL_SECRET: &str = "otel-collector-secret";

async fn spans_until(rx: &OtlpReceiver, what: &str, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let spans = rx.spans();
        if done(&spans) {
            return spans;
        }
        assert!(Instant::now() < deadline, "{what}: spans received: {spans:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn otel_env(rx: &OtlpReceiver, protocol: &str) -> Vec<(&'static str, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", rx.endpoint()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.into()),
        ("OTEL_EXPORTER_OTLP_HEADERS", format!("authorization=Bearer%20{OTEL_SECRET}")),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_upstream_attempts_are_exported_as_spans() {
    let rx = OtlpReceiver::start().await.expect("receiver");
    let mock = MockUpstream::start().await.expect("mock");
    // The first account fails with a 500; the request fails over to the second.
    mock.set_for_key("sk-bad", Script::status(500));
    let pools = json!({"openai-custom": [
        account("openai-custom", "bad", &mock.url("/v1"), "sk-bad"),
        account("openai-custom", "good", &mock.url("/v1"), "sk-good"),
    ]});
    let dir = config_dir(&json!({"SCHEDULED_HEALTH_CHECK": {"enabled": false}}), &pools);
    let gw = Gateway::start(dir.path(), &otel_env(&rx, "http/protobuf")).await;
    let traceparent = format!("00-{TRACE_ID}-{PARENT_ID}-01");
    let mut answered = 0;
    for _ in 0..2 {
        let (status, body) = post_with(
            &gw.url("/v1/chat/completions"),
            &chat("gpt-4o", false),
            &[("authorization", format!("Bearer {KEY}")), ("traceparent", traceparent.clone())],
        )
        .await;
        assert_eq!(status, 200, "{body}");
        answered += 1;
    }
    assert_eq!(answered, 2);

    let spans = spans_until(&rx, "two requests with their attempts", |s| {
        s.iter().filter(|s| s.kind == 2).count() >= 2 && s.iter().filter(|s| s.kind == 3).count() >= 3
    })
    .await;
    let servers: Vec<&Span> = spans.iter().filter(|s| s.kind == 2).collect();
    for s in &servers {
        assert_eq!((s.trace_id.as_str(), s.parent_span_id.as_str()), (TRACE_ID, PARENT_ID), "under the client's trace");
        assert_eq!(s.name, "POST /v1/chat/completions");
        assert_eq!(s.attr("http.response.status_code"), Some("200"));
        assert_eq!(s.attr("gen_ai.request.model"), Some("gpt-4o"));
        assert_eq!(s.resource.get("service.name").map(String::as_str), Some("poolgate"));
    }
    let clients: Vec<&Span> = spans.iter().filter(|s| s.kind == 3).collect();
    for c in &clients {
        assert!(servers.iter().any(|s| s.span_id == c.parent_span_id && s.trace_id == c.trace_id), "{c:#?}");
        assert_eq!(c.name, "chat gpt-4o");
        assert_eq!(c.attr("gen_ai.system"), Some("openai"));
        assert_eq!(c.attr("gen_ai.operation.name"), Some("chat"));
        assert_eq!(c.attr("gen_ai.request.model"), Some("gpt-4o"));
        assert_eq!(c.attr("poolgate.pool"), Some("openai-custom"));
    }
    let failed: Vec<&&Span> = clients.iter().filter(|c| c.attr("poolgate.account") == Some("bad")).collect();
    assert!(!failed.is_empty(), "the failed attempt has its span");
    for f in &failed {
        assert_eq!(
            (f.status, f.attr("http.response.status_code"), f.attr("error.type")),
            (2, Some("500"), Some("server"))
        );
    }
    let good: Vec<&&Span> = clients.iter().filter(|c| c.attr("poolgate.account") == Some("good")).collect();
    assert_eq!(good.len(), 2, "{clients:#?}");
    for g in &good {
        assert_eq!(g.attr("gen_ai.usage.input_tokens"), Some("5"));
        assert_eq!(g.attr("gen_ai.usage.output_tokens"), Some("3"));
        assert_ne!(g.status, 2);
    }

    // Each upstream call carried its attempt's trace context.
    let sent: Vec<String> = mock
        .requests()
        .iter()
        .filter_map(|h| h.headers.get("traceparent").and_then(|v| v.to_str().ok()).map(str::to_string))
        .collect();
    assert_eq!(sent.len(), mock.requests().len(), "every upstream call: {sent:?}");
    for tp in &sent {
        let parts: Vec<&str> = tp.split('-').collect();
        assert_eq!(parts[1], TRACE_ID, "{tp}");
        assert!(clients.iter().any(|c| c.span_id == parts[2]), "parent is an attempt span: {tp}");
    }

    // A converted stream reports its tokens when it ends.
    let anthropic =
        json!({"model": "claude-x", "max_tokens": 16, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let (status, _) = post(&gw.url("/v1/messages"), &anthropic).await;
    assert_eq!(status, 200);
    let spans = spans_until(&rx, "the streamed attempt", |s| {
        s.iter().any(|s| s.kind == 3 && s.name == "chat claude-x" && s.attr("gen_ai.usage.output_tokens").is_some())
    })
    .await;
    let streamed = spans
        .iter()
        .find(|s| s.kind == 3 && s.name == "chat claude-x" && s.attr("poolgate.account") == Some("good"))
        .expect("span");
    assert_eq!(streamed.attr("gen_ai.usage.output_tokens"), Some("3"), "{streamed:#?}");

    // The collector got its header; the log never shows it.
    assert!(rx.authorization_headers().iter().all(|a| a == &format!("Bearer {OTEL_SECRET}")));
    assert!(!rx.authorization_headers().is_empty());
    assert!(rx.content_types().iter().all(|c| c.starts_with("application/x-protobuf")), "{:?}", rx.content_types());
    assert!(!gw.logs().contains(OTEL_SECRET), "the OTLP header value is never logged");
}

#[tokio::test]
async fn otlp_json_works_and_without_the_settings_nothing_is_traced() {
    let rx = OtlpReceiver::start().await.expect("receiver");
    let mock = MockUpstream::start().await.expect("mock");
    let pools = json!({"openai-custom": [account("openai-custom", "a", &mock.url("/v1"), "sk-a")]});
    let dir = config_dir(&json!({"SCHEDULED_HEALTH_CHECK": {"enabled": false}}), &pools);
    let gw = Gateway::start(dir.path(), &otel_env(&rx, "http/json")).await;
    assert_eq!(post(&gw.url("/v1/chat/completions"), &chat("m", false)).await.0, 200);
    let spans = spans_until(&rx, "JSON export", |s| s.iter().any(|s| s.kind == 3)).await;
    assert!(rx.content_types().iter().all(|c| c.starts_with("application/json")), "{:?}", rx.content_types());
    let server = spans.iter().find(|s| s.kind == 2).expect("server span");
    assert!(server.parent_span_id.is_empty(), "no traceparent: a root span");
    let client = spans.iter().find(|s| s.kind == 3).expect("client span");
    assert_eq!(
        (client.parent_span_id.as_str(), client.attr("gen_ai.usage.input_tokens")),
        (server.span_id.as_str(), Some("5"))
    );
    drop(gw);

    // Off: no trace context leaves the gateway (and the receiver gets nothing more).
    let before = rx.spans().len();
    let gw = Gateway::start(dir.path(), &[]).await;
    assert_eq!(post(&gw.url("/v1/chat/completions"), &chat("m", false)).await.0, 200);
    let last = mock.requests().into_iter().last().expect("hit");
    assert!(last.headers.get("traceparent").is_none(), "no traceparent without tracing");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.spans().len(), before);
    drop(gw);

    // Malformed settings with secrets in them: the gateway serves, says traces are off or sends
    // nowhere, and never prints the values.
    for (endpoint, protocol) in [
        (format!("http://user:{OTEL_SECRET}@[::1"), "http/protobuf"),
        (format!("{OTEL_SECRET}://nowhere"), "http/json"),
        (rx.endpoint(), "grpc"),
    ] {
        let env = vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.clone()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.to_string()),
            ("OTEL_EXPORTER_OTLP_HEADERS", format!("authorization={OTEL_SECRET}")),
        ];
        let gw = Gateway::start(dir.path(), &env).await;
        assert_eq!(post(&gw.url("/v1/chat/completions"), &chat("m", false)).await.0, 200, "{endpoint}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!gw.logs().contains(OTEL_SECRET), "{endpoint}: {}", gw.logs());
        if protocol == "grpc" {
            assert!(gw.logs().contains("not supported"), "grpc is refused with a message: {}", gw.logs());
        }
    }
    assert_eq!(rx.spans().len(), before, "a refused protocol sends nothing");
}
