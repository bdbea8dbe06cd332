"""What an app on npm centrifuge's protobuf build sees of a subscription's
chan_info (the subscribe proxy's `info`, or a subscription token's `info`
claim: in the join, the presence and the leave) and of a server-side
refresh (the refresh push {expires, ttl}), through the real SDK
(tests/js/pb_info.js) over the protobuf WebSocket. The JSON cases are in
test_app_proxy.py; the codec's in tests/unit."""
import json

import pytest

from conftest import per_test_timeout
from test_app_proxy import STATIC, Backend, answer_refreshes, start
from test_interop_js import Node
from wsclient import SECRET, token, ws_url

_timeout = per_test_timeout(60)


@pytest.fixture
def backend():
    b = Backend()
    yield b
    b.close()


def chan_info_run(h, topic, **env):
    n = Node("pb_info.js", {"HERALD_MODE": "chan_info", "HERALD_WS": ws_url(h), "HERALD_TOPIC": topic,
                            **env})
    try:
        got = {}
        while "done" not in got:
            m, _ = n.expect(lambda m: m["ev"] in ("connected", "presence", "join", "leave", "done", "fatal"),
                            what="pb_info results")
            assert m["ev"] != "fatal", m
            got.setdefault(m["ev"], []).append(m)
        return got
    finally:
        n.quit()


def parsed(i):
    """An info as printed by pb_info.js, with its JSON texts parsed."""
    return {k: (json.loads(v) if k.endswith("_info") and v is not None else v) for k, v in i.items()}


def test_subscribe_proxy_info_is_chan_info_in_join_presence_and_leave(herald_factory, backend):
    backend.answers["/subscribe"] = lambda b: (200, {"result": {"info": {"seat": b["user"], "n": 1.50}}})
    h = herald_factory(args=["--jwt-secret", SECRET, "--proxy-static-header", STATIC, "--proxy-allow-private", "on",
                             "--proxy-subscribe-url", backend.url("/subscribe")],
                       config="[namespace room]\njoin-leave = on\n")
    got = chan_info_run(h, "room:1", HERALD_TOKEN_A=token("alice", info={"name": "Ann"}),
                        HERALD_TOKEN_B=token("bob"))
    ca, cb = (m["client"] for m in got["connected"])
    bob = {"user": "bob", "client": cb, "conn_info": None, "chan_info": {"seat": "bob", "n": 1.5}}
    assert [parsed(m["info"]) for m in got["join"]] == [bob], got
    assert [parsed(m["info"]) for m in got["leave"]] == [bob], got
    (pr,) = got["presence"]
    assert {k: parsed(v) for k, v in pr["clients"].items()} == {
        ca: {"user": "alice", "client": ca, "conn_info": {"name": "Ann"},
             "chan_info": {"seat": "alice", "n": 1.5}},
        cb: bob}, pr


def test_subscription_token_info_is_chan_info(herald_factory):
    h = herald_factory(args=["--jwt-secret", SECRET],
                       config="[namespace priv]\nsubscribe = token\npresence-access = subscribed\n"
                              "join-leave = on\n")
    got = chan_info_run(h, "priv:1", HERALD_TOKEN_A=token("alice"), HERALD_TOKEN_B=token("bob"),
                        HERALD_SUBTOKEN_A=token("alice", channel="priv:1", info={"role": "host"}),
                        HERALD_SUBTOKEN_B=token("bob", channel="priv:1", info={"role": "guest"}))
    ca, cb = (m["client"] for m in got["connected"])
    bob = {"user": "bob", "client": cb, "conn_info": None, "chan_info": {"role": "guest"}}
    assert [parsed(m["info"]) for m in got["join"]] == [bob], got
    assert [parsed(m["info"]) for m in got["leave"]] == [bob], got
    (pr,) = got["presence"]
    assert {k: parsed(v) for k, v in pr["clients"].items()} == {
        ca: {"user": "alice", "client": ca, "conn_info": None, "chan_info": {"role": "host"}},
        cb: bob}, pr


def test_refresh_push_after_a_server_side_refresh(herald_factory, backend):
    """The refresh proxy extends the connection (expire_at in 2 s): the
    client gets {expires: true, ttl ≤ 2}; then an answer without expire_at:
    {expires: false} and the connection stays open and served."""
    refreshes = answer_refreshes(backend)
    h = start(herald_factory, backend, kinds=("connect", "refresh"))
    n = Node("pb_info.js", {"HERALD_MODE": "refresh", "HERALD_WS": ws_url(h), "HERALD_REFRESHES": "2"})
    try:
        got = []
        while not got or got[-1]["ev"] != "done":
            m, _ = n.expect(lambda m: m["ev"] in ("refresh", "presence_stats", "done", "fatal"), timeout=20,
                            what="refresh pushes")
            assert m["ev"] != "fatal", m
            got.append(m)
    finally:
        n.quit()
    pushes = [m for m in got if m["ev"] == "refresh"]
    assert len(pushes) == 2, got
    assert pushes[0]["expires"] is True and 0 < pushes[0]["ttl"] <= 2, got
    assert pushes[1] == {"ev": "refresh", "expires": False, "ttl": 0}, got
    assert len(refreshes) == 2
    (ps,) = [m for m in got if m["ev"] == "presence_stats"]
    assert ps["state"] == "connected", got
