#!/usr/bin/env bash
# The stream core's performance targets, measured in one run on this
# machine's loopback: hasses with default options (apart from ports) and the
# physical floor of a delivery (bench/floor: a stand-in server that writes
# each message with one sendto per subscriber and does nothing else), both
# driven by the same load tool, interleaved A B A B; then the memory of a
# TLS stream (HTTP/1.1 and HTTP/2). Usage: bench/core.sh [rounds]
# Output: bench/out/core.jsonl (one JSON line per run) and a table.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
out=bench/out
mkdir -p "$out"
: > "$out/core.jsonl"
go build -o "$out/hasses" ./cmd/hasses
go build -o "$out/hasses-load" ./cmd/hasses-load
go build -o "$out/floor" ./bench/floor
go build -o "$out/tlsmem" ./bench/tlsmem

# Ports below the ephemeral range (32768-60999).
SSE=18180 CTL=18185
pid=""
start_hasses() {
  "$out/hasses" -nodaemon -q -p=127.0.0.1:$SSE -cp=127.0.0.1:$CTL -murl=/sse > "$out/hasses.log" 2>&1 &
  pid=$!
  sleep 0.5
}
stop_hasses() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  pid=""
  sleep 1
}
trap stop_hasses EXIT

start_floor() {
  "$out/floor" -p=127.0.0.1:$SSE -cp=127.0.0.1:$CTL > "$out/floor.log" 2>&1 &
  pid=$!
  sleep 0.5
}

run() { # server scenario load-flags...
  local server=$1 scenario=$2; shift 2
  "start_$server"
  # 20 source addresses: 18,000 streams stay under the default per-address cap.
  "$out/hasses-load" -addr 127.0.0.1:$SSE -ctl 127.0.0.1:$CTL -sources 20 -server-pid "$pid" -scenario "$server/$scenario" "$@" \
    | tail -1 | tee -a "$out/core.jsonl"
  stop_hasses
}

for r in $(seq 1 "$rounds"); do
  run hasses idle18k -n 18000 -idle
  run hasses 1token-100mps -n 18000 -tokens 1 -rate 100 -duration 10s
  for server in hasses floor; do
    run $server 1800tok-2000mps -n 18000 -tokens 1800 -rate 2000 -duration 10s
  done
done
for mode in "" "-h2"; do
  "$out/tlsmem" -hasses "$out/hasses" -n 2000 $mode | tail -1 | tee -a "$out/core.jsonl"
done

python3 - "$out/core.jsonl" <<'PY'
import json, sys, collections
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    try: r = json.loads(line)
    except ValueError: continue
    runs[r.get("scenario", "?")].append(r)
def med(xs):
    xs = sorted(x for x in xs if x is not None)
    return xs[len(xs)//2] if xs else float("nan")
for s, rs in sorted(runs.items()):
    keys = [k for k in ("server_rss_per_sub_kib","delivered_pct","deliveries_per_s","p99_ms","server_cpu_s_per_1m","kib_per_stream") if any(k in r for r in rs)]
    print(s, " ".join(f"{k}={med([r.get(k) for r in rs]):.3f}" for k in keys))
hasses = med([r.get("server_cpu_s_per_1m") for r in runs.get("hasses/1800tok-2000mps", [])])
floor = med([r.get("server_cpu_s_per_1m") for r in runs.get("floor/1800tok-2000mps", [])])
print(f"CPU per delivery, 1,800 tokens at 2,000 msg/s: hasses {hasses:.2f} s / 1M, floor {floor:.2f} s / 1M, ratio {hasses/floor:.2f}")
PY
