"""Proxies to the app backend (docs/proxy.md): herald POSTs connects without a
token, subscribes, publishes and RPCs, and refreshes a proxied connection's
and a proxied subscription's expiry, to a real HTTP backend started here on 127.0.0.1, driven by a real
Centrifugo-protocol client (wsclient.py). Each answer the backend can give: allowed, refused (error, disconnect), rewritten,
and the failures: down, too slow, HTTP 500, malformed JSON."""
import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import free_port, metric_value
from wsclient import Client, Closed, SECRET, connect, run, token

STATIC = "X-Herald-Key: s3cret-proxy-key"


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_POST(self):
        be = self.server.backend
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with be.lock:
            be.calls.append((self.path, {k.lower(): v for k, v in self.headers.items()}, json.loads(body)))
            answer = be.answers.get(self.path, (404, b"{}"))
        if callable(answer):
            answer = answer(json.loads(body))
        if answer == "hang":
            be.release.wait(30)  # until the test ends; herald gives up first
            return
        status, out = answer
        if isinstance(out, (dict, list)):
            out = json.dumps(out).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


class Backend:
    def __init__(self):
        self.calls = []
        self.answers = {}
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.srv.daemon_threads = True
        self.srv.backend = self
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.srv.server_address[1]}{path}"

    def calls_to(self, path):
        with self.lock:
            return [c for c in self.calls if c[0] == path]

    def close(self):
        self.release.set()
        self.srv.shutdown()
        self.srv.server_close()
        self.thread.join(10)


@pytest.fixture
def backend():
    b = Backend()
    yield b
    b.close()


def start(herald_factory, backend, *extra, kinds=("connect", "subscribe", "publish", "rpc"), private=True,
          name="data", config=None):
    args = ["--jwt-secret", SECRET, "--proxy-static-header", STATIC, "--proxy-http-headers", "Cookie, X-Real-Ip",
            "--proxy-timeout", "500ms"]
    for k in kinds:
        args += [f"--proxy-{k.replace('_', '-')}-url", backend.url("/" + k)]
    if private:
        args += ["--proxy-allow-private", "on"]
    return herald_factory(args=args + list(extra), name=name, config=config)


async def proxy_connect(h, data=None, headers=None):
    c = await Client.open(h, extra_headers=headers or {})
    cmd = {}
    if data is not None:
        cmd["data"] = data
    return c, await c.call({"connect": cmd})


def test_connect_proxy_says_who_the_user_is(herald_factory, backend):
    backend.answers["/connect"] = (200, {"result": {"user": "alice", "channels": ["news"], "info": {"n": 1},
                                                    "data": {"welcome": True}}})
    h = start(herald_factory, backend)

    async def go():
        c, r = await proxy_connect(h, data={"hello": [1, 2.50]},
                                   headers={"Cookie": "sid=abc", "X-Other": "no"})
        assert "connect" in r, r
        assert "news" in r["connect"].get("subs", {}) and "user:alice" in r["connect"]["subs"], r
        assert r["connect"]["data"] == {"welcome": True}, r
        (path, hdrs, body), = backend.calls_to("/connect")
        assert body["client"] == r["connect"]["client"]
        assert body["transport"] == "websocket" and body["protocol"] == "json" and body["encoding"] == "json"
        assert body["data"] == {"hello": [1, 2.50]}
        assert hdrs["cookie"] == "sid=abc" and "x-other" not in hdrs and "x-real-ip" not in hdrs
        assert hdrs["x-herald-key"] == "s3cret-proxy-key" and hdrs["content-type"] == "application/json"
        # The backend's user is the session's user: presence shows it.
        pr = await c.call({"presence": {"channel": "news"}})
        assert [v["user"] for v in pr["presence"]["presence"].values()] == ["alice"], pr
        # ... and the backend's info is the connection's conn_info there, as in Centrifugo.
        assert [v.get("conn_info") for v in pr["presence"]["presence"].values()] == [{"n": 1}], pr
        # The token's channels claim and the proxy's channels act alike: events arrive.
        assert h.publish("news", json.dumps({"x": 1}),
                         headers={"Content-Type": "application/json"}).status_code == 201
        (p,) = await c.pubs(1, channel="news")
        # A token still connects by JWT, without asking the backend.
        c2, r2 = await connect(h, sub="bob")
        assert len(backend.calls_to("/connect")) == 1
        await c.close()
        await c2.close()
    run(go())


def test_connect_refused_by_error_or_disconnect(herald_factory, backend):
    h = start(herald_factory, backend)

    async def go():
        backend.answers["/connect"] = (200, {"error": {"code": 1000, "message": "who are you?"}})
        c, r = await proxy_connect(h)
        assert r["error"] == {"code": 1000, "message": "who are you?"}, r
        await c.close()
        backend.answers["/connect"] = (200, {"disconnect": {"code": 4501, "reason": "banned"}})
        c, _ = await Client.open(h), None
        await c.send({"connect": {}})
        assert await c.closed() == (4501, "banned")
    run(go())


@pytest.mark.parametrize("failure", ["down", "timeout", "500", "malformed", "bad_code", "private"])
def test_backend_failures_are_error_100(herald_factory, backend, failure):
    if failure == "down":
        url = f"http://127.0.0.1:{free_port()}/connect"
        h = herald_factory(args=["--proxy-connect-url", url, "--proxy-allow-private", "on",
                                 "--proxy-timeout", "500ms"])
    else:
        backend.answers["/connect"] = {
            "timeout": "hang",
            "500": (500, {"result": {"user": "x"}}),
            "malformed": (200, b'{"result": {"user": "x"'),
            "bad_code": (200, {"error": {"code": 3500, "message": "not an app code"}}),
            "private": (200, {"result": {"user": "x"}}),
        }[failure]
        h = start(herald_factory, backend, private=failure != "private")

    async def go():
        c, r = await proxy_connect(h)
        assert r.get("error", {}).get("code") == 100 and r["error"].get("temporary") is True, r
        await c.close()
    run(go())
    assert metric_value(h, "herald_ws_proxy_failures_total") >= 1
    if failure == "private":
        assert backend.calls_to("/connect") == []


def test_subscribe_proxy_allows_and_refuses(herald_factory, backend):
    backend.answers["/subscribe"] = lambda b: ((200, {"result": {"data": {"ch": b["channel"]}}})
                                               if b["channel"].startswith("ok")
                                               else (200, {"error": {"code": 403, "message": "not yours"}}))
    h = start(herald_factory, backend, kinds=("subscribe",))

    async def go():
        c, _ = await connect(h, sub="u1")
        r = await c.call({"subscribe": {"channel": "ok.a", "data": {"why": "x"}}})
        assert r["subscribe"]["data"] == {"ch": "ok.a"}, r
        r = await c.call({"subscribe": {"channel": "secret"}})
        assert r["error"] == {"code": 403, "message": "not yours"}, r
        body = backend.calls_to("/subscribe")[0][2]
        assert body["user"] == "u1" and body["channel"] == "ok.a" and body["data"] == {"why": "x"}
        # Commands after a proxied one wait for it, in order.
        await c.send({"subscribe": {"channel": "ok.b"}}, {"subscribe": {"channel": "nope"}})
        assert "subscribe" in await c.reply(4) and (await c.reply(5))["error"]["code"] == 403
        assert h.publish("ok.a", json.dumps({"x": 1}),
                         headers={"Content-Type": "application/json"}).status_code == 201
        await c.pubs(1, channel="ok.a")
        await c.close()
    run(go())


def test_publish_proxy_checks_and_rewrites(herald_factory, backend):
    def answer(b):
        d = b["data"]
        if d.get("bad"):
            return 200, {"error": {"code": 1403, "message": "bad words"}}
        if d.get("crash"):
            return 500, b"oops"
        return 200, {"result": {"data": {"text": d["text"].upper(), "by": b["user"]}}}
    backend.answers["/publish"] = answer
    h = start(herald_factory, backend, kinds=("publish",))

    async def go():
        c, _ = await connect(h, sub="u1")
        assert "subscribe" in await c.call({"subscribe": {"channel": "chat"}})
        r = await c.call({"publish": {"channel": "chat", "data": {"text": "hi"}}})
        assert "publish" in r, r
        (p,) = await c.pubs(1, channel="chat")
        assert p["pub"]["data"] == {"text": "HI", "by": "u1"}, p
        r = await c.call({"publish": {"channel": "chat", "data": {"bad": 1}}})
        assert r["error"] == {"code": 1403, "message": "bad words"}, r
        r = await c.call({"publish": {"channel": "chat", "data": {"crash": 1}}})
        assert r["error"]["code"] == 100 and r["error"]["temporary"], r
        await c.quiet(0.2)
        await c.close()
    run(go())
    assert len(h.read_all("chat")) == 1


NS_PROXY_OFF = ("[namespace free]\nproxy-subscribe = off\nproxy-publish = off\nsubscribe = authenticated\n"
                "publish = none\n\n[namespace checked]\n")


def test_namespace_proxy_off_skips_the_backend(herald_factory, backend):
    # Centrifugo's subscribe_proxy_enabled / publish_proxy_enabled per
    # namespace: a namespace with proxy-subscribe = off / proxy-publish = off
    # is decided by herald's own rules alone; other namespaces still ask.
    backend.answers["/subscribe"] = (200, {"error": {"code": 403, "message": "not yours"}})
    backend.answers["/publish"] = (200, {"result": {"data": {"by": "backend"}}})
    h = start(herald_factory, backend, kinds=("subscribe", "publish"), config=NS_PROXY_OFF)

    async def go():
        c, _ = await connect(h, sub="u1")
        # free: allowed by herald's rules without the backend (which refuses all).
        r = await c.call({"subscribe": {"channel": "free:a"}})
        assert "subscribe" in r, r
        # ... and refused by herald's rules (publish = none) without asking it either.
        r = await c.call({"publish": {"channel": "free:a", "data": {"x": 1}}})
        assert r["error"]["code"] == 103, r
        assert backend.calls_to("/subscribe") == [] and backend.calls_to("/publish") == []
        # checked: the backend decides.
        r = await c.call({"subscribe": {"channel": "checked:a"}})
        assert r["error"] == {"code": 403, "message": "not yours"}, r
        r = await c.call({"publish": {"channel": "checked:a", "data": {"x": 1}}})
        assert "publish" in r, r
        assert [b["channel"] for _, _, b in backend.calls_to("/subscribe")] == ["checked:a"]
        assert [b["channel"] for _, _, b in backend.calls_to("/publish")] == ["checked:a"]
        await c.close()
    run(go())
    assert [e["data"] for e in h.read_all("checked:a")] == [{"by": "backend"}]
    assert h.read_all("free:a") == []


def test_rpc_proxy(herald_factory, backend):
    backend.answers["/rpc"] = lambda b: ((200, {"result": {"data": {"sum": sum(b["data"]["n"]), "m": b["method"]}}})
                                         if b["method"] == "add"
                                         else (200, {"error": {"code": 404, "message": "no such method"}}))
    h = start(herald_factory, backend, kinds=("rpc",))
    plain = herald_factory(args=["--jwt-secret", SECRET], name="plain")

    async def go():
        c, _ = await connect(h, sub="u1")
        r = await c.call({"rpc": {"method": "add", "data": {"n": [1, 2, 3]}}})
        assert r["rpc"] == {"data": {"sum": 6, "m": "add"}}, r
        r = await c.call({"rpc": {"method": "nope", "data": {}}})
        assert r["error"] == {"code": 404, "message": "no such method"}, r
        body = backend.calls_to("/rpc")[0][2]
        assert body["user"] == "u1" and body["method"] == "add"
        c2, _ = await connect(plain, sub="u1")
        r = await c2.call({"rpc": {"method": "add", "data": {}}})
        assert r["error"]["code"] == 108, r
        await c.close()
        await c2.close()
    run(go())


def test_bad_options_exit(herald_factory):
    h = herald_factory(args=["--proxy-connect-url", "http://127.0.0.1:1/c", "--proxy-static-header", "nocolon"],
                       start=False)
    import subprocess
    from conftest import BIN
    p = subprocess.run([BIN, "serve", "--listen", f"127.0.0.1:{free_port()}", "--data-dir", h.data_dir, *h.args],
                       capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode != 0 and b"--proxy-static-header" in p.stderr, p.stderr


def sdk_through_proxies(h, fmt, transport, connected, rpc, subscribed, pub):
    """Runs npm centrifuge (proxy_client.js: connect without a token, an
    RPC, a subscribe, a publish) against h and checks the data its
    connected, rpc, subscribed and pub events carry."""
    from test_interop_js import Node
    from wsclient import ws_url
    n = Node("proxy_client.js", {"HERALD_WS": ws_url(h), "HERALD_TOPIC": "sdk", "HERALD_FORMAT": fmt,
                                 "HERALD_TRANSPORT": transport})
    try:
        m, _ = n.expect(lambda m: m["ev"] == "connected", what="connected")
        assert m["data"] == connected, m
        m, _ = n.expect(lambda m: m["ev"] in ("rpc", "rpc_error"), what="rpc")
        assert m == {"ev": "rpc", "data": rpc}, m
        m, _ = n.expect(lambda m: m["ev"] == "subscribed", what="subscribed")
        assert m["data"] == subscribed, m
        m, _ = n.expect(lambda m: m["ev"] == "pub", what="pub")
        assert m["data"] == pub, m
    finally:
        n.quit()


@pytest.mark.parametrize("fmt,transport", [("json", "websocket"), ("protobuf", "websocket"),
                                           ("json", "http_stream"), ("protobuf", "http_stream")])
def test_centrifuge_sdk_through_every_proxy(herald_factory, backend, fmt, transport):
    """npm centrifuge (JSON and protobuf builds, WebSocket and HTTP-streaming)
    connects without a token, gets the backend's data, calls an RPC, and its
    publish comes back rewritten."""
    backend.answers["/connect"] = (200, {"result": {"user": "sdk-user", "data": {"hi": "from backend"}}})
    backend.answers["/subscribe"] = (200, {"result": {"data": {"sub": "ok"}}})
    backend.answers["/rpc"] = lambda b: (200, {"result": {"data": {"sum": sum(b["data"]["n"])}}})
    backend.answers["/publish"] = lambda b: (200, {"result": {"data": {"text": b["data"]["text"].upper()}}})
    h = start(herald_factory, backend)
    sdk_through_proxies(h, fmt, transport, connected={"hi": "from backend"}, rpc={"sum": 6},
                        subscribed={"sub": "ok"}, pub={"text": "HI"})
    (_, _, body), = backend.calls_to("/connect")
    assert body["transport"] == transport and body["data"] == {"hello": "backend"}
    assert body["protocol"] == ("protobuf" if fmt == "protobuf" else "json")
    assert backend.calls_to("/publish")[0][2]["user"] == "sdk-user"


def test_refresh_proxy_extends_updates_and_ends_a_connection(herald_factory, backend):
    # Centrifugo's refresh proxy: when the connect proxy's expire_at comes,
    # herald asks the backend, which extends the connection (and may change
    # its info) or ends it; the client is never told to refresh.
    refreshes = answer_refreshes(backend, {"expire_at": 2, "info": {"v": 2}}, {"expired": True}, expires=2,
                                 channels=["news"], info={"v": 1})
    h = start(herald_factory, backend, kinds=("connect", "refresh"))

    async def go():
        c, r = await proxy_connect(h)
        assert "connect" in r and "expires" not in r["connect"] and "ttl" not in r["connect"], r
        client = r["connect"]["client"]
        deadline = time.monotonic() + 10
        while not refreshes and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert refreshes, "no refresh call"
        # Extended: the connection stays and carries the new info.
        pr = await c.call({"presence": {"channel": "news"}})
        assert pr["presence"]["presence"][client]["conn_info"] == {"v": 2}, pr
        # The second answer ends it: closed as expired (3005).
        code, reason = await c.closed(timeout=10)
        assert (code, reason) == (3005, "expired")
        assert len(refreshes) == 2
        b = refreshes[0]
        assert b["client"] == client and b["user"] == "alice" and b["transport"] == "websocket", b
        assert b["protocol"] == "json" and "data" not in b and "channel" not in b

    run(go())


def test_refresh_proxy_failure_closes_reconnectably(herald_factory, backend):
    backend.answers["/connect"] = (200, {"result": {"user": "bob", "expire_at": int(time.time()) + 1}})
    backend.answers["/refresh"] = (500, b"oops")
    h = start(herald_factory, backend, kinds=("connect", "refresh"))

    async def go():
        c, r = await proxy_connect(h)
        assert "connect" in r, r
        code, reason = await c.closed(timeout=10)
        assert code == 3004, (code, reason)  # internal: the SDK reconnects
        assert len(backend.calls_to("/refresh")) == 1
        # Without a refresh proxy the client is told to refresh itself (ttl).
        backend.answers["/connect"] = (200, {"result": {"user": "bob", "expire_at": int(time.time()) + 60}})
        h2 = start(herald_factory, backend, kinds=("connect",), name="data2")
        c2, r2 = await proxy_connect(h2)
        assert r2["connect"]["expires"] is True and 0 < r2["connect"]["ttl"] <= 60, r2
        await c2.close()

    run(go())


def test_subscribe_info_is_chan_info_in_presence_join_and_leave(herald_factory, backend):
    # Centrifugo: the subscribe proxy's `info` is the subscription's
    # ClientInfo.chan_info (presence, join, leave); the connection's own
    # conn_info (the token's `info` claim) is carried next to it. Numbers
    # are copied byte for byte.
    backend.answers["/subscribe"] = lambda b: (200, {"result": {"info": {"seat": b["user"], "n": 1.50}}}
                                               if b["user"] != "carol" else {"result": {}})
    h = herald_factory(args=["--jwt-secret", SECRET, "--proxy-static-header", STATIC, "--proxy-allow-private", "on",
                             "--proxy-subscribe-url", backend.url("/subscribe")],
                       config="[namespace room]\njoin-leave = on\n", name="data2")

    async def go():
        a, ra = await connect(h, sub="alice", tok=token("alice", info={"name": "Ann"}))
        assert "subscribe" in await a.call({"subscribe": {"channel": "room:1", "join_leave": True}})
        b, rb = await connect(h, sub="bob")
        assert "subscribe" in await b.call({"subscribe": {"channel": "room:1"}})
        p = await a.push()
        assert p == {"channel": "room:1", "join": {"info": {"user": "bob", "client": rb["client"],
                                                            "chan_info": {"seat": "bob", "n": 1.50}}}}, p
        pr = await a.call({"presence": {"channel": "room:1"}})
        got = pr["presence"]["presence"]
        assert got[ra["client"]] == {"user": "alice", "client": ra["client"], "conn_info": {"name": "Ann"},
                                     "chan_info": {"seat": "alice", "n": 1.50}}, pr
        assert got[rb["client"]]["chan_info"] == {"seat": "bob", "n": 1.50}, pr
        # A subscription without info (carol's proxy answer has none) has no chan_info.
        c, rc = await connect(h, sub="carol")
        assert "subscribe" in await c.call({"subscribe": {"channel": "room:1"}})
        p = await a.push()
        assert p["join"]["info"] == {"user": "carol", "client": rc["client"]}, p
        await b.call({"unsubscribe": {"channel": "room:1"}})
        p = await a.push()
        assert p == {"channel": "room:1", "leave": {"info": {"user": "bob", "client": rb["client"],
                                                             "chan_info": {"seat": "bob", "n": 1.50}}}}, p
        await b.close()
        await c.close()
        p = await a.push()
        assert p["leave"]["info"] == {"user": "carol", "client": rc["client"]}, p
        await a.close()

    run(go())


def test_subscription_token_info_is_chan_info(herald_factory):
    # A subscription token's `info` claim is the subscription's chan_info;
    # one over 4 KiB is left out (as conn_info is).
    h = herald_factory(args=["--jwt-secret", SECRET],
                       config="[namespace priv]\nsubscribe = token\npresence-access = subscribed\njoin-leave = on\n")

    async def go():
        a, ra = await connect(h, sub="alice")
        st = token("alice", channel="priv:1", info={"role": "host"})
        assert "subscribe" in await a.call({"subscribe": {"channel": "priv:1", "token": st, "join_leave": True}})
        b, rb = await connect(h, sub="bob")
        big = token("bob", channel="priv:1", info={"pad": "x" * 5000})
        assert "subscribe" in await b.call({"subscribe": {"channel": "priv:1", "token": big}})
        p = await a.push()
        assert p["join"]["info"] == {"user": "bob", "client": rb["client"]}, p
        pr = await b.call({"presence": {"channel": "priv:1"}})
        got = pr["presence"]["presence"]
        assert got[ra["client"]]["chan_info"] == {"role": "host"}, pr
        assert "chan_info" not in got[rb["client"]], pr
        await a.close()
        await b.close()

    run(go())


def answer_refreshes(backend, first={"expire_at": 2}, later={}, expires=1, **connect):
    """The connect proxy says user alice (and connect's other members),
    whose connection expires in `expires` s; the first refresh answers the
    result `first` (by default: 2 s more), the later ones `later` (by
    default: no expiry); an expire_at there is in seconds from the call.
    Returns the list the refresh bodies are added to."""
    refreshes = []

    def at(result):
        if "expire_at" in result:
            return {**result, "expire_at": int(time.time()) + result["expire_at"]}
        return result

    def refresh(body):
        refreshes.append(body)
        return (200, {"result": at(first if len(refreshes) == 1 else later)})

    backend.answers["/connect"] = (200, {"result": {"user": "alice", "expire_at": int(time.time()) + expires,
                                                    **connect}})
    backend.answers["/refresh"] = refresh
    return refreshes


def test_refresh_proxy_tells_the_client_its_new_expiry(herald_factory, backend):
    # After a server-side refresh the client gets Centrifugo's refresh push
    # {"expires":true,"ttl":N}; an answer without expire_at says the
    # connection no longer expires ({"refresh":{}}: expires false).
    refreshes = answer_refreshes(backend)
    h = start(herald_factory, backend, kinds=("connect", "refresh"))

    async def go():
        c, r = await proxy_connect(h)
        assert "connect" in r, r
        p = await c.push(timeout=10)
        assert set(p) == {"refresh"} and p["refresh"]["expires"] is True and 0 < p["refresh"]["ttl"] <= 2, p
        p = await c.push(timeout=10)
        assert p == {"refresh": {}}, p
        assert len(refreshes) == 2
        # It no longer expires: still open and served.
        assert (await c.call({"presence_stats": {"channel": "x"}})).get("presence_stats") is not None
        await c.close()

    run(go())


def answer_sub_refreshes(backend, *answers, expires=2):
    """The subscribe proxy allows every channel, one that expires in
    `expires` s (an "old:" channel: 10 s ago) with info {"v": 1}; the sub
    refreshes answer `answers` in turn (the last one again after them): a
    result's expire_at is in seconds from the call, a (status, body) tuple
    is sent as it is (2 s, not 1: a second's boundary between the backend's
    clock and herald's must not make it past). Returns the list of (time,
    body) of the refresh calls."""
    calls = []

    def subscribe(b):
        exp = -10 if b["channel"].startswith("old:") else expires
        return 200, {"result": {"expire_at": int(time.time()) + exp, "info": {"v": 1}}}

    def sub_refresh(b):
        calls.append((time.monotonic(), b))
        a = answers[min(len(calls), len(answers)) - 1]
        if isinstance(a, tuple):
            return a
        if "expire_at" in a:
            a = {**a, "expire_at": int(time.time()) + a["expire_at"]}
        return 200, {"result": a}

    backend.answers["/subscribe"] = subscribe
    backend.answers["/sub_refresh"] = sub_refresh
    return calls


async def wait_calls(calls, n, timeout=10):
    deadline = time.monotonic() + timeout
    while len(calls) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert len(calls) >= n, calls


def test_sub_refresh_proxy_extends_updates_and_ends_a_subscription(herald_factory, backend):
    # Centrifugo's sub-refresh proxy: when the subscribe proxy's expire_at
    # comes, herald asks the backend, which extends the subscription (and
    # may change its chan_info) or ends it: the unsubscribe push 2501
    # "subscription expired", after which the SDK subscribes again. The
    # subscribe reply carries no expires/ttl: the client never refreshes it.
    calls = answer_sub_refreshes(backend, {"expire_at": 2, "info": {"v": 2}}, {"expired": True})
    h = start(herald_factory, backend, kinds=("subscribe", "sub_refresh"))

    async def go():
        c, rc = await connect(h, sub="u1")
        r = await c.call({"subscribe": {"channel": "room:1"}})
        assert "subscribe" in r and "expires" not in r["subscribe"] and "ttl" not in r["subscribe"], r
        # An expire_at already past refuses the subscribe (110), as Centrifugo.
        r = await c.call({"subscribe": {"channel": "old:1"}})
        assert r.get("error", {}).get("code") == 110, r
        await wait_calls(calls, 1)
        # Extended: still subscribed, with the new chan_info.
        pr = await c.call({"presence": {"channel": "room:1"}})
        assert pr["presence"]["presence"][rc["client"]]["chan_info"] == {"v": 2}, pr
        # The second answer ends it; the connection stays.
        p = await c.push(timeout=10)
        assert p == {"channel": "room:1", "unsubscribe": {"code": 2501, "reason": "subscription expired"}}, p
        assert len(calls) == 2 and calls[1][0] - calls[0][0] > 0.5, calls
        b = calls[0][1]
        assert b["client"] == rc["client"] and b["user"] == "u1" and b["channel"] == "room:1", b
        assert b["transport"] == "websocket" and b["protocol"] == "json" and "data" not in b, b
        pr = await c.call({"presence": {"channel": "room:1"}})
        assert rc["client"] not in pr["presence"]["presence"], pr
        assert h.publish("room:1", json.dumps({"x": 1}),
                         headers={"Content-Type": "application/json"}).status_code == 201
        await c.quiet(0.3)
        await c.close()

    run(go())


def test_namespace_sub_refresh_off_lets_the_subscription_expire(herald_factory, backend):
    # proxy-sub-refresh = off: a subscription whose subscribe-proxy expire_at
    # comes ends (2501) without a call to the sub-refresh proxy.
    calls = answer_sub_refreshes(backend, {"expire_at": 60}, expires=2)
    h = start(herald_factory, backend, kinds=("subscribe", "sub_refresh"),
              config="[namespace once]\nproxy-sub-refresh = off\n")

    async def go():
        c, _ = await connect(h, sub="u1")
        assert "subscribe" in await c.call({"subscribe": {"channel": "once:1"}})
        assert "subscribe" in await c.call({"subscribe": {"channel": "room:1"}})
        p = await c.push(timeout=10)
        assert p == {"channel": "once:1", "unsubscribe": {"code": 2501, "reason": "subscription expired"}}, p
        await wait_calls(calls, 1)
        assert [b["channel"] for _, b in calls] == ["room:1"], calls
        await c.close()
    run(go())


def test_sub_refresh_proxy_failure_keeps_the_subscription_and_asks_again(herald_factory, backend):
    # A failing backend (here HTTP 500) leaves the subscription, and herald
    # asks again --proxy-sub-refresh-retry later (Centrifugo: a minute);
    # an error answer ends it as expired (2501), a disconnect closes the
    # connection. Without a sub-refresh proxy the subscription ends at its
    # expire_at.
    calls = answer_sub_refreshes(backend, (500, b"oops"), (200, {"error": {"code": 1000, "message": "no"}}),
                                 (200, {"disconnect": {"code": 4001, "reason": "go away"}}))
    h = start(herald_factory, backend, "--proxy-sub-refresh-retry", "1s", kinds=("subscribe", "sub_refresh"))

    async def go():
        c, rc = await connect(h, sub="u1")
        assert "subscribe" in await c.call({"subscribe": {"channel": "room:1"}})
        await wait_calls(calls, 1)
        pr = await c.call({"presence": {"channel": "room:1"}})
        assert rc["client"] in pr["presence"]["presence"], pr
        assert metric_value(h, "herald_ws_proxy_failures_total") >= 1
        p = await c.push(timeout=10)
        assert p == {"channel": "room:1", "unsubscribe": {"code": 2501, "reason": "subscription expired"}}, p
        assert len(calls) == 2 and calls[1][0] - calls[0][0] >= 0.9, calls
        # Subscribed again: the third answer (disconnect) closes the connection.
        assert "subscribe" in await c.call({"subscribe": {"channel": "room:1"}})
        assert await c.closed(timeout=10) == (4001, "go away")
        # No sub-refresh proxy: the subscription simply ends when it expires.
        h2 = start(herald_factory, backend, kinds=("subscribe",), name="data2")
        c2, _ = await connect(h2, sub="u2")
        assert "subscribe" in await c2.call({"subscribe": {"channel": "room:2"}})
        p = await c2.push(timeout=10)
        assert p == {"channel": "room:2", "unsubscribe": {"code": 2501, "reason": "subscription expired"}}, p
        assert len(calls) == 3
        await c2.close()

    run(go())


@pytest.mark.parametrize("fmt", ["json", "protobuf"])
def test_centrifuge_sdk_resubscribes_after_sub_refresh_expired(herald_factory, backend, fmt):
    """npm centrifuge (JSON and protobuf): a subscription the sub-refresh
    proxy ends gets the unsubscribe push 2501; the SDK subscribes again by
    itself (asking the subscribe proxy again) and goes on receiving."""
    subscribes = []

    def subscribe(b):
        subscribes.append(b)
        exp = {"expire_at": int(time.time()) + 2} if len(subscribes) == 1 else {}
        return 200, {"result": {"data": {"n": len(subscribes)}, **exp}}
    backend.answers["/connect"] = (200, {"result": {"user": "sdk-user"}})
    backend.answers["/subscribe"] = subscribe
    backend.answers["/sub_refresh"] = (200, {"result": {"expired": True}})
    backend.answers["/rpc"] = (200, {"result": {"data": {}}})
    backend.answers["/publish"] = lambda b: (200, {"result": {}})
    h = start(herald_factory, backend, kinds=("connect", "subscribe", "publish", "rpc", "sub_refresh"))
    from test_interop_js import Node
    from wsclient import ws_url
    n = Node("proxy_client.js", {"HERALD_WS": ws_url(h), "HERALD_TOPIC": "sdk", "HERALD_FORMAT": fmt})
    try:
        m, _ = n.expect(lambda m: m["ev"] == "subscribed", what="subscribed")
        assert m["data"] == {"n": 1}, m
        m, _ = n.expect(lambda m: m["ev"] == "subscribing", what="subscribing")
        assert m == {"ev": "subscribing", "code": 2501, "reason": "subscription expired"}, m
        m, _ = n.expect(lambda m: m["ev"] == "subscribed", what="subscribed again")
        assert m["data"] == {"n": 2}, m
        n.expect(lambda m: m["ev"] == "pub", what="pub")  # its publish after subscribing again
    finally:
        n.quit()
    assert len(backend.calls_to("/sub_refresh")) == 1 and len(subscribes) == 2


def _b64(v):
    import base64
    return base64.b64encode(v if isinstance(v, bytes) else json.dumps(v).encode()).decode()


@pytest.mark.parametrize("fmt", ["json", "protobuf"])
def test_centrifuge_sdk_gets_b64data_of_every_proxy(herald_factory, backend, fmt):
    """Centrifugo's b64data (base64 of the bytes) in the connect, subscribe,
    rpc and publish answers: npm centrifuge (JSON and protobuf) gets the
    bytes; a publish answer's bytes are the publication's data."""
    backend.answers["/connect"] = (200, {"result": {"user": "sdk-user", "b64data": _b64({"hi": "b64"})}})
    backend.answers["/subscribe"] = (200, {"result": {"b64info": _b64({"seat": 3}), "data": {"no": 1},
                                                      "b64data": _b64({"sub": "b64"})}})
    backend.answers["/rpc"] = (200, {"result": {"b64data": _b64({"sum": 6})}})
    backend.answers["/publish"] = (200, {"result": {"data": {"no": 2}, "b64data": _b64({"text": "b64"})}})
    h = start(herald_factory, backend)
    sdk_through_proxies(h, fmt, "websocket", connected={"hi": "b64"}, rpc={"sum": 6}, subscribed={"sub": "b64"},
                        pub={"text": "b64"})


def test_subscribe_proxy_b64info_is_chan_info(herald_factory, backend):
    # b64info (base64 of a JSON text, at most 4 KiB) replaces info as the
    # subscription's chan_info; an answer whose b64 forms do not decode, or
    # whose b64data a JSON client cannot read, is a backend failure (100),
    # as Centrifugo answers ErrorInternal.
    def answer(b):
        ch = b["channel"]
        return 200, {"result": {
            "ok": {"b64info": _b64({"seat": b["user"]}), "b64data": _b64([1, 2])},
            "badinfo": {"b64info": "%%"},
            "notjsoninfo": {"b64info": _b64(b"\x00\xff")},
            "biginfo": {"b64info": _b64({"pad": "x" * 4096})},
            "baddata": {"b64data": "A"},
            "binary": {"b64data": _b64(b"\x00\xff")},
        }[ch.split(":")[1]]}
    backend.answers["/subscribe"] = answer
    backend.answers["/publish"] = (200, {"result": {"b64data": _b64({"x": 1})}})
    h = start(herald_factory, backend, kinds=("subscribe", "publish"))

    async def go():
        c, rc = await connect(h, sub="u1")
        r = await c.call({"subscribe": {"channel": "p:ok"}})
        assert r["subscribe"]["data"] == [1, 2], r
        pr = await c.call({"presence": {"channel": "p:ok"}})
        assert pr["presence"]["presence"][rc["client"]]["chan_info"] == {"seat": "u1"}, pr
        for ch in ("badinfo", "notjsoninfo", "biginfo", "baddata", "binary"):
            r = await c.call({"subscribe": {"channel": "p:" + ch}})
            assert r.get("error", {}).get("code") == 100, (ch, r)
        # A publish answer's b64data is the publication's data, stored as
        # JSON: bytes that are not JSON (or not base64) fail (100).
        r = await c.call({"publish": {"channel": "p:ok", "data": {"y": 1}}})
        assert "publish" in r, r
        h_ = await c.call({"history": {"channel": "p:ok", "limit": -1}})
        assert [p["data"] for p in h_["history"]["publications"]] == [{"x": 1}], h_
        for bad in (b"\x00\xff", "A"):
            backend.answers["/publish"] = (200, {"result": {"b64data": bad if isinstance(bad, str) else _b64(bad)}})
            r = await c.call({"publish": {"channel": "p:ok", "data": {"y": 1}}})
            assert r.get("error", {}).get("code") == 100, (bad, r)
        await c.close()
    run(go())


@pytest.mark.parametrize("fmt", ["json", "protobuf"])
def test_connect_proxy_subs_with_the_centrifuge_sdk(herald_factory, backend, fmt):
    """The connect proxy's result.subs acts as the connection token's subs
    claim (test_centrifugo_subs.py): npm centrifuge (JSON and protobuf)
    connects without a token and gets each server-side subscription with its
    data; presence and join carry each one's info as chan_info;
    override.force_push_join_leave gives it others' joins; override.join_leave
    announces its own join and leave (or not) instead of the namespace."""
    from test_centrifugo_subs import b64, js_client
    backend.answers["/connect"] = (200, {"result": {"user": "px", "info": {"name": "Px"}, "channels": ["news", "room:1"],
                                                    "subs": {
        "room:1": {"info": {"seat": 7, "n": 1.5}, "data": {"welcome": "room 1"},
                   "override": {"force_push_join_leave": {"value": True}}},
        "room:2": {"b64info": b64({"seat": 8}), "b64data": b64({"hello": [1, 2]})},
        # join-leave = on in room, but this one's join and leave are not announced;
        "room:3": {"override": {"join_leave": {"value": False}}},
        # off in the default namespace, but this one's are.
        "quiet:1": {"override": {"join_leave": {"value": True}}},
        "user:px": {"data": {"personal": True}},
    }}})
    h = start(herald_factory, backend, kinds=("connect",), config="[namespace room]\njoin-leave = on\n")

    async def go():
        w, rw = await connect(h, sub="watcher")
        for ch in ("room:1", "room:3", "quiet:1"):
            assert "subscribe" in await w.call({"subscribe": {"channel": ch, "join_leave": True}})
        n = js_client(h, "", fmt)
        try:
            m, _ = n.expect(lambda m: m["ev"] == "connected", what="connected")
            js = m["client"]
            subs = {m["channel"]: m["data"] for m in n.collect("subscribed", 6)}
            assert subs == {"room:1": {"welcome": "room 1"}, "room:2": {"hello": [1, 2]}, "room:3": None,
                            "quiet:1": None, "news": None, "user:px": {"personal": True}}, subs
            # Joins: room:1 with its chan_info, quiet:1 (override on), not
            # room:3 (override off): the next room:3 push is the visitor's.
            joins = [await w.push(), await w.push()]
            assert sorted(joins, key=lambda p: p["channel"]) == [
                {"channel": "quiet:1", "join": {"info": {"user": "px", "client": js, "conn_info": {"name": "Px"}}}},
                {"channel": "room:1", "join": {"info": {"user": "px", "client": js, "conn_info": {"name": "Px"},
                                                        "chan_info": {"seat": 7, "n": 1.5}}}}], joins
            n.send("presence room:2")
            m, _ = n.expect(lambda m: m["ev"].startswith("presence"), what="presence")
            assert m["clients"] == {js: {"user": "px", "client": js, "connInfo": {"name": "Px"},
                                         "chanInfo": {"seat": 8}}}, m
            # force_push_join_leave: the SDK sees a visitor join room:1.
            v, rv = await connect(h, sub="visitor")
            assert "subscribe" in await v.call({"subscribe": {"channel": "room:1"}})
            m, _ = n.expect(lambda m: m["ev"] == "join", what="join")
            assert m == {"ev": "join", "channel": "room:1", "info": {
                "user": "visitor", "client": rv["client"], "connInfo": None, "chanInfo": None}}, m
            assert (await w.push())["join"]["info"]["user"] == "visitor"
            assert "subscribe" in await v.call({"subscribe": {"channel": "room:3"}})
            p = await w.push()
            assert p["channel"] == "room:3" and p["join"]["info"]["user"] == "visitor", p
            await v.close()
            leaves = [await w.push(), await w.push()]
            assert sorted((p["channel"], p["leave"]["info"]["user"]) for p in leaves) == [
                ("room:1", "visitor"), ("room:3", "visitor")], leaves
        finally:
            n.quit()
        # The SDK went: leaves of room:1 and quiet:1, not of room:3; a
        # second visitor's join of room:3 comes next.
        leaves = [await w.push(), await w.push()]
        assert sorted((p["channel"], p["leave"]["info"]["client"]) for p in leaves) == [
            ("quiet:1", js), ("room:1", js)], leaves
        v2, rv2 = await connect(h, sub="visitor2")
        assert "subscribe" in await v2.call({"subscribe": {"channel": "room:3"}})
        p = await w.push()
        assert p["channel"] == "room:3" and p["join"]["info"]["user"] == "visitor2", p
        await v2.close()
        await w.close()

    run(go())


def test_connect_proxy_subs_refusals(herald_factory, backend):
    # A result.subs the token's subs claim would refuse (bad base64, a
    # b64info that is not JSON, over 4 KiB or 64 channels, an option of the
    # wrong type) is a backend failure (100), as a bad b64info is; a JSON
    # client cannot carry a subs entry's binary b64data (100), a protobuf
    # one gets the bytes (test_centrifugo_subs.py).
    bad = [
        {"a": {"b64info": "not base64!"}},
        {"a": {"b64data": "A"}},
        {"a": {"b64info": _b64(b"\x00\xff")}},
        {"a": {"b64info": _b64({"pad": "x" * 4096})}},
        {"a": {"override": 1}},
        {"a": {"override": {"join_leave": True}}},
        ["a"],
        {f"c{i}": {} for i in range(65)},
        {"a": {"b64data": _b64(b"\x00\xff")}},
    ]
    answers = iter(bad + [{f"c{i}": {} for i in range(64)}])
    backend.answers["/connect"] = lambda b: (200, {"result": {"user": "u", "subs": next(answers)}})
    h = start(herald_factory, backend, kinds=("connect",))

    async def go():
        for subs in bad:
            c, r = await proxy_connect(h)
            assert r.get("error", {}).get("code") == 100, (subs, r)
            if subs is not bad[-1]:
                await c.close()
        # The last one's session is still new: it connects again, and 64
        # channels (and user:u) are fine.
        r = await c.call({"connect": {}})
        assert len(r["connect"]["subs"]) == 65, r
        await c.close()
    run(go())
    assert metric_value(h, "herald_ws_proxy_failures_total") >= len(bad)
