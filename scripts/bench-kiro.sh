#!/usr/bin/env bash
# Kiro event-stream decoder throughput (release build): bytes → frames → IR → Anthropic SSE.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release -p poolgate-proxy --test bench_kiro -- --ignored --nocapture 2>&1 | grep '^BENCH'
