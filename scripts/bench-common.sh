# Sourced by the gateway benchmarks: builds the release binaries, and gives a work folder,
# process cleanup on exit, free loopback ports and a wait for a server to answer.
cargo build --release -q -p poolgate-proxy --bin poolgate -p poolgate-tests --bin mock-upstream
BIN=target/release
WORK="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 200); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.05; done; echo "not up: $1" >&2; exit 1; }
