"""GET /v1/topics with --engine redis over two shards (docs/cluster.md
"Every key"): each shard gives a page of names from herald:topics, then one
call per listed topic for its state; the pages merge in name order, `next`
walks them, every listed object is the topic's own GET /v1/topics/{topic},
and a name whose topic is gone is skipped."""
import json

import requests

from conftest import CE_JSON, per_test_timeout, structured
from redis_cluster import Cluster, Redis, cluster_fixture, needs_redis

pytestmark = needs_redis

_timeout = per_test_timeout(90)


class TwoShards(Cluster):
    """Two herald nodes on two shards (a second primary, no replica)."""

    def __init__(self, tmp_path, **kw):
        super().__init__(tmp_path, nodes=2, durability="none", **kw)
        self.second = Redis(tmp_path / "redis-second")

    def start_redis(self):
        super().start_redis()
        self.second.start()

    def node_args(self):
        args = super().node_args()
        i = args.index("--redis-url") + 1
        args[i] += f",redis://127.0.0.1:{self.second.port}"
        return args

    def stop(self):
        try:
            super().stop()
        finally:
            self.second.stop()


cluster = cluster_fixture(TwoShards)


def get(h, path, **params):
    r = requests.get(h.url + path, params=params, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def test_the_listing_pages_over_two_shards(cluster):
    a, b = cluster.nodes
    names = [f"l:{i:02d}" for i in range(30)]
    for i, t in enumerate(names):
        h = (a, b)[i % 2]
        for k in range(i % 3 + 1):
            r = h.publish(t, json.dumps(structured(f"{t}-{k}")), headers=CE_JSON)
            assert r.status_code == 201, r.text
    assert a.publish("m:other", json.dumps(structured("o")), headers=CE_JSON).status_code == 201
    shards = (cluster.primary, cluster.second)
    assert all(s.cmd("ZCARD", "herald:topics") > 0 for s in shards)
    # A name listed whose topic is gone (a deletion racing a first publish).
    cluster.second.cmd("ZADD", "herald:topics", "0", "l:zz-gone")
    for h in (a, b):
        got, after = [], ""
        while True:
            page = get(h, "/v1/topics", prefix="l:", after=after, limit=7)
            assert len(page["topics"]) <= 7
            got += page["topics"]
            if not page["next"]:
                break
            after = page["next"]
        assert [t["name"] for t in got] == names
        for i, t in enumerate(got):
            assert (t["first"], t["last"], t["count"]) == (1, i % 3 + 1, i % 3 + 1), t
            assert t == get(h, "/v1/topics/" + t["name"]), t
    # One page with everything, across the prefix.
    every = get(a, "/v1/topics", limit=100)["topics"]
    assert [t["name"] for t in every] == names + ["m:other"]
