#!/bin/sh
# Cluster benchmark (docs/cluster.md): single publishes through the Redis
# engine against the local engine with --sync off, from the same load
# generator (herald-publish-load, bench/publish_load.c: 64 keep-alive
# connections, one request in flight each, 1 s warm-up not counted), with a
# redis-benchmark calibration of this machine taken in the same minutes.
# Starts its own Redis primary (appendonly yes, appendfsync always) and one
# replica on free loopback ports, and one herald at a time; prints a
# Markdown table for docs/benchmarks.md.
#
# Usage: bench/cluster.sh [SECONDS]   (default 10)
#   HERALD_BIN   herald binary (build/herald); herald-publish-load is taken
#                from the same directory unless LOAD_BIN is set
#   FSYNC        the primary's appendfsync (always; everysec shows what is
#                left when the disk's fsync is not the bound)
#   MODES        the redis durabilities to run (replicated primary none)
#   LOCAL=0      skips the local-engine line; RB=0 skips redis-benchmark
#   FANOUT=1     also 1,000 WebSocket subscribers at 100 messages/s on one
#                node (herald-fanout, bench/fanout.c), local --sync off vs
#                redis replicated: delivery latency, gaps, duplicates
#   COMPARE=BIN  another herald binary (an older build): every row runs
#                ROUNDS times (default 3), alternating BIN and HERALD_BIN in
#                the same minutes; the redis rows also report events per
#                WAIT (from the primary's INFO commandstats)
set -eu
cd "$(dirname "$0")/.."
SECS=${1:-10}
BIN=${HERALD_BIN:-build/herald}
LOADER=${LOAD_BIN:-$(dirname "$BIN")/herald-publish-load}
CONNS=${CONNS:-64}
[ -x "$BIN" ] || { echo "bench: $BIN is missing (make build)"; exit 1; }
[ -x "$LOADER" ] || { echo "bench: $LOADER is missing (make build)"; exit 1; }
command -v redis-server >/dev/null || { echo "bench: redis-server is missing"; exit 1; }
command -v redis-benchmark >/dev/null || { echo "bench: redis-benchmark is missing (redis-tools)"; exit 1; }
free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
TMP=$(mktemp -d)
PID=
RP=$(free_port)
RR=$(free_port)
trap '[ -n "$PID" ] && kill $PID 2>/dev/null; redis-cli -p $RR shutdown nosave >/dev/null 2>&1;
      redis-cli -p $RP shutdown nosave >/dev/null 2>&1; rm -rf "$TMP"' EXIT

mkdir -p "$TMP/p" "$TMP/r"
redis-server --port $RP --bind 127.0.0.1 --save '' --appendonly yes --appendfsync ${FSYNC:-always} \
  --dir "$TMP/p" --daemonize yes --logfile "$TMP/p.log"
redis-server --port $RR --bind 127.0.0.1 --save '' --appendonly yes --dir "$TMP/r" \
  --replicaof 127.0.0.1 $RP --daemonize yes --logfile "$TMP/r.log"
i=0; until redis-cli -p $RR info replication | grep -q 'master_link_status:up'; do
  i=$((i+1)); [ $i -lt 200 ] || { echo "bench: the replica did not sync"; exit 1; }; sleep 0.05; done

PORT=$(free_port)
CUR=$BIN
start() {
  rm -rf "$TMP/data"
  "$CUR" serve --listen 127.0.0.1:$PORT --data-dir "$TMP/data" --log-level warn "$@" \
    2>"$TMP/herald.log" &
  PID=$!
  i=0; until curl -sf http://127.0.0.1:$PORT/readyz >/dev/null; do
    i=$((i+1)); [ $i -lt 200 ] || { cat "$TMP/herald.log"; exit 1; }; sleep 0.05; done
}
stop() { kill $PID; wait $PID || true; PID=; }

waits() {
  redis-cli -p $RP info commandstats | tr -d '\r' | sed -n 's/^cmdstat_wait:calls=\([0-9]*\),.*/\1/p'
}

# run LABEL: one line of the table
run() {
  w0=$(waits); w0=${w0:-0}
  line=$("$LOADER" single $PORT bench $CONNS "$SECS" $PID) || true
  w1=$(waits); w1=${w1:-0}
  [ -n "$line" ] || { echo "bench: herald-publish-load failed" >&2; exit 1; }
  echo "cluster: $line" >&2
  rlabel=$1
  set -- $line
  for kv; do eval "${kv%%=*}=${kv#*=}"; done
  awk -v l="$rlabel" -v c="$conns" -v e="$events" -v r="$events_per_s" -v p50="$p50_ms" -v p99="$p99_ms" \
      -v err="$errors" -v hc="$herald_cpu_s" -v te="$total_events" -v w="$((w1 - w0))" 'BEGIN {
    hce = (hc >= 0 && e > 0) ? sprintf("%.2f µs", hc * 1e6 / e) : "-"
    epw = w > 0 ? sprintf("%.1f", te / w) : "-"
    printf "| %s | %s | %.0f | %.2f ms | %.2f ms | %s | %s | %s |\n", l, c, r, p50, p99, err, hce, epw }'
}

# row LABEL ARGS…: one row, or with COMPARE one per binary and round
row() {
  label=$1; shift
  if [ -z "${COMPARE:-}" ]; then
    start "$@"; run "$label"; stop; return
  fi
  n=0
  while [ $n -lt "${ROUNDS:-3}" ]; do
    for CUR in "$COMPARE" "$BIN"; do
      start "$@"; run "$label ($( [ "$CUR" = "$BIN" ] && echo new || echo old))"; stop
    done
    n=$((n + 1))
  done
  CUR=$BIN
}

echo "| scenario | connections | events/s | p50 latency | p99 latency | errors | herald CPU/event | events/WAIT |"
echo "|---|---|---|---|---|---|---|---|"
if [ "${LOCAL:-1}" = 1 ]; then
  row "single events, local engine, --sync off" --engine local --sync off
fi
for d in ${MODES:-replicated primary none}; do
  row "single events, redis engine, --redis-durability $d" \
    --engine redis --redis-url redis://127.0.0.1:$RP --redis-durability $d
done
if [ "${FANOUT:-0}" = 1 ]; then
  FANOUT_BIN=${FANOUT_BIN:-$(dirname "$BIN")/herald-fanout}
  ulimit -n 4096 2>/dev/null || true
  echo
  echo "| fan-out, 1,000 WebSocket subscribers, 100 msg/s | p50 | p99 | gaps | dups | herald CPU |"
  echo "|---|---|---|---|---|---|"
  for e in local redis; do
    start --engine $e --sync off --redis-url redis://127.0.0.1:$RP --ws-anonymous \
      --max-connections-per-ip 0 --connection-rate-per-ip 0
    "$FANOUT_BIN" --target herald --proto ws --port $PORT --subs 1000 --duration "$SECS" \
      --rate 100 --server-pids $PID --label "$e" 2>/dev/null | /usr/bin/python3 -c '
import json, sys
r = json.load(sys.stdin)
print("| %s | %.2f ms | %.2f ms | %d | %d | %d%% |" % (r["label"], r["p50_us"] / 1000,
      r["p99_us"] / 1000, r["gaps"], r["dups"], r["server_cpu_pct"]))'
    stop
  done
fi

[ "${RB:-1}" = 1 ] || exit 0
echo
echo "redis-benchmark on the same primary (appendfsync ${FSYNC:-always}, $CONNS clients, 100k requests):"
rb() { redis-benchmark -p $RP -c $CONNS -n 100000 -q "$@" 2>/dev/null | tr '\r' '\n' | grep -v '^$' | grep -v 'rps=' | tail -n 5 || true; }
rb -t set,incr
rb PUBLISH herald:bench hello
