"""Several herald nodes following a Redis primary through three Sentinels
(--redis-sentinel, docs/cluster.md): kill -9 the primary while every node
publishes; Sentinel promotes the replica and the nodes follow it. No
acknowledged event is missing, no event that was delivered disappears,
offsets stay dense; with one replica, `replicated` publishes answer 503
until the old primary is back as a replica, then 201 again."""
import asyncio
import json
import threading
import time

import pytest
import requests

from conftest import CE_JSON, per_test_timeout, structured, wait_for
from redis_cluster import SentinelCluster, cluster_fixture, needs_redis
from wsclient import SECRET, connect, run

pytestmark = needs_redis

_timeout = per_test_timeout(110)


cluster = cluster_fixture(SentinelCluster, args=["--jwt-secret", SECRET])


def post(h, topic, ev, session):
    return session.post(h.topic_url(topic), data=json.dumps(ev), headers=CE_JSON, timeout=10)


def current_has_replica(cluster):
    """Whether the primary Sentinel names now counts a replica."""
    port = cluster.sentinels[0].primary_port()
    r = cluster.primary if port == cluster.primary.port else cluster.replica
    try:
        return int(r.info("replication").get("connected_slaves", "0")) >= 1
    except (OSError, RuntimeError):
        return False


def kill9_primary(cluster, wait):
    """kill -9 the primary; Sentinel promotes the replica; the old primary
    comes back (same port and AOF) and is made a replica."""
    old_port = cluster.primary.port
    cluster.primary.kill9()
    s0 = cluster.sentinels[0]
    yield wait(lambda: s0.primary_port() not in (None, old_port), 30,
               "Sentinel to promote the replica")
    # The promoted replica has no replica: replicated publishes answer 503
    # until the old primary is back (Sentinel makes it a replica).
    cluster.primary.start(old_port)
    # Usually Sentinel makes the old primary a replica of the promoted one;
    # on a loaded machine it may fail over once more (back to the old
    # primary): whichever is the primary then, it must have a replica.
    yield wait(lambda: current_has_replica(cluster), 40, "the primary to have a replica again")


def sigstop_primary(cluster, wait):
    """SIGSTOP the primary for 3 s (Sentinel may fail over meanwhile), then
    SIGCONT; in the end the current primary has a replica again."""
    import signal
    cluster.primary.proc.send_signal(signal.SIGSTOP)
    yield asyncio.sleep(3)  # the fault's length, not a synchronisation
    cluster.primary.proc.send_signal(signal.SIGCONT)
    yield wait(lambda: current_has_replica(cluster), 40, "the primary to have a replica again")


@pytest.mark.parametrize("fault", [kill9_primary, sigstop_primary])
def test_primary_fails_the_nodes_follow_nothing_acknowledged_is_lost(cluster, fault):
    topic = "failover"
    acked, lock = {}, threading.Lock()
    answers = {"201": 0, "503": 0, "other": 0}
    stop = threading.Event()

    def publisher(i, h):
        s = requests.Session()
        k = 0
        while not stop.is_set():
            eid = f"n{i}-{k}"
            try:
                r = post(h, topic, structured(eid), s)
            except requests.RequestException:
                time.sleep(0.02)  # a client's back-off; retried with the same id
                continue
            with lock:
                if r.status_code in (200, 201):
                    acked[eid] = r.json()["offset"]
                    answers["201"] += 1
                    k += 1
                elif r.status_code == 503:
                    answers["503"] += 1
                    assert r.headers.get("Retry-After"), r.headers
                    time.sleep(0.02)  # a client's back-off, not a synchronisation
                else:
                    answers["other"] += 1

    seen = []

    async def subscriber(h, done):
        c, _ = await connect(h)
        await c.call({"subscribe": {"channel": topic}})
        while not done.is_set():
            try:
                p = await c.push(0.2)
            except asyncio.TimeoutError:
                continue
            if "pub" in p:
                seen.append((p["pub"]["offset"], p["pub"]["tags"]["id"]))
        await c.close()

    done = threading.Event()

    def wait(cond, timeout, what):
        return asyncio.get_running_loop().run_in_executor(None, wait_for, cond, timeout, 0.05, what)

    async def go():
        try:
            await steps()
        finally:
            # A failed wait must not leave the publishers (threads) running:
            # the executor is joined when the loop closes.
            stop.set()
            done.set()

    async def steps():
        loop = asyncio.get_running_loop()
        sub = asyncio.ensure_future(subscriber(cluster.nodes[2], done))
        pubs = [loop.run_in_executor(None, publisher, i, h) for i, h in enumerate(cluster.nodes)]
        await wait(lambda: len(acked) >= 60, 30, "acknowledged publishes before the failure")
        for step in fault(cluster, wait):
            await step
        n = len(acked)
        await wait(lambda: len(acked) >= n + 60, 30, "publishes to succeed on the new primary")
        stop.set()
        await asyncio.gather(*pubs)
        top = max(e["offset"] for e in cluster.nodes[0].read_all(topic))
        try:
            await wait(lambda: seen and seen[-1][0] >= top, 15, "the subscriber to catch up")
        except AssertionError:
            raise AssertionError(f"subscriber at {seen[-3:]} of {len(seen)}, top {top}")
        done.set()
        await sub

    run(go(), timeout=100)
    assert answers["other"] == 0, answers
    events = cluster.nodes[0].read_all(topic)
    offs = [e["offset"] for e in events]
    assert offs == list(range(1, len(offs) + 1)), "dense offsets"
    where = {e["id"]: e["offset"] for e in events}
    assert len(where) == len(events)
    for eid, off in acked.items():
        assert where.get(eid) == off, (eid, off, where.get(eid))
    # The subscriber saw every event once, in order, as stored: nothing it
    # was given disappeared in the failover.
    # (It subscribed live, while the publishers started: from its first.)
    assert seen and seen == [(e["offset"], e["id"]) for e in events][seen[0][0] - 1:]
