"""State shared between herald nodes on the Redis engine (docs/cluster.md
"Shared between nodes"): user cursors are a forward-only compare-and-set in
Redis, so sets from several nodes at once never move a cursor backwards;
"notify user 42" published on one node reaches user 42's connections on
the other nodes. Same fixture as test_cluster.py: a primary with
appendfsync always, one replica, three herald nodes on 127.0.0.1."""
import asyncio
import random
import threading

import requests

from conftest import per_test_timeout
from redis_cluster import cluster_fixture, needs_redis
from wsclient import SECRET, connect, run

pytestmark = needs_redis

_timeout = per_test_timeout(90)

ARGS = ["--jwt-secret", SECRET]


cluster = cluster_fixture(args=ARGS)


def cursor_url(h, user, name):
    return f"{h.url}/v1/users/{user}/cursors/{name}"


def test_cursor_never_moves_backwards_under_sets_from_two_nodes(cluster):
    """Two nodes, two writers each, every writer sending offsets that rise
    with jitter (so both nodes keep writing); a reader on the third node:
    each writer's answers and the reader's reads never go down, and the end
    is the highest offset sent on every node."""
    a, b, c = cluster.nodes
    top = 300
    errors = []
    stop = threading.Event()

    def writer(h, seed):
        rnd = random.Random(seed)
        # Rising with jitter: both nodes keep deciding to write, and half
        # of the steps go down.
        values = [min(top, max(1, i + rnd.randint(-8, 8))) for i in range(1, top + 1)] + [top]
        last = 0
        with requests.Session() as s:
            for v in values:
                if stop.is_set():
                    return
                try:
                    r = s.post(cursor_url(h, "42", "tab"), json={"offset": v}, timeout=10)
                except requests.RequestException as e:
                    errors.append(repr(e))
                    return
                if r.status_code != 200:
                    errors.append(f"{h.url} offset {v}: {r.status_code} {r.text}")
                    return
                got = r.json()["offset"]
                # The answer is the stored cursor: at least what was asked,
                # and at least what this writer saw stored before.
                if got < v or got < last:
                    errors.append(f"{h.url} set {v} answered {got} after {last}")
                    return
                last = got

    seen = []

    def reader():
        with requests.Session() as s:
            while not stop.is_set():
                r = s.get(cursor_url(c, "42", "tab"), timeout=10)
                if r.status_code == 404:
                    continue
                if r.status_code != 200:
                    errors.append(f"read: {r.status_code} {r.text}")
                    return
                seen.append(r.json()["offset"])

    writers = [threading.Thread(target=writer, args=(h, i), daemon=True)
               for i, h in enumerate((a, b, a, b))]
    rd = threading.Thread(target=reader, daemon=True)
    rd.start()
    for t in writers:
        t.start()
    for t in writers:
        t.join(60)
    stop.set()
    rd.join(15)
    assert not any(t.is_alive() for t in writers) and not rd.is_alive()
    assert not errors, errors[:5]
    assert seen == sorted(seen), "a read went backwards"
    for h in cluster.nodes:
        r = requests.get(cursor_url(h, "42", "tab"), timeout=10)
        assert r.status_code == 200 and r.json()["offset"] == top, r.text


def test_notify_user_reaches_connections_on_other_nodes(cluster):
    """User 42 connected on nodes B and C (subscribed to user:42 by the
    connect itself); a notification published on A reaches both, once each,
    at the offset the publish answered; user 7 on B gets nothing."""
    a, b, c = cluster.nodes

    async def go():
        wb, rb = await connect(b, sub="u42")
        wc, rc = await connect(c, sub="u42")
        other, _ = await connect(b, sub="u7")
        try:
            assert "user:u42" in rb["subs"] and "user:u42" in rc["subs"]
            r = await asyncio.to_thread(requests.post, f"{a.url}/v1/users/u42/notifications",
                                        json={"msg": "hi"}, timeout=10)
            assert r.status_code == 201, r.text
            off = r.json()["offset"]
            for ws in (wb, wc):
                (p,) = await ws.pubs(1, timeout=10)
                assert p["channel"] == "user:u42" and p["pub"]["data"] == {"msg": "hi"}
                assert p["pub"]["offset"] == off
                await ws.quiet(0.2)
            await other.quiet(0.2)
        finally:
            for ws in (wb, wc, other):
                await ws.close()

    run(go())
