#!/bin/sh
# Connection-registry benchmark (docs/cluster.md "Connection registry and
# presence"): a WebSocket connect storm (bench/fanout.c's herald-fanout,
# anonymous connect + subscribe, every handshake at once) on one node with
# the local engine, then with the redis engine (each subscribe also writes a
# presence entry to Redis, batched per loop turn). Reports each storm's
# result line, how long after the last subscribe reply every presence entry
# was in Redis, and Redis's command counts (one HSET per connection, no
# round trip of its own).
#
# Usage: bench/registry_storm.sh
#   HERALD_BIN   herald binary (build/herald; herald-fanout next to it)
#   N            WebSocket clients (10000)
set -eu
cd "$(dirname "$0")/.."
BIN=${HERALD_BIN:-build/herald}
FANOUT=$(dirname "$BIN")/herald-fanout
N=${N:-10000}
PY=/usr/bin/python3
[ -x "$BIN" ] && [ -x "$FANOUT" ] || { echo "bench: $BIN or $FANOUT is missing (make build)"; exit 1; }
command -v redis-server >/dev/null || { echo "bench: redis-server is missing"; exit 1; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
WORK=$(mktemp -d)
RPID= HPID=
cleanup() {
  [ -n "$HPID" ] && kill "$HPID" 2>/dev/null && wait "$HPID" 2>/dev/null
  [ -n "$RPID" ] && kill "$RPID" 2>/dev/null && wait "$RPID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

RP=$(port)
mkdir -p "$WORK/redis"
redis-server --port "$RP" --save '' --appendonly no --dir "$WORK/redis" >"$WORK/redis.log" 2>&1 &
RPID=$!
until redis-cli -p "$RP" ping >/dev/null 2>&1; do sleep 0.05; done

for engine in local redis; do
  P=$(port)
  extra=
  [ "$engine" = redis ] && extra="--engine redis --redis-url redis://127.0.0.1:$RP --redis-durability none"
  # shellcheck disable=SC2086
  "$BIN" serve --listen "127.0.0.1:$P" --data-dir "$WORK/data" --log-level warn \
    --max-connections $((N + 100)) --max-connections-per-ip 0 --connection-rate-per-ip 0 \
    --listen-backlog 4096 --ws-anonymous --ws-ping-interval 1h --header-timeout 60s $extra \
    >"$WORK/herald-$engine.log" 2>&1 &
  HPID=$!
  until curl -fs "http://127.0.0.1:$P/readyz" >/dev/null 2>&1; do sleep 0.05; done
  echo "== $engine engine: $N WebSocket clients at once (anonymous, subscribe)" >&2
  "$FANOUT" --target herald --proto ws --port "$P" --subs "$N" --idle --max-connecting "$N" \
    --settle-ms 0 --hold 8 --label "registry-storm-$engine" --server-pids "$HPID" >"$WORK/fanout.out" 2>&1 &
  FP=$!
  until grep -q "subscribed in" "$WORK/fanout.out" 2>/dev/null; do
    kill -0 "$FP" 2>/dev/null || break
    sleep 0.01
  done
  t0=$(date +%s.%N)
  if [ "$engine" = redis ]; then
    i=0
    while [ "$(redis-cli -p "$RP" hlen '{t:bench}:presence')" -lt "$N" ] && [ $i -lt 700 ]; do
      sleep 0.01; i=$((i + 1))
    done
    echo "presence entries in Redis: $(redis-cli -p "$RP" hlen '{t:bench}:presence') of $N," \
      "$(echo "$(date +%s.%N) - $t0" | bc) s after the last subscribe reply"
  fi
  wait "$FP" || true
  cat "$WORK/fanout.out"
  [ "$engine" = redis ] && redis-cli -p "$RP" info commandstats | grep -E 'cmdstat_(hset|sadd|set):' || true
  kill "$HPID"; wait "$HPID" || true; HPID=
  rm -rf "$WORK/data"
done
