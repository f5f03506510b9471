#!/usr/bin/env bash
# Many concurrent slow streams through one replica (efficiency issue): N streaming chat requests
# held open at once, each answered by the mock upstream with CHUNKS chunks GAP_MS apart. Reports
# how many completed, the largest gap between two chunks a client saw (a stall shows as a gap
# well above GAP_MS), and poolgate's resident memory idle, with all streams open, and per open
# stream. Not a test: prints a Markdown table.
#
# Usage: scripts/bench-streams.sh [streams, default 10000]   (CHUNKS=8 GAP_MS=1000 RAMP_S=5)
# Needs: python3 (file mode, no Redis). Uses free loopback ports only.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-10000}"
CHUNKS="${CHUNKS:-8}"
GAP_MS="${GAP_MS:-1000}"
RAMP_S="${RAMP_S:-5}"
# Two sockets per stream in poolgate (client and upstream).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# shellcheck source=scripts/bench-common.sh
source scripts/bench-common.sh
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }

MOCK_PORT=$(free_port)
"$BIN/mock-upstream" --port "$MOCK_PORT" --threads 1 --chunks "$CHUNKS" --chunk-delay-ms "$GAP_MS" >"$WORK/mock.log" 2>&1 &
PIDS+=($!)
KEY=bench-key
mkdir -p "$WORK/cfg"
echo "{\"REQUIRED_API_KEY\":\"$KEY\",\"MODEL_PROVIDER\":\"openai-custom\",\"SCHEDULED_HEALTH_CHECK\":{\"enabled\":false}}" >"$WORK/cfg/config.json"
POOL=""
for i in 0 1 2 3; do
  POOL+="{\"uuid\":\"s-$i\",\"OPENAI_API_KEY\":\"sk-$i\",\"OPENAI_BASE_URL\":\"http://127.0.0.1:$MOCK_PORT/v1\"}"
  [ "$i" -lt 3 ] && POOL+=","
done
echo "{\"openai-custom\":[$POOL]}" >"$WORK/cfg/provider_pools.json"
PORT=$(free_port)
MAX_CONNECTIONS=$((N + 1000)) \
  "$BIN/poolgate" serve --config-dir "$WORK/cfg" --host 127.0.0.1 --port "$PORT" >"$WORK/poolgate.log" 2>&1 &
PG=$!
PIDS+=($PG)
wait_http "http://127.0.0.1:$PORT/health"
# Warm up: a few complete streams.
for _ in 1 2 3; do
  curl -sf -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
    -d '{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}' \
    "http://127.0.0.1:$PORT/v1/chat/completions" >/dev/null
done
IDLE=$(rss_kib "$PG")

python3 - "$PORT" "$KEY" "$N" "$CHUNKS" "$RAMP_S" "$PG" "$WORK/result.json" <<'PY'
import asyncio, json, sys, time
port, key, n, chunks, ramp, pid, out = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), sys.argv[6], sys.argv[7]
body = json.dumps({"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}).encode()
req = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
       f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body
gaps, done, errors, open_now, peak_open = [], 0, {}, 0, 0
def rss():
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS"))
peak_rss = 0
async def one(i):
    global done, open_now, peak_open
    await asyncio.sleep(ramp * i / n)
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
    except OSError as e:
        errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
        return
    open_now += 1; peak_open = max(peak_open, open_now)
    try:
        w.write(req); await w.drain()
        last, seen, biggest, buf = None, 0, 0.0, b""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            data = await asyncio.wait_for(r.read(65536), 60)
            if not data:
                break
            now = time.monotonic()
            buf += data
            k = buf.count(b"data: {")
            if k > seen:
                if last is not None:
                    biggest = max(biggest, now - last)
                last, seen = now, k
            if b"[DONE]" in buf:
                done += 1
                gaps.append(biggest)
                break
        else:
            errors["timeout"] = errors.get("timeout", 0) + 1
        if b"[DONE]" not in buf and time.monotonic() < deadline:
            why = "ended early: " + (buf.split(b"\r\n", 1)[0].decode(errors="replace") or "no answer")
            errors[why] = errors.get(why, 0) + 1
    except Exception as e:
        errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
    finally:
        open_now -= 1
        w.close()
async def sampler():
    global peak_rss
    while True:
        peak_rss = max(peak_rss, rss())
        await asyncio.sleep(0.2)
async def main():
    s = asyncio.create_task(sampler())
    t0 = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(n)))
    s.cancel()
    gaps.sort()
    q = lambda p: gaps[min(len(gaps) - 1, int(p * len(gaps)))] if gaps else 0
    json.dump({"done": done, "errors": errors, "peak_open": peak_open, "peak_rss_kib": peak_rss,
               "max_gap_ms": round(q(1.0) * 1000), "p99_gap_ms": round(q(0.99) * 1000),
               "seconds": round(time.monotonic() - t0, 1)}, open(out, "w"))
asyncio.run(main())
PY

echo "poolgate warnings: $(grep -c WARN "$WORK/poolgate.log" || true)" >&2
grep WARN "$WORK/poolgate.log" | sed 's/.*WARN//' | sort | uniq -c | sort -rn | head -5 >&2 || true
python3 - "$WORK/result.json" "$IDLE" "$N" "$CHUNKS" "$GAP_MS" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); idle = int(sys.argv[2]); n = int(sys.argv[3])
per = (r["peak_rss_kib"] - idle) / max(r["peak_open"], 1)
print(f"{n} streams of {sys.argv[4]} chunks {sys.argv[5]} ms apart, one replica, file mode; {r['seconds']} s")
print()
print("| streams | completed | errors | most open at once | largest chunk gap (ms) | p99 chunk gap (ms) | idle RSS (MiB) | peak RSS (MiB) | RSS per open stream (KiB) |")
print("|---:|---:|---|---:|---:|---:|---:|---:|---:|")
print(f"| {n} | {r['done']} | {r['errors'] or 'none'} | {r['peak_open']} | {r['max_gap_ms']} | {r['p99_gap_ms']} | {idle/1024:.1f} | {r['peak_rss_kib']/1024:.1f} | {per:.1f} |")
PY
