#!/bin/sh
# Fan-out benchmark: herald against nginx + Nchan on the same machine in the
# same run. For every scenario each server is started fresh on a free
# loopback port, measured by herald-fanout (bench/fanout.c), and stopped;
# the servers alternate scenario by scenario so that both see the same
# machine. Prints a Markdown table for docs/benchmarks.md on stdout and a
# progress line per step on stderr; the raw result lines stay in
# $FANOUT_OUT (default: a scratch directory, removed at exit).
#
# Usage: bench/fanout.sh [SECONDS]          (default 10 s of publishing per run)
#   HERALD_BIN     herald binary (build/herald); herald-fanout is taken from
#                  the same directory unless FANOUT_BIN is set
#   NCHAN_WORKERS  nginx worker_processes to compare, a list ("1 auto")
#   SCENARIOS      a subset, e.g. "idle sat-ws-1000" (all by default)
#
# Scenarios: WebSocket and SSE x {1,000, 10,000} subscribers at saturation
# (16 messages outstanding, a message done when 99% got it); WebSocket and
# SSE x 1,000 subscribers at 100 messages/s (latency); 10,000 idle subscribed
# WebSocket connections (server RSS before and after, per connection).
# "wspb" and "idle-pb" are the same over WebSocket in the protobuf format
# (herald only: Nchan has no such protocol), run next to the JSON ones.
set -eu
cd "$(dirname "$0")/.."
SECS=${1:-10}
BIN=${HERALD_BIN:-build/herald}
FANOUT=${FANOUT_BIN:-$(dirname "$BIN")/herald-fanout}
NGINX=${NGINX_BIN:-/usr/sbin/nginx}
NCHAN_WORKERS=${NCHAN_WORKERS:-1 auto}
SCENARIOS=${SCENARIOS:-idle idle-pb sat-ws-1000 sat-wspb-1000 sat-sse-1000 sat-ws-10000 sat-wspb-10000 sat-sse-10000 rate-ws-1000 rate-wspb-1000 rate-sse-1000}

[ -x "$BIN" ] || { echo "bench: $BIN is missing (make build)"; exit 1; }
[ -x "$FANOUT" ] || { echo "bench: $FANOUT is missing (make build)"; exit 1; }
[ -x "$NGINX" ] && [ -f /usr/lib/nginx/modules/ngx_nchan_module.so ] ||
  { echo "bench: nginx with Nchan is missing (apt-get install -y nginx libnginx-mod-nchan)"; exit 1; }

# 10,000 subscribers need 10,000 descriptors in the client and in the server,
# and 10,000 ephemeral ports towards one address.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
[ "$NOFILE" = unlimited ] || [ "$NOFILE" -ge 10100 ] ||
  { echo "bench: ulimit -n is $NOFILE; 10,000 subscribers need about 10,100"; exit 1; }
set -- $(cat /proc/sys/net/ipv4/ip_local_port_range)
[ $(($2 - $1)) -ge 10100 ] ||
  { echo "bench: net.ipv4.ip_local_port_range ($1-$2) is too narrow for 10,000 connections"; exit 1; }
NGINX_NOFILE=$NOFILE; [ "$NOFILE" = unlimited ] && NGINX_NOFILE=65536

TMP=$(mktemp -d)
OUT=${FANOUT_OUT:-$TMP/results}
mkdir -p "$OUT"
SPID=
cleanup() {
  [ -n "$SPID" ] && kill "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

freeport() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

say() { echo "fanout: $*" >&2; }

wait_port() { # URL LOG
  i=0; until curl -s -o /dev/null "$1"; do
    i=$((i+1)); [ $i -lt 200 ] || { cat "$2" >&2; exit 1; }; sleep 0.05; done
}

# --ws-anonymous lets the WebSocket subscribers connect without a token;
# a herald from before the WebSocket edge has no such option (and no edge).
WS_ANON=
"$BIN" config-doc 2>/dev/null | grep -q -- --ws-anonymous && WS_ANON=--ws-anonymous
# Every subscriber comes from 127.0.0.1: the per-address limits would refuse them.
IPLIM=
"$BIN" config-doc 2>/dev/null | grep -q -- --max-connections-per-ip &&
  IPLIM="--max-connections-per-ip 0 --connection-rate-per-ip 0"

start_herald() {
  PORT=$(freeport)
  rm -rf "$TMP/data"
  "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$TMP/data" --sync off --log-level warn \
    --max-connections 30000 $WS_ANON $IPLIM 2>"$TMP/herald.log" &
  SPID=$!
  wait_port "http://127.0.0.1:$PORT/healthz" "$TMP/herald.log"
  PIDS=$SPID
}

start_nchan() { # WORKERS
  PORT=$(freeport)
  rm -rf "$TMP/nginx"; mkdir -p "$TMP/nginx"
  sed -e "s#@PREFIX@#$TMP/nginx#g" -e "s#@PORT@#$PORT#g" -e "s#@WORKERS@#$1#g" \
      -e "s#@NOFILE@#$NGINX_NOFILE#g" bench/nchan.conf.in >"$TMP/nginx/nginx.conf"
  "$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -e "$TMP/nginx/error.log" 2>>"$TMP/nginx/error.log" &
  SPID=$!
  wait_port "http://127.0.0.1:$PORT/sub/none" "$TMP/nginx/error.log"
  # RSS and CPU are those of the master and every worker.
  i=0; while [ "$(pgrep -P $SPID | wc -l)" -lt "$(nchan_workers "$1")" ]; do
    i=$((i+1)); [ $i -lt 100 ] || break; sleep 0.05; done
  PIDS=$SPID$(pgrep -P $SPID | sed 's/^/,/' | tr -d '\n')
}

nchan_workers() { [ "$1" = auto ] && nproc || echo "$1"; }

stop_server() {
  kill "$SPID" 2>/dev/null || true
  wait "$SPID" 2>/dev/null || true
  SPID=
}

# run SCENARIO TARGET: one fresh server, one herald-fanout run, one result line.
run() {
  sc=$1; tgt=$2
  case $tgt in
    herald) start_herald; kind=herald ;;
    nchan-*) start_nchan "${tgt#nchan-}"; kind=nchan ;;
  esac
  case $sc in
    idle) args="--proto ws --subs 10000 --idle" ;;
    idle-pb) args="--proto ws --format protobuf --subs 10000 --idle" ;;
    sat-*) set -- $(echo "$sc" | tr - ' '); args="--proto $2 --subs $3 --duration $SECS --window 16" ;;
    rate-*) set -- $(echo "$sc" | tr - ' '); args="--proto $2 --subs $3 --duration $SECS --rate 100" ;;
  esac
  args=$(echo "$args" | sed 's/--proto wspb/--proto ws --format protobuf/')
  say "$sc $tgt: $args (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  # shellcheck disable=SC2086
  "$FANOUT" --target $kind --port "$PORT" --server-pids "$PIDS" --label "$sc $tgt" $args \
    >"$OUT/$sc.$tgt.json" 2>"$OUT/$sc.$tgt.log" || true
  [ -s "$OUT/$sc.$tgt.json" ] || echo '{"failed":true}' >"$OUT/$sc.$tgt.json"
  tail -3 "$OUT/$sc.$tgt.log" | sed 's/^/  /' >&2
  stop_server
}

TARGETS=herald
for w in $NCHAN_WORKERS; do TARGETS="$TARGETS nchan-$w"; done
for sc in $SCENARIOS; do
  for tgt in $TARGETS; do
    case $sc:$tgt in *pb*:nchan-*) continue ;; esac
    run "$sc" "$tgt"
  done
done

# The table: one row per scenario and metric, herald first, then each Nchan.
/usr/bin/python3 - "$OUT" "$SCENARIOS" "$TARGETS" "$(nproc)" <<'EOF'
import json, sys, os
out, scenarios, targets, ncpu = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), sys.argv[4]
def load(sc, t):
    try:
        with open(os.path.join(out, f"{sc}.{t}.json")) as f:
            return json.loads(f.readline())
    except (OSError, ValueError):
        return {"na": True} if "pb" in sc and t != "herald" else {"failed": True}
def name(t):
    if t == "herald":
        return "herald"
    w = t.split("-", 1)[1]
    return f"Nchan ({ncpu if w == 'auto' else w} worker{'s' if w == 'auto' or w != '1' else ''})"
def trouble(r):
    if r.get("na"):
        return "–"
    if r.get("failed"):
        return "run failed"
    bad = []
    if r.get("subscribed", 0) < r.get("subs", 0):
        bad.append(f"{r['subscribed']}/{r['subs']} subscribed")
    for k in ("disconnects", "gaps", "not_received", "stalled", "publish_errors", "publish_http_errors"):
        if r.get(k):
            bad.append(f"{k} {r[k]}")
    return ", ".join(bad)
def ms(us):
    return f"{us/1000:.1f} ms" if us >= 1000 else f"{us:.0f} µs"
titles = {"ws": "WebSocket", "wspb": "WebSocket protobuf", "sse": "SSE"}
print("| scenario | metric | " + " | ".join(name(t) for t in targets) + " | herald ÷ " + name(targets[1]) + " |"
      if len(targets) > 1 else "| scenario | metric | herald |")
print("|---|---|" + "---|" * len(targets) + ("---|" if len(targets) > 1 else ""))
for sc in scenarios:
    rs = [load(sc, t) for t in targets]
    rows = []
    if sc.startswith("idle"):
        label = "10,000 idle WebSocket subscribers" + (" (protobuf)" if sc == "idle-pb" else "")
        rows.append(("server memory per connection",
                     [f"{r['bytes_per_conn']/1024:.1f} KiB" if "bytes_per_conn" in r else "–" for r in rs],
                     lambda r: r.get("bytes_per_conn")))
        rows.append(("server RSS before → after",
                     [f"{r['rss_before_kb']/1024:.0f} → {r['rss_after_kb']/1024:.0f} MiB" if "rss_after_kb" in r else "–" for r in rs],
                     None))
    else:
        kind, proto, n = sc.split("-")
        label = f"{titles[proto]}, {int(n):,} subscribers, " + ("saturation" if kind == "sat" else "100 msg/s")
        if kind == "sat":
            rows.append(("deliveries/s", [f"{r['deliveries_per_s']:,.0f}" if "deliveries_per_s" in r else "–" for r in rs],
                         lambda r: r.get("deliveries_per_s")))
            rows.append(("messages/s", [f"{r['published_per_s']:,.0f}" if "published_per_s" in r else "–" for r in rs], None))
        else:
            rows.append(("messages/s sent (of 100)", [f"{r['published_per_s']:,.0f}" if "published_per_s" in r else "–" for r in rs], None))
        rows.append(("latency p50 / p99", [f"{ms(r['p50_us'])} / {ms(r['p99_us'])}" if "p99_us" in r else "–" for r in rs],
                     (lambda r: r.get("p99_us")) if kind == "rate" else None))
        rows.append(("CPU% server / client", [f"{r['server_cpu_pct']:.0f} / {r['client_cpu_pct']:.0f}" if "server_cpu_pct" in r else "–" for r in rs], None))
    rows.append(("errors", [trouble(r) or "none" for r in rs], None))
    for i, (metric, cells, key) in enumerate(rows):
        ratio = ""
        if len(rs) > 1 and key and key(rs[0]) and key(rs[1]):
            ratio = f"{key(rs[0]) / key(rs[1]):.2f}×"
        print(f"| {label if i == 0 else ''} | {metric} | " + " | ".join(cells) + (f" | {ratio} |" if len(rs) > 1 else " |"))
EOF
