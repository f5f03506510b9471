//! Async glue: an upstream body stream in, client SSE frames out, frame by frame.
//!
//! The returned stream owns the upstream stream. When the client disconnects, the HTTP layer
//! drops the response body and with it the upstream body, which aborts the upstream request;
//! no task is left reading from the provider.

use std::collections::VecDeque;
use std::fmt::Display;
use std::pin::Pin;

use bytes::Bytes;
use futures::stream::{self, Stream, StreamExt};

use super::stream::StreamConverter;

/// HTTP status reported to the client when the upstream body fails midway.
const UPSTREAM_FAILED: u16 = 502;

/// Converts `upstream` chunk by chunk with `converter`. An upstream error, or an upstream that
/// closes before finishing the answer, ends the stream with an error event in the client
/// protocol and nothing after it.
pub fn convert_stream<S, E>(upstream: S, converter: StreamConverter) -> impl Stream<Item = Bytes> + Send
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Display,
{
    let state = State { upstream: Some(Box::pin(upstream)), converter, queue: VecDeque::new() };
    stream::unfold(state, |mut st| async move {
        loop {
            if let Some(frame) = st.queue.pop_front() {
                return Some((frame, st));
            }
            let upstream = st.upstream.as_mut()?;
            match upstream.next().await {
                Some(Ok(bytes)) => st.queue.extend(st.converter.push(&bytes)),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "upstream stream failed midway");
                    let message = format!("upstream stream failed: {e}");
                    st.queue.extend(st.converter.fail(UPSTREAM_FAILED, &message));
                    st.upstream = None;
                }
                None if st.converter.finished() || st.converter.upstream_error().is_some() => {
                    st.queue.extend(st.converter.finish());
                    st.upstream = None;
                }
                None => {
                    let message = "upstream stream ended before the answer was finished";
                    st.queue.extend(st.converter.fail(UPSTREAM_FAILED, message));
                    st.upstream = None;
                }
            }
        }
    })
}

struct State<S> {
    upstream: Option<Pin<Box<S>>>,
    converter: StreamConverter,
    queue: VecDeque<Bytes>,
}
