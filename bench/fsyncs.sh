#!/bin/bash
# fsyncs per publish cycle on the Redis primary (docs/cluster.md, issue 12):
# starts a Redis primary (appendonly yes, appendfsync always) and one
# replica on free loopback ports and one herald (--engine redis,
# --redis-durability replicated), warms it up, then runs 6 s of single
# publishes (herald-publish-load from BIN's directory, 256 connections) to
# TOPICS topics round-robin. Prints events/s, the WAIT calls (the primary's
# commandstats: one per publish cycle) and, with STRACE=1, the primary's
# fdatasync calls (strace -c on the redis-server process) and their count
# per WAIT. OPTION… are added to herald's (e.g. --redis-transactions on).
#
# Usage: [STRACE=1] bench/fsyncs.sh BIN [TOPICS [OPTION…]]   (TOPICS default 1)
set -eu
[ $# -ge 1 ] || { echo "usage: [STRACE=1] $0 HERALD_BIN [TOPICS [HERALD_OPTION...]]" >&2; exit 2; }
BIN=$1; T=${2:-1}
shift $(($# >= 2 ? 2 : 1))
LOADER=${LOAD_BIN:-$(dirname "$BIN")/herald-publish-load}
[ -x "$BIN" ] || { echo "fsyncs: $BIN is missing" >&2; exit 1; }
[ -x "$LOADER" ] || { echo "fsyncs: $LOADER is missing" >&2; exit 1; }
if [ "${STRACE:-0}" = 1 ]; then
  command -v strace >/dev/null || { echo "fsyncs: strace is missing" >&2; exit 1; }
fi
free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
RP=$(free_port); RR=$(free_port); HP=$(free_port)
TMP=$(mktemp -d)
HPID=; SP=
cleanup() {
  [ -n "$SP" ] && kill "$SP" 2>/dev/null
  [ -n "$HPID" ] && { kill "$HPID" 2>/dev/null; wait "$HPID" 2>/dev/null; }
  redis-cli -p "$RR" shutdown nosave >/dev/null 2>&1
  redis-cli -p "$RP" shutdown nosave >/dev/null 2>&1
  rm -rf "$TMP"
}
trap cleanup EXIT
# wait_for WHAT CMD…: up to 10 s
wait_for() {
  local what=$1 i=0; shift
  until "$@" >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 200 ] || { echo "fsyncs: $what did not come up" >&2; exit 1; }
    sleep 0.05
  done
}
mkdir -p "$TMP/p" "$TMP/r"
redis-server --port "$RP" --bind 127.0.0.1 --save '' --appendonly yes --appendfsync always \
  --dir "$TMP/p" --daemonize yes --logfile "$TMP/p.log"
redis-server --port "$RR" --bind 127.0.0.1 --save '' --appendonly yes --dir "$TMP/r" \
  --replicaof 127.0.0.1 "$RP" --daemonize yes --logfile "$TMP/r.log"
wait_for "the replica" sh -c "redis-cli -p $RR info replication | grep -q 'master_link_status:up'"
"$BIN" serve --listen 127.0.0.1:"$HP" --data-dir "$TMP/d" --log-level warn \
  --connection-rate-per-ip 0 --max-connections-per-ip 0 --engine redis \
  --redis-url redis://127.0.0.1:"$RP" --redis-durability replicated "$@" 2>"$TMP/h.log" &
HPID=$!
wait_for "herald" curl -sf http://127.0.0.1:"$HP"/readyz
PP=$(redis-cli -p "$RP" info server | tr -d '\r' | sed -n 's/^process_id://p')
"$LOADER" --topics "$T" single "$HP" warm 256 1 "$HPID" >/dev/null
redis-cli -p "$RP" config resetstat >/dev/null
if [ "${STRACE:-0}" = 1 ]; then
  strace --seccomp-bpf -f -c -e trace=fdatasync -p "$PP" -o "$TMP/c.txt" &
  SP=$!
  sleep 0.3 # strace attaches (no event to wait for)
fi
line=$("$LOADER" --topics "$T" single "$HP" bench 256 6 "$HPID")
w=$(redis-cli -p "$RP" info commandstats | tr -d '\r' |
  sed -n 's/^cmdstat_wait:calls=\([0-9]*\),.*/\1/p')
f=
if [ -n "$SP" ]; then
  kill -INT "$SP"; wait "$SP" 2>/dev/null || true; SP=
  f=$(awk '/fdatasync/ {print $4}' "$TMP/c.txt")
fi
eps=$(echo "$line" | sed -n 's/.*events_per_s=\([0-9]*\).*/\1/p')
per=-
[ -n "$f" ] && [ -n "$w" ] && [ "$w" -gt 0 ] && per=$(echo "scale=2; $f/$w" | bc)
echo "bin=$BIN options=${*:-none} topics=$T events/s=$eps waits=${w:-0} fsyncs=${f:--} per_wait=$per"
