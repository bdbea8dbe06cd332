"""Dedup of (source, id), per-event TTL and per-namespace retention as a
client of the REST API sees them (docs/api.md "Duplicate", "Expiry",
"Read": truncated; docs/config.md namespace options).

Waits for time to pass are bounded polls: the condition is checked every
few milliseconds and the test fails if it does not hold in time."""
import datetime
import json
import time

import pytest

from conftest import CE_BATCH, CE_JSON, metric_value, per_test_timeout, structured, wait_for

_timeout = per_test_timeout(40)


def publish_ev(h, topic, ev, headers=None):
    return h.publish(topic, json.dumps(ev), headers=dict(CE_JSON, **(headers or {})))


def offsets(h, topic, after=0, limit=1000):
    r = h.read(topic, after=after, limit=limit)
    assert r.status_code == 200, r.text
    return [e["offset"] for e in r.json()["events"]]


def ids(h, topic, after=0):
    return [e["id"] for e in h.read(topic, after=after, limit=1000).json()["events"]]


def rfc3339_in(seconds):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# ---- dedup ------------------------------------------------------------------

def test_duplicate_inside_the_window_names_the_original_offset(herald):
    assert publish_ev(herald, "d", structured("a")).status_code == 201
    assert publish_ev(herald, "d", structured("b")).status_code == 201
    r = publish_ev(herald, "d", structured("a", data="changed"))
    assert r.status_code == 200, r.text
    assert r.json() == {"topic": "d", "offset": 1, "id": "a", "duplicate": True}
    events = herald.read("d").json()["events"]
    assert [(e["id"], e["offset"]) for e in events] == [("a", 1), ("b", 2)]
    assert "data" not in events[0]  # the original is kept, not the repeat
    assert metric_value(herald, "herald_duplicates_total") == 1
    assert metric_value(herald, "herald_publishes_total") == 2
    # The next new event still gets the next offset.
    assert publish_ev(herald, "d", structured("c")).json()["offset"] == 3


def test_dedup_survives_a_restart(herald):
    assert publish_ev(herald, "persist", structured("once")).status_code == 201
    herald.restart()
    r = publish_ev(herald, "persist", structured("once"))
    assert r.status_code == 200 and r.json()["duplicate"] is True and r.json()["offset"] == 1, r.text
    herald.kill9()
    herald.start(herald.port)
    r = publish_ev(herald, "persist", structured("once"))
    assert r.status_code == 200 and r.json()["offset"] == 1, r.text
    assert offsets(herald, "persist") == [1]


def test_same_id_from_another_source_or_topic_is_not_a_duplicate(herald):
    assert publish_ev(herald, "src", structured("42", source="/a")).json()["offset"] == 1
    r = publish_ev(herald, "src", structured("42", source="/b"))
    assert r.status_code == 201 and r.json()["offset"] == 2, r.text
    r = publish_ev(herald, "src-other", structured("42", source="/a"))
    assert r.status_code == 201 and r.json()["offset"] == 1, r.text
    assert [e["source"] for e in herald.read("src").json()["events"]] == ["/a", "/b"]


def test_duplicates_inside_one_batch_and_across_modes(herald):
    batch = [structured("x"), structured("y"), structured("x")]
    r = herald.publish("mix", json.dumps(batch), headers=CE_BATCH)
    assert r.status_code == 200, r.text
    assert r.json() == {"failed_count": 0, "entries": [
        {"offset": 1, "id": "x"}, {"offset": 2, "id": "y"}, {"offset": 1, "id": "x", "duplicate": True}]}
    # The same (source, id) in binary mode is the same event.
    h = {"ce-specversion": "1.0", "ce-id": "y", "ce-source": "/test", "ce-type": "t",
         "Content-Type": "text/plain"}
    r = herald.publish("mix", "again", headers=h)
    assert r.status_code == 200 and r.json()["offset"] == 2, r.text
    assert offsets(herald, "mix") == [1, 2]


def test_repeat_after_the_dedup_window_is_stored_again(herald_factory):
    h = herald_factory(args=["--dedup-window", "1s", "--maintenance-interval", "100ms"])
    t0 = time.monotonic()
    assert publish_ev(h, "w", structured("again")).status_code == 201
    r = publish_ev(h, "w", structured("again"))
    assert r.status_code == 200 and r.json()["duplicate"], r.text

    def stored_again():
        r = publish_ev(h, "w", structured("again"))
        assert r.status_code in (200, 201), r.text
        return r if r.status_code == 201 else None

    r = wait_for(stored_again, timeout=6, interval=0.05, what="the dedup window to pass")
    assert time.monotonic() - t0 >= 0.9
    assert r.json() == {"topic": "w", "offset": 2, "id": "again"}
    assert offsets(h, "w") == [1, 2]


def test_namespace_dedup_window_applies_only_to_its_topics(herald_factory):
    conf = "dedup-window = 10m\n\n[namespace fast]\ndedup-window = 1s\n\n[namespace never]\ndedup-window = 0\n"
    h = herald_factory(config=conf, args=["--maintenance-interval", "100ms"])
    for topic in ("fast:1", "slow:1", "never:1"):
        assert publish_ev(h, topic, structured("k")).json()["offset"] == 1
    # Dedup window 0: no dedup at all.
    assert publish_ev(h, "never:1", structured("k")).json() == {"topic": "never:1", "offset": 2, "id": "k"}
    assert publish_ev(h, "fast:1", structured("k")).status_code == 200

    wait_for(lambda: publish_ev(h, "fast:1", structured("k")).status_code == 201, timeout=6, interval=0.05,
             what="the fast namespace's dedup window to pass")
    r = publish_ev(h, "slow:1", structured("k"))
    assert r.status_code == 200 and r.json()["duplicate"], r.text
    assert offsets(h, "fast:1") == [1, 2] and offsets(h, "slow:1") == [1]


# ---- TTL --------------------------------------------------------------------

TTL_WAYS = {
    "expirytime": lambda: (structured("ttl", expirytime=rfc3339_in(1.0)), {}),
    "ttl_attribute": lambda: (structured("ttl", ttl=1), {}),
    "ttl_string": lambda: (structured("ttl", ttl="1"), {}),
    "herald_ttl_header": lambda: (structured("ttl"), {"Herald-TTL": "1"}),
}


def wait_until_gone(h, topic, event_id, timeout=6):
    wait_for(lambda: event_id not in ids(h, topic), timeout=timeout, interval=0.05,
             what=f"event {event_id} to expire")


@pytest.mark.parametrize("way", sorted(TTL_WAYS))
def test_event_is_served_before_its_ttl_and_never_after(herald_factory, way):
    h = herald_factory(args=["--maintenance-interval", "100ms"])
    ev, headers = TTL_WAYS[way]()
    t0 = time.monotonic()
    r = publish_ev(h, "ttl", ev, headers)
    assert r.status_code == 201, r.text
    assert publish_ev(h, "ttl", structured("keep")).status_code == 201
    got = ids(h, "ttl")
    if time.monotonic() - t0 < 0.8:
        assert got == ["ttl", "keep"]
    wait_until_gone(h, "ttl", "ttl")
    assert time.monotonic() - t0 >= 0.9, "expired too early"
    body = h.read("ttl").json()
    assert [(e["id"], e["offset"]) for e in body["events"]] == [("keep", 2)]
    assert body["truncated"] is False  # expiry is not a gap in history
    # Maintenance deletes it; it stays gone across a restart (disk reads).
    wait_for(lambda: h.session.get(h.topic_url("ttl", ""), timeout=10).json()["count"] == 1, timeout=6,
             what="maintenance to delete the expired event")
    h.restart()
    assert ids(h, "ttl") == ["keep"]
    assert offsets(h, "ttl", after=1) == [2]


def test_expired_events_are_not_served_from_disk_either(herald_factory):
    # No ring, and maintenance too rare to help: the read itself must skip them.
    h = herald_factory(args=["--ring-events", "0", "--maintenance-interval", "1h"])
    t0 = time.monotonic()
    publish_ev(h, "disk", structured("a", expirytime=rfc3339_in(1.0)))
    publish_ev(h, "disk", structured("b", ttl=1))
    publish_ev(h, "disk", structured("c"), {"Herald-TTL": "1"})
    publish_ev(h, "disk", structured("keep"))
    got = ids(h, "disk")
    if time.monotonic() - t0 < 0.8:
        assert got == ["a", "b", "c", "keep"]
    wait_for(lambda: ids(h, "disk") == ["keep"], timeout=6, interval=0.05, what="all three to expire")
    assert time.monotonic() - t0 >= 0.9
    assert offsets(h, "disk", after=2) == [4]


def test_ttl_precedence_expirytime_then_ttl_then_header(herald_factory):
    h = herald_factory(args=["--maintenance-interval", "100ms"])
    # expirytime wins over ttl, ttl over the header.
    publish_ev(h, "prec", structured("exp-far", expirytime=rfc3339_in(3600), ttl=1))
    publish_ev(h, "prec", structured("ttl-short", ttl=1), {"Herald-TTL": "3600"})
    publish_ev(h, "prec", structured("hdr-short"), {"Herald-TTL": "1"})
    publish_ev(h, "prec", structured("exp-short", expirytime=rfc3339_in(1.0), ttl=3600))
    wait_for(lambda: ids(h, "prec") == ["exp-far"], timeout=6, interval=0.05, what="short TTLs to pass")


def test_event_already_expired_at_publish_is_acknowledged_but_never_served(herald):
    r = publish_ev(herald, "past", structured("old", expirytime="2001-01-01T00:00:00Z"))
    assert r.status_code == 201 and r.json()["offset"] == 1, r.text
    assert ids(herald, "past") == []
    assert publish_ev(herald, "past", structured("new")).json()["offset"] == 2
    assert ids(herald, "past") == ["new"]


def test_herald_ttl_applies_to_every_entry_of_a_batch(herald_factory):
    h = herald_factory(args=["--maintenance-interval", "100ms"])
    batch = [structured("b1"), structured("b2", ttl=3600)]
    r = h.publish("bttl", json.dumps(batch), headers=dict(CE_BATCH, **{"Herald-TTL": "1"}))
    assert r.status_code == 200 and r.json()["failed_count"] == 0, r.text
    wait_for(lambda: ids(h, "bttl") == ["b2"], timeout=6, interval=0.05, what="b1 to expire")


@pytest.mark.parametrize("value", ["abc", "0", "-1", "1.5", "31536001", "", "5x", "1s", "99999999999999999999999"])
def test_bad_herald_ttl_header_is_400(herald, value):
    r = publish_ev(herald, "badttl", structured("x"), {"Herald-TTL": value})
    assert r.status_code == 400, (value, r.text)
    err = r.json()["error"]
    assert err["code"] == "invalid_request"
    assert err["message"] == "header 'herald-ttl' must be a whole number of seconds from 1 to 31536000"
    assert herald.session.get(herald.topic_url("badttl", ""), timeout=10).status_code == 404


@pytest.mark.parametrize("attrs,message", [
    ({"ttl": 0}, "attribute 'ttl' must be a whole number of seconds from 1 to 31536000"),
    ({"ttl": -5}, "attribute 'ttl' must be a whole number"),
    ({"ttl": 1.5}, "attribute 'ttl' must be a whole number"),
    ({"ttl": "soon"}, "attribute 'ttl' must be a whole number"),
    ({"expirytime": "tomorrow"}, "attribute 'expirytime' is not an RFC 3339 timestamp"),
])
def test_bad_ttl_attribute_is_400(herald, attrs, message):
    r = publish_ev(herald, "badttl", structured("x", **attrs))
    assert r.status_code == 400, r.text
    assert r.json()["error"] == {"code": "invalid_event", "message": message} or \
        message in r.json()["error"]["message"]


# ---- retention --------------------------------------------------------------

def test_retention_by_count_keeps_the_last_five_and_reports_the_gap(herald_factory):
    h = herald_factory(config="[namespace keep5]\nretention-max-count = 5\n")
    for i in range(1, 13):
        assert publish_ev(h, "keep5:t", structured(f"e{i}")).json()["offset"] == i
    publish_ev(h, "other:t", structured("x"))
    for _ in range(2):  # from memory, then from disk after a restart
        body = h.read("keep5:t", after=0).json()
        assert [e["offset"] for e in body["events"]] == [8, 9, 10, 11, 12]
        assert body["truncated"] is True and body["next"] == 12
        body = h.read("keep5:t", after=7).json()
        assert [e["offset"] for e in body["events"]] == [8, 9, 10, 11, 12]
        assert body["truncated"] is False
        body = h.read("keep5:t", after=3, limit=2).json()
        assert [e["offset"] for e in body["events"]] == [8, 9] and body["truncated"] is True
        body = h.read("keep5:t", after=12).json()
        assert body["events"] == [] and body["truncated"] is False
        info = h.session.get(h.topic_url("keep5:t", ""), timeout=10).json()
        assert (info["first"], info["last"], info["count"]) == (8, 12, 5)
        h.restart()
    # A batch that overflows the limit by itself keeps only its tail.
    batch = [structured(f"b{i}") for i in range(8)]
    r = h.publish("keep5:t", json.dumps(batch), headers=CE_BATCH)
    assert [e["offset"] for e in r.json()["entries"]] == list(range(13, 21))
    assert offsets(h, "keep5:t") == [16, 17, 18, 19, 20]
    assert offsets(h, "other:t") == [1]


def test_retention_by_age_removes_old_events_and_reports_truncated(herald_factory):
    h = herald_factory(config="[namespace old]\nretention-max-age = 1s\n",
                       args=["--maintenance-interval", "100ms"])
    t0 = time.monotonic()
    for i in range(1, 4):
        publish_ev(h, "old:t", structured(f"e{i}"))
    publish_ev(h, "young:t", structured("y"))
    body = h.read("old:t").json()
    if time.monotonic() - t0 < 0.8:
        assert [e["offset"] for e in body["events"]] == [1, 2, 3] and body["truncated"] is False
    wait_for(lambda: h.read("old:t").json()["events"] == [], timeout=6, interval=0.05,
             what="events older than 1s to go")
    assert time.monotonic() - t0 >= 0.9
    body = h.read("old:t").json()
    assert body["truncated"] is True and body["next"] == 3
    wait_for(lambda: h.session.get(h.topic_url("old:t", ""), timeout=10).json()["count"] == 0, timeout=6,
             what="maintenance to delete them")
    info = h.session.get(h.topic_url("old:t", ""), timeout=10).json()
    assert (info["first"], info["last"]) == (4, 3)
    # Offsets go on; a reader from before the gap is told, one after it is not.
    assert publish_ev(h, "old:t", structured("e4")).json()["offset"] == 4
    for _ in range(2):
        body = h.read("old:t", after=0).json()
        assert [e["offset"] for e in body["events"]] == [4] and body["truncated"] is True
        body = h.read("old:t", after=3).json()
        assert [e["offset"] for e in body["events"]] == [4] and body["truncated"] is False
        h.restart()
    assert offsets(h, "young:t") == [1]


def test_aged_out_events_read_from_disk_report_truncated_before_maintenance(herald_factory):
    """Reads skip events past max_age even before maintenance deletes them;
    the reader must then be told of the gap, as it is from memory."""
    h = herald_factory(config="[namespace old]\nretention-max-age = 1s\n",
                       args=["--maintenance-interval", "1h", "--ring-events", "0"])
    t0 = time.monotonic()
    for i in range(1, 4):
        publish_ev(h, "old:t", structured(f"e{i}"))
    wait_for(lambda: h.read("old:t").json()["events"] == [], timeout=6, interval=0.05,
             what="events older than 1s to be skipped")
    assert time.monotonic() - t0 >= 0.9
    body = h.read("old:t").json()
    assert body["truncated"] is True, body


def test_history_off_namespace_assigns_offsets_but_keeps_nothing(herald_factory):
    h = herald_factory(config="[namespace live]\nhistory = off\n")
    got = [publish_ev(h, "live:pos", structured(f"p{i}")).json() for i in range(1, 4)]
    assert [g["offset"] for g in got] == [1, 2, 3]
    r = publish_ev(h, "live:pos", structured("p1"))
    assert r.status_code == 200 and r.json()["duplicate"] and r.json()["offset"] == 1, r.text
    for _ in range(2):
        body = h.read("live:pos").json()
        assert body["events"] == [] and body["next"] == 3 and body["truncated"] is True
        assert body["epoch"]
        body = h.read("live:pos", after=3).json()
        assert body["events"] == [] and body["truncated"] is False
        info = h.session.get(h.topic_url("live:pos", ""), timeout=10).json()
        assert (info["last"], info["count"], info["bytes"]) == (3, 0, 0)
        h.restart()
    assert publish_ev(h, "live:pos", structured("p4")).json()["offset"] == 4
    assert h.read("live:pos", after=3).json()["events"] == []
    # Other namespaces keep history.
    publish_ev(h, "kept:pos", structured("k"))
    assert offsets(h, "kept:pos") == [1]
