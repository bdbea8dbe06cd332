"""GET /v1/groups with several nodes (--engine redis, docs/api.md): one
Redis primary with a replica and three herald nodes on 127.0.0.1. A plain
group created on A and a group over a topic pattern created on B are
listed by C, which never used either (the list is read from Redis, sorted
by topic and name); a group deleted on A leaves every node's list."""
from concurrent.futures import ThreadPoolExecutor

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


def test_many_groups_and_patterns_are_listed_once_each(cluster):
    """More rows than one HSCAN page (herald:groups is read a page at a
    time), pattern groups loaded on one node among them: every node lists
    each group exactly once, sorted; the node that created the pattern
    groups shows their counters, the others their names."""
    a, b, c = cluster.nodes
    plain = [(f"t{i % 40:02d}", f"g{i:04d}") for i in range(1300)]
    pats = [(f"p{i:02d}.*", "ship") for i in range(60)]

    def put_all(chunk):
        # One session (kept-alive connections) per worker: a new connection
        # per PUT would meet --connection-rate-per-ip on a fast machine.
        with requests.Session() as s:
            for h, topic, group in chunk:
                # A PUT is idempotent: one answered 503 (a WAIT timed out on
                # a busy machine) is sent again, a few times at most.
                for _ in range(5):
                    r = s.put(gurl(h, topic, group), json={"ack_wait_ms": 5000}, timeout=30)
                    if r.status_code != 503:
                        break
                assert r.status_code in (200, 201), r.text

    jobs = [((a, c)[i % 2], t, g) for i, (t, g) in enumerate(plain)] + [(b, t, g) for t, g in pats]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put_all, [jobs[k::8] for k in range(8)]))
    want = sorted(plain + pats)
    cluster.primary.cmd("CONFIG", "RESETSTAT")
    for h in (a, b, c):
        groups = listed(h)
        assert [(g["topic"], g["group"]) for g in groups] == want
        for g in groups:
            if "pattern" in g:
                assert g["pattern"] == g["topic"]
                assert ("topics_count" in g) is (h is b), g
    # Read in pages (each listing 2 pages or more), never the whole hash.
    stats = cluster.primary.info("commandstats")
    assert "cmdstat_hgetall" not in stats
    assert int(stats["cmdstat_hscan"].split(",")[0].split("=")[1]) >= 6
