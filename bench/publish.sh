#!/bin/sh
# Publish benchmark: single events from 64 keep-alive clients and batches of
# 100 from 8, with sync=off and sync=full. Starts its own herald on a free
# loopback port with a scratch data directory; prints a Markdown table for
# docs/benchmarks.md.
#
# The load generator is herald-publish-load (bench/publish_load.c: one
# thread, epoll, one request in flight per connection, 1 s warm-up not
# counted), built next to herald; the table then also has the CPU time per
# event of the load generator and of herald over the measured window (both
# share this machine's cores). LOAD=wrk runs the former wrk path instead
# (bench/publish_single.lua, publish_batch.lua; wrk's Lua costs about twice
# the CPU per request).
#
# Usage: bench/publish.sh [SECONDS]   (default 10)
#   HERALD_BIN   herald binary (build/herald); herald-publish-load is taken
#                from the same directory unless LOAD_BIN is set
#   LOAD=wrk     use wrk and the Lua scripts
set -eu
cd "$(dirname "$0")/.."
SECS=${1:-10}
BIN=${HERALD_BIN:-build/herald}
LOAD=${LOAD:-c}
LOADER=${LOAD_BIN:-$(dirname "$BIN")/herald-publish-load}
[ -x "$BIN" ] || { echo "bench: $BIN is missing (make build)"; exit 1; }
if [ "$LOAD" = wrk ]; then
  command -v wrk >/dev/null || { echo "bench: wrk is missing (apt-get install wrk)"; exit 1; }
else
  [ -x "$LOADER" ] || { echo "bench: $LOADER is missing (make build)"; exit 1; }
fi
PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
TMP=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill $PID 2>/dev/null; rm -rf "$TMP"' EXIT

start() {
  rm -rf "$TMP/data"
  "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$TMP/data" --sync "$1" --log-level warn \
    --dedup-window 10m 2>"$TMP/herald.log" &
  PID=$!
  i=0; until curl -sf http://127.0.0.1:$PORT/healthz >/dev/null; do
    i=$((i+1)); [ $i -lt 200 ] || { cat "$TMP/herald.log"; exit 1; }; sleep 0.05; done
}

stop() { kill $PID; wait $PID || true; PID=; }

# run_wrk SCRIPT CONNECTIONS EVENTS_PER_REQUEST LABEL
run_wrk() {
  out=$(wrk -t1 -c"$2" -d"${SECS}s" --latency -s "bench/$1" http://127.0.0.1:$PORT/ 2>&1)
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  errs=$(echo "$out" | grep -c "unexpected status" || true)
  evs=$(awk -v r="$rps" -v n="$3" 'BEGIN {printf "%.0f", r*n}')
  printf '| %s | %s | %s | %s | %s | %s |\n' "$4" "$2" "$evs" "$p50" "$p99" "$errs"
}

# run_c single|batch TOPIC CONNECTIONS LABEL
run_c() {
  # A refused answer makes the loader exit 1 after its line: the table shows it.
  line=$("$LOADER" "$1" $PORT "$2" "$3" "$SECS" $PID) || true
  [ -n "$line" ] || { echo "bench: herald-publish-load failed" >&2; exit 1; }
  echo "publish: $line" >&2
  set -- "$4" $line
  label=$1; shift
  for kv; do eval "${kv%%=*}=${kv#*=}"; done
  awk -v l="$label" -v c="$conns" -v e="$events" -v r="$events_per_s" -v p50="$p50_ms" -v p99="$p99_ms" \
      -v err="$errors" -v lc="$loader_cpu_s" -v hc="$herald_cpu_s" 'BEGIN {
    lce = e > 0 ? sprintf("%.2f µs", lc * 1e6 / e) : "-"
    hce = (hc >= 0 && e > 0) ? sprintf("%.2f µs", hc * 1e6 / e) : "-"
    printf "| %s | %s | %.0f | %.2f ms | %.2f ms | %s | %s | %s |\n", l, c, r, p50, p99, err, lce, hce }'
}

if [ "$LOAD" = wrk ]; then
  echo "| scenario | connections | events/s | p50 latency | p99 latency | errors |"
  echo "|---|---|---|---|---|---|"
else
  echo "| scenario | connections | events/s | p50 latency | p99 latency | errors | loader CPU/event | herald CPU/event |"
  echo "|---|---|---|---|---|---|---|---|"
fi
for sync in off full; do
  start $sync
  if [ "$LOAD" = wrk ]; then
    run_wrk publish_single.lua 64 1 "single events, sync=$sync"
    run_wrk publish_batch.lua 8 100 "batches of 100, sync=$sync"
  else
    run_c single bench 64 "single events, sync=$sync"
    run_c batch bench-batch 8 "batches of 100, sync=$sync"
  fi
  stop
done
