"""Pull consumer groups shared between herald nodes on the Redis engine
(docs/cluster.md "Pull groups"): the leases, delivery counts, ack floor and
dead letters live in Redis, with deadlines from Redis TIME, so consumers of
one group on several nodes compete for its events as if they were on one.
Same fixture as test_cluster.py: a primary with appendfsync always, one
replica, three herald nodes on 127.0.0.1."""
import threading
import time

import requests

from conftest import per_test_timeout, wait_for
from redis_cluster import cluster_fixture, needs_redis

pytestmark = needs_redis

_timeout = per_test_timeout(90)


cluster = cluster_fixture()


def group_url(h, topic, group, suffix=""):
    return f"{h.url}/v1/topics/{topic}/groups/{group}{suffix}"


def publish_n(h, topic, n):
    with requests.Session() as s:
        for i in range(n):
            r = s.post(h.topic_url(topic), json={"i": i}, timeout=10)
            assert r.status_code == 201, r.text


def test_consumers_on_three_nodes_share_one_group(cluster):
    """Two consumers on each node fetch and ack one group concurrently: no
    event is handed to two consumers (leases do not end within the test:
    ack_wait 60 s, so no redelivery is legitimate), each is acked exactly
    once, and every node then reports the same position."""
    nodes = cluster.nodes
    total = 300
    r = requests.put(group_url(nodes[1], "jobs", "workers"), json={"ack_wait_ms": 60000},
                     timeout=10)
    assert r.status_code == 201, r.text
    publish_n(nodes[0], "jobs", total)

    got = {}          # offset -> consumer
    dups = []
    errors = []
    acked = []
    lock = threading.Lock()

    def consumer(h, name):
        deadline = time.monotonic() + 60
        with requests.Session() as s:
            while time.monotonic() < deadline:
                r = s.post(group_url(h, "jobs", "workers", "/fetch?max=7&wait=1"), timeout=20)
                if r.status_code != 200:
                    errors.append(f"{name} fetch: {r.status_code} {r.text}")
                    return
                evs = r.json()["events"]
                if not evs:
                    st = s.get(group_url(h, "jobs", "workers"), timeout=10).json()
                    if st["position"] >= total:
                        return
                    continue
                offs = [e["offset"] for e in evs]
                with lock:
                    for e in evs:
                        if e["offset"] in got or e["deliveries"] != 1:
                            dups.append((e["offset"], got.get(e["offset"]), name, e["deliveries"]))
                        got[e["offset"]] = name
                a = s.post(group_url(h, "jobs", "workers", "/ack"), json={"offsets": offs},
                           timeout=20)
                if a.status_code != 200:
                    errors.append(f"{name} ack: {a.status_code} {a.text}")
                    return
                body = a.json()
                with lock:
                    acked.extend(offs)
                    if body["acked"] != len(offs) or body["ignored"]:
                        errors.append(f"{name} ack {offs}: {body}")
        errors.append(f"{name} gave up")

    threads = [threading.Thread(target=consumer, args=(h, f"{h.port}/{k}"), daemon=True)
               for h in nodes for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(75)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors[:5]
    assert not dups, dups[:5]
    assert sorted(acked) == list(range(1, total + 1))
    # Every node had a share (the group is not one node's).
    owners = {v.split("/")[0] for v in got.values()}
    assert len(owners) == 3, owners
    for h in nodes:
        st = requests.get(group_url(h, "jobs", "workers"), timeout=10).json()
        assert st["position"] == total and st["pending"] == 0 and st["next"] == total + 1, st
        assert st["ack_wait_ms"] == 60000, st


def test_leases_of_a_killed_node_go_to_another_node(cluster):
    """A consumer on node C fetches 7 events and C is killed (-9) before
    acking; a consumer on node A gets the other events at once, and those 7
    only after their lease deadline, with deliveries 2; then the group's
    position reaches the end."""
    a, b, c = cluster.nodes
    r = requests.put(group_url(a, "orders", "billing"), json={"ack_wait_ms": 2000}, timeout=10)
    assert r.status_code == 201, r.text
    publish_n(b, "orders", 20)
    r = requests.post(group_url(c, "orders", "billing", "/fetch?max=7"), timeout=10)
    leased_at = time.monotonic()
    held = [e["offset"] for e in r.json()["events"]]
    assert held == list(range(1, 8)), r.text
    c.kill9()

    with requests.Session() as s:
        r = s.post(group_url(a, "orders", "billing", "/fetch?max=100"), timeout=10)
        rest = r.json()["events"]
        assert [e["offset"] for e in rest] == list(range(8, 21)), r.text
        assert s.post(group_url(a, "orders", "billing", "/ack"),
                      json={"offsets": list(range(8, 21))}, timeout=10).json()["acked"] == 13
        # Nothing more before the deadline (position stays before 1).
        again = []
        while len(again) < 7 and time.monotonic() - leased_at < 30:
            r = s.post(group_url(a, "orders", "billing", "/fetch?max=100&wait=5"), timeout=20)
            assert r.status_code == 200, r.text
            evs = r.json()["events"]
            if evs and not again:
                assert time.monotonic() - leased_at >= 1.5, "handed out before the lease ended"
            again += evs
        assert sorted(e["offset"] for e in again) == held
        assert all(e["deliveries"] == 2 for e in again), again
        r = s.post(group_url(a, "orders", "billing", "/ack"), json={"offsets": held}, timeout=10)
        assert r.json()["acked"] == 7 and r.json()["position"] == 20, r.text
    st = requests.get(group_url(b, "orders", "billing"), timeout=10).json()
    assert st["position"] == 20 and st["pending"] == 0 and st["redeliveries"] == 7, st


def test_nacked_past_max_deliveries_lands_in_the_dead_letter_topic_once(cluster):
    """max_deliveries 2: fetched and nacked on node A, then on node B; the
    third hand-out (from node C) publishes it to pay.dlq instead, once, and
    moves the group's position past it; later fetches on every node get
    nothing more, and pay.dlq still holds one event."""
    a, b, c = cluster.nodes
    r = requests.put(group_url(a, "pay", "g"), json={"max_deliveries": 2, "ack_wait_ms": 30000},
                     timeout=10)
    assert r.status_code == 201, r.text
    publish_n(a, "pay", 1)
    for h, n in ((a, 1), (b, 2)):
        evs = requests.post(group_url(h, "pay", "g", "/fetch?max=10"), timeout=10).json()["events"]
        assert [(e["offset"], e["deliveries"]) for e in evs] == [(1, n)], evs
        r = requests.post(group_url(h, "pay", "g", "/nack"), json={"offsets": [1]}, timeout=10)
        assert r.json()["nacked"] == 1, r.text
    evs = requests.post(group_url(c, "pay", "g", "/fetch?max=10"), timeout=10).json()["events"]
    assert evs == []

    def dead_lettered():
        st = requests.get(group_url(b, "pay", "g"), timeout=10).json()
        return st["position"] == 1 and st["dead_letters"] == 1
    wait_for(dead_lettered, 10, interval=0.05, what="the dead letter to be acked")
    for h in (a, b, c):
        evs = requests.post(group_url(h, "pay", "g", "/fetch?max=10"), timeout=10).json()["events"]
        assert evs == []
    dl = b.read_all("pay.dlq")
    assert len(dl) == 1, dl
    data = dl[0]["data"]
    assert data["offset"] == 1 and data["attempts"] == 2 and data["group"] == "g", data
    assert data["reason"] == "max_deliveries" and data["event"]["data"] == {"i": 0}, data


def test_a_group_does_not_outlive_its_topic_deleted_on_another_node(cluster):
    """A group known only to node B (created there after every node
    loaded); its topic is deleted through node A and published to again
    (a new epoch): the group is gone for every node (GET 404 on C), and a
    fetch on B starts a new group at the new topic's first event."""
    a, b, c = cluster.nodes
    assert requests.put(group_url(b, "re", "g"), json={}, timeout=10).status_code == 201
    publish_n(a, "re", 3)
    evs = requests.post(group_url(b, "re", "g", "/fetch?max=2"), timeout=10).json()["events"]
    assert [e["offset"] for e in evs] == [1, 2]
    assert requests.delete(a.topic_url("re", ""), timeout=10).status_code == 200
    publish_n(a, "re", 1)
    r = requests.get(group_url(c, "re", "g"), timeout=10)
    assert r.status_code == 404, r.text
    evs = requests.post(group_url(b, "re", "g", "/fetch?max=10"), timeout=10).json()["events"]
    assert [(e["offset"], e["deliveries"]) for e in evs] == [(1, 1)], evs
    st = requests.get(group_url(c, "re", "g"), timeout=10).json()
    assert st["position"] == 0 and st["next"] == 2 and st["pending"] == 1, st
