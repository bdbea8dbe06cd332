#!/bin/sh
# The CPU the admin console's live views cost herald: herald's own CPU time
# (user + system, every thread, from /proc/PID/stat) over SECONDS with the
# console closed, then with it open in headless Chromium (puppeteer-core,
# tests/js/console_hold.js), for two views:
#   overview  polls GET /v1/stats every 2 s;
#   tail      a topic page with the live tail (one SSE stream) open,
# both while a publisher stores RATE events a second to one topic (the same
# load in the closed and open runs). Prints herald's CPU % of one core for
# each run and the difference the open view makes. Target: <= 1 %.
# Usage: bench/ui.sh [BIN] [SECONDS] [RATE]   (BIN default build/herald)
set -eu
cd "$(dirname "$0")/.."
BIN=${1:-build/herald}; SECS=${2:-30}; RATE=${3:-20}
[ -x "$BIN" ] || { echo "bench: $BIN is missing (make build)"; exit 1; }
[ -d tests/js/node_modules/puppeteer-core ] || { echo "bench: run scripts/install-deps.sh (npm ci in tests/js)"; exit 1; }
exec /usr/bin/python3 - "$BIN" "$SECS" "$RATE" <<'PY'
import json, os, socket, subprocess, sys, tempfile, threading, time, urllib.request

BIN, SECS, RATE = os.path.abspath(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
JS = os.path.abspath("tests/js")
TICK = os.sysconf("SC_CLK_TCK")
tmp = tempfile.mkdtemp(prefix="herald-ui-bench-")
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
base = f"http://127.0.0.1:{port}"
key = subprocess.run([BIN, "keys", "create", "ops", "--scope", "admin", "--data-dir", tmp + "/data"],
                     capture_output=True, check=True).stdout.decode().strip()
herald = subprocess.Popen([BIN, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", tmp + "/data",
                           "--log-level", "warn"], stderr=open(tmp + "/herald.log", "w"))

def call(method, path, body=None, ctype="application/json"):
    req = urllib.request.Request(base + path, method=method, data=body,
                                 headers={"Authorization": "Bearer " + key, "Content-Type": ctype})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read()

for _ in range(200):
    try:
        call("GET", "/healthz"); break
    except OSError:
        time.sleep(0.05)

def cpu_ticks():
    with open(f"/proc/{herald.pid}/stat") as f:
        v = f.read().rsplit(")", 1)[1].split()
    return int(v[11]) + int(v[12])  # utime, stime

stop = threading.Event()
def publisher():
    n, t0 = 0, time.monotonic()
    while not stop.is_set():
        n += 1
        ev = json.dumps({"specversion": "1.0", "id": f"b{n}", "source": "/bench", "type": "bench.ui", "data": {"n": n}})
        call("POST", "/v1/topics/bench:ui/events", ev.encode(), "application/cloudevents+json")
        wait = t0 + n / RATE - time.monotonic()
        if wait > 0:
            stop.wait(wait)
pub = threading.Thread(target=publisher); pub.start()

def measure():
    a, t = cpu_ticks(), time.monotonic()
    time.sleep(SECS)
    return (cpu_ticks() - a) / TICK / (time.monotonic() - t) * 100

def with_console(view):
    cfg = {"base": base, "key": key, "chromium": "/usr/bin/chromium", "view": view, "topic": "bench:ui"}
    p = subprocess.Popen(["node", os.path.join(JS, "console_hold.js")], cwd=JS, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, env=dict(os.environ, CONSOLE_CFG=json.dumps(cfg)))
    assert p.stdout.readline().decode().strip() == "ready", "the console did not open"
    pct = measure()
    p.stdin.close()
    tail = p.stdout.read().decode().strip()
    p.wait(30)
    return pct, tail

try:
    time.sleep(2)  # the publisher's first events, the store warm
    rows = []
    for view in ("overview", "tail"):
        closed = measure()
        opened, info = with_console(view)
        rows.append((view, closed, opened, info))
    print(f"herald CPU, % of one core, {SECS:.0f} s each, {RATE:.0f} events/s published")
    print(f"{'view':10} {'closed':>8} {'open':>8} {'cost':>8}  console")
    for view, closed, opened, info in rows:
        print(f"{view:10} {closed:8.2f} {opened:8.2f} {opened - closed:8.2f}  {info}")
finally:
    stop.set(); pub.join()
    herald.terminate(); herald.wait(30)
    subprocess.run(["rm", "-rf", tmp])
PY
