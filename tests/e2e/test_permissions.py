"""Who may subscribe, publish, read history and see presence (docs/websocket.md
"Permissions", docs/api.md "Authentication"): namespace rules for WebSocket
clients (anonymous, authenticated, a token's channels claim, subscription
tokens), another user's user: topic, private topics left out of the topic
list, and client tokens on Server-Sent Events and long-poll, including the
end of a stream or a held request when its token expires."""
import hashlib
import json
import time

import requests

from conftest import per_test_timeout, wait_for
from test_sse import SSE
from wsclient import SECRET, Client, connect, run, token

_timeout = per_test_timeout(60)

ADMIN, READER = "admin-secret-" + "a" * 40, "reader-secret-" + "r" * 40
CONF = ("[namespace pub]\nsubscribe = anonymous\npublish = anonymous\n"
        "[namespace members]\nsubscribe = authenticated\n"
        "[namespace vip]\nsubscribe = token\npublish = none\nhistory-access = subscribed\n"
        "presence-access = none\n")
KEYS = (f"[key admin]\nhash = sha256:{hashlib.sha256(ADMIN.encode()).hexdigest()}\nscopes = admin\n"
        f"[key reader]\nhash = sha256:{hashlib.sha256(READER.encode()).hexdigest()}\nscopes = read\n")
ARGS = ["--jwt-secret", SECRET, "--ws-anonymous"]


def server(herald_factory, keys=False, name="data"):
    return herald_factory(args=ARGS, config=CONF + (KEYS if keys else ""), name=name)


def publish(h, topic, n=1, key=None):
    for i in range(n):
        r = requests.post(h.topic_url(topic), json={"i": i}, timeout=10,
                          headers={"X-API-Key": key} if key else {})
        assert r.status_code == 201, r.text


def err(r):
    return r.get("error", {}).get("code")


def test_ws_subscribe_rules(herald_factory):
    h = server(herald_factory)

    async def go():
        anon = await Client.open(h)
        assert "connect" in await anon.call({"connect": {}})
        assert "subscribe" in await anon.call({"subscribe": {"channel": "pub:1"}})
        assert err(await anon.call({"subscribe": {"channel": "members:1"}})) == 103
        assert err(await anon.call({"subscribe": {"channel": "vip:1"}})) == 103
        assert err(await anon.call({"subscribe": {"channel": "user:u1"}})) == 103

        u1, _ = await connect(h, "u1")
        assert "subscribe" in await u1.call({"subscribe": {"channel": "members:1"}})
        assert err(await u1.call({"subscribe": {"channel": "vip:1"}})) == 103
        assert err(await u1.call({"subscribe": {"channel": "user:u2"}})) == 103
        # Subscription tokens: sub = the user, channel = the topic.
        ok = token("u1", channel="vip:1", exp=int(time.time()) + 60)
        assert "subscribe" in await u1.call({"subscribe": {"channel": "vip:1", "token": ok}})
        other_chan = token("u1", channel="vip:9")
        assert err(await u1.call({"subscribe": {"channel": "vip:2", "token": other_chan}})) == 103
        other_user = token("u2", channel="vip:2")
        assert err(await u1.call({"subscribe": {"channel": "vip:2", "token": other_user}})) == 103
        forged = token("u1", secret="not-the-secret", channel="vip:2")
        assert err(await u1.call({"subscribe": {"channel": "vip:2", "token": forged}})) == 103
        expired = token("u1", channel="vip:2", exp=int(time.time()) - 10)
        assert err(await u1.call({"subscribe": {"channel": "vip:2", "token": expired}})) == 109
        # Still connected and working after the refusals.
        assert "subscribe" in await u1.call({"subscribe": {"channel": "pub:2"}})

        # The connection token's channels claim: subscribed at connect, and
        # allowed again after an unsubscribe.
        u3, res = await connect(h, tok=token("u3", channels=["vip:3", "user:u1"]))
        chans = set(res.get("subs", {}))
        assert chans == {"user:u3", "vip:3"}  # never another user's topic
        assert "unsubscribe" in await u3.call({"unsubscribe": {"channel": "vip:3"}})
        assert "subscribe" in await u3.call({"subscribe": {"channel": "vip:3"}})
        assert err(await u3.call({"subscribe": {"channel": "vip:4"}})) == 103
        for c in (anon, u1, u3):
            await c.close()

    run(go())


def test_ws_publish_history_presence_rules(herald_factory):
    h = server(herald_factory)
    publish(h, "vip:1", 2)

    async def go():
        anon = await Client.open(h)
        await anon.call({"connect": {}})
        data = {"text": "hi"}
        # Default publish rule: authenticated.
        assert err(await anon.call({"publish": {"channel": "members:1", "data": data}})) == 103
        assert "publish" in await anon.call({"publish": {"channel": "pub:1", "data": data}})

        u1, _ = await connect(h, "u1")
        assert "publish" in await u1.call({"publish": {"channel": "members:1", "data": data}})
        assert "publish" in await u1.call({"publish": {"channel": "user:u1", "data": data}})
        assert err(await u1.call({"publish": {"channel": "user:u2", "data": data}})) == 103

        vip, _ = await connect(h, tok=token("v", channels=["vip:1"]))
        assert err(await vip.call({"publish": {"channel": "vip:1", "data": data}})) == 103  # publish = none
        # history-access = subscribed: vip is subscribed (server side).
        r = await vip.call({"history": {"channel": "vip:1", "limit": -1}})
        assert "history" in r, r
        assert [p["offset"] for p in r["history"]["publications"]] == [1, 2]
        assert err(await vip.call({"presence": {"channel": "vip:1"}})) == 103  # presence-access = none
        assert err(await u1.call({"history": {"channel": "vip:1", "limit": -1}})) == 103
        assert "history" in await u1.call({"history": {"channel": "members:1", "limit": -1}})
        assert "presence" in await u1.call({"presence": {"channel": "members:1"}})
        assert err(await anon.call({"presence": {"channel": "members:1"}})) == 103
        for c in (anon, u1, vip):
            await c.close()

    run(go())


def test_private_topics_are_not_listed_to_non_admins(herald_factory):
    h = server(herald_factory, keys=True)
    for t in ("pub:1", "members:1", "vip:1", "user:42", "plain"):
        publish(h, t, key=ADMIN)

    def names(key, **params):
        r = requests.get(h.url + "/v1/topics", params=params, headers={"X-API-Key": key}, timeout=10)
        assert r.status_code == 200, r.text
        return [t["name"] for t in r.json()["topics"]], r.json()["next"]

    assert names(ADMIN)[0] == ["members:1", "plain", "pub:1", "user:42", "vip:1"]
    assert names(READER)[0] == ["plain", "pub:1"]
    # Pages follow the store: a short page still names where to go on.
    page, nxt = names(READER, limit=2)  # members:1, plain
    assert page == ["plain"] and nxt == "plain"
    page, nxt = names(READER, limit=2, after=nxt)  # pub:1, user:42
    assert page == ["pub:1"] and nxt == "user:42"
    page, nxt = names(READER, limit=2, after=nxt)  # vip:1
    assert page == [] and nxt is None


def test_sse_and_longpoll_with_tokens(herald_factory):
    h = server(herald_factory, keys=True)
    publish(h, "vip:1", 2, key=ADMIN)
    vip = token("v", channels=["vip:1"], exp=int(time.time()) + 60)
    member = token("m", exp=int(time.time()) + 60)

    # No credentials, a token the namespace rule refuses, a bad token.
    for path, headers, status in (
            ("/v1/topics/vip:1/sse?after=0", {}, 401),
            ("/v1/topics/vip:1/sse?after=0&token=" + member, {}, 403),
            ("/v1/topics/vip:1/sse?after=0&token=nope.nope.nope", {}, 401),
            ("/v1/sse?topic=pub:1&topic=vip:1&token=" + member, {}, 403),
            ("/v1/topics/user:v/sse", {"Authorization": "Bearer " + member}, 403),
            ("/v1/topics/vip:1/events?token=" + member, {}, 403),
            ("/v1/topics/members:1/events", {}, 401)):
        r = requests.get(h.url + path, headers=headers, timeout=10)
        assert r.status_code == status, (path, r.text)
        if status == 401:
            assert r.headers["WWW-Authenticate"].startswith("Bearer")

    # ?token= (what EventSource can do) and Authorization: Bearer <jwt>.
    s = SSE(h, "/v1/topics/vip:1/sse?after=0&token=" + vip)
    assert s.status == 200
    assert [s.next_event()["id"] for _ in range(2)] == ["1", "2"]
    s.close()
    s = SSE(h, "/v1/sse?topic=vip:1&topic=members:1&after=vip:1=1", headers={"Authorization": "Bearer " + vip})
    assert s.status == 200
    assert s.next_event()["id"] == "vip:1=2,members:1=0"
    s.close()
    r = requests.get(h.url + "/v1/topics/vip:1/events", params={"token": vip}, timeout=10)
    assert r.status_code == 200 and [e["offset"] for e in r.json()["events"]] == [1, 2]
    r = requests.get(h.url + "/v1/topics/members:1/events", headers={"Authorization": "Bearer " + member},
                     timeout=10)
    assert r.status_code == 200
    # A stream with a token is a connection of its user.
    s = SSE(h, "/v1/topics/members:1/sse?token=" + member)
    wait_for(lambda: requests.get(h.url + "/v1/users/m/connections", headers={"X-API-Key": ADMIN},
                                  timeout=10).json()["connections"], 10, 0.05, "the stream as m's connection")
    s.close()


def test_sse_stream_ends_when_its_token_expires(herald_factory):
    h = server(herald_factory, keys=True)
    exp = int(time.time()) + 2
    s = SSE(h, "/v1/topics/vip:1/sse?token=" + token("v", channels=["vip:1"], exp=exp))
    assert s.status == 200
    publish(h, "vip:1", 1, key=ADMIN)
    assert s.next_event()["id"] == "1"
    ev = s.next_event(timeout=10)
    assert ev["event"] == "expired" and json.loads(ev["data"]) == {"reason": "token expired"}
    assert time.time() >= exp - 0.05
    assert s.next_event(timeout=5) is None  # then the end of the stream
    assert s.closed_by_peer(5)
    s.close()


def test_held_longpoll_is_answered_401_when_its_token_expires(herald_factory):
    h = server(herald_factory, keys=True)
    exp = int(time.time()) + 2
    tok = token("v", channels=["vip:1"], exp=exp)
    t0 = time.monotonic()
    r = requests.get(h.url + "/v1/topics/vip:1/events", params={"token": tok, "after": 0, "wait": 20},
                     timeout=30)
    assert r.status_code == 401 and r.json()["error"]["code"] == "token_expired", r.text
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert time.time() >= exp - 0.05 and time.monotonic() - t0 < 10
    # A token that outlives the wait gets the ordinary empty page.
    tok = token("v", channels=["vip:1"], exp=int(time.time()) + 60)
    r = requests.get(h.url + "/v1/topics/vip:1/events", params={"token": tok, "after": 0, "wait": 0.3},
                     timeout=30)
    assert r.status_code == 200 and r.json()["events"] == []
