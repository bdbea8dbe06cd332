"""The Redis primary killed (-9) in the middle of a stream of publishes and
restarted from its own AOF, without a failover (no Sentinel): docs/cluster.md
"What an acknowledgement means". A 201 in `replicated` means the event was
fsynced on the primary (appendfsync always) and received by a replica; the
raise of the visible top reaches the primary's AOF only with a later batch
(folded cycles). So a primary restarted from its AOF inside that window
comes back with a lower visible top: the events above it are stored, never
lost or renumbered. The heal of the primary's new life (redis_heal.c: one
node claims it by the primary's run_id) raises each such top to the stored
last once a replica holds it, and tells the following nodes. This file
asserts:
- each topic's stored `last` is at least its highest acknowledged offset;
- reads return dense offsets, never past the top, each acknowledged event
  at its offset;
- WITHOUT another publish, every acknowledged event becomes readable at its
  offset and is delivered, exactly once and in order, to an SSE subscriber
  that stayed connected through the restart (fails without the heal: the
  events above the lowered top stay invisible until the topic's next
  publish);
- with no replica the heal raises nothing (its WAIT answers 0) and tries
  again, and raises once the replica is back;
- the next publish takes offset last+1.
One herald node, a primary with appendonly yes + appendfsync always and one
replica (redis_cluster.Cluster), all on 127.0.0.1."""
import json
import socket
import threading

import requests

from conftest import CE_JSON, per_test_timeout, structured, wait_for
from redis_cluster import cluster_fixture, needs_redis, ready, wait_replicated
from test_sse import SSE, sse_path

pytestmark = needs_redis

_timeout = per_test_timeout(120)

TOPICS = ["aof.a", "aof.b", "aof.c"]
PUBLISHERS = 6     # two per topic
KILL_AFTER = 300   # acknowledged publishes before the kill
EACH_MAX = 2000    # a publisher's bound


cluster = cluster_fixture(nodes=1)


def meta(primary, topic, field):
    return int(primary.cmd("HGET", "{t:%s}:m" % topic, field) or 0)


class Follower(threading.Thread):
    """An SSE subscriber of one topic from its start, drained on a thread:
    got = [(offset, id), …] of its events in arrival order (the SSE event
    name is the CloudEvent type), other = anything else."""

    def __init__(self, h, topic):
        super().__init__(daemon=True)
        self.sse = SSE(h, sse_path(topic, after=0))
        assert self.sse.status == 200, self.sse.status
        self.got, self.other = [], []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.start()

    def run(self):
        while not self.stop.is_set():
            try:
                ev = self.sse.next_event(0.3)
            except (socket.timeout, OSError):
                continue
            if ev is None:
                return  # closed
            with self.lock:
                if ev.get("id") and ev["event"] == "com.example.test":
                    self.got.append((int(ev["id"]), json.loads(ev["data"])["id"]))
                else:
                    self.other.append(ev)

    def snapshot(self):
        with self.lock:
            return list(self.got), list(self.other)

    def close(self):
        self.stop.set()
        self.join(10)
        self.sse.close()
        assert not self.is_alive()


def publish_and_kill(cluster, h):
    """Publishers on every topic until the KILL_AFTER-th 201, whose
    publisher kills the primary at once. Returns {id: (topic, offset)} of
    every 201."""
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
        return dict(acked)


def mine(acked, topic):
    """{offset: id} of topic's acknowledged events."""
    out = {off: eid for eid, (t, off) in acked.items() if t == topic}
    assert out, f"nothing acknowledged on {topic}"
    return out


def check_stored(cluster, h, acked):
    """Stored: nothing acknowledged lost; reads dense, at most the top, each
    acknowledged event in place. Returns {topic: (top, last)}."""
    state = {}
    for topic in TOPICS:
        ours = mine(acked, topic)
        last, top = meta(cluster.primary, topic, "last"), meta(cluster.primary, topic, "top")
        assert last >= max(ours), (topic, last, max(ours))
        assert top <= last, (topic, top, last)
        before = [(e["offset"], e["id"]) for e in h.read_all(topic)]
        assert [o for o, _ in before] == list(range(1, len(before) + 1)), (topic, before[-3:])
        assert len(before) <= max(top, meta(cluster.primary, topic, "top")), (topic, len(before))
        for off, eid in before:
            if off in ours:
                assert ours[off] == eid, (topic, off, eid, ours[off])
        state[topic] = (top, last)
    return state


def check_healed(cluster, h, acked, followers, state):
    """WITHOUT another publish: every stored event becomes visible (top =
    last), readable at its offset and delivered once, in order, to the
    topic's follower."""
    for topic in TOPICS:
        last = state[topic][1]
        wait_for(lambda: len(h.read_all(topic)) >= last, 30, interval=0.1,
                 what=f"{topic}'s events 1..{last} readable with no publish")
        assert meta(cluster.primary, topic, "top") == last, topic
        after = [(e["offset"], e["id"]) for e in h.read_all(topic)]
        assert [o for o, _ in after] == list(range(1, last + 1)), (topic, after[-3:])
        got = dict(after)
        ours = mine(acked, topic)
        missing = [(off, eid) for off, eid in sorted(ours.items()) if got.get(off) != eid]
        assert not missing, (topic, missing[:10])
        f = followers[topic]
        try:
            wait_for(lambda: len(f.snapshot()[0]) >= last, 30, interval=0.05,
                     what=f"{topic}'s follower to get offsets 1..{last}")
        except AssertionError:
            seen, other = f.snapshot()
            print(f"{topic}: follower got {len(seen)} (last {seen[-1:]}), other {other[:3]}, "
                  f"alive {f.is_alive()}\n" + h.read_log()[-3000:])
            raise
        seen, other = f.snapshot()
        assert not other, (topic, other[:3])
        assert seen == after, (topic, len(seen), len(after),
                               [x for x in zip(seen, after) if x[0] != x[1]][:5])


def next_publish(h, state):
    """The topic's next publish takes last+1."""
    for topic in TOPICS:
        last = state[topic][1]
        r = requests.post(h.topic_url(topic), data=json.dumps(structured(f"after-{topic}")),
                          headers=CE_JSON, timeout=30)
        assert r.status_code == 201, r.text
        assert r.json()["offset"] == last + 1, (topic, r.json(), last)
        assert h.read(topic, after=last).json()["events"][0]["id"] == f"after-{topic}"


def test_a_primary_killed_mid_stream_comes_back_from_its_aof_with_every_ack(cluster):
    h = cluster.nodes[0]
    followers = {t: Follower(h, t) for t in TOPICS}
    try:
        acked = publish_and_kill(cluster, h)
        cluster.primary.start()  # same port, same dir: from its own AOF
        wait_replicated(cluster.primary, cluster.replica, timeout=30)
        wait_for(lambda: ready(h), 30, interval=0.05, what="the node ready again")
        state = check_stored(cluster, h, acked)
        check_healed(cluster, h, acked, followers, state)
    finally:
        for f in followers.values():
            f.close()
    next_publish(h, state)
    # Which topics came back with a lower top (the window the test aims at;
    # the heal may have raised some already when the test looked).
    lowered = [(t, top, last) for t, (top, last) in state.items() if top < last]
    print(f"acked={len(acked)} lowered={lowered}")


def test_with_no_replica_the_heal_raises_nothing_until_one_is_back(cluster):
    h = cluster.nodes[0]
    followers = {t: Follower(h, t) for t in TOPICS}
    try:
        acked = publish_and_kill(cluster, h)
        cluster.replica.kill9()
        cluster.primary.start()  # from its own AOF, and no replica
        wait_for(lambda: ready(h), 30, interval=0.05, what="the node ready again")
        state = check_stored(cluster, h, acked)
        lowered = [t for t, (top, last) in state.items() if top < last]
        print(f"acked={len(acked)} lowered={lowered}")
        if lowered:
            # The heal found them, its WAIT answered 0: nothing raised.
            wait_for(lambda: "heal: shard 0: no replica acknowledged" in h.read_log(), 30,
                     interval=0.05, what="the heal's WAIT to find no replica")
            for topic in TOPICS:
                assert meta(cluster.primary, topic, "top") == state[topic][0], topic
                assert len(h.read_all(topic)) == state[topic][0], topic
        cluster.replica.start()
        wait_replicated(cluster.primary, cluster.replica, timeout=30)
        # The heal's next try (bounded backoff) finds a replica: raised.
        check_healed(cluster, h, acked, followers, state)
    finally:
        for f in followers.values():
            f.close()
    next_publish(h, state)
    assert "heal: shard 0 done" in h.read_log()


HEAL_TOPICS = ["hc.a", "hc.b", "hc.c", "hc.d"]
HOLD_MS = 1500  # after each page of one topic: the test kills the healer there

cluster2 = cluster_fixture(nodes=2, env={"HERALD_TEST_HEAL_PAGE": "1",
                                         "HERALD_TEST_HEAL_HOLD_MS": str(HOLD_MS)})


def test_a_node_killed_mid_heal_leaves_its_cursor_and_another_finishes(cluster2):
    """Every topic's top lowered below its last (what a restart from the AOF
    inside the window leaves, made on purpose here), then a new primary life:
    one node claims the heal, saves its cursor after its first page of one
    topic and is killed -9 there (the hold keeps it between pages); the
    other node takes the lease over once it expired, continues after the
    cursor, and every event becomes readable with no publish (fails without
    the lease: the dead node's claim would leave the rest unhealed)."""
    c = cluster2
    a, b = c.nodes
    for topic in HEAL_TOPICS:
        for i in range(2):
            r = a.session.post(a.topic_url(topic), data=json.dumps(structured(f"{topic}-{i}")),
                               headers=CE_JSON, timeout=10)
            assert r.status_code == 201, r.text
    for topic in HEAL_TOPICS:
        assert meta(c.primary, topic, "last") == 2
        c.primary.cmd("HSET", "{t:%s}:m" % topic, "top", "1")
    wait_replicated(c.primary, c.replica, timeout=30)
    c.primary.kill9()
    c.primary.start()  # from its own AOF (appendfsync always): the tops stay lowered
    wait_replicated(c.primary, c.replica, timeout=30)
    rid = c.primary.info("server")["run_id"].strip()
    claimed = f"primary run_id {rid} claimed by this node"
    wait_for(lambda: any(claimed in h.read_log() for h in c.nodes), 30, interval=0.02,
             what="a node to claim the heal of the new life")
    healer = a if claimed in a.read_log() else b
    other = b if healer is a else a
    # Its first page done and saved (then it holds HOLD_MS): killed there.
    wait_for(lambda: (c.primary.cmd("HGET", "{herald}:healed", "after") or b"") != b"", 30,
             interval=0.01, what="the heal's cursor after its first page")
    healer.kill9()
    cursor = c.primary.cmd("HGET", "{herald}:healed", "after").decode()
    assert cursor in HEAL_TOPICS[:2], cursor
    assert c.primary.cmd("HGET", "{herald}:healed", "done") is None
    assert claimed not in other.read_log()
    # The other node takes over after the lease expired, from the cursor.
    wait_for(lambda: f"{claimed}, checking its topics after '{cursor}'" in other.read_log(), 30,
             interval=0.05, what="the other node to take the heal over from the cursor")
    for topic in HEAL_TOPICS:
        wait_for(lambda: len(other.read_all(topic)) >= 2, 30, interval=0.1,
                 what=f"{topic}'s events readable with no publish")
        assert [(e["offset"], e["id"]) for e in other.read_all(topic)] == \
            [(1, f"{topic}-0"), (2, f"{topic}-1")], topic
        assert meta(c.primary, topic, "top") == 2, topic
    wait_for(lambda: c.primary.cmd("HGET", "{herald}:healed", "done") is not None, 30,
             interval=0.05, what="the heal marked done")
    assert "heal: shard 0 done" in other.read_log()
