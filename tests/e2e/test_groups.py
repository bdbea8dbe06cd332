"""Pull consumer groups (docs/api.md, "Consumer groups"): competing
consumers, leases and redelivery after ack_wait, nack with a delay, dead
letters after max_deliveries, ordered groups, state across a restart,
wait= woken by a publish, bad input and limits; through python requests
against a real herald."""
import json
import os
import subprocess
import sys
import threading
import time

import requests

from conftest import publish_ce, per_test_timeout

_timeout = per_test_timeout(90)


def gurl(h, topic, group, suffix=""):
    return h.topic_url(topic, f"/groups/{group}{suffix}")


def fetch(h, topic, group, max_=10, wait=None):
    params = {"max": max_}
    if wait is not None:
        params["wait"] = wait
    r = h.session.post(gurl(h, topic, group, "/fetch"), params=params, timeout=90)
    assert r.status_code == 200, r.text
    return r.json()["events"]


def ack(h, topic, group, offsets=None, up_to=None):
    body = {"offsets": offsets} if offsets is not None else {"up_to": up_to}
    r = h.session.post(gurl(h, topic, group, "/ack"), json=body, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def create(h, topic, group, **cfg):
    r = h.session.put(gurl(h, topic, group), json=cfg, timeout=30)
    assert r.status_code in (200, 201), r.text
    return r.json()


def info(h, topic, group):
    r = h.session.get(gurl(h, topic, group), timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def test_competing_consumers_and_a_crashed_one(herald):
    publish_ce(herald, "jobs", 1, 60)
    create(herald, "jobs", "workers", ack_wait_ms=1000)
    # The crashed consumer takes a batch and never acks it.
    lost = fetch(herald, "jobs", "workers", max_=7)
    assert [e["offset"] for e in lost] == list(range(1, 8))
    acked = []
    lock = threading.Lock()

    def worker():
        s = requests.Session()
        idle_since = None
        while True:
            r = s.post(gurl(herald, "jobs", "workers", "/fetch"), params={"max": 5, "wait": 0.5},
                       timeout=30)
            assert r.status_code == 200, r.text
            evs = r.json()["events"]
            if not evs:
                if idle_since is None:
                    idle_since = time.monotonic()
                if time.monotonic() - idle_since > 2.5:
                    return
                continue
            idle_since = None
            offs = [e["offset"] for e in evs]
            r = s.post(gurl(herald, "jobs", "workers", "/ack"), json={"offsets": offs}, timeout=30)
            assert r.status_code == 200, r.text
            assert r.json()["ignored"] == []
            with lock:
                acked.extend(offs)

    ts = [threading.Thread(target=worker) for _ in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    # Every event acknowledged exactly once, the crashed lease included.
    assert sorted(acked) == list(range(1, 61))
    st = info(herald, "jobs", "workers")
    assert st["position"] == 60 and st["pending"] == 0 and st["lag"] == 0
    assert st["redeliveries"] >= 7
    # The crashed consumer's late ack is ignored and reported.
    body = ack(herald, "jobs", "workers", offsets=[1, 2])
    assert body["acked"] == 0 and body["ignored"] == [1, 2]


def test_consumer_processes_one_crashes_holding_a_lease(herald):
    """The issue's scenario with real processes: a consumer fetches a batch
    and is killed (SIGKILL, no ack); two competing consumer processes share
    the topic; the crashed lease ends and its events go to them. Every
    offset is acknowledged exactly once across them, no ack is refused."""
    total = 300
    for start in range(1, total + 1, 100):
        publish_ce(herald, "orders", start, 100)
    # A lease long enough that a loaded machine never lets a live
    # consumer's lease run out (which would be a legitimate redelivery).
    create(herald, "orders", "billing", ack_wait_ms=3000)
    script = os.path.join(os.path.dirname(__file__), "group_consumer.py")
    args = [sys.executable, script, herald.url, "orders", "billing"]
    crashed = subprocess.Popen(args + ["crash"], stdout=subprocess.PIPE, text=True)
    workers = []
    try:
        lost = json.loads(crashed.stdout.readline())
        assert lost == list(range(1, 8))
        crashed.kill()  # vanishes holding its lease
        crashed.wait(30)
        workers = [subprocess.Popen(args + ["work", str(total), "30"], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, text=True) for _ in range(2)]
        for w in workers:
            assert w.stdout.readline().strip() == "ready"
        for w in workers:  # both start together, so both get work
            w.stdin.write("go\n")
            w.stdin.flush()
        outs = [w.communicate(timeout=150)[0] for w in workers]
        assert [w.returncode for w in workers] == [0, 0]
    finally:
        for p in [crashed] + workers:
            if p.poll() is None:
                p.kill()
                p.wait()
    acks = [[json.loads(line) for line in out.splitlines()] for out in outs]
    per_worker = [[o for a in w for o in a["offsets"]] for w in acks]
    assert all(per_worker), "both consumers acknowledged events"
    for w in acks:
        for a in w:
            assert a["acked"] == len(a["offsets"]) and a["ignored"] == [], a
    every = sorted(per_worker[0] + per_worker[1])
    assert every == list(range(1, total + 1))  # each exactly once, the lost batch included
    assert set(lost) <= set(every)
    st = info(herald, "orders", "billing")
    assert st["position"] == total and st["pending"] == 0 and st["lag"] == 0
    assert st["redeliveries"] >= len(lost)


def test_consumer_away_across_restart(herald):
    """A consumer acks part of the topic and goes away; herald restarts and
    events keep coming; when it is back it gets exactly what its group had
    not acknowledged, in order, and nothing it had."""
    publish_ce(herald, "mes", 1, 10)
    create(herald, "mes", "erp")
    assert [e["offset"] for e in fetch(herald, "mes", "erp", max_=4)] == [1, 2, 3, 4]
    ack(herald, "mes", "erp", up_to=4)
    publish_ce(herald, "mes", 11, 5)      # while the consumer is away
    herald.restart()
    publish_ce(herald, "mes", 16, 5)
    st = info(herald, "mes", "erp")
    assert (st["position"], st["last"], st["lag"]) == (4, 20, 16)
    got = []
    while True:
        evs = fetch(herald, "mes", "erp", max_=6)
        if not evs:
            break
        got += evs
        ack(herald, "mes", "erp", offsets=[e["offset"] for e in evs])
    assert [e["offset"] for e in got] == list(range(5, 21))
    assert [e["event"]["id"] for e in got] == [f"e{i}" for i in range(5, 21)]
    assert info(herald, "mes", "erp")["position"] == 20


def test_redelivery_after_ack_wait_and_nack_delay(herald):
    publish_ce(herald, "t", 1, 3)
    create(herald, "t", "g", ack_wait_ms=300)
    first = fetch(herald, "t", "g", max_=3)
    assert [(e["offset"], e["deliveries"]) for e in first] == [(1, 1), (2, 1), (3, 1)]
    assert first[0]["event"]["id"] == "e1"
    assert fetch(herald, "t", "g") == []  # all leased
    ack(herald, "t", "g", offsets=[2])
    # After the deadline 1 and 3 come back, counted.
    again = fetch(herald, "t", "g", wait=5)
    assert [(e["offset"], e["deliveries"]) for e in again] == [(1, 2), (3, 2)]
    # A nack with a delay: not before it.
    r = herald.session.post(gurl(herald, "t", "g", "/nack"), json={"offsets": [1, 9], "delay_ms": 800})
    assert r.status_code == 200 and r.json()["nacked"] == 1 and r.json()["ignored"] == [9]
    ack(herald, "t", "g", offsets=[3])
    t0 = time.monotonic()
    evs = fetch(herald, "t", "g", wait=5)
    assert [e["offset"] for e in evs] == [1]
    assert time.monotonic() - t0 >= 0.6
    # A nack without delay is due at once.
    r = herald.session.post(gurl(herald, "t", "g", "/nack"), json={"offsets": [1]})
    assert r.json()["nacked"] == 1
    assert [e["offset"] for e in fetch(herald, "t", "g")] == [1]
    assert ack(herald, "t", "g", up_to=3)["position"] == 3


def test_max_deliveries_dead_letter(herald):
    publish_ce(herald, "pay", 1, 1)
    create(herald, "pay", "g", ack_wait_ms=200, max_deliveries=2)
    for attempt in (1, 2):
        evs = fetch(herald, "pay", "g", max_=1, wait=5)
        assert [(e["offset"], e["deliveries"]) for e in evs] == [(1, attempt)]
    # Due a third time, 1 goes to pay.dlq instead, and the group moves on.
    assert fetch(herald, "pay", "g", max_=1, wait=1) == []
    publish_ce(herald, "pay", 2, 1)
    evs = fetch(herald, "pay", "g", max_=1, wait=5)
    assert [e["offset"] for e in evs] == [2]
    ack(herald, "pay", "g", offsets=[2])
    st = info(herald, "pay", "g")
    assert st["position"] == 2 and st["dead_letters"] == 1
    dl = herald.read_all("pay.dlq")
    assert len(dl) == 1
    assert dl[0]["type"] == "herald.group.deadletter"
    data = dl[0]["data"]
    assert data["reason"] == "max_deliveries" and data["attempts"] == 2
    assert data["offset"] == 1 and data["group"] == "g" and data["topic"] == "pay"
    assert data["event"]["id"] == "e1" and data["event"]["offset"] == 1


def test_ordered_group_one_batch_at_a_time(herald):
    publish_ce(herald, "o", 1, 5)
    create(herald, "o", "g", ordered=True)
    assert [e["offset"] for e in fetch(herald, "o", "g", max_=2)] == [1, 2]
    assert fetch(herald, "o", "g", max_=2) == []  # a batch is out
    ack(herald, "o", "g", offsets=[1])
    assert fetch(herald, "o", "g", max_=2) == []  # still half out
    ack(herald, "o", "g", offsets=[2])
    assert [e["offset"] for e in fetch(herald, "o", "g", max_=2)] == [3, 4]


def test_state_survives_restart(herald):
    publish_ce(herald, "r", 1, 6)
    create(herald, "r", "g", ack_wait_ms=60000, max_deliveries=9)
    evs = fetch(herald, "r", "g", max_=5)
    assert [e["offset"] for e in evs] == [1, 2, 3, 4, 5]
    ack(herald, "r", "g", offsets=[1, 2, 4])
    herald.restart()
    st = info(herald, "r", "g")
    assert st["position"] == 2 and st["ack_wait_ms"] == 60000 and st["max_deliveries"] == 9
    # Acked events are not redelivered; the un-acked ones are, their
    # delivery counts starting again (leases live in memory).
    evs = []
    while True:
        got = fetch(herald, "r", "g", max_=10)
        if not got:
            break
        evs += got
    assert [(e["offset"], e["deliveries"]) for e in evs] == [(3, 1), (5, 1), (6, 1)]
    ack(herald, "r", "g", offsets=[3, 5, 6])
    herald.kill9()
    herald.start(herald.port)
    assert info(herald, "r", "g")["position"] == 6
    assert fetch(herald, "r", "g") == []


def test_wait_wakes_on_publish(herald):
    got = {}

    def consumer():
        t0 = time.monotonic()
        got["events"] = fetch(herald, "w", "g", wait=20)
        got["took"] = time.monotonic() - t0

    t = threading.Thread(target=consumer)
    t.start()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        r = herald.session.get(gurl(herald, "w", "g"))
        if r.status_code == 200:
            break
        time.sleep(0.02)
    time.sleep(0.2)
    publish_ce(herald, "w", 1, 1)
    t.join(30)
    assert [e["offset"] for e in got["events"]] == [1]
    assert got["took"] < 10


def test_start_positions_and_delete(herald):
    publish_ce(herald, "s", 1, 4)
    assert create(herald, "s", "late", start="latest")["position"] == 4
    assert fetch(herald, "s", "late") == []
    assert create(herald, "s", "mid", start={"offset": 3})["position"] == 2
    assert [e["offset"] for e in fetch(herald, "s", "mid")] == [3, 4]
    # A start time: the first event stored at or after it.
    t = time.time()
    time.sleep(0.05)
    publish_ce(herald, "s", 5, 3)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%03dZ" % int((t % 1) * 1000)
    assert create(herald, "s", "when", start={"time": stamp})["position"] == 4
    assert create(herald, "s", "before", start={"time": "2000-01-01T00:00:00Z"})["position"] == 0
    assert create(herald, "s", "after", start={"time": "2100-01-01T00:00:00Z"})["position"] == 7
    r = herald.session.put(gurl(herald, "s", "bad"), json={"start": {"time": "yesterday"}})
    assert r.status_code == 400 and "RFC 3339" in r.text
    # First use creates at the oldest event.
    assert [e["offset"] for e in fetch(herald, "s", "auto")] == [1, 2, 3, 4, 5, 6, 7]
    r = herald.session.delete(gurl(herald, "s", "auto"))
    assert r.status_code == 204
    assert herald.session.get(gurl(herald, "s", "auto")).status_code == 404
    assert herald.session.delete(gurl(herald, "s", "auto")).status_code == 404
    # Deleting the topic deletes its groups, in memory and on disk.
    assert herald.session.delete(herald.topic_url("s", "")).status_code == 200
    assert herald.session.get(gurl(herald, "s", "mid")).status_code == 404
    herald.restart()
    assert herald.session.get(gurl(herald, "s", "late")).status_code == 404


def test_bad_input(herald):
    s = herald.session
    cases = [
        (s.post, gurl(herald, "b", "g", "/fetch"), {"params": {"max": 0}}, "max"),
        (s.post, gurl(herald, "b", "g", "/fetch"), {"params": {"max": 1001}}, "max"),
        (s.post, gurl(herald, "b", "g", "/fetch"), {"params": {"wait": 61}}, "wait"),
        (s.post, gurl(herald, "b", "g", "/fetch"), {"params": {"max": "x"}}, "max"),
        (s.put, gurl(herald, "b", "g"), {"json": {"start": "middle"}}, "start"),
        (s.put, gurl(herald, "b", "g"), {"json": {"ack_wait_ms": 5}}, "ack_wait_ms"),
        (s.put, gurl(herald, "b", "g"), {"json": {"ordered": "yes"}}, "ordered"),
        (s.put, gurl(herald, "b", "g"), {"data": "not json"}, "JSON"),
        (s.post, gurl(herald, "b", "bad name!", "/fetch"), {}, "group name"),
    ]
    for method, url, kw, word in cases:
        r = method(url, timeout=10, **kw)
        assert r.status_code == 400, (url, kw, r.text)
        assert word in r.json()["error"]["message"], r.text
    create(herald, "b", "g")
    for body, word in [({}, "offsets"), ({"offsets": []}, "offsets"), ({"offsets": [0]}, "offsets"),
                       ({"offsets": ["1"]}, "offsets"), ({"offsets": [1], "up_to": 2}, "up_to"),
                       ({"offsets": list(range(1, 1002))}, "offsets")]:
        r = s.post(gurl(herald, "b", "g", "/ack"), json=body, timeout=10)
        assert r.status_code == 400 and word in r.json()["error"]["message"], (body, r.text)
    r = s.post(gurl(herald, "b", "g", "/nack"), json={"offsets": [1], "delay_ms": -1}, timeout=10)
    assert r.status_code == 400 and "delay_ms" in r.text
    assert s.post(gurl(herald, "b", "nope", "/ack"), json={"offsets": [1]}).status_code == 404
    assert s.get(gurl(herald, "b", "g", "/fetch")).status_code == 405
    assert s.post(gurl(herald, "b", "g", "/other")).status_code == 404


def test_fetch_max_limit(herald):
    batch = [{"specversion": "1.0", "id": f"x{i}", "source": "/t", "type": "t"} for i in range(1200)]
    r = herald.publish("big", json.dumps(batch), headers={"Content-Type": "application/cloudevents-batch+json"})
    assert r.status_code == 200, r.text
    evs = fetch(herald, "big", "g", max_=1000)
    assert len(evs) == 1000 and evs[-1]["offset"] == 1000
    assert ack(herald, "big", "g", up_to=1000)["position"] == 1000
    assert len(fetch(herald, "big", "g", max_=1000)) == 200


def test_api_keys_read_scope(herald_factory):
    from test_api_keys import auth, create as create_key
    h = herald_factory(start=False)
    reader = create_key(h.data_dir, "reader", "read")
    pub = create_key(h.data_dir, "pub", "publish:*")
    h.start()
    url = gurl(h, "k", "g", "/fetch")
    assert requests.post(url, timeout=10).status_code == 401
    assert requests.post(url, headers=auth(pub), timeout=10).status_code == 403
    r = requests.post(url, headers=auth(reader), timeout=10)
    assert r.status_code == 200 and r.json()["events"] == []
    r = requests.post(gurl(h, "k", "g", "/ack"), json={"offsets": [1]}, headers=auth(pub), timeout=10)
    assert r.status_code == 403


def test_unacked_window_cap(herald):
    # Past 10,000 handed-out, un-acked events a group hands out nothing new
    # until acks move its position.
    for k in range(11):
        batch = [{"specversion": "1.0", "id": f"w{k}-{i}", "source": "/t", "type": "t"}
                 for i in range(1000)]
        r = herald.publish("cap", json.dumps(batch),
                           headers={"Content-Type": "application/cloudevents-batch+json"})
        assert r.status_code == 200, r.text
    create(herald, "cap", "g", ack_wait_ms=600000)
    for k in range(10):
        evs = fetch(herald, "cap", "g", max_=1000)
        assert len(evs) == 1000 and evs[0]["offset"] == k * 1000 + 1
    assert fetch(herald, "cap", "g", max_=1000) == []
    assert info(herald, "cap", "g")["pending"] == 10000
    assert ack(herald, "cap", "g", up_to=10)["position"] == 10
    evs = fetch(herald, "cap", "g", max_=1000)
    assert [e["offset"] for e in evs] == list(range(10001, 10011))
