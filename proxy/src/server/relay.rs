//! Relaying a successful upstream answer to the client: unary bodies converted in one piece,
//! streams converted frame by frame as they arrive. The account's outcome is recorded when the
//! answer ends: one usage for a completed answer (also when the client leaves mid-stream, since
//! the upstream served it), an error when the upstream fails or stalls midway.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use futures::stream::{self, Stream, StreamExt};
use poolgate_store::Account;

use super::AppState;
use crate::convert::{convert_stream, Backend, Protocol, StreamConverter};
use crate::pool::outcome::{self, Failure, Policy};
use crate::pool::select::InFlight;
use crate::pool::slots::SlotGuard;
use crate::providers::ResponseAdapter;

/// What the answer did to the account, recorded when it ends.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Served: one usage.
    Success,
    /// Failed: an error on the account.
    Failed(Failure),
    /// Neither (the request's own fault, e.g. an upstream 400).
    Neutral,
}

/// Everything that must live as long as the answer, and what to record when it ends.
pub struct Tracked {
    pub state: Arc<AppState>,
    pub pool: String,
    pub account: Account,
    pub route: &'static str,
    pub started: Instant,
    pub policy: Policy,
    pub verdict: Verdict,
    pub first_byte: bool,
    pub _inflight: InFlight,
    pub _slot: Option<SlotGuard>,
}

impl Tracked {
    pub fn first_chunk(&mut self) {
        if !self.first_byte {
            self.first_byte = true;
            self.state.metrics.ttfb(self.route, self.started.elapsed());
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let s = &self.state;
        s.metrics.duration(self.route, self.started.elapsed());
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        match &self.verdict {
            Verdict::Success => outcome::success(&s.tasks, &s.store, &s.selector, &self.pool, &self.account),
            Verdict::Neutral => {}
            Verdict::Failed(f) => {
                s.metrics.upstream_error(&self.pool, f.kind());
                outcome::failure(&s.tasks, &s.store, &s.selector, &self.pool, self.account.uuid(), f, self.policy);
            }
        }
    }
}

/// The upstream body as a stream that records the outcome and never waits longer than `idle`
/// for the next chunk.
fn tracked_stream(
    upstream: reqwest::Response,
    tracked: Tracked,
    idle: Duration,
    adapter: Option<Box<dyn ResponseAdapter>>,
) -> impl Stream<Item = Result<Bytes, String>> + Send + 'static {
    let body = Box::pin(upstream.bytes_stream());
    stream::unfold(Some((body, tracked, adapter)), move |st| async move {
        let (mut body, mut t, mut adapter) = st?;
        match tokio::time::timeout(idle, body.next()).await {
            Ok(Some(Ok(bytes))) => {
                t.first_chunk();
                match adapter.as_mut().map(|a| a.push(&bytes)) {
                    None => Some((Ok(bytes), Some((body, t, adapter)))),
                    Some(Ok(out)) => Some((Ok(out), Some((body, t, adapter)))),
                    Some(Err(e)) => {
                        t.verdict = Verdict::Failed(super::dispatch::adapt_failure(e.clone()));
                        Some((Err(e.message), None))
                    }
                }
            }
            Ok(Some(Err(e))) => {
                let message = format!("upstream connection failed mid-stream: {}", error_chain(&e));
                t.verdict = Verdict::Failed(Failure::Network { message: message.clone() });
                Some((Err(message), None))
            }
            Ok(None) => match adapter.take().map(|mut a| a.finish()) {
                None => None,
                Some(Ok(out)) => Some((Ok(out), Some((body, t, None)))),
                Some(Err(e)) => {
                    t.verdict = Verdict::Failed(super::dispatch::adapt_failure(e.clone()));
                    Some((Err(e.message), None))
                }
            },
            Err(_) => {
                let message = format!("upstream sent nothing for {} s", idle.as_secs());
                t.verdict = Verdict::Failed(Failure::Timeout { message: message.clone() });
                Some((Err(message), None))
            }
        }
    })
}

/// A streamed answer.
pub fn stream_response(
    upstream: reqwest::Response,
    backend: Backend,
    client: Protocol,
    client_model: &str,
    tracked: Tracked,
    idle: Duration,
    adapter: Option<Box<dyn ResponseAdapter>>,
) -> Response {
    let status = upstream.status();
    let content_type = upstream.headers().get("content-type").cloned();
    let body = tracked_stream(upstream, tracked, idle, adapter);
    let (body, content_type) = match backend {
        Backend::PassThrough => {
            (Body::from_stream(body), content_type.unwrap_or(HeaderValue::from_static("text/event-stream")))
        }
        Backend::Protocol(p) => {
            let converter = StreamConverter::new(p, client, client_model);
            let frames = convert_stream(body, converter).map(Ok::<_, std::convert::Infallible>);
            (Body::from_stream(frames), HeaderValue::from_static("text/event-stream"))
        }
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = if backend == Backend::PassThrough { status } else { StatusCode::OK };
    let h = resp.headers_mut();
    h.insert("content-type", content_type);
    h.insert("cache-control", HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

/// A unary answer already read in full.
pub fn unary_response(status: StatusCode, content_type: Option<HeaderValue>, body: Bytes) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert("content-type", content_type.unwrap_or(HeaderValue::from_static("application/json")));
    resp
}

/// `e` with its sources (reqwest's top-level message alone says little).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}
