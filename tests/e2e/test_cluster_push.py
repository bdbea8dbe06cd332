"""Push subscriptions and devices between herald nodes on the Redis engine
(docs/cluster.md "Webhook and push ownership"): a device registered on one
node is known to every node (the registry's re-list), a push subscription
created on another is delivered by exactly one node at a time (the holder
of its "push:<id>" ownership lease), events published on a third reach the
device once each, in order; after a kill -9 of the delivering node another
takes over from the stored position and nothing is lost. Fixtures:
tests/e2e/redis_cluster.py (a primary with appendfsync always, one replica,
three herald nodes) and the APNs stand-in of tests/js (the Providers of
test_push_subscriptions.py)."""
import json
import time

import pytest
import requests

from conftest import Herald, per_test_timeout, wait_for
from redis_cluster import Cluster, needs_redis, started
from test_push_subscriptions import H, KEYS, Providers, herald_of, hexs

pytestmark = needs_redis

_timeout = per_test_timeout(90)


class PushCluster(Cluster):
    """Cluster whose nodes know the admin key and the provider stand-ins."""

    def node(self, name):
        return Herald(self.tmp / name, args=self.node_args(), config=KEYS).start()


@pytest.fixture
def providers(tmp_path):
    (tmp_path / "providers").mkdir()
    p = Providers(tmp_path / "providers")
    yield p
    p.stop()


@pytest.fixture
def cluster(tmp_path, providers):
    yield from started(PushCluster(tmp_path, args=providers.args))


def ok(r, *codes):
    assert r.status_code in codes, r.text
    return r.json()


def notify(h, user, n):
    """Publishes one notification; a 503 (a replica's WAIT that timed out
    on a loaded machine) is retried. Such an answer may still have stored
    the event, so callers expect every offset up to the last returned."""
    for _ in range(10):
        r = requests.post(f"{h.url}/v1/users/{user}/notifications", json={"n": n}, headers=H,
                          timeout=10)
        if r.status_code != 503:
            return ok(r, 200, 201)["offset"]
        time.sleep(0.2)
    raise AssertionError(f"notify kept answering 503: {r.text}")


def apns_sent(h):
    """The APNs pushes this node says it sent (its /metrics)."""
    text = requests.get(h.url + "/metrics", headers=H, timeout=10).text
    row = 'herald_push_sends_total{provider="apns",result="ok"} '
    return sum(float(l.split()[-1]) for l in text.splitlines() if l.startswith(row))


def offsets(providers, token):
    try:
        got = providers.apns_got(token)
    except Exception:
        p = providers.apns.proc
        raise AssertionError(f"APNs mock: rc={p.poll()} stderr={p.stderr.read() if p.poll() is not None else ''}")
    return [herald_of(json.loads(m["body"]))["offset"] for m in got]


def knows(h, path):
    try:
        return requests.get(h.url + path, headers=H, timeout=5).status_code == 200
    except requests.RequestException:
        return False


def test_device_on_a_subscription_on_b_events_on_c_then_kill9_owner(cluster, providers):
    a, b, c = cluster.nodes
    token = hexs("cluster-42")
    ok(requests.put(f"{a.url}/v1/users/42/devices/phone", headers=H, timeout=10,
                    json={"platform": "apns", "token": token, "environment": "sandbox"}), 200, 201)
    for h in (b, c):
        wait_for(lambda: knows(h, "/v1/users/42/devices/phone"), 15,
                 what=f"{h.url} knows the device registered on another node")
    sid = ok(requests.post(b.url + "/v1/push/subscriptions", headers=H, timeout=10,
                           json={"topic": "user:42", "to": "user", "start": "oldest"}), 201)["id"]
    for h in (a, c):
        wait_for(lambda: knows(h, f"/v1/push/subscriptions/{sid}"), 15,
                 what=f"{h.url} knows the push subscription")

    top = max(notify(c, "42", i) for i in range(20))
    first = list(range(1, top + 1))
    wait_for(lambda: set(offsets(providers, token)) >= set(first), 30, what="offsets 1..20 pushed")
    got = offsets(providers, token)
    # Once each. (A subscription sends the events of its window, 64, in
    # parallel, as on one node: arrival order within it is not promised.)
    assert sorted(got) == first, f"each event once: {got}"
    # Exactly one node sent them.
    wait_for(lambda: sum(apns_sent(h) for h in cluster.nodes) >= top, 10, what="the send counters")
    counts = {h.port: apns_sent(h) for h in cluster.nodes}
    senders = [h for h in cluster.nodes if counts[h.port] > 0]
    assert len(senders) == 1 and counts[senders[0].port] == top, counts
    owner = senders[0]
    others = [h for h in cluster.nodes if h is not owner]
    # A node that does not deliver it shows the owner's position.
    wait_for(lambda: ok(requests.get(f"{others[0].url}/v1/push/subscriptions/{sid}", headers=H,
                                     timeout=5), 200)["positions"].get("user:42") == top,
             15, what="a non-owner shows the owner's position")

    # kill -9 the owner mid-stream: another node continues, nothing lost.
    killed = time.monotonic()
    second = []
    for i in range(20):
        second.append(notify(others[i % 2], "42", 20 + i))
        if i == 4:
            owner.kill9()
    top = max(second)
    wait_for(lambda: set(offsets(providers, token)) >= set(range(1, top + 1)), 40,
             what="every offset after the takeover")
    took = time.monotonic() - killed
    got = offsets(providers, token)
    # Repeats only around the takeover (events the dead owner pushed but
    # had not recorded yet are pushed again: at least once).
    assert set(got) == set(range(1, top + 1)), got
    assert len(got) - top <= 10, f"{len(got) - top} repeats around the takeover: {got}"
    counts = {h.port: apns_sent(h) for h in others}
    assert sum(1 for v in counts.values() if v > 0) == 1, f"after the takeover several nodes push: {counts}"
    assert took < 30


def owner_of(cluster, before):
    """The one node whose APNs sends grew since `before` (port → count)."""
    now = {h.port: apns_sent(h) for h in cluster.nodes if h.proc}
    grew = [h for h in cluster.nodes if h.proc and now[h.port] > before.get(h.port, 0)]
    assert len(grew) == 1, f"several nodes pushed: {before} -> {now}"
    return grew[0], now


def test_pause_resume_on_a_non_owner_and_delete_anywhere(cluster, providers):
    a, b, c = cluster.nodes
    token = hexs("cluster-7")
    ok(requests.put(f"{a.url}/v1/users/7/devices/phone", headers=H, timeout=10,
                    json={"platform": "apns", "token": token, "environment": "sandbox"}), 200, 201)
    wait_for(lambda: all(knows(h, "/v1/users/7/devices/phone") for h in (b, c)), 15,
             what="every node knows the device")
    sid = ok(requests.post(a.url + "/v1/push/subscriptions", headers=H, timeout=10,
                           json={"topic": "user:7", "to": "user", "start": "oldest"}), 201)["id"]
    wait_for(lambda: all(knows(h, f"/v1/push/subscriptions/{sid}") for h in (b, c)), 15,
             what="every node knows the subscription")
    one = notify(b, "7", 1)
    wait_for(lambda: sorted(set(offsets(providers, token))) == list(range(1, one + 1)), 30,
             what="offset 1 pushed")
    owner, counts = owner_of(cluster, {})
    other = next(h for h in cluster.nodes if h is not owner)

    # A pause on a node that does not deliver it: answered once written by
    # that node (it takes the lease over); nothing is pushed while paused.
    p = ok(requests.post(f"{other.url}/v1/push/subscriptions/{sid}/pause", headers=H, timeout=15), 200)
    assert p["state"] == "paused"
    for h in cluster.nodes:
        wait_for(lambda: ok(requests.get(f"{h.url}/v1/push/subscriptions/{sid}", headers=H,
                                         timeout=5), 200)["state"] == "paused",
                 15, what=f"{h.url} shows it paused")
    notify(c, "7", 2)
    three = notify(a, "7", 3)
    # Resumed on a third node: both events go out, once each.
    third = next(h for h in cluster.nodes if h is not owner and h is not other)
    r = ok(requests.post(f"{third.url}/v1/push/subscriptions/{sid}/resume", headers=H, timeout=15), 200)
    assert r["state"] == "active"
    wait_for(lambda: sorted(offsets(providers, token)) == list(range(1, three + 1)), 30,
             what="offsets 2, 3 after the resume")
    new_owner, counts = owner_of(cluster, counts)
    assert new_owner is third, "the resume moved delivery to the node it was made on"

    # A delete on a node that does not deliver it stops it everywhere.
    ok_del = requests.delete(f"{owner.url}/v1/push/subscriptions/{sid}", headers=H, timeout=10)
    assert ok_del.status_code == 204, ok_del.text
    for h in cluster.nodes:
        wait_for(lambda: requests.get(f"{h.url}/v1/push/subscriptions/{sid}", headers=H,
                                      timeout=5).status_code == 404, 15, what=f"{h.url} dropped it")
    notify(b, "7", 4)
    last = notify(c, "7", 5)
    # A marker subscription proves the events were read by now.
    mark = ok(requests.post(b.url + "/v1/push/subscriptions", headers=H, timeout=10,
                            json={"topic": "user:7", "to": "user", "start": "oldest",
                                  "filter": {"type_prefix": "nothing."}}), 201)["id"]
    wait_for(lambda: ok(requests.get(f"{b.url}/v1/push/subscriptions/{mark}", headers=H,
                                     timeout=5), 200)["positions"].get("user:7") == last,
             30, what="the marker subscription read every event")
    assert sorted(offsets(providers, token)) == list(range(1, three + 1))
