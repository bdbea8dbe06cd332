"""The protobuf format of the Centrifugo client protocol, and the SDK's
emulation transports (HTTP-streaming and SSE with /emulation): npm
centrifuge (JSON and its protobuf build, over each carrier) makes every
call and gets the same answers; subscribers of every kind on one topic get
the same events in the same order while each event is encoded once per
kind (not per subscriber); raw binary frames (several commands per frame,
the subprotocol and ?format=protobuf, refusals) and raw emulation requests
from Python. The recovery scenarios run over every kind in
test_interop_js.py."""
import asyncio
import json

import pytest
import requests
import websockets

from conftest import metric_value, per_test_timeout, publish_ce
from test_interop_js import Node
from wsclient import SECRET, token, ws_url

_timeout = per_test_timeout(120)


# (format, carrier): every kind of session the SDK can open.
KINDS = [("json", "websocket"), ("protobuf", "websocket"), ("json", "http_stream"),
         ("protobuf", "http_stream"), ("json", "sse")]


def run_calls(h, fmt, transport, topic, user):
    n = Node("centrifuge_calls.js", {"HERALD_WS": ws_url(h), "HERALD_TOKEN": token(user),
                                     "HERALD_TOPIC": topic, "HERALD_FORMAT": fmt,
                                     "HERALD_TRANSPORT": transport})
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


@pytest.mark.parametrize("fmt,transport", KINDS[1:])
def test_sdk_calls_answer_alike(herald_factory, fmt, transport):
    """Each kind answers as the JSON WebSocket does."""
    h = herald_factory(args=["--jwt-secret", SECRET])
    js = run_calls(h, "json", "websocket", "calls:json", "uj")
    pb = run_calls(h, fmt, transport, "calls:other", "up")
    assert pb["connected"]["transport"] == transport
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


def test_every_kind_of_subscriber_gets_the_same_events_encoded_once_per_kind(herald_factory):
    h = herald_factory(args=["--jwt-secret", SECRET])
    nodes = []

    def start(i, fmt, transport):
        nodes.append(Node("centrifuge_client.js", {"HERALD_WS": ws_url(h), "HERALD_TOKEN": token(f"m{i}"),
                                                   "HERALD_TOPIC": "mix", "HERALD_FORMAT": fmt,
                                                   "HERALD_TRANSPORT": transport}))
    try:
        # Two JSON WebSocket subscribers first: nothing else is encoded.
        for i in range(2):
            start(i, "json", "websocket")
            nodes[-1].expect(lambda m: m["ev"] == "subscribed", what="json subscribed")
        before = metric_value(h, "herald_ws_push_encodes_total")
        publish_ce(h, "mix", 1, 5)
        got = [n.collect("pub", 5) for n in nodes[:2]]
        assert metric_value(h, "herald_ws_push_encodes_total") - before == 5
        # Then two protobuf WebSocket ones and one of each emulated kind.
        for i, (fmt, transport) in enumerate([KINDS[1]] + KINDS[1:], start=2):
            start(i, fmt, transport)
        for n in nodes[2:]:
            n.expect(lambda m: m["ev"] == "subscribed", what="subscribed")
        # Five kinds, seven subscribers: five encodings per event.
        before = metric_value(h, "herald_ws_push_encodes_total")
        publish_ce(h, "mix", 6, 50)
        got = [g + n.collect("pub", 50) for g, n in zip(got, nodes[:2])] + [n.collect("pub", 50) for n in nodes[2:]]
        assert metric_value(h, "herald_ws_push_encodes_total") - before == 5 * 50
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


async def closed_with(ws, code):
    """Waits for the server to close ws; asserts its close code."""
    try:
        await asyncio.wait_for(ws.recv(), 10)
        raise AssertionError("not closed")
    except websockets.ConnectionClosed as e:
        assert e.rcvd.code == code, e


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
        await closed_with(ws, 3501)

        # ?format=protobuf without the subprotocol; a cut-short frame ends it.
        ws = await websockets.connect(ws_url(h) + "?format=protobuf")
        assert ws.subprotocol is None
        await ws.send(delimited(field(1, 1) + field(4, field(1, token("raw2")))))
        (r,) = await replies(ws, 1)
        assert 5 in r, r
        await ws.send(b"\x05\x01")
        await closed_with(ws, 3501)

        # JSON stays JSON: a binary frame there is refused.
        ws = await websockets.connect(ws_url(h), subprotocols=["centrifuge-json"])
        assert ws.subprotocol == "centrifuge-json"
        await ws.send(b"\x00")
        await closed_with(ws, 3501)

    asyncio.run(asyncio.wait_for(go(), 60))


def test_raw_emulation_requests(herald_factory):
    h = herald_factory(args=["--jwt-secret", SECRET])
    # An unknown session: 404 (the SDK reconnects); malformed requests: 400.
    r = requests.post(f"{h.url}/emulation", json={"session": "nope", "node": "n", "data": "{}"}, timeout=10)
    assert r.status_code == 404, r.text
    r = requests.post(f"{h.url}/emulation", data=b"not json", timeout=10)
    assert r.status_code == 400, r.text
    r = requests.post(f"{h.url}/emulation", data=b"\x12\x01", timeout=10,
                      headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 400, r.text
    r = requests.post(f"{h.url}/connection/http_stream", data=b"\x05\x01", timeout=10,
                      headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 400, r.text
    r = requests.get(f"{h.url}/connection/sse", timeout=10)
    assert r.status_code == 400, r.text

    # A JSON HTTP stream: the connect reply carries a session, which
    # /emulation names to subscribe; a bad command there ends the stream
    # with a disconnect push.
    connect = '{"id":1,"connect":{"token":"%s"}}' % token("emu")
    with requests.post(f"{h.url}/connection/http_stream", data=connect, stream=True, timeout=10,
                       headers={"Content-Type": "application/json"}) as r:
        assert r.status_code == 200
        lines = r.iter_lines(chunk_size=1)  # each reply as soon as it comes
        reply = json.loads(next(lines))
        session = reply["connect"]["session"]
        assert len(session) == 36 and session != reply["connect"]["client"]
        e = requests.post(f"{h.url}/emulation", timeout=10,
                          json={"session": session, "node": reply["connect"]["node"],
                                "data": '{"id":2,"subscribe":{"channel":"emu"}}'})
        assert e.status_code == 204, e.text
        assert json.loads(next(lines))["id"] == 2
        e = requests.post(f"{h.url}/emulation", timeout=10, json={"session": session, "data": "{nope"})
        assert e.status_code == 204
        push = json.loads(next(lines))
        assert push["push"]["disconnect"]["code"] == 3501, push
        assert list(lines) == []
    r = requests.post(f"{h.url}/emulation", json={"session": session, "data": "{}"}, timeout=10)
    assert r.status_code == 404


def test_emulated_ping_pong(herald_factory):
    """An HTTP stream gets the server's pings ({} lines); pongs through
    /emulation keep it open; a missed pong ends it with the 3012 push, also
    when the pong timeout is longer than the ping interval (the pings sent
    meanwhile do not move the deadline)."""
    h = herald_factory(args=["--jwt-secret", SECRET, "--ws-ping-interval", "1s", "--ws-pong-timeout", "2500ms"])
    connect = '{"id":1,"connect":{"token":"%s"}}' % token("pinged")
    with requests.post(f"{h.url}/connection/http_stream", data=connect, stream=True, timeout=10,
                       headers={"Content-Type": "application/json"}) as r:
        lines = r.iter_lines(chunk_size=1)
        session = json.loads(next(lines))["connect"]["session"]
        for _ in range(3):
            assert next(lines) == b"{}"
            e = requests.post(f"{h.url}/emulation", json={"session": session, "data": "{}"}, timeout=10)
            assert e.status_code == 204
        assert next(lines) == b"{}"  # not answered
        rest = list(lines)
        # one or two more pings before the first one's 2.5 s are up, then the end
        assert 1 <= len(rest) - 1 <= 3 and all(x == b"{}" for x in rest[:-1]), rest
        assert json.loads(rest[-1])["push"]["disconnect"]["code"] == 3012, rest
