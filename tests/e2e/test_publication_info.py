"""A client's publication carries the publisher's ClientInfo {user, client,
conn_info, chan_info} as Publication.info (docs/websocket.md "Publications"),
live, in history and through Redis; an HTTP publish carries none. JSON
through the Python client, protobuf through npm centrifuge's protobuf build
(tests/js/pb_info.js, HERALD_MODE=publish)."""
import json

from conftest import per_test_timeout, publish_ce
from redis_cluster import cluster_fixture, needs_redis
from test_interop_js import Node
from wsclient import SECRET, connect, run, token, ws_url

_timeout = per_test_timeout(90)

CONF = ("[namespace chat]\npublish = anonymous\n"
        "[namespace priv]\nsubscribe = token\npublish = anonymous\n")
ARGS = ["--jwt-secret", SECRET]


async def publish_and_read(pub_node, sub_node, topic, pub_tok, sub=None):
    """Subscribes bob on sub_node, publishes {"n":1} as the holder of pub_tok
    on pub_node; returns (publisher's client id, the live publication, the
    history's publications)."""
    b, _ = await connect(sub_node, sub="bob")
    r = await b.call({"subscribe": {"channel": topic}})
    assert "subscribe" in r, r
    a, ar = await connect(pub_node, tok=pub_tok)
    cmd = {"channel": topic}
    if sub:
        cmd["token"] = sub
    r = await a.call({"subscribe": cmd})
    assert "subscribe" in r, r
    r = await a.call({"publish": {"channel": topic, "data": {"n": 1}}})
    assert "publish" in r, r
    (push,) = await b.pubs(1, channel=topic, timeout=10)
    pub = push["pub"]
    h = await b.call({"history": {"channel": topic, "limit": 10}})
    assert "history" in h, h
    await a.close()
    await b.close()
    return ar["client"], pub, h["history"]["publications"]


def test_json_publication_and_history_carry_the_publishers_info(herald_factory):
    h = herald_factory(args=ARGS, config=CONF)
    publish_ce(h, "chat:1", 1, 1)  # an HTTP publish: no info
    alice = token("alice", info={"name": "Ann"})
    ca, pub, hist = run(publish_and_read(h, h, "chat:1", alice))
    want = {"user": "alice", "client": ca, "conn_info": {"name": "Ann"}}
    assert pub["data"] == {"n": 1}, pub  # ws-publication = payload (the default)
    assert pub["info"] == want, pub
    assert [p.get("info") for p in hist] == [None, want], hist
    # The stored event is still the CloudEvent the client published, plus
    # herald's own member, for HTTP readers too.
    r = h.read("chat:1", limit=10)
    assert r.status_code == 200, r.text
    evs = r.json()["events"]
    assert "client_info" not in evs[0] and evs[1]["client_info"] == want, evs


def test_json_chan_info_of_the_publishers_subscription(herald_factory):
    h = herald_factory(args=ARGS, config=CONF)
    sub = token("alice", channel="priv:1", info={"role": "host"})
    # bob reads from a channel that wants a token too.
    async def go():
        b, _ = await connect(h, sub="bob")
        r = await b.call({"subscribe": {"channel": "priv:1",
                                        "token": token("bob", channel="priv:1")}})
        assert "subscribe" in r, r
        a, ar = await connect(h, sub="alice")
        r = await a.call({"subscribe": {"channel": "priv:1", "token": sub}})
        assert "subscribe" in r, r
        r = await a.call({"publish": {"channel": "priv:1", "data": {"n": 2}}})
        assert "publish" in r, r
        (push,) = await b.pubs(1, channel="priv:1", timeout=10)
        pub = push["pub"]
        await a.close()
        await b.close()
        return ar["client"], pub
    ca, pub = run(go())
    assert pub["info"] == {"user": "alice", "client": ca, "chan_info": {"role": "host"}}, pub


def test_protobuf_publication_and_history_carry_the_publishers_info(herald_factory):
    h = herald_factory(args=ARGS, config=CONF)
    publish_ce(h, "chat:2", 1, 1)
    n = Node("pb_info.js", {"HERALD_MODE": "publish", "HERALD_WS": ws_url(h), "HERALD_TOPIC": "chat:2",
                            "HERALD_TOKEN_A": token("alice", info={"name": "Ann"}),
                            "HERALD_TOKEN_B": token("bob")})
    try:
        got = {}
        while "done" not in got:
            m, _ = n.expect(lambda m: m["ev"] in ("connected", "publication", "history", "done", "fatal"),
                            what="pb_info results")
            assert m["ev"] != "fatal", m
            got[m["ev"]] = m
    finally:
        n.quit()
    ca = got["connected"]["client"]
    want = {"user": "alice", "client": ca, "conn_info": json.dumps({"name": "Ann"}, separators=(",", ":")),
            "chan_info": None}
    assert got["publication"]["info"] == want, got
    assert got["history"]["infos"] == [None, want], got


cluster = cluster_fixture(args=ARGS, config=CONF, nodes=2)


@needs_redis
def test_redis_engine_info_crosses_nodes(cluster):
    a, b = cluster.nodes
    alice = token("alice", info={"name": "Ann"})
    ca, pub, hist = run(publish_and_read(a, b, "chat:3", alice))
    want = {"user": "alice", "client": ca, "conn_info": {"name": "Ann"}}
    assert pub["info"] == want, pub
    assert [p.get("info") for p in hist] == [want], hist
