#!/bin/sh
# A/B of two herald binaries on one publish scenario, for a machine whose
# speed drifts (shared cores): the two builds run alternately, ROUNDS times
# each, SECONDS per run, each on a fresh data directory, and the medians are
# compared. Besides events/s it reports, from `perf stat` on the herald
# process, CPU time per event (all threads), context switches per event, and
# store commits per event (from /metrics), which vary far less than
# throughput when other work shares the cores.
# The load generator is herald-publish-load (bench/publish_load.c), taken
# next to BIN_A unless LOAD_BIN is set; it warms up 1 s, events/s and p99
# are of the SECONDS after that, the per-event columns divide herald's whole
# run by every event acknowledged. LOAD=wrk runs wrk with
# bench/publish_single.lua or publish_batch.lua instead (no warm-up).
# Usage: bench/ab.sh BIN_A BIN_B off|full single|batch [ROUNDS] [SECONDS]
set -eu
cd "$(dirname "$0")/.."
A=$1; B=$2; SYNC=$3; SCENARIO=$4; ROUNDS=${5:-4}; SECS=${6:-5}
LOAD=${LOAD:-c}
LOADER=${LOAD_BIN:-$(dirname "$A")/herald-publish-load}
if [ "$LOAD" = wrk ]; then
  command -v wrk >/dev/null || { echo "bench: wrk is missing (apt-get install wrk)"; exit 1; }
else
  [ -x "$LOADER" ] || { echo "bench: $LOADER is missing (make build)"; exit 1; }
fi
command -v perf >/dev/null || { echo "bench: perf is missing (apt-get install linux-perf)"; exit 1; }
if [ "$SCENARIO" = single ]; then SCRIPT=publish_single.lua; CONNS=64; PER=1; TOPIC=bench
else SCRIPT=publish_batch.lua; CONNS=8; PER=100; TOPIC=bench-batch; fi
TMP=$(mktemp -d)
PID=
trap 'if [ -n "$PID" ]; then kill $PID 2>/dev/null || true; fi; rm -rf "$TMP"' EXIT

# one LABEL BIN: one run; appends "LABEL events/s cpu_us/ev cs/ev commits/ev p99" to $TMP/rows
one() {
  PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  rm -rf "$TMP/data"
  "$2" serve --listen 127.0.0.1:$PORT --data-dir "$TMP/data" --sync "$SYNC" --log-level warn \
    --dedup-window 10m 2>"$TMP/herald.log" &
  PID=$!
  i=0; until curl -sf http://127.0.0.1:$PORT/healthz >/dev/null; do
    i=$((i+1)); [ $i -lt 200 ] || { cat "$TMP/herald.log"; exit 1; }; sleep 0.05; done
  perf stat -e task-clock,context-switches -p $PID -o "$TMP/stat" &
  STAT=$!
  if [ "$LOAD" = wrk ]; then
    out=$(wrk -t1 -c$CONNS -d${SECS}s --latency -s bench/$SCRIPT http://127.0.0.1:$PORT/ 2>&1)
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p99=$(echo "$out" | awk '$1=="99%" {print $2}')
    evs=$(awk -v r="$rps" -v n=$PER 'BEGIN {print r*n}')
    total=$((reqs * PER))
  else
    line=$("$LOADER" $SCENARIO $PORT $TOPIC $CONNS $SECS $PID) || {
      echo "bench: herald-publish-load failed: $line" >&2; exit 1; }
    for kv in $line; do eval "l_${kv%%=*}=${kv#*=}"; done
    evs=$l_events_per_s; total=$l_total_events; p99=${l_p99_ms}ms
  fi
  kill -INT $STAT; wait $STAT || true
  commits=$(curl -s http://127.0.0.1:$PORT/metrics | awk '/^herald_store_commit_batch_events_count/ {print $2}')
  kill $PID; wait $PID || true; PID=
  ms=$(awk '/task-clock/ {gsub(",","",$1); print $1}' "$TMP/stat")
  cs=$(awk '/context-switches/ {gsub(",","",$1); print $1}' "$TMP/stat")
  awk -v l="$1" -v r="$evs" -v e="$total" -v ms="$ms" -v cs="$cs" -v c="$commits" -v p="$p99" \
    'BEGIN {printf "%s %.0f %.2f %.3f %.4f %s\n", l, r, ms*1000/e, cs/e, c/e, p}' >>"$TMP/rows"
  tail -1 "$TMP/rows"
}

echo "label events/s cpu_us/event cs/event commits/event p99"
r=0
while [ $r -lt "$ROUNDS" ]; do
  one A "$A"
  one B "$B"
  r=$((r+1))
done
/usr/bin/python3 - "$TMP/rows" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    f = line.split()
    rows.setdefault(f[0], []).append([float(x) for x in f[1:5]])
for label, v in sorted(rows.items()):
    med = [statistics.median(c) for c in zip(*v)]
    print("%s median: events/s=%.0f cpu_us/event=%.2f cs/event=%.3f commits/event=%.4f"
          % (label, *med))
EOF
