#!/bin/sh
# Pull consumer group benchmark: pre-publishes N events (batches of 100) to
# one topic, then drains it through a fresh group with 1 and with 4
# concurrent consumers (each fetch max=100, wait=0, then an ack of the
# fetched offsets, answered once durable), with sync=full (the default) and
# sync=off. Starts its own herald on a free loopback port with a scratch
# data directory; prints a Markdown table for docs/benchmarks.md (events
# acknowledged a second, fetch latency p50/p99, and the CPU seconds of the
# consumers and of herald, to show which side was the bottleneck).
# The load generator is herald-groups-load (bench/groups_load.c: a thread
# and a keep-alive connection per consumer), built next to herald.
#
# With ENGINE=redis the same runs go through one herald node on the Redis
# engine (a redis-server primary with appendfsync always and one replica,
# started here on free ports): the leases live in Redis (docs/cluster.md
# "Pull groups"), with --redis-durability replicated and none in place of
# the sync modes.
#
# With PATTERN=1 the groups are over the topic pattern "bench-groups*"
# (one matching topic, acked by (topic, offset) pairs): the cost of a
# pattern group against a plain group of the same topic.
#
# Usage: bench/groups.sh [N]      (default 100000 events)
#   HERALD_BIN   herald binary (build/herald); herald-groups-load is taken
#                from the same directory unless LOAD_BIN is set
#   ENGINE       local (default) or redis
set -eu
cd "$(dirname "$0")/.."
N=${1:-100000}
BIN=${HERALD_BIN:-build/herald}
LOAD=${LOAD_BIN:-$(dirname "$BIN")/herald-groups-load}
[ -x "$BIN" ] || { echo "bench: $BIN is missing (make build)"; exit 1; }
[ -x "$LOAD" ] || { echo "bench: $LOAD is missing (make build)"; exit 1; }
ENGINE=${ENGINE:-local}
freeport() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(freeport)
TMP=$(mktemp -d)
PID=
RPIDS=
trap '[ -n "$PID" ] && kill $PID 2>/dev/null; for p in $RPIDS; do kill $p 2>/dev/null; done; rm -rf "$TMP"' EXIT

redis_start() {
  for p in $RPIDS; do kill $p 2>/dev/null; wait $p 2>/dev/null || true; done
  RPIDS=
  rm -rf "$TMP/r1" "$TMP/r2"; mkdir -p "$TMP/r1" "$TMP/r2"
  RP=$(freeport); RR=$(freeport)
  redis-server --port $RP --bind 127.0.0.1 --save '' --appendonly yes --appendfsync always \
    --dir "$TMP/r1" --logfile "$TMP/r1.log" & RPIDS="$RPIDS $!"
  redis-server --port $RR --bind 127.0.0.1 --save '' --appendonly yes --dir "$TMP/r2" \
    --logfile "$TMP/r2.log" --replicaof 127.0.0.1 $RP & RPIDS="$RPIDS $!"
  i=0; until redis-cli -p $RR info replication 2>/dev/null | grep -q 'master_link_status:up'; do
    i=$((i+1)); [ $i -lt 200 ] || { echo "bench: the replica did not sync"; exit 1; }; sleep 0.05; done
}

start() {
  rm -rf "$TMP/data"
  if [ "$ENGINE" = redis ]; then
    redis_start
    set -- --engine redis --redis-url redis://127.0.0.1:$RP --redis-durability "$1"
  else
    set -- --sync "$1"
  fi
  "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$TMP/data" "$@" --log-level warn \
    2>"$TMP/herald.log" &
  PID=$!
  i=0; until curl -sf http://127.0.0.1:$PORT/$([ "$ENGINE" = redis ] && echo readyz || echo healthz) >/dev/null; do
    i=$((i+1)); [ $i -lt 200 ] || { cat "$TMP/herald.log"; exit 1; }; sleep 0.05; done
}

stop() { kill $PID; wait $PID || true; PID=; }

MODES="full off"
[ "$ENGINE" = redis ] && MODES="replicated none"
echo "| $([ "$ENGINE" = redis ] && echo 'redis durability' || echo sync) | consumers | events acked/s | fetch p50 | fetch p99 | consumers' CPU s | herald CPU s |"
echo "|---|---|---|---|---|---|---|"
for sync in $MODES; do
  start $sync
  echo "groups: sync=$sync publishing $N events" >&2
  "$LOAD" publish $PORT bench-groups "$N"
  for c in 1 4; do
    line=$("$LOAD" consume $PORT "bench-groups$([ "${PATTERN:-0}" = 1 ] && echo '*')" "g$c" $c $PID)
    echo "groups: sync=$sync $line" >&2
    set -- $line
    for kv; do eval "${kv%%=*}=${kv#*=}"; done
    [ "$acked" = "$N" ] || { echo "bench: $acked of $N events acked" >&2; exit 1; }
    printf '| %s | %s | %s | %s ms | %s ms | %s | %s |\n' $sync $c $events_per_s \
      $fetch_p50_ms $fetch_p99_ms $loader_cpu_s $herald_cpu_s
  done
  stop
done
