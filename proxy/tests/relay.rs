//! The async relay: frames flow as upstream chunks arrive, upstream failures become client
//! error events, and dropping the client side drops (cancels) the upstream body.

use bytes::Bytes;
use futures::channel::mpsc;
use futures::executor::block_on;
use futures::{SinkExt, StreamExt};
use poolgate_proxy::convert::{convert_stream, Protocol, StreamConverter};

type Chunk = Result<Bytes, String>;

fn text(b: &Bytes) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const START: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m1\",\"model\":\"c\",\"usage\":{\"input_tokens\":3}}}\n\n";
const STOP: &str = "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
const TEXT: &str = "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n";

#[test]
fn frames_flow_before_the_upstream_ends() {
    block_on(async {
        let (mut tx, rx) = mpsc::channel::<Chunk>(4);
        let conv = StreamConverter::new(Protocol::Anthropic, Protocol::OpenAiChat, "m");
        let mut out = Box::pin(convert_stream(rx, conv));
        tx.send(Ok(Bytes::from_static(START.as_bytes()))).await.unwrap();
        let first = out.next().await.unwrap();
        assert!(text(&first).contains(r#""role":"assistant""#));
        tx.send(Ok(Bytes::from_static(TEXT.as_bytes()))).await.unwrap();
        let second = out.next().await.unwrap();
        assert!(text(&second).contains(r#""content":"Hi""#));
        tx.send(Ok(Bytes::from_static(STOP.as_bytes()))).await.unwrap();
        drop(tx);
        let rest: Vec<Bytes> = out.collect().await;
        assert_eq!(rest.last().map(text).as_deref(), Some("data: [DONE]\n\n"));
    });
}

#[test]
fn an_upstream_that_closes_before_finishing_is_an_error() {
    block_on(async {
        let upstream = futures::stream::iter(vec![Ok::<_, String>(Bytes::from_static(START.as_bytes()))]);
        let conv = StreamConverter::new(Protocol::Anthropic, Protocol::OpenAiChat, "m");
        let frames: Vec<String> = convert_stream(upstream, conv).map(|b| text(&b)).collect().await;
        let last = frames.last().cloned().unwrap_or_default();
        assert!(last.contains("ended before the answer was finished"), "{frames:?}");
        assert!(!frames.iter().any(|f| f.contains("[DONE]")), "{frames:?}");
    });
}

#[test]
fn upstream_failure_becomes_a_client_error_event() {
    block_on(async {
        let upstream =
            futures::stream::iter(vec![Ok(Bytes::from_static(START.as_bytes())), Err("connection reset".to_string())]);
        let conv = StreamConverter::new(Protocol::Anthropic, Protocol::OpenAiChat, "m");
        let frames: Vec<String> = convert_stream(upstream, conv).map(|b| text(&b)).collect().await;
        let n = frames.len();
        assert!(frames[n - 1].contains("upstream stream failed: connection reset"), "{frames:?}");
        assert!(frames[n - 1].contains(r#""type":"server_error""#));
        assert!(!frames.iter().any(|f| f.contains("[DONE]")), "the error ends the stream: {frames:?}");
    });
}

#[test]
fn dropping_the_client_stream_drops_the_upstream() {
    block_on(async {
        let (mut tx, rx) = mpsc::channel::<Chunk>(4);
        let conv = StreamConverter::new(Protocol::Anthropic, Protocol::Gemini, "m");
        let mut out = Box::pin(convert_stream(rx, conv));
        tx.send(Ok(Bytes::from_static(TEXT.as_bytes()))).await.unwrap();
        assert!(out.next().await.is_some());
        assert!(!tx.is_closed());
        // The client disconnects: the HTTP layer drops the body stream.
        drop(out);
        assert!(tx.is_closed(), "upstream receiver still alive after the client went away");
    });
}
