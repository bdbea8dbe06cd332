"""Shared fixtures for herald's end-to-end tests.

Every test talks to a real herald process started on a free 127.0.0.1 port
with its own data directory. HERALD_BIN names the binary (CTest sets it; the
default is build/herald). A server that logs a sanitizer report or exits
non-zero on SIGTERM fails the test that owned it.
"""
import json
import os
import signal
import socket
import subprocess
import time
import urllib.parse

import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("HERALD_BIN", os.path.join(ROOT, "build", "herald"))
START_TIMEOUT = 15.0
STOP_TIMEOUT = 30.0


def stop_process(proc, timeout=10):
    """SIGTERM, wait up to timeout, then SIGKILL; always reaped."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Herald:
    """One herald server process; start() and stop() may be repeated on the
    same data directory to test restarts."""

    def __init__(self, data_dir, args=(), env=None, config=None):
        self.data_dir = str(data_dir)
        self.args = list(args)
        self.env = dict(os.environ, **(env or {}))
        self.env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        self.config = config
        self.proc = None
        self.port = None
        self.log_path = self.data_dir + ".log"
        self.session = requests.Session()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, port=None):
        self.port = port or free_port()
        cmd = [BIN, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.data_dir,
               *self.args]
        if self.config is not None:
            path = self.data_dir + ".conf"
            with open(path, "w") as f:
                f.write(self.config)
            cmd += ["--config", path]
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, env=self.env)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"herald exited at start ({self.proc.returncode}):\n{self.read_log()}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                time.sleep(0.02)
        raise RuntimeError("herald did not answer /healthz in time:\n" + self.read_log())

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM):
        """Stops the server; for SIGTERM asserts a clean exit (code 0)."""
        if not self.proc:
            return None
        self.session.close()
        self.session = requests.Session()
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("herald did not stop within %ss:\n%s" % (STOP_TIMEOUT, self.read_log()))
        self.proc = None
        self.log.close()
        log = self.read_log()
        assert "ERROR: AddressSanitizer" not in log, log
        assert "runtime error:" not in log, log
        assert "ERROR: LeakSanitizer" not in log, log
        if sig == signal.SIGTERM:
            assert code == 0, f"exit code {code}:\n{log}"
        return code

    def kill9(self):
        return self.stop(signal.SIGKILL)

    def restart(self):
        self.stop()
        return self.start(self.port)

    # Small helpers for the REST API.
    def topic_url(self, topic, suffix="/events"):
        return f"{self.url}/v1/topics/{urllib.parse.quote(topic, safe='')}{suffix}"

    def publish(self, topic, body, headers=None, **kw):
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            headers = dict({"Content-Type": "application/json"}, **(headers or {}))
        return self.session.post(self.topic_url(topic), data=body, headers=headers or {}, timeout=30, **kw)

    def read(self, topic, after=0, limit=None, **params):
        params = dict(params, after=after)
        if limit is not None:
            params["limit"] = limit
        r = self.session.get(self.topic_url(topic), params=params, timeout=30)
        return r

    def read_all(self, topic, after=0):
        """Reads every event after `after`, following `next`."""
        events = []
        while True:
            r = self.read(topic, after=after, limit=1000)
            assert r.status_code == 200, r.text
            body = r.json()
            events += body["events"]
            if not body["events"]:
                return events
            after = body["next"]


@pytest.fixture
def herald_factory(tmp_path):
    servers = []

    def make(args=(), env=None, config=None, name="data", start=True):
        h = Herald(tmp_path / name, args=args, env=env, config=config)
        servers.append(h)
        return h.start() if start else h

    yield make
    for h in servers:
        if h.proc:
            h.stop()


@pytest.fixture
def herald(herald_factory):
    return herald_factory()


def create_key(data_dir, name, *scopes):
    """An API key made with `herald keys create` in data_dir; returns its secret."""
    args = [BIN, "keys", "create", name, "--data-dir", str(data_dir)]
    for s in scopes:
        args += ["--scope", s]
    p = subprocess.run(args, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    return p.stdout.decode().strip()


def publish_ce(h, topic, start, n):
    """Publishes n structured CloudEvents with ids e<start>..e<start+n-1>, one
    request each, asserting each is stored (201)."""
    for i in range(start, start + n):
        r = h.publish(topic, json.dumps(structured(f"e{i}")),
                      headers={"Content-Type": "application/cloudevents+json"})
        assert r.status_code == 201, r.text


def structured(id_, source="/test", type_="com.example.test", **extra):
    """A structured-mode CloudEvent as a dict."""
    ev = {"specversion": "1.0", "id": id_, "source": source, "type": type_}
    ev.update(extra)
    return ev


CE_JSON = {"Content-Type": "application/cloudevents+json"}
CE_BATCH = {"Content-Type": "application/cloudevents-batch+json"}


# ---- Helpers for the raw-socket, limit, shutdown and crash tests ----------
# (Added below the original helpers; nothing above changes behaviour.)

import contextlib
import re
import threading


class PerTestTimeout(BaseException):
    """Raised in the main thread when a test runs out of time; a
    BaseException so that no `except Exception` (or socket timeout handler)
    swallows it."""


def per_test_timeout(seconds):
    """Returns an autouse fixture that fails a test (setup, body and teardown)
    running longer than `seconds`. Use in a test module as
    `_timeout = per_test_timeout(30)`. SIGALRM interrupts the main thread
    even while it blocks in recv() or join(); helper threads must bound
    their own waits."""

    @pytest.fixture(autouse=True)
    def _per_test_timeout(request):
        def on_alarm(signum, frame):
            raise PerTestTimeout(f"{request.node.nodeid} exceeded its {seconds}s timeout")

        old = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)

    return _per_test_timeout


def wait_for(cond, timeout, interval=0.01, what="condition"):
    """Polls cond() until it returns a true value (returned) or fails after
    timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class RawResponse:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers  # lower-case name -> value (last wins)
        self.body = body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<RawResponse {self.status} {self.headers} {self.body[:200]!r}>"


class RawConn:
    """A plain TCP connection to a herald, in the style of h2o's
    t/40bad-request.t: send exact bytes, parse what comes back. Every
    receive is bounded by `timeout` seconds."""

    def __init__(self, port, timeout=5.0, host="127.0.0.1", rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        if rcvbuf:  # before connect, so the window never grows past it
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(timeout)
        self.timeout = timeout
        self.buf = b""
        self.eof = False

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _fill(self, deadline):
        """Reads once more into buf; returns False at EOF."""
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("no complete response in time")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def response(self, timeout=None, head=False):
        """Reads one response (Content-Length bodies only, which is all
        herald sends). Interim 1xx responses are returned like any other."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\r\n\r\n" not in self.buf:
            if not self._fill(deadline):
                raise ConnectionError(f"connection closed before a response; got {self.buf!r}")
        head_bytes, _, rest = self.buf.partition(b"\r\n\r\n")
        lines = head_bytes.decode("latin-1").split("\r\n")
        m = re.match(r"HTTP/1\.1 (\d{3}) ?(.*)$", lines[0])
        assert m, f"bad status line {lines[0]!r}"
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        status = int(m.group(1))
        length = 0 if head or status < 200 or status in (204, 304) else int(headers.get("content-length", 0))
        self.buf = rest
        while len(self.buf) < length:
            if not self._fill(deadline):
                raise ConnectionError(f"connection closed inside a body; got {self.buf!r}")
        body, self.buf = self.buf[:length], self.buf[length:]
        return RawResponse(status, m.group(2), headers, body)

    def request(self, data, timeout=None):
        self.send(data)
        return self.response(timeout)

    def closed_by_peer(self, timeout=None):
        """Waits for EOF (or a reset); returns True if it came within
        timeout, False otherwise. Bytes that arrive first are kept in buf."""
        deadline = time.monotonic() + (timeout or self.timeout)
        try:
            while self._fill(deadline):
                pass
        except (socket.timeout, TimeoutError):
            return False
        return True


def try_connect(h):
    """A new connection that got a 200 for /healthz, or None (refused with
    a 429/503, or reset)."""
    c = RawConn(h.port)
    try:
        c.send(http_request("GET", "/healthz"))
        if c.response().status == 200:
            return c
    except (ConnectionError, OSError):
        pass
    c.close()
    return None


def http_request(method, path, body=b"", headers=None, version="1.1"):
    """The bytes of one request; Content-Length is added for a body unless
    headers carry Transfer-Encoding."""
    headers = dict(headers or {})
    if isinstance(body, str):
        body = body.encode()
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k in headers):
        headers["Content-Length"] = str(len(body))
    lines = [f"{method} {path} HTTP/{version}", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def metric_value(herald, name, headers=None):
    """The value of an unlabelled metric from GET /metrics, as a float
    (headers: an API key's, when keys are on)."""
    r = requests.get(herald.url + "/metrics", headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    for line in r.text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"metric {name} not in /metrics")


def herald_launch(h, port=None):
    """Starts h's process like Herald.start but returns at once, without
    waiting for /healthz (to kill it while it is still opening the store)."""
    h.port = port or free_port()
    cmd = [BIN, "serve", "--listen", f"127.0.0.1:{h.port}", "--data-dir", h.data_dir, *h.args]
    h.log = open(h.log_path, "ab")
    h.proc = subprocess.Popen(cmd, stdout=h.log, stderr=h.log, env=h.env)
    return h


class Publisher(threading.Thread):
    """One publishing client with its own keep-alive connection: publishes
    unique structured events (single events and small batches, spread over
    `topics`) until stop is set, its deadline passes or the server is gone.
    Records every acknowledged (topic, offset, id) in `acked`, every id it
    sent in `attempted` (an unacknowledged event may or may not be stored),
    and answers that are neither an acknowledgement nor an expected refusal
    in `unexpected`; `sent` and `sent_topic` keep each event for retries.
    Event ids are "w<wid>-<seq>"; check_published_store checks the data
    that goes with them."""

    def __init__(self, port, wid, topics, seed, stop, duration=30.0, batch_ratio=0.3, pad_max=300):
        super().__init__(daemon=True, name=f"publisher-{wid}")
        import random
        self.port = port
        self.wid = wid
        self.topics = list(topics)
        self.rng = random.Random(seed)
        self.stop = stop
        self.deadline = time.monotonic() + duration
        self.batch_ratio = batch_ratio
        self.pad_max = pad_max
        self.acked = []
        self.attempted = set()
        self.sent = {}  # id -> the event as sent
        self.sent_topic = {}  # id -> its topic
        self.unexpected = []
        self.busy = 0  # answers 503
        self.seq = 0
        self.conn = None

    def event(self, topic):
        self.seq += 1
        id_ = f"w{self.wid}-{self.seq}"
        pad = "".join(self.rng.choice("abcdefghij") for _ in range(self.rng.randrange(self.pad_max)))
        self.attempted.add(id_)
        ev = self.sent[id_] = structured(id_, source=f"/publisher/{self.wid}", type_="com.example.durable",
                          data={"w": self.wid, "seq": self.seq, "topic": topic, "pad": pad,
                                "len": len(pad), "nested": {"ok": True, "list": [1, 2, 3]}})
        self.sent_topic[id_] = topic
        return ev

    def connect(self):
        import http.client
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)

    def post(self, topic, body, ctype):
        path = "/v1/topics/" + urllib.parse.quote(topic, safe="") + "/events"
        self.conn.request("POST", path, body=body, headers={"Content-Type": ctype})
        r = self.conn.getresponse()
        data = r.read()
        if (r.getheader("Connection") or "").lower() == "close":
            self.conn.close()
            self.conn = None
        return r.status, data

    def run(self):
        refused = 0
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            if self.conn is None:
                self.connect()
            topic = self.rng.choice(self.topics)
            batch = self.rng.random() < self.batch_ratio
            events = [self.event(topic) for _ in range(self.rng.randint(2, 5) if batch else 1)]
            try:
                if batch:
                    status, data = self.post(topic, json.dumps(events), CE_BATCH["Content-Type"])
                else:
                    status, data = self.post(topic, json.dumps(events[0]), CE_JSON["Content-Type"])
            except Exception as e:  # the server stopped or died: not acknowledged
                if self.conn:
                    self.conn.close()
                self.conn = None
                if isinstance(e, ConnectionRefusedError):
                    refused += 1
                    if refused >= 3:
                        return
                continue
            refused = 0
            if status == 503:
                self.busy += 1
                continue  # stopping or the store queue is full: not acknowledged
            try:
                body = json.loads(data)
            except ValueError:
                self.unexpected.append((status, data[:300]))
                continue
            if not batch and status == 201:
                self.acked.append((topic, body["offset"], body["id"]))
            elif batch and status == 200:
                if body.get("failed_count") != 0 or len(body["entries"]) != len(events):
                    self.unexpected.append((status, data[:300]))
                for ev, ent in zip(events, body.get("entries", [])):
                    if ent.get("id") != ev["id"] or "offset" not in ent or ent.get("duplicate"):
                        self.unexpected.append((status, ent))
                    else:
                        self.acked.append((topic, ent["offset"], ent["id"]))
            else:
                self.unexpected.append((status, data[:300]))
        if self.conn:
            self.conn.close()


def run_publishers(port, n, topics, seed, stop, **kw):
    pubs = [Publisher(port, w, topics, seed * 1000 + w, stop, **kw) for w in range(n)]
    for p in pubs:
        p.start()
    return pubs


def join_publishers(pubs, timeout=20.0):
    deadline = time.monotonic() + timeout
    for p in pubs:
        p.join(max(0.0, deadline - time.monotonic()))
    alive = [p.name for p in pubs if p.is_alive()]
    assert not alive, f"publisher threads did not finish: {alive}"


def publish_in_threads(n, each, publish, timeout=90.0):
    """n threads (k = 0..n-1), each with its own requests.Session, call
    publish(s, k, i) for i in range(each), until it returns False; all are
    joined (join_publishers: none left running) before this returns."""
    def run(k):
        s = requests.Session()
        try:
            for i in range(each):
                if publish(s, k, i) is False:
                    return
        finally:
            s.close()

    threads = [threading.Thread(target=run, args=(k,), name=f"publisher-{k}") for k in range(n)]
    for t in threads:
        t.start()
    join_publishers(threads, timeout=timeout)


def check_published_store(h, topics, pubs, context=""):
    """Reads every topic back from h and checks what the publishers were
    told: each acknowledged event is stored at its acknowledged offset with
    its id; offsets are dense from 1 with no duplicate ids; every stored
    event is complete (all attributes, its whole data) and was really sent.
    Returns {topic: last offset}."""
    acked = [a for p in pubs for a in p.acked]
    attempted = set().union(*(p.attempted for p in pubs))
    last = {}
    for topic in topics:
        events = h.read_all(topic)
        offsets = [e.get("offset") for e in events]
        assert offsets == list(range(1, len(events) + 1)), f"{context} offsets of {topic} not dense: {offsets[:50]}…"
        ids = [e.get("id") for e in events]
        assert len(set(ids)) == len(ids), f"{context} duplicate ids in {topic}"
        for e in events:
            for attr in ("specversion", "id", "source", "type", "time", "topic", "offset", "data"):
                assert attr in e, f"{context} stored event lacks {attr}: {e}"
            assert e["specversion"] == "1.0" and e["type"] == "com.example.durable", f"{context} {e}"
            assert e["topic"] == topic, f"{context} {e}"
            assert e["id"] in attempted, f"{context} stored event was never sent: {e['id']}"
            d = e["data"]
            assert isinstance(d, dict) and e["id"] == f"w{d['w']}-{d['seq']}", f"{context} {e}"
            assert e["source"] == f"/publisher/{d['w']}", f"{context} {e}"
            assert d["topic"] == topic and len(d["pad"]) == d["len"], f"{context} half-stored event {e}"
            assert d["nested"] == {"ok": True, "list": [1, 2, 3]}, f"{context} {e}"
        by_offset = {e["offset"]: e["id"] for e in events}
        for t, off, id_ in acked:
            if t == topic:
                assert by_offset.get(off) == id_, (
                    f"{context} acknowledged event {id_} at {topic}#{off} is "
                    f"{'missing' if off not in by_offset else 'replaced by ' + by_offset[off]}")
        last[topic] = len(events)
    return last
