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
#   TOPICS=N     the publishes go round-robin to N topics (bench-0 …
#                bench-(N-1)) instead of one
#   FANOUT=1     also 1,000 WebSocket subscribers at 100 messages/s
#                (herald-fanout, bench/fanout.c): on one node (local --sync
#                off, then redis replicated), then spread over 3 redis nodes
#                with the publishes on a 4th: delivery latency, gaps,
#                duplicates, herald CPU summed over the nodes and per
#                delivery (Redis's own CPU not counted); the breakdown: the
#                publish's HTTP round trip (POST -> 201), each message's
#                first and last delivery, the load generator's own CPU per
#                delivery. FANOUT_ONE=0 skips the one-node rows;
#                FANOUT_ARGS adds herald-fanout options (e.g. --delayed-ack)
#   COMPARE=BIN  another herald binary (an older build): every row (the
#                fan-out rows too) runs ROUNDS times (default 3), alternating
#                BIN and HERALD_BIN in the same minutes
#   BIN_ARGS     herald options added to each start of HERALD_BIN (split on
#                spaces), COMPARE_ARGS to each of COMPARE: with COMPARE the
#                same binary, an A/B of an option, e.g. COMPARE=build/herald
#                BIN_ARGS="--redis-transactions on" (new = on, old = off)
# The redis rows also report events per WAIT (the primary's INFO
# commandstats) and the CPU per event of the Redis primary and of its
# replica (INFO cpu, user + sys, over the measured seconds and the warm-up:
# divided by every event the load generator sent); CMDSTATS=1 prints the
# primary's commandstats (calls, usec_per_call) per row on stderr.
#   PIN=1        herald and the load generator on CPU 0, the Redis primary
#                and replica on CPU 1 (taskset), in every mode: herald gets
#                the same CPU budget with either engine and Redis stands for
#                its own hosts. HERALD_CPUS / REDIS_CPUS (taskset -c lists)
#                set each side instead (e.g. HERALD_CPUS=0 REDIS_CPUS=0:
#                everything on one core)
#   FSYNC_DELAY  simulates a slow disk: the primary runs under strace, which
#                holds every fdatasync/fsync of it this long on exit (strace
#                time format: 2ms, 500us); the rows then measure that disk
#   PERF=DIR     records herald (perf record -g) during each single-publish
#                row into DIR/row-N.data (N counts the rows from 1); read
#                with perf report -i DIR/row-N.data --no-children
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
NPIDS=
trap '[ -n "$PID" ] && kill $PID 2>/dev/null; for p in $(echo "$NPIDS" | tr , " "); do kill $p 2>/dev/null; done
      redis-cli -p $RR shutdown nosave >/dev/null 2>&1;
      redis-cli -p $RP shutdown nosave >/dev/null 2>&1; rm -rf "$TMP"' EXIT

if [ "${PIN:-0}" = 1 ]; then
  HERALD_CPUS=${HERALD_CPUS:-0}; REDIS_CPUS=${REDIS_CPUS:-1}
fi
HPIN=; RPIN=
if [ -n "${HERALD_CPUS:-}${REDIS_CPUS:-}" ]; then
  command -v taskset >/dev/null || { echo "bench: taskset is missing (util-linux)"; exit 1; }
  [ -n "${HERALD_CPUS:-}" ] && HPIN="taskset -c $HERALD_CPUS"
  [ -n "${REDIS_CPUS:-}" ] && RPIN="taskset -c $REDIS_CPUS"
fi
mkdir -p "$TMP/p" "$TMP/r"
if [ -n "${FSYNC_DELAY:-}" ]; then
  command -v strace >/dev/null || { echo "bench: strace is missing"; exit 1; }
  # Started under strace (attaching to a running process cannot use the
  # seccomp filter, and without it every syscall would stop): only the
  # fsyncs stop, each held FSYNC_DELAY on exit.
  $RPIN strace --seccomp-bpf -f -qq -o /dev/null -e trace=fdatasync,fsync \
    -e inject=fdatasync,fsync:delay_exit=$FSYNC_DELAY \
    redis-server --port $RP --bind 127.0.0.1 --save '' --appendonly yes --appendfsync ${FSYNC:-always} \
    --dir "$TMP/p" --daemonize no --logfile "$TMP/p.log" &
  i=0; until redis-cli -p $RP ping 2>/dev/null | grep -q PONG; do
    i=$((i+1)); [ $i -lt 200 ] || { echo "bench: the primary did not start"; exit 1; }; sleep 0.05; done
else
  $RPIN redis-server --port $RP --bind 127.0.0.1 --save '' --appendonly yes --appendfsync ${FSYNC:-always} \
    --dir "$TMP/p" --daemonize yes --logfile "$TMP/p.log"
fi
$RPIN redis-server --port $RR --bind 127.0.0.1 --save '' --appendonly yes --dir "$TMP/r" \
  --replicaof 127.0.0.1 $RP --daemonize yes --logfile "$TMP/r.log"
i=0; until redis-cli -p $RR info replication 2>/dev/null | grep -q 'master_link_status:up'; do
  i=$((i+1)); [ $i -lt 200 ] || { echo "bench: the replica did not sync"; exit 1; }; sleep 0.05; done

PORT=$(free_port)
# use old|new: the herald to start (CUR) and its added options (CUR_ARGS)
use() {
  if [ "$1" = old ]; then CUR=$COMPARE; CUR_ARGS=${COMPARE_ARGS:-}
  else CUR=$BIN; CUR_ARGS=${BIN_ARGS:-}; fi
}
use new
start() {
  rm -rf "$TMP/data"
  $HPIN "$CUR" serve --listen 127.0.0.1:$PORT --data-dir "$TMP/data" --log-level warn \
    --connection-rate-per-ip 0 --max-connections-per-ip 0 "$@" $CUR_ARGS \
    2>"$TMP/herald.log" &
  PID=$!
  i=0; until curl -sf http://127.0.0.1:$PORT/readyz >/dev/null; do
    i=$((i+1)); [ $i -lt 200 ] || { cat "$TMP/herald.log"; exit 1; }; sleep 0.05; done
}
stop() { kill $PID; wait $PID || true; PID=; }

waits() {
  redis-cli -p $RP info commandstats | tr -d '\r' | sed -n 's/^cmdstat_wait:calls=\([0-9]*\),.*/\1/p'
}
# cpu PORT: the server's used CPU seconds (user + sys)
cpu() {
  redis-cli -p $1 info cpu | tr -d '\r' | awk -F: '/^used_cpu_(user|sys):/ { s += $2 } END { printf "%.6f", s }'
}

# run LABEL: one line of the table
run() {
  [ "${CMDSTATS:-0}" = 1 ] && redis-cli -p $RP config resetstat >/dev/null
  w0=$(waits); w0=${w0:-0}
  pc0=$(cpu $RP); rc0=$(cpu $RR)
  PP=
  if [ -n "${PERF:-}" ]; then
    NROW=$((${NROW:-0} + 1))
    perf record -q -g -p $PID -o "$PERF/row-$NROW.data" -- sleep "$SECS" 2>/dev/null &
    PP=$!
  fi
  line=$($HPIN "$LOADER" ${TOPICS:+--topics $TOPICS} single $PORT bench $CONNS "$SECS" $PID) || true
  pc1=$(cpu $RP); rc1=$(cpu $RR)
  [ -n "$PP" ] && { wait $PP || true; echo "cluster: perf data $PERF/row-$NROW.data ($1)" >&2; }
  w1=$(waits); w1=${w1:-0}
  [ "${CMDSTATS:-0}" = 1 ] && redis-cli -p $RP info commandstats | tr -d '\r' |
    sed -n 's/^cmdstat_\([a-z]*\):calls=\([0-9]*\),usec=[0-9]*,usec_per_call=\([0-9.]*\).*/cluster:   \1 calls=\2 usec_per_call=\3/p' >&2
  [ -n "$line" ] || { echo "bench: herald-publish-load failed" >&2; exit 1; }
  echo "cluster: $line" >&2
  rlabel=$1
  set -- $line
  for kv; do eval "${kv%%=*}=${kv#*=}"; done
  awk -v l="$rlabel" -v c="$conns" -v e="$events" -v r="$events_per_s" -v p50="$p50_ms" -v p99="$p99_ms" \
      -v err="$errors" -v hc="$herald_cpu_s" -v te="$total_events" -v w="$((w1 - w0))" \
      -v pc="$pc0 $pc1" -v rc="$rc0 $rc1" 'BEGIN {
    hce = (hc >= 0 && e > 0) ? sprintf("%.2f µs", hc * 1e6 / e) : "-"
    epw = w > 0 ? sprintf("%.1f", te / w) : "-"
    split(pc, a, " "); split(rc, b, " ")
    rce = te > 0 ? sprintf("%.2f / %.2f µs", (a[2] - a[1]) * 1e6 / te, (b[2] - b[1]) * 1e6 / te) : "-"
    printf "| %s | %s | %.0f | %.2f ms | %.2f ms | %s | %s | %s | %s |\n", l, c, r, p50, p99, err, hce, epw, rce }'
}

# row LABEL ARGS…: one row, or with COMPARE one per binary and round
row() {
  label=$1; shift
  if [ -z "${COMPARE:-}" ]; then
    start "$@"; run "$label"; stop; return
  fi
  n=0
  while [ $n -lt "${ROUNDS:-3}" ]; do
    for side in old new; do
      use $side; start "$@"; run "$label ($side)"; stop
    done
    n=$((n + 1))
  done
  use new
}

[ -n "$HPIN$RPIN${FSYNC_DELAY:-}" ] &&
  echo "cluster: herald + load on CPUs ${HERALD_CPUS:-any}, Redis on CPUs ${REDIS_CPUS:-any}, fsync delay ${FSYNC_DELAY:-none}" >&2
echo "| scenario | connections | events/s | p50 latency | p99 latency | errors | herald CPU/event | events/WAIT | Redis CPU/event primary / replica |"
echo "|---|---|---|---|---|---|---|---|---|"
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
  FO_ARGS="--ws-anonymous --max-connections-per-ip 0 --connection-rate-per-ip 0"
  echo
  echo "| fan-out, 1,000 WebSocket subscribers, 100 msg/s | p50 | p99 | publish 201 p50 / p99 | first delivery p50 / p99 | last delivery p50 / p99 | gaps | dups | herald CPU (all nodes) | CPU/delivery | client CPU/delivery |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
  # fanout LABEL SUB_PORTS PUB_PORT PIDS: one row
  fanout() {
    $HPIN "$FANOUT_BIN" --target herald --proto ws --port $3 --sub-ports $2 --pub-port $3 --subs 1000 \
      --duration "$SECS" --rate 100 --server-pids $4 --label "$1" ${FANOUT_ARGS:-} 2>/dev/null | /usr/bin/python3 -c '
import json, sys
r = json.load(sys.stdin)
per = r["server_cpu_pct"] / 100 * 1e6 / r["deliveries_per_s"] if r["deliveries_per_s"] else 0
ms = lambda k: r.get(k, 0) / 1000
print("| %s | %.2f ms | %.2f ms | %.2f / %.2f ms | %.2f / %.2f ms | %.2f / %.2f ms | %d | %d | %d%% | %.2f µs | %.2f µs |" % (
      r["label"], ms("p50_us"), ms("p99_us"), ms("publish_rtt_p50_us"), ms("publish_rtt_p99_us"),
      ms("first_p50_us"), ms("first_p99_us"), ms("last_p50_us"), ms("last_p99_us"),
      r["gaps"], r["dups"], r["server_cpu_pct"], per, r.get("client_cpu_us_per_delivery", 0)))'
  }
  # fanout_rows SUFFIX: the rows of herald $CUR
  fanout_rows() {
    if [ "${FANOUT_ONE:-1}" = 1 ]; then
      for e in local redis; do
        start --engine $e --sync off --redis-url redis://127.0.0.1:$RP $FO_ARGS
        fanout "one node, $e engine$1" $PORT $PORT $PID
        stop
      done
    fi
    # Three subscriber nodes and a fourth that takes the publishes.
    NPIDS=; NPORTS=; PUBPORT=
    for k in 1 2 3 4; do
      p=$(free_port)
      rm -rf "$TMP/node$k"
      $HPIN "$CUR" serve --listen 127.0.0.1:$p --data-dir "$TMP/node$k" --log-level warn --engine redis \
        --redis-url redis://127.0.0.1:$RP --node-name node$k $FO_ARGS $CUR_ARGS 2>"$TMP/node$k.log" &
      NPIDS="${NPIDS:+$NPIDS,}$!"
      i=0; until curl -sf http://127.0.0.1:$p/readyz >/dev/null; do
        i=$((i+1)); [ $i -lt 200 ] || { cat "$TMP/node$k.log"; exit 1; }; sleep 0.05; done
      if [ $k = 4 ]; then PUBPORT=$p; else NPORTS="${NPORTS:+$NPORTS,}$p"; fi
    done
    fanout "3 subscriber nodes + 1 publishing node, redis engine$1" $NPORTS $PUBPORT $NPIDS
    for p in $(echo $NPIDS | tr , ' '); do kill $p; wait $p || true; done
    NPIDS=
  }
  if [ -z "${COMPARE:-}" ]; then
    use new; fanout_rows ""
  else
    n=0
    while [ $n -lt "${ROUNDS:-3}" ]; do
      for side in old new; do
        use $side; fanout_rows " ($side)"
      done
      n=$((n + 1))
    done
    use new
  fi
fi

[ "${RB:-1}" = 1 ] || exit 0
echo
echo "redis-benchmark on the same primary (appendfsync ${FSYNC:-always}, $CONNS clients, 100k requests):"
rb() { redis-benchmark -p $RP -c $CONNS -n 100000 -q "$@" 2>/dev/null | tr '\r' '\n' | grep -v '^$' | grep -v 'rps=' | tail -n 5 || true; }
rb -t set,incr
rb PUBLISH herald:bench hello
