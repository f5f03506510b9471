#!/usr/bin/env bash
# Gateway overhead benchmark (gateway-benchmarks.md §4): wrk drives poolgate in front of an
# instant mock upstream, and the same load straight at the mock; reports requests/s and added
# latency p50/p99 at 1 and 64 connections, in file mode and in Redis mode, plus Redis commands
# per request (INFO commandstats). Not a test: prints a Markdown table.
#
# Usage: scripts/bench-gateway.sh [seconds per run, default 10]
# COMMIT_MODES="false true" runs each mode with USAGE_COMMIT_BEFORE_LAST_BYTE off and on (the
# default runs only the default, on).
# CLIENT_KEY_MODES="off on" also runs Redis mode with a client key (one admission script per
# request, no limit reached) beside the main key.
# POOL_SIZE=N puts N accounts in the pool (default 4; subscription pools hold hundreds).
# BINS="before=/path/to/old/poolgate after=target/release/poolgate" runs every mode with each
# binary, one after the other in the same run (before/after comparisons); the default is the
# freshly built one.
# UPSTREAM=nginx answers from nginx (Debian's nginx: `return 200` of a fixed body, one worker)
# instead of the project's mock; STREAM=1 asks for SSE answers (8 chunks, usage, [DONE]) instead
# of unary ones. Both show in the table's heading.
# Needs: wrk (apt-get install wrk), redis-server, redis-cli. Uses free loopback ports only.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR="${1:-10}"
command -v wrk >/dev/null || { echo "install wrk (apt-get install wrk)" >&2; exit 1; }

# shellcheck source=scripts/bench-common.sh
source scripts/bench-common.sh

KEY=bench-key
MOCK_PORT=$(free_port)
UPSTREAM="${UPSTREAM:-mock}"
STREAM="${STREAM:-0}"
STREAM_FLAG=false; [ "$STREAM" = 1 ] && STREAM_FLAG=true
if [ "$UPSTREAM" = nginx ]; then
  command -v nginx >/dev/null || { echo "install nginx (apt-get install nginx)" >&2; exit 1; }
  mkdir -p "$WORK/nginx/logs"
  UNARY='{"id":"chatcmpl-nginx","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from nginx"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}'
  SSE=""
  for i in 0 1 2 3 4 5 6 7; do
    SSE+="data: {\"id\":\"chatcmpl-nginx\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok$i \"},\"finish_reason\":null}]}"$'\n\n'
  done
  SSE+='data: {"id":"chatcmpl-nginx","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":8,"total_tokens":13}}'$'\n\n''data: [DONE]'$'\n\n'
  if [ "$STREAM" = 1 ]; then ANSWER_TYPE=text/event-stream; ANSWER="$SSE"; else ANSWER_TYPE=application/json; ANSWER="$UNARY"; fi
  cat >"$WORK/nginx/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$MOCK_PORT;
    location / { default_type $ANSWER_TYPE; return 200 '$ANSWER'; }
  }
}
NGINX
  nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" >"$WORK/mock.log" 2>&1 &
else
  "$BIN/mock-upstream" --port "$MOCK_PORT" --threads 1 --chunks 8 >"$WORK/mock.log" 2>&1 &
fi
PIDS+=($!)
sleep 0.3
MOCK="http://127.0.0.1:$MOCK_PORT"

BODY='{"model":"gpt-4o-mini","stream":'$STREAM_FLAG',"messages":[{"role":"user","content":"Say hello in one short sentence."}],"max_tokens":16}'
CLIENT_KEY=maki_benchBENCHbench0123456789abcdefghij
for k in main client; do
  auth=$KEY; [ "$k" = client ] && auth=$CLIENT_KEY
  cat >"$WORK/post-$k.lua" <<LUA
wrk.method = "POST"
wrk.body   = '$BODY'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $auth"
LUA
done

ACCOUNTS=""
POOL_JSON="["
N_ACCOUNTS="${POOL_SIZE:-4}"
for i in $(seq 0 $((N_ACCOUNTS - 1))); do
  A="{\"uuid\":\"bench-$i\",\"customName\":\"bench $i\",\"OPENAI_API_KEY\":\"sk-bench-$i\",\"OPENAI_BASE_URL\":\"$MOCK/v1\",\"isHealthy\":true,\"isDisabled\":false,\"usageCount\":0,\"errorCount\":0}"
  ACCOUNTS+="$A"$'\n'
  POOL_JSON+="$A"; [ "$i" -lt $((N_ACCOUNTS - 1)) ] && POOL_JSON+=","
done
BINS="${BINS:-poolgate=$BIN/poolgate}"

POOL_JSON+="]"
CONFIG="{\"REQUIRED_API_KEY\":\"$KEY\",\"MODEL_PROVIDER\":\"openai-custom\",\"SCHEDULED_HEALTH_CHECK\":{\"enabled\":false}}"

# run_wrk URL CONNS THREADS → "rps p50_ms p99_ms requests"
run_wrk() {
  local out
  out=$(wrk -t"$3" -c"$2" -d"${DUR}s" --latency -s "$WORK/post-${WRK_KEY:-main}.lua" "$1")
  echo "$out" >>"$WORK/wrk.log"
  python3 - "$out" <<'PY'
import re, sys
t = sys.argv[1]
def ms(v):
    n, u = re.match(r"([\d.]+)(\w+)", v).groups(); n = float(n)
    return n / 1000 if u == "us" else n if u == "ms" else n * 1000
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
p50 = ms(re.search(r"\s50%\s+(\S+)", t).group(1)); p99 = ms(re.search(r"\s99%\s+(\S+)", t).group(1))
reqs = int(re.search(r"(\d+) requests in", t).group(1))
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
errors = re.search(r"Socket errors: (.*)", t)
if non2xx or errors:
    print(f"ERRORS in run: {non2xx.group(0) if non2xx else ''} {errors.group(0) if errors else ''}", file=sys.stderr)
print(f"{rps:.0f} {p50:.3f} {p99:.3f} {reqs}")
PY
}

echo "warming up and measuring the mock directly…" >&2
run_wrk "$MOCK/v1/chat/completions" 8 1 >/dev/null
read -r D1_RPS D1_P50 D1_P99 _ < <(run_wrk "$MOCK/v1/chat/completions" 1 1)
read -r D64_RPS D64_P50 D64_P99 _ < <(run_wrk "$MOCK/v1/chat/completions" 64 2)

ROWS=()
row() { # mode conns rps p50 p99 direct_p50 direct_p99 direct_rps cmds trips
  ROWS+=("| $1 | $2 | $3 | $4 | $5 | $(python3 -c "print(f'{$4-$6:.3f}')") | $(python3 -c "print(f'{$5-$7:.3f}')") | $8 | ${10} | $9 |")
}

trips() { # port → poolgate's own count of Redis round trips (stats.totalCommands)
  curl -s -H "Authorization: Bearer $KEY" "http://127.0.0.1:$1/api/redis/status" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["stats"]["totalCommands"])'
}
per() { python3 -c "print(f'{($2-$1)/max($3,1):.4f}')" "$@"; }

bench_gateway() { # mode [commit-before-last-byte]
  local mode=$1 commit=${2:-true} port url cmds1 cmds64 label
  label="$mode"; [ -n "${COMMIT_MODES:-}" ] && label="$mode, commit first=$commit"
  [ "$BINS" != "poolgate=$BIN/poolgate" ] && label="$label, ${POOLGATE_LABEL}"
  [ "${WRK_KEY:-main}" = client ] && label="$label, client key"
  port=$(free_port)
  url="http://127.0.0.1:$port/v1/chat/completions"
  USAGE_COMMIT_BEFORE_LAST_BYTE="$commit" "$POOLGATE_BIN" serve --config-dir "$WORK/$mode" --host 127.0.0.1 \
    --port "$port" >"$WORK/poolgate-$mode.log" 2>&1 &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$port/health"
  run_wrk "$url" 8 1 >/dev/null
  local t0 t1 tr
  [ "$mode" = redis ] && redis-cli -p "$REDIS_PORT" CONFIG RESETSTAT >/dev/null
  t0=$(trips "$port")
  read -r rps p50 p99 n < <(run_wrk "$url" 1 1)
  t1=$(trips "$port"); tr="–"; [ "$mode" = redis ] && tr=$(per "$t0" "$t1" "$n")
  cmds1=$(redis_cmds "$n")
  row "$label" 1 "$rps" "$p50" "$p99" "$D1_P50" "$D1_P99" "$D1_RPS" "$cmds1" "$tr"
  [ "$mode" = redis ] && redis-cli -p "$REDIS_PORT" CONFIG RESETSTAT >/dev/null
  t0=$(trips "$port")
  read -r rps p50 p99 n < <(run_wrk "$url" 64 2)
  t1=$(trips "$port"); tr="–"; [ "$mode" = redis ] && tr=$(per "$t0" "$t1" "$n")
  cmds64=$(redis_cmds "$n")
  row "$label" 64 "$rps" "$p50" "$p99" "$D64_P50" "$D64_P99" "$D64_RPS" "$cmds64" "$tr"
  kill -TERM "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
}

redis_cmds() { # requests → Redis commands per request (calls in INFO commandstats, minus our INFO)
  if [ "${MODE:-file}" != redis ]; then echo "–"; return; fi
  redis-cli -p "$REDIS_PORT" INFO commandstats | python3 -c "
import re, sys
calls = sum(int(m.group(2)) for m in re.finditer(r'cmdstat_(\w+):calls=(\d+)', sys.stdin.read()) if m.group(1) not in ('info', 'config'))
print(f'{calls / max(int(sys.argv[1]), 1):.4f}')" "$1"
}

# File mode.
mkdir -p "$WORK/file"
echo "$CONFIG" >"$WORK/file/config.json"
echo "{\"openai-custom\":$POOL_JSON}" >"$WORK/file/provider_pools.json"
echo "file mode…" >&2
for b in $BINS; do
  for c in ${COMMIT_MODES:-true}; do
    POOLGATE_LABEL=${b%%=*} POOLGATE_BIN=${b#*=} MODE=file bench_gateway file "$c"
  done
done

# Redis mode: a private redis-server on loopback, seeded in the reference key schema.
REDIS_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly yes --dir "$WORK" \
  --maxmemory-policy noeviction --daemonize no >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do redis-cli -p "$REDIS_PORT" PING >/dev/null 2>&1 && break; sleep 0.05; done
redis-cli -p "$REDIS_PORT" SET aiclient:config "$CONFIG" >/dev/null
redis-cli -p "$REDIS_PORT" SADD aiclient:pool-types openai-custom >/dev/null
while read -r A; do
  [ -z "$A" ] && continue
  U=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["uuid"])' "$A")
  redis-cli -p "$REDIS_PORT" HSET aiclient:pools:openai-custom "$U" "$A" >/dev/null
done <<<"$ACCOUNTS"
mkdir -p "$WORK/redis"
echo "{\"redis\":{\"enabled\":true,\"url\":\"redis://127.0.0.1:$REDIS_PORT\"}}" >"$WORK/redis/config.json"
HASH=$(printf '%s' "$CLIENT_KEY" | sha256sum | cut -d' ' -f1)
redis-cli -p "$REDIS_PORT" HSET aiclient:client-keys "$HASH" \
  '{"id":"bench","name":"bench","enabled":true,"dailyLimit":1000000000,"rpmLimit":1000000000,"prefix":"maki_benchBE","createdAt":1}' >/dev/null
echo "redis mode…" >&2
for b in $BINS; do
  for c in ${COMMIT_MODES:-true}; do
    for k in ${CLIENT_KEY_MODES:-off}; do
      wk=main; [ "$k" = on ] && wk=client
      POOLGATE_LABEL=${b%%=*} POOLGATE_BIN=${b#*=} WRK_KEY=$wk MODE=redis bench_gateway redis "$c"
    done
  done
done
USAGE=$(redis-cli -p "$REDIS_PORT" HVALS aiclient:pools:openai-custom | python3 -c "
import json, sys; print(sum(json.loads(l).get('usageCount', 0) for l in sys.stdin if l.strip()))")

echo
echo "Upstream: $UPSTREAM; answers: $([ "$STREAM" = 1 ] && echo 'SSE, 8 chunks' || echo unary); pool of $N_ACCOUNTS accounts."
echo "Direct to mock: c=1 ${D1_RPS} req/s p50 ${D1_P50} ms p99 ${D1_P99} ms; c=64 ${D64_RPS} req/s p50 ${D64_P50} ms p99 ${D64_P99} ms"
echo
echo "| mode | connections | req/s through poolgate | p50 (ms) | p99 (ms) | added p50 (ms) | added p99 (ms) | req/s direct | Redis round trips/request (poolgate, all async) | Redis commands/request (commandstats, incl. inside scripts) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
echo
echo "Redis-mode usageCount total after the runs (includes warm-up): $USAGE"
