"""GET /v1/groups with several nodes (--engine redis, docs/api.md): one
Redis primary with a replica and three herald nodes on 127.0.0.1. A plain
group created on A and a group over a topic pattern created on B are
listed by C, which never used either (the list is read from Redis, sorted
by topic and name); a group deleted on A leaves every node's list."""
import requests

from conftest import per_test_timeout
from redis_cluster import cluster_fixture, needs_redis

pytestmark = needs_redis

_timeout = per_test_timeout(90)


cluster = cluster_fixture()


def gurl(h, topic, group):
    return f"{h.url}/v1/topics/{topic}/groups/{group}"


def listed(h):
    r = requests.get(h.url + "/v1/groups", timeout=10)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == len(body["groups"]), body
    return body["groups"]


def test_every_node_lists_every_group(cluster):
    a, b, c = cluster.nodes
    assert listed(c) == []
    for h, topic, group in ((a, "jobs", "workers"), (a, "jobs", "audit"), (b, "mail", "send")):
        r = requests.put(gurl(h, topic, group), json={"ack_wait_ms": 5000}, timeout=10)
        assert r.status_code in (200, 201), r.text
    r = requests.put(gurl(b, "orders.*", "ship"), json={"ack_wait_ms": 5000}, timeout=10)
    assert r.status_code in (200, 201), r.text
    plain = [{"topic": "jobs", "group": "audit"}, {"topic": "jobs", "group": "workers"},
             {"topic": "mail", "group": "send"}]
    for h in (a, b, c):
        groups = listed(h)
        assert [g for g in groups if "pattern" not in g] == plain, groups
        pat = [g for g in groups if "pattern" in g]
        assert len(pat) == 1 and pat[0]["group"] == "ship" and pat[0]["pattern"] == "orders.*", groups
    # B created the pattern group: its counters.
    assert listed(b)[-1] == {"topic": "orders.*", "group": "ship", "pattern": "orders.*",
                             "topics_count": 0, "pending": 0, "lag": 0, "dead_letters": 0}
    assert requests.delete(gurl(a, "jobs", "workers"), timeout=10).status_code == 204
    for h in (a, b, c):
        assert [g["group"] for g in listed(h) if "pattern" not in g] == ["audit", "send"]
