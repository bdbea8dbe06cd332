"""The Redis engine's packed layout (docs/cluster.md "Data layout"): one
stream entry per (topic, batch) whose id is the batch's last offset, and
dedup ids in per-topic hashes per time bucket of the dedup window.

- a read from an offset inside a packed entry returns exactly the events
  after it, limited by events (not entries), on every node;
- the retention cap trims whole entries from the front and keeps at least
  retention-max-count events; first/count stay exact;
- a duplicate inside one batch, and across batches on other nodes, answers
  the original offset; an id stays a duplicate across a bucket boundary for
  the whole window (Redis TIME) and is new again after it."""
import json
import time

import requests

from conftest import CE_BATCH, CE_JSON, per_test_timeout, structured, wait_for
from redis_cluster import cluster_fixture, needs_redis

pytestmark = needs_redis

_timeout = per_test_timeout(90)

WINDOW_MS = 2000
CONFIG = ("[namespace keep]\nretention-max-count = 5\n\n"
          "[namespace win]\ndedup-window = 2s\n")


# Three nodes with the namespaces keep (5 events) and win (2 s dedup).
cluster = cluster_fixture(config=CONFIG)


def batch(h, topic, ids):
    r = h.publish(topic, json.dumps([structured(i) for i in ids]), headers=CE_BATCH)
    assert r.status_code == 200, r.text
    return [(e["offset"], e.get("duplicate", False)) for e in r.json()["entries"]]


def single(h, topic, id_):
    r = h.publish(topic, json.dumps(structured(id_)), headers=CE_JSON)
    body = r.json()
    dup = body.get("duplicate", False)
    assert r.status_code == (200 if dup else 201), r.text
    return body["offset"], dup


def entries(cluster, topic):
    """[(entry id's offset, number of events)] of the topic's stream."""
    out = []
    for eid, kv in cluster.primary.cmd("XRANGE", "{t:%s}:s" % topic, "-", "+"):
        assert kv[0::2] == [b"k", b"p"]
        out.append((int(eid.split(b"-")[0]), int(kv[1])))
    return out


def test_reads_from_inside_a_packed_entry(cluster):
    a, b, c = cluster.nodes
    topic = "packed"
    assert batch(a, topic, ["p1", "p2", "p3", "p4", "p5"]) == [(o, False) for o in range(1, 6)]
    # Another batch, with a duplicate inside it and one of the first batch.
    assert batch(b, topic, ["p6", "p6", "p2", "p7"]) == [(6, False), (6, True), (2, True), (7, False)]
    assert single(c, topic, "p8") == (8, False)
    assert entries(cluster, topic) == [(5, 5), (7, 2), (8, 1)]
    for h in cluster.nodes:
        for after in range(0, 9):
            for limit in (1, 2, 3, 6, 1000):
                r = h.read(topic, after=after, limit=limit)
                assert r.status_code == 200, r.text
                body = r.json()
                got = [(e["offset"], e["id"]) for e in body["events"]]
                want = [(o, f"p{o}") for o in range(after + 1, min(8, after + limit) + 1)]
                assert got == want, (after, limit)
                assert body["next"] == (want[-1][0] if want else max(after, 8))
                assert body["truncated"] is False
    info = b.session.get(b.topic_url(topic, "")).json()
    assert (info["first"], info["last"], info["count"]) == (1, 8, 8)


def test_retention_trims_whole_entries_and_keeps_at_least_the_cap(cluster):
    a, b, _ = cluster.nodes
    topic = "keep:t"
    n = 0
    for size in (3, 4, 1, 2, 6, 1, 1):
        ids = [f"k{n + i + 1}" for i in range(size)]
        assert batch(a if size % 2 else b, topic, ids) == [(n + i + 1, False) for i in range(size)]
        n += size
        kept = entries(cluster, topic)
        first = kept[0][0] - kept[0][1] + 1
        # Whole entries go, only from the front; every entry but the first
        # would have been needed for the cap: at least 5 events stay.
        assert n - first + 1 >= min(n, 5)
        assert kept[0][0] >= n - 5 + 1 or n <= 5
        if len(kept) > 1:
            assert n - kept[1][0] + kept[1][1] < 5
        events = a.read_all(topic)
        assert [e["offset"] for e in events] == list(range(first, n + 1))
        assert [e["id"] for e in events] == [f"k{o}" for o in range(first, n + 1)]
        info = b.session.get(b.topic_url(topic, "")).json()
        assert (info["first"], info["last"], info["count"]) == (first, n, n - first + 1)
        r = b.read(topic, after=0, limit=2)
        assert r.json()["truncated"] is (first > 1)
        assert [e["offset"] for e in r.json()["events"]] == list(range(first, min(first + 1, n) + 1))


def test_dedup_across_a_bucket_boundary_and_after_the_window(cluster):
    p = cluster.primary

    def now():
        sec, usec = p.cmd("TIME")
        return int(sec) * 1000 + int(usec) // 1000

    topic = "win:t"
    # Publish the original late in its bucket so that the window runs into
    # the next one.
    wait_for(lambda: WINDOW_MS - 700 <= now() % WINDOW_MS <= WINDOW_MS - 300, 10,
             what="the last part of a dedup bucket")
    t0 = now()
    off, dup = single(cluster.nodes[0], topic, "w")
    t1 = now()
    assert (off, dup) == (1, False)
    crossed = False
    expired = None
    k = 0
    while expired is None:
        h = cluster.nodes[k % 3]
        k += 1
        tb = now()
        got = single(h, topic, "w")
        ta = now()
        if ta < t0 + WINDOW_MS:  # surely inside the window
            assert got == (1, True), (tb - t0, ta - t0)
            crossed = crossed or tb // WINDOW_MS > t1 // WINDOW_MS
        elif tb > t1 + WINDOW_MS:  # surely after it
            assert got[1] is False
            expired = got[0]
        else:  # the window ended during the request: either answer
            assert got in ((1, True), (2, False))
            if got == (2, False):
                expired = 2
        assert ta - t0 < 10000
        time.sleep(0.02)  # pacing of the poll, not a wait for a condition
    assert crossed
    assert expired == 2
    # The new event is the id's original now, on every node.
    assert [single(h, topic, "w") for h in cluster.nodes] == [(2, True)] * 3
    assert batch(cluster.nodes[1], topic, ["w", "v", "v"]) == [(2, True), (3, False), (3, True)]
    assert [e["id"] for e in cluster.nodes[2].read_all(topic)] == ["w", "w", "v"]


def test_first_and_count_of_large_events_come_from_the_meta(cluster):
    """Topic info and the listing take first from the meta's low (kept by
    the publish script through trims), not from the first entry: with
    batches of 20 kB events, low is always the first entry's first offset,
    and info and the listing stay exact, also when low is dropped (then the
    first entry is read, as a build without low did)."""
    a, b, c = cluster.nodes
    p = cluster.primary
    topic = "keep:big"
    meta = "{t:%s}:m" % topic
    big = "x" * 20000
    n = 0
    for k, size in enumerate((3, 1, 4, 2, 5, 1, 6)):
        h = cluster.nodes[k % 3]
        body = json.dumps([structured(f"b{n + i + 1}", data={"s": big}) for i in range(size)])
        r = h.publish(topic, body, headers=CE_BATCH)
        assert r.status_code == 200, r.text
        n += size
        kept = entries(cluster, topic)
        first = kept[0][0] - kept[0][1] + 1
        assert int(p.cmd("HGET", meta, "low")) == first
        # The boundaries list holds exactly the kept entries' last offsets.
        assert [int(x) for x in p.cmd("LRANGE", "{t:%s}:b" % topic, 0, -1)] == [e[0] for e in kept]
        for x in cluster.nodes:
            info = x.session.get(x.topic_url(topic, "")).json()
            assert (info["first"], info["last"], info["count"]) == (first, n, n - first + 1)
        listed = requests.get(c.url + "/v1/topics", params={"prefix": "keep:big"}, timeout=10).json()
        assert [(t["name"], t["first"], t["count"]) for t in listed["topics"]] == [(topic, first, n - first + 1)]
        if k == 3:
            # Without low (a topic of an older build): the first entry is
            # read instead, same answer; the next trim sets low again.
            p.cmd("HDEL", meta, "low")
            info = a.session.get(a.topic_url(topic, "")).json()
            assert (info["first"], info["count"]) == (first, n - first + 1)
    assert [e["id"] for e in b.read_all(topic)] == [f"b{o}" for o in range(first, n + 1)]
