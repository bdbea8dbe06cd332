"""Centrifugo's connection token `subs` claim and the `b64info`/`b64data`
forms, seen through clients (docs/websocket.md "Connecting"): the npm
centrifuge SDK (JSON and its protobuf build) gets its server-side
subscriptions with their data, presence and join/leave carry each one's
info as chan_info, publications arrive; raw JSON clients check the
refusals (bad base64, too long, binary data for a JSON client) and a
subscription token's b64info. The subscribe proxy's b64info/b64data are in
test_app_proxy.py."""
import base64
import json

import pytest

from conftest import per_test_timeout, publish_ce
from test_interop_js import Node
from wsclient import SECRET, Client, Closed, connect, run, token, ws_url

_timeout = per_test_timeout(90)

CONFIG = "[namespace room]\njoin-leave = on\n"


def b64(v):
    raw = v if isinstance(v, bytes) else json.dumps(v).encode()
    return base64.b64encode(raw).decode()


def js_client(h, tok, fmt):
    return Node("server_subs_client.js", {"HERALD_WS": ws_url(h), "HERALD_TOKEN": tok, "HERALD_FORMAT": fmt,
                                          "HERALD_TRANSPORT": "websocket"})


@pytest.mark.parametrize("fmt", ["json", "protobuf"])
def test_subs_claim_with_the_centrifuge_sdk(herald_factory, fmt):
    h = herald_factory(args=["--jwt-secret", SECRET], config=CONFIG)
    tok = token("js", info={"name": "Jo"}, channels=["news", "room:1"], subs={
        "room:1": {"info": {"seat": 7, "n": 1.5}, "data": {"welcome": "room 1"},
                   "override": {"force_push_join_leave": {"value": True}}},
        "room:2": {"b64info": b64({"seat": 8}), "b64data": b64({"hello": [1, 2]})},
        # The personal channel takes its options too.
        "user:js": {"data": {"personal": True}},
    })

    async def go():
        # A watcher of room:1 that asked for join/leave.
        w, rw = await connect(h, sub="watcher")
        assert "subscribe" in await w.call({"subscribe": {"channel": "room:1", "join_leave": True}})
        n = js_client(h, tok, fmt)
        try:
            m, _ = n.expect(lambda m: m["ev"] == "connected", what="connected")
            js = m["client"]
            subs = {m["channel"]: m["data"] for m in n.collect("subscribed", 4)}
            # The subs claim's data is the subscribed event's data; channels'
            # (and user:js) have none.
            assert subs == {"room:1": {"welcome": "room 1"}, "room:2": {"hello": [1, 2]},
                            "news": None, "user:js": {"personal": True}}, subs
            # The server-side subscription joined room:1 with its info.
            p = await w.push()
            assert p == {"channel": "room:1", "join": {"info": {
                "user": "js", "client": js, "conn_info": {"name": "Jo"}, "chan_info": {"seat": 7, "n": 1.5}}}}, p
            # Presence shows each subscription's info as chanInfo.
            n.send("presence room:2")
            m, _ = n.expect(lambda m: m["ev"].startswith("presence"), what="presence")
            assert m["clients"] == {js: {"user": "js", "client": js, "connInfo": {"name": "Jo"},
                                         "chanInfo": {"seat": 8}}}, m
            n.send("presence room:1")
            m, _ = n.expect(lambda m: m["ev"].startswith("presence"), what="presence")
            assert m["clients"][js]["chanInfo"] == {"seat": 7, "n": 1.5}, m
            assert "chanInfo" not in m["clients"][rw["client"]] or m["clients"][rw["client"]]["chanInfo"] is None
            # Publications of a server-side subscription reach the client.
            publish_ce(h, "room:2", 1, 1)
            m, _ = n.expect(lambda m: m["ev"] == "pub", what="pub")
            assert m["channel"] == "room:2", m
            # override.force_push_join_leave: the client sees others join room:1.
            v, rv = await connect(h, sub="visitor")
            assert "subscribe" in await v.call({"subscribe": {"channel": "room:1"}})
            m, _ = n.expect(lambda m: m["ev"] == "join", what="join")
            assert m == {"ev": "join", "channel": "room:1", "info": {
                "user": "visitor", "client": rv["client"], "connInfo": None, "chanInfo": None}}, m
            p = await w.push()
            assert p["join"]["info"]["user"] == "visitor", p
            await v.close()
            m, _ = n.expect(lambda m: m["ev"] == "leave", what="leave")
            assert m["info"]["client"] == rv["client"], m
            p = await w.push()
            assert p["leave"]["info"]["user"] == "visitor", p
        finally:
            n.quit()
        # The client went: the watcher sees its server-side subscription leave.
        p = await w.push()
        assert p == {"channel": "room:1", "leave": {"info": {
            "user": "js", "client": js, "conn_info": {"name": "Jo"}, "chan_info": {"seat": 7, "n": 1.5}}}}, p
        await w.close()

    run(go())


def test_binary_b64data_for_protobuf_only(herald_factory):
    # b64data that is not JSON: a protobuf client gets the bytes; a JSON
    # client cannot carry them, and its connect is refused (3500).
    h = herald_factory(args=["--jwt-secret", SECRET])
    tok = token("bin", subs={"bytes:1": {"b64data": b64(b"\x00\xff\x10")}})
    n = js_client(h, tok, "protobuf")
    try:
        n.expect(lambda m: m["ev"] == "connected", what="connected")
        subs = {m["channel"]: m["data"] for m in n.collect("subscribed", 2)}
        assert subs == {"bytes:1": {"hex": "00ff10"}, "user:bin": None}, subs
    finally:
        n.quit()

    async def go():
        c = await Client.open(h)
        await c.send({"connect": {"token": tok}})
        code, reason = await c.closed()
        assert code == 3500 and "b64data" in reason, (code, reason)

    run(go())


def test_bad_b64_forms_are_invalid_tokens(herald_factory):
    # As Centrifugo: a token whose b64 claims do not decode is an invalid
    # token (close 3500); herald also refuses b64info that is not JSON or
    # decodes to more than 4 KiB.
    h = herald_factory(args=["--jwt-secret", SECRET])
    bad = [
        token("u", b64info="e30*"),
        token("u", b64info=b64(b"\x00\xff")),
        token("u", b64info=b64({"pad": "x" * 4096})),
        token("u", subs={"a": {"b64info": "not base64!"}}),
        token("u", subs={"a": {"b64data": "A"}}),
        token("u", subs={"a": {"override": 1}}),
        token("u", subs=["a"]),
    ]

    async def go():
        for t in bad:
            c = await Client.open(h)
            await c.send({"connect": {"token": t}})
            code, reason = await c.closed()
            assert code == 3500, (code, reason)
        # A good b64info is the conn_info; "" is none (Go's omitempty).
        a, ra = await connect(h, sub="a", tok=token("a", b64info=b64({"x": [1]}), channels=["lobby"]))
        b, rb = await connect(h, sub="b", tok=token("b", b64info="", info={"y": 2}))
        pr = await b.call({"presence": {"channel": "lobby"}})
        assert pr["presence"]["presence"] == {ra["client"]: {"user": "a", "client": ra["client"],
                                                             "conn_info": {"x": [1]}}}, pr
        await a.close()
        await b.close()

    run(go())


def test_subscription_token_b64info(herald_factory):
    # A subscription token's b64info is the subscription's chan_info (it
    # replaces info); a bad one refuses the subscribe (103).
    h = herald_factory(args=["--jwt-secret", SECRET], config="[namespace priv]\nsubscribe = token\npresence-access = subscribed\n")

    async def go():
        a, ra = await connect(h, sub="alice")
        st = token("alice", channel="priv:1", info={"no": 1}, b64info=b64({"role": "host"}))
        r = await a.call({"subscribe": {"channel": "priv:1", "token": st}})
        assert "subscribe" in r, r
        pr = await a.call({"presence": {"channel": "priv:1"}})
        assert pr["presence"]["presence"][ra["client"]]["chan_info"] == {"role": "host"}, pr
        b, _ = await connect(h, sub="bob")
        r = await b.call({"subscribe": {"channel": "priv:1",
                                        "token": token("bob", channel="priv:1", b64info="%%%")}})
        assert r["error"]["code"] == 103, r
        await a.close()
        await b.close()

    run(go())
