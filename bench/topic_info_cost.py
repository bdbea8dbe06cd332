#!/usr/bin/python3
"""What a topic's info costs Redis with a large first stream entry
(docs/cluster.md "Data layout": first/count come from the meta's low):
one herald node on one Redis primary, a topic of 4 publish calls of 250
events of 3.5 kB (one entry each, ~900 kB), then 500 GET /v1/topics/T,
once with the meta's low and once without it (the first entry read whole,
as before low existed), each from INFO commandstats after CONFIG RESETSTAT.

    HERALD_BIN=build/herald /usr/bin/python3 bench/topic_info_cost.py
"""
import json
import os
import pathlib
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))

import requests  # noqa: E402
from conftest import CE_BATCH, Herald, structured  # noqa: E402
from redis_cluster import Cluster, started  # noqa: E402
class C(Cluster):
    def node(self, name):
        return Herald(self.tmp / name, args=self.node_args(),
                      config="[namespace keep]\nretention-max-count = 100000\n").start()

with tempfile.TemporaryDirectory() as d:
    tmp = pathlib.Path(d)
    for c in started(C(tmp, nodes=1, durability="primary")):
        h = c.nodes[0]
        big = "x" * 3500
        for k in range(4):
            r = h.publish("keep:big", json.dumps([structured(f"e{k}-{i}", data={"s": big}) for i in range(250)]), headers=CE_BATCH)
            assert r.status_code == 200, r.text
        print("first entry events:", c.primary.cmd("XRANGE", "{t:keep:big}:s", "-", "+", "COUNT", 1)[0][1][1], "entries", c.primary.cmd("XLEN", "{t:keep:big}:s"))
        def run(label):
            c.primary.cmd("CONFIG", "RESETSTAT")
            t0 = time.time()
            N = 500
            s = requests.Session()
            for i in range(N):
                r = s.get(h.topic_url("keep:big", ""))
                assert r.status_code == 200
            dt = time.time() - t0
            st = c.primary.info("commandstats")
            print(label, "info:", r.json()["first"], r.json()["count"], "http ms/call %.3f" % (dt / N * 1000))
            for k in ("cmdstat_evalsha", "cmdstat_xrange", "cmdstat_hmget", "cmdstat_exists"):
                print("  ", k, st.get(k))
        for rep in range(2):
            run("with low   ")
            low = c.primary.cmd("HGET", "{t:keep:big}:m", "low")
            c.primary.cmd("HDEL", "{t:keep:big}:m", "low")
            run("without low")
            c.primary.cmd("HSET", "{t:keep:big}:m", "low", low)
