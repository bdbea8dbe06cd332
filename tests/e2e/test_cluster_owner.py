"""Webhook ownership between herald nodes on the Redis engine
(docs/cluster.md "Webhook and push ownership", docs/webhooks.md "Several
nodes"): a subscription created on one node is known to every node (the
periodic re-list), delivered by exactly one node at a time (the holder of
its ownership lease, named in each delivery's `herald-node` header), and
after a kill -9 of that node another node takes over within seconds from
the stored position: every offset arrives, each node's deliveries are in
order, duplicates only around the takeover. A delete on any node stops it
on every node; changes on a node that does not deliver it are refused.
Fixture: tests/e2e/redis_cluster.py (a primary with appendfsync always,
one replica, three herald nodes on 127.0.0.1). Receiver:
tests/js/webhook_receiver.js."""
import json
import os
import signal
import time

import requests

from conftest import per_test_timeout, structured, wait_for
from redis_cluster import cluster_fixture, needs_redis
from test_webhooks import CE, SECRET1, SECRET2, receiver  # noqa: F401 (receiver: a fixture)

pytestmark = needs_redis

_timeout = per_test_timeout(90)

ARGS = ["--webhook-allow-private", "on", "--webhook-time-scale", "0.01", "--webhook-timeout", "1s"]


cluster = cluster_fixture(args=ARGS)


def create(h, **body):
    r = requests.post(h.url + "/v1/subscriptions", json=body, timeout=10)
    assert r.status_code == 201, r.text
    return r.json()


def publish(nodes, topic, start, n):
    """Publishes events e<start>.. round-robin over nodes (each answered 201)."""
    for i in range(start, start + n):
        h = nodes[i % len(nodes)]
        r = h.publish(topic, json.dumps(structured(f"e{i}", data={"n": i})), headers=CE)
        assert r.status_code == 201, r.text


def node_of(cluster, name):
    """The herald node whose --node-name (host:port by default) is name."""
    for h in cluster.nodes:
        if name and name.endswith(f":{h.port}"):
            return h
    raise AssertionError(f"no node named {name!r}")


def ok_deliveries(rc, path):
    return [d for d in rc.log()["deliveries"] if d["path"] == path and d["status"] == 200 and d["valid"]]


def offsets_seen(rc, path):
    return {d["offset"] for d in ok_deliveries(rc, path)}


def test_one_node_delivers_and_another_takes_over_after_kill9(cluster, receiver):
    a, b, c = cluster.nodes
    s = create(a, topic="orders", url=receiver.url + "/o", secret=SECRET1)
    # Every node learns of it (the re-list), whichever node created it.
    for h in (b, c):
        wait_for(lambda: requests.get(f"{h.url}/v1/subscriptions/{s['id']}", timeout=5).status_code == 200,
                 15, what=f"{h.url} knows the subscription")
    publish(cluster.nodes, "orders", 1, 40)
    wait_for(lambda: offsets_seen(receiver, "/o") >= set(range(1, 41)), 30, what="offsets 1..40")
    first = ok_deliveries(receiver, "/o")
    senders = {d["node"] for d in first}
    assert len(senders) == 1, f"delivered by several nodes at once: {senders}"
    owner = node_of(cluster, senders.pop())
    assert [d["offset"] for d in first] == list(range(1, 41)), "in order, once each"

    # A node that does not deliver it shows the owner's position.
    others = [h for h in cluster.nodes if h is not owner]
    wait_for(lambda: requests.get(f"{others[1].url}/v1/subscriptions/{s['id']}", timeout=5).json()["position"] == 40,
             15, what="a non-owner shows the owner's position")

    # kill -9 the owner in the middle of a stream of publishes.
    killed_at = time.time() * 1000
    owner.kill9()
    publish(others, "orders", 41, 40)
    wait_for(lambda: offsets_seen(receiver, "/o") >= set(range(1, 81)), 40, what="offsets 1..80 after the takeover")
    got = ok_deliveries(receiver, "/o")
    after = [d for d in got if d["t"] >= killed_at]
    new_senders = {d["node"] for d in after}
    assert len(new_senders) == 1, f"after the takeover, several nodes deliver: {new_senders}"
    new_owner = node_of(cluster, next(iter(new_senders)))
    assert new_owner is not owner
    # Each node's deliveries in order; the new owner starts at or below
    # the old one's last and goes on without a gap.
    by_node = {}
    for d in got:
        by_node.setdefault(d["node"], []).append(d["offset"])
    for name, offs in by_node.items():
        assert offs == sorted(offs) and len(offs) == len(set(offs)), (name, offs)
    new_offs = by_node[next(iter(new_senders))]
    assert new_offs[0] <= 41 and new_offs == list(range(new_offs[0], 81)), new_offs
    dups = len(got) - len({d["offset"] for d in got})
    assert dups <= 5, f"{dups} duplicates (only the unwritten acks around the takeover)"
    took = min(d["t"] for d in after) - killed_at
    assert took < 10000, f"the takeover took {took} ms"


def test_a_stopped_owner_is_fenced_out_when_it_resumes(cluster, receiver):
    """SIGSTOP the owner past its lease: another node takes over; after
    SIGCONT the old owner sends nothing more and its writes cannot move
    the position back (the fencing token moved on)."""
    a = cluster.nodes[0]
    s = create(a, topic="rides", url=receiver.url + "/r", secret=SECRET1)
    publish(cluster.nodes, "rides", 1, 20)
    wait_for(lambda: offsets_seen(receiver, "/r") >= set(range(1, 21)), 30, what="offsets 1..20")
    owner = node_of(cluster, ok_deliveries(receiver, "/r")[0]["node"])
    others = [h for h in cluster.nodes if h is not owner]
    stopped_at = time.time() * 1000
    os.kill(owner.proc.pid, signal.SIGSTOP)
    try:
        publish(others, "rides", 21, 20)
        wait_for(lambda: offsets_seen(receiver, "/r") >= set(range(21, 41)), 30, what="offsets 21..40 by another node")
    finally:
        os.kill(owner.proc.pid, signal.SIGCONT)
    publish(others, "rides", 41, 20)
    wait_for(lambda: offsets_seen(receiver, "/r") >= set(range(1, 61)), 30, what="offsets 41..60")
    wait_for(lambda: "owner_lost lease=webhook:" + s["id"] in owner.read_log(), 15, what="the old owner knows it lost")
    late = [d for d in ok_deliveries(receiver, "/r") if d["t"] > stopped_at and node_of(cluster, d["node"]) is owner]
    assert late == [], f"the fenced-out owner delivered {late}"
    for h in cluster.nodes:
        wait_for(lambda: requests.get(f"{h.url}/v1/subscriptions/{s['id']}", timeout=5).json()["position"] == 60,
                 15, what=f"position 60 on {h.url}")


def info(h, sid):
    r = requests.get(f"{h.url}/v1/subscriptions/{sid}", timeout=5)
    assert r.status_code == 200, r.text
    return r.json()


def known_everywhere(cluster, sid):
    """Waits until every node knows subscription sid (the re-list)."""
    for h in cluster.nodes:
        wait_for(lambda: requests.get(f"{h.url}/v1/subscriptions/{sid}", timeout=5).status_code == 200,
                 15, what=f"{h.url} knows {sid}")


def test_a_change_on_another_node_moves_delivery_there(cluster, receiver):
    """Pause on a node that does not deliver the subscription: that node
    takes it over (the former owner's writes are fenced out), the pause
    holds everywhere; resume on the third node: it delivers from the
    stored position, in order; a rotation on the first owner signs with
    the new secret from then on; a replay on yet another node re-sends."""
    a = cluster.nodes[0]
    s = create(a, topic="cars", url=receiver.url + "/c", secret=SECRET1)
    known_everywhere(cluster, s["id"])
    publish(cluster.nodes, "cars", 1, 10)
    wait_for(lambda: offsets_seen(receiver, "/c") >= set(range(1, 11)), 30, what="offsets 1..10")
    x = node_of(cluster, ok_deliveries(receiver, "/c")[0]["node"])
    y, z = [h for h in cluster.nodes if h is not x]
    r = requests.post(f"{y.url}/v1/subscriptions/{s['id']}/pause", timeout=5)
    assert r.status_code == 200 and r.json()["state"] == "paused", r.text
    for h in cluster.nodes:
        wait_for(lambda: info(h, s["id"])["state"] == "paused", 15, what=f"paused on {h.url}")
    publish(cluster.nodes, "cars", 11, 10)
    wait_for(lambda: info(y, s["id"])["last_offset"] == 20, 15, what="the new owner saw offset 20")
    assert max(offsets_seen(receiver, "/c")) == 10, "nothing is sent while paused"

    r = requests.post(f"{z.url}/v1/subscriptions/{s['id']}/resume", timeout=5)
    assert r.status_code == 200 and r.json()["state"] == "active", r.text
    wait_for(lambda: offsets_seen(receiver, "/c") >= set(range(1, 21)), 30, what="offsets 11..20 after resume")
    later = [d for d in ok_deliveries(receiver, "/c") if d["offset"] > 10]
    assert {d["node"] for d in later} == {f"{d['node']}" for d in later[:1]}
    assert node_of(cluster, later[0]["node"]) is z, "the node that resumed it delivers it"
    assert [d["offset"] for d in later] == list(range(11, 21))

    secret2 = SECRET2
    receiver.secrets(SECRET1, secret2)
    r = requests.post(f"{x.url}/v1/subscriptions/{s['id']}/secret", json={"secret": secret2}, timeout=10)
    assert r.status_code == 200, r.text
    publish(cluster.nodes, "cars", 21, 5)
    wait_for(lambda: offsets_seen(receiver, "/c") >= set(range(1, 26)), 30, what="offsets 21..25 after rotate")
    rot = [d for d in ok_deliveries(receiver, "/c") if d["offset"] > 20]
    assert all(node_of(cluster, d["node"]) is x for d in rot), "the node that rotated it delivers it"
    assert all(d["verified"][1] and d["sig_count"] == 2 for d in rot), rot

    r = requests.post(f"{y.url}/v1/subscriptions/{s['id']}/replay?from=24", timeout=10)
    assert r.status_code == 200, r.text
    wait_for(lambda: len([d for d in ok_deliveries(receiver, "/c") if d["offset"] >= 24]) >= 4, 30,
             what="24 and 25 sent again")
    again = [d for d in ok_deliveries(receiver, "/c") if d["offset"] >= 24][2:]
    assert [d["offset"] for d in again] == [24, 25] and all(node_of(cluster, d["node"]) is y for d in again)


def test_delete_on_any_node_stops_delivery_everywhere(cluster, receiver):
    a, b, c = cluster.nodes
    s = create(a, topic="jobs", url=receiver.url + "/gone", secret=SECRET1)
    control = create(b, topic="jobs", url=receiver.url + "/control", secret=SECRET1)
    for h in cluster.nodes:
        for sid in (s["id"], control["id"]):
            wait_for(lambda: requests.get(f"{h.url}/v1/subscriptions/{sid}", timeout=5).status_code == 200,
                     15, what=f"{h.url} knows {sid}")
    publish(cluster.nodes, "jobs", 1, 5)
    wait_for(lambda: offsets_seen(receiver, "/gone") >= set(range(1, 6)), 30, what="first deliveries")
    owner = node_of(cluster, ok_deliveries(receiver, "/gone")[0]["node"])
    other = next(h for h in cluster.nodes if h is not owner)
    r = requests.delete(f"{other.url}/v1/subscriptions/{s['id']}", timeout=10)
    assert r.status_code == 204, r.text
    for h in cluster.nodes:
        wait_for(lambda: requests.get(f"{h.url}/v1/subscriptions/{s['id']}", timeout=5).status_code == 404,
                 15, what=f"{h.url} dropped the deleted subscription")
    publish(cluster.nodes, "jobs", 6, 5)
    # The control subscription on the same topic gets them; the deleted one never does.
    wait_for(lambda: offsets_seen(receiver, "/control") >= set(range(1, 11)), 30, what="control deliveries")
    assert max(offsets_seen(receiver, "/gone")) <= 5
    r = requests.get(f"{owner.url}/v1/subscriptions", timeout=5).json()
    assert [x["id"] for x in r["subscriptions"]] == [control["id"]]


def test_clean_stop_hands_over_at_once(cluster, receiver):
    """SIGTERM releases the leases: another node goes on well before a
    crashed owner's lease would run out."""
    a = cluster.nodes[0]
    create(a, topic="pings", url=receiver.url + "/p", secret=SECRET1)
    publish(cluster.nodes, "pings", 1, 10)
    wait_for(lambda: offsets_seen(receiver, "/p") >= set(range(1, 11)), 30, what="offsets 1..10")
    owner = node_of(cluster, ok_deliveries(receiver, "/p")[0]["node"])
    owner.stop()
    others = [h for h in cluster.nodes if h is not owner]
    publish(others, "pings", 11, 10)
    wait_for(lambda: offsets_seen(receiver, "/p") >= set(range(1, 21)), 30, what="offsets 11..20")
    got = ok_deliveries(receiver, "/p")
    # A clean stop wrote its position: nothing is sent twice.
    assert sorted(d["offset"] for d in got) == list(range(1, 21)), [d["offset"] for d in got]
