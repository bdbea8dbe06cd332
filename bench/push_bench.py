#!/usr/bin/env python3
"""push_bench — the push targets of issue 11 (docs/benchmarks.md "Push"),
run by bench/push.sh. Starts a release herald (HERALD_BIN) and the provider
stand-ins of tests/js (apns_mock.js: HTTP/2 over TLS, checks each ES256
provider token; webpush_mock.js: web-push-testing, checks VAPID and decrypts
each aes128gcm body) on free loopback ports with a scratch directory, and
measures:
  apns     one event to N APNs devices following topic "bench" (a push
           subscription to=followers; --push-max-devices-per-user allows at
           most 1,000, so they belong to N/1,000 users): pushes/s from the
           publish until herald's /metrics counts N answered sends; the
           connections open at once (/proc/net/tcp), the HTTP/2 sessions,
           provider tokens, requests and devices sent twice the mock saw;
           herald's and the mock's CPU seconds (/proc/PID/stat).
           APNS_MOCK=sink: against bench/apns_sink.js (no token check);
  webpush  the same for N Web Push devices (each its own subscription
           keys, made by web-push-testing's /subscribe), herald CPU µs/push.
           WEBPUSH_MOCK=sink: against bench/webpush_sink.js (answers 201 at
           once: no VAPID check, no decryption);
  memory   herald's RSS before and after registering N devices;
  latency  single events at RATE/s to a topic one APNs device follows:
           publish -> bench/apns_sink.js received, p50/p99.
Devices are registered with PUT over 4 keep-alive connections (4
processes). Prints a Markdown table and the load average. Every process it
starts is killed and reaped on exit; the scratch directory is removed
(kept with KEEP=1 or on an error). Needs node, openssl, curl, tests/js's
node_modules (npm ci)."""
import http.client
import json
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JS = os.path.join(ROOT, "tests", "js")
BIN = os.environ.get("HERALD_BIN", os.path.join(ROOT, "build", "herald"))
KID, TEAM, TOPIC = "KEY1234567", "TEAM123456", "com.example.app"
# --push-max-devices-per-user allows at most 1,000: the fan-outs reach
# devices of n / PER_USER users that follow one topic ("to":"followers").
PER_USER = 1000
TICK = os.sysconf("SC_CLK_TCK")
PROCS = []


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def conns_to(port):
    """Established TCP connections to 127.0.0.1/::1 port (either side's view: the client's)."""
    n = 0
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(f) as fh:
                next(fh)
                for line in fh:
                    parts = line.split()
                    if parts[3] == "01" and int(parts[2].rsplit(":", 1)[1], 16) == port:
                        n += 1
        except OSError:
            pass
    return n


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start(cmd, **kw):
    p = subprocess.Popen(cmd, **kw)
    PROCS.append(p)
    return p


def stop_all():
    for p in reversed(PROCS):
        if p.poll() is None:
            p.kill()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            pass
    PROCS.clear()


def mock(script, *args):
    p = start(["node", os.path.join(JS, script), *args], cwd=JS, stdout=subprocess.PIPE,
              stderr=subprocess.DEVNULL, text=True)
    got = []
    t = threading.Thread(target=lambda: got.append(p.stdout.readline()), daemon=True)
    t.start()
    t.join(60)
    if not got or not got[0]:
        raise RuntimeError(script + " did not start")
    # keep draining stdout so the mock never blocks on a full pipe
    threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()
    return p, got[0].strip()


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


class Herald:
    def __init__(self, d, args):
        self.port = free_port()
        self.log = open(os.path.join(d, "herald.log"), "ab")
        data = os.path.join(d, "data%d" % self.port)
        self.proc = start([BIN, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", data,
                           "--sync", "off", *args], stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("herald exited at start; see " + self.log.name)
            try:
                if self.req("GET", "/healthz")[0] == 200:
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("herald did not answer /healthz")

    def req(self, method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            c.request(method, path, body=None if body is None else json.dumps(body),
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def metric(self, name):
        _, text = self.req("GET", "/metrics")
        for line in text.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0


def register_part(port, items):
    """One process: PUT each (user, device, body) over one keep-alive connection."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for user, dev, body in items:
        c.request("PUT", f"/v1/users/{user}/devices/{dev}", body=json.dumps(body),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        b = r.read()
        if r.status not in (200, 201):
            raise RuntimeError(f"PUT device {user}/{dev}: {r.status} {b[:300]!r}")
    c.close()
    return len(items)


def register(h, items, procs=4):
    parts = [items[i::procs] for i in range(procs)]
    t0 = time.monotonic()
    # spawn, not fork: a fork taken while a mock's stdout-draining thread
    # held a lock left a worker hung in a futex (seen here once in ~10 runs).
    with multiprocessing.get_context("spawn").Pool(procs) as pool:
        n = sum(pool.starmap(register_part, [(h.port, p) for p in parts]))
    return n, time.monotonic() - t0


def h2_get(ca, url):
    out = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "--cacert", ca, url],
                         capture_output=True, timeout=60, check=True)
    return json.loads(out.stdout)


def fan_out(h, mproc, mport, n, provider):
    """A push subscription to=followers of topic "bench", one event published
    to it; time until herald counts n answered sends."""
    st, body = h.req("POST", "/v1/push/subscriptions", {"topic": "bench", "to": "followers", "mode": "alert"})
    assert st == 201, body
    ok = f'herald_push_sends_total{{provider="{provider}",result="ok"}}'
    ev = {"specversion": "1.0", "id": os.urandom(8).hex(), "source": "/bench", "type": "com.example.ride.arrived",
          "subject": "your ride is here", "data": {"ride": 981}}
    c0, m0 = cpu_s(h.proc.pid), cpu_s(mproc.pid)
    t0 = time.monotonic()
    c = http.client.HTTPConnection("127.0.0.1", h.port, timeout=30)
    c.request("POST", "/v1/topics/bench/events", body=json.dumps(ev),
              headers={"Content-Type": "application/cloudevents+json"})
    r = c.getresponse()
    body = r.read()
    c.close()
    assert r.status in (200, 201), body
    deadline = t0 + 300
    most = 0
    polls = 1
    while h.metric(ok) < n and time.monotonic() < deadline:
        most = max(most, conns_to(mport))
        time.sleep(0.01)
        polls += 1
    dt = time.monotonic() - t0
    got = h.metric(ok)
    herald_cpu = cpu_s(h.proc.pid) - c0
    # What the /metrics polls above cost herald (they count in herald_cpu):
    # the same number of polls again, now that the fan-out is over.
    p0 = cpu_s(h.proc.pid)
    for _ in range(polls):
        h.metric(ok)
    poll_cpu = cpu_s(h.proc.pid) - p0
    return {"n": int(got), "seconds": dt, "rate": got / dt, "herald_cpu": herald_cpu,
            "polls": polls, "poll_cpu": poll_cpu,
            "mock_cpu": cpu_s(mproc.pid) - m0, "most_conns": most,
            "other": {k: h.metric(f'herald_push_sends_total{{provider="{provider}",result="{k}"}}')
                      for k in ("invalid", "retry", "error")}}


def cpu_cell(r, bold=False):
    """herald's CPU over a fan-out, per push, and without the bench's own
    /metrics polls (measured again after the fan-out)."""
    n = max(r["n"], 1)
    per, net = r["herald_cpu"] / n * 1e6, (r["herald_cpu"] - r["poll_cpu"]) / n * 1e6
    b = "**" if bold else ""
    return ("herald %.2f s (%s%.0f µs/push%s; %.0f µs/push without the bench's %d /metrics polls, "
            "%.2f s), mock %.2f s" % (r["herald_cpu"], b, per, b, net, r["polls"], r["poll_cpu"], r["mock_cpu"]))


def certs(d):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{d}/cert.key", "-out", f"{d}/cert.pem", "-days", "1", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost")
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", f"{d}/apns.p8")
    openssl("pkey", "-in", f"{d}/apns.p8", "-pubout", "-out", f"{d}/apns.pub")
    keys = json.loads(subprocess.run([BIN, "push", "vapid-keys", "--json"], capture_output=True,
                                     check=True, timeout=30).stdout)
    with open(f"{d}/vapid.key", "w") as f:
        f.write(keys["privateKey"] + "\n")
    return keys["publicKey"]


def apns_args(d, url):
    return ["--push-allow-private", "on", "--push-ca-file", f"{d}/cert.pem",
            "--push-apns-key-file", f"{d}/apns.p8", "--push-apns-key-id", KID,
            "--push-apns-team-id", TEAM, "--push-apns-topic", TOPIC, "--push-apns-url", url]


def bench_apns(d, n):
    if os.environ.get("APNS_MOCK") == "sink":  # the bare bench/apns_sink.js: no token check
        ap, line = mock(os.path.join("..", "..", "bench", "apns_sink.js"), f"{d}/cert.pem", f"{d}/cert.key")
    else:
        ap, line = mock("apns_mock.js", f"{d}/cert.pem", f"{d}/cert.key", f"{d}/apns.pub", KID, TEAM, TOPIC)
    url = "https://127.0.0.1:%d" % int(line.split()[1])
    h = Herald(d, apns_args(d, url) + ["--push-max-devices-per-user", str(PER_USER)])
    items = [("u%d" % (i // PER_USER), "d%d" % i, {"platform": "apns", "token": "ab%062x" % i,
                                                  "environment": "sandbox", "topics": ["bench"]})
             for i in range(n)]
    _, reg_s = register(h, items)
    r = fan_out(h, ap, int(line.split()[1]), n, "apns")
    s = h2_get(f"{d}/cert.pem", url + "/stats")
    if "tokens" in s:  # apns_mock.js: how many devices got more than one request
        by = h2_get(f"{d}/cert.pem", url + "/by-token")
        r["devices_sent_twice"] = sum(1 for v in by.values() if len(v) > 1)
    r.update(register_s=reg_s, sessions=s["sessions"] - 1, tokens=len(s.get("tokens", [])), mock_requests=s["requests"])
    stop_all()
    return r


def bench_webpush(d, n, vapid_public):
    if os.environ.get("WEBPUSH_MOCK") == "sink":  # the bare bench/webpush_sink.js: no VAPID check, no decryption
        wp, line = mock(os.path.join("..", "..", "bench", "webpush_sink.js"))
    else:
        wp, line = mock("webpush_mock.js", vapid_public)
    port = json.loads(line)["port"]
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    subs = []
    for _ in range(n):
        c.request("POST", "/subscribe", body=json.dumps({"userVisibleOnly": "true",
                                                         "applicationServerKey": vapid_public}),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        subs.append(json.loads(r.read())["data"])
    c.close()
    h = Herald(d, ["--push-allow-private", "on", "--push-vapid-private-key-file", f"{d}/vapid.key",
                   "--push-vapid-subject", "mailto:ops@example.com",
                   "--push-max-devices-per-user", str(PER_USER)])
    items = [("u%d" % (i // PER_USER), "w%d" % i, {"platform": "webpush", "topics": ["bench"],
                                                  "subscription": {"endpoint": s["endpoint"], "keys": s["keys"]}})
             for i, s in enumerate(subs)]
    _, reg_s = register(h, items)
    r = fan_out(h, wp, port, n, "webpush")
    r["register_s"] = reg_s
    stop_all()
    return r


def bench_memory(d, n):
    ap, line = mock("apns_mock.js", f"{d}/cert.pem", f"{d}/cert.key", f"{d}/apns.pub", KID, TEAM, TOPIC)
    h = Herald(d, apns_args(d, "https://127.0.0.1:%d" % int(line.split()[1])) +
               ["--push-max-devices-per-user", str(PER_USER)])
    per_user = PER_USER
    items = [("u%d" % (i // per_user), "d%d" % (i % per_user),
              {"platform": "apns", "token": "%064x" % (i + 1), "environment": "production"})
             for i in range(n)]
    time.sleep(0.5)
    before = rss_mib(h.proc.pid)
    _, reg_s = register(h, items)
    time.sleep(0.5)
    after = rss_mib(h.proc.pid)
    stop_all()
    return {"before": before, "after": after, "register_s": reg_s, "n": n}


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def bench_latency(d, rate, secs):
    """Single events at rate/s to a topic one APNs device follows (bench/apns_sink.js
    keeps each push's arrival time): publish -> the sink received, p50/p99."""
    sk, line = mock(os.path.join("..", "..", "bench", "apns_sink.js"), f"{d}/cert.pem", f"{d}/cert.key")
    url = "https://127.0.0.1:%d" % int(line.split()[1])
    h = Herald(d, apns_args(d, url))
    st, body = h.req("PUT", "/v1/users/u0/devices/d0", {"platform": "apns", "token": "ab" * 32,
                                                         "environment": "sandbox", "topics": ["lat"]})
    assert st in (200, 201), body
    st, body = h.req("POST", "/v1/push/subscriptions", {"topic": "lat", "to": "followers", "mode": "alert"})
    assert st == 201, body
    c = http.client.HTTPConnection("127.0.0.1", h.port, timeout=30)
    sent = {}
    n = int(rate * secs)
    c0, m0 = cpu_s(h.proc.pid), cpu_s(sk.pid)
    t0 = time.monotonic()
    for i in range(n):
        wait = t0 + i / rate - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        ev = {"specversion": "1.0", "id": "lat-%d" % i, "source": "/bench", "type": "com.example.tick",
              "subject": "tick", "data": {"i": i}}
        t = time.time() * 1000
        c.request("POST", "/v1/topics/lat/events", body=json.dumps(ev),
                  headers={"Content-Type": "application/cloudevents+json"})
        r = c.getresponse()
        b = r.read()
        assert r.status in (200, 201), b
        sent[json.loads(b)["offset"]] = t
    pub_s = time.monotonic() - t0
    c.close()
    ok = 'herald_push_sends_total{provider="apns",result="ok"}'
    deadline = time.monotonic() + 60
    while h.metric(ok) < n and time.monotonic() < deadline:
        time.sleep(0.02)
    arr = h2_get(f"{d}/cert.pem", url + "/arrivals")
    lat = [arr[str(o)] - t for o, t in sent.items() if str(o) in arr]
    r = {"events": n, "received": len(lat), "rate": n / pub_s, "herald_cpu": cpu_s(h.proc.pid) - c0,
         "mock_cpu": cpu_s(sk.pid) - m0, "p50": pct(lat, 0.5), "p99": pct(lat, 0.99), "max": max(lat)}
    stop_all()
    return r


def main():
    which = sys.argv[1:] or ["apns", "webpush", "memory", "latency"]
    n_apns = int(os.environ.get("APNS_DEVICES", 10000))
    n_wp = int(os.environ.get("WEBPUSH_DEVICES", 2000))
    n_mem = int(os.environ.get("MEMORY_DEVICES", 100000))
    d = tempfile.mkdtemp(prefix="herald-pushbench-")
    rows = []
    try:
        vapid_public = certs(d)
        if "apns" in which:
            r = bench_apns(d, n_apns)
            rows.append(("APNs, one event to %d devices" % n_apns,
                         "%s pushes/s (%d in %.2f s); at most %d connection(s) open at once, %d opened in all, "
                         "%d provider token(s); the mock received %d requests (%s devices more than one)"
                         % (f"{r['rate']:,.0f}", r["n"], r["seconds"], r["most_conns"], r["sessions"], r["tokens"],
                            r["mock_requests"], r.get("devices_sent_twice", "?")),
                         cpu_cell(r), "≥ 5,000/s, ≤ 2 connections, 1 token"))
            print("apns:", json.dumps(r), file=sys.stderr)
        if "webpush" in which:
            r = bench_webpush(d, n_wp, vapid_public)
            rows.append(("Web Push, one event to %d devices" % n_wp,
                         "%s pushes/s (%d in %.2f s); at most %d connection(s) open at once"
                         % (f"{r['rate']:,.0f}", r["n"], r["seconds"], r["most_conns"]),
                         cpu_cell(r, bold=True), "≥ 3,000/s, ≤ 150 µs/push"))
            print("webpush:", json.dumps(r), file=sys.stderr)
        if "memory" in which:
            r = bench_memory(d, n_mem)
            rows.append(("RSS, %d devices registered" % r["n"],
                         "%.1f → %.1f MiB: **%.1f MiB added** (%.0f B/device); registering took %.1f s"
                         % (r["before"], r["after"], r["after"] - r["before"],
                            (r["after"] - r["before"]) * 1048576 / r["n"], r["register_s"]), "", "≤ 64 MiB added"))
            print("memory:", json.dumps(r), file=sys.stderr)
        if "latency" in which:
            rate, secs = float(os.environ.get("RATE", 1000)), float(os.environ.get("LATENCY_SECS", 5))
            r = bench_latency(d, rate, secs)
            rows.append(("publish → APNs sink, %d events at %.0f/s" % (r["events"], r["rate"]),
                         "**p50 %.2f ms, p99 %.2f ms** (max %.1f ms; %d received)"
                         % (r["p50"], r["p99"], r["max"], r["received"]),
                         "herald %.2f s (%.0f µs/event incl. the publish), sink %.2f s"
                         % (r["herald_cpu"], r["herald_cpu"] / r["events"] * 1e6, r["mock_cpu"]),
                         "p50 < 2 ms, p99 < 20 ms"))
            print("latency:", json.dumps(r), file=sys.stderr)
    except Exception:
        sys.stderr.write("herald's log: %s/herald.log (kept)\n" % d)
        d = None
        raise
    finally:
        stop_all()
        if d and not os.environ.get("KEEP"):
            shutil.rmtree(d, ignore_errors=True)
        elif d:
            sys.stderr.write("scratch directory kept: %s\n" % d)
    print("| measure | result | CPU | target |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()
    print("load average: " + open("/proc/loadavg").read().strip())


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    main()
