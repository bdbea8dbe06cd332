"""The limits that hold under abuse beyond the HTTP ones (docs/security.md):
--max-connections-per-ip and --connection-rate-per-ip (429 + Retry-After,
closed), --publish-rate-per-key (429 + Retry-After), --publish-rate-per-
connection (WebSocket error 111), a namespace's max-event-size (413, a
batch entry's own error, WebSocket error 107) and --max-topics-total (429,
existing topics still take events, exact across a restart). Each is crossed
for real, shows in its counter in /metrics, and an honest client is served
afterwards."""
import asyncio
import json
import time

import requests

from conftest import (CE_BATCH, CE_JSON, create_key, RawConn, http_request, metric_value, per_test_timeout,
                      structured, try_connect, wait_for)
from wsclient import SECRET, connect, run

_timeout = per_test_timeout(60)


def served(h):
    c = try_connect(h)
    if c:
        c.close()
    return c is not None


def metric_when_served(h, name):
    """The metric, read once a connection is let in again."""
    def get():
        try:
            return metric_value(h, name)
        except (AssertionError, requests.RequestException):
            return None
    return wait_for(get, 10, 0.05, what=f"{name} readable")


def assert_429_closed(c, *words):
    r = c.response()
    assert r.status == 429, r
    assert r.json()["error"]["code"] == "too_many_requests"
    assert int(r.headers["retry-after"]) >= 1
    for w in words:
        assert w in r.json()["error"]["message"], r.json()
    assert r.headers["connection"].lower() == "close"
    assert c.closed_by_peer(5)
    return r


# ---- connections per address ----------------------------------------------------

def test_max_connections_per_ip(herald_factory):
    h = herald_factory(args=["--max-connections-per-ip", "3"])
    conns = []
    try:
        for i in range(3):
            conns.append(wait_for(lambda: try_connect(h), 5, what=f"connection {i + 1}"))
        with RawConn(h.port) as fourth:
            assert_429_closed(fourth, "--max-connections-per-ip")
        # The three still work; closing one lets a new one in.
        for c in conns:
            assert c.request(http_request("GET", "/healthz")).status == 200
        conns.pop().close()
        conns.append(wait_for(lambda: try_connect(h), 5, what="a replacement"))
    finally:
        for c in conns:
            c.close()
    assert metric_when_served(h, "herald_connection_ip_limit_hits_total") >= 1
    assert wait_for(lambda: served(h), 5, what="an honest client")


def test_connection_rate_per_ip(herald_factory):
    h = herald_factory(args=["--connection-rate-per-ip", "2", "--connection-burst-per-ip", "3"])
    # The start-up probe may have used tokens: wait for a full bucket's worth.
    wait_for(lambda: served(h), 5, 0.1, what="a first connection")
    time.sleep(1.6)  # refill to the burst (the limit under test is time itself)
    statuses = []
    for _ in range(6):
        with RawConn(h.port) as c:
            c.send(http_request("GET", "/healthz"))
            r = c.response()
            statuses.append(r.status)
            if r.status == 429:
                assert r.json()["error"]["code"] == "too_many_requests"
                assert "--connection-rate-per-ip" in r.json()["error"]["message"]
                assert r.headers["retry-after"] == "1"
                assert c.closed_by_peer(5)
    assert statuses[:3] == [200, 200, 200] and 429 in statuses[3:], statuses
    # After the window the address is served again.
    assert wait_for(lambda: served(h), 5, 0.1, what="served after the window")
    assert metric_when_served(h, "herald_connection_rate_limit_hits_total") >= 1


# ---- publish rates ----------------------------------------------------------------



def test_publish_rate_per_key(herald_factory):
    h = herald_factory(args=["--publish-rate-per-key", "5", "--publish-burst-per-key", "5"], start=False)
    fast = create_key(h.data_dir, "fast", "publish:*", "metrics")
    calm = create_key(h.data_dir, "calm", "publish:*")
    h.start()
    s = requests.Session()

    def post(key, body, ctype=CE_JSON):
        return s.post(h.topic_url("rate"), data=json.dumps(body),
                      headers=dict(ctype, Authorization=f"Bearer {key}"), timeout=10)

    # A batch counts its events: five take the whole burst.
    r = post(fast, [structured(f"b{i}") for i in range(5)], CE_BATCH)
    assert r.status_code == 200 and r.json()["failed_count"] == 0, r.text
    r = post(fast, structured("over"))
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "too_many_requests"
    assert "fast" in r.json()["error"]["message"] and "--publish-rate-per-key" in r.json()["error"]["message"]
    assert int(r.headers["Retry-After"]) >= 1
    # Another key has its own bucket.
    assert post(calm, structured("calm-1")).status_code == 201
    # The key is served again after the window.
    wait_for(lambda: post(fast, structured(f"again-{time.monotonic_ns()}")).status_code == 201, 5, 0.1,
             what="the key served again")
    r = s.get(h.url + "/metrics", headers={"Authorization": f"Bearer {fast}"}, timeout=10)
    hits = [float(l.split()[1]) for l in r.text.splitlines()
            if l.startswith("herald_publish_rate_key_hits_total ")]
    assert hits and hits[0] >= 1, r.text


def test_publish_rate_per_websocket_connection(herald_factory):
    h = herald_factory(args=["--jwt-secret", SECRET, "--publish-rate-per-connection", "2",
                             "--publish-burst-per-connection", "2"])

    async def go():
        c, _ = await connect(h)
        for i in range(2):
            r = await c.call({"publish": {"channel": "wsrate", "data": {"n": i}}})
            assert "publish" in r, r
        r = await c.call({"publish": {"channel": "wsrate", "data": {"n": 2}}})
        assert r["error"]["code"] == 111, r
        assert r["error"].get("temporary") is True, r
        assert "--publish-rate-per-connection" in r["error"]["message"]
        # Another connection is not affected.
        other, _ = await connect(h, sub="u2")
        r = await other.call({"publish": {"channel": "wsrate", "data": {"n": "other"}}})
        assert "publish" in r, r
        # The same connection may publish again after the window.
        deadline = time.monotonic() + 5
        while True:
            r = await c.call({"publish": {"channel": "wsrate", "data": {"n": "later"}}})
            if "publish" in r:
                break
            assert r["error"]["code"] == 111 and time.monotonic() < deadline, r
            await asyncio.sleep(0.1)
        await c.close()
        await other.close()

    run(go())
    assert metric_value(h, "herald_publish_rate_connection_hits_total") >= 1
    assert [e["data"]["n"] for e in h.read_all("wsrate")][:2] == [0, 1]


# ---- event size per namespace -------------------------------------------------------

def test_max_event_size_per_namespace(herald_factory):
    conf = "[namespace small]\nmax-event-size = 300\n"
    h = herald_factory(args=["--jwt-secret", SECRET], config=conf)
    big = structured("big", pad="x" * 400)
    r = h.publish("small:1", json.dumps(big), headers=CE_JSON)
    assert r.status_code == 413, r.text
    err = r.json()["error"]
    assert err["code"] == "payload_too_large" and "max-event-size" in err["message"] and "300" in err["message"]
    # A batch: the big entry fails alone.
    r = h.publish("small:1", json.dumps([structured("ok-1"), big]), headers=CE_BATCH)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["failed_count"] == 1
    assert body["entries"][0]["offset"] == 1
    assert body["entries"][1]["error"]["code"] == "payload_too_large"
    assert "max-event-size" in body["entries"][1]["error"]["message"]
    # Other namespaces keep only --body-max.
    assert h.publish("large:1", json.dumps(big), headers=CE_JSON).status_code == 201

    async def go():
        c, _ = await connect(h)
        r = await c.call({"publish": {"channel": "small:ws", "data": {"text": "y" * 400}}})
        assert r["error"]["code"] == 107 and "max-event-size" in r["error"]["message"], r
        r = await c.call({"publish": {"channel": "small:ws", "data": {"text": "fits"}}})
        assert "publish" in r, r
        await c.close()

    run(go())
    assert metric_value(h, "herald_event_size_limit_hits_total") == 3
    assert [e["id"] for e in h.read_all("small:1")] == ["ok-1"]


# ---- topics in the store ----------------------------------------------------------------

def test_max_topics_total(herald_factory):
    h = herald_factory(args=["--max-topics-total", "3", "--jwt-secret", SECRET])
    for t in ("t1", "t2", "t3"):
        assert h.publish(t, json.dumps(structured(t)), headers=CE_JSON).status_code == 201
    r = h.publish("t4", json.dumps(structured("t4")), headers=CE_JSON)
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "too_many_requests"
    assert "--max-topics-total" in r.json()["error"]["message"]
    # A batch to a new topic: every entry refused, none stored.
    r = h.publish("t5", json.dumps([structured("a"), structured("b")]), headers=CE_BATCH)
    assert r.status_code == 200 and r.json()["failed_count"] == 2, r.text
    assert all(e["error"]["code"] == "too_many_requests" for e in r.json()["entries"])
    # Existing topics still take events.
    assert h.publish("t1", json.dumps(structured("t1-2")), headers=CE_JSON).status_code == 201

    async def go():
        c, _ = await connect(h)
        r = await c.call({"publish": {"channel": "t6", "data": {"n": 1}}})
        assert r["error"]["code"] == 106 and "--max-topics-total" in r["error"]["message"], r
        r = await c.call({"publish": {"channel": "t2", "data": {"n": 1}}})
        assert "publish" in r, r
        await c.close()

    run(go())
    assert metric_value(h, "herald_topic_limit_hits_total") == 4
    assert metric_value(h, "herald_topics") == 3
    # The count survives a restart; deleting a topic makes room.
    h.restart()
    assert h.publish("t4", json.dumps(structured("t4")), headers=CE_JSON).status_code == 429
    assert requests.delete(h.url + "/v1/topics/t3", timeout=10).status_code in (200, 204)
    assert h.publish("t4", json.dumps(structured("t4")), headers=CE_JSON).status_code == 201
    assert h.publish("t7", json.dumps(structured("t7")), headers=CE_JSON).status_code == 429
    assert metric_value(h, "herald_topics") == 3


# ---- the HTTPS listener ---------------------------------------------------------

def test_per_ip_cap_on_the_tls_listener(herald_factory, tmp_path):
    from test_tls import Pki, TlsConn, tls_args
    from conftest import free_port
    pki = Pki(tmp_path / "pki")
    port = free_port()
    # Plain HTTP shares the cap: the start-up probe's connection counts too.
    h = herald_factory(args=tls_args(pki, port) + ["--max-connections-per-ip", "2"])
    ctx = pki.context()

    def tls_try():
        try:
            c = TlsConn(port, ctx)
            c.send(http_request("GET", "/healthz"))
            if c.response().status == 200:
                return c
            c.close()
        except (ConnectionError, OSError, ssl_error()):
            pass
        return None

    held = [wait_for(tls_try, 5, 0.05, what=f"TLS connection {i + 1}") for i in range(2)]
    try:
        # The third is closed without an answer: a refusal cannot be sent
        # before the handshake (as for the 503 of --max-connections).
        got = None
        try:
            c = TlsConn(port, ctx)
            c.send(http_request("GET", "/healthz"))
            got = c.response().status
        except (ConnectionError, OSError, ssl_error()):
            pass
        assert got is None, got
        # Plain HTTP from the same address is refused too (one count per address).
        with RawConn(h.port) as plain:
            assert_429_closed(plain, "--max-connections-per-ip")
    finally:
        for c in held:
            c.close()
    assert metric_when_served(h, "herald_connection_ip_limit_hits_total") >= 2
    assert wait_for(tls_try, 5, 0.05, what="TLS served again").close() is None


def ssl_error():
    import ssl
    return ssl.SSLError
