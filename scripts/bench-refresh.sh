#!/usr/bin/env bash
# Refresh-storm latency: 300 simultaneous requests on 3 replicas sharing one Redis, for one
# Codex account whose token is expired (one refresh, 50 ms token endpoint) vs valid.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release -p poolgate-proxy --test gateway_oauth -- --ignored --nocapture refresh_storm_latency_benchmark 2>&1 | grep '^BENCH'
