"""The sweep of a node's presence entries and the joins and leaves that cross
nodes (--engine redis, docs/cluster.md "Notices between nodes" and "What
happens when a part fails"): one Redis primary with a replica and two or
three herald nodes on 127.0.0.1.

- A killed node's plain SSE stream never sent a join, so the sweep sends no
  leave for it; its WebSocket client's leave carries the client's infos.
- A node whose heartbeat lapsed while it lived on (SIGSTOP past the 4 s
  lease, then SIGCONT) is announced as left by the others, notices it, and
  announces its clients' joins again, once; presence lists them again; its
  own subscribers see neither (the leaves named it, it dropped them).
- The sweep works through a dead node's large hashes in bounded steps
  (HSCAN, continued by the next call): every announced entry gets exactly
  one leave among three nodes, the others none, and the node's bookkeeping
  keys go.
- A join or leave from another node carries conn_info and chan_info, the
  same push a subscriber on the client's own node gets.
- A node that comes back partway through a (slowed, test-only) sweep of
  itself announces joins for exactly the subscriptions whose leave was
  sent, in small pages (one per beat), none dropped."""
import asyncio
import json
import os
import signal
import time

from conftest import per_test_timeout, wait_for
from redis_cluster import cluster_fixture, needs_redis
from test_sse import SSE, sse_path
from wsclient import SECRET, connect, run, token

pytestmark = needs_redis

_timeout = per_test_timeout(90)

ARGS = ["--jwt-secret", SECRET]
CONFIG = ("[namespace room]\njoin-leave = on\n"
          "[namespace priv]\nsubscribe = token\npresence-access = subscribed\njoin-leave = on\n")
ROOM = "room:1"
PRIV = "priv:1"


# Nodes whose namespaces `room` and `priv` have join-leave on.
cluster3 = cluster_fixture(args=ARGS, config=CONFIG)
cluster2 = cluster_fixture(nodes=2, args=ARGS, config=CONFIG)

# Test-only knobs (docs/cluster.md does not list them): a sweep of about one
# field per round, four rounds a second; rejoins in pages of four.
SLOW = {"HERALD_TEST_SWEEP_COUNT": "1", "HERALD_TEST_SWEEP_WORK": "1",
        "HERALD_TEST_SWEEP_RETRY_MS": "250", "HERALD_TEST_REJOIN_PAGE": "4"}
slow2 = cluster_fixture(nodes=2, args=ARGS, config=CONFIG, env=SLOW)


def presence_clients(h, topic=ROOM):
    """The client ids in topic's presence through node h."""
    r = h.session.get(h.topic_url(topic, "/presence"), timeout=10)
    assert r.status_code == 200, r.text
    return sorted(c["id"] for c in r.json()["clients"])


async def watch(h, user, topic=ROOM, **sub):
    w, r = await connect(h, sub=user)
    assert "subscribe" in await w.call({"subscribe": {"channel": topic, "join_leave": True, **sub}})
    return w, r


async def none_for(watcher, seconds):
    """seconds of quiet: no push at all."""
    await watcher.quiet(seconds)
    assert not watcher.pushes, watcher.pushes


def test_a_dead_node_s_sse_stream_gets_no_leave(cluster3):
    a, b, _ = cluster3.nodes

    async def go():
        watcher, rw = await watch(b, "watcher")
        cl, rc = await connect(a, sub="ann", tok=token("ann", info={"name": "Ann"}))
        sse = SSE(a, sse_path(ROOM, after=0))
        try:
            assert sse.status == 200
            assert "subscribe" in await cl.call({"subscribe": {"channel": ROOM}})
            p = await watcher.push(timeout=10)
            assert p["join"]["info"]["client"] == rc["client"], p
            # The SSE stream is listed (its own id), sent no join.
            wait_for(lambda: len(presence_clients(b)) == 3, 10, what="the SSE stream in the presence")
            a.kill9()
            p = await watcher.push(timeout=15)
            assert p["leave"]["info"]["client"] == rc["client"], p
            wait_for(lambda: presence_clients(b) == [rw["client"]], 10, what="A's entries swept")
            await none_for(watcher, 2.5)  # no leave for the SSE stream
            # The sweep's leave carries the infos, as A's own would have.
            assert p == {"channel": ROOM, "leave": {"info": {
                "user": "ann", "client": rc["client"], "conn_info": {"name": "Ann"}}}}, p
        finally:
            sse.close()
            try:
                await cl.close()
            except Exception:  # A is gone
                pass
            await watcher.close()

    run(go())


def test_a_node_that_was_swept_while_alive_joins_again(cluster2):
    a, b = cluster2.nodes

    async def go():
        watcher, rw = await watch(b, "watcher")
        own, ro = await watch(a, "own")  # A's own subscriber
        assert "join" in await watcher.push(timeout=10)
        cl, rc = await connect(a, sub="ann", tok=token("ann", info={"name": "Ann"}))
        info = {"user": "ann", "client": rc["client"], "conn_info": {"name": "Ann"}}
        stopped = False
        try:
            assert "subscribe" in await cl.call({"subscribe": {"channel": ROOM}})
            assert (await watcher.push(timeout=10))["join"]["info"]["client"] == rc["client"]
            assert (await own.push(timeout=10))["join"]["info"]["client"] == rc["client"]
            everyone = sorted([rw["client"], ro["client"], rc["client"]])
            wait_for(lambda: presence_clients(b) == everyone, 10, what="every client listed")
            os.kill(a.proc.pid, signal.SIGSTOP)
            stopped = True
            # A's heartbeat lapses (4 s); B's sweep announces A's two clients as left.
            got = [await watcher.push(timeout=15) for _ in range(2)]
            assert sorted(p["leave"]["info"]["client"] for p in got) == sorted([ro["client"], rc["client"]]), got
            swept = got
            wait_for(lambda: presence_clients(b) == [rw["client"]], 10, what="A's entries swept")
            os.kill(a.proc.pid, signal.SIGCONT)
            stopped = False
            # A finds it was swept: its entries come back, its joins are announced again.
            got = [await watcher.push(timeout=15) for _ in range(2)]
            assert sorted(p["join"]["info"]["client"] for p in got) == sorted([ro["client"], rc["client"]]), got
            wait_for(lambda: presence_clients(b) == everyone, 10, what="A's entries back")
            await none_for(watcher, 2.5)  # once
            assert not own.pushes, own.pushes  # A's own subscriber saw neither
            # Both carry the infos.
            assert {"channel": ROOM, "leave": {"info": info}} in swept, swept
            assert {"channel": ROOM, "join": {"info": info}} in got, got
            # A still works as usual: a leave on close reaches B.
            await cl.close()
            assert await watcher.push(timeout=10) == {"channel": ROOM, "leave": {"info": info}}
        finally:
            if stopped:
                os.kill(a.proc.pid, signal.SIGCONT)
            for c in (cl, own, watcher):
                try:
                    await c.close()
                except Exception:
                    pass

    run(go())


def test_an_override_join_leave_is_left_and_joined_again_after_a_sweep(cluster2):
    """A `subs` claim's override.join_leave in a namespace with join-leave
    off: the sweep of its stopped node leaves it, and the node, back, joins
    it again (the watch's own setting, not the namespace's)."""
    a, b = cluster2.nodes
    topic = "quiet:1"  # the default namespace: join-leave off

    async def go():
        watcher, _ = await watch(b, "watcher", topic=topic)
        tok = token("ov", subs={topic: {"override": {"join_leave": {"value": True}}}})
        cl, rc = await connect(a, sub="ov", tok=tok)
        stopped = False
        try:
            p = await watcher.push(timeout=10)
            assert p["channel"] == topic and p["join"]["info"]["client"] == rc["client"], p
            os.kill(a.proc.pid, signal.SIGSTOP)
            stopped = True
            p = await watcher.push(timeout=15)
            assert p["channel"] == topic and p["leave"]["info"]["client"] == rc["client"], p
            os.kill(a.proc.pid, signal.SIGCONT)
            stopped = False
            p = await watcher.push(timeout=15)
            assert p["channel"] == topic and p["join"]["info"]["client"] == rc["client"], p
        finally:
            if stopped:
                os.kill(a.proc.pid, signal.SIGCONT)
            for c in (cl, watcher):
                try:
                    await c.close()
                except Exception:
                    pass

    run(go())


def test_the_sweep_of_large_hashes_is_bounded_and_sends_each_leave_once(cluster3):
    a, b, c = cluster3.nodes
    r = cluster3.primary
    n_announced, n_plain, n_conns = 300, 200, 3000

    async def go():
        watchers = [(await watch(h, f"w{i}"))[0] for i, h in enumerate((a, b, c))]
        for i, w in enumerate(watchers):  # the watchers' joins of each other
            for _ in range(len(watchers) - 1 - i):
                assert "join" in await w.push(timeout=10)
            await none_for(w, 0.3)
        try:
            # A dead node "ghost" (no heartbeat) that left entries behind:
            # announced ones (WebSocket subscriptions), plain ones (SSE
            # streams) and a large user listing hash.
            pkey = "{t:%s}:presence" % ROOM
            args = []
            for i in range(n_announced):
                args += [f"ghost\ng-{i}", json.dumps({
                    "id": f"g-{i}", "transport": "websocket", "user": f"gu{i}", "node": "ghost",
                    "join_leave": True, "info": {"i": i}})]
            for i in range(n_plain):
                args += [f"ghost\ns-{i}", json.dumps({
                    "id": f"s-{i}", "transport": "sse", "user": "", "node": "ghost"})]
            r.cmd("HSET", pkey, *args)
            ckey = "herald:conns:big"
            for k in range(0, n_conns, 1000):
                r.cmd("HSET", ckey, *[x for i in range(k, k + 1000) for x in (f"ghost\nc-{i}", "{}")])
            r.cmd("HSET", ckey, "other-node\nc-x", "{}")  # not the ghost's: kept
            r.cmd("SADD", "herald:nodekeys:ghost", pkey, ckey)
            hscans = int(r.info("commandstats").get("cmdstat_hscan", "calls=0,").split(",")[0][6:])
            r.cmd("HSET", "herald:nodes", "ghost", "1")
            leaves = {}
            for w in watchers:
                got = [await w.push(timeout=15) for _ in range(n_announced)]
                assert all(p["channel"] == ROOM and "leave" in p for p in got), got[:3]
                ids = sorted(p["leave"]["info"]["client"] for p in got)
                assert ids == sorted(f"g-{i}" for i in range(n_announced)), "a leave twice or missing"
                leaves[id(w)] = got
            first = leaves[id(watchers[0])]
            p = next(p for p in first if p["leave"]["info"]["client"] == "g-7")
            assert p["leave"]["info"] == {"user": "gu7", "client": "g-7", "conn_info": {"i": 7}}, p
            wait_for(lambda: r.cmd("HEXISTS", "herald:nodes", "ghost") == 0, 15, what="the ghost swept")
            assert r.cmd("EXISTS", "herald:nodekeys:ghost", "herald:sweepcur:ghost") == 0
            assert r.cmd("HLEN", pkey) == 3  # the watchers
            assert r.cmd("HKEYS", ckey) == [b"other-node\nc-x"]
            # In steps: a hash of thousands of fields took several HSCANs.
            calls = int(r.info("commandstats").get("cmdstat_hscan", "calls=0,").split(",")[0][6:])
            assert calls - hscans >= n_conns // 100, (hscans, calls)
            for w in watchers:
                await none_for(w, 1.5)  # each leave once, none for the SSE entries
        finally:
            for w in watchers:
                await w.close()

    run(go())


def test_joins_and_leaves_from_another_node_carry_the_infos(cluster2):
    a, b = cluster2.nodes

    async def go():
        wa, _ = await watch(a, "wa", PRIV, token=token("wa", channel=PRIV))
        wb, _ = await watch(b, "wb", PRIV, token=token("wb", channel=PRIV))
        assert "join" in await wa.push(timeout=10)  # wb's
        cl, rc = await connect(a, sub="ann", tok=token("ann", info={"name": "Ann", "n": 1.50}))
        try:
            st = token("ann", channel=PRIV, info={"role": "host", "n": 2.50})
            assert "subscribe" in await cl.call({"subscribe": {"channel": PRIV, "token": st}})
            info = {"user": "ann", "client": rc["client"], "conn_info": {"name": "Ann", "n": 1.5},
                    "chan_info": {"role": "host", "n": 2.5}}
            here, there = await wa.push(timeout=10), await wb.push(timeout=10)
            assert here == there == {"channel": PRIV, "join": {"info": info}}, (here, there)
            await cl.call({"unsubscribe": {"channel": PRIV}})
            here, there = await wa.push(timeout=10), await wb.push(timeout=10)
            assert here == there == {"channel": PRIV, "leave": {"info": info}}, (here, there)
            # Without infos: the short notice, the same push as before.
            c2, r2 = await connect(a, sub="bob")
            assert "subscribe" in await c2.call({"subscribe": {"channel": PRIV,
                                                               "token": token("bob", channel=PRIV)}})
            plain = {"channel": PRIV, "join": {"info": {"user": "bob", "client": r2["client"]}}}
            assert await wa.push(timeout=10) == plain
            assert await wb.push(timeout=10) == plain
            await c2.close()
        finally:
            for x in (cl, wa, wb):
                await x.close()

    run(go())


def test_a_node_back_partway_through_its_sweep_rejoins_only_what_was_left(slow2):
    a, b = slow2.nodes
    n = 24

    async def go():
        watcher, rw = await watch(b, "watcher")
        clients = []
        stopped = False
        try:
            for i in range(n):
                cl, rc = await connect(a, sub=f"m{i}")
                clients.append(cl)
                assert "subscribe" in await cl.call({"subscribe": {"channel": ROOM}})
            got = [await watcher.push(timeout=10) for _ in range(n)]
            assert all("join" in p for p in got), got
            wait_for(lambda: len(presence_clients(b)) == n + 1, 10, what="A's clients listed")
            os.kill(a.proc.pid, signal.SIGSTOP)
            stopped = True
            # The heartbeat lapses; B's slow sweep announces A's clients one by one.
            left, joined = [], []
            while len(left) < 3:
                p = await watcher.push(timeout=30)
                assert "leave" in p, p
                left.append(p["leave"]["info"]["client"])
            os.kill(a.proc.pid, signal.SIGCONT)
            stopped = False
            # A is back: the sweep stops; A announces the joins of exactly
            # the clients that were announced as left (pages of four a
            # beat): read until 2.5 s pass quietly with every leave joined
            # again (bounded: a missing join fails below).
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline:
                try:
                    p = await watcher.push(timeout=2.5)
                except asyncio.TimeoutError:
                    if sorted(joined) == sorted(left):
                        break
                    continue
                if "leave" in p:
                    left.append(p["leave"]["info"]["client"])
                else:
                    joined.append(p["join"]["info"]["client"])
            assert len(left) < n, "the sweep was not stopped partway"
            assert len(set(left)) == len(left), left
            assert sorted(joined) == sorted(left), (left, joined)
            wait_for(lambda: len(presence_clients(b)) == n + 1, 10, what="A's entries back")
        finally:
            if stopped:
                os.kill(a.proc.pid, signal.SIGCONT)
            for c in (*clients, watcher):
                try:
                    await c.close()
                except Exception:
                    pass

    run(go(), timeout=80)
