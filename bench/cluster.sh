#!/usr/bin/env bash
# Issue 10's benchmark: a cluster of 3 nodes on one Redis against a single
# node, in one run, interleaved, on this machine's loopback (Redis, the nodes
# and the load tool share the same cores). Every node runs with default
# options apart from ports; the cluster's nodes add -cluster. The load tool
# spreads the streams over the nodes (stream i on node i%3) and runs one
# publisher per node; the single node gets the same streams and the same
# three publishers. Usage: bench/cluster.sh [rounds]
# Output: bench/out/cluster.jsonl (one JSON line per run) and a table.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
out=bench/out
mkdir -p "$out"
: > "$out/cluster.jsonl"
go build -o "$out/hasses" ./cmd/hasses
go build -o "$out/hasses-load" ./cmd/hasses-load
command -v redis-server > /dev/null || { echo "redis-server is needed (apt-get install redis-server)" >&2; exit 1; }

# Ports below the ephemeral range (32768-60999). Node i: SSE 182i0, control
# 182i5, publish API 182i6, admin 182i7.
REDIS=18279
pids=() redis=""
stop_all() {
  for p in "${pids[@]}" $redis; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}" $redis; do wait "$p" 2>/dev/null || true; done
  pids=() redis=""
  sleep 1
}
trap stop_all EXIT

start_node() { # index extra-options...
  local i=$1; shift
  "$out/hasses" -nodaemon -q -p=127.0.0.1:182${i}0 -cp=127.0.0.1:182${i}5 -pub=127.0.0.1:182${i}6 \
    -admin=127.0.0.1:182${i}7 -murl=/sse "$@" > "$out/node$i.log" 2>&1 &
  pids+=($!)
}

wait_ready() { # index
  for _ in $(seq 50); do
    curl -sf "http://127.0.0.1:182${1}7/readyz" > /dev/null && return
    sleep 0.1
  done
  echo "node $1 not ready" >&2
  exit 1
}

nodes=()
start_single() {
  start_node 1
  wait_ready 1
  nodes=(1)
}

start_cluster() {
  redis-server --port $REDIS --bind 127.0.0.1 --save '' --appendonly no --daemonize no > "$out/redis.log" 2>&1 &
  redis=$!
  for _ in $(seq 50); do redis-cli -p $REDIS ping > /dev/null 2>&1 && break; sleep 0.1; done
  for i in 1 2 3; do start_node $i -cluster=redis://127.0.0.1:$REDIS/0; done
  for i in 1 2 3; do wait_ready $i; done
  nodes=(1 2 3)
}

join() { local IFS=,; echo "$*"; }

run() { # setup scenario load-flags...
  local setup=$1 scenario=$2; shift 2
  "start_$setup"
  local sse=() ctl=() pub=()
  for i in "${nodes[@]}"; do
    sse+=(127.0.0.1:182${i}0) ctl+=(127.0.0.1:182${i}5) pub+=(http://127.0.0.1:182${i}6/publish)
  done
  local extra=()
  [ -n "$redis" ] && extra+=(-redis-pid "$redis")
  [[ $scenario == http-* ]] && extra+=(-pub-url "$(join "${pub[@]}")")
  # 20 source addresses: 18,000 streams stay under the per-address cap.
  "$out/hasses-load" -addr "$(join "${sse[@]}")" -ctl "$(join "${ctl[@]}")" -publishers 3 -sources 20 \
    -server-pid "$(join "${pids[@]}")" -scenario "$setup/$scenario" "${extra[@]}" "$@" \
    | tail -1 | tee -a "$out/cluster.jsonl"
  stop_all
}

for r in $(seq 1 "$rounds"); do
  for setup in single cluster; do
    run $setup idle18k -n 18000 -idle
    run $setup 1token-100mps -n 18000 -tokens 1 -rate 100 -duration 10s
    run $setup 1800tok-2000mps -n 18000 -tokens 1800 -rate 2000 -duration 10s
    run $setup http-1800tok-1000mps -n 18000 -tokens 1800 -rate 1000 -duration 10s
  done
done

python3 - "$out/cluster.jsonl" <<'PY'
import json, sys, collections
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    try: r = json.loads(line)
    except ValueError: continue
    runs[r.get("scenario", "?")].append(r)
def med(xs):
    xs = sorted(x for x in xs if x is not None)
    return xs[len(xs)//2] if xs else float("nan")
keys = ("server_rss_per_sub_kib", "delivered_pct", "lost", "duplicated", "reordered", "deliveries_per_s",
        "p99_ms", "publish_answer_p99_ms", "server_cpu_s_per_1m", "redis_cpu_us_per_publish")
for s, rs in sorted(runs.items()):
    ks = [k for k in keys if any(k in r for r in rs)]
    print(s, " ".join(f"{k}={med([r.get(k) for r in rs]):.3f}" for k in ks))
def ratio(scen, key):
    c = med([r.get(key) for r in runs.get("cluster/" + scen, [])])
    s = med([r.get(key) for r in runs.get("single/" + scen, [])])
    return c / s if s else float("nan")
print(f"deliveries/s, 1 token at 100 msg/s: cluster / single = {ratio('1token-100mps', 'deliveries_per_s'):.2f} (target >= 0.85)")
print(f"CPU per delivery, 1,800 tokens at 2,000 msg/s: cluster / single = {ratio('1800tok-2000mps', 'server_cpu_s_per_1m'):.2f} (target <= 1.2)")
PY
