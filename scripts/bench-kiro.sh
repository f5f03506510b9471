#!/usr/bin/env bash
# Kiro (release builds): event-stream decoder throughput (bytes → frames → IR → Anthropic SSE),
# and what a replica adds to a streamed Kiro answer against replaying its request to the mock.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release -p poolgate-proxy --test bench_kiro -- --ignored --nocapture 2>&1 | grep '^BENCH'
cargo test --release -p poolgate-proxy --test gateway_oauth -- --ignored --nocapture kiro_gateway_overhead_benchmark 2>&1 | grep '^BENCH'
