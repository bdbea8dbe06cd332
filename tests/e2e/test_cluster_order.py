"""Several herald nodes on one Redis (docs/cluster.md): confirms from
different nodes that raise a topic's visible top out of offset order, and
what /readyz says when the Redis engine is not ready.

Confirms can arrive out of order: node A's event k waits for its WAIT while
node B's event k+1 (here: a node with --redis-durability primary, which
confirms inside its script) is already visible and PUBLISHed. A third node
that has never seen the topic gets k+1 first; it must still deliver k, then
k+1, to its subscribers (each message carries the top before its confirm,
so the node knows k became visible with k+1 and reads it)."""
import os
import signal
import threading

import requests

from conftest import CE_JSON, per_test_timeout, wait_for
from redis_cluster import Cluster, cluster_fixture, needs_redis, ready
from wsclient import SECRET, connect, run

pytestmark = needs_redis

_timeout = per_test_timeout(90)

ARGS = ["--jwt-secret", SECRET]


class MixedCluster(Cluster):
    """node0: replicated with a long WAIT; node1: primary (confirms in its
    script, no WAIT); node2: replicated, the subscribers' node."""

    def node(self, name):
        from conftest import Herald
        durability, wait = {"node0": ("replicated", "20s"), "node1": ("primary", "1s")}.get(
            name, ("replicated", "1s"))
        args = ["--engine", "redis", "--redis-url", f"redis://127.0.0.1:{self.primary.port}",
                "--redis-durability", durability, "--redis-wait-timeout", wait, *self.args]
        return Herald(self.tmp / name, args=args).start()

    def stop(self):
        """Resumes a replica a test left stopped (SIGSTOP), then stops all."""
        if self.replica.proc:
            os.kill(self.replica.proc.pid, signal.SIGCONT)
        super().stop()


cluster = cluster_fixture(MixedCluster, args=ARGS)


def post(h, topic, id_):
    return requests.post(h.topic_url(topic), data=f'{{"specversion":"1.0","id":"{id_}",'
                         f'"source":"/test","type":"t"}}', headers=CE_JSON, timeout=30)


def test_out_of_order_confirms_reach_a_node_new_to_the_topic(cluster):
    a, b, c = cluster.nodes
    topic = "order"
    meta = "{t:%s}:m" % topic

    async def go():
        cl, _ = await connect(c)
        await cl.call({"subscribe": {"channel": topic}})
        # Event 1 through a: its script runs, its WAIT waits (the replica is
        # stopped), so its confirm comes later.
        os.kill(cluster.replica.proc.pid, signal.SIGSTOP)
        result = {}
        t = threading.Thread(target=lambda: result.update(r=post(a, topic, "first")))
        t.start()
        try:
            wait_for(lambda: cluster.primary.cmd("HGET", meta, "last") == b"1", 10,
                     what="a's script to run")
            # Event 2 through b (primary durability): visible and PUBLISHed now.
            r2 = post(b, topic, "second")
            assert r2.status_code == 201, r2.text
            assert r2.json()["offset"] == 2
        finally:
            os.kill(cluster.replica.proc.pid, signal.SIGCONT)
        t.join(30)
        assert result["r"].status_code == 201, result["r"].text
        assert result["r"].json()["offset"] == 1
        pubs = await cl.pubs(2, timeout=10, channel=topic)
        await cl.quiet(0.3)
        await cl.close()
        return [(p["pub"]["offset"], p["pub"]["tags"]["id"]) for p in pubs]

    assert run(go()) == [(1, "first"), (2, "second")]
    assert [(e["offset"], e["id"]) for e in c.read_all(topic)] == [(1, "first"), (2, "second")]


def test_readyz_says_which_shard_is_unreachable(cluster):
    h = cluster.nodes[2]
    port = cluster.primary.port
    cluster.replica.kill9()
    cluster.primary.kill9()
    wait_for(lambda: not ready(h), 10, what="readiness red")
    r = requests.get(h.url + "/readyz", timeout=5)
    assert r.status_code == 503
    assert f"redis shard 0 (127.0.0.1:{port}): primary unreachable" in r.text, r.text
    assert "stopping" not in r.text
    cluster.primary.start()
    cluster.replica.start()
    wait_for(lambda: ready(h), 15, what="readiness green")
    assert requests.get(h.url + "/readyz", timeout=5).json() == {"status": "ready"}


def test_visible_top_reaches_the_aof_soon_after_the_ack(cluster):
    """A confirm raises the top on the primary and its replica without an
    AOF write (no second fsync before the 201); the next batch, or the hold
    timer when none comes, writes it to the AOF a moment later. A primary
    restarted from its AOF then still shows every acknowledged event."""
    h = cluster.nodes[2]
    r = post(h, "aof", "only")
    assert r.status_code == 201, r.text
    aof = os.path.join(cluster.primary.dir, "appendonlydir")
    needle = b"{t:aof}:m\r\n$3\r\ntop\r\n$1\r\n1\r\n"

    def top_in_aof():
        return any(needle in open(os.path.join(aof, f), "rb").read()
                   for f in os.listdir(aof) if f.endswith(".aof"))
    wait_for(top_in_aof, 10, what="the top in the primary's AOF")
    cluster.replica.kill9()
    cluster.primary.kill9()
    cluster.primary.start()  # from its AOF alone: the replica resyncs from it
    cluster.replica.start()
    wait_for(lambda: ready(h), 15, what="readiness green")
    assert [(e["offset"], e["id"]) for e in h.read_all("aof")] == [(1, "only")]
