"""Leave pushes for the clients of a node that died (--engine redis,
docs/cluster.md "What happens when a part fails"): one Redis primary with a
replica and three herald nodes on 127.0.0.1. Node A is killed with -9
while two of its clients follow a join-leave topic: once A's heartbeat has
lapsed, the surviving nodes' sweep removes A's presence entries (one
script, atomic) and the subscriber on B gets exactly one leave per A
client, none for C's client; a node stopped with SIGTERM sends its own
leaves and the sweep sends none again."""
from conftest import per_test_timeout, wait_for
from redis_cluster import cluster_fixture, needs_redis
from test_cluster_notices import ARGS, CONFIG, ROOM
from wsclient import connect, run

pytestmark = needs_redis

_timeout = per_test_timeout(90)


cluster = cluster_fixture(args=ARGS, config=CONFIG)


def presence_users(cluster, h):
    """The users listed in ROOM's presence through node h."""
    r = h.session.get(h.topic_url(ROOM, "/presence"), timeout=10)
    assert r.status_code == 200, r.text
    return sorted(c["user"] for c in r.json()["clients"])


async def joined(watcher, users):
    """The join pushes of users, in any order, each once."""
    seen = []
    for _ in users:
        p = await watcher.push(timeout=10)
        assert "join" in p, p
        seen.append(p["join"]["info"]["user"])
    assert sorted(seen) == sorted(users)


async def leaves(watcher, n, timeout):
    """n leave pushes, then 2.5 s of quiet (more than two sweeps): no other."""
    got = []
    for _ in range(n):
        p = await watcher.push(timeout=timeout)
        assert "leave" in p, p
        got.append(p["leave"]["info"])
    await watcher.quiet(2.5)
    assert not watcher.pushes, f"a second leave: {watcher.pushes}"
    return got


def test_a_killed_node_s_clients_leave_once(cluster):
    a, b, c = cluster.nodes

    async def go():
        watcher, _ = await connect(b, sub="watcher")
        assert "subscribe" in await watcher.call({"subscribe": {"channel": ROOM,
                                                                "join_leave": True}})
        clients = {}
        others = []
        try:
            for user in ("a1", "a2"):
                cl, r = await connect(a, sub=user)
                assert "subscribe" in await cl.call({"subscribe": {"channel": ROOM}})
                clients[r["client"]] = user
                others.append(cl)
            cl, _ = await connect(c, sub="c1")
            assert "subscribe" in await cl.call({"subscribe": {"channel": ROOM}})
            others.append(cl)
            await joined(watcher, ["a1", "a2", "c1"])
            wait_for(lambda: presence_users(cluster, b) == ["a1", "a2", "c1", "watcher"], 10,
                     what="every client in the presence")
            a.kill9()
            got = await leaves(watcher, 2, timeout=15)
            assert sorted((i["client"], i["user"]) for i in got) == sorted(clients.items())
            assert presence_users(cluster, c) == ["c1", "watcher"]
        finally:
            for cl in others:
                try:
                    await cl.close()
                except Exception:  # A's connections are gone with it
                    pass
            await watcher.close()

    run(go())


def test_a_stopped_node_s_clients_leave_once(cluster):
    a, b, c = cluster.nodes

    async def go():
        watcher, _ = await connect(b, sub="watcher")
        assert "subscribe" in await watcher.call({"subscribe": {"channel": ROOM,
                                                                "join_leave": True}})
        cl, r = await connect(c, sub="c1")
        try:
            assert "subscribe" in await cl.call({"subscribe": {"channel": ROOM}})
            await joined(watcher, ["c1"])
            c.stop()
            # The stopping node's own leave; then none from the sweep once
            # its heartbeat has lapsed (4 s).
            got = await leaves(watcher, 1, timeout=10)
            assert got[0]["client"] == r["client"]
            await watcher.quiet(4)
            assert not watcher.pushes, f"a second leave: {watcher.pushes}"
        finally:
            try:
                await cl.close()
            except Exception:
                pass
            await watcher.close()

    run(go())
