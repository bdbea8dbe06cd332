#!/bin/sh
# Reconnect-storm benchmark: every client connects at once, as after a
# restart or a network blip. herald is started fresh on a free loopback port
# for each scenario (per-IP limits off: every client comes from 127.0.0.1),
# bench/storm.py runs the burst and prints one JSON line: clients, ok,
# failures, connects/s, connect p50/p99/max (the TCP handshake: a SYN
# dropped by a full accept queue costs 1 s), ready p99 (answer or subscribe
# reply) and ListenOverflows (machine-wide) over the burst.
#
# A third scenario uses bench/fanout.c (herald-fanout, a libuv client in C,
# built with herald) for the same WebSocket storm without the Python
# client's own limits: connect with a JWT (HS256, sub "u<i>") + subscribe,
# every handshake allowed in flight at once (--max-connecting = clients),
# at most CONNECT_BATCH connect() calls per turn of the client's loop (so
# each client sends its request as soon as its connect completed, as
# separate clients would), source ports bound explicitly from
# SOURCE_PORTS (the kernel's own ephemeral-port choice costs seconds of
# CPU past half the range to one destination; see bench/fanout.c). It
# reports connect_s (the last client subscribed), the time the last one
# was connected / upgraded / subscribed, p50/p99 of each phase, the CPU
# of the client and of herald over the phase, and the errors.
#
# Usage: bench/storm.sh                   (all three scenarios)
#   HERALD_BIN   herald binary (build/herald)
#   WS_CLIENTS   WebSocket clients (19500: a 20,000 open-files limit, less
#                what the client process needs itself)
#   LP_CLIENTS   long-poll clients (1000)
#   BACKLOG      --listen-backlog (4096)
#   HEADER_TIMEOUT  --header-timeout (60s, see below)
#   SCENARIOS    which to run ("longpoll ws c": the long-polls, the Python
#                WebSockets, the C client's WebSockets)
#   CONNECT_BATCH   herald-fanout --connect-batch (64)
#   SOURCE_PORTS    the WebSocket clients' source ports (storm.py and
#                   herald-fanout --source-ports; 10000-32767: below the
#                   kernel's ephemeral range, so other programs' ports are
#                   left alone)
set -eu
cd "$(dirname "$0")/.."
BIN=${HERALD_BIN:-build/herald}
FANOUT=${FANOUT_BIN:-$(dirname "$BIN")/herald-fanout}
WS_CLIENTS=${WS_CLIENTS:-19500}
LP_CLIENTS=${LP_CLIENTS:-1000}
BACKLOG=${BACKLOG:-4096}
CONNECT_BATCH=${CONNECT_BATCH:-64}
SCENARIOS=${SCENARIOS:-longpoll ws c}
SOURCE_PORTS=${SOURCE_PORTS:-10000-32767}
# A single client process starting 19,500 connections at once on a busy
# machine can take longer than herald's default 10 s to send the first
# byte of some: herald then closes them as silent (a slowloris defence),
# which measures the client, not the server. Hence a minute here.
HEADER_TIMEOUT=${HEADER_TIMEOUT:-60s}
SECRET=bench-storm-secret
PY=/usr/bin/python3

[ -x "$BIN" ] || { echo "bench: $BIN is missing (make build)"; exit 1; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
[ "$NOFILE" = unlimited ] || [ "$NOFILE" -gt "$((WS_CLIENTS + 100))" ] ||
  { echo "bench: ulimit -n is $NOFILE; $WS_CLIENTS clients need about $((WS_CLIENTS + 100))"; exit 1; }

WORK=$(mktemp -d)
PID=
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

start() {
  PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  rm -rf "$WORK/data"
  "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" --log-level warn \
    --max-connections "$((WS_CLIENTS + 100))" --max-connections-per-ip 0 \
    --connection-rate-per-ip 0 --listen-backlog "$BACKLOG" --jwt-secret "$SECRET" \
    --ws-ping-interval 1h --header-timeout "$HEADER_TIMEOUT" "$@" >"$WORK/herald.log" 2>&1 &
  PID=$!
  for _ in $(seq 200); do
    curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "bench: herald did not start"; cat "$WORK/herald.log"; exit 1
}

stop() {
  kill "$PID"; wait "$PID" || true; PID=
}

want() { case " $SCENARIOS " in *" $1 "*) return 0 ;; esac; return 1; }

if want longpoll; then
  echo "== storm: $LP_CLIENTS long-poll clients at once (backlog $BACKLOG)" >&2
  start
  $PY bench/storm.py --port "$PORT" --kind longpoll -n "$LP_CLIENTS"
  stop
fi
if want ws; then
  echo "== storm: $WS_CLIENTS WebSocket clients at once (JWT, subscribe; backlog $BACKLOG)" >&2
  start
  $PY bench/storm.py --port "$PORT" --kind ws -n "$WS_CLIENTS" --secret "$SECRET" --timeout 120 \
    --source-ports "$SOURCE_PORTS"
  stop
fi
if want c && [ -x "$FANOUT" ]; then
  echo "== storm: $WS_CLIENTS WebSocket clients at once, C client (JWT, subscribe)" >&2
  start
  "$FANOUT" --target herald --proto ws --port "$PORT" --subs "$WS_CLIENTS" --idle \
    --max-connecting "$WS_CLIENTS" --connect-batch "$CONNECT_BATCH" \
    --source-ports "$SOURCE_PORTS" --jwt-secret "$SECRET" --server-pids "$PID" \
    --settle-ms 0 --label storm
  stop
fi
