"""A deleted topic and the server-side WebSocket subscriptions to it
(--engine redis, docs/websocket.md): one Redis primary with a replica and
three herald nodes on 127.0.0.1. Clients on B and C hold a server-side
subscription (the connect token's `channels`) and a client-side one; the
topic is deleted through A: each is disconnected with 3010 "insufficient
state" (a client cannot subscribe to a server-side channel again by
itself), reconnects, and gets the subscription back on the new epoch, not
recovered; the client-side subscription of a deleted topic on the same
node still ends with the unsubscribe push 2500."""
import requests

from conftest import per_test_timeout
from redis_cluster import cluster_fixture, needs_redis
from test_cluster_notices import ARGS, only_push, publish
from wsclient import connect, run, token

pytestmark = needs_redis

_timeout = per_test_timeout(90)

FEED = "feed:1"


cluster = cluster_fixture(args=ARGS)


def test_a_deletion_reconnects_server_side_subscribers(cluster):
    a, b, c = cluster.nodes

    async def go():
        clients = []
        for h, user in ((b, "sb"), (c, "sc")):
            cl, r = await connect(h, tok=token(user, channels=[FEED]))
            assert FEED in r["subs"], r
            clients.append(cl)
        plain, _ = await connect(b, sub="plain")
        try:
            assert "subscribe" in await plain.call({"subscribe": {"channel": "news:1"}})
            assert publish(a, FEED, 1) == 1
            assert publish(a, "news:1", 1) == 1
            for cl in clients:
                assert [p["pub"]["offset"] for p in await cl.pubs(1, timeout=10)] == [1]
            assert [p["pub"]["offset"] for p in await plain.pubs(1, timeout=10)] == [1]
            old = requests.get(a.topic_url(FEED, ""), timeout=10).json()["epoch"]
            assert requests.delete(a.topic_url(FEED, ""), timeout=10).status_code == 200
            for cl in clients:
                code, reason = await cl.closed(timeout=10)
                assert (code, reason) == (3010, "insufficient state")
            # Another topic's deletion: the client-side subscription ends
            # with the push, the connection stays.
            assert requests.delete(a.topic_url("news:1", ""), timeout=10).status_code == 200
            p = await only_push(plain, "deletion")
            assert p == {"channel": "news:1",
                         "unsubscribe": {"code": 2500, "reason": "topic deleted"}}
            # The SDK reconnects with its position: not recovered, the new epoch.
            again = []
            for h, user in ((b, "sb"), (c, "sc")):
                cl, r = await connect(h, tok=token(user, channels=[FEED]),
                                      subs={FEED: {"recover": True, "offset": 1, "epoch": old}})
                assert not r["subs"][FEED].get("recovered"), r
                assert r["subs"][FEED]["epoch"] != old, r
                again.append(cl)
            clients += again
            assert publish(a, FEED, 2) == 1
            for cl in again:
                assert [p["pub"]["offset"] for p in await cl.pubs(1, timeout=10)] == [1]
        finally:
            for cl in clients + [plain]:
                try:
                    await cl.close()
                except Exception:  # closed by the server
                    pass

    run(go())
