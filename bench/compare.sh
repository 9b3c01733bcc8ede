#!/usr/bin/env bash
# Runs hasses and nginx+nchan in turn (A B A B) on the same scenarios, on
# this machine's loopback, with the same load tool, and prints the ratios.
# Needs root for apt-get the first time. Usage: bench/compare.sh [rounds]
# Output: bench/out/results.jsonl (one JSON line per run) and a table.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-2}
out=bench/out
mkdir -p "$out"
: > "$out/results.jsonl"

if ! command -v nginx >/dev/null || ! ls /usr/lib/nginx/modules/ngx_nchan_module.so >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq nginx-light libnginx-mod-nchan >/dev/null
fi
go build -o "$out/hasses" ./cmd/hasses
go build -o "$out/hasses-load" ./cmd/hasses-load

# Ports below the ephemeral range (32768-60999).
SSE=18180 CTL=18185 PUB=18186 NCHAN=18190

nchan_conf="$out/nginx.conf"
cat > "$nchan_conf" <<NGINX
load_module /usr/lib/nginx/modules/ngx_nchan_module.so;
worker_processes 2;
worker_rlimit_nofile 20000;
pid $PWD/$out/nginx.pid;
error_log $PWD/$out/nginx-error.log warn;
events { worker_connections 19900; multi_accept on; }
http {
  access_log off;
  nchan_max_reserved_memory 512M;
  server {
    listen 127.0.0.1:$NCHAN backlog=4096;
    location = /sse { nchan_subscriber eventsource; nchan_channel_id \$arg_subscribe; nchan_subscriber_first_message newest; }
    location = /pub { nchan_publisher; nchan_channel_id \$arg_id; nchan_message_buffer_length 100; }
  }
}
NGINX

server_pids=""
start_hasses() {
  "$out/hasses" -nodaemon -q -p=127.0.0.1:$SSE -cp=127.0.0.1:$CTL -pub=127.0.0.1:$PUB -murl=/sse \
    -max-conns-per-ip=0 > "$out/hasses.log" 2>&1 &
  server_pids=$!
  sleep 0.5
}
start_nchan() {
  nginx -c "$PWD/$nchan_conf" -p "$PWD/$out"
  sleep 0.5
  server_pids=$(pgrep -d, -f "nginx.*$nchan_conf" || true)
  server_pids="$(cat $out/nginx.pid),$(pgrep -d, -P "$(cat $out/nginx.pid)")"
}
stop_server() {
  if [ -f "$out/nginx.pid" ] && kill -0 "$(cat $out/nginx.pid)" 2>/dev/null; then
    nginx -c "$PWD/$nchan_conf" -p "$PWD/$out" -s quit; sleep 1
  fi
  for p in ${server_pids//,/ }; do kill "$p" 2>/dev/null || true; done
  sleep 1
}
trap stop_server EXIT

run() { # server scenario load-flags...
  local server=$1 scenario=$2; shift 2
  if [ "$server" = hasses ]; then
    start_hasses
    target=(-addr 127.0.0.1:$SSE -ctl 127.0.0.1:$CTL)
    [ "$scenario" = publish-api ] && target+=(-pub-url "http://127.0.0.1:$PUB/publish")
  else
    start_nchan
    target=(-addr 127.0.0.1:$NCHAN -pub-url "http://127.0.0.1:$NCHAN/pub?id={token}")
  fi
  "$out/hasses-load" "${target[@]}" -server-pid "$server_pids" -scenario "$server/$scenario" "$@" \
    | tail -1 | tee -a "$out/results.jsonl"
  stop_server
}

for r in $(seq 1 "$rounds"); do
  for s in hasses nchan; do
    run $s idle18k        -n 18000 -idle
    run $s 1token-100mps  -n 18000 -tokens 1 -rate 100 -duration 10s
    run $s 1800tok-2000mps -n 18000 -tokens 1800 -rate 2000 -duration 10s
    run $s publish-api    -n 18000 -tokens 1800 -rate 200 -duration 5s
  done
done

python3 - "$out/results.jsonl" <<'PY'
import json, sys, collections
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    try: r = json.loads(line)
    except ValueError: continue
    server, scen = r["scenario"].split("/", 1)
    runs[(scen, server)].append(r)
def med(xs):
    xs = sorted(x for x in xs if x is not None)
    return xs[len(xs)//2] if xs else float("nan")
keys = [("server_rss_per_sub_kib","KiB/sub"),("delivered_pct","deliv %"),("deliveries_per_s","deliv/s"),
        ("p99_ms","p99 ms"),("server_cpu_s_per_1m","CPU s/1M"),("connect_s","connect s"),("publish_answer_p99_ms","pub p99 ms")]
scens = sorted({s for s,_ in runs})
print(f"{'scenario':18} {'metric':11} {'hasses':>12} {'nchan':>12} {'hasses/nchan':>13}")
for s in scens:
    for k, label in keys:
        h = med([r.get(k) for r in runs[(s,"hasses")]]); n = med([r.get(k) for r in runs[(s,"nchan")]])
        if h != h and n != n: continue
        ratio = h/n if n and n == n and h == h else float("nan")
        print(f"{s:18} {label:11} {h:12.3f} {n:12.3f} {ratio:13.3f}")
PY
