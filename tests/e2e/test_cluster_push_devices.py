"""A device registered or deleted on one herald node and a push event published
on another at once, with the push subscription delivered by a third
(docs/cluster.md "The device registry"): the delivering node re-reads the
user's device records before it picks the devices of an event newer than its
last whole re-list, so the new device gets that event and the deleted one does
not, without waiting for the 2 s re-list. Fixtures: the three-node Redis
cluster and the APNs stand-in of test_cluster_push.py."""
import pytest
import requests

from conftest import per_test_timeout, wait_for
from test_cluster_push import (PushCluster, apns_sent, knows, notify, offsets, ok,  # noqa: F401
                               providers)
from redis_cluster import needs_redis, started
from test_push_subscriptions import H, hexs

pytestmark = needs_redis

_timeout = per_test_timeout(90)

USER = "77"


@pytest.fixture
def cluster(tmp_path, providers):  # noqa: F811
    yield from started(PushCluster(tmp_path, args=providers.args))


def register(h, dev, token):
    ok(requests.put(f"{h.url}/v1/users/{USER}/devices/{dev}", headers=H, timeout=10,
                    json={"platform": "apns", "token": token, "environment": "sandbox"}), 200, 201)


def test_device_registered_or_deleted_elsewhere_is_used_at_once(cluster, providers):
    nodes = cluster.nodes
    base = hexs("devwin-base")
    register(nodes[0], "base", base)
    wait_for(lambda: all(knows(h, f"/v1/users/{USER}/devices/base") for h in nodes), 15,
             what="every node knows the first device")
    sid = ok(requests.post(nodes[1].url + "/v1/push/subscriptions", headers=H, timeout=10,
                           json={"topic": f"user:{USER}", "to": "user", "start": "oldest"}), 201)["id"]
    wait_for(lambda: all(knows(h, f"/v1/push/subscriptions/{sid}") for h in nodes), 15,
             what="every node knows the subscription")
    first = notify(nodes[2], USER, 0)
    wait_for(lambda: first in offsets(providers, base), 30, what="the first event pushed")
    wait_for(lambda: sum(apns_sent(h) for h in nodes) >= 1, 10, what="the send counters")
    owner = next(h for h in nodes if apns_sent(h) > 0)
    a, c = [h for h in nodes if h is not owner]

    # Registered on A, published on C at once (no wait), delivered by the
    # owner: the new device gets the event. Several rounds, so that a node
    # that relied on its 2 s re-list would miss at least one.
    fresh = []
    for i in range(4):
        token = hexs(f"devwin-new-{i}")
        register(a, f"new{i}", token)
        fresh.append((token, notify(c, USER, 10 + i)))
    for token, off in fresh:
        wait_for(lambda: off in offsets(providers, base), 30, what=f"offset {off} pushed")
        wait_for(lambda: off in offsets(providers, token), 10,
                 what=f"offset {off} reaches the device registered just before it elsewhere")

    # Deleted on A, published on C at once: the deleted device gets nothing.
    gone = []
    for i in range(4):
        token = hexs(f"devwin-new-{i}")
        r = requests.delete(f"{a.url}/v1/users/{USER}/devices/new{i}", headers=H, timeout=10)
        assert r.status_code == 204, r.text
        gone.append((token, notify(c, USER, 20 + i)))
    last = notify(c, USER, 30)  # pushed after the ones above were fanned out
    wait_for(lambda: {o for _, o in gone} | {last} <= set(offsets(providers, base)), 30,
             what="the events after the deletes pushed to the remaining device")
    for token, off in gone:
        assert off not in offsets(providers, token), \
            f"offset {off} pushed to a device deleted before it was published"
