#!/bin/sh
# Publish benchmark: single events from 64 keep-alive clients and batches of
# 100, with sync=off and sync=full. Starts its own herald on a free loopback
# port with a scratch data directory; prints a Markdown table for
# docs/benchmarks.md. Usage: bench/publish.sh [SECONDS]   (default 10)
set -eu
cd "$(dirname "$0")/.."
SECS=${1:-10}
BIN=${HERALD_BIN:-build/herald}
command -v wrk >/dev/null || { echo "bench: wrk is missing (apt-get install wrk)"; exit 1; }
PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
TMP=$(mktemp -d)
trap 'kill $PID 2>/dev/null || true; rm -rf "$TMP"' EXIT

start() {
  rm -rf "$TMP/data"
  "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$TMP/data" --sync "$1" --log-level warn \
    --dedup-window 10m 2>"$TMP/herald.log" &
  PID=$!
  i=0; until curl -sf http://127.0.0.1:$PORT/healthz >/dev/null; do
    i=$((i+1)); [ $i -lt 200 ] || { cat "$TMP/herald.log"; exit 1; }; sleep 0.05; done
}

stop() { kill $PID; wait $PID || true; }

# run SCRIPT CONNECTIONS EVENTS_PER_REQUEST LABEL
run() {
  out=$(wrk -t1 -c"$2" -d"${SECS}s" --latency -s "bench/$1" http://127.0.0.1:$PORT/ 2>&1)
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  errs=$(echo "$out" | grep -c "unexpected status" || true)
  evs=$(awk -v r="$rps" -v n="$3" 'BEGIN {printf "%.0f", r*n}')
  printf '| %s | %s | %s | %s | %s | %s |\n' "$4" "$2" "$evs" "$p50" "$p99" "$errs"
}

echo "| scenario | connections | events/s | p50 latency | p99 latency | errors |"
echo "|---|---|---|---|---|---|"
for sync in off full; do
  start $sync
  run publish_single.lua 64 1 "single events, sync=$sync"
  run publish_batch.lua 8 100 "batches of 100, sync=$sync"
  stop
done
