//! Relaying a successful upstream answer to the client: unary bodies converted in one piece,
//! streams converted frame by frame as they arrive. The account's outcome is recorded when the
//! answer ends: one usage for a completed answer (also when the client leaves mid-stream, since
//! the upstream served it), an error when the upstream fails or stalls midway.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use futures::stream::{self, Stream, StreamExt};
use poolgate_store::Account;

use super::AppState;
use crate::convert::{Backend, Protocol, StreamConverter};
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
    /// Shared with the pool snapshot it was picked from (no copy per request).
    pub account: Arc<Account>,
    pub route: &'static str,
    pub started: Instant,
    pub policy: Policy,
    pub verdict: Verdict,
    pub first_byte: bool,
    /// The client key charged, set on the attempt that answers; its tokens settle at drop.
    pub charge: Option<crate::client_keys::Charge>,
    /// (input, output) tokens of the answer, as far as known.
    pub tokens: (i64, i64),
    /// Model name for the client key statistics.
    pub model: String,
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

    /// With `USAGE_COMMIT_BEFORE_LAST_BYTE`, records a successful answer now and waits until the
    /// store has its usage, so that what follows (the answer's last bytes) is only sent once the
    /// count is safe. Otherwise the outcome is recorded when `self` drops.
    pub async fn commit(&mut self) {
        if !matches!(self.verdict, Verdict::Success) || !self.state.config().usage_commit_first {
            return;
        }
        self.verdict = Verdict::Neutral;
        let s = &self.state;
        let taken = outcome::success(&s.tasks, &s.store, &s.selector, &self.pool, &self.account);
        if tokio::time::timeout(COMMIT_WAIT, taken).await.is_err() {
            tracing::warn!(pool = %self.pool, "usage commit is slow; sending the answer's end anyway");
        }
    }
}

/// Longest an answer's end waits for its usage commit (the store queues writes it cannot make,
/// so this is only reached when the store itself is stuck).
const COMMIT_WAIT: Duration = Duration::from_secs(2);

impl Drop for Tracked {
    fn drop(&mut self) {
        let s = &self.state;
        s.metrics.duration(self.route, self.started.elapsed());
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        if let Some(charge) = self.charge.take() {
            s.metrics.client_key_tokens(charge.label.as_deref(), self.tokens);
            let settlement = poolgate_store::Settlement {
                model: std::mem::take(&mut self.model),
                input_tokens: self.tokens.0,
                output_tokens: self.tokens.1,
                error: matches!(self.verdict, Verdict::Failed(_)),
            };
            crate::client_keys::settle(&s.tasks, &s.store, &charge, settlement);
        }
        match &self.verdict {
            Verdict::Success => {
                drop(outcome::success(&s.tasks, &s.store, &s.selector, &self.pool, &self.account));
            }
            Verdict::Neutral => {}
            Verdict::Failed(f) => {
                s.metrics.upstream_error(&self.pool, f.kind());
                outcome::failure(&s.tasks, &s.store, &s.selector, &self.pool, self.account.uuid(), f, self.policy);
            }
        }
    }
}

/// Status sent in the error event of a stream the upstream broke off.
const STREAM_BROKEN: u16 = 502;

/// A streamed answer in flight: the upstream body, the provider's adapter, the converter to
/// the client's protocol, and the outcome to record.
struct Answer {
    body: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    tracked: Tracked,
    adapter: Option<Box<dyn ResponseAdapter>>,
    converter: StreamConverter,
    idle: Duration,
    queue: VecDeque<Bytes>,
    done: bool,
    /// The request id, when the prompt log wants the answer's text.
    transcript_of: Option<String>,
    /// The upstream attempt's span, open until the answer ends.
    span: tracing::Span,
}

impl Answer {
    /// Reads the next upstream chunk and queues the client frames it yields.
    async fn step(&mut self) {
        match tokio::time::timeout(self.idle, self.body.next()).await {
            Ok(Some(Ok(bytes))) => {
                self.tracked.first_chunk();
                let bytes = match self.adapter.as_mut().map(|a| a.push(&bytes)) {
                    None => bytes,
                    Some(Ok(out)) => out,
                    Some(Err(e)) => return self.fail(super::dispatch::adapt_failure(e.clone()), e.status, &e.message),
                };
                let frames = self.converter.push(&bytes);
                self.queue.extend(frames);
                self.tracked.tokens = self.converter.tokens();
                if let Some(m) = self.converter.upstream_error() {
                    let message = format!("upstream reported an error mid-stream: {m}");
                    self.tracked.verdict = Verdict::Failed(Failure::Server { status: STREAM_BROKEN, message });
                    self.done = true;
                }
            }
            // A finished answer whose connection then fails or idles is still a complete answer.
            Ok(Some(Err(_)) | None) | Err(_) if self.converter.finished() => self.end().await,
            Ok(Some(Err(e))) => {
                tracing::warn!(pool = %self.tracked.pool, error = %error_chain(&e.without_url()), "upstream stream broke off");
                let message = "upstream connection failed mid-stream";
                self.fail(Failure::Network { message: message.into() }, STREAM_BROKEN, message);
            }
            Ok(None) => self.end().await,
            Err(_) => {
                let message = format!("upstream sent nothing for {} s", self.idle.as_secs());
                self.fail(Failure::Timeout { message: message.clone() }, 504, &message);
            }
        }
    }

    /// The upstream closed: a finished answer is committed, then its last frames are sent; one
    /// cut short is an error for the client and the account.
    async fn end(&mut self) {
        self.done = true;
        if let Some(mut adapter) = self.adapter.take() {
            match adapter.finish() {
                Ok(out) => {
                    let frames = self.converter.push(&out);
                    self.queue.extend(frames);
                }
                Err(e) => return self.fail(super::dispatch::adapt_failure(e.clone()), e.status, &e.message),
            }
        }
        if let Some(m) = self.converter.upstream_error() {
            let message = format!("upstream reported an error mid-stream: {m}");
            self.tracked.verdict = Verdict::Failed(Failure::Server { status: STREAM_BROKEN, message });
            return;
        }
        if !self.converter.finished() {
            let message = "upstream stream ended before the answer was finished";
            return self.fail(
                Failure::Server { status: STREAM_BROKEN, message: message.into() },
                STREAM_BROKEN,
                message,
            );
        }
        let frames = self.converter.finish();
        self.tracked.tokens = self.converter.tokens();
        crate::telemetry::record_tokens(&self.span, self.tracked.tokens);
        self.tracked.commit().await;
        self.queue.extend(frames);
        self.log_transcript(true);
    }

    fn log_transcript(&self, complete: bool) {
        if let (Some(id), Some(text)) = (&self.transcript_of, self.converter.answer_text()) {
            self.tracked.state.config().prompt_log.streamed_answer(id, text, complete);
        }
    }

    fn fail(&mut self, failure: Failure, status: u16, message: &str) {
        self.log_transcript(false);
        self.span.record("error.type", failure.kind());
        self.span.record("otel.status_code", "ERROR");
        self.done = true;
        self.tracked.verdict = Verdict::Failed(failure);
        let frames = self.converter.fail(status, message);
        self.queue.extend(frames);
    }
}

/// How a streamed answer is relayed.
pub struct StreamPlan<'a> {
    pub backend: Backend,
    pub client: Protocol,
    /// The model name converted chunks show.
    pub client_model: &'a str,
    /// Longest wait for the upstream's next chunk.
    pub idle: Duration,
    pub request_id: &'a str,
}

/// A streamed answer, relayed or converted event by event.
pub fn stream_response(
    upstream: reqwest::Response,
    plan: StreamPlan<'_>,
    tracked: Tracked,
    adapter: Option<Box<dyn ResponseAdapter>>,
) -> Response {
    let StreamPlan { backend, client, client_model, idle, request_id } = plan;
    let status = upstream.status();
    let upstream_protocol = match backend {
        Backend::PassThrough => client,
        Backend::Protocol(p) => p,
    };
    let mut converter = StreamConverter::new(upstream_protocol, client, client_model);
    if tracked.charge.is_some() || crate::telemetry::enabled() {
        converter = converter.counting_tokens();
    }
    let transcript_of = tracked.state.config().prompt_log.is_on().then(|| request_id.to_string());
    if transcript_of.is_some() {
        converter = converter.collecting_text();
    }
    let answer = Answer {
        body: Box::pin(upstream.bytes_stream()),
        tracked,
        adapter,
        converter,
        idle,
        queue: VecDeque::new(),
        done: false,
        transcript_of,
        span: if crate::telemetry::enabled() { tracing::Span::current() } else { tracing::Span::none() },
    };
    let frames = stream::unfold(answer, |mut a| async move {
        loop {
            if let Some(frame) = a.queue.pop_front() {
                return Some((Ok::<_, std::convert::Infallible>(frame), a));
            }
            if a.done {
                return None;
            }
            a.step().await;
        }
    });
    let mut resp = Response::new(Body::from_stream(frames));
    *resp.status_mut() = if backend == Backend::PassThrough { status } else { StatusCode::OK };
    let h = resp.headers_mut();
    h.insert("content-type", HeaderValue::from_static("text/event-stream"));
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
