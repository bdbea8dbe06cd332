"""Fossil delta compression on the WebSocket (docs/websocket.md, "Delta
compression"): a subscribe with delta "fossil" is answered delta:true, the
first publication comes whole and the next ones as deltas, which the SDK's
own fossil decoder (npm centrifuge under Node) turns back into the data,
also across recovery and with non-ASCII, binary and missing data; a raw
client sees the wire shape; subscribers without delta are unaffected;
server-side subscriptions (connect.subs) negotiate delta too."""
import asyncio
import json

import pytest

from conftest import per_test_timeout, structured
from test_interop_js import Node
from wsclient import SECRET, connect, run, token, ws_url

_timeout = per_test_timeout(90)

CE = {"Content-Type": "application/cloudevents+json"}


def pub(h, topic, id_, **extra):
    r = h.publish(topic, json.dumps(structured(id_, **extra)), headers=CE)
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("fmt", ["json", "protobuf"])
def test_sdk_applies_herald_deltas(herald_factory, fmt):
    h = herald_factory(args=["--jwt-secret", SECRET])
    n = Node("centrifuge_client.js", {"HERALD_WS": ws_url(h), "HERALD_TOKEN": token("u1"), "HERALD_TOPIC": "d",
                                      "HERALD_DELTA": "1", "HERALD_FORMAT": fmt})
    try:
        n.expect(lambda m: m["ev"] == "subscribed", what="subscribed")
        pad = "x" * 500
        datas = [{"i": i, "pad": pad, "name": "caf\u00e9 \u20ac" + "\u00e9" * (i % 3)} for i in range(6)]
        datas += ["plain text", None, {"i": 99, "pad": pad}]
        for i, d in enumerate(datas):
            if d is None:
                pub(h, "d", f"e{i}", data_base64="AAEC")
            else:
                pub(h, "d", f"e{i}", data=d)
        got = n.collect("pub", len(datas))
        want = [d if d is not None else "AAEC" for d in datas]
        assert [m["data"] for m in got] == want
        assert [m["id"] for m in got] == [f"e{i}" for i in range(len(datas))]
        n.send("stats")
        st, _ = n.expect(lambda m: m["ev"] == "stats")
        st = st["stats"]
        assert st["numPublications"] == len(datas) and st["numFullPayloads"] >= 1
        assert st["numDeltaPayloads"] >= 5 and st["bytesReceived"] < st["bytesDecoded"], st
        # Recovery: the recovered publications are whole, the next live one a delta from the last.
        n.send("disconnect")
        for i in range(3):
            pub(h, "d", f"r{i}", data={"r": i, "pad": pad})
        n.send("connect")
        m, _ = n.expect(lambda m: m["ev"] == "subscribed" and m["wasRecovering"], what="resubscribed")
        assert m["recovered"], m
        got = n.collect("pub", 3)
        pub(h, "d", "live", data={"r": 3, "pad": pad})
        got += n.collect("pub", 1)
        assert [m["data"] for m in got] == [{"r": i, "pad": pad} for i in range(4)]
    finally:
        n.quit()


def test_wire_shape_and_plain_subscribers(herald_factory):
    h = herald_factory(args=["--jwt-secret", SECRET])

    async def go():
        d, _ = await connect(h, sub="u1")
        plain, _ = await connect(h, sub="u2")
        r = await d.call({"subscribe": {"channel": "w", "delta": "fossil"}})
        assert r["subscribe"]["delta"] is True
        r = await plain.call({"subscribe": {"channel": "w"}})
        assert "delta" not in r["subscribe"]
        r = await plain.call({"subscribe": {"channel": "w2", "delta": "zstd"}})
        assert "delta" not in r["subscribe"]  # not a type herald knows: not negotiated
        pad = "y" * 300
        for i in range(3):
            pub(h, "w", f"w{i}", data={"n": i, "pad": pad})
        a = [p["pub"] for p in await d.pubs(3)]
        assert a[0]["data"] == json.dumps({"n": 0, "pad": pad}, separators=(",", ":")) and "delta" not in a[0]
        assert a[1]["delta"] is True and a[2]["delta"] is True
        assert len(a[1]["data"]) < 40 and a[1]["tags"]["id"] == "w1"
        b = [p["pub"] for p in await plain.pubs(3)]
        assert [x["data"] for x in b] == [{"n": i, "pad": pad} for i in range(3)]
        await d.close()
        await plain.close()

    run(go())


def test_server_side_subscriptions_honour_delta(herald_factory):
    # connect.subs entries are SubscribeRequests: one that asks for "fossil"
    # gets delta compression on that server-side subscription (the token's
    # channels claim), also when it recovers; the others are unaffected.
    h = herald_factory(args=["--jwt-secret", SECRET])
    pad = "z" * 300

    async def go():
        tok = token("u1", channels=["srv"])
        d, rd = await connect(h, tok=tok, subs={"srv": {"delta": "fossil"}})
        plain, rp = await connect(h, tok=token("u2", channels=["srv"]), subs={"srv": {"delta": "zstd"}})
        assert rd["subs"]["srv"]["delta"] is True, rd
        assert "delta" not in rd["subs"]["user:u1"]  # not asked for there
        assert "delta" not in rp["subs"]["srv"], rp  # not a type herald knows: not negotiated
        for i in range(3):
            pub(h, "srv", f"s{i}", data={"n": i, "pad": pad})
        a = [p["pub"] for p in await d.pubs(3, channel="srv")]
        assert a[0]["data"] == json.dumps({"n": 0, "pad": pad}, separators=(",", ":")) and "delta" not in a[0]
        assert a[1]["delta"] is True and a[2]["delta"] is True and len(a[1]["data"]) < 40, a
        b = [p["pub"] for p in await plain.pubs(3, channel="srv")]
        assert [x["data"] for x in b] == [{"n": i, "pad": pad} for i in range(3)]
        await d.close()
        # Recovering with delta: the missed publications come whole (the SDK's
        # delta base), the next live one as a delta from the last of them.
        for i in range(3, 5):
            pub(h, "srv", f"s{i}", data={"n": i, "pad": pad})
        sub = {"recover": True, "offset": a[2]["offset"], "epoch": rd["subs"]["srv"]["epoch"], "delta": "fossil"}
        d, rd = await connect(h, tok=tok, subs={"srv": sub})
        s = rd["subs"]["srv"]
        assert s["delta"] is True and s["recovered"] is True, s
        assert [x["data"] for x in s["publications"]] == [
            json.dumps({"n": i, "pad": pad}, separators=(",", ":")) for i in (3, 4)], s
        pub(h, "srv", "s5", data={"n": 5, "pad": pad})
        (live,) = [p["pub"] for p in await d.pubs(1, channel="srv")]
        assert live["delta"] is True and len(live["data"]) < 40, live
        await d.close()
        await plain.close()

    run(go())
