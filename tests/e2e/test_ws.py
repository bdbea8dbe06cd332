"""WebSocket edge, Centrifugo client protocol v2 JSON (docs/websocket.md):
connect with JWTs, subscribe, live publications, all-or-nothing recovery
(also across a restart and after retention), the user:U server-side
subscription, presence and the connection listing, publish and history over
the socket, ping/pong, token expiry and refresh, error replies and close
codes, slow consumers and shutdown. The client is python3-websockets."""
import asyncio
import json
import threading
import signal
import time

import requests

from conftest import RawConn, metric_value, per_test_timeout, publish_ce, structured, wait_for
from wsclient import SECRET, Client, connect, run, token

_timeout = per_test_timeout(90)

ARGS = ["--jwt-secret", SECRET]


def pub_ids(pushes):
    return [(p["pub"]["offset"], p["pub"]["tags"]["id"]) for p in pushes]


def test_connect_subscribe_and_receive(herald_factory):
    h = herald_factory(args=ARGS)

    async def go():
        c = await Client.open(h)
        # What centrifuge-js sends on open: connect and subscribe in one frame, id last.
        await c.send_raw('{"connect":{"token":"%s","name":"js"},"id":1}\n'
                         '{"subscribe":{"channel":"news","flag":1},"id":2}' % token("u1"))
        r1 = await c.reply(1)
        r2 = await c.reply(2)
        con = r1["connect"]
        assert con["client"] and con["version"].startswith("herald")
        assert con["ping"] == 25 and con["pong"] is True
        assert "expires" not in con
        assert set(con["subs"]) == {"user:u1"}
        assert con["subs"]["user:u1"]["recoverable"] is True
        sub = r2["subscribe"]
        assert sub["recoverable"] is True and sub["positioned"] is True
        assert "offset" not in sub  # an empty topic: offset 0 is omitted
        publish_ce(h, "news", 1, 3)
        got = await c.pubs(3)
        assert [p["channel"] for p in got] == ["news"] * 3
        assert pub_ids(got) == [(1, "e1"), (2, "e2"), (3, "e3")]
        # Payload shape: these events have no data; their attributes are tags.
        assert "data" not in got[0]["pub"]
        assert got[0]["pub"]["tags"]["source"] == "/test" and "specversion" not in got[0]["pub"]["tags"]
        # Unsubscribe stops deliveries.
        r = await c.call({"unsubscribe": {"channel": "news"}})
        assert r == {"id": r["id"], "unsubscribe": {}}
        publish_ce(h, "news", 4, 1)
        await c.quiet(0.3)
        await c.close()

    run(go())


def test_recover_after_disconnect_and_restart(herald_factory):
    h = herald_factory(args=ARGS)

    async def first():
        c, _ = await connect(h)
        await c.call({"subscribe": {"channel": "rides:1"}})
        publish_ce(h, "rides:1", 1, 2)
        got = await c.pubs(2)
        await c.close()
        return got[-1]["pub"]["offset"]

    offset = run(first())
    assert offset == 2
    publish_ce(h, "rides:1", 3, 3)  # missed while away
    epoch = h.read("rides:1").json()["epoch"]

    async def resume(offset, expect_ids, live_id):
        c, _ = await connect(h)
        r = await c.call({"subscribe": {"channel": "rides:1", "recover": True, "offset": offset,
                                        "epoch": epoch, "flag": 1}})
        s = r["subscribe"]
        assert s["recovered"] is True and s["was_recovering"] is True, s
        assert s["epoch"] == epoch
        got = [(p["offset"], p["tags"]["id"]) for p in s.get("publications", [])]
        assert got == expect_ids
        # Live after recovery: exactly once.
        publish_ce(h, "rides:1", live_id, 1)
        live = await c.pubs(1)
        assert pub_ids(live) == [(live_id, f"e{live_id}")]
        await c.quiet(0.2)
        await c.close()

    run(resume(2, [(3, "e3"), (4, "e4"), (5, "e5")], 6))
    h.restart()
    publish_ce(h, "rides:1", 7, 1)
    run(resume(6, [(7, "e7")], 8))


def test_recovery_refused_all_or_nothing(herald_factory):
    h = herald_factory(args=ARGS + ["--ws-recover-max", "5"],
                       config="[namespace short]\nretention-max-count = 3\n")
    publish_ce(h, "long", 1, 10)
    publish_ce(h, "short:x", 1, 10)
    epoch = h.read("long").json()["epoch"]

    async def go():
        c, _ = await connect(h)
        # 9 missed > recover max 5: nothing partial, recovered absent.
        r = await c.call({"subscribe": {"channel": "long", "recover": True, "offset": 1, "epoch": epoch}})
        s = r["subscribe"]
        assert s["was_recovering"] is True and "recovered" not in s and "publications" not in s
        assert s["offset"] == 10
        # Retention removed events 1..7: not recovered either.
        r = await c.call({"subscribe": {"channel": "short:x", "recover": True, "offset": 2}})
        s = r["subscribe"]
        assert s["was_recovering"] is True and "recovered" not in s, s
        # A different epoch: the offset space was reset.
        await c.call({"unsubscribe": {"channel": "long"}})
        r = await c.call({"subscribe": {"channel": "long", "recover": True, "offset": 8, "epoch": "other"}})
        assert "recovered" not in r["subscribe"]
        # Within the limit and same epoch: recovered.
        await c.call({"unsubscribe": {"channel": "long"}})
        r = await c.call({"subscribe": {"channel": "long", "recover": True, "offset": 8, "epoch": epoch}})
        s = r["subscribe"]
        assert s["recovered"] is True and [p["offset"] for p in s["publications"]] == [9, 10]
        await c.close()

    run(go())
    assert metric_value(h, "herald_ws_recovery_failures_total") >= 3


def test_events_during_recovery_are_neither_lost_nor_repeated(herald_factory):
    """Publishers keep writing while clients subscribe with recovery; every
    client sees every offset after its start exactly once, in order."""
    h = herald_factory(args=ARGS)
    publish_ce(h, "busy", 1, 20)
    epoch = h.read("busy").json()["epoch"]
    stop = time.monotonic() + 2.0

    def publisher():
        s = requests.Session()
        i = 100
        while time.monotonic() < stop:
            r = s.post(h.topic_url("busy"), data=json.dumps({"n": i}),
                       headers={"Content-Type": "application/json"}, timeout=10)
            assert r.status_code == 201
            i += 1

    async def client(start):
        c, _ = await connect(h)
        r = await c.call({"subscribe": {"channel": "busy", "recover": True, "offset": start, "epoch": epoch}})
        s = r["subscribe"]
        assert s["recovered"] is True
        seen = [p["offset"] for p in s.get("publications", [])]
        while time.monotonic() < stop + 0.5:
            try:
                p = await c.push(0.3)
                seen.append(p["pub"]["offset"])
            except asyncio.TimeoutError:
                pass
        await c.close()
        return start, seen

    async def go():
        loop = asyncio.get_running_loop()
        pub = loop.run_in_executor(None, publisher)
        results = await asyncio.gather(*[client(s) for s in (0, 5, 10, 15, 20)])
        await pub
        return results

    results = run(go())
    last = max(e["offset"] for e in h.read_all("busy"))
    for start, seen in results:
        assert seen == list(range(start + 1, last + 1)), (start, seen[:10], len(seen))


def test_user_everywhere_presence_and_connections(herald_factory):
    h = herald_factory(args=ARGS)

    async def go():
        a, ra = await connect(h, sub="u42")
        b, rb = await connect(h, sub="u42")
        other, _ = await connect(h, sub="u7")
        assert "user:u42" in ra["subs"] and "user:u42" in rb["subs"]
        await a.call({"subscribe": {"channel": "chat"}})
        await other.call({"subscribe": {"channel": "chat"}})
        # Another user's topic is not allowed.
        r = await other.call({"subscribe": {"channel": "user:u42"}})
        assert r["error"]["code"] == 103
        # Notify user 42: both connections get it, user 7 does not.
        resp = requests.post(f"{h.url}/v1/users/u42/notifications", json={"msg": "hi"}, timeout=10)
        assert resp.status_code == 201, resp.text
        for c in (a, b):
            (p,) = await c.pubs(1)
            assert p["channel"] == "user:u42" and p["pub"]["data"] == {"msg": "hi"}
        await other.quiet(0.2)
        # The listing over HTTP.
        conns = requests.get(f"{h.url}/v1/users/u42/connections", timeout=10).json()
        assert conns["user"] == "u42"
        assert len(conns["connections"]) == 2
        for c in conns["connections"]:
            assert c["transport"] == "websocket" and c["remote"].startswith("127.0.0.1:")
            assert "user:u42" in c["topics"] and c["node"] and c["since"].endswith("Z")
        assert {c["id"] for c in conns["connections"]} == {ra["client"], rb["client"]}
        pres = requests.get(f"{h.url}/v1/topics/chat/presence", timeout=10).json()
        assert pres["subscribers"] == 2 and sorted(pres["users"]) == ["u42", "u7"]
        # Presence over the protocol.
        r = await a.call({"presence": {"channel": "chat"}})
        assert {v["user"] for v in r["presence"]["presence"].values()} == {"u42", "u7"}
        r = await a.call({"presence_stats": {"channel": "chat"}})
        assert r["presence_stats"] == {"num_clients": 2, "num_users": 2}
        # A reconnect recovers the user topic from connect.subs.
        await b.close()
        requests.post(f"{h.url}/v1/users/u42/notifications", json={"msg": "away"}, timeout=10)
        (p,) = await a.pubs(1)
        off = p["pub"]["offset"]
        epoch = h.read("user:u42").json()["epoch"]
        b2, rb2 = await connect(h, sub="u42", subs={"user:u42": {"recover": True, "offset": off - 1,
                                                                 "epoch": epoch}})
        s = rb2["subs"]["user:u42"]
        assert s["recovered"] is True and [x["data"] for x in s["publications"]] == [{"msg": "away"}]
        for c in (a, b2, other):
            await c.close()
        await asyncio.sleep(0.1)

    run(go())
    wait_for(lambda: requests.get(f"{h.url}/v1/users/u42/connections", timeout=5).json()["connections"] == [],
             5, what="connections gone")


def test_publish_and_history_over_the_socket(herald_factory):
    h = herald_factory(args=ARGS)

    async def go():
        c, _ = await connect(h)
        await c.call({"subscribe": {"channel": "room"}})
        r = await c.call({"publish": {"channel": "room", "data": {"text": "hello"}}})
        assert r == {"id": r["id"], "publish": {}}
        ce = structured("ce-1", type_="com.example.chat")
        r = await c.call({"publish": {"channel": "room", "data": ce}})
        assert "publish" in r, r
        got = await c.pubs(2)
        assert got[0]["pub"]["data"] == {"text": "hello"}
        assert got[1]["pub"]["tags"]["id"] == "ce-1" and got[1]["pub"]["tags"]["type"] == "com.example.chat"
        r = await c.call({"publish": {"channel": "room", "data": {"specversion": "0.3"}}})
        assert r["error"]["code"] == 107 and "specversion" in r["error"]["message"]
        r = await c.call({"history": {"channel": "room", "limit": -1}})
        hist = r["history"]
        assert [p["offset"] for p in hist["publications"]] == [1, 2] and hist["offset"] == 2
        assert hist["epoch"] == h.read("room").json()["epoch"]
        r = await c.call({"history": {"channel": "room", "limit": 0}})
        assert "publications" not in r["history"] and r["history"]["offset"] == 2
        r = await c.call({"history": {"channel": "room", "limit": 1, "since": {"offset": 1}}})
        assert [p["offset"] for p in r["history"]["publications"]] == [2]
        r = await c.call({"history": {"channel": "room", "limit": 1, "reverse": True}})
        assert [p["offset"] for p in r["history"]["publications"]] == [2]
        r = await c.call({"history": {"channel": "room", "limit": 5, "since": {"offset": 1, "epoch": "x"}}})
        assert r["error"]["code"] == 112
        await c.close()

    run(go())
    assert [e["id"] for e in h.read_all("room")][1] == "ce-1"


def test_errors_and_close_codes(herald_factory):
    h = herald_factory(args=ARGS + ["--ws-connect-timeout", "300ms", "--ws-max-message", "1k"])

    async def go():
        # RPC has no handler: 108, as Centrifugo without an RPC proxy.
        c, _ = await connect(h)
        r = await c.call({"rpc": {"method": "x", "data": {}}})
        assert r["error"] == {"code": 108, "message": "not available"}
        r = await c.call({"sub_refresh": {"channel": "a", "token": "t"}})
        assert r["error"]["code"] == 102  # not subscribed
        r = await c.call({"nosuch": {}})
        assert r["error"]["code"] == 104
        r = await c.call({"subscribe": {"channel": "bad topic"}})
        assert r["error"]["code"] == 102
        r = await c.call({"subscribe": {"channel": ""}})
        assert r["error"]["code"] == 107
        await c.call({"subscribe": {"channel": "dup"}})
        r = await c.call({"subscribe": {"channel": "dup"}})
        assert r["error"]["code"] == 105
        r = await c.call({"ping": {}})
        assert "ping" in r
        # A second connect is a protocol error.
        await c.send({"connect": {"token": token("u1")}})
        assert await c.closed() == (3501, "already connected")

        async def closes(action, code):
            c = await Client.open(h)
            await action(c)
            got = await c.closed()
            assert got[0] == code, got
            return got

        await closes(lambda c: c.send({"subscribe": {"channel": "a"}}), 3501)  # before connect
        await closes(lambda c: c.send_raw("{not json"), 3501)
        await closes(lambda c: c.ws.send(b"\x00\x01"), 3501)  # binary frame
        await closes(lambda c: c.send_raw('{"connect":{}, "id":1}' + " " * 2000), 1009)
        await closes(lambda c: c.send({"connect": {"token": token("u1", secret="wrong")}}), 3500)
        await closes(lambda c: c.send({"connect": {"token": token("u1", alg="none")}}), 3500)
        await closes(lambda c: c.send({"connect": {}}), 3500)  # anonymous not allowed
        await closes(lambda c: asyncio.sleep(0), 3502)  # no connect within 300 ms
        # An expired token is a reply (the client fetches a new one), not a close.
        c = await Client.open(h)
        r = await c.call({"connect": {"token": token("u1", exp=int(time.time()) - 10)}})
        assert r["error"]["code"] == 109
        await c.close()

    run(go())
    # The server still serves after all that.
    assert requests.get(h.url + "/healthz", timeout=5).status_code == 200
    assert metric_value(h, "herald_ws_disconnects_total") >= 8


def test_handshake_refusals(herald):
    with RawConn(herald.port) as c:
        r = c.request(b"GET /connection/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      b"Sec-WebSocket-Version: 8\r\n\r\n")
        assert r.status == 426 and r.headers.get("sec-websocket-version") == "13"
    with RawConn(herald.port) as c:
        r = c.request(b"GET /connection/websocket HTTP/1.1\r\nHost: x\r\n\r\n")
        assert r.status == 400
    with RawConn(herald.port) as c:
        r = c.request(b"POST /connection/websocket HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        assert r.status == 405


def test_anonymous_when_allowed(herald_factory):
    h = herald_factory(args=["--ws-anonymous"])

    async def go():
        c = await Client.open(h)
        r = await c.call({"connect": {}})
        assert r["connect"]["client"] and "subs" not in r["connect"]
        r = await c.call({"subscribe": {"channel": "user:u1"}})
        assert r["error"]["code"] == 103
        r = await c.call({"subscribe": {"channel": "public"}})
        assert "subscribe" in r
        await c.close()

    run(go())


def test_ping_pong(herald_factory):
    h = herald_factory(args=ARGS + ["--ws-ping-interval", "1s", "--ws-pong-timeout", "500ms"])

    async def go():
        c, r = await connect(h)
        assert r["ping"] == 1
        await c.quiet(2.3)
        assert c.pings >= 2
        c.answer_pings = False
        code, reason = await c.closed(4)
        assert (code, reason) == (3012, "no pong")

    run(go())


def test_token_expiry_and_refresh(herald_factory):
    h = herald_factory(args=ARGS + ["--ws-expiry-grace", "0"])

    async def go():
        exp = int(time.time()) + 2
        keep, r = await connect(h, tok=token("u1", exp=exp))
        assert r["expires"] is True and 1 <= r["ttl"] <= 2
        lapse, _ = await connect(h, tok=token("u1", exp=exp))
        r = await keep.call({"refresh": {"token": token("u1", exp=exp + 60)}})
        assert r["refresh"]["expires"] is True and r["refresh"]["ttl"] > 50
        code = await lapse.closed(5)
        assert code == (3005, "expired")
        await keep.quiet(0.5)
        r = await keep.call({"ping": {}})
        assert "ping" in r
        await keep.close()

    run(go())


def test_slow_consumer_is_closed_3008(herald_factory):
    h = herald_factory(args=ARGS + ["--max-pending-bytes", "65536"])
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    c = RawConn(h.port, timeout=10, rcvbuf=4096)
    c.send(("GET /connection/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % key).encode())
    r = c.response(head=True)
    assert r.status == 101
    lines = ('{"connect":{"token":"%s"},"id":1}\n{"subscribe":{"channel":"firehose"},"id":2}' % token("u1")).encode()
    mask = b"\x01\x02\x03\x04"
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(lines))
    c.send(bytes([0x81, 0xFE]) + len(lines).to_bytes(2, "big") + mask + payload)
    wait_for(lambda: metric_value(h, "herald_ws_sessions") == 1, 5, what="session")
    big = json.dumps({"pad": "x" * 30000})
    s = requests.Session()
    # Kernel socket buffers take a few MB before herald's queue grows.
    for i in range(600):
        s.post(h.topic_url("firehose"), data=big, headers={"Content-Type": "application/json"}, timeout=10)
        if i % 20 == 0 and metric_value(h, "herald_slow_consumer_disconnects_total") >= 1:
            break
    wait_for(lambda: metric_value(h, "herald_slow_consumer_disconnects_total") >= 1, 10, what="slow close")
    wait_for(lambda: metric_value(h, "herald_ws_sessions") == 0, 10, what="session gone")
    c.close()
    assert requests.get(h.url + "/healthz", timeout=5).status_code == 200


def test_shutdown_closes_3001(herald_factory):
    h = herald_factory(args=ARGS)

    async def go():
        c, _ = await connect(h)
        await c.call({"subscribe": {"channel": "x"}})
        h.proc.send_signal(signal.SIGTERM)
        return await c.closed(10)

    assert run(go()) == (3001, "shutdown")
    assert h.proc.wait(10) == 0


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def raw_ws_subscriber(h, topic, rcvbuf=4096):
    """A WebSocket subscriber over a raw socket that never reads after the
    handshake (a client stuck on a slow network)."""
    c = RawConn(h.port, timeout=10, rcvbuf=rcvbuf)
    c.send(b"GET /connection/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           b"Sec-WebSocket-Version: 13\r\n\r\n")
    assert c.response(head=True).status == 101
    lines = ('{"connect":{"token":"%s"},"id":1}\n{"subscribe":{"channel":"%s"},"id":2}'
             % (token("slow"), topic)).encode()
    mask = b"\x01\x02\x03\x04"
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(lines))
    c.send(bytes([0x81, 0xFE]) + len(lines).to_bytes(2, "big") + mask + payload)
    return c


def test_slow_consumers_keep_memory_flat_and_fast_ones_served(herald_factory):
    """A fast subscriber receives 400 events of 32 KB while nobody is slow:
    that sets the baseline RSS. Then ten subscribers that never read join and
    400 more are published: each slow one is closed when its unsent output
    passes the cap, the fast one still gets every event in order, and the
    RSS stays where it was (unbounded queues would hold 10 × 12.8 MB)."""
    env = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:quarantine_size_mb=4"}
    h = herald_factory(args=ARGS + ["--max-pending-bytes", "262144", "--sync", "off"], env=env)
    n_events, pad = 400, "x" * 32000
    session = requests.Session()

    # The publisher stays at most WINDOW events ahead of what the fast
    # subscriber has received (5 x 32 KB in flight < the 256 KB cap), so the
    # fast one is never the slow one, however the two threads of this test
    # are scheduled on a loaded machine; the slow ones never read at all.
    WINDOW = 4
    got = []
    moved = threading.Condition()

    def publish_all(start):
        for i in range(start, start + n_events):
            with moved:
                assert moved.wait_for(lambda: len(got) >= i - start - WINDOW, timeout=20), \
                    f"the fast subscriber stalled at {len(got)} of {i - start}"
            r = session.post(h.topic_url("firehose"), data=json.dumps({"i": i, "pad": pad}),
                             headers={"Content-Type": "application/json"}, timeout=10)
            assert r.status_code == 201

    async def phase(fast, start):
        got.clear()
        pub = asyncio.get_running_loop().run_in_executor(None, publish_all, start)
        while len(got) < n_events:
            (p,) = await fast.pubs(1, timeout=20)
            with moved:
                got.append(p["pub"]["data"]["i"])
                moved.notify_all()
        await pub
        assert got == list(range(start, start + n_events))

    async def go():
        fast, _ = await connect(h, sub="fast")
        await fast.call({"subscribe": {"channel": "firehose"}})
        await phase(fast, 0)
        base = rss_kib(h.proc.pid)
        slow = [raw_ws_subscriber(h, "firehose") for _ in range(10)]
        wait_for(lambda: metric_value(h, "herald_ws_sessions") == 11, 10, what="slow sessions")
        await phase(fast, n_events)
        peak = rss_kib(h.proc.pid)
        await fast.close()
        return base, peak, slow

    base, peak, slow = run(go(), timeout=80)
    wait_for(lambda: metric_value(h, "herald_slow_consumer_disconnects_total") >= 10, 10, what="slow closes")
    growth_mb = (peak - base) / 1024
    assert growth_mb < 8, f"RSS grew {growth_mb:.1f} MB (base {base} KiB, peak {peak} KiB)"
    for c in slow:
        c.close()
    assert requests.get(h.url + "/healthz", timeout=5).status_code == 200


def test_join_and_leave_where_the_namespace_allows(herald_factory):
    h = herald_factory(args=ARGS, config="[namespace room]\njoin-leave = on\n")

    async def go():
        a, ra = await connect(h, sub="alice")
        await a.call({"subscribe": {"channel": "room:1", "join_leave": True}})
        await a.call({"subscribe": {"channel": "quiet", "join_leave": True}})
        b, rb = await connect(h, sub="bob")
        await b.call({"subscribe": {"channel": "room:1"}})
        await b.call({"subscribe": {"channel": "quiet"}})
        p = await a.push()
        assert p == {"channel": "room:1", "join": {"info": {"user": "bob", "client": rb["client"]}}}
        await b.call({"unsubscribe": {"channel": "room:1"}})
        p = await a.push()
        assert p == {"channel": "room:1", "leave": {"info": {"user": "bob", "client": rb["client"]}}}
        await b.call({"subscribe": {"channel": "room:1"}})
        assert "join" in await a.push()
        await b.close()
        p = await a.push()
        assert p["leave"]["info"]["client"] == rb["client"]
        # "quiet" is in a namespace without join-leave: nothing came for it.
        await a.quiet(0.3)
        assert not a.pushes
        await a.close()

    run(go())


def test_a_deleted_topic_ends_its_subscriptions(herald_factory):
    """DELETE /v1/topics/{t}: each client subscription of t gets the
    unsubscribe push with code 2500 (the SDK subscribes again); a new
    subscription follows the new epoch from offset 1."""
    h = herald_factory(args=ARGS)

    async def go():
        c, _ = await connect(h, sub="u1")
        await c.call({"subscribe": {"channel": "gone"}})
        await c.call({"subscribe": {"channel": "stays"}})
        publish_ce(h, "gone", 1, 1)
        assert [p["pub"]["offset"] for p in await c.pubs(1)] == [1]
        assert requests.delete(h.topic_url("gone", ""), timeout=10).status_code == 200
        p = await c.push()
        assert p == {"channel": "gone", "unsubscribe": {"code": 2500, "reason": "topic deleted"}}
        publish_ce(h, "gone", 2, 1)
        await c.quiet(0.3)  # not subscribed any more
        assert not c.pushes
        r = await c.call({"subscribe": {"channel": "gone"}})
        assert r["subscribe"]["offset"] == 1
        publish_ce(h, "gone", 3, 1)
        assert [p["pub"]["offset"] for p in await c.pubs(1)] == [2]
        await c.close()


def test_conn_info_in_presence_join_and_leave(herald_factory):
    # Centrifugo's ClientInfo.conn_info: the connect token's info claim (the
    # connect proxy's: test_app_proxy.py) in presence, join and leave, and in
    # the REST presence; none when the token has none, none past 4 KiB.
    h = herald_factory(args=ARGS, config="[namespace room]\njoin-leave = on\n")

    async def go():
        a, ra = await connect(h, tok=token("alice", info={"name": "Alice", "tags": ["x"]}))
        await a.call({"subscribe": {"channel": "room:1", "join_leave": True}})
        b, rb = await connect(h, tok=token("bob", info={"name": "Bob"}))
        await b.call({"subscribe": {"channel": "room:1"}})
        p = await a.push()
        assert p == {"channel": "room:1", "join": {"info": {"user": "bob", "client": rb["client"],
                                                            "conn_info": {"name": "Bob"}}}}, p
        c, rc = await connect(h, sub="carol")  # no info claim
        await c.call({"subscribe": {"channel": "room:1"}})
        assert await a.push() == {"channel": "room:1", "join": {"info": {"user": "carol", "client": rc["client"]}}}
        d, rd = await connect(h, tok=token("dave", info={"big": "x" * 5000}))  # past 4 KiB: left out
        await d.call({"subscribe": {"channel": "room:1"}})
        assert "conn_info" not in (await a.push())["join"]["info"]
        pr = (await a.call({"presence": {"channel": "room:1"}}))["presence"]["presence"]
        assert pr == {
            ra["client"]: {"user": "alice", "client": ra["client"], "conn_info": {"name": "Alice", "tags": ["x"]}},
            rb["client"]: {"user": "bob", "client": rb["client"], "conn_info": {"name": "Bob"}},
            rc["client"]: {"user": "carol", "client": rc["client"]},
            rd["client"]: {"user": "dave", "client": rd["client"]},
        }, pr
        r = requests.get(f"{h.url}/v1/topics/room:1/presence", timeout=10)
        assert r.status_code == 200, r.text
        infos = {x["id"]: x.get("info") for x in r.json()["clients"]}
        assert infos == {ra["client"]: {"name": "Alice", "tags": ["x"]}, rb["client"]: {"name": "Bob"},
                         rc["client"]: None, rd["client"]: None}, infos
        await b.close()
        p = await a.push()
        assert p == {"channel": "room:1", "leave": {"info": {"user": "bob", "client": rb["client"],
                                                             "conn_info": {"name": "Bob"}}}}, p
        for x in (a, c, d):
            await x.close()

    run(go())


def test_publication_payload_tags_and_the_envelope_option(herald_factory):
    """ws-publication: payload (default) puts the event's data in data and its
    attributes in tags (strings); envelope keeps the whole CloudEvent."""
    h = herald_factory(args=ARGS, config="[namespace whole]\nws-publication = envelope\n")
    ev = structured("p1", subject="s1", data={"my": "data"}, count=7, flag=True)
    ev["datacontenttype"] = "application/json"
    binary = structured("p2", data_base64="AAEC")

    async def go():
        c, _ = await connect(h, sub="u1")
        await c.call({"subscribe": {"channel": "plain"}})
        await c.call({"subscribe": {"channel": "whole:1"}})
        for topic in ("plain", "whole:1"):
            for e in (ev, binary):
                r = h.publish(topic, json.dumps(e), headers={"Content-Type": "application/cloudevents+json"})
                assert r.status_code == 201, r.text
        got = await c.pubs(4)
        by = {}
        for p in got:
            by.setdefault(p["channel"], []).append(p["pub"])
        a, b = by["plain"]
        assert a["data"] == {"my": "data"} and a["offset"] == 1
        t = a["tags"]
        assert t["id"] == "p1" and t["source"] == "/test" and t["type"] == "com.example.test"
        assert t["subject"] == "s1" and t["count"] == "7" and t["flag"] == "true"
        assert t["datacontenttype"] == "application/json" and t["time"].endswith("Z")
        assert not ({"specversion", "data", "topic", "offset"} & set(t))
        assert b["data"] == "AAEC" and b["tags"]["data_base64"] == "true"
        # History and recovery use the same shape.
        r = await c.call({"history": {"channel": "plain", "limit": -1}})
        assert [x["data"] for x in r["history"]["publications"] if "data" in x] == [{"my": "data"}, "AAEC"]
        a, b = by["whole:1"]
        assert a["data"]["specversion"] == "1.0" and a["data"]["data"] == {"my": "data"}
        assert a["data"]["topic"] == "whole:1" and "tags" not in a
        assert b["data"]["data_base64"] == "AAEC"
        await c.close()

    run(go())


def test_protocol_details(herald_factory):
    """issue 14 items 4-8: presence_stats shape, subscription types, epoch of
    a new topic, recovery with an empty epoch, flag 2 (error 112),
    sub_refresh, history reverse + since."""
    h = herald_factory(args=ARGS + ["--ws-anonymous"])

    async def go():
        a, _ = await connect(h, sub="u1")
        anon = await Client.open(h)
        await anon.call({"connect": {}})
        for c in (a, anon):
            await c.call({"subscribe": {"channel": "ps"}})
        r = await a.call({"presence_stats": {"channel": "ps"}})
        assert r["presence_stats"] == {"num_clients": 2, "num_users": 2}  # anonymous = one user
        await a.call({"unsubscribe": {"channel": "ps"}})
        await anon.call({"unsubscribe": {"channel": "ps"}})
        r = await a.call({"presence_stats": {"channel": "ps"}})
        assert r["presence_stats"] == {"num_clients": 0, "num_users": 0}
        await anon.close()
        # Map and shared-poll subscriptions are refused clearly.
        for t, kind in ((1, "map"), (4, "shared poll")):
            r = await a.call({"subscribe": {"channel": "m", "type": t}})
            assert r["error"]["code"] == 108 and kind in r["error"]["message"], r
        # A topic that does not exist yet still has an epoch.
        r = await a.call({"subscribe": {"channel": "fresh", "flag": 1}})
        new_epoch = r["subscribe"]["epoch"]
        assert new_epoch and r["subscribe"]["recoverable"] is True
        publish_ce(h, "fresh", 1, 2)
        assert pub_ids(await a.pubs(2)) == [(1, "e1"), (2, "e2")]
        await a.call({"unsubscribe": {"channel": "fresh"}})
        publish_ce(h, "fresh", 3, 1)
        # Recovering with the epoch of the then-new topic works once it exists.
        r = await a.call({"subscribe": {"channel": "fresh", "recover": True, "offset": 2, "epoch": new_epoch}})
        sub = r["subscribe"]
        assert sub["recovered"] is True and [p["offset"] for p in sub["publications"]] == [3]
        real_epoch = h.read("fresh").json()["epoch"]
        assert sub["epoch"] == real_epoch != new_epoch
        await a.call({"unsubscribe": {"channel": "fresh"}})
        # A position without its epoch names nothing: not recovered.
        r = await a.call({"subscribe": {"channel": "fresh", "recover": True, "offset": 2}})
        assert r["subscribe"]["was_recovering"] is True and "recovered" not in r["subscribe"]
        await a.call({"unsubscribe": {"channel": "fresh"}})
        # Offset 0 without an epoch (getState's "from the start") recovers everything kept.
        r = await a.call({"subscribe": {"channel": "fresh", "recover": True, "flag": 3}})
        assert [p["offset"] for p in r["subscribe"]["publications"]] == [1, 2, 3]
        await a.call({"unsubscribe": {"channel": "fresh"}})
        r = await a.call({"presence": {"channel": "nobody-here"}})
        assert r["presence"] == {"presence": {}}
        # With flag 2 (getState) an unrecoverable position is error 112, and no subscription.
        r = await a.call({"subscribe": {"channel": "fresh", "recover": True, "offset": 1, "epoch": "other",
                                        "flag": 3}})
        assert r["error"]["code"] == 112, r
        r = await a.call({"subscribe": {"channel": "fresh", "recover": True, "offset": 1,
                                        "epoch": real_epoch, "flag": 3}})
        assert r["subscribe"]["recovered"] is True
        # sub_refresh with a subscription token for the channel.
        r = await a.call({"sub_refresh": {"channel": "fresh", "token": token("u1", channel="fresh",
                                                                             exp=int(time.time()) + 60)}})
        assert r["sub_refresh"]["expires"] is True and 50 <= r["sub_refresh"]["ttl"] <= 60
        r = await a.call({"sub_refresh": {"channel": "fresh", "token": token("u1", channel="other")}})
        assert r["error"]["code"] == 103
        # History: reverse from a position gives the older ones, newest first.
        r = await a.call({"history": {"channel": "fresh", "limit": 2, "reverse": True,
                                      "since": {"offset": 3, "epoch": real_epoch}}})
        assert [p["offset"] for p in r["history"]["publications"]] == [2, 1] and r["history"]["offset"] == 3
        r = await a.call({"history": {"channel": "fresh", "limit": 5, "reverse": True, "since": {"offset": 1}}})
        assert "publications" not in r["history"] and r["history"]["offset"] == 3
        r = await a.call({"history": {"channel": "nothing-here", "limit": 5}})
        assert r["history"]["epoch"]
        await a.close()

    run(go())
