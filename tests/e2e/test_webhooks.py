"""Webhook subscriptions (docs/api.md "Webhook subscriptions"): herald POSTs
a topic's events to a real receiver process (tests/js/webhook_receiver.js)
that verifies every signature with the npm `standardwebhooks` package and
parses every request with the npm `cloudevents` package, and answers from a
fault plan the test sets: 500s, slow answers (timeouts), 410, 429 with
Retry-After, a receiver that is not there yet, restarts of herald. The
scenarios prove that nothing is lost, that ordered subscriptions keep
order, that dead letters land in {topic}.dlq, and that the retry schedule is
followed; --webhook-time-scale 0.01 makes every delay a hundredth."""
import json
import os
import queue
import subprocess
import threading
import time

import requests

from conftest import create_key, free_port, metric_value, per_test_timeout, stop_process, structured, wait_for

_timeout = per_test_timeout(90)

JS = os.path.join(os.path.dirname(__file__), "..", "js")
NODE = "/usr/bin/node"
SCALE = 0.01
ARGS = ["--webhook-allow-private", "on", "--webhook-time-scale", str(SCALE),
        "--webhook-timeout", "1s"]
CE = {"Content-Type": "application/cloudevents+json"}
SECRET1 = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SECRET2 = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0NTY3ODk="


class Receiver:
    """The node receiver on 127.0.0.1; port 0 picks a free one."""

    def __init__(self, port=0, secrets=()):
        self.proc = subprocess.Popen([NODE, os.path.join(JS, "webhook_receiver.js"), str(port), *secrets],
                                     cwd=JS,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(l) for l in self.proc.stdout], daemon=True).start()
        try:
            first = json.loads(lines.get(timeout=20))
        except queue.Empty:
            self.proc.kill()
            raise AssertionError("the receiver did not start: " + self.proc.stderr.read())
        self.port = first["port"]
        self.url = f"http://127.0.0.1:{self.port}"

    def plan(self, **plan):
        requests.post(self.url + "/_plan", json=plan, timeout=10).raise_for_status()

    def secrets(self, *secrets):
        requests.post(self.url + "/_secrets", json={"secrets": list(secrets)}, timeout=10).raise_for_status()

    def log(self):
        return requests.get(self.url + "/_log", timeout=10).json()

    def deliveries(self, path=None):
        return [d for d in self.log()["deliveries"] if path is None or d["path"] == path]

    def ok(self, path=None):
        """The successful deliveries (answered 2xx)."""
        return [d for d in self.deliveries(path) if 200 <= d["status"] < 300]

    def stop(self):
        stop_process(self.proc)


import pytest


@pytest.fixture
def receivers():
    made = []

    def make(port=0, secrets=()):
        r = Receiver(port, secrets)
        made.append(r)
        return r

    yield make
    for r in made:
        r.stop()


@pytest.fixture
def receiver():
    """One receiver that verifies SECRET1 (the cluster tests import it)."""
    r = Receiver(0, (SECRET1,))
    try:
        yield r
    finally:
        r.stop()


def create(h, expect=201, **body):
    r = requests.post(h.url + "/v1/subscriptions", json=body, timeout=10)
    assert r.status_code == expect, r.text
    return r.json()


def sub(h, sid):
    r = requests.get(f"{h.url}/v1/subscriptions/{sid}", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def publish(h, topic, n, start=1, type_="com.example.test", **extra):
    for i in range(start, start + n):
        r = h.publish(topic, json.dumps(structured(f"e{i}", type_=type_, data={"n": i}, **extra)), headers=CE)
        assert r.status_code == 201, r.text


def test_structured_and_binary_deliveries_verify_and_parse(herald_factory, receivers):
    h = herald_factory(args=ARGS)
    rc = receivers()
    s1 = create(h, topic="orders", url=rc.url + "/s", secret=SECRET1)
    s2 = create(h, topic="orders", url=rc.url + "/b", secret=SECRET1, mode="binary")
    assert s1["secret"] == SECRET1 and s1["state"] == "active" and s1["mode"] == "structured"
    assert s2["mode"] == "binary" and s2["ordered"] is True
    assert "secret" not in sub(h, s1["id"])
    rc.secrets(SECRET1)
    events = [
        structured("j1", type_="order.created", subject="Euro €", data={"total": 1.10, "items": [1, 2]}),
        structured("t1", type_="order.note", datacontenttype="text/plain", data="plain text"),
        structured("x1", type_="order.ext", data={"k": "v"}, traceparent="00-abc-def-01", seqno=7),
    ]
    for ev in events:
        assert h.publish("orders", json.dumps(ev), headers=CE).status_code == 201
    for path in ("/s", "/b"):
        wait_for(lambda: len(rc.ok(path)) == 3, 20, what=f"3 deliveries to {path}")
    log = rc.log()
    assert log["invalid"] == 0
    for path in ("/s", "/b"):
        got = rc.ok(path)
        assert [d["ce_id"] for d in got] == ["j1", "t1", "x1"]
        assert [d["offset"] for d in got] == [1, 2, 3]
        assert all(d["valid"] and d["sig_count"] == 1 and d["attempt"] == 1 for d in got)
        assert all(d["topic"] == "orders" and "parse_error" not in d for d in got), got
        assert got[0]["data"] == {"total": 1.10, "items": [1, 2]}
        assert got[1]["data"] == "plain text"
        assert got[0]["type"] == "order.created"
        assert got[0]["subject"] in ("Euro €", "Euro%20%E2%82%AC")
    assert rc.ok("/s")[0]["content_type"].startswith("application/cloudevents+json")
    assert rc.ok("/b")[0]["content_type"] == "application/json"
    assert rc.ok("/b")[1]["content_type"] == "text/plain"
    # One webhook-id per (subscription, event), never the event's own id.
    ids = [d["webhook_id"] for d in rc.ok()]
    assert len(set(ids)) == 6 and all(i.startswith("msg_") and "." not in i for i in ids)
    wait_for(lambda: sub(h, s2["id"])["position"] == 3, 10, what="position 3")
    info = sub(h, s2["id"])
    assert info["delivered"] == 3 and info["lag"] == 0 and info["in_flight"] == 0
    assert metric_value(h, "herald_webhook_deliveries_total") >= 6
    listed = requests.get(h.url + "/v1/subscriptions", timeout=10).json()
    assert {s["id"] for s in listed["subscriptions"]} == {s1["id"], s2["id"]}
    assert all("secret" not in s for s in listed["subscriptions"])


def test_500s_are_retried_on_the_schedule(herald_factory, receivers):
    h = herald_factory(args=ARGS)
    rc = receivers()
    rc.plan(rules=[{"status": 500, "times": 2}])
    # Default schedule x 0.01: 50 ms then 3 s (each +-20 %).
    s = create(h, topic="t", url=rc.url, secret=SECRET1)
    rc.secrets(SECRET1)
    publish(h, "t", 1)
    wait_for(lambda: rc.ok(), 20, what="the delivery after two 500s")
    d = rc.deliveries()
    assert [x["status"] for x in d] == [500, 500, 200]
    assert [x["attempt"] for x in d] == [1, 2, 3]
    assert len({x["webhook_id"] for x in d}) == 1, "the webhook-id is stable across retries"
    gap1 = (d[1]["t"] - d[0]["t"]) / 1000
    gap2 = (d[2]["t"] - d[1]["t"]) / 1000
    assert gap1 >= 0.035 and gap1 < gap2, (gap1, gap2)
    assert 2.35 <= gap2 < 15, gap2
    wait_for(lambda: sub(h, s["id"])["position"] == 1, 10, what="position 1")
    a = requests.get(f"{h.url}/v1/subscriptions/{s['id']}/attempts?limit=10", timeout=10).json()
    assert [x["status"] for x in a["attempts"]] == [200, 500, 500]
    assert [x["result"] for x in a["attempts"]] == ["success", "retry", "retry"]
    assert all(x["offset"] == 1 for x in a["attempts"]) and "next_attempt" in a["attempts"][1]
    info = sub(h, s["id"])
    assert info["failed_attempts"] == 2 and info["delivered"] == 1 and info["consecutive_failures"] == 0
    assert info["last_failure"]["status"] == 500


def test_timeout_is_a_failed_attempt(herald_factory, receivers):
    h = herald_factory(args=ARGS)
    rc = receivers()
    rc.plan(rules=[{"delay_ms": 2500, "times": 1}])
    s = create(h, topic="t", url=rc.url, secret=SECRET1, retry_schedule=[10000])
    rc.secrets(SECRET1)
    publish(h, "t", 2)
    wait_for(lambda: len({d["offset"] for d in rc.deliveries() if d["attempt"] >= 1}) == 2
             and sub(h, s["id"])["position"] == 2, 20, what="both events after a timeout")
    a = requests.get(f"{h.url}/v1/subscriptions/{s['id']}/attempts", timeout=10).json()["attempts"]
    first = [x for x in a if x["offset"] == 1]
    assert [x["attempt"] for x in first] == [2, 1]
    assert first[1]["status"] == 0 and first[1]["error"], first
    assert first[1]["latency_ms"] >= 900
    # Order held: event 2 went only after event 1 succeeded.
    d = rc.deliveries()
    assert [x["offset"] for x in d] == [1, 1, 2]


def test_refused_connection_then_receiver_starts(herald_factory, receivers):
    h = herald_factory(args=ARGS)
    port = free_port()
    # Two quick retries (0.2 s), then one a second, 50 attempts: the events
    # outlive the receiver's start however long a loaded machine takes for it
    # (up to its own 20 s bound). With the default 8 attempts at 0.2 s, a
    # node start slower than ~1.5 s dead-lettered event 1.
    s = create(h, topic="t", url=f"http://127.0.0.1:{port}/in", secret=SECRET1,
               retry_schedule=[20000, 20000, 100000], max_attempts=50)
    publish(h, "t", 5)
    wait_for(lambda: sub(h, s["id"])["failed_attempts"] >= 2, 20, what="refused attempts")
    info = sub(h, s["id"])
    assert info["position"] == 0 and info["last_failure"]["status"] == 0
    # Its secret from the start: herald is already retrying against it.
    rc = receivers(port, secrets=[SECRET1])
    wait_for(lambda: len(rc.ok()) == 5, 20, what="all 5 after the receiver came")
    assert [d["offset"] for d in rc.ok()] == [1, 2, 3, 4, 5]
    assert sub(h, s["id"])["dead_lettered"] == 0
    assert rc.log()["invalid"] == 0


def test_410_disables_and_resume_reenables(herald_factory, receivers):
    h = herald_factory(args=ARGS)
    rc = receivers()
    rc.plan(rules=[{"status": 410, "times": 1}])
    s = create(h, topic="t", url=rc.url, secret=SECRET1)
    rc.secrets(SECRET1)
    publish(h, "t", 3)
    wait_for(lambda: sub(h, s["id"])["state"] == "disabled", 20, what="disabled")
    info = sub(h, s["id"])
    assert "410" in info["reason"] and info["position"] == 0 and info["in_flight"] == 0
    assert [d["status"] for d in rc.deliveries()] == [410]
    r = requests.post(f"{h.url}/v1/subscriptions/{s['id']}/resume", timeout=10)
    assert r.status_code == 200 and r.json()["state"] == "active" and r.json()["reason"] is None
    wait_for(lambda: len(rc.ok()) == 3, 20, what="delivery after resume")
    d = rc.deliveries()
    assert [x["offset"] for x in d] == [1, 1, 2, 3]
    assert d[0]["webhook_id"] == d[1]["webhook_id"]


def test_429_retry_after_is_honoured(herald_factory, receivers):
    h = herald_factory(args=ARGS)
    rc = receivers()
    # Retry-After 100 s x 0.01 = 1 s; the schedule alone would wait 50 ms.
    rc.plan(rules=[{"status": 429, "retry_after": 100, "times": 1}])
    create(h, topic="t", url=rc.url, secret=SECRET1)
    rc.secrets(SECRET1)
    publish(h, "t", 1)
    wait_for(lambda: rc.ok(), 20, what="the delivery after 429")
    d = rc.deliveries()
    assert [x["status"] for x in d] == [429, 200]
    assert (d[1]["t"] - d[0]["t"]) / 1000 >= 0.95


def test_ordered_under_random_500s_loses_nothing_and_keeps_order(herald_factory, receivers):
    h = herald_factory(args=ARGS)
    rc = receivers()
    rc.plan(fail_rate=0.3, seed=42)
    s = create(h, topic="t", url=rc.url, secret=SECRET1, retry_schedule=[1000], max_attempts=50)
    rc.secrets(SECRET1)
    publish(h, "t", 50)
    wait_for(lambda: len(rc.ok()) == 50, 60, what="50 deliveries")
    ok = rc.ok()
    assert [d["offset"] for d in ok] == list(range(1, 51))
    assert [d["ce_id"] for d in ok] == [f"e{i}" for i in range(1, 51)]
    # No later event was even attempted before an earlier one succeeded.
    offsets = [d["offset"] for d in rc.deliveries()]
    assert offsets == sorted(offsets)
    assert len(rc.deliveries()) > 50, "the plan made some attempts fail"
    wait_for(lambda: sub(h, s["id"])["position"] == 50, 10, what="position 50")
    assert sub(h, s["id"])["dead_lettered"] == 0


def test_unordered_parallel_within_the_concurrency_cap(herald_factory, receivers):
    h = herald_factory(args=ARGS)
    rc = receivers()
    rc.plan(delay_ms=150)
    s = create(h, topic="t", url=rc.url, secret=SECRET1, ordered=False, concurrency=4)
    assert s["ordered"] is False and s["concurrency"] == 4
    rc.secrets(SECRET1)
    publish(h, "t", 30)
    wait_for(lambda: len(rc.ok()) == 30, 60, what="30 deliveries")
    assert sorted(d["offset"] for d in rc.ok()) == list(range(1, 31))
    m = rc.log()["max_concurrent"]
    assert 2 <= m <= 4, m
    wait_for(lambda: sub(h, s["id"])["position"] == 30, 10, what="position 30")


def dlq(h, topic):
    r = requests.get(h.topic_url(topic + ".dlq"), params={"after": 0, "limit": 100}, timeout=10)
    return r.json().get("events", []) if r.status_code == 200 else []


def test_dead_letters_and_pause_after_a_streak(herald_factory, receivers):
    h = herald_factory(args=ARGS)
    rc = receivers()
    rc.plan(rules=[{"status": 500, "times": 2}])
    s = create(h, topic="t", url=rc.url, secret=SECRET1, max_attempts=2, retry_schedule=[1000],
               pause_after=3)
    sid = s["id"]
    rc.secrets(SECRET1)
    publish(h, "t", 2)
    # e1 fails twice: dead-lettered; the subscription goes on with e2.
    wait_for(lambda: [d["ce_id"] for d in rc.ok()] == ["e2"], 20, what="e2 after e1's dead letter")
    wait_for(lambda: len(dlq(h, "t")) == 1, 10, what="one dead letter")
    dl = dlq(h, "t")[0]
    assert dl["type"] == "herald.webhook.deadletter"
    assert dl["data"]["reason"] == "max_attempts" and dl["data"]["attempts"] == 2
    assert dl["data"]["offset"] == 1 and dl["data"]["topic"] == "t" and dl["data"]["subscription"] == sid
    assert dl["data"]["last_status"] == 500 and dl["data"]["event"]["id"] == "e1"
    info = sub(h, sid)
    assert info["state"] == "active" and info["consecutive_failures"] == 0 and info["dead_lettered"] == 1
    # Three dead letters in a row pause it, with the reason shown.
    rc.plan(rules=[{"status": 500, "times": -1}])
    publish(h, "t", 4, start=3)
    wait_for(lambda: sub(h, sid)["state"] == "paused", 20, what="paused")
    info = sub(h, sid)
    assert info["reason"] == "paused after 3 consecutive dead-lettered events"
    assert info["consecutive_failures"] == 3 and info["dead_lettered"] == 4 and info["position"] == 5
    assert [e["data"]["event"]["id"] for e in dlq(h, "t")] == ["e1", "e3", "e4", "e5"]
    assert not [d for d in rc.deliveries() if d["ce_id"] == "e6"]
    rc.plan()
    r = requests.post(f"{h.url}/v1/subscriptions/{sid}/resume", timeout=10)
    assert r.status_code == 200 and r.json()["consecutive_failures"] == 0
    wait_for(lambda: "e6" in [d["ce_id"] for d in rc.ok()], 20, what="e6 after resume")
    assert metric_value(h, "herald_webhook_dead_letters_total") == 4


def test_filter_by_type_prefix(herald_factory, receivers):
    h = herald_factory(args=ARGS)
    rc = receivers()
    s = create(h, topic="t", url=rc.url, secret=SECRET1, filter={"type_prefix": "order."})
    assert s["filter"] == {"type_prefix": "order."}
    rc.secrets(SECRET1)
    publish(h, "t", 1, start=1, type_="order.created")
    publish(h, "t", 1, start=2, type_="user.signup")
    publish(h, "t", 1, start=3, type_="order.paid")
    wait_for(lambda: sub(h, s["id"])["position"] == 3, 20, what="position 3")
    assert [d["ce_id"] for d in rc.ok()] == ["e1", "e3"]
    assert len(rc.deliveries()) == 2


def run_mid_stream_restart(herald_factory, receivers, stop, clean):
    h = herald_factory(args=ARGS)
    rc = receivers()
    rc.plan(delay_ms=25)
    s = create(h, topic="t", url=rc.url, secret=SECRET1)
    rc.secrets(SECRET1)
    publish(h, "t", 40)
    wait_for(lambda: len(rc.ok()) >= 10, 30, what="10 deliveries before the restart")
    stop(h)
    h.start(h.port)
    wait_for(lambda: {d["offset"] for d in rc.ok()} == set(range(1, 41)), 60, what="all 40 after the restart")
    offs = [d["offset"] for d in rc.ok()]
    firsts = []
    for o in offs:
        if o not in firsts:
            firsts.append(o)
    assert firsts == list(range(1, 41)), "first arrivals in order"
    if clean:
        assert offs == sorted(offs), "only the event in flight is sent again: order holds"
    wait_for(lambda: sub(h, s["id"])["position"] == 40, 10, what="position 40")
    return len(offs) - 40


def test_clean_stop_mid_stream_loses_nothing_and_resends_at_most_the_inflight_one(herald_factory, receivers):
    dups = run_mid_stream_restart(herald_factory, receivers, lambda h: h.stop(), True)
    assert dups <= 1, dups


def test_kill9_mid_stream_loses_nothing(herald_factory, receivers):
    # After kill -9 the events acknowledged since the last durable write come
    # again (at least once), besides the one in flight: a few, bounded by
    # how many deliveries fit in one store commit (generous for slow disks).
    dups = run_mid_stream_restart(herald_factory, receivers, lambda h: h.kill9(), False)
    assert dups <= 20, dups


def test_clean_restart_does_not_resend_what_was_acknowledged(herald_factory, receivers):
    h = herald_factory(args=ARGS)
    rc = receivers()
    s = create(h, topic="t", url=rc.url, secret=SECRET1)
    rc.secrets(SECRET1)
    publish(h, "t", 20)
    wait_for(lambda: len(rc.ok()) == 20 and sub(h, s["id"])["position"] == 20, 30, what="20 delivered")
    h.restart()
    info = sub(h, s["id"])
    assert info["position"] == 20 and info["delivered"] == 20
    publish(h, "t", 10, start=21)
    wait_for(lambda: len({d["offset"] for d in rc.ok()}) == 30, 30, what="30 delivered")
    # Ordered: a re-sent 1..20 would have come before 21..30.
    assert [d["offset"] for d in rc.ok()] == list(range(1, 31))


def test_replay_resends_with_the_same_webhook_ids(herald_factory, receivers):
    h = herald_factory(args=ARGS)
    rc = receivers()
    s = create(h, topic="t", url=rc.url, secret=SECRET1, start="oldest")
    rc.secrets(SECRET1)
    publish(h, "t", 3)
    time.sleep(0.05)
    mid = time.time()
    time.sleep(0.05)
    publish(h, "t", 2, start=4)
    wait_for(lambda: len(rc.ok()) == 5, 20, what="5 deliveries")
    first_ids = {d["offset"]: d["webhook_id"] for d in rc.ok()}
    r = requests.post(f"{h.url}/v1/subscriptions/{s['id']}/replay?from=2", timeout=10)
    assert r.status_code == 200, r.text
    wait_for(lambda: len(rc.ok()) == 9, 20, what="2..5 again")
    again = rc.ok()[5:]
    assert [d["offset"] for d in again] == [2, 3, 4, 5]
    assert all(d["webhook_id"] == first_ids[d["offset"]] for d in again)
    t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(mid)) + ".%03dZ" % int((mid % 1) * 1000)
    r = requests.post(f"{h.url}/v1/subscriptions/{s['id']}/replay", params={"from": t}, timeout=10)
    assert r.status_code == 200, r.text
    wait_for(lambda: len(rc.ok()) == 11, 20, what="4..5 again (by time)")
    assert [d["offset"] for d in rc.ok()[9:]] == [4, 5]


def test_start_positions(herald_factory, receivers):
    h = herald_factory(args=ARGS)
    rc = receivers()
    rc.secrets(SECRET1)
    publish(h, "t", 3)
    latest = create(h, topic="t", url=rc.url + "/latest", secret=SECRET1)
    at2 = create(h, topic="t", url=rc.url + "/at2", secret=SECRET1, start={"offset": 2})
    assert latest["position"] == 3 and at2["position"] == 1
    publish(h, "t", 1, start=4)
    wait_for(lambda: len(rc.ok("/at2")) == 3 and len(rc.ok("/latest")) == 1, 20, what="deliveries")
    assert [d["offset"] for d in rc.ok("/latest")] == [4]
    assert [d["offset"] for d in rc.ok("/at2")] == [2, 3, 4]


def test_private_destinations_are_refused_by_default(herald_factory):
    h = herald_factory()
    for url in ("http://127.0.0.1:9/x", "http://localhost/x", "http://[::1]:8080/", "https://10.1.2.3/",
                "http://169.254.169.254/latest/meta-data"):
        r = requests.post(h.url + "/v1/subscriptions", json={"topic": "t", "url": url}, timeout=10)
        assert r.status_code == 400, (url, r.text)
        assert "private" in r.json()["error"]["message"]
    r = requests.post(h.url + "/v1/subscriptions", json={"topic": "t", "url": "https://example.com/hook"},
                      timeout=10)
    assert r.status_code == 201, r.text


def test_secret_rotation_signs_with_both(herald_factory, receivers):
    h = herald_factory(args=ARGS)
    rc = receivers()
    s = create(h, topic="t", url=rc.url, secret=SECRET1)
    r = requests.post(f"{h.url}/v1/subscriptions/{s['id']}/secret", json={"secret": SECRET2}, timeout=10)
    assert r.status_code == 200 and r.json()["secret"] == SECRET2 and r.json()["signing_secrets"] == 2
    rc.secrets(SECRET1, SECRET2)
    publish(h, "t", 1)
    wait_for(lambda: rc.ok(), 20, what="a delivery")
    d = rc.ok()[0]
    assert d["sig_count"] == 2 and d["verified"] == [True, True]
    gen = requests.post(f"{h.url}/v1/subscriptions/{s['id']}/secret", timeout=10).json()
    assert gen["secret"].startswith("whsec_") and gen["signing_secrets"] == 3
    rc.secrets(gen["secret"])
    publish(h, "t", 1, start=2)
    wait_for(lambda: len(rc.ok()) == 2, 20, what="a second delivery")
    assert rc.ok()[1]["sig_count"] == 3 and rc.ok()[1]["verified"] == [True]


def test_bad_input_gets_clear_400s(herald_factory):
    h = herald_factory(args=ARGS)
    u = "http://127.0.0.1:9/x"
    cases = [
        (b"not json", "JSON object"),
        ({"url": u}, "'topic' is required"),
        ({"topic": "or*ders.*", "url": u}, "only one trailing '*'"),
        ({"topic": "bad topic", "url": u}, "'topic'"),
        ({"topic": "t"}, "'url' is required"),
        ({"topic": "t", "url": "ftp://x/y"}, "http:// or https://"),
        ({"topic": "t", "url": "http://x/" + "a" * 2100}, "2048"),
        ({"topic": "t", "url": u, "mode": "batch"}, "'mode'"),
        ({"topic": "t", "url": u, "concurrency": 5}, "'concurrency'"),
        ({"topic": "t", "url": u, "ordered": False, "concurrency": 101}, "'concurrency'"),
        ({"topic": "t", "url": u, "max_attempts": 0}, "'max_attempts'"),
        ({"topic": "t", "url": u, "retry_schedule": []}, "'retry_schedule'"),
        ({"topic": "t", "url": u, "retry_schedule": [-1]}, "'retry_schedule'"),
        ({"topic": "t", "url": u, "secret": "nope"}, "'secret'"),
        ({"topic": "t", "url": u, "start": "yesterday"}, "'start'"),
        ({"topic": "t", "url": u, "filter": {"typ": "x"}}, "'filter'"),
        ({"topic": "t", "url": u, "pause_after": -1}, "'pause_after'"),
        ({"topic": "t", "url": u, "colour": "red"}, "unknown member"),
    ]
    for body, msg in cases:
        data = body if isinstance(body, bytes) else json.dumps(body)
        r = requests.post(h.url + "/v1/subscriptions", data=data, timeout=10)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["error"]["code"] == "invalid_request"
        assert msg in r.json()["error"]["message"], (body, r.text)
    assert requests.get(h.url + "/v1/subscriptions/sub_0000000000000000", timeout=10).status_code == 404
    assert requests.put(h.url + "/v1/subscriptions", timeout=10).status_code == 405
    s = create(h, topic="t", url=u)
    base = f"{h.url}/v1/subscriptions/{s['id']}"
    assert requests.get(base + "/pause", timeout=10).status_code == 405
    assert requests.post(base + "/replay", timeout=10).status_code == 400
    assert requests.post(base + "/replay?from=0", timeout=10).status_code == 400
    assert requests.get(base + "/attempts?limit=0", timeout=10).status_code == 400
    assert requests.post(base + "/secret", json={"secret": "whsec_short"}, timeout=10).status_code == 400
    assert requests.post(base + "/pause", timeout=10).json()["state"] == "paused"
    assert requests.delete(base, timeout=10).status_code == 204
    assert requests.get(base, timeout=10).status_code == 404
    assert requests.delete(base, timeout=10).status_code == 404




def test_api_keys_guard_subscriptions(herald_factory):
    h = herald_factory(args=ARGS, start=False)
    pub = create_key(h.data_dir, "pub", "publish:*")
    reader = create_key(h.data_dir, "reader", "read")
    admin = create_key(h.data_dir, "admin", "admin")
    h.start()
    body = {"topic": "t", "url": "http://127.0.0.1:9/x"}
    url = h.url + "/v1/subscriptions"

    def auth(k):
        return {"Authorization": f"Bearer {k}"}

    assert requests.post(url, json=body, timeout=10).status_code == 401
    r = requests.post(url, json=body, headers=auth(pub), timeout=10)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    r = requests.post(url, json=body, headers=auth(reader), timeout=10)
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    assert requests.get(f"{url}/{sid}", headers=auth(pub), timeout=10).status_code == 403
    assert requests.get(f"{url}/{sid}", headers=auth(reader), timeout=10).status_code == 200
    assert requests.delete(f"{url}/{sid}", headers=auth(pub), timeout=10).status_code == 403
    assert requests.get(url, headers=auth(reader), timeout=10).status_code == 403
    assert requests.get(url, params={"topic": "t"}, headers=auth(reader), timeout=10).json()["count"] == 1
    assert requests.get(url, headers=auth(admin), timeout=10).json()["count"] == 1
