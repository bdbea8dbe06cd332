"""Pull consumer groups over a topic pattern (docs/api.md, "Consumer groups",
"Topic patterns"): one group consumes every matching topic, existing and
created later, each topic in order, acks by (topic, offset) pairs; competing
consumers; dead-letter topics excluded and dead letters in {topic}.dlq;
positions per topic across a restart; fairness between a busy and a quiet
topic; bad input; access. Through python requests against a real herald."""
import json
import threading
import time

import requests

from conftest import publish_ce, per_test_timeout, wait_for

_timeout = per_test_timeout(120)


def purl(h, pattern, group, suffix="", raw=False):
    # %2A by default (topic_url quotes everything); raw keeps the '*'.
    if raw:
        return f"{h.url}/v1/topics/{pattern}/groups/{group}{suffix}"
    return h.topic_url(pattern, f"/groups/{group}{suffix}")


def create(h, pattern, group, raw=False, **cfg):
    r = h.session.put(purl(h, pattern, group, raw=raw), json=cfg, timeout=30)
    assert r.status_code in (200, 201), r.text
    return r.json()


def fetch(h, pattern, group, max_=10, wait=None):
    params = {"max": max_}
    if wait is not None:
        params["wait"] = wait
    r = h.session.post(purl(h, pattern, group, "/fetch"), params=params, timeout=90)
    assert r.status_code == 200, r.text
    return r.json()["events"]


def ack(h, pattern, group, pairs, nack=False, **extra):
    body = dict(extra, events=[{"topic": t, "offset": o} for t, o in pairs])
    r = h.session.post(purl(h, pattern, group, "/nack" if nack else "/ack"), json=body, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def info(h, pattern, group):
    r = h.session.get(purl(h, pattern, group), timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def batch(h, topic, n, tag):
    evs = [{"specversion": "1.0", "id": f"{tag}{i}", "source": "/t", "type": "t"} for i in range(n)]
    r = h.publish(topic, json.dumps(evs), headers={"Content-Type": "application/cloudevents-batch+json"})
    assert r.status_code == 200, r.text


def drain(h, pattern, group, expect, max_=5):
    """Fetches and acks until `expect` events came; returns (topic, offset,
    id) in the order handed out. Fails on a duplicate."""
    got = []
    deadline = time.monotonic() + 60
    while len(got) < expect:
        assert time.monotonic() < deadline, got
        evs = fetch(h, pattern, group, max_=max_, wait=1)
        for e in evs:
            assert e["deliveries"] == 1, e
            got.append((e["topic"], e["offset"], e["event"]["id"]))
        if evs:
            body = ack(h, pattern, group, [(e["topic"], e["offset"]) for e in evs])
            assert body["ignored"] == [] and body["acked"] == len(evs)
    assert len(set(got)) == len(got), got
    return got


def by_topic(got):
    out = {}
    for t, o, _ in got:
        out.setdefault(t, []).append(o)
    return out


def test_existing_and_later_topics_exactly_once(herald):
    publish_ce(herald, "orders.eu", 1, 3)
    publish_ce(herald, "orders.us", 1, 2)
    publish_ce(herald, "orders.eu.dlq", 1, 2)   # a dead-letter topic: never matched
    publish_ce(herald, "ordersx", 1, 1)         # outside the prefix
    g = create(herald, "orders.*", "ship", raw=True)
    assert g["pattern"] == "orders.*" and g["group"] == "ship"
    assert sorted(t["topic"] for t in g["topics"]) == ["orders.eu", "orders.us"]
    # A topic created after the group starts at its first event.
    publish_ce(herald, "orders.asia", 1, 2)
    got = drain(herald, "orders.*", "ship", 7, max_=2)
    assert by_topic(got) == {"orders.eu": [1, 2, 3], "orders.us": [1, 2], "orders.asia": [1, 2]}
    assert fetch(herald, "orders.*", "ship", max_=100) == []
    st = info(herald, "orders.*", "ship")
    pos = {t["topic"]: (t["position"], t["lag"], t["pending"]) for t in st["topics"]}
    assert pos == {"orders.eu": (3, 0, 0), "orders.us": (2, 0, 0), "orders.asia": (2, 0, 0)}
    assert st["topics_count"] == 3 and st["pending"] == 0 and st["lag"] == 0
    # A late ack is ignored and reported by (topic, offset); so is an
    # unknown topic.
    body = ack(herald, "orders.*", "ship", [("orders.eu", 1), ("nope.x", 1)])
    assert body["acked"] == 0
    assert body["ignored"] == [{"topic": "orders.eu", "offset": 1}, {"topic": "nope.x", "offset": 1}]
    # The raw '*' and %2A name the same group.
    r = herald.session.get(purl(herald, "orders.*", "ship", raw=True), timeout=30)
    assert r.status_code == 200 and r.json()["topics_count"] == 3


def test_latest_start_and_new_topic_from_offset_1(herald):
    publish_ce(herald, "l.a", 1, 4)
    create(herald, "l.*", "g", start="latest")
    publish_ce(herald, "l.a", 5, 1)
    publish_ce(herald, "l.b", 1, 2)
    got = drain(herald, "l.*", "g", 3)
    assert by_topic(got) == {"l.a": [5], "l.b": [1, 2]}


def test_competing_consumers_across_topics(herald):
    topics = ["jobs.a", "jobs.b", "jobs.c"]
    for t in topics:
        batch(herald, t, 40, t)
    create(herald, "jobs.*", "w", ack_wait_ms=5000)
    acked = []
    lock = threading.Lock()

    def worker():
        s = requests.Session()
        idle_since = None
        while True:
            r = s.post(purl(herald, "jobs.*", "w", "/fetch"), params={"max": 7, "wait": 0.5},
                       timeout=30)
            assert r.status_code == 200, r.text
            evs = r.json()["events"]
            if not evs:
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > 2.5:
                    return
                continue
            idle_since = None
            pairs = [{"topic": e["topic"], "offset": e["offset"]} for e in evs]
            r = s.post(purl(herald, "jobs.*", "w", "/ack"), json={"events": pairs}, timeout=30)
            assert r.status_code == 200, r.text
            assert r.json()["ignored"] == []
            with lock:
                acked.extend((e["topic"], e["offset"]) for e in evs)

    ts = [threading.Thread(target=worker) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(90)
    assert sorted(acked) == sorted((t, o) for t in topics for o in range(1, 41))
    st = info(herald, "jobs.*", "w")
    assert st["lag"] == 0 and st["pending"] == 0
    assert all(t["position"] == 40 for t in st["topics"])


def test_dead_letters_go_to_their_topics_dlq(herald):
    publish_ce(herald, "pay.x", 1, 1)
    publish_ce(herald, "pay.y", 1, 2)
    create(herald, "pay.*", "g", ack_wait_ms=200, max_deliveries=1)
    first = fetch(herald, "pay.*", "g", max_=10)
    assert sorted((e["topic"], e["offset"]) for e in first) == [("pay.x", 1), ("pay.y", 1), ("pay.y", 2)]
    # Ack one, keep the others past their lease: due again, they are
    # dead-lettered instead of handed out a second time.
    ack(herald, "pay.*", "g", [("pay.y", 1)])

    def dead():
        assert fetch(herald, "pay.*", "g", max_=10, wait=0.5) == []
        return (len(herald.read_all("pay.x.dlq")) == 1 and len(herald.read_all("pay.y.dlq")) == 1)

    wait_for(dead, 30, interval=0.1, what="dead letters")
    dx = herald.read_all("pay.x.dlq")[0]["data"]
    dy = herald.read_all("pay.y.dlq")[0]["data"]
    assert dx["topic"] == "pay.x" and dx["offset"] == 1 and dx["reason"] == "max_deliveries"
    assert dy["topic"] == "pay.y" and dy["offset"] == 2 and dy["pattern"] == "pay.*"
    # The .dlq topics never become parts of the group, nor its events.
    st = info(herald, "pay.*", "g")
    assert sorted(t["topic"] for t in st["topics"]) == ["pay.x", "pay.y"]
    assert st["dead_letters"] == 2 and st["lag"] == 0
    assert fetch(herald, "pay.*", "g", max_=10) == []


def test_positions_per_topic_survive_restart(herald):
    publish_ce(herald, "r.a", 1, 5)
    publish_ce(herald, "r.b", 1, 3)
    create(herald, "r.*", "g", ack_wait_ms=60000, max_deliveries=9)
    publish_ce(herald, "r.c", 1, 2)
    evs = fetch(herald, "r.*", "g", max_=100)
    assert len(evs) == 10
    keep = [("r.a", 1), ("r.a", 2), ("r.a", 4), ("r.b", 1), ("r.c", 1), ("r.c", 2)]
    assert ack(herald, "r.*", "g", keep)["acked"] == 6
    herald.restart()
    st = info(herald, "r.*", "g")
    assert st["ack_wait_ms"] == 60000 and st["max_deliveries"] == 9
    pos = {t["topic"]: t["position"] for t in st["topics"]}
    assert pos == {"r.a": 2, "r.b": 1, "r.c": 2}
    # Everything not acked comes again, nothing acked does; a topic made
    # while herald was down would start at 1 too.
    publish_ce(herald, "r.d", 1, 1)
    evs = fetch(herald, "r.*", "g", max_=100)
    assert sorted((e["topic"], e["offset"]) for e in evs) == [
        ("r.a", 3), ("r.a", 5), ("r.b", 2), ("r.b", 3), ("r.d", 1)]


def test_busy_topic_does_not_starve_a_quiet_one(herald):
    batch(herald, "f.busy", 1000, "b")
    create(herald, "f.*", "g")
    publish_ce(herald, "f.quiet", 1, 1)
    seen = []
    for _ in range(2):
        seen += [(e["topic"], e["offset"]) for e in fetch(herald, "f.*", "g", max_=10)]
    assert ("f.quiet", 1) in seen, seen
    # And the busy topic comes in order.
    busy = [o for t, o in seen if t == "f.busy"]
    assert busy == list(range(1, len(busy) + 1))


def test_ordered_is_per_topic(herald):
    publish_ce(herald, "o.a", 1, 3)
    publish_ce(herald, "o.b", 1, 3)
    create(herald, "o.*", "g", ordered=True, ack_wait_ms=60000)
    evs = fetch(herald, "o.*", "g", max_=2)
    evs += fetch(herald, "o.*", "g", max_=2)
    pairs = sorted((e["topic"], e["offset"]) for e in evs)
    # One batch in flight per topic: nothing more until they are acked.
    assert fetch(herald, "o.*", "g", max_=10) == []
    assert {t for t, _ in pairs} == {"o.a", "o.b"}
    ack(herald, "o.*", "g", pairs)
    rest = fetch(herald, "o.*", "g", max_=10)
    assert rest and all(e["offset"] > 1 for e in rest)


def test_nack_and_delete(herald):
    publish_ce(herald, "n.a", 1, 1)
    create(herald, "n.*", "g", ack_wait_ms=60000)
    [e] = fetch(herald, "n.*", "g")
    assert ack(herald, "n.*", "g", [("n.a", 1)], nack=True)["nacked"] == 1
    [e] = fetch(herald, "n.*", "g")
    assert e["deliveries"] == 2
    # Deleting the topic drops its part; deleting the group its rows.
    assert herald.session.delete(herald.topic_url("n.a", ""), timeout=30).status_code == 200
    assert info(herald, "n.*", "g")["topics"] == []
    assert herald.session.delete(purl(herald, "n.*", "g"), timeout=30).status_code == 204
    assert herald.session.get(purl(herald, "n.*", "g"), timeout=30).status_code == 404
    herald.restart()
    assert herald.session.get(purl(herald, "n.*", "g"), timeout=30).status_code == 404


def test_bad_input(herald):
    s = herald.session
    for bad in ["*", "a*b*", "%2A"]:
        r = s.put(f"{herald.url}/v1/topics/{bad}/groups/g", json={}, timeout=30)
        assert r.status_code == 400, (bad, r.text)
    r = s.put(f"{herald.url}/v1/topics/a*b/groups/g", json={}, timeout=30)
    assert r.status_code == 400, r.text
    # A pattern is only for group routes.
    r = s.get(f"{herald.url}/v1/topics/orders.*/events", timeout=30)
    assert r.status_code == 400, r.text
    r = s.put(purl(herald, "b.*", "g"), json={"start": {"offset": 3}}, timeout=30)
    assert r.status_code == 400 and "oldest" in r.json()["error"]["message"]
    create(herald, "b.*", "g")
    # Bare offsets and up_to belong to groups of one topic.
    for body in ({"offsets": [1]}, {"up_to": 5}):
        r = s.post(purl(herald, "b.*", "g", "/ack"), json=body, timeout=30)
        assert r.status_code == 400, r.text
        assert "(topic, offset)" in r.json()["error"]["message"]
    r = s.post(purl(herald, "b.*", "g", "/ack"), json={"events": [{"topic": "b.x"}]}, timeout=30)
    assert r.status_code == 400, r.text
    # No group is created by a fetch on a pattern.
    r = s.post(purl(herald, "c.*", "g", "/fetch"), timeout=30)
    assert r.status_code == 404, r.text


def test_api_keys_read_scope(herald_factory):
    from test_api_keys import auth, create as create_key
    h = herald_factory(start=False)
    reader = create_key(h.data_dir, "reader", "read")
    pub = create_key(h.data_dir, "pub", "publish:*")
    h.start()
    url = purl(h, "k.*", "g")
    assert requests.put(url, json={}, timeout=10).status_code == 401
    assert requests.put(url, json={}, headers=auth(pub), timeout=10).status_code == 403
    r = requests.put(url, json={}, headers=auth(reader), timeout=10)
    assert r.status_code == 201, r.text
    r = requests.post(purl(h, "k.*", "g", "/fetch"), headers=auth(reader), timeout=10)
    assert r.status_code == 200 and r.json()["events"] == []


def test_client_token_refused_on_a_pattern(herald_factory):
    from wsclient import SECRET, token
    h = herald_factory(args=["--jwt-secret", SECRET])
    tok = token("u1", exp=int(time.time()) + 60)
    r = requests.put(purl(h, "t.*", "g"), json={}, headers={"Authorization": "Bearer " + tok},
                     timeout=10)
    assert r.status_code == 403 and "pattern" in r.json()["error"]["message"], r.text
    # Without credentials in development mode: allowed.
    assert requests.put(purl(h, "t.*", "g"), json={}, timeout=10).status_code == 201


def test_topics_per_group_cap(herald):
    # 1001 matching topics: the 1001st is skipped, counted and visible.
    n = 1001
    for i in range(n):
        r = herald.publish(f"cap.{i:04d}", json.dumps({"i": i}), headers={"Content-Type": "application/json"})
        assert r.status_code == 201, r.text
    g = create(herald, "cap.*", "g")
    assert g["topics_count"] == 1000 and g["topics_skipped"] == 1
    assert g["topics_truncated"] is True and len(g["topics"]) == 100
    assert g["lag"] == 1000
    # A topic created later is skipped too (once), and logged.
    herald.publish("cap.new", json.dumps({}), headers={"Content-Type": "application/json"})
    wait_for(lambda: info(herald, "cap.*", "g")["topics_skipped"] == 2, 10, 0.05, "skipped")
    assert "group_pattern_topic_skipped" in herald.read_log()
    # Every one of the 1000 parts hands out its event once.
    seen = set()
    while True:
        evs = fetch(herald, "cap.*", "g", max_=1000)
        if not evs:
            break
        for e in evs:
            seen.add((e["topic"], e["offset"]))
        ack(herald, "cap.*", "g", [(e["topic"], e["offset"]) for e in evs])
    assert len(seen) == 1000
    assert herald.session.delete(purl(herald, "cap.*", "g"), timeout=30).status_code == 204


def test_held_fetch_woken_by_a_new_topic_and_acks_survive_kill9(herald):
    create(herald, "w.*", "g")
    out = {}

    def held():
        out["evs"] = fetch(herald, "w.*", "g", max_=10, wait=30)

    t = threading.Thread(target=held)
    t.start()
    # The publish creates a topic the group never saw; the held fetch gets
    # its event (an empty answer would mean it was not woken).
    publish_ce(herald, "w.new", 1, 1)
    t.join(60)
    assert [(e["topic"], e["offset"]) for e in out["evs"]] == [("w.new", 1)]
    publish_ce(herald, "w.new", 2, 2)
    evs = fetch(herald, "w.*", "g")
    assert [e["offset"] for e in evs] == [2, 3]
    # Acks are answered once durable: a kill -9 keeps them.
    ack(herald, "w.*", "g", [("w.new", 1), ("w.new", 3)])
    herald.kill9()
    herald.start(herald.port)
    st = info(herald, "w.*", "g")
    assert [(t["topic"], t["position"]) for t in st["topics"]] == [("w.new", 1)]
    assert [(e["topic"], e["offset"]) for e in fetch(herald, "w.*", "g")] == [("w.new", 2)]


def test_groups_listing_includes_pattern_groups(herald):
    """GET /v1/groups lists a pattern group next to the plain ones: its
    pattern as its topic and in "pattern", with the matching topics'
    count and pending and lag summed over them."""
    batch(herald, "orders.eu", 3, "e")
    batch(herald, "orders.us", 2, "u")
    create(herald, "orders.*", "ship", ack_wait_ms=60000)
    r = herald.session.put(herald.topic_url("orders.eu", "/groups/plain"), json={}, timeout=30)
    assert r.status_code == 201, r.text
    evs = fetch(herald, "orders.*", "ship", max_=2)
    assert len(evs) == 2

    r = herald.session.get(herald.url + "/v1/groups", timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == 2 and len(body["groups"]) == 2, body
    plain = [g for g in body["groups"] if "pattern" not in g]
    assert plain == [{"topic": "orders.eu", "group": "plain"}], body
    pat = [g for g in body["groups"] if "pattern" in g]
    assert pat == [{"topic": "orders.*", "group": "ship", "pattern": "orders.*", "topics_count": 2,
                    "pending": 2, "lag": 5, "dead_letters": 0}], body
    ack(herald, "orders.*", "ship", [(e["topic"], e["offset"]) for e in evs])
    g = [g for g in herald.session.get(herald.url + "/v1/groups", timeout=30).json()["groups"]
         if "pattern" in g][0]
    assert g["pending"] == 0 and g["lag"] == 3, g
    # Deleted: no longer listed.
    assert herald.session.delete(purl(herald, "orders.*", "ship"), timeout=30).status_code == 204
    body = herald.session.get(herald.url + "/v1/groups", timeout=30).json()
    assert body["count"] == 1 and body["groups"] == plain, body
