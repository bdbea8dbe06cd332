"""Every HTTP limit of herald, crossed for real (see src/http/server.h):
--body-max (declared and chunked) → 413, --header-max and --max-headers →
431, --header-timeout (slowloris) → 408, --idle-timeout closes an idle
keep-alive connection, --max-connections → 503, a batch of more than
10,000 events → 413. Each refusal shows in herald_http_limit_hits_total,
and the server keeps serving other clients meanwhile.
"""
import json
import time

import pytest
import requests

from conftest import (CE_BATCH, CE_JSON, RawConn, http_request, metric_value, per_test_timeout,
                      structured, try_connect, wait_for)

_timeout = per_test_timeout(40)

LIMIT_HITS = "herald_http_limit_hits_total"
BODY_MAX = 4096
HEADER_MAX = 1024
MAX_HEADERS = 8


@pytest.fixture
def small(herald_factory):
    """A herald with small size limits."""
    return herald_factory(args=["--body-max", "4k", "--header-max", "1k", "--max-headers", str(MAX_HEADERS)])


def raw_publish(body, headers=None):
    return http_request("POST", "/v1/topics/lim/events", body,
                        dict({"Content-Type": "text/plain"}, **(headers or {})))


def assert_refused(c, status, code):
    """The server's own refusal: JSON error, Connection: close, then EOF."""
    r = c.response()
    assert r.status == status, r
    assert r.json()["error"]["code"] == code
    assert r.headers["connection"].lower() == "close"
    assert c.closed_by_peer(5), "a refused request must close the connection"
    return r


def assert_serves(h):
    with RawConn(h.port) as c:
        assert c.request(http_request("GET", "/healthz")).status == 200


class LimitHits:
    """Asserts that herald_http_limit_hits_total grew by exactly n."""

    def __init__(self, h):
        self.h = h
        self.before = metric_value(h, LIMIT_HITS)

    def grew_by(self, n):
        after = metric_value(self.h, LIMIT_HITS)
        assert after - self.before == n, f"{LIMIT_HITS} went from {self.before} to {after}, expected +{n}"


# ---- --body-max -----------------------------------------------------------

def test_body_at_the_limit_is_accepted(small):
    with RawConn(small.port) as c:
        r = c.request(raw_publish(b"a" * BODY_MAX))
        assert r.status == 201, r
        assert r.headers["connection"] == "keep-alive"
    assert len(small.read_all("lim")[0]["data"]) == BODY_MAX


def test_declared_body_over_the_limit_is_refused_before_it_is_sent(small):
    hits = LimitHits(small)
    with RawConn(small.port) as c:
        # Only the head goes out: the 413 must come without the body.
        c.send(http_request("POST", "/v1/topics/lim/events", b"",
                            {"Content-Type": "text/plain", "Content-Length": str(BODY_MAX + 1)}))
        assert_refused(c, 413, "payload_too_large")
    with RawConn(small.port) as c:
        c.send(http_request("POST", "/v1/topics/lim/events", b"",
                            {"Content-Type": "text/plain", "Content-Length": str(10 ** 12)}))
        assert_refused(c, 413, "payload_too_large")
    hits.grew_by(2)
    assert small.read("lim").json()["events"] == []
    assert_serves(small)


def test_body_over_the_limit_sent_with_the_head_is_not_parsed_as_requests(small):
    # The body itself looks like a pipelined request; it must be dropped.
    body = http_request("POST", "/v1/topics/smuggled/events", b"x") * 400
    assert len(body) > BODY_MAX
    with RawConn(small.port) as c:
        c.send(raw_publish(body))
        assert_refused(c, 413, "payload_too_large")
        assert c.buf == b""
    assert small.read("smuggled").json()["events"] == []
    assert small.read("lim").json()["events"] == []


def test_server_does_not_read_a_huge_refused_body(small):
    """After a 413 the server drains a bounded amount and then closes: a
    client that keeps pushing a 64 MiB body is cut off long before the end."""
    total = 64 * 1024 * 1024
    with RawConn(small.port) as c:
        c.send(http_request("POST", "/v1/topics/lim/events", b"",
                            {"Content-Type": "text/plain", "Content-Length": str(total)}))
        r = c.response()
        assert r.status == 413
        chunk = b"z" * 65536
        sent = 0
        deadline = time.monotonic() + 10
        c.sock.settimeout(2)
        with pytest.raises(OSError):
            while sent < total and time.monotonic() < deadline:
                sent += c.sock.send(chunk)
        assert sent < total // 2, f"the server accepted {sent} bytes of a refused body"
    assert_serves(small)


def test_chunked_body_crossing_the_limit_is_refused(small):
    hits = LimitHits(small)
    head = http_request("POST", "/v1/topics/lim/events", b"",
                        {"Content-Type": "text/plain", "Transfer-Encoding": "chunked"})
    # 1 KiB chunks: the fifth crosses 4 KiB.
    with RawConn(small.port) as c:
        c.send(head)
        for _ in range(4):
            c.send(b"400\r\n" + b"c" * 1024 + b"\r\n")
        c.send(b"1\r\nX\r\n")
        assert_refused(c, 413, "payload_too_large")
    # One chunk that declares more than the limit is refused before its data.
    with RawConn(small.port) as c:
        c.send(head + b"100000\r\n")
        assert_refused(c, 413, "payload_too_large")
    hits.grew_by(2)
    # Exactly the limit, chunked, is fine.
    with RawConn(small.port) as c:
        r = c.request(head + b"".join(b"400\r\n" + b"d" * 1024 + b"\r\n" for _ in range(4)) + b"0\r\n\r\n")
        assert r.status == 201, r
    assert [len(e["data"]) for e in small.read_all("lim")] == [BODY_MAX]


# ---- --header-max and --max-headers ------------------------------------------

def head_of_size(n):
    """A GET /healthz whose request line and headers are exactly n bytes."""
    base = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: \r\n\r\n"
    return base.replace(b"X-Pad: ", b"X-Pad: " + b"p" * (n - len(base)))


def test_headers_over_header_max_get_431(small):
    hits = LimitHits(small)
    with RawConn(small.port) as c:
        r = c.request(head_of_size(HEADER_MAX))
        assert r.status == 200, "a head of exactly --header-max bytes is allowed"
        c.send(head_of_size(HEADER_MAX + 1))
        assert_refused(c, 431, "headers_too_large")
    with RawConn(small.port) as c:
        # Far over, and never finished: refused as soon as the budget is spent.
        c.send(b"GET /healthz HTTP/1.1\r\nX-Long: " + b"l" * (4 * HEADER_MAX))
        assert_refused(c, 431, "headers_too_large")
    with RawConn(small.port) as c:
        # A request line alone over the limit.
        c.send(b"GET /" + b"u" * (2 * HEADER_MAX) + b" HTTP/1.1\r\n\r\n")
        assert_refused(c, 431, "headers_too_large")
    hits.grew_by(3)
    assert_serves(small)


def test_more_than_max_headers_fields_get_431(small):
    hits = LimitHits(small)

    def with_fields(n):  # Host is one of the n
        return http_request("GET", "/healthz", b"", {f"X-F{i}": "v" for i in range(n - 1)})

    with RawConn(small.port) as c:
        assert c.request(with_fields(MAX_HEADERS)).status == 200
        c.send(with_fields(MAX_HEADERS + 1))
        assert_refused(c, 431, "headers_too_large")
    with RawConn(small.port) as c:
        c.send(with_fields(200))
        assert_refused(c, 431, "headers_too_large")
    hits.grew_by(2)
    assert_serves(small)


def test_chunked_trailers_over_header_max_get_431(small):
    hits = LimitHits(small)
    head = http_request("POST", "/v1/topics/lim/events", b"",
                        {"Content-Type": "text/plain", "Transfer-Encoding": "chunked"})
    trailers = b"".join(b"X-T%d: %s\r\n" % (i, b"v" * 100) for i in range(20))
    assert len(trailers) > HEADER_MAX
    with RawConn(small.port) as c:
        c.send(head + b"3\r\nabc\r\n0\r\n" + trailers + b"\r\n")
        assert_refused(c, 431, "headers_too_large")
    hits.grew_by(1)
    assert small.read("lim").json()["events"] == []


# ---- --header-timeout (slowloris) and --idle-timeout -----------------------------

def test_slowloris_gets_408_while_others_are_served(herald_factory):
    h = herald_factory(args=["--header-timeout", "500ms"])
    hits = LimitHits(h)
    slow = RawConn(h.port)
    trickle = RawConn(h.port)
    try:
        t0 = time.monotonic()
        slow.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
        trickle.send(b"G")
        # Other clients are served promptly meanwhile, one byte of the
        # trickling client after each (a byte does not restart the timer).
        served = 0
        trickle_bytes = b"ET /healthz HTTP/1.1\r\nX-Slow: " + b"s" * 100
        while time.monotonic() - t0 < 0.4:
            with RawConn(h.port) as c:
                t1 = time.monotonic()
                assert c.request(http_request("GET", "/healthz")).status == 200
                assert time.monotonic() - t1 < 0.2
            trickle.send(trickle_bytes[served % len(trickle_bytes):][:1])
            served += 1
            time.sleep(0.02)  # pacing the trickle, not synchronising
        assert served >= 3
        for c in (slow, trickle):
            r = c.response(timeout=3)
            elapsed = time.monotonic() - t0
            assert r.status == 408, r
            assert r.json()["error"]["code"] == "request_timeout"
            assert c.closed_by_peer(3)
            assert 0.4 <= elapsed < 2.0, f"408 after {elapsed:.2f}s with --header-timeout 500ms"
    finally:
        slow.close()
        trickle.close()
    hits.grew_by(2)
    assert_serves(h)


def test_connection_that_sends_nothing_is_closed_after_header_timeout(herald_factory):
    h = herald_factory(args=["--header-timeout", "300ms"])
    with RawConn(h.port) as c:
        t0 = time.monotonic()
        assert c.closed_by_peer(3), "a silent connection must not be kept forever"
        assert time.monotonic() - t0 < 2.0


def test_idle_keep_alive_connection_is_closed_after_idle_timeout(herald_factory):
    h = herald_factory(args=["--idle-timeout", "300ms"])
    with RawConn(h.port) as c:
        # Activity within the idle window keeps the connection open...
        for _ in range(5):
            r = c.request(http_request("GET", "/healthz"))
            assert r.status == 200 and r.headers["connection"] == "keep-alive"
            time.sleep(0.1)  # pacing below the idle limit, not synchronising
        # ...and then silence closes it, silently.
        t0 = time.monotonic()
        assert c.closed_by_peer(3), "an idle keep-alive connection must be closed"
        elapsed = time.monotonic() - t0
        assert c.buf == b"", "an idle close sends nothing"
        assert 0.15 <= elapsed < 2.0, f"closed after {elapsed:.2f}s with --idle-timeout 300ms"
    assert_serves(h)


def test_stalled_body_gets_408_after_idle_timeout(herald_factory):
    """A body that stops arriving is a slow client too: 408 once no byte
    came for --idle-timeout."""
    h = herald_factory(args=["--idle-timeout", "400ms", "--header-timeout", "5s"])
    hits = LimitHits(h)
    with RawConn(h.port) as c:
        t0 = time.monotonic()
        c.send(http_request("POST", "/v1/topics/stall/events", b"",
                            {"Content-Type": "text/plain", "Content-Length": "100"}) + b"only part")
        assert_refused(c, 408, "request_timeout")
        elapsed = time.monotonic() - t0
        assert 0.3 <= elapsed < 2.5, f"408 after {elapsed:.2f}s with --idle-timeout 400ms"
    hits.grew_by(1)
    assert h.read("stall").json()["events"] == []


def test_header_timeout_applies_to_the_next_request_on_a_keep_alive_connection(herald_factory):
    h = herald_factory(args=["--header-timeout", "400ms", "--idle-timeout", "10s"])
    with RawConn(h.port) as c:
        assert c.request(http_request("GET", "/healthz")).status == 200
        # Idle (not timed by the header timeout) for a moment, then half a head.
        time.sleep(0.6)  # longer than the header timeout, on purpose
        t0 = time.monotonic()
        c.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        assert_refused(c, 408, "request_timeout")
        elapsed = time.monotonic() - t0
        assert 0.3 <= elapsed < 2.0, f"408 {elapsed:.2f}s after the first byte with --header-timeout 400ms"


def test_expect_continue_with_a_body_over_the_limit_gets_413_not_100(small):
    with RawConn(small.port) as c:
        c.send(http_request("POST", "/v1/topics/lim/events", b"",
                            {"Content-Type": "text/plain", "Content-Length": str(BODY_MAX + 1),
                             "Expect": "100-continue"}))
        assert_refused(c, 413, "payload_too_large")


# ---- --max-connections ---------------------------------------------------------------

def test_max_connections_refuses_the_sixth_and_recovers(herald_factory):
    h = herald_factory(args=["--max-connections", "5"])
    conns = []
    try:
        # The start-up probe's connection may still be counted for a moment
        # after it closed (the server learns of the close asynchronously).
        for i in range(5):
            conns.append(wait_for(lambda: try_connect(h), 5, what=f"connection {i + 1} accepted"))
        # With five held, the sixth is refused for sure.
        with RawConn(h.port) as sixth:
            r = sixth.response()
            assert r.status == 503, r
            assert r.json()["error"]["code"] == "unavailable"
            assert r.headers["connection"].lower() == "close"
            assert sixth.closed_by_peer(5)
        # The five still work.
        for c in conns:
            assert c.request(http_request("GET", "/healthz")).status == 200
        # Close two: new connections are accepted again.
        for c in conns[:2]:
            c.close()
        del conns[:2]
        for i in range(2):
            conns.append(wait_for(lambda: try_connect(h), 5, what=f"replacement {i + 1} accepted"))
        # Full again.
        with RawConn(h.port) as c:
            assert c.response().status == 503
            assert c.closed_by_peer(5)
    finally:
        for c in conns:
            c.close()

    def metrics_text():
        try:
            r = requests.get(h.url + "/metrics", timeout=5)
        except requests.ConnectionError:
            return None
        return r.text if r.status_code == 200 else None

    text = wait_for(metrics_text, 5, what="/metrics once slots are free")
    hits = [float(l.split()[1]) for l in text.splitlines() if l.startswith(LIMIT_HITS + " ")]
    # At least the two 503s seen above (polls may have met a few more).
    assert hits and hits[0] >= 2, text


# ---- batches ------------------------------------------------------------------

def batch_body(n, prefix):
    return json.dumps([structured(f"{prefix}{i}") for i in range(n)])


def test_batch_of_more_than_10000_events_gets_413(herald):
    r = herald.publish("big", batch_body(10001, "o"), headers=CE_BATCH)
    assert r.status_code == 413, r.text
    assert r.json()["error"]["code"] == "payload_too_large"
    assert herald.read("big").json()["events"] == []
    # 10,000 exactly is one batch, stored whole.
    r = herald.publish("big", batch_body(10000, "k"), headers=CE_BATCH)
    assert r.status_code == 200, r.text[:300]
    body = r.json()
    assert body["failed_count"] == 0 and len(body["entries"]) == 10000
    assert [e["offset"] for e in body["entries"]] == list(range(1, 10001))
    assert herald.session.get(herald.topic_url("big", ""), timeout=10).json()["last"] == 10000


def test_batch_over_the_limit_counts_as_a_limit_hit(herald):
    hits = LimitHits(herald)
    r = herald.publish("big", batch_body(10001, "o"), headers=CE_BATCH)
    assert r.status_code == 413
    hits.grew_by(1)


def test_structured_event_over_body_max_via_requests_client(small):
    """The same limit through an ordinary HTTP client (requests)."""
    big = structured("huge", data={"blob": "b" * (2 * BODY_MAX)})
    hits = LimitHits(small)
    try:
        r = small.publish("lim", big, headers=CE_JSON)
        assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    except Exception as e:  # the client may see the close before reading the 413
        assert isinstance(e, requests.ConnectionError), e
    hits.grew_by(1)
    assert small.publish("lim", structured("small"), headers=CE_JSON).status_code == 201
