"""What nodes tell each other besides events (--engine redis, docs/cluster.md
"Notices between nodes"): one Redis primary with a replica and three herald
nodes on 127.0.0.1. A client joining or leaving a join-leave topic on node
A is announced once to the subscribers on A, B and C; a topic deleted
through node A ends the WebSocket subscriptions of every node with the same
unsubscribe push (a subscriber that subscribes again follows the new epoch
from offset 1), and the SSE streams of the other nodes get a reset to
offset 1; /v1/stats users_online on one node counts the users connected to
the others, each user once."""
import json

import requests

from conftest import per_test_timeout, wait_for
from redis_cluster import cluster_fixture, needs_redis
from test_sse import SSE, sse_path
from wsclient import SECRET, connect, run

pytestmark = needs_redis

_timeout = per_test_timeout(90)

ARGS = ["--jwt-secret", SECRET]
CONFIG = "[namespace room]\njoin-leave = on\n"
ROOM = "room:1"


# Three nodes whose namespace `room` has join-leave on.
cluster = cluster_fixture(args=ARGS, config=CONFIG)


async def only_push(client, what, seconds=0.5):
    """The next push, then `seconds` of quiet: exactly one came."""
    p = await client.push(timeout=10)
    await client.quiet(seconds)
    assert not client.pushes, f"{what}: more than one push: {[p] + client.pushes}"
    return p


def test_join_and_leave_reach_every_node_once(cluster):
    a, b, c = cluster.nodes

    async def go():
        watchers = []
        for h, user in ((a, "wa"), (b, "wb"), (c, "wc")):
            w, _ = await connect(h, sub=user)
            assert "subscribe" in await w.call({"subscribe": {"channel": ROOM, "join_leave": True}})
            watchers.append(w)
        # The watchers joined each other: drain those pushes first (each
        # watcher saw the ones that came after it, once each).
        for i, w in enumerate(watchers):
            for _ in range(len(watchers) - 1 - i):
                assert "join" in await w.push(timeout=10)
            await w.quiet(0.3)
            assert not w.pushes, w.pushes
        try:
            alice, ra = await connect(a, sub="alice")
            info = {"info": {"user": "alice", "client": ra["client"]}}
            assert "subscribe" in await alice.call({"subscribe": {"channel": ROOM}})
            for w in watchers:  # A's own watcher too, once: not echoed back
                assert await only_push(w, "join") == {"channel": ROOM, "join": info}
            await alice.call({"unsubscribe": {"channel": ROOM}})
            for w in watchers:
                assert await only_push(w, "leave") == {"channel": ROOM, "leave": info}
            # A closed connection leaves too.
            assert "subscribe" in await alice.call({"subscribe": {"channel": ROOM}})
            for w in watchers:
                assert (await w.push(timeout=10))["join"] == info
            await alice.close()
            for w in watchers:
                assert await only_push(w, "leave on close") == {"channel": ROOM, "leave": info}
        finally:
            for w in watchers:
                await w.close()

    run(go())


def publish(h, topic, n):
    r = requests.post(h.topic_url(topic, "/events"), json={"n": n}, timeout=10)
    assert r.status_code == 201, r.text
    return r.json()["offset"]


def test_a_deletion_ends_the_subscriptions_of_every_node(cluster):
    a, b, c = cluster.nodes
    topic = "news:1"

    sse = [SSE(h, sse_path(topic, after=0)) for h in (b, c)]

    async def go():
        subs = []
        for h, user in ((a, "sa"), (b, "sb"), (c, "sc")):
            s, _ = await connect(h, sub=user)
            assert "subscribe" in await s.call({"subscribe": {"channel": topic}})
            subs.append(s)
        try:
            assert publish(a, topic, 1) == 1
            for s in subs:
                assert [p["pub"]["offset"] for p in await s.pubs(1, timeout=10)] == [1]
            for s in sse:
                assert s.next_event()["id"] == "1"
            first_epoch = requests.get(a.topic_url(topic, ""), timeout=10).json()["epoch"]
            r = requests.delete(a.topic_url(topic, ""), timeout=10)
            assert r.status_code == 200 and r.json() == {"deleted": topic}
            for s in subs:
                p = await only_push(s, "deletion")
                assert p == {"channel": topic,
                             "unsubscribe": {"code": 2500, "reason": "topic deleted"}}
            # Subscribed again (as the SDK does after code 2500), with the old
            # position: not recovered, the new epoch from offset 1 on.
            for s in subs:
                r = await s.call({"subscribe": {"channel": topic, "recover": True, "offset": 1,
                                                "epoch": first_epoch}})
                assert not r["subscribe"].get("recovered"), r
            assert publish(b, topic, 2) == 1
            epoch = requests.get(c.topic_url(topic, ""), timeout=10).json()["epoch"]
            assert epoch != first_epoch
            for s in subs:
                assert [p["pub"]["offset"] for p in await s.pubs(1, timeout=10)] == [1]
            # SSE streams on B and C: the reset to offset 1, then the new event.
            for s in sse:
                reset = s.next_event()
                assert reset["event"] == "reset", reset
                assert json.loads(reset["data"]) == {"topic": topic, "after": 1, "first": 1}
                ev = s.next_event()
                assert ev["id"] == "1" and json.loads(ev["data"])["data"] == {"n": 2}
        finally:
            for s in subs:
                await s.close()
            for s in sse:
                s.close()

    run(go())


def stats(h):
    r = requests.get(h.url + "/v1/stats", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def test_users_online_counts_every_node(cluster):
    a, b, c = cluster.nodes

    async def go():
        assert stats(b)["users_online"] == 0
        u1, _ = await connect(a, sub="only-on-a")
        try:
            wait_for(lambda: stats(b)["users_online"] == 1, 10, what="B counts A's user")
            # Connections stay per node: B holds none.
            assert stats(b)["connections"]["websocket"] == 0
            assert stats(a)["connections"]["websocket"] == 1
            # The same user on two nodes is one user; another user on C adds one.
            u2, _ = await connect(b, sub="only-on-a")
            u3, _ = await connect(c, sub="on-c")
            wait_for(lambda: all(stats(h)["users_online"] == 2 for h in cluster.nodes), 10,
                     what="two users online on every node")
            await u2.close()
            await u3.close()
            wait_for(lambda: stats(c)["users_online"] == 1, 10, what="C's user gone")
        finally:
            await u1.close()
        wait_for(lambda: stats(b)["users_online"] == 0, 10, what="nobody online")

    run(go())
