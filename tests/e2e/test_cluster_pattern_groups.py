"""Pull consumer groups over a topic pattern shared between herald nodes on
the Redis engine (docs/cluster.md "Pull groups"): each matching topic's
leases, delivery counts, ack floor and dead letters live in Redis like a
plain group's, so consumers of one pattern group on several nodes compete
for the events of every matching topic, topics created on another node
included, and a killed node's leases go to the others when they end.
Same fixture as test_cluster.py: a primary with appendfsync always, one
replica, three herald nodes on 127.0.0.1."""
import json
import os
import threading
import time

import requests

from conftest import per_test_timeout, wait_for
from redis_cluster import cluster_fixture, needs_redis

pytestmark = needs_redis

_timeout = per_test_timeout(90)


cluster = cluster_fixture()


def gurl(h, group, suffix="", pattern="orders.*"):
    return f"{h.url}/v1/topics/{pattern}/groups/{group}{suffix}"


def publish_n(h, topic, n, tag):
    evs = [{"specversion": "1.0", "id": f"{tag}{i}", "source": "/t", "type": "t", "data": {"i": i}}
           for i in range(n)]
    r = requests.post(h.topic_url(topic), data=json.dumps(evs), timeout=20,
                      headers={"Content-Type": "application/cloudevents-batch+json"})
    assert r.status_code == 200, r.text


def test_consumers_on_three_nodes_and_a_killed_node(cluster):
    """A pattern group made on node A over two existing topics; a third
    topic is created on node C after it, a fourth on node B while the
    consumers run. Two consumers on each node fetch and ack (topic, offset)
    pairs; node C fetches 7 more without acking and is killed (-9). In the
    end every event of every topic was acked exactly once (an ack answered
    for an event whose lease had passed to another consumer is `ignored`),
    C's 7 came again to A or B with deliveries 2, and every node that is
    left reports each topic's position at its end and nothing pending."""
    a, b, c = cluster.nodes
    totals = {"orders.eu": 40, "orders.us": 40, "orders.apac": 40, "orders.late": 40}
    publish_n(a, "orders.eu", 40, "eu")
    publish_n(b, "orders.us", 40, "us")
    r = requests.put(gurl(a, "ship"), json={"ack_wait_ms": 3000}, timeout=10)
    assert r.status_code == 201, r.text
    assert sorted(t["topic"] for t in r.json()["topics"]) == ["orders.eu", "orders.us"], r.text
    publish_n(c, "orders.apac", 40, "ap")  # a topic created after the group, on another node

    acked = {}        # (topic, offset) -> consumer whose ack counted it
    twice = []
    uncertain = set()  # acks of C's consumers whose answer the kill cut off
    errors = []
    handed = []       # (topic, offset, deliveries, consumer)
    lock = threading.Lock()
    stop_c = threading.Event()
    go = threading.Event()      # cleared: A's and B's consumers pause
    go.set()
    paused = set()

    def done_everywhere(s, h):
        st = s.get(gurl(h, "ship"), timeout=10).json()
        pos = {t["topic"]: t["position"] for t in st["topics"]}
        return all(pos.get(t) == n for t, n in totals.items()) and st["pending"] == 0

    def consumer(h, name, on_c):
        deadline = time.monotonic() + 60
        with requests.Session() as s:
            while time.monotonic() < deadline:
                if on_c and stop_c.is_set():
                    return
                if not go.is_set():
                    with lock:
                        paused.add(name)
                    go.wait(30)
                    with lock:
                        paused.discard(name)
                try:
                    r = s.post(gurl(h, "ship", "/fetch?max=5&wait=1"), timeout=20)
                except requests.RequestException as e:
                    if on_c:
                        return  # the node was killed
                    errors.append(f"{name} fetch: {e}")
                    return
                if r.status_code != 200:
                    errors.append(f"{name} fetch: {r.status_code} {r.text}")
                    return
                evs = r.json()["events"]
                if not evs:
                    if done_everywhere(s, h):
                        return
                    continue
                pairs = [(e["topic"], e["offset"]) for e in evs]
                time.sleep(0.02)  # the work
                with lock:
                    handed.extend((e["topic"], e["offset"], e["deliveries"], name) for e in evs)
                try:
                    r = s.post(gurl(h, "ship", "/ack"), timeout=20,
                               json={"events": [{"topic": t, "offset": o} for t, o in pairs]})
                except requests.RequestException as e:
                    if on_c:
                        # In flight at the kill: applied or not, unknown.
                        with lock:
                            uncertain.update(pairs)
                        return
                    errors.append(f"{name} ack: {e}")
                    return
                if r.status_code != 200:
                    errors.append(f"{name} ack: {r.status_code} {r.text}")
                    return
                body = r.json()
                ign = {(i["topic"], i["offset"]) for i in body["ignored"]}
                with lock:
                    counted = [p for p in pairs if p not in ign]
                    if body["acked"] != len(counted):
                        errors.append(f"{name} ack {pairs}: {body}")
                    for p in counted:
                        if p in acked:
                            twice.append((p, acked[p], name))
                        acked[p] = name
        errors.append(f"{name} gave up")

    threads = [threading.Thread(target=consumer, args=(h, f"{h.port}/{k}", h is c), daemon=True)
               for h in (a, b, c) for k in range(2)]
    for t in threads:
        t.start()
    wait_for(lambda: len(acked) >= 30, 30, interval=0.02, what="30 acks")
    # A pause: C's consumers end, A's and B's wait; a new topic on node B;
    # C takes 7 events and dies holding them; A and B go on.
    stop_c.set()
    go.clear()
    wait_for(lambda: len(paused) == 4 and not any(t.is_alive() for t in threads[4:]), 30,
             interval=0.02, what="the consumers to pause")
    publish_n(b, "orders.late", 40, "la")
    with requests.Session() as s:
        r = s.post(gurl(c, "ship", "/fetch?max=7&wait=5"), timeout=10)
    assert r.status_code == 200, r.text
    held = [(e["topic"], e["offset"]) for e in r.json()["events"]]
    c.kill9()
    go.set()
    for t in threads:
        t.join(75)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors[:5]
    assert not twice, twice[:5]
    everything = {(t, o) for t, n in totals.items() for o in range(1, n + 1)}
    assert set(acked) | uncertain == everything, sorted(everything - set(acked) - uncertain)[:10]
    assert len(held) == 7, held
    # The consumers of every node had a share.
    assert {v.split("/")[0] for v in acked.values()} >= {str(a.port), str(b.port)}
    assert any(name.startswith(str(c.port)) for *_, name in handed)
    # C's held leases went to A or B after their deadline.
    for p in held:
        again = [d for t, o, d, name in handed if (t, o) == p and not name.startswith(str(c.port))]
        assert again and max(again) >= 2, (p, again)
    for h in (a, b):
        st = requests.get(gurl(h, "ship"), timeout=10).json()
        assert st["topics_count"] == 4 and st["pending"] == 0 and st["lag"] == 0, st
        assert st["dead_letters"] == 0 and st["ack_wait_ms"] == 3000, st
        assert {t["topic"]: t["position"] for t in st["topics"]} == totals, st
        assert st["redeliveries"] >= len(held), st


def test_a_group_made_on_one_node_is_the_same_group_on_the_others(cluster):
    """Created on node A; node B, which never saw it, answers its GET with
    A's config and consumes it; a PUT through B changes the config for
    every node; nacked past max_deliveries on two nodes, the event goes to
    its topic's dead-letter topic once; GET /v1/groups lists the group on
    A; a DELETE through C makes it gone everywhere."""
    a, b, c = cluster.nodes
    publish_n(a, "orders.eu", 1, "eu")
    r = requests.put(gurl(a, "g"), json={"ack_wait_ms": 20000, "max_deliveries": 2}, timeout=10)
    assert r.status_code == 201, r.text
    st = requests.get(gurl(b, "g"), timeout=10).json()
    assert st["ack_wait_ms"] == 20000 and st["max_deliveries"] == 2, st
    for h, n in ((b, 1), (c, 2)):
        r = requests.post(gurl(h, "g", "/fetch?max=10&wait=5"), timeout=20)
        evs = r.json()["events"]
        assert [(e["topic"], e["offset"], e["deliveries"]) for e in evs] == [("orders.eu", 1, n)], r.text
        r = requests.post(gurl(h, "g", "/nack"), json={"events": [{"topic": "orders.eu", "offset": 1}]},
                          timeout=10)
        assert r.json()["nacked"] == 1, r.text
    assert requests.post(gurl(a, "g", "/fetch?max=10"), timeout=10).json()["events"] == []

    def dead_lettered():
        st = requests.get(gurl(b, "g"), timeout=10).json()
        return st["dead_letters"] == 1 and st["topics"][0]["position"] == 1
    wait_for(dead_lettered, 10, interval=0.05, what="the dead letter to be acked")
    dl = a.read_all("orders.eu.dlq")
    assert len(dl) == 1 and dl[0]["data"]["pattern"] == "orders.*", dl

    r = requests.put(gurl(b, "g"), json={"ack_wait_ms": 7000}, timeout=10)
    assert r.status_code == 200, r.text
    for h in (a, c):
        assert requests.get(gurl(h, "g"), timeout=10).json()["ack_wait_ms"] == 7000
    listed = requests.get(a.url + "/v1/groups", timeout=10).json()["groups"]
    assert [g for g in listed if g.get("pattern") == "orders.*"] == [
        {"topic": "orders.*", "group": "g", "pattern": "orders.*", "topics_count": 1,
         "pending": 0, "lag": 0, "dead_letters": 1}], listed

    assert requests.delete(gurl(c, "g"), timeout=10).status_code == 204
    for h in (a, b, c):
        assert requests.get(gurl(h, "g"), timeout=10).status_code == 404
        r = requests.post(gurl(h, "g", "/fetch?max=1"), timeout=10)
        assert r.status_code == 404, r.text


RELIST_MS = 5  # test-only HERALD_TEST_GROUP_RELIST_MS (5000 without it)
RELISTS = 200    # re-lists of the group each node logs during the fetches


# The same cluster with --log-level debug (the re-lists are logged),
# re-listing every RELIST_MS instead of every 5 s.
debug_cluster = cluster_fixture(args=["--log-level", "debug"],
                                env={"HERALD_TEST_GROUP_RELIST_MS": str(RELIST_MS)})


def relists(h, since, group):
    """How many re-lists of group node h logged after byte `since` of its log."""
    with open(h.log_path, "rb") as f:
        f.seek(since)
        text = f.read().decode("utf-8", "replace")
    return text.count(f"group_pattern_relist pattern=orders.* group={group} ")


def test_fetches_without_wait_are_served_while_topics_are_listed_again(debug_cluster):
    """Each node lists the pattern's topics again every 5 s (topics whose
    first event it missed; here every RELIST_MS, the test hook); fetches
    with wait=0 are served beside those lists, never answered empty while
    events are left. Four consumers on two nodes fetch and ack one event at
    a time while a publisher keeps a backlog (orders.eu, which exists, and
    orders.mid, created on node B mid-run), until both nodes logged RELISTS
    re-lists of the group during the fetches; then the backlog is drained.
    Every event of both topics is acked exactly once."""
    a, b, _ = debug_cluster.nodes
    backlog = 600     # the publisher tops the backlog up to this
    publish_n(a, "orders.eu", backlog, "pre")
    r = requests.put(gurl(a, "fast"), json={"ack_wait_ms": 60000}, timeout=10)
    assert r.status_code == 201, r.text
    published = {"orders.eu": backlog, "orders.mid": 0}  # answered publishes
    acked = set()     # (topic, offset)
    eu_acked = [0]
    twice, empty, errors = [], [], []
    cond = threading.Condition()
    stop_pub = threading.Event()

    def publisher():
        n = 0
        try:
            while not stop_pub.is_set():
                with cond:  # the first batch creates orders.mid at once
                    cond.wait_for(lambda: stop_pub.is_set() or n == 0 or
                                  sum(published.values()) - len(acked) < backlog, timeout=1)
                    if stop_pub.is_set() or (n > 0 and
                                             sum(published.values()) - len(acked) >= backlog):
                        continue
                topic = "orders.mid" if n % 4 == 0 else "orders.eu"
                publish_n(b if topic == "orders.mid" else a, topic, 100, f"p{n}-")
                n += 1
                with cond:
                    published[topic] += 100
        except Exception as e:  # reported by the main thread
            errors.append(f"publisher: {e!r}")

    def consumer(h):
        deadline = time.monotonic() + 60
        with requests.Session() as s:
            while time.monotonic() < deadline:
                with cond:
                    before = published["orders.eu"]  # answered before this fetch
                r = s.post(gurl(h, "fast", "/fetch?max=1&wait=0"), timeout=10)
                if r.status_code != 200:
                    errors.append(r.text)
                    return
                evs = r.json()["events"]
                if not evs:
                    with cond:
                        # Events of orders.eu (known to every node from the
                        # start) left that no other consumer holds.
                        left = before - eu_acked[0] - (len(consumers) - 1)
                        drained = stop_pub.is_set() and len(acked) == sum(published.values())
                    if left > 0:
                        empty.append(left)
                    if drained:
                        return
                    continue
                pairs = [(e["topic"], e["offset"]) for e in evs]
                r = s.post(gurl(h, "fast", "/ack"), timeout=10,
                           json={"events": [{"topic": t, "offset": o} for t, o in pairs]})
                if r.status_code != 200 or r.json()["acked"] != 1:
                    errors.append(r.text)
                    return
                with cond:
                    for p in pairs:
                        if p in acked:
                            twice.append(p)
                        acked.add(p)
                        eu_acked[0] += p[0] == "orders.eu"
                    cond.notify_all()
        errors.append("a consumer gave up")

    since = {h.port: os.path.getsize(h.log_path) for h in (a, b)}
    consumers = [threading.Thread(target=consumer, args=(h,), daemon=True)
                 for h in (a, b) for _ in range(2)]
    pub = threading.Thread(target=publisher, daemon=True)
    for t in consumers + [pub]:
        t.start()
    # The relist timer of each node ticks every RELIST_MS from its start:
    # many re-lists, so fetches land inside them on a machine of any speed.
    wait_for(lambda: errors or all(relists(h, since[h.port], "fast") >= RELISTS
                                   for h in (a, b)), 30,
             interval=0.05, what=f"{RELISTS} re-lists of the group on both nodes")
    with cond:
        running = [t.is_alive() for t in consumers]
        left_at_relist = sum(published.values()) - len(acked)
    stop_pub.set()
    with cond:
        cond.notify_all()
    pub.join(30)
    for t in consumers:
        t.join(45)
    assert not pub.is_alive() and not any(t.is_alive() for t in consumers)
    assert not errors, errors[:3]
    # The re-lists came while every consumer fetched and events were left.
    assert all(running) and left_at_relist > 0, (running, left_at_relist)
    assert not empty, f"{len(empty)} empty fetches with events left (at most {max(empty)})"
    assert not twice, twice[:5]
    assert published["orders.mid"] > 0, published
    everything = {(t, o) for t, n in published.items() for o in range(1, n + 1)}
    assert acked == everything, sorted(everything - acked)[:10]
    for h in (a, b):
        st = requests.get(gurl(h, "fast"), timeout=10).json()
        assert {t["topic"]: t["position"] for t in st["topics"]} == published, st
        assert st["pending"] == 0 and st["lag"] == 0, st


HOLD_MS = 5000  # test-only HERALD_TEST_GROUP_RELIST_MS: each re-list is held this long

# Re-lists held one period each (HERALD_TEST_GROUP_RELIST_HOLD): the group
# looks as if a re-list ran, for HOLD_MS, every other period.
held_cluster = cluster_fixture(nodes=2, args=["--log-level", "debug"],
                               env={"HERALD_TEST_GROUP_RELIST_MS": str(HOLD_MS),
                                    "HERALD_TEST_GROUP_RELIST_HOLD": "1"})


def test_a_fetch_is_served_beside_a_re_list_not_after_it(held_cluster):
    """Once a group's first list ended, a fetch with wait=0 on a node is
    served while that node lists the pattern's topics again (held HOLD_MS
    by the test hook), not held until the re-list ends: on each node, right
    after a held re-list began, a fetch answers an event well within HOLD_MS,
    and that re-list was still running when it answered."""
    a, b = held_cluster.nodes
    publish_n(a, "orders.eu", 4, "eu")
    r = requests.put(gurl(a, "hold"), json={"ack_wait_ms": 60000}, timeout=10)
    assert r.status_code == 201, r.text
    assert requests.get(gurl(b, "hold"), timeout=10).status_code == 200  # B lists it too

    def held(h):
        return h.read_log().count("group_pattern_relist_held pattern=orders.* group=hold\n")

    def relisted(h):
        return h.read_log().count("group_pattern_relist pattern=orders.* group=hold ")

    got = []
    for h in (a, b, a, b):
        before = held(h)
        wait_for(lambda: held(h) > before, 2 * HOLD_MS / 1000 + 10, interval=0.01,
                 what="a held re-list")
        lists = relisted(h)
        r = requests.post(gurl(h, "hold", "/fetch?max=1&wait=0"), timeout=HOLD_MS / 2000)
        assert r.status_code == 200, r.text
        evs = r.json()["events"]
        assert len(evs) == 1, r.text
        assert relisted(h) == lists, "the held re-list ended before the fetch answered"
        got.append((evs[0]["topic"], evs[0]["offset"]))
    assert sorted(got) == [("orders.eu", o) for o in (1, 2, 3, 4)], got
