"""Webhook subscriptions with a topic pattern (docs/api.md "Webhook
subscriptions", "Topic patterns"): "orders.*" delivers every matching topic,
existing or created later, each with its own position and order, to a real
receiver (tests/js/webhook_receiver.js) that verifies every signature. Dead
letter topics never match; a topic that fails does not hold back the others;
a clean restart neither loses nor re-sends; the per-subscription topic cap
skips and reports the extra topics."""
import requests

from conftest import metric_value, per_test_timeout, wait_for
from test_webhooks import ARGS, SECRET1, create, publish, receivers, sub  # noqa: F401 (fixture)

_timeout = per_test_timeout(120)


def by_topic(deliveries):
    out = {}
    for d in deliveries:
        out.setdefault(d["topic"], []).append(d["offset"])
    return out


def test_existing_and_new_topics_each_in_order(herald_factory, receivers):
    h = herald_factory(args=ARGS)
    rc = receivers()
    rc.secrets(SECRET1)
    publish(h, "orders.a", 3)
    publish(h, "orders.b", 2)
    publish(h, "other", 2)
    s = create(h, topic="orders.*", url=rc.url, secret=SECRET1, start="oldest")
    assert s["topic"] == "orders.*" and s["pattern"] is True and s["secret"] == SECRET1
    wait_for(lambda: sub(h, s["id"])["topics_count"] == 2, 20, what="two topics listed")
    publish(h, "orders.a", 2, start=4)
    publish(h, "orders.c", 4)            # created after the subscription
    publish(h, "orders.c.dlq", 2)        # a dead-letter topic: never matches
    publish(h, "orders.b", 1, start=3)
    want = {"orders.a": [1, 2, 3, 4, 5], "orders.b": [1, 2, 3], "orders.c": [1, 2, 3, 4]}
    wait_for(lambda: by_topic(rc.ok()) == want, 30, what="every topic delivered in order")
    log = rc.log()
    assert log["invalid"] == 0 and all(d["valid"] for d in log["deliveries"])
    ids = [d["webhook_id"] for d in rc.ok()]
    assert len(set(ids)) == len(ids), "webhook-id is unique per (topic, offset)"
    # The receiver logs a delivery before herald reads its answer: wait.
    wait_for(lambda: sub(h, s["id"])["delivered"] == 12, 10, what="12 acknowledged")
    info = sub(h, s["id"])
    assert info["topics_count"] == 3 and info["lag"] == 0
    assert [t["topic"] for t in info["topics"]] == ["orders.a", "orders.b", "orders.c"]
    assert [t["position"] for t in info["topics"]] == [5, 3, 4]
    # The attempts log covers every topic.
    att = requests.get(f"{h.url}/v1/subscriptions/{s['id']}/attempts?limit=100", timeout=10).json()
    assert {a["topic"] for a in att["attempts"]} == {"orders.a", "orders.b", "orders.c"}
    # The list by topic finds the pattern subscription for a matching topic.
    lst = requests.get(f"{h.url}/v1/subscriptions?topic=orders.zz", timeout=10).json()
    assert [x["id"] for x in lst["subscriptions"]] == [s["id"]]
    assert all(d["topic"] != "orders.c.dlq" for d in rc.deliveries())


def test_start_latest_skips_old_events_of_existing_topics_only(herald_factory, receivers):
    h = herald_factory(args=ARGS)
    rc = receivers()
    rc.secrets(SECRET1)
    publish(h, "orders:a", 5)
    s = create(h, topic="orders:*", url=rc.url, secret=SECRET1)
    wait_for(lambda: sub(h, s["id"])["topics_count"] == 1, 20, what="the existing topic listed")
    assert sub(h, s["id"])["topics"][0]["position"] == 5
    publish(h, "orders:a", 2, start=6)
    publish(h, "orders:new", 3)
    want = {"orders:a": [6, 7], "orders:new": [1, 2, 3]}
    wait_for(lambda: by_topic(rc.ok()) == want, 30, what="new events of both topics")


def test_clean_restart_neither_loses_nor_resends(herald_factory, receivers):
    h = herald_factory(args=ARGS)
    rc = receivers()
    rc.secrets(SECRET1)
    s = create(h, topic="tenant-7*", url=rc.url, secret=SECRET1)
    publish(h, "tenant-7:x", 10)
    publish(h, "tenant-77", 10)
    want = {"tenant-7:x": list(range(1, 11)), "tenant-77": list(range(1, 11))}
    wait_for(lambda: by_topic(rc.ok()) == want and sub(h, s["id"])["lag"] == 0, 30,
             what="20 delivered")
    h.restart()
    info = sub(h, s["id"])
    assert info["topics_count"] == 2 and info["delivered"] == 20
    assert [t["position"] for t in info["topics"]] == [10, 10]
    publish(h, "tenant-7:x", 5, start=11)
    publish(h, "tenant-7:y", 2)
    want = {"tenant-7:x": list(range(1, 16)), "tenant-77": list(range(1, 11)), "tenant-7:y": [1, 2]}
    wait_for(lambda: by_topic(rc.ok()) == want, 30, what="the new events after the restart")
    assert len(rc.deliveries()) == 27, "nothing was sent twice"


def test_a_failing_topic_does_not_block_the_others(herald_factory, receivers):
    h = herald_factory(args=ARGS)
    rc = receivers()
    rc.secrets(SECRET1)
    rc.plan(rules=[{"topic": "jobs.bad", "status": 500, "times": -1}])
    s = create(h, topic="jobs.*", url=rc.url, secret=SECRET1, ordered=True, max_attempts=50,
               retry_schedule=[2000], pause_after=0)
    publish(h, "jobs.bad", 3)
    wait_for(lambda: any(d["topic"] == "jobs.bad" for d in rc.deliveries()), 20,
             what="the first failing attempt")
    publish(h, "jobs.good", 5)
    wait_for(lambda: by_topic(rc.ok()).get("jobs.good") == [1, 2, 3, 4, 5], 30,
             what="the good topic delivered while the bad one retries")
    # Ordered within the bad topic: only its first event was ever tried.
    assert {d["offset"] for d in rc.deliveries() if d["topic"] == "jobs.bad"} == {1}
    def bad():
        return [t for t in sub(h, s["id"])["topics"] if t["topic"] == "jobs.bad"][0]
    wait_for(lambda: bad()["failed_attempts"] >= 1, 10, what="a failed attempt counted")
    assert bad()["position"] == 0
    info = sub(h, s["id"])
    assert info["last_failure"]["topic"] == "jobs.bad"
    # Replays: offsets are per topic.
    r = requests.post(f"{h.url}/v1/subscriptions/{s['id']}/replay?from=1", timeout=10)
    assert r.status_code == 400 and "per topic" in r.text
    rc.plan(rules=[])
    r = requests.post(f"{h.url}/v1/subscriptions/{s['id']}/replay?from=2&topic=jobs.good", timeout=10)
    assert r.status_code == 200, r.text
    r = requests.post(f"{h.url}/v1/subscriptions/{s['id']}/replay?from=1&topic=jobs.nope", timeout=10)
    assert r.status_code == 404
    wait_for(lambda: by_topic(rc.ok()).get("jobs.bad") == [1, 2, 3], 30, what="the bad topic recovers")
    wait_for(lambda: by_topic(rc.ok()).get("jobs.good") == [1, 2, 3, 4, 5, 2, 3, 4, 5], 30,
             what="the replay of one topic")
    r = requests.post(f"{h.url}/v1/subscriptions/{s['id']}/replay?from=2000-01-01T00:00:00Z", timeout=10)
    assert r.status_code == 200, r.text
    want = {"jobs.good": [1, 2, 3, 4, 5, 2, 3, 4, 5, 1, 2, 3, 4, 5], "jobs.bad": [1, 2, 3, 1, 2, 3]}
    wait_for(lambda: by_topic(rc.ok()) == want, 30, what="a replay by time of every topic")


def test_pattern_syntax_errors_are_400(herald_factory):
    h = herald_factory(args=ARGS)
    u = "http://127.0.0.1:9/"
    for topic, msg in [("*", "alone is refused"), ("or*ders.*", "only one trailing '*'"),
                       ("**", "only one trailing '*'"), ("a b*", "prefix"), ("*orders", "")]:
        r = requests.post(h.url + "/v1/subscriptions", json={"topic": topic, "url": u}, timeout=10)
        assert r.status_code == 400 and msg in r.text, (topic, r.text)


def test_topic_cap_skips_and_reports(herald_factory, receivers):
    h = herald_factory(args=ARGS + ["--webhook-pattern-topics-max", "2"])
    rc = receivers()
    rc.secrets(SECRET1)
    s = create(h, topic="m.*", url=rc.url, secret=SECRET1)
    publish(h, "m.a", 1)
    publish(h, "m.b", 1)
    wait_for(lambda: by_topic(rc.ok()) == {"m.a": [1], "m.b": [1]}, 20, what="two topics")
    publish(h, "m.c", 3)
    wait_for(lambda: sub(h, s["id"])["topics_skipped"] == 1, 20, what="the third topic skipped")
    info = sub(h, s["id"])
    assert info["skipped_topics"] == ["m.c"] and info["topics_count"] == 2
    assert metric_value(h, "herald_webhook_pattern_topics_skipped_total") == 1
    publish(h, "m.a", 1, start=2)
    wait_for(lambda: by_topic(rc.ok()).get("m.a") == [1, 2], 20, what="m.a goes on")
    assert "m.c" not in by_topic(rc.deliveries())
    # Delete removes every per-topic record: nothing comes back after a restart.
    assert requests.delete(f"{h.url}/v1/subscriptions/{s['id']}", timeout=10).status_code == 204
    h.restart()
    assert requests.get(f"{h.url}/v1/subscriptions/{s['id']}", timeout=10).status_code == 404
    assert requests.get(h.url + "/v1/subscriptions", timeout=10).json()["count"] == 0


def test_unordered_concurrency_is_for_all_topics_and_pause_resume(herald_factory, receivers):
    h = herald_factory(args=ARGS)
    rc = receivers()
    rc.secrets(SECRET1)
    rc.plan(delay_ms=100)
    s = create(h, topic="u.*", url=rc.url, secret=SECRET1, ordered=False, concurrency=2)
    for t in ("u.a", "u.b", "u.c"):
        publish(h, t, 6)
    want = {t: list(range(1, 7)) for t in ("u.a", "u.b", "u.c")}
    wait_for(lambda: {k: sorted(v) for k, v in by_topic(rc.ok()).items()} == want, 60,
             what="18 deliveries")
    assert rc.log()["max_concurrent"] <= 2
    wait_for(lambda: sub(h, s["id"])["lag"] == 0, 10, what="every position at the end")
    # Pause stops every topic; resume delivers what came meanwhile.
    r = requests.post(f"{h.url}/v1/subscriptions/{s['id']}/pause", timeout=10)
    assert r.status_code == 200 and r.json()["state"] == "paused"
    publish(h, "u.a", 1, start=7)
    publish(h, "u.new", 1)
    wait_for(lambda: sub(h, s["id"])["topics_count"] == 4, 10, what="the new topic known while paused")
    assert len(rc.deliveries()) == 18
    r = requests.post(f"{h.url}/v1/subscriptions/{s['id']}/resume", timeout=10)
    assert r.status_code == 200 and r.json()["state"] == "active"
    wait_for(lambda: len(rc.ok()) == 20, 20, what="the two events after resume")
    assert {(d["topic"], d["offset"]) for d in rc.ok()[18:]} == {("u.a", 7), ("u.new", 1)}


def test_start_time_applies_per_existing_topic(herald_factory, receivers):
    h = herald_factory(args=ARGS)
    rc = receivers()
    rc.secrets(SECRET1)
    publish(h, "s.a", 3)
    publish(h, "s.b", 2)
    s = create(h, topic="s.*", url=rc.url, secret=SECRET1, start={"time": "2000-01-01T00:00:00Z"})
    want = {"s.a": [1, 2, 3], "s.b": [1, 2]}
    wait_for(lambda: by_topic(rc.ok()) == want, 30, what="every event since 2000")
    s2 = create(h, topic="s.*", url=rc.url + "/late", secret=SECRET1, start={"time": "2100-01-01T00:00:00Z"})
    wait_for(lambda: sub(h, s2["id"])["topics_count"] == 2, 20, what="two topics listed")
    wait_for(lambda: [t["position"] for t in sub(h, s2["id"])["topics"]] == [3, 2], 20,
             what="positions after the last events")
    publish(h, "s.a", 1, start=4)
    wait_for(lambda: [(d["topic"], d["offset"]) for d in rc.ok("/late")] == [("s.a", 4)], 20,
             what="only the new event")
    assert s["pattern"] is True


def test_pattern_subscriptions_need_read_scope(herald_factory):
    from conftest import create_key
    h = herald_factory(args=ARGS, start=False)
    pub = create_key(h.data_dir, "pub", "publish:*")
    reader = create_key(h.data_dir, "reader", "read")
    h.start()
    body = {"topic": "orders:*", "url": "http://127.0.0.1:9/x"}
    url = h.url + "/v1/subscriptions"
    r = requests.post(url, json=body, headers={"Authorization": f"Bearer {pub}"}, timeout=10)
    assert r.status_code == 403
    r = requests.post(url, json=body, headers={"Authorization": f"Bearer {reader}"}, timeout=10)
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    assert requests.get(f"{url}/{sid}", headers={"Authorization": f"Bearer {pub}"}, timeout=10).status_code == 403
    assert requests.delete(f"{url}/{sid}", headers={"Authorization": f"Bearer {reader}"},
                           timeout=10).status_code == 204


def test_kill9_mid_stream_loses_nothing_on_any_topic(herald_factory, receivers):
    h = herald_factory(args=ARGS)
    rc = receivers()
    rc.secrets(SECRET1)
    rc.plan(delay_ms=20)
    s = create(h, topic="k.*", url=rc.url, secret=SECRET1)
    publish(h, "k.a", 20)
    publish(h, "k.b", 20)
    wait_for(lambda: len(rc.ok()) >= 10, 30, what="10 deliveries before the kill")
    h.kill9()
    h.start(h.port)
    publish(h, "k.c", 3)
    want = {"k.a": set(range(1, 21)), "k.b": set(range(1, 21)), "k.c": {1, 2, 3}}
    wait_for(lambda: {k: set(v) for k, v in by_topic(rc.ok()).items()} == want, 60,
             what="every event of every topic after the kill")
    for t, offs in by_topic(rc.ok()).items():
        firsts = list(dict.fromkeys(offs))
        assert firsts == sorted(firsts), (t, offs)
    wait_for(lambda: sub(h, s["id"])["lag"] == 0, 10, what="every position at the end")


def test_delete_with_deliveries_in_flight(herald_factory, receivers):
    h = herald_factory(args=ARGS)
    rc = receivers()
    rc.secrets(SECRET1)
    rc.plan(delay_ms=3000)                # longer than --webhook-timeout
    s = create(h, topic="d.*", url=rc.url, secret=SECRET1, ordered=False, concurrency=5)
    publish(h, "d.a", 3)
    publish(h, "d.b", 3)
    wait_for(lambda: sub(h, s["id"])["in_flight"] >= 2, 20, what="calls in flight")
    assert requests.delete(f"{h.url}/v1/subscriptions/{s['id']}", timeout=10).status_code == 204
    assert requests.get(f"{h.url}/v1/subscriptions/{s['id']}", timeout=10).status_code == 404
    publish(h, "d.c", 1)
    h.restart()                           # the fixture checks ASan's log at stop
    assert requests.get(h.url + "/v1/subscriptions", timeout=10).json()["count"] == 0


def test_a_deleted_topic_stops_counting_after_a_restart_and_starts_over_when_made_again(
        herald_factory, receivers):
    h = herald_factory(args=ARGS + ["--webhook-pattern-topics-max", "2"])
    rc = receivers()
    rc.secrets(SECRET1)
    s = create(h, topic="g.*", url=rc.url, secret=SECRET1)
    publish(h, "g.a", 2)
    publish(h, "g.b", 1)
    wait_for(lambda: sub(h, s["id"])["delivered"] == 3, 20, what="3 acknowledged")
    assert requests.delete(h.topic_url("g.a", ""), timeout=10).status_code == 200
    h.restart()
    wait_for(lambda: sub(h, s["id"])["topics_count"] == 1, 20, what="the gone topic dropped")
    publish(h, "g.a", 1)                  # made again: a new child from its offset 1
    publish(h, "g.c", 1)                  # over the cap of 2
    wait_for(lambda: sub(h, s["id"])["topics_skipped"] == 1, 20, what="one topic over the cap")
    wait_for(lambda: by_topic(rc.ok()) == {"g.a": [1, 2, 1], "g.b": [1]}, 20,
             what="the recreated topic delivered from its offset 1")
    info = sub(h, s["id"])
    assert info["topics_count"] == 2 and info["skipped_topics"] == ["g.c"]
