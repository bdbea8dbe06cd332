"""Reading history (docs/api.md, "Read"): paging with after/limit/next, bad
query parameters, unknown topics, and reads served from the in-memory ring,
from disk, and right after a restart, all through python requests."""
import json

import pytest
import requests

from conftest import CE_BATCH, CE_JSON, RawConn, http_request, metric_value, per_test_timeout, structured

_timeout = per_test_timeout(60)


def publish_n(herald, topic, n, start=1, prefix="e"):
    """Publishes events start..start+n-1 in batches of up to 1000; returns
    their offsets."""
    offsets = []
    i = start
    while i < start + n:
        k = min(1000, start + n - i)
        batch = [structured(f"{prefix}{j}", data={"i": j}) for j in range(i, i + k)]
        r = herald.publish(topic, json.dumps(batch), headers=CE_BATCH)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["failed_count"] == 0, body
        offsets += [e["offset"] for e in body["entries"]]
        i += k
    return offsets


def events_of(text):
    """The event objects of a read answer as herald wrote them, one string
    each (to compare reads byte for byte)."""
    body = json.loads(text)
    raw = text[len('{"events":['):]
    out = []
    for _ in body["events"]:
        depth, in_str, esc = 0, False, False
        for i, c in enumerate(raw):
            if in_str:
                if esc:
                    esc = False
                elif c == "\\":
                    esc = True
                elif c == '"':
                    in_str = False
            elif c == '"':
                in_str = True
            elif c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    out.append(raw[:i + 1])
                    raw = raw[i + 2:]
                    break
    return out


def test_paging_through_2500_events_with_next(herald):
    assert publish_n(herald, "big", 2500) == list(range(1, 2501))
    seen, after, pages = [], 0, 0
    epochs = set()
    while True:
        r = herald.read("big", after=after, limit=1000)
        assert r.status_code == 200, r.text
        body = r.json()
        epochs.add(body["epoch"])
        assert body["truncated"] is False
        pages += 1
        if not body["events"]:
            assert body["next"] == 2500
            break
        assert body["next"] == body["events"][-1]["offset"]
        seen += body["events"]
        after = body["next"]
    assert pages == 4
    assert [e["offset"] for e in seen] == list(range(1, 2501))
    assert [e["data"]["i"] for e in seen] == list(range(1, 2501))
    assert all(e["topic"] == "big" and e["time"] for e in seen)
    assert len(epochs) == 1 and len(epochs.pop()) == 16
    # The default page is 100 events; an odd limit and after are honoured.
    body = herald.read("big").json()
    assert [e["offset"] for e in body["events"]] == list(range(1, 101)) and body["next"] == 100
    body = herald.read("big", after=2497, limit=7).json()
    assert [e["offset"] for e in body["events"]] == [2498, 2499, 2500] and body["next"] == 2500
    body = herald.read("big", after=1234, limit=1).json()
    assert [e["offset"] for e in body["events"]] == [1235] and body["next"] == 1235


@pytest.mark.parametrize("query,name", [
    ("limit=0", "limit"), ("limit=1001", "limit"), ("limit=-1", "limit"), ("limit=abc", "limit"),
    ("limit=", "limit"), ("limit=1.5", "limit"), ("limit=%2B5", "limit"), ("limit=%205", "limit"),
    ("limit=99999999999999999999999", "limit"), ("after=-1", "after"), ("after=x", "after"),
    ("after=", "after"), ("after=1e3", "after"), ("after=0x10", "after"),
    ("after=18446744073709551615", "after"), ("after=%zz", "after"),
])
def test_bad_after_or_limit_is_400(herald, query, name):
    herald.publish("q", json.dumps(structured("q-1")), headers=CE_JSON)
    # A raw socket sends the query exactly (requests would re-quote "%zz").
    with RawConn(herald.port) as c:
        r = c.request(http_request("GET", "/v1/topics/q/events?" + query))
    assert r.status == 400, (query, r)
    err = r.json()["error"]
    assert err["code"] == "invalid_request" and f"'{name}'" in err["message"], err


def test_largest_limit_and_after_are_accepted(herald):
    publish_n(herald, "edge", 3)
    body = herald.read("edge", after=0, limit=1000).json()
    assert [e["offset"] for e in body["events"]] == [1, 2, 3]
    r = herald.read("edge", after=18446744073709551614, limit=1)
    assert r.status_code == 200, r.text
    assert r.json()["events"] == [] and r.json()["truncated"] is False


def test_reading_a_topic_that_does_not_exist_is_empty_with_no_epoch(herald):
    for after in (0, 5):
        r = herald.read("never:published", after=after)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["events"] == [] and body["epoch"] == "" and body["truncated"] is False
        assert body["next"] == after
    # Reading does not create the topic.
    assert requests.get(herald.topic_url("never:published", ""), timeout=10).status_code == 404


def test_reading_past_the_end_is_empty_and_keeps_the_cursor(herald):
    publish_n(herald, "end", 5)
    body = herald.read("end", after=5).json()
    assert body["events"] == [] and body["next"] == 5 and body["truncated"] is False and body["epoch"]
    body = herald.read("end", after=9).json()
    assert body["events"] == [] and body["next"] >= 5 and body["truncated"] is False


def test_events_beyond_the_ring_come_from_disk_equal_to_memory(herald_factory):
    h = herald_factory(args=["--ring-events", "16"])
    publish_n(h, "ring", 40)
    ring_before = metric_value(h, "herald_ring_reads_total")
    # The last 16 (25..40) are in memory; a read that starts inside them
    # is answered from the ring.
    mem = h.read("ring", after=24, limit=100)
    assert metric_value(h, "herald_ring_reads_total") == ring_before + 1
    # Everything from offset 1 needs the disk.
    disk = h.read("ring", after=0, limit=100)
    assert metric_value(h, "herald_ring_reads_total") == ring_before + 1
    mem_events, disk_events = events_of(mem.text), events_of(disk.text)
    assert len(mem_events) == 16 and len(disk_events) == 40
    assert mem_events == disk_events[24:]
    assert [json.loads(e)["offset"] for e in disk_events] == list(range(1, 41))
    assert mem.json()["epoch"] == disk.json()["epoch"]
    assert mem.json()["next"] == disk.json()["next"] == 40
    # Pages crossing the ring's first offset join up without a gap.
    got, after = [], 0
    while True:
        body = h.read("ring", after=after, limit=7).json()
        if not body["events"]:
            break
        got += [e["offset"] for e in body["events"]]
        after = body["next"]
    assert got == list(range(1, 41))


def test_reads_right_after_a_restart_match_what_was_read_before(herald_factory):
    h = herald_factory(args=["--ring-events", "16"])
    publish_n(h, "restart", 30)
    before = h.read("restart", after=0, limit=1000)
    before_tail = h.read("restart", after=20, limit=1000)
    h.restart()
    # The ring is empty now: every read comes from disk.
    assert h.read("restart", after=20, limit=1000).text == before_tail.text
    assert h.read("restart", after=0, limit=1000).text == before.text
    # New events continue the offsets; reads spanning old (disk) and new
    # (ring) events are contiguous and identical on repeat.
    assert publish_n(h, "restart", 5, start=31) == list(range(31, 36))
    body = h.read("restart", after=25, limit=1000).json()
    assert [e["offset"] for e in body["events"]] == list(range(26, 36))
    assert body["epoch"] == before.json()["epoch"]
    tail = h.read("restart", after=30, limit=1000)
    assert [e["offset"] for e in tail.json()["events"]] == list(range(31, 36))
    assert events_of(tail.text) == events_of(h.read("restart", after=0, limit=1000).text)[30:]


def test_read_after_restart_of_a_topic_first_seen_by_a_read(herald_factory):
    """A read loads the topic's state from disk; a publish after it must
    still be readable from offset 1 (disk) and from the new offset (ring)."""
    h = herald_factory(args=["--ring-events", "4"])
    publish_n(h, "warm", 3)
    h.restart()
    assert [e["offset"] for e in h.read("warm", after=3).json()["events"]] == []
    publish_n(h, "warm", 2, start=4)
    assert [e["offset"] for e in h.read("warm").json()["events"]] == [1, 2, 3, 4, 5]
    assert [e["offset"] for e in h.read("warm", after=3).json()["events"]] == [4, 5]
    assert [e["offset"] for e in h.read("warm", after=1, limit=2).json()["events"]] == [2, 3]


def test_reads_stay_correct_when_topics_leave_memory(herald_factory):
    """With room for only two topics in memory, topics are dropped and
    reloaded from disk between publishes and reads."""
    h = herald_factory(args=["--max-topics", "2", "--ring-events", "8"])
    topics = [f"evict:{i}" for i in range(5)]
    expected = {t: 0 for t in topics}
    for rnd in range(3):
        for t in topics:
            got = publish_n(h, t, 3, start=expected[t] + 1, prefix=f"r{rnd}-")
            assert got == [expected[t] + 1, expected[t] + 2, expected[t] + 3]
            expected[t] += 3
        for t in reversed(topics):
            body = h.read(t, after=0).json()
            assert [e["offset"] for e in body["events"]] == list(range(1, expected[t] + 1)), t
            assert all(e["topic"] == t for e in body["events"])
            tail = h.read(t, after=expected[t] - 2).json()
            assert [e["offset"] for e in tail["events"]] == [expected[t] - 1, expected[t]]
            assert tail["epoch"] == body["epoch"]
    epochs = {h.read(t).json()["epoch"] for t in topics}
    assert len(epochs) == 5


def test_reads_during_publishes_see_a_contiguous_prefix(herald_factory):
    """A reader polling while events are published never sees a gap or a
    repeat, whether its read is served from memory or from disk."""
    import threading
    h = herald_factory(args=["--ring-events", "16"])
    total = 300
    errors = []

    def writer():
        try:
            with requests.Session() as s:
                for i in range(1, total + 1):
                    r = s.post(h.topic_url("live"), data=json.dumps(structured(f"w{i}")),
                               headers=CE_JSON, timeout=10)
                    assert r.status_code == 201 and r.json()["offset"] == i, r.text
        except Exception as e:  # reported by the main thread
            errors.append(e)

    t = threading.Thread(target=writer)
    t.start()
    seen, polls = [], 0
    with requests.Session() as s:
        while len(seen) < total and not errors and polls < 20000:
            polls += 1
            after = seen[-1] if seen else 0
            limit = 5 if polls % 2 else 1000
            body = s.get(h.topic_url("live"), params={"after": after, "limit": limit}, timeout=10).json()
            got = [e["offset"] for e in body["events"]]
            assert got == list(range(after + 1, after + 1 + len(got))), (after, got)
            seen += got
            # Every so often re-read from the start: it must be a prefix too.
            if polls % 25 == 0:
                full = s.get(h.topic_url("live"), params={"after": 0, "limit": 1000}, timeout=10).json()
                offs = [e["offset"] for e in full["events"]]
                assert offs == list(range(1, len(offs) + 1))
                assert len(offs) >= len(seen)
    t.join(30)
    assert not t.is_alive()
    assert not errors, errors
    assert seen == list(range(1, total + 1))


def test_new_event_is_readable_at_once_while_slow_reads_race_eviction(herald_factory):
    """Regression: a store read that started before a commit to its topic,
    and finished after that topic had left memory again, used to leave its
    older snapshot behind as the topic's state; a read after the previous
    last offset was then answered "nothing new" from memory. Slow reads
    (1000 events each) on two threads widen the window; with room for one
    topic, every publish to B evicts A."""
    import threading
    import time
    h = herald_factory(args=["--max-topics", "1", "--sync", "off"])
    filler = [structured(f"p{i}", data="x" * 500) for i in range(1000)]
    assert h.publish("A", json.dumps(filler), headers=CE_BATCH).status_code == 200
    stop = threading.Event()

    def slow_reader():
        with requests.Session() as s:
            while not stop.is_set():
                s.get(h.topic_url("A"), params={"after": 0, "limit": 1000}, timeout=10)

    readers = [threading.Thread(target=slow_reader) for _ in range(2)]
    for t in readers:
        t.start()
    try:
        deadline = time.monotonic() + 4
        rounds = 0
        with requests.Session() as s:
            while time.monotonic() < deadline:
                rounds += 1
                r = s.post(h.topic_url("A"), data=json.dumps(structured(f"a{rounds}")), headers=CE_JSON, timeout=10)
                assert r.status_code == 201, r.text
                k = r.json()["offset"]
                s.post(h.topic_url("B"), data=json.dumps(structured(f"b{rounds}")), headers=CE_JSON, timeout=10)
                got = [e["offset"] for e in s.get(h.topic_url("A"), params={"after": k - 1}, timeout=10).json()["events"]]
                assert got == [k], f"event {k} of A was acknowledged but a read after {k - 1} gave {got}"
    finally:
        stop.set()
        for t in readers:
            t.join(15)


def test_a_page_of_large_events_stops_at_8_mib_and_loses_nothing(herald_factory):
    """70 events of about 1 MB: one page of up to 1000 of them would be a
    70 MB answer. herald cuts the page at 8 MiB, points `next` at the last
    event sent, and a reader following `next` gets every event once. (Past
    64 MiB the answer used to come back as broken JSON with `next` at the
    last event read, so the reader silently skipped events.)"""
    h = herald_factory(args=["--sync", "off"])
    blob = "y" * (1000 * 1000 - 200)
    for i in range(1, 71):
        r = h.publish("huge", json.dumps(structured(f"h{i}", data=blob)), headers=CE_JSON)
        assert r.status_code == 201 and r.json()["offset"] == i, r.text[:200]
    seen, after, pages = [], 0, 0
    while True:
        r = h.read("huge", after=after, limit=1000)
        assert r.status_code == 200
        assert len(r.content) <= 8 * 1024 * 1024
        body = r.json()
        if not body["events"]:
            break
        pages += 1
        offs = [e["offset"] for e in body["events"]]
        assert offs == list(range(after + 1, after + 1 + len(offs)))
        assert body["next"] == offs[-1]
        assert all(len(e["data"]) == len(blob) for e in body["events"])
        seen += offs
        after = body["next"]
        assert pages <= 70
    assert seen == list(range(1, 71))
    assert 8 <= pages <= 12
