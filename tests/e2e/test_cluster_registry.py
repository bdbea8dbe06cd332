"""The connection registry and presence across nodes (--engine redis,
docs/cluster.md "Connection registry and presence"): one Redis primary with
a replica and three herald nodes on 127.0.0.1. A user's connections on two
nodes are listed by the third with their node names; Centrifugo presence
and presence_stats from a client on one node count the clients of the
others; a disconnect removes an entry; a node killed with -9 loses its
entries once its heartbeat lapses; a node restarted under the same name
removes what its previous run left behind; a push subscription's
skip_if_online sees a user connected to another node."""
import json
import socket
import time

import requests

from conftest import Herald, per_test_timeout, wait_for
from redis_cluster import Cluster, cluster_fixture, needs_redis, ready, resp_command
from test_push_subscriptions import providers  # noqa: F401 (the module's fixture)
from wsclient import SECRET, connect, run, token

pytestmark = needs_redis

_timeout = per_test_timeout(90)

ARGS = ["--jwt-secret", SECRET]
USER = "u42"
TOPIC = "room:1"


cluster = cluster_fixture(args=ARGS)


def node_name(h):
    """The default --node-name with the redis engine: host name and port."""
    return f"{socket.gethostname()}:{h.port}"


def listing(h, user=USER, headers=None):
    r = requests.get(f"{h.url}/v1/users/{user}/connections", headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["connections"]


def presence(h, topic=TOPIC, headers=None):
    r = requests.get(f"{h.url}/v1/topics/{topic}/presence", headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def redis_fields(cluster, key):
    """The fields of a registry hash, read straight from the primary."""
    flat = resp_command(cluster.primary.port, "HGETALL", key) or []
    return [f.decode() for f in flat[0::2]]


def open_sse(h, topic, user):
    s = requests.get(h.topic_url(topic, "/sse") + "?token=" + token(user), stream=True, timeout=30)
    assert s.status_code == 200
    return s


def test_connections_and_presence_span_the_nodes(cluster):
    a, b, c = cluster.nodes
    names = [node_name(h) for h in cluster.nodes]
    assert len(set(names)) == 3

    async def go():
        wa, ra = await connect(a, sub=USER)
        assert "subscribe" in await wa.call({"subscribe": {"channel": TOPIC}})
        sse_b = open_sse(b, TOPIC, USER)
        wc, rc = await connect(c, sub="u7")
        assert "subscribe" in await wc.call({"subscribe": {"channel": TOPIC}})
        try:
            # The listing on the third node names both connections' nodes.
            wait_for(lambda: len(listing(c)) == 2, 10, what="both connections listed on node C")
            conns = {x["node"]: x for x in listing(c)}
            assert set(conns) == {names[0], names[1]}
            assert conns[names[0]]["id"] == ra["client"] and conns[names[0]]["transport"] == "websocket"
            assert conns[names[1]]["transport"] == "sse" and conns[names[1]]["user"] == USER
            assert TOPIC in conns[names[0]]["topics"] and TOPIC in conns[names[1]]["topics"]
            assert conns[names[1]]["remote"].startswith("127.0.0.1:") and conns[names[1]]["since"].endswith("Z")
            assert {x["node"] for x in listing(a)} == {names[0], names[1]}
            # Presence over the protocol, from a client on C: A's and B's clients count.
            r = await wc.call({"presence": {"channel": TOPIC}})
            pres = r["presence"]["presence"]
            assert len(pres) == 3 and ra["client"] in pres and rc["client"] in pres
            assert sorted(v["user"] for v in pres.values()) == [USER, USER, "u7"]
            r = await wc.call({"presence_stats": {"channel": TOPIC}})
            assert r["presence_stats"] == {"num_clients": 3, "num_users": 2}
            p = presence(c)
            assert p["subscribers"] == 3 and sorted(p["users"]) == ["u42", "u7"]
            assert sorted(x["node"] for x in p["clients"]) == sorted(names)
            # A disconnect takes its entries away everywhere.
            await wa.close()
            wait_for(lambda: [x["node"] for x in listing(c)] == [names[1]], 10,
                     what="A's connection gone from the listing")
            wait_for(lambda: presence(c)["subscribers"] == 2, 10, what="A's client gone from presence")
            r = await wc.call({"presence_stats": {"channel": TOPIC}})
            assert r["presence_stats"] == {"num_clients": 2, "num_users": 2}
        finally:
            sse_b.close()
            await wc.close()

    run(go())


def test_a_killed_node_vanishes_and_a_restarted_one_cleans_up(cluster):
    a, b, c = cluster.nodes
    name_a, name_b = node_name(a), node_name(b)
    conns_key = f"herald:conns:{USER}"

    async def go():
        # B holds an SSE stream of the user; kill -9 B, then restart it at
        # once under the same name (same port), before its heartbeat can
        # lapse: the restart itself removes the fields its last run left.
        sse_b = open_sse(b, TOPIC, USER)
        wait_for(lambda: [x["node"] for x in listing(c)] == [name_b], 10, what="B's stream listed")
        b.kill9()
        sse_b.close()
        assert any(f.startswith(name_b + "\n") for f in redis_fields(cluster, conns_key))
        b.start(b.port)
        wait_for(lambda: ready(b), 15, what="B ready again")
        assert not any(f.startswith(name_b + "\n") for f in redis_fields(cluster, conns_key))
        assert listing(c) == []
        assert presence(c)["subscribers"] == 0

        # A holds a WebSocket; kill -9 A for good: its heartbeat lapses and
        # the listings drop its entries within a few seconds.
        wa, ra = await connect(a, sub=USER)
        assert "subscribe" in await wa.call({"subscribe": {"channel": TOPIC}})
        wait_for(lambda: [x["id"] for x in listing(c)] == [ra["client"]], 10, what="A's WebSocket listed")
        wait_for(lambda: presence(b)["subscribers"] == 1, 10, what="A's client in presence")
        a.kill9()
        t0 = time.monotonic()
        wait_for(lambda: listing(c) == [], 15, interval=0.2, what="A's connection gone after its kill -9")
        assert time.monotonic() - t0 < 10
        wait_for(lambda: presence(b)["subscribers"] == 0, 10, what="A's client gone from presence")
        # The reader deleted the dead node's fields on the way.
        assert not any(f.startswith(name_a + "\n") for f in redis_fields(cluster, conns_key))
        # A topic's presence entries go with the sweep (which sends their
        # leaves, test_cluster_leaves.py), within a second or so.
        wait_for(lambda: not any(f.startswith(name_a + "\n")
                                 for f in redis_fields(cluster, "{t:%s}:presence" % TOPIC)),
                 5, interval=0.1, what="the sweep removed A's presence entries")
        try:
            await wa.close()
        except Exception:
            pass

    run(go())


def test_push_skip_if_online_sees_other_nodes(tmp_path, providers):
    """A push subscription on node B with skip_if_online skips a user whose
    WebSocket is on node A, and pushes once it is gone."""
    from test_push_subscriptions import H, KEYS, create, device, notify, sub_info

    class PushCluster(Cluster):
        def node(self, name):
            return Herald(self.tmp / name, args=self.node_args(), config=KEYS).start()

    c = PushCluster(tmp_path, nodes=2, args=providers.args)
    try:
        c.start()
        a, b = c.nodes
        fcm = "fcm-cluster-online-51"
        device(b, "51", "phone", {"platform": "fcm", "token": fcm})
        r = create(b, {"topic": "user:*", "to": "user", "skip_if_online": True})
        assert r.status_code == 201, r.text
        sid = r.json()["id"]

        async def live():
            ws, _ = await connect(a, sub="51", subs={"user:51": {}})
            wait_for(lambda: presence(b, "user:51", H)["subscribers"] == 1, 10, what="A's client seen from B")
            notify(a, "51", {"n": 1})
            await ws.pubs(1, timeout=10, channel="user:51")
            wait_for(lambda: sub_info(b, sid)["skipped_online"] == 1, 30, what="skipped_online on B")
            await ws.close()

        run(live())
        wait_for(lambda: listing(b, "51", H) == [], 10, what="the connection gone")
        assert providers.fcm_got(fcm) == []
        off = notify(a, "51", {"n": 2})["offset"]
        m = wait_for(lambda: providers.fcm_got(fcm), 30, what="the push once offline")
        assert [json.loads(x["data"]["herald"])["offset"] for x in m] == [off]
    finally:
        c.stop()
