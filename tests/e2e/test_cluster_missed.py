"""A topic deletion whose notice a node missed because its PUB/SUB
connection was down (--engine redis, docs/cluster.md "Notices between
nodes"): one Redis primary with a replica and three herald nodes on
127.0.0.1. Node B is stopped (SIGSTOP), every PUB/SUB connection is killed
(CLIENT KILL TYPE pubsub: B's stays closed while it is stopped), the topic
is deleted through A, then B resumes: when its PUB/SUB connection is back
it finds the topic's epoch gone, so its WebSocket subscriber gets the
unsubscribe push (code 2500) once and its SSE stream the reset, as the
notice would have given them."""
import json
import signal

import requests

from conftest import per_test_timeout, wait_for
from redis_cluster import cluster_fixture, needs_redis, ready
from test_cluster_notices import ARGS, CONFIG, only_push, publish
from test_sse import SSE, sse_path
from wsclient import connect, run

pytestmark = needs_redis

_timeout = per_test_timeout(90)


cluster = cluster_fixture(args=ARGS, config=CONFIG)


def test_a_deletion_missed_while_pubsub_was_down(cluster):
    a, b, c = cluster.nodes
    topic = "news:2"
    sse = SSE(b, sse_path(topic, after=0))

    async def go():
        s, _ = await connect(b, sub="sb")
        sc, _ = await connect(c, sub="sc")
        try:
            for x in (s, sc):
                assert "subscribe" in await x.call({"subscribe": {"channel": topic}})
            assert publish(a, topic, 1) == 1
            for x in (s, sc):
                assert [p["pub"]["offset"] for p in await x.pubs(1, timeout=10)] == [1]
            assert sse.next_event()["id"] == "1"
            b.proc.send_signal(signal.SIGSTOP)
            try:
                assert cluster.primary.cmd("CLIENT", "KILL", "TYPE", "pubsub") >= 3
                r = requests.delete(a.topic_url(topic, ""), timeout=10)
                assert r.status_code == 200 and r.json() == {"deleted": topic}
            finally:
                b.proc.send_signal(signal.SIGCONT)
            # C's PUB/SUB was coming back too: it heard the notice or found
            # the deletion on its reconnect; either way its subscriber gets
            # one unsubscribe push, as B's does.
            for x in (s, sc):
                p = await only_push(x, "missed deletion")
                assert p == {"channel": topic,
                             "unsubscribe": {"code": 2500, "reason": "topic deleted"}}
            wait_for(lambda: ready(b), 10, what="B ready again")
            assert "topic deleted while pub/sub was down" in b.read_log()
            assert "subscribe" in await s.call({"subscribe": {"channel": topic}})
            assert publish(a, topic, 2) == 1
            assert [p["pub"]["offset"] for p in await s.pubs(1, timeout=10)] == [1]
            reset = sse.next_event()
            assert reset["event"] == "reset", reset
            assert json.loads(reset["data"])["first"] == 1, reset
            ev = sse.next_event()
            assert ev["id"] == "1" and json.loads(ev["data"])["data"] == {"n": 2}
        finally:
            await s.close()
            await sc.close()
            sse.close()

    run(go())
