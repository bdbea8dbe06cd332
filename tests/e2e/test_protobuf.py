"""The protobuf format of the Centrifugo client protocol on
/connection/websocket: npm centrifuge's protobuf build makes every call the
JSON build makes and gets the same answers; JSON and protobuf subscribers of
one topic get the same events in the same order while each event is encoded
once per format (not per subscriber); raw binary frames (several commands
per frame, the subprotocol and ?format=protobuf, refusals) from Python. The
recovery scenarios run in both formats in test_interop_js.py."""
import asyncio
import json

import websockets

from conftest import metric_value, per_test_timeout, publish_ce
from test_interop_js import Node
from wsclient import SECRET, token, ws_url

_timeout = per_test_timeout(120)


def run_calls(h, fmt, topic, user):
    n = Node("centrifuge_calls.js", {"HERALD_WS": ws_url(h), "HERALD_TOKEN": token(user),
                                     "HERALD_TOPIC": topic, "HERALD_FORMAT": fmt})
    try:
        res = {}
        while "pubs" not in res:
            m, _ = n.expect(lambda m: m["ev"] in ("connected", "history", "presence", "presence_stats",
                                                   "rpc", "pubs", "fatal"), what=f"{fmt} results")
            assert m["ev"] != "fatal", m
            res[m["ev"]] = m
        return res
    finally:
        n.quit()


def test_sdk_calls_answer_alike_in_both_formats(herald_factory):
    h = herald_factory(args=["--jwt-secret", SECRET])
    js = run_calls(h, "json", "calls:json", "uj")
    pb = run_calls(h, "protobuf", "calls:pb", "up")
    for r, user in ((js, "uj"), (pb, "up")):
        assert [p["offset"] for p in r["history"]["pubs"]] == [1, 2, 3], r
        assert r["history"]["offset"] == 3 and r["history"]["epoch"]
        assert [p["offset"] for p in r["pubs"]["pubs"]] == [1, 2, 3], r
        assert r["presence"]["clients"] == [r["connected"]["client"]] and r["presence"]["users"] == [user]
        assert r["presence_stats"]["numClients"] == 1
    # The same payloads reach both, in history and live.
    for r in (js, pb):
        assert [p["data"] for p in r["history"]["pubs"]] == [{"n": 1}, {"n": 2}, {"n": 3}]
        assert [p["data"] for p in r["pubs"]["pubs"]] == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert js["presence_stats"] == pb["presence_stats"]
    assert js["rpc"] == pb["rpc"] and "error" in js["rpc"]


def test_json_and_protobuf_subscribers_get_the_same_events_encoded_once_per_format(herald_factory):
    h = herald_factory(args=["--jwt-secret", SECRET])
    nodes = []
    try:
        for i, fmt in enumerate(["json", "json", "protobuf", "protobuf"]):
            nodes.append(Node("centrifuge_client.js", {"HERALD_WS": ws_url(h), "HERALD_TOKEN": token(f"m{i}"),
                                                       "HERALD_TOPIC": "mix", "HERALD_FORMAT": fmt}))
            if fmt == "json":
                nodes[-1].expect(lambda m: m["ev"] == "subscribed", what="json subscribed")
        # Only JSON subscribers: nothing is encoded for protobuf.
        before = metric_value(h, "herald_ws_push_encodes_total")
        publish_ce(h, "mix", 1, 5)
        got = [n.collect("pub", 5) for n in nodes[:2]]
        assert metric_value(h, "herald_ws_push_encodes_total") - before == 5
        for n in nodes[2:]:
            m, _ = n.expect(lambda m: m["ev"] == "subscribed", what="protobuf subscribed")
        # Both formats, two subscribers each: two encodings per event.
        before = metric_value(h, "herald_ws_push_encodes_total")
        publish_ce(h, "mix", 6, 50)
        got = [g + n.collect("pub", 50) for g, n in zip(got, nodes[:2])] + [n.collect("pub", 50) for n in nodes[2:]]
        assert metric_value(h, "herald_ws_push_encodes_total") - before == 100
        want = [(i, f"e{i}") for i in range(1, 56)]
        for g in got[:2]:
            assert [(m["offset"], m["id"]) for m in g] == want
        for g in got[2:]:
            assert [(m["offset"], m["id"]) for m in g] == want[5:]
    finally:
        for n in nodes:
            n.quit()


# ---- raw frames ----------------------------------------------------------

def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def field(num, value):
    """A field: int → varint, bytes/str → length-delimited."""
    if isinstance(value, int):
        return varint(num << 3) + varint(value)
    if isinstance(value, str):
        value = value.encode()
    return varint(num << 3 | 2) + varint(len(value)) + value


def delimited(*msgs):
    return b"".join(varint(len(m)) + m for m in msgs)


def read_varint(b, i):
    v = shift = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return v, i


def parse(b):
    """A message as {field number: [values]} (varints as int, the rest as bytes)."""
    out, i = {}, 0
    while i < len(b):
        tag, i = read_varint(b, i)
        if tag & 7 == 0:
            v, i = read_varint(b, i)
        else:
            n, i = read_varint(b, i)
            v, i = bytes(b[i:i + n]), i + n
        out.setdefault(tag >> 3, []).append(v)
    return out


def split(frame):
    msgs, i = [], 0
    while i < len(frame):
        n, i = read_varint(frame, i)
        msgs.append(bytes(frame[i:i + n]))
        i += n
    return msgs


async def replies(ws, n):
    got = []
    while len(got) < n:
        frame = await asyncio.wait_for(ws.recv(), 10)
        assert isinstance(frame, bytes), frame
        got += [parse(m) for m in split(frame) if m]  # an empty one is the server's ping
    return got


def test_raw_binary_frames(herald_factory):
    h = herald_factory(args=["--jwt-secret", SECRET])

    async def go():
        ws = await websockets.connect(ws_url(h), subprotocols=["centrifuge-protobuf"])
        assert ws.subprotocol == "centrifuge-protobuf"
        # connect and subscribe in one frame
        connect = field(1, 1) + field(4, field(1, token("raw")))
        subscribe = field(1, 2) + field(5, field(1, "raw"))
        await ws.send(delimited(connect, subscribe))
        r = await replies(ws, 2)
        assert r[0][1] == [1] and 5 in r[0], r
        client = parse(r[0][5][0])[1][0].decode()
        assert len(client) == 36
        assert r[1][1] == [2] and 6 in r[1], r
        sub = parse(r[1][6][0])
        assert sub[3] == [1] and sub[10] == [1]  # recoverable, positioned
        publish_ce(h, "raw", 1, 1)
        (push,) = await replies(ws, 1)
        p = parse(push[4][0])
        assert p[2] == [b"raw"]
        pub = parse(p[4][0])
        assert pub[6] == [1]
        tags = {parse(t)[1][0]: parse(t)[2][0] for t in pub[7]}
        assert tags[b"id"] == b"e1" and tags[b"type"] == b"com.example.test", tags
        # A command with an unknown method field answers 104 like JSON.
        await ws.send(delimited(field(1, 3) + field(99, b"")))
        (r,) = await replies(ws, 1)
        assert parse(r[2][0])[1] == [104]
        # A text frame on a protobuf connection ends it with 3501.
        await ws.send("{}")
        try:
            await asyncio.wait_for(ws.recv(), 10)
            raise AssertionError("not closed")
        except websockets.ConnectionClosed as e:
            assert e.rcvd.code == 3501, e

        # ?format=protobuf without the subprotocol; a cut-short frame ends it.
        ws = await websockets.connect(ws_url(h) + "?format=protobuf")
        assert ws.subprotocol is None
        await ws.send(delimited(field(1, 1) + field(4, field(1, token("raw2")))))
        (r,) = await replies(ws, 1)
        assert 5 in r, r
        await ws.send(b"\x05\x01")
        try:
            await asyncio.wait_for(ws.recv(), 10)
            raise AssertionError("not closed")
        except websockets.ConnectionClosed as e:
            assert e.rcvd.code == 3501, e

        # JSON stays JSON: a binary frame there is refused.
        ws = await websockets.connect(ws_url(h), subprotocols=["centrifuge-json"])
        assert ws.subprotocol == "centrifuge-json"
        await ws.send(b"\x00")
        try:
            await asyncio.wait_for(ws.recv(), 10)
            raise AssertionError("not closed")
        except websockets.ConnectionClosed as e:
            assert e.rcvd.code == 3501, e

    asyncio.run(asyncio.wait_for(go(), 60))
