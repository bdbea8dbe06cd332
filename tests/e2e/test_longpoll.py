"""Long-poll reads (?wait=S) and "notify a user" (POST /v1/users/{id}/notifications)."""
import json
import threading
import time

import pytest
import requests

from conftest import CE_BATCH, structured


def held(h):
    m = requests.get(h.url + "/metrics", timeout=5).text
    return int(next(ln.split()[1] for ln in m.splitlines() if ln.startswith("herald_longpoll_waiting ")))


def wait_held(h, n, timeout=10):
    """Waits until herald holds n long-polls (no blind sleeps)."""
    deadline = time.monotonic() + timeout
    while held(h) < n:
        assert time.monotonic() < deadline, f"herald never held {n} long-polls"
        time.sleep(0.01)


def poll(h, topic, after=0, wait=5, limit=None, timeout=30):
    params = {"after": after, "wait": wait}
    if limit:
        params["limit"] = limit
    return requests.get(h.topic_url(topic), params=params, timeout=timeout)


def test_answers_at_once_when_events_exist(herald):
    herald.publish("lp", {"n": 1})
    t0 = time.monotonic()
    r = poll(herald, "lp", after=0, wait=10)
    assert r.status_code == 200
    assert [e["offset"] for e in r.json()["events"]] == [1]
    assert time.monotonic() - t0 < 5


def test_held_until_a_publish_arrives(herald):
    result = {}

    def waiter():
        t0 = time.monotonic()
        result["r"] = poll(herald, "lp", after=0, wait=20)
        result["took"] = time.monotonic() - t0

    th = threading.Thread(target=waiter)
    th.start()
    wait_held(herald, 1)
    assert th.is_alive(), "the read answered before anything was published"
    assert herald.publish("lp", {"hello": "world"}).status_code == 201
    th.join(10)
    assert not th.is_alive()
    body = result["r"].json()
    assert [e["data"] for e in body["events"]] == [{"hello": "world"}]
    assert body["next"] == 1
    assert result["took"] < 10


def test_times_out_with_an_empty_page(herald):
    herald.publish("lp", {"n": 1})
    t0 = time.monotonic()
    r = poll(herald, "lp", after=1, wait=0.5)
    took = time.monotonic() - t0
    assert r.status_code == 200
    body = r.json()
    assert body["events"] == [] and body["next"] == 1 and body["truncated"] is False
    assert body["epoch"]
    assert 0.4 <= took < 5


def test_one_publish_wakes_every_waiter_with_the_whole_batch(herald):
    n_waiters, results = 40, []
    lock = threading.Lock()

    def waiter():
        r = poll(herald, "fan", after=0, wait=20, limit=100)
        with lock:
            results.append(r.json())

    threads = [threading.Thread(target=waiter) for _ in range(n_waiters)]
    for t in threads:
        t.start()
    wait_held(herald, n_waiters)
    batch = [structured(f"e{i}") for i in range(10)]
    r = herald.publish("fan", json.dumps(batch), headers=CE_BATCH)
    assert r.status_code == 200 and r.json()["failed_count"] == 0
    for t in threads:
        t.join(15)
    assert len(results) == n_waiters
    assert held(herald) == 0
    for body in results:
        assert [e["offset"] for e in body["events"]] == list(range(1, 11))


@pytest.mark.parametrize("wait", ["-1", "61", "abc", "1e3", ""])
def test_bad_wait_is_400(herald, wait):
    r = requests.get(herald.topic_url("lp"), params={"after": 0, "wait": wait}, timeout=10)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_request"
    assert "wait" in r.json()["error"]["message"]


def test_gap_is_reported_at_once_not_held(herald_factory):
    h = herald_factory(config="[namespace short]\nretention-max-count = 2\n")
    for i in range(5):
        h.publish("short:t", {"i": i})
    t0 = time.monotonic()
    r = poll(h, "short:t", after=0, wait=10)
    body = r.json()
    assert body["truncated"] is True
    assert [e["offset"] for e in body["events"]] == [4, 5]
    assert time.monotonic() - t0 < 5


def test_sigterm_answers_held_polls_and_exits_promptly(herald):
    result = {}

    def waiter():
        result["r"] = poll(herald, "lp", after=0, wait=60, timeout=60)

    th = threading.Thread(target=waiter)
    th.start()
    wait_held(herald, 1)
    t0 = time.monotonic()
    herald.stop()
    assert time.monotonic() - t0 < 10
    th.join(10)
    assert result["r"].status_code == 200
    assert result["r"].json()["events"] == []


def test_notify_user_stores_in_user_topic_and_wakes_its_poll(herald):
    result = {}

    def waiter():
        result["r"] = poll(herald, "user:42", after=0, wait=20)

    th = threading.Thread(target=waiter)
    th.start()
    wait_held(herald, 1)
    r = requests.post(herald.url + "/v1/users/42/notifications", json={"msg": "your ride is here"},
                      timeout=10)
    assert r.status_code == 201
    assert r.json()["topic"] == "user:42" and r.json()["offset"] == 1
    th.join(10)
    events = result["r"].json()["events"]
    assert [e["data"] for e in events] == [{"msg": "your ride is here"}]
    assert events[0]["topic"] == "user:42"
    # A structured CloudEvent works the same way, and dedup applies.
    ev = structured("n-1", source="/rides")
    for expect in (201, 200):
        r = requests.post(herald.url + "/v1/users/42/notifications", json=ev,
                          headers={"Content-Type": "application/cloudevents+json"}, timeout=10)
        assert r.status_code == expect
    assert [e["offset"] for e in herald.read_all("user:42")] == [1, 2]


@pytest.mark.parametrize("path,status", [
    ("/v1/users/a%3Ab/notifications", 400),
    ("/v1/users/a%2Fb/notifications", 400),
    ("/v1/users/" + "x" * 251 + "/notifications", 400),
    ("/v1/users/42/other", 404),
    ("/v1/users/42", 404),
])
def test_bad_user_routes(herald, path, status):
    r = requests.post(herald.url + path, data="x", timeout=10)
    assert r.status_code == status, r.text


def test_notify_user_get_is_405(herald):
    r = requests.get(herald.url + "/v1/users/42/notifications", timeout=10)
    assert r.status_code == 405 and r.headers["Allow"] == "POST"
