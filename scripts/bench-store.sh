#!/usr/bin/env bash
# Storage benchmark: starts its own redis-server on a free loopback port (never 6379).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release -q -p poolgate-tests --bin store-bench
