#!/bin/sh
# Webhook delivery benchmark: how fast herald POSTs a topic's events to a
# fast local receiver. The receiver is nginx (bench/webhook_sink.conf.in,
# one worker, every request answered 204, no access log). For every
# scenario a fresh herald starts on a free loopback port with a scratch data
# directory and --webhook-allow-private on.
#
#   drain: N events are published first (batches of 100), then a
#          subscription is created from the oldest event; deliveries/s is N
#          over the time from its creation to the delivery of the last one,
#          counted by herald's own herald_webhook_deliveries_total (polled
#          every 10 ms). Ordered; unordered with concurrency 16 and 64
#          (--webhook-max-per-host 64), and 16 under the default
#          --webhook-max-per-host 8.
#   live:  single events published at RATE a second for LIVE_SECS to a
#          subscription from the latest event, each stamped with its send
#          time; nginx logs the arrival time ($msec, millisecond resolution)
#          and herald-offset of each delivery: publish-to-delivery latency
#          p50/p99 and deliveries/s (first to last arrival).
#
# CPU seconds of herald and of nginx (master and worker) are measured per
# run to show which side was the bottleneck. The driver is
# bench/webhook_load.py (Python standard library). Prints a Markdown table
# for docs/benchmarks.md on stdout and a line per run on stderr.
#
# Usage: bench/webhooks.sh [EVENTS]     (default 20000)
#   HERALD_BIN  herald binary (build/herald)
#   SYNC        herald --sync (off: the bench is about delivery, not fsync)
#   RATE        live publish rate (1000/s), LIVE_SECS its duration (5)
set -eu
cd "$(dirname "$0")/.."
N=${1:-20000}
BIN=${HERALD_BIN:-build/herald}
NGINX=${NGINX_BIN:-/usr/sbin/nginx}
SYNC=${SYNC:-off}
RATE=${RATE:-1000}
LIVE_SECS=${LIVE_SECS:-5}
PY=/usr/bin/python3
[ -x "$BIN" ] || { echo "bench: $BIN is missing (make build)"; exit 1; }
[ -x "$NGINX" ] || { echo "bench: nginx is missing (apt-get install -y nginx)"; exit 1; }

TMP=$(mktemp -d)
HPID=; NPID=
stop_herald() { [ -z "$HPID" ] || { kill "$HPID" 2>/dev/null; wait "$HPID" 2>/dev/null || true; HPID=; }; }
stop_nginx() { [ -z "$NPID" ] || { kill "$NPID" 2>/dev/null; wait "$NPID" 2>/dev/null || true; NPID=; }; }
trap 'stop_herald; stop_nginx; rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

freeport() {
  $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() { # URL LOG
  i=0; until curl -s -o /dev/null "$1"; do
    i=$((i+1)); [ $i -lt 200 ] || { cat "$2" >&2; exit 1; }; sleep 0.05; done
}

start_nginx() { # ACCESS_LOG ("off" or "FILE arrival")
  NPORT=$(freeport)
  rm -rf "$TMP/nginx"; mkdir -p "$TMP/nginx"
  sed -e "s#@PREFIX@#$TMP/nginx#g" -e "s#@PORT@#$NPORT#g" -e "s#@ACCESS_LOG@#$1#g" \
    bench/webhook_sink.conf.in >"$TMP/nginx/nginx.conf"
  "$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log" 2>>"$TMP/nginx/error.log" &
  NPID=$!
  wait_port "http://127.0.0.1:$NPORT/" "$TMP/nginx/error.log"
  i=0; until pgrep -P "$NPID" >/dev/null; do
    i=$((i+1)); [ $i -lt 100 ] || break; sleep 0.05; done
  NPIDS=$NPID$(pgrep -P "$NPID" | sed 's/^/,/' | tr -d '\n')
}

start_herald() { # MAX_PER_HOST
  PORT=$(freeport)
  rm -rf "$TMP/data"
  "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$TMP/data" --sync "$SYNC" --log-level warn \
    --webhook-allow-private on --webhook-max-per-host "$1" 2>"$TMP/herald.log" &
  HPID=$!
  wait_port "http://127.0.0.1:$PORT/healthz" "$TMP/herald.log"
}

# kv LINE: sets each key=value of the driver's line as a shell variable.
kv() { for x in $1; do eval "${x%%=*}=${x#*=}"; done; }

say() { echo "webhooks: $*" >&2; }

# drain LABEL ORDERED CONCURRENCY MAX_PER_HOST
drain() {
  start_herald "$4"
  $PY bench/webhook_load.py publish "$PORT" bench-hooks "$N"
  say "$1: $N events published (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  line=$($PY bench/webhook_load.py drain "$PORT" bench-hooks "$N" "http://127.0.0.1:$NPORT/hook" \
    "$2" "$3" "$HPID $NPIDS")
  say "$1: $line"
  kv "$line"
  printf '| %s | %s | %s | – | %s / %s | %s |\n' "$1" "$N" "$deliveries_per_s" \
    "$herald_cpu_s" "$receiver_cpu_s" "$failures"
  stop_herald
}

# live LABEL ORDERED CONCURRENCY MAX_PER_HOST
live() {
  start_herald "$4"
  : >"$TMP/nginx/arrivals.log"   # offsets restart with every herald
  say "$1: publishing $RATE/s for $LIVE_SECS s"
  line=$($PY bench/webhook_load.py live "$PORT" bench-live "http://127.0.0.1:$NPORT/hook" \
    "$2" "$3" "$RATE" "$LIVE_SECS" "$TMP/nginx/arrivals.log" "$HPID $NPIDS")
  say "$1: $line"
  kv "$line"
  printf '| %s | %s (%s/s sent) | %s | %s / %s ms | %s / %s | %s |\n' "$1" \
    "$(awk -v r="$RATE" -v s="$LIVE_SECS" 'BEGIN {printf "%d", r*s}')" "$published_per_s" "$deliveries_per_s" \
    "$p50_ms" "$p99_ms" "$herald_cpu_s" "$receiver_cpu_s" "$failures"
  stop_herald
}

echo "| subscription | events | deliveries/s | latency p50 / p99 | CPU s herald / nginx | failed attempts |"
echo "|---|---|---|---|---|---|"
start_nginx off
drain "ordered, backlog" true 1 8
drain "unordered, concurrency 16, backlog" false 16 64
drain "unordered, concurrency 64, backlog" false 64 64
drain "unordered, concurrency 16, backlog, default max-per-host 8" false 16 8
stop_nginx
start_nginx "$TMP/nginx/arrivals.log arrival"
live "ordered, live $RATE/s" true 1 8
live "unordered, concurrency 16, live $RATE/s" false 16 64
stop_nginx
