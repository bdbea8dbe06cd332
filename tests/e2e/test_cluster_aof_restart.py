"""The Redis primary killed (-9) in the middle of a stream of publishes and
restarted from its own AOF, without a failover (no Sentinel): docs/cluster.md
"What an acknowledgement means". A 201 in `replicated` means the event was
fsynced on the primary (appendfsync always) and received by a replica; the
raise of the visible top reaches the primary's AOF only with a later batch
(folded cycles). So a primary restarted from its AOF inside that window
comes back with a lower visible top: the events above it are stored, not
returned until the topic's next publish raises the top past them, and never
lost or renumbered. This test asserts exactly that:
- each topic's stored `last` is at least its highest acknowledged offset;
- before the next publish, reads return dense offsets 1..k (k ≤ top), each
  acknowledged event at its offset;
- the next publish takes offset last+1, and then every acknowledged event
  is read at its offset, offsets dense.
One herald node, a primary with appendonly yes + appendfsync always and one
replica (redis_cluster.Cluster), all on 127.0.0.1."""
import json
import threading

import requests

from conftest import CE_JSON, per_test_timeout, structured, wait_for
from redis_cluster import cluster_fixture, needs_redis, ready, wait_replicated

pytestmark = needs_redis

_timeout = per_test_timeout(120)

TOPICS = ["aof.a", "aof.b", "aof.c"]
PUBLISHERS = 6     # two per topic
KILL_AFTER = 300   # acknowledged publishes before the kill
EACH_MAX = 2000    # a publisher's bound


cluster = cluster_fixture(nodes=1)


def meta(primary, topic, field):
    return int(primary.cmd("HGET", "{t:%s}:m" % topic, field) or 0)


def test_a_primary_killed_mid_stream_comes_back_from_its_aof_with_every_ack(cluster):
    h = cluster.nodes[0]
    acked = {}         # id -> (topic, offset): answered 201
    lock = threading.Lock()
    stop = threading.Event()

    def publisher(k):
        topic = TOPICS[k % len(TOPICS)]
        with requests.Session() as s:
            for i in range(EACH_MAX):
                if stop.is_set():
                    return
                eid = f"p{k}-{i}"
                try:
                    r = s.post(h.topic_url(topic), data=json.dumps(structured(eid)),
                               headers=CE_JSON, timeout=10)
                except requests.RequestException:
                    return
                if r.status_code != 201:
                    return  # after the kill: unanswered (stored or not)
                with lock:
                    acked[eid] = (topic, r.json()["offset"])
                    if len(acked) == KILL_AFTER:
                        # Right after a 201: its top most likely has not
                        # reached the AOF yet (the window aimed at).
                        cluster.primary.kill9()

    threads = [threading.Thread(target=publisher, args=(k,), daemon=True)
               for k in range(PUBLISHERS)]
    for t in threads:
        t.start()
    try:
        # Killed mid-stream, by the publisher that got the KILL_AFTER-th 201.
        wait_for(lambda: len(acked) >= KILL_AFTER, 60, interval=0.01,
                 what=f"{KILL_AFTER} acknowledged publishes")
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not any(t.is_alive() for t in threads)
    assert cluster.primary.proc is None
    with lock:
        acked = dict(acked)

    cluster.primary.start()  # same port, same dir: from its own AOF
    wait_replicated(cluster.primary, cluster.replica, timeout=30)
    wait_for(lambda: ready(h), 30, interval=0.05, what="the node ready again")

    lowered = []
    for topic in TOPICS:
        mine = {off: eid for eid, (t, off) in acked.items() if t == topic}
        assert mine, f"nothing acknowledged on {topic}"
        high = max(mine)
        last, top = meta(cluster.primary, topic, "last"), meta(cluster.primary, topic, "top")
        # Stored (fsynced before the 201): nothing acknowledged lost.
        assert last >= high, (topic, last, high)
        assert top <= last, (topic, top, last)
        if top < high:
            lowered.append((topic, top, high))
        # Visible now: dense up to at most the top, acknowledged ones in place.
        before = [(e["offset"], e["id"]) for e in h.read_all(topic)]
        assert [o for o, _ in before] == list(range(1, len(before) + 1)), (topic, before[-3:])
        assert len(before) <= top, (topic, len(before), top)
        for off, eid in before:
            if off in mine:
                assert mine[off] == eid, (topic, off, eid, mine[off])
        # The topic's next publish raises the top past everything stored.
        r = requests.post(h.topic_url(topic), data=json.dumps(structured(f"after-{topic}")),
                          headers=CE_JSON, timeout=30)
        assert r.status_code == 201, r.text
        assert r.json()["offset"] == last + 1, (topic, r.json(), last)
        after = [(e["offset"], e["id"]) for e in h.read_all(topic)]
        assert [o for o, _ in after] == list(range(1, last + 2)), (topic, after[-3:])
        got = dict(after)
        missing = [(off, eid) for off, eid in sorted(mine.items()) if got.get(off) != eid]
        assert not missing, (topic, missing[:10])
        assert got[last + 1] == f"after-{topic}"
    # Which topics came back with a lower top (the window the test aims at).
    print(f"acked={len(acked)} lowered={lowered}")
