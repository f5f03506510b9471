//! An OTLP/HTTP trace receiver, as an OpenTelemetry Collector serves it: `POST /v1/traces` with
//! an `ExportTraceServiceRequest` in protobuf (`application/x-protobuf`) or in OTLP's JSON
//! encoding (`application/json`), answered with an empty `ExportTraceServiceResponse`. The spans
//! received are kept, flattened, for the tests to read.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use parking_lot::Mutex;
use prost::Message;
use serde_json::Value;

/// One received span.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub name: String,
    /// Hex, as in `traceparent`.
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    /// OTLP's SpanKind: 2 server, 3 client.
    pub kind: i32,
    /// String, integer and boolean attributes, as text.
    pub attributes: HashMap<String, String>,
    /// `service.name` and the other resource attributes.
    pub resource: HashMap<String, String>,
    /// Status code: 0 unset, 1 ok, 2 error.
    pub status: i32,
}

impl Span {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

#[derive(Default)]
struct Received {
    spans: Mutex<Vec<Span>>,
    /// Content types of the export requests.
    content_types: Mutex<Vec<String>>,
    /// Header values of interest (`authorization` from `OTEL_EXPORTER_OTLP_HEADERS`).
    authorization: Mutex<Vec<String>>,
}

pub struct OtlpReceiver {
    addr: SocketAddr,
    got: Arc<Received>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl OtlpReceiver {
    pub async fn start() -> std::io::Result<Self> {
        let got = Arc::new(Received::default());
        let app = Router::new().route("/v1/traces", post(export)).with_state(got.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, got, task })
    }

    /// The base for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn spans(&self) -> Vec<Span> {
        self.got.spans.lock().clone()
    }

    pub fn content_types(&self) -> Vec<String> {
        self.got.content_types.lock().clone()
    }

    pub fn authorization_headers(&self) -> Vec<String> {
        self.got.authorization.lock().clone()
    }
}

async fn export(State(got): State<Arc<Received>>, headers: HeaderMap, body: Bytes) -> Response {
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    if let Some(a) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        got.authorization.lock().push(a.to_string());
    }
    let spans = if ct.starts_with("application/x-protobuf") {
        match ExportTraceServiceRequest::decode(body) {
            Ok(req) => from_proto(req),
            Err(e) => return (StatusCode::BAD_REQUEST, format!("bad protobuf: {e}")).into_response(),
        }
    } else if ct.starts_with("application/json") {
        match serde_json::from_slice::<Value>(&body) {
            Ok(v) => from_json(&v),
            Err(e) => return (StatusCode::BAD_REQUEST, format!("bad JSON: {e}")).into_response(),
        }
    } else {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported content type").into_response();
    };
    got.content_types.lock().push(ct.clone());
    got.spans.lock().extend(spans);
    // An empty ExportTraceServiceResponse, in the request's encoding.
    if ct.starts_with("application/json") {
        ([("content-type", "application/json")], "{}").into_response()
    } else {
        ([("content-type", "application/x-protobuf")], Vec::<u8>::new()).into_response()
    }
}

fn any_text(v: Option<&Any>) -> Option<String> {
    match v? {
        Any::StringValue(s) => Some(s.clone()),
        Any::IntValue(i) => Some(i.to_string()),
        Any::BoolValue(b) => Some(b.to_string()),
        Any::DoubleValue(d) => Some(d.to_string()),
        _ => None,
    }
}

fn from_proto(req: ExportTraceServiceRequest) -> Vec<Span> {
    let mut out = Vec::new();
    for rs in req.resource_spans {
        let resource: HashMap<String, String> = rs
            .resource
            .map(|r| r.attributes)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|kv| Some((kv.key, any_text(kv.value.as_ref()?.value.as_ref())?)))
            .collect();
        for ss in rs.scope_spans {
            for s in ss.spans {
                let attributes = s
                    .attributes
                    .into_iter()
                    .filter_map(|kv| Some((kv.key, any_text(kv.value.as_ref()?.value.as_ref())?)))
                    .collect();
                out.push(Span {
                    name: s.name,
                    trace_id: hex::encode(&s.trace_id),
                    span_id: hex::encode(&s.span_id),
                    parent_span_id: hex::encode(&s.parent_span_id),
                    kind: s.kind,
                    attributes,
                    resource: resource.clone(),
                    status: s.status.map_or(0, |st| st.code),
                });
            }
        }
    }
    out
}

/// OTLP/JSON: ids in hex, 64-bit integers as strings, enums as numbers.
fn json_attrs(list: Option<&Value>) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for kv in list.and_then(Value::as_array).into_iter().flatten() {
        let (Some(k), Some(v)) = (kv["key"].as_str(), kv.get("value")) else { continue };
        let text = v["stringValue"]
            .as_str()
            .map(str::to_string)
            .or_else(|| v["intValue"].as_str().map(str::to_string))
            .or_else(|| v["intValue"].as_i64().map(|i| i.to_string()))
            .or_else(|| v["boolValue"].as_bool().map(|b| b.to_string()))
            .or_else(|| v["doubleValue"].as_f64().map(|d| d.to_string()));
        if let Some(t) = text {
            out.insert(k.to_string(), t);
        }
    }
    out
}

fn from_json(v: &Value) -> Vec<Span> {
    let mut out = Vec::new();
    for rs in v["resourceSpans"].as_array().into_iter().flatten() {
        let resource = json_attrs(rs.pointer("/resource/attributes"));
        for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
            for s in ss["spans"].as_array().into_iter().flatten() {
                let text = |k: &str| s[k].as_str().unwrap_or_default().to_string();
                out.push(Span {
                    name: text("name"),
                    trace_id: text("traceId").to_lowercase(),
                    span_id: text("spanId").to_lowercase(),
                    parent_span_id: text("parentSpanId").to_lowercase(),
                    kind: s["kind"].as_i64().unwrap_or(0) as i32,
                    attributes: json_attrs(s.get("attributes")),
                    resource: resource.clone(),
                    status: s.pointer("/status/code").and_then(Value::as_i64).unwrap_or(0) as i32,
                });
            }
        }
    }
    out
}
