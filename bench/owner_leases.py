#!/usr/bin/python3
"""Redis commands per second that ownership leases cost (src/consume/owner.c):
N webhook subscriptions on 2 herald nodes over one Redis primary (with its
replica, as tests/e2e/redis_cluster.py starts them), no events published,
so what Redis sees is the lease renewals and tries, the re-list and the
registry. Reads INFO commandstats twice, SECONDS apart, once every claim is
settled, and prints the rates.

    HERALD_BIN=build/herald /usr/bin/python3 bench/owner_leases.py [N] [SECONDS]
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))

import requests  # noqa: E402
from redis_cluster import Cluster  # noqa: E402


def commandstats(redis):
    out = {}
    for k, v in redis.info("commandstats").items():
        if k.startswith("cmdstat_"):
            out[k[8:]] = int(dict(x.split("=") for x in v.split(","))["calls"])
    return out


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    secs = float(sys.argv[2]) if len(sys.argv) > 2 else 10
    tmp = "/tmp/herald-owner-bench-%d" % os.getpid()
    os.makedirs(tmp)
    import pathlib
    c = Cluster(pathlib.Path(tmp), nodes=2, args=["--webhook-allow-private", "on", "--webhook-subscriptions-max", str(max(n, 1000))])
    c.start()
    try:
        s = requests.Session()
        for i in range(n):
            h = c.nodes[i % 2]
            for attempt in range(20):  # 503 (Retry-After) while Redis is busy: again
                r = s.post(h.url + "/v1/subscriptions", json={"topic": f"t{i % 50}", "url": "http://127.0.0.1:9/x",
                                                              "secret": "whsec_" + "a" * 32}, timeout=30)
                if r.status_code != 503:
                    break
                time.sleep(0.2)
            assert r.status_code == 201, r.text
        time.sleep(8)  # a bench, not a test: two re-list passes and a few lease ticks settle the claims
        a = commandstats(c.primary)
        t0 = time.monotonic()
        time.sleep(secs)
        b = commandstats(c.primary)
        dt = time.monotonic() - t0
        rates = {k: (b[k] - a.get(k, 0)) / dt for k in b if b[k] - a.get(k, 0) > 0}
        total = sum(rates.values())
        print(f"subscriptions={n} nodes=2 seconds={dt:.1f} redis_commands_per_s={total:.0f}")
        for k, v in sorted(rates.items(), key=lambda kv: -kv[1]):
            print(f"  {k:<16} {v:10.1f}/s")
    finally:
        c.stop()


if __name__ == "__main__":
    main()
