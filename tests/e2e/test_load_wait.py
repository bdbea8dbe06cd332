"""Requests that arrive while a registry loads wait for it (edge/load_wait.h,
docs/api.md "Starting up"): with the loads held back by the test hook
HERALD_TEST_LOAD_DELAY_MS, a PUT of a device, a device list and a GET of the
push subscriptions and of the webhook subscriptions sent right after /healthz are answered 201/200 once the
load ends, not 503; past the wait's bound (HERALD_TEST_LOAD_WAIT_MAX) a
request gets 503 at once with Retry-After, and one that waited past the
deadline (HERALD_TEST_LOAD_WAIT_MS) gets 503 then; a stop answers the
waiting ones."""
import hashlib
import json
import threading
import time

import requests

from conftest import metric_value, per_test_timeout, wait_for
from wsclient import SECRET

_timeout = per_test_timeout(60)

ADMIN = "admin-secret-" + "a" * 40
KEYS = f"[key admin]\nhash = sha256:{hashlib.sha256(ADMIN.encode()).hexdigest()}\nscopes = admin\n"
H = {"Authorization": "Bearer " + ADMIN}
APNS = "a1b2c3d4" * 8


def server(herald_factory, **env):
    return herald_factory(args=["--jwt-secret", SECRET], config=KEYS,
                          env={k: str(v) for k, v in env.items()})


def in_thread(fn):
    """Runs fn in a thread; returns a join() that gives fn's result."""
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("r", fn()), daemon=True)
    t.start()

    def join():
        t.join(30)
        assert not t.is_alive(), "request still waiting"
        return out["r"]
    return join


def put_device(h, user="81", device="phone"):
    return requests.put(f"{h.url}/v1/users/{user}/devices/{device}", headers=H, timeout=20,
                        data=json.dumps({"platform": "apns", "token": APNS, "environment": "sandbox"}))


def waiting(h):
    return metric_value(h, "herald_load_waiting", H)


def test_requests_wait_for_the_load(herald_factory):
    # 8 s: the four requests below must be waiting before the load ends,
    # also on a loaded machine under ASan (the wait's deadline above it).
    h = server(herald_factory, HERALD_TEST_LOAD_DELAY_MS=8000, HERALD_TEST_LOAD_WAIT_MS=30000)
    # /healthz answered; the registries are still loading.
    assert "devices_loaded" not in h.read_log()
    put = in_thread(lambda: put_device(h))
    lst = in_thread(lambda: requests.get(f"{h.url}/v1/users/81/devices", headers=H, timeout=20))
    subs = in_thread(lambda: requests.get(f"{h.url}/v1/push/subscriptions", headers=H, timeout=20))
    hooks = in_thread(lambda: requests.get(f"{h.url}/v1/subscriptions", headers=H, timeout=20))
    # No credential: the route's guard answers before any wait.
    assert requests.get(f"{h.url}/v1/users/81/devices", timeout=20).status_code == 401
    wait_for(lambda: waiting(h) == 4, 7, what="the requests waiting")
    r = put()
    assert r.status_code == 201, r.text
    assert r.json()["token"] == APNS
    r = lst()
    assert r.status_code == 200, r.text
    # The PUT and the list waited together: the list sees it or not, by order.
    assert [d["token"] for d in r.json()["devices"]] in ([], [APNS])
    r = subs()
    assert r.status_code == 200, r.text
    r = hooks()
    assert r.status_code == 200, r.text
    assert r.json()["count"] == 0
    assert "devices_loaded" in h.read_log()
    assert waiting(h) == 0
    r = requests.get(f"{h.url}/v1/users/81/devices/phone", headers=H, timeout=10)
    assert r.status_code == 200, r.text


def test_wait_is_bounded(herald_factory):
    h = server(herald_factory, HERALD_TEST_LOAD_DELAY_MS=60000, HERALD_TEST_LOAD_WAIT_MAX=2,
               HERALD_TEST_LOAD_WAIT_MS=3000)
    first = in_thread(lambda: put_device(h, device="a"))
    second = in_thread(lambda: put_device(h, device="b"))
    wait_for(lambda: waiting(h) == 2, 5, what="two requests waiting")
    # Past the count: 503 at once, with Retry-After.
    began = time.monotonic()
    r = put_device(h, device="c")
    assert r.status_code == 503, r.text
    assert r.headers.get("Retry-After") == "1"
    assert r.json()["error"]["message"] == "the device registry is still loading; retry shortly"
    assert time.monotonic() - began < 2.5  # not after the 3 s deadline
    # Push subscriptions have their own wait: this one waits, then times out.
    subs = in_thread(lambda: requests.get(f"{h.url}/v1/push/subscriptions", headers=H, timeout=20))
    # Past the deadline: the waiting ones get the 503.
    for join in (first, second, subs):
        r = join()
        assert r.status_code == 503, r.text
        assert "still loading; retry shortly" in r.json()["error"]["message"]
    assert waiting(h) == 0
    assert metric_value(h, "herald_load_wait_refused_total", H) == 4


def test_stop_answers_the_waiting(herald_factory):
    h = server(herald_factory, HERALD_TEST_LOAD_DELAY_MS=60000)
    pending = in_thread(lambda: requests.get(f"{h.url}/v1/push/subscriptions", headers=H, timeout=20))
    wait_for(lambda: waiting(h) == 1, 5, what="one request waiting")
    h.stop()
    r = pending()
    assert r.status_code == 503, r.text
    assert r.json()["error"]["message"] == "herald is stopping"
