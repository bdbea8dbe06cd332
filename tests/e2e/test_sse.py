"""Server-Sent Events (docs/api.md "Server-Sent Events"): live delivery,
gap-free resume by Last-Event-ID or ?after= (also across a restart),
multi-topic streams with composite cursors, `event: reset` after retention,
keep-alive comments, bad cursors, slow consumers and shutdown.

Streams are read over raw sockets; every read is bounded by a timeout and
waits for server state are polls of /metrics, never blind sleeps."""
import json
import signal
import socket
import threading
import time
import urllib.parse

import pytest
import requests

from conftest import CE_BATCH, RawConn, metric_value, per_test_timeout, structured, wait_for

_timeout = per_test_timeout(60)


class SSE(RawConn):
    """One SSE stream over a raw socket, parsed as the WHATWG rules say
    (LF line ends are all herald sends)."""

    def __init__(self, h, path, headers=None, timeout=10.0, rcvbuf=None):
        super().__init__(h.port, timeout=timeout, rcvbuf=rcvbuf)
        lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Accept: text/event-stream"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.comments = []
        self.retry = None
        while b"\r\n\r\n" not in self.buf:
            if not self._fill(time.monotonic() + timeout):
                raise ConnectionError(f"no response head: {self.buf!r}")
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        head = head.decode("latin-1").split("\r\n")
        self.status = int(head[0].split()[1])
        self.headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in head[1:])}
        self._ev = {}
        self._data = []

    def next_event(self, timeout=10.0):
        """The next dispatched event as a dict (id, event, data), or None at EOF."""
        deadline = time.monotonic() + timeout
        while True:
            while b"\n" not in self.buf:
                if not self._fill(deadline):
                    return None
            line, _, self.buf = self.buf.partition(b"\n")
            line = line.decode()
            if line == "":
                if self._data:
                    ev = dict(self._ev, data="\n".join(self._data))
                    ev.setdefault("event", "message")
                    self._ev, self._data = {}, []
                    return ev
                self._ev = {}
                continue
            if line.startswith(":"):
                self.comments.append(line)
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "data":
                self._data.append(value)
            elif field in ("id", "event"):
                self._ev[field] = value
            elif field == "retry":
                self.retry = int(value)

    def events(self, n, timeout=10.0):
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            ev = self.next_event(max(0.01, deadline - time.monotonic()))
            assert ev is not None, f"stream ended after {len(out)} of {n} events"
            out.append(ev)
        return out

    def wait_eof(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while self._fill(deadline):
            pass
        return True


def sse_path(topic, **params):
    q = ("?" + urllib.parse.urlencode(params)) if params else ""
    return f"/v1/topics/{urllib.parse.quote(topic, safe='')}/sse{q}"


def multi_path(topics, **params):
    return "/v1/sse?" + urllib.parse.urlencode([("topic", t) for t in topics] + list(params.items()))


def publish_n(h, topic, start, n, pad=""):
    """Publishes events start..start+n-1 as batches; data carries the number."""
    evs = [structured(f"{topic}-{i}", type_="com.example.sse", data={"i": i, "pad": pad})
           for i in range(start, start + n)]
    for k in range(0, len(evs), 50):
        r = h.publish(topic, json.dumps(evs[k:k + 50]), headers=CE_BATCH)
        assert r.status_code == 200 and r.json()["failed_count"] == 0, r.text


def numbers(evs):
    return [json.loads(e["data"])["data"]["i"] for e in evs]


def streams(h):
    return metric_value(h, "herald_sse_streams")


# ---- delivery ------------------------------------------------------------------

def test_live_delivery_in_order_with_headers_and_retry(herald):
    s = SSE(herald, sse_path("live", after=0))
    assert s.status == 200
    assert s.headers["content-type"] == "text/event-stream"
    assert s.headers["cache-control"] == "no-cache"
    assert s.headers["x-accel-buffering"] == "no"
    assert "content-length" not in s.headers
    wait_for(lambda: streams(herald) == 1, 5, what="the stream")
    publish_n(herald, "live", 1, 120)
    evs = s.events(120)
    assert [e["id"] for e in evs] == [str(i) for i in range(1, 121)]
    assert numbers(evs) == list(range(1, 121))
    assert {e["event"] for e in evs} == {"com.example.sse"}
    body = json.loads(evs[0]["data"])
    assert body["topic"] == "live" and body["offset"] == 1 and body["id"] == "live-1"
    assert s.retry == 3000
    s.close()
    wait_for(lambda: streams(herald) == 0, 5, what="the stream to close")


def test_no_cursor_starts_at_the_tail(herald):
    publish_n(herald, "tail", 1, 3)
    s = SSE(herald, sse_path("tail"))
    wait_for(lambda: streams(herald) == 1, 5, what="the stream")
    publish_n(herald, "tail", 4, 2)
    assert [e["id"] for e in s.events(2)] == ["4", "5"]
    s.close()


def test_resume_by_last_event_id_and_after_is_exact(herald):
    publish_n(herald, "res", 1, 5)
    s = SSE(herald, sse_path("res", after=0))
    assert [e["id"] for e in s.events(5)] == ["1", "2", "3", "4", "5"]
    s.close()
    publish_n(herald, "res", 6, 10)  # while disconnected
    # The header wins over the query parameter.
    s = SSE(herald, sse_path("res", after=1), headers={"Last-Event-ID": "5"})
    evs = s.events(10)
    assert [e["id"] for e in evs] == [str(i) for i in range(6, 16)]
    assert numbers(evs) == list(range(6, 16))
    publish_n(herald, "res", 16, 3)
    assert [e["id"] for e in s.events(3)] == ["16", "17", "18"]
    s.close()
    s = SSE(herald, sse_path("res", after=12))
    assert [e["id"] for e in s.events(6)] == [str(i) for i in range(13, 19)]
    s.close()


def test_resume_across_a_restart(herald):
    publish_n(herald, "rs", 1, 30)
    herald.restart()
    # The ring is empty after a restart: catch-up reads from disk.
    s = SSE(herald, sse_path("rs"), headers={"Last-Event-ID": "7"})
    evs = s.events(23)
    assert [int(e["id"]) for e in evs] == list(range(8, 31))
    publish_n(herald, "rs", 31, 5)
    assert [int(e["id"]) for e in s.events(5)] == list(range(31, 36))
    s.close()


def test_catch_up_of_many_events_then_live(herald):
    publish_n(herald, "many", 1, 3000, pad="x" * 200)
    herald.restart()
    s = SSE(herald, sse_path("many", after=0))
    publish_n(herald, "many", 3001, 100)  # while catching up
    evs = s.events(3100, timeout=30)
    assert [int(e["id"]) for e in evs] == list(range(1, 3101))
    s.close()


def test_catch_up_from_memory_beyond_the_output_cap_pauses_instead_of_dropping(herald_factory):
    h = herald_factory(args=["--max-pending-bytes", "64k"])
    publish_n(h, "mem", 1, 400, pad="m" * 1000)  # ~450 KB, all in the ring
    s = SSE(h, sse_path("mem", after=0))
    evs = s.events(400, timeout=20)
    assert [int(e["id"]) for e in evs] == list(range(1, 401))
    assert metric_value(h, "herald_slow_consumer_disconnects_total") == 0
    publish_n(h, "mem", 401, 5)
    assert [int(e["id"]) for e in s.events(5)] == list(range(401, 406))
    s.close()


def test_multi_topic_composite_ids_and_resume(herald):
    s = SSE(herald, multi_path(["ma", "mb"], after="ma=0,mb=0"))
    assert s.status == 200
    wait_for(lambda: streams(herald) == 1, 5, what="the stream")
    publish_n(herald, "ma", 1, 2)
    publish_n(herald, "mb", 1, 1)
    publish_n(herald, "ma", 3, 1)
    evs = s.events(4)
    assert [e["id"] for e in evs] == ["ma=1,mb=0", "ma=2,mb=0", "ma=2,mb=1", "ma=3,mb=1"]
    assert [json.loads(e["data"])["topic"] for e in evs] == ["ma", "ma", "mb", "ma"]
    s.close()
    publish_n(herald, "mb", 2, 3)
    publish_n(herald, "ma", 4, 1)
    s = SSE(herald, multi_path(["ma", "mb"]), headers={"Last-Event-ID": "ma=2,mb=1"})
    evs = s.events(5)
    got = [(json.loads(e["data"])["topic"], json.loads(e["data"])["offset"]) for e in evs]
    assert sorted(got) == [("ma", 3), ("ma", 4), ("mb", 2), ("mb", 3), ("mb", 4)]
    assert [o for t, o in got if t == "ma"] == [3, 4] and [o for t, o in got if t == "mb"] == [2, 3, 4]
    assert evs[-1]["id"] in ("ma=4,mb=4",)
    s.close()


def test_reset_event_when_retention_removed_events(herald_factory):
    h = herald_factory(config="[namespace short]\nretention-max-count = 2\n",
                       args=["--maintenance-interval", "50ms"])
    publish_n(h, "short:x", 1, 10)
    wait_for(lambda: h.read("short:x", after=0).json()["truncated"], 10, what="retention")
    s = SSE(h, sse_path("short:x", after=0))
    first = s.next_event()
    assert first["event"] == "reset", first
    info = json.loads(first["data"])
    assert info["topic"] == "short:x" and info["after"] == 0 and info["first"] >= 2
    assert first["id"] == str(info["first"] - 1)
    rest = s.events(10 - info["first"] + 1)
    assert [int(e["id"]) for e in rest] == list(range(info["first"], 11))
    s.close()


def test_reset_event_when_the_topic_is_deleted(herald):
    """A live stream of a deleted topic gets a reset to offset 1 and goes on
    with the new epoch's events (its old cursor would skip them)."""
    s = SSE(herald, sse_path("del-live", after=0))
    wait_for(lambda: streams(herald) == 1, 5, what="the stream")
    publish_n(herald, "del-live", 1, 3)
    assert [e["id"] for e in s.events(3)] == ["1", "2", "3"]
    assert herald.session.delete(herald.topic_url("del-live", ""), timeout=10).status_code == 200
    reset = s.next_event()
    assert reset["event"] == "reset" and reset["id"] == "0", reset
    assert json.loads(reset["data"]) == {"topic": "del-live", "after": 3, "first": 1}
    publish_n(herald, "del-live", 10, 2)
    evs = s.events(2)
    assert [e["id"] for e in evs] == ["1", "2"] and numbers(evs) == [10, 11]
    s.close()


def test_keepalive_comments_and_retry_option(herald_factory):
    h = herald_factory(args=["--sse-keepalive", "200ms", "--sse-retry", "1500ms"])
    s = SSE(h, sse_path("ka"))
    with pytest.raises(socket.timeout):
        s.next_event(timeout=1.0)
    assert s.retry == 1500
    assert ": ka" in s.comments
    s.close()


@pytest.mark.parametrize("path,headers", [
    (sse_path("bad", after="abc"), {}),
    (sse_path("bad", after="-1"), {}),
    (sse_path("bad"), {"Last-Event-ID": "12x"}),
    (sse_path("bad", after=""), {}),
    (multi_path(["a", "b"], after="a=1,c=2"), {}),
    (multi_path(["a", "b"], after="a=1,a=2"), {}),
    (multi_path(["a", "b"]), {"Last-Event-ID": "a=x"}),
    (multi_path(["a", "b"]), {"Last-Event-ID": "5"}),
    (multi_path([f"t{i}" for i in range(33)]), {}),
    ("/v1/sse", {}),
    (multi_path(["a", "a"]), {}),
    (multi_path(["bad topic!"]), {}),
])
def test_bad_requests_are_400(herald, path, headers):
    r = requests.get(herald.url + path, headers=headers, timeout=10)
    assert r.status_code == 400, (path, r.status_code, r.text)
    assert r.json()["error"]["message"]


def test_thirty_two_topics_are_allowed_and_post_is_405(herald):
    s = SSE(herald, multi_path([f"t{i}" for i in range(32)]))
    assert s.status == 200
    s.close()
    r = requests.post(herald.url + sse_path("x"), timeout=10)
    assert r.status_code == 405


def vmrss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_slow_consumer_is_disconnected_and_memory_stays_bounded(herald_factory):
    # A small ASan quarantine, so that freed memory counts as freed.
    h = herald_factory(args=["--max-pending-bytes", "64k"],
                       env={"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:quarantine_size_mb=8"})
    total = 2500  # about 5 MB of events
    fast = SSE(h, sse_path("slow", after=0))
    slow = SSE(h, sse_path("slow", after=0), rcvbuf=4096)  # never reads
    wait_for(lambda: streams(h) == 2, 5, what="both streams")
    got = []

    def reader():
        try:
            got.extend(fast.events(total, timeout=40))
        except Exception as e:  # reported by the assertion below
            got.append(e)

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    rss0 = vmrss_kb(h.proc.pid)
    publish_n(h, "slow", 1, total, pad="p" * 2000)
    wait_for(lambda: metric_value(h, "herald_slow_consumer_disconnects_total") >= 1, 20,
             what="the slow consumer to be cut off")
    th.join(40)
    assert not th.is_alive()
    assert len(got) == total and not isinstance(got[-1], Exception), got[-1:]
    assert [int(e["id"]) for e in got] == list(range(1, total + 1))
    assert slow.wait_eof(10)
    growth_mb = (vmrss_kb(h.proc.pid) - rss0) / 1024
    print(f"RSS growth {growth_mb:.1f} MB")
    assert growth_mb < 50, f"RSS grew by {growth_mb:.1f} MB"
    wait_for(lambda: streams(h) == 1, 5, what="the slow stream to be gone")
    fast.close()
    slow.close()


def test_sigterm_with_open_streams_exits_promptly(herald):
    publish_n(herald, "term", 1, 3)
    ss = [SSE(herald, sse_path("term", after=0)) for _ in range(3)]
    ss.append(SSE(herald, multi_path(["term", "other"]), rcvbuf=4096))
    for s in ss[:3]:
        assert len(s.events(3)) == 3
    wait_for(lambda: streams(herald) == 4, 5, what="the streams")
    t0 = time.monotonic()
    herald.proc.send_signal(signal.SIGTERM)
    code = herald.proc.wait(10)
    took = time.monotonic() - t0
    assert code == 0 and took < 4, (code, took)
    for s in ss:
        assert s.wait_eof(5)
        s.close()
    herald.proc = None
    herald.log.close()
    log = herald.read_log()
    assert "AddressSanitizer" not in log and "LeakSanitizer" not in log, log


def test_curl_streams_and_resumes(herald):
    """curl -N as the SSE client: receive, stop, publish meanwhile, resume
    with Last-Event-ID and get exactly the missed events, in order."""
    import queue
    import subprocess

    def start(extra):
        p = subprocess.Popen(["curl", "-sN", "--max-time", "20", *extra, herald.topic_url("curl", "/sse")],
                             stdout=subprocess.PIPE, text=True)
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(l) for l in p.stdout], daemon=True).start()
        return p, lines

    def events(lines, n):
        got, cur = [], {}
        deadline = time.monotonic() + 10
        while len(got) < n:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.01)).rstrip("\n")
            if line.startswith("id: "):
                cur["id"] = line[4:]
            elif line.startswith("data: "):
                cur["data"] = json.loads(line[6:])
            elif line == "" and "data" in cur:
                got.append((cur["id"], cur["data"]["id"]))
                cur = {}
        return got

    def pub(i):
        r = herald.publish("curl", json.dumps(structured(f"c{i}")),
                           headers={"Content-Type": "application/cloudevents+json"})
        assert r.status_code == 201

    p, lines = start(["-H", "Last-Event-ID: 0"])
    for i in (1, 2):
        pub(i)
    assert events(lines, 2) == [("1", "c1"), ("2", "c2")]
    p.kill()
    p.wait()
    for i in (3, 4):
        pub(i)
    p, lines = start(["-H", "Last-Event-ID: 2"])
    pub(5)
    assert events(lines, 3) == [("3", "c3"), ("4", "c4"), ("5", "c5")]
    p.kill()
    p.wait()
