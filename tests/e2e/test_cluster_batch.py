"""The Redis engine's confirm messages (docs/cluster.md, format in
src/engine/redis.h): one confirm per topic and batch raises the visible top
to the batch's last offset and PUBLISHes all of the batch's events of that
topic in one PUB/SUB message; every node splits it and delivers its events
in offset order. A duplicate inside a batch carries no event; an offset
that a message skips (another node's event, confirmed later) is read from
the stream before the events after it are delivered."""
import json
import socket


from conftest import CE_BATCH, per_test_timeout, structured
from redis_cluster import _read_reply, cluster_fixture, needs_redis
from wsclient import SECRET, connect, run

pytestmark = needs_redis

_timeout = per_test_timeout(90)

CHANNEL = b"herald:events"


# replicated: the confirm script publishes; primary: the PUB script.
cluster = cluster_fixture(args=["--jwt-secret", SECRET],
                          params=[{"durability": "replicated"}, {"durability": "primary"}])


class Listener:
    """A raw SUBSCRIBE to the engine's channel on the primary."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.s.sendall(b"*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%s\r\n" % (len(CHANNEL), CHANNEL))
        self.f = self.s.makefile("rb")
        assert _read_reply(self.f)[0] == b"subscribe"

    def message(self):
        kind, _, payload = _read_reply(self.f)
        assert kind == b"message"
        return payload

    def close(self):
        self.f.close()
        self.s.close()


def parse(payload):
    """PREV, EPOCH, LAST, TOPIC and the events [(offset, json)] of a message."""
    head = payload.split(b"\n", 5)
    prev, epoch, last, topic, n, rest = head
    events = []
    for _ in range(int(n)):
        line, rest = rest.split(b"\n", 1)
        off, _t, _x, length = (int(v) for v in line.split(b" "))
        events.append((off, json.loads(rest[:length])))
        rest = rest[length:]
    assert rest == b""
    return int(prev), epoch.decode(), int(last), topic.decode(), events


async def subscribe(h, topic):
    c, _ = await connect(h)
    r = await c.call({"subscribe": {"channel": topic}})
    assert "subscribe" in r, r
    return c


def test_a_batch_is_one_message_delivered_in_order_on_every_node(cluster):
    topic = "batch"
    ids = ["a", "b", "c", "b", "d"]  # the second "b" is a duplicate

    async def go():
        clients = [await subscribe(h, topic) for h in cluster.nodes]
        listener = Listener(cluster.primary.port)
        try:
            body = json.dumps([structured(i) for i in ids])
            r = cluster.nodes[0].publish(topic, body, headers=CE_BATCH)
            assert r.status_code == 200, r.text
            entries = r.json()["entries"]
            assert [(e["offset"], e.get("duplicate", False)) for e in entries] == [
                (1, False), (2, False), (3, False), (2, True), (4, False)]
            prev, _, last, name, events = parse(listener.message())
        finally:
            listener.close()
        seen = []
        for c in clients:
            pubs = await c.pubs(4, timeout=10, channel=topic)
            await c.quiet(0.3)
            await c.close()
            seen.append([(p["pub"]["offset"], p["pub"]["tags"]["id"]) for p in pubs])
        return (prev, last, name, [(o, e["id"]) for o, e in events]), seen

    message, seen = run(go())
    expected = [(1, "a"), (2, "b"), (3, "c"), (4, "d")]
    assert message == (0, 4, topic, expected)
    assert seen == [expected] * 3


def test_an_offset_a_message_skips_is_read_before_the_ones_after_it(cluster):
    """A message carrying offsets 1 and 3 (2 belongs to another node's
    confirm, not seen yet): a node delivers 1, reads 2 and 3 from the
    stream, and delivers 3 once."""
    h = cluster.nodes[2]
    p = cluster.primary
    # Real stored events to copy: the stream's fields as the engine writes them.
    r = h.publish("source", json.dumps([structured(f"g{i}") for i in (1, 2, 3)]),
                  headers=CE_BATCH)
    assert r.status_code == 200, r.text
    entries = p.cmd("XRANGE", "{t:source}:s", "-", "+")
    assert len(entries) == 1  # one entry per batch, id = its last offset
    assert entries[0][0] == b"3-0"
    kv = entries[0][1]  # k = the number of events, p = their records
    assert kv[0::2] == [b"k", b"p"] and kv[1] == b"3"
    epoch = "e2egapepoch"
    fields, rest = [], kv[3]
    for _ in range(3):  # "TIME EXPIRES LEN\n" and LEN bytes of JSON each
        line, rest = rest.split(b"\n", 1)
        t, x, length = line.split(b" ")
        fields.append({b"t": t, b"x": x, b"j": rest[:int(length)]})
        rest = rest[int(length):]
    assert rest == b""

    def store():
        """Topic gap as the engine would have it, offsets 1..3 confirmed."""
        p.cmd("HSET", "{t:gap}:m", "epoch", epoch, "created", "1", "last", "3", "top", "3")
        p.cmd("ZADD", "herald:topics", "0", "gap")
        for k, f in enumerate(fields, 1):
            rec = b"%s %s %d\n%s" % (f[b"t"], f[b"x"], len(f[b"j"]), f[b"j"])
            p.cmd("XADD", "{t:gap}:s", f"{k}-0", "k", "1", "p", rec)

    def event(k):
        f = fields[k - 1]
        return b"%d %s %s %d\n%s" % (k, f[b"t"], f[b"x"], len(f[b"j"]), f[b"j"])

    async def go():
        c = await subscribe(h, "gap")  # before the topic exists: from offset 0 on
        store()
        msg = b"0\n%s\n3\ngap\n2\n" % epoch.encode() + event(1) + event(3)
        assert p.cmd("PUBLISH", CHANNEL, msg) == 3  # every node hears it
        pubs = await c.pubs(3, timeout=10, channel="gap")
        await c.quiet(0.3)
        await c.close()
        return [(x["pub"]["offset"], x["pub"]["tags"]["id"]) for x in pubs]

    assert run(go()) == [(1, "g1"), (2, "g2"), (3, "g3")]
