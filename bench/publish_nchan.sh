#!/bin/sh
# Calibration of the single-publish target: herald (sync=off) and nginx +
# Nchan (in-memory, bench/nchan.conf.in) take turns, round by round, under
# the same load generator (herald-publish-load; --nchan posts the same
# structured CloudEvent to /pub/bench), 64 keep-alive connections with one
# request each in flight. This machine's speed drifts by up to 2x within
# minutes, so an absolute events/s says little on its own: the ratio to
# Nchan measured in the same minutes is what carries from run to run.
# Each server is started fresh per run on a free loopback port. Prints a
# Markdown table (every run, then the medians) for docs/benchmarks.md and
# a progress line per run on stderr.
#
# Usage: bench/publish_nchan.sh [ROUNDS] [SECONDS]   (default 3 rounds of 5 s)
#   HERALD_BIN     herald binary (build/herald); herald-publish-load is taken
#                  from the same directory unless LOAD_BIN is set
#   NCHAN_WORKERS  nginx worker_processes to compare, a list (default "1 2")
set -eu
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
SECS=${2:-5}
BIN=${HERALD_BIN:-build/herald}
LOADER=${LOAD_BIN:-$(dirname "$BIN")/herald-publish-load}
NGINX=${NGINX_BIN:-/usr/sbin/nginx}
NCHAN_WORKERS=${NCHAN_WORKERS:-1 2}
[ -x "$BIN" ] || { echo "bench: $BIN is missing (make build)"; exit 1; }
[ -x "$LOADER" ] || { echo "bench: $LOADER is missing (make build)"; exit 1; }
[ -x "$NGINX" ] && [ -f /usr/lib/nginx/modules/ngx_nchan_module.so ] ||
  { echo "bench: nginx with Nchan is missing (apt-get install -y nginx libnginx-mod-nchan)"; exit 1; }

TMP=$(mktemp -d)
SPID=
trap 'if [ -n "$SPID" ]; then kill $SPID 2>/dev/null || true; wait $SPID 2>/dev/null || true; fi; rm -rf "$TMP"' EXIT

freeport() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() { # URL LOG
  i=0; until curl -s -o /dev/null "$1"; do
    i=$((i+1)); [ $i -lt 200 ] || { cat "$2" >&2; exit 1; }; sleep 0.05; done
}

start_herald() {
  PORT=$(freeport)
  rm -rf "$TMP/data"
  "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$TMP/data" --sync off --log-level warn \
    --dedup-window 10m 2>"$TMP/herald.log" &
  SPID=$!
  wait_port "http://127.0.0.1:$PORT/healthz" "$TMP/herald.log"
  PIDS=$SPID
}

start_nchan() { # WORKERS
  PORT=$(freeport)
  rm -rf "$TMP/nginx"; mkdir -p "$TMP/nginx"
  sed -e "s#@PREFIX@#$TMP/nginx#g" -e "s#@PORT@#$PORT#g" -e "s#@WORKERS@#$1#g" \
      -e "s#@NOFILE@#1024#g" bench/nchan.conf.in >"$TMP/nginx/nginx.conf"
  "$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log" 2>>"$TMP/nginx/error.log" &
  SPID=$!
  wait_port "http://127.0.0.1:$PORT/sub/none" "$TMP/nginx/error.log"
  i=0; while [ "$(pgrep -P $SPID | wc -l)" -lt "$1" ]; do
    i=$((i+1)); [ $i -lt 100 ] || break; sleep 0.05; done
  PIDS=$(pgrep -P $SPID | head -1) # the loader reads one process's CPU: a worker
}

stop_server() {
  kill "$SPID" 2>/dev/null || true
  wait "$SPID" 2>/dev/null || true
  SPID=
}

# measure LABEL [--nchan]: one run; appends "LABEL events/s p50 p99 errors" to $TMP/rows
measure() {
  label=$1; shift
  line=$("$LOADER" "$@" single $PORT bench 64 "$SECS" $PIDS) || true
  [ -n "$line" ] || { echo "bench: herald-publish-load failed ($label)" >&2; exit 1; }
  echo "publish_nchan: $label $line" >&2
  for kv in $line; do eval "${kv%%=*}=${kv#*=}"; done
  echo "$label $events_per_s $p50_ms $p99_ms $errors" >>"$TMP/rows"
}

: >"$TMP/rows"
r=1
while [ $r -le "$ROUNDS" ]; do
  start_herald; measure herald; stop_server
  for w in $NCHAN_WORKERS; do
    start_nchan "$w"; measure "nchan-$w" --nchan; stop_server
  done
  r=$((r+1))
done

echo "| run | server | events/s | p50 | p99 | errors |"
echo "|---|---|---|---|---|---|"
awk '{ n[$1]++; printf "| %d | %s | %.0f | %.2f ms | %.2f ms | %s |\n", n[$1], $1, $2, $3, $4, $5 }' "$TMP/rows"
echo
echo "| server | median events/s | herald ÷ server |"
echo "|---|---|---|"
for s in herald $(for w in $NCHAN_WORKERS; do printf 'nchan-%s ' "$w"; done); do
  awk -v s="$s" '$1 == s { print $2 }' "$TMP/rows" | sort -n | awk '{ v[NR] = $1 }
    END { print ((NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }' >"$TMP/med.$s"
done
H=$(cat "$TMP/med.herald")
for s in herald $(for w in $NCHAN_WORKERS; do printf 'nchan-%s ' "$w"; done); do
  awk -v s="$s" -v h="$H" -v m="$(cat "$TMP/med.$s")" \
    'BEGIN { printf "| %s | %.0f | %.2f |\n", s, m, (m > 0 ? h / m : 0) }'
done
