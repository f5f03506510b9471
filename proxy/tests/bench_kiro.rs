//! Benchmark (run by `scripts/bench-kiro.sh`, not in CI): Kiro event-stream decoding
//! throughput, raw bytes to Anthropic SSE frames, in 4 KiB reads.

use std::time::Instant;

use poolgate_proxy::providers::kiro::events::TranslatorOptions;
use poolgate_proxy::providers::kiro::eventstream::encode_frame;
use poolgate_proxy::providers::kiro::KiroStream;

fn stream_bytes(events: usize) -> Vec<u8> {
    let headers =
        [(":event-type", "assistantResponseEvent"), (":content-type", "application/json"), (":message-type", "event")];
    let mut out = Vec::new();
    for i in 0..events {
        let payload = format!("{{\"content\":\"token {i} of a longer answer, \"}}");
        out.extend(encode_frame(&headers, payload.as_bytes()));
    }
    let usage =
        [(":event-type", "contextUsageEvent"), (":content-type", "application/json"), (":message-type", "event")];
    out.extend(encode_frame(&usage, br#"{"contextUsagePercentage":1.25}"#));
    out
}

#[test]
#[ignore]
fn kiro_decoder_throughput_benchmark() {
    let events = 20_000;
    let bytes = stream_bytes(events);
    let rounds = 10;
    let started = Instant::now();
    let mut frames_out = 0usize;
    for _ in 0..rounds {
        let mut s = KiroStream::new("claude-sonnet-4-5", TranslatorOptions::default());
        for chunk in bytes.chunks(4096) {
            frames_out += s.push(chunk).map(|f| f.len()).unwrap_or(0);
        }
        frames_out += s.finish().map(|f| f.len()).unwrap_or(0);
    }
    let secs = started.elapsed().as_secs_f64();
    let mb = (bytes.len() * rounds) as f64 / 1e6;
    println!(
        "BENCH kiro-decode: {:.1} MB/s, {:.0} events/s ({} bytes x {rounds}, {frames_out} SSE frames out)",
        mb / secs,
        (events * rounds) as f64 / secs,
        bytes.len()
    );
    assert!(frames_out > events * rounds);
}
