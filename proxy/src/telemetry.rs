//! OpenTelemetry traces, opt-in through the standard settings: with `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set, each client request is a server span and each
//! upstream attempt a client span under it, with the GenAI semantic-convention attributes, sent
//! over OTLP/HTTP (`http/protobuf`, or `http/json`) by the SDK's batch processor; W3C trace
//! context is taken from the client's `traceparent` and passed to the upstream. Without the
//! setting nothing is installed and no span leaves the process.
//!
//! Crates: `opentelemetry` / `opentelemetry_sdk` / `opentelemetry-otlp` (the project's own SDK
//! and exporter, which also read `OTEL_EXPORTER_OTLP_HEADERS`, `_TIMEOUT`, `_COMPRESSION`,
//! `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_BSP_*`), and
//! `tracing-opentelemetry` to turn the gateway's `tracing` spans into OpenTelemetry spans. The
//! exporter's HTTP client is the gateway's own reqwest (no second HTTP stack).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use axum::http::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;

static ENABLED: AtomicBool = AtomicBool::new(false);
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Whether spans are exported (and trace context propagated).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// What the environment asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Wanted {
    Off,
    Http(opentelemetry_otlp::Protocol),
    /// Asked for but not possible in this build; the reason is logged.
    Unsupported(String),
}

/// Reads the standard `OTEL_*` switches (`env` is the process environment in production).
pub fn wanted(env: &impl Fn(&str) -> Option<String>) -> Wanted {
    let get = |k: &str| env(k).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
    if get("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Wanted::Off;
    }
    if get("OTEL_TRACES_EXPORTER").is_some_and(|v| !v.split(',').any(|e| e.trim() == "otlp")) {
        return Wanted::Off;
    }
    if get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| get("OTEL_EXPORTER_OTLP_ENDPOINT")).is_none() {
        return Wanted::Off;
    }
    let protocol = get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| get("OTEL_EXPORTER_OTLP_PROTOCOL"));
    match protocol.as_deref() {
        None | Some("http/protobuf") => Wanted::Http(opentelemetry_otlp::Protocol::HttpBinary),
        Some("http/json") => Wanted::Http(opentelemetry_otlp::Protocol::HttpJson),
        Some(other) => Wanted::Unsupported(format!(
            "OTLP protocol {other:?} is not supported by this build (use http/protobuf or http/json); traces are off"
        )),
    }
}

/// The exporter's HTTP client: the gateway's reqwest, run on the gateway's runtime (the SDK's
/// batch processor exports from its own thread).
#[derive(Debug)]
struct Client {
    http: reqwest::Client,
    rt: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Client {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let http = self.http.clone();
        let sent = self.rt.spawn(async move {
            let request = reqwest::Request::try_from(request)?;
            let resp = http.execute(request).await?;
            let mut out = http::Response::builder().status(resp.status().as_u16());
            for (k, v) in resp.headers() {
                out = out.header(k.as_str(), v.as_bytes());
            }
            let body = resp.bytes().await?;
            Ok::<_, opentelemetry_http::HttpError>(out.body(body)?)
        });
        sent.await?
    }
}

/// The tracing layer exporting spans, when the environment asks for it. Call from within the
/// runtime that serves requests.
pub fn layer<S>() -> Option<impl tracing_subscriber::Layer<S>>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
    use tracing_subscriber::Layer;
    let protocol = match wanted(&|k| std::env::var(k).ok()) {
        Wanted::Off => return None,
        Wanted::Unsupported(why) => {
            eprintln!("poolgate: {why}");
            return None;
        }
        Wanted::Http(p) => p,
    };
    let rt = tokio::runtime::Handle::try_current().ok()?;
    let http = reqwest::Client::builder().build().ok()?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .with_http_client(Client { http, rt })
        .build();
    let exporter = match exporter {
        Ok(e) => e,
        Err(e) => {
            // Only the setting's name: a value (an endpoint with credentials, a header) is never
            // printed.
            let what = match &e {
                opentelemetry_otlp::ExporterBuildError::InvalidConfiguration(m) => {
                    format!("invalid {}", m.split(':').next().unwrap_or("setting"))
                }
                _ => "the exporter could not be built".to_string(),
            };
            eprintln!("poolgate: OTLP trace exporter not started: {what}; traces are off");
            return None;
        }
    };
    let mut resource = opentelemetry_sdk::Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("poolgate");
    }
    let provider = SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource.build()).build();
    let tracer = provider.tracer("poolgate");
    let _ = PROVIDER.set(provider);
    ENABLED.store(true, Ordering::Relaxed);
    // The gateway's own spans only: log events stay in the log.
    let only_spans = tracing_subscriber::filter::filter_fn(|m| {
        m.is_span() && *m.level() <= tracing::Level::INFO && m.target().starts_with("poolgate")
    });
    let layer = tracing_opentelemetry::layer().with_tracer(tracer).with_location(false).with_threads(false);
    Some(layer.with_filter(only_spans))
}

/// Sends the spans still queued (at shutdown).
pub async fn flush() {
    if let Some(p) = PROVIDER.get() {
        let p = p.clone();
        let _ = tokio::task::spawn_blocking(move || p.shutdown()).await;
    }
}

/// `gen_ai.system` of a pool type (the semantic conventions' well-known names where one fits).
pub fn gen_ai_system(pool: &str) -> &'static str {
    let base = pool.split_once("-custom").map_or(pool, |(b, _)| b);
    match base {
        p if p.starts_with("openai-codex") => "openai",
        p if p.starts_with("openai-qwen") => "qwen",
        p if p.starts_with("openai-iflow") => "iflow",
        p if p.starts_with("openai") || p.starts_with("openaiResponses") => "openai",
        p if p.starts_with("claude-kiro") => "aws.kiro",
        p if p.starts_with("claude") => "anthropic",
        p if p.starts_with("gemini") => "gcp.gemini",
        _ => "poolgate.forward",
    }
}

/// The upstream's status on the current (attempt) span.
pub fn record_status(status: u16) {
    if enabled() {
        tracing::Span::current().record("http.response.status_code", status);
    }
}

/// Token counts on an attempt's span, when known.
pub fn record_tokens(span: &tracing::Span, (input, output): (i64, i64)) {
    if !enabled() || (input, output) == (0, 0) {
        return;
    }
    span.record("gen_ai.usage.input_tokens", input);
    span.record("gen_ai.usage.output_tokens", output);
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct Headers(Vec<(String, String)>);

impl Injector for Headers {
    fn set(&mut self, key: &str, value: String) {
        self.0.push((key.to_string(), value));
    }
}

/// Makes `span` a child of the client's `traceparent`, when it sent one.
pub fn adopt_parent(span: &tracing::Span, headers: &HeaderMap) {
    if !enabled() || !headers.contains_key("traceparent") {
        return;
    }
    let cx = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    let _ = span.set_parent(cx);
}

/// Adds the current span's W3C trace context to an upstream request.
pub fn propagate(mut rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    if !enabled() {
        return rb;
    }
    let mut headers = Headers(Vec::new());
    TraceContextPropagator::new().inject_context(&tracing::Span::current().context(), &mut headers);
    for (k, v) in headers.0 {
        rb = rb.header(k, v);
    }
    rb
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_otlp::Protocol;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn the_standard_switches_decide() {
        assert_eq!(wanted(&env(&[])), Wanted::Off, "off without an endpoint");
        let on = &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")];
        assert_eq!(wanted(&env(on)), Wanted::Http(Protocol::HttpBinary));
        let traces = &[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c/v1/traces"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ];
        assert_eq!(wanted(&env(traces)), Wanted::Http(Protocol::HttpJson));
        let off = &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c"), ("OTEL_SDK_DISABLED", "true")];
        assert_eq!(wanted(&env(off)), Wanted::Off);
        let none = &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c"), ("OTEL_TRACES_EXPORTER", "none")];
        assert_eq!(wanted(&env(none)), Wanted::Off);
        let grpc = &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")];
        assert!(matches!(wanted(&env(grpc)), Wanted::Unsupported(m) if m.contains("grpc")));
    }
}
