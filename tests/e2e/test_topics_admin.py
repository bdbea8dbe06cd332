"""Topic administration, health and metrics (docs/api.md "Topics", "Health
and metrics") through python requests against a real herald."""
import datetime
import json
import re

import pytest

from conftest import CE_BATCH, CE_JSON, RawConn, http_request, metric_value, per_test_timeout, structured

_timeout = per_test_timeout(30)


def get(h, path, **params):
    r = h.session.get(h.url + path, params=params, timeout=10)
    return r


def publish(h, topic, id_, **extra):
    r = h.publish(topic, json.dumps(structured(id_, **extra)), headers=CE_JSON)
    assert r.status_code in (200, 201), r.text
    return r.json()


def info(h, topic):
    return h.session.get(h.topic_url(topic, ""), timeout=10)


def test_list_topics_with_prefix_and_paging(herald):
    names = ["a:1", "a:2", "a:3", "a:4", "a:5", "ab", "b:1", "rides:9"]
    for n in reversed(names):
        publish(herald, n, "e")
    body = get(herald, "/v1/topics").json()
    assert [t["name"] for t in body["topics"]] == names and body["next"] is None

    pages, after = [], None
    while True:
        params = {"prefix": "a:", "limit": 2}
        if after is not None:
            params["after"] = after
        r = get(herald, "/v1/topics", **params)
        assert r.status_code == 200, r.text
        body = r.json()
        pages.append([t["name"] for t in body["topics"]])
        if body["next"] is None:
            break
        assert body["next"] == body["topics"][-1]["name"]
        after = body["next"]
        assert len(pages) < 10
    assert [n for p in pages for n in p] == ["a:1", "a:2", "a:3", "a:4", "a:5"]
    assert pages[0] == ["a:1", "a:2"] and pages[1] == ["a:3", "a:4"]

    assert [t["name"] for t in get(herald, "/v1/topics", prefix="a").json()["topics"]] == names[:6]
    assert [t["name"] for t in get(herald, "/v1/topics", prefix="rides:").json()["topics"]] == ["rides:9"]
    assert get(herald, "/v1/topics", prefix="zzz").json() == {"topics": [], "next": None}
    # after without a prefix; after a name that is not a topic.
    assert [t["name"] for t in get(herald, "/v1/topics", after="a:5").json()["topics"]] == ["ab", "b:1", "rides:9"]
    assert [t["name"] for t in get(herald, "/v1/topics", after="a:33").json()["topics"]] == names[3:]
    assert [t["name"] for t in get(herald, "/v1/topics", prefix="a:", after="a:4").json()["topics"]] == ["a:5"]


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=x", "limit=-1", "prefix=%zz", "after=%"])
def test_list_with_bad_parameters_is_400(herald, query):
    # A raw socket: requests would re-quote the bad escapes into good ones.
    with RawConn(herald.port) as c:
        r = c.request(http_request("GET", "/v1/topics?" + query))
    assert r.status == 400, r
    assert r.json()["error"]["code"] == "invalid_request"


def test_topic_info_fields(herald):
    t0 = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=2)
    stored = [publish(herald, "info:t", f"e{i}", data={"i": i}) for i in range(3)]
    assert [s["offset"] for s in stored] == [1, 2, 3]
    r = info(herald, "info:t")
    assert r.status_code == 200, r.text
    t = r.json()
    assert set(t) == {"name", "epoch", "first", "last", "count", "bytes", "created"}
    assert t["name"] == "info:t" and (t["first"], t["last"], t["count"]) == (1, 3, 3)
    assert re.fullmatch(r"[0-9a-f]{16}", t["epoch"])
    assert t["epoch"] == herald.read("info:t").json()["epoch"]
    # bytes is the JSON stored for the events: what reads hand back.
    events = herald.read("info:t").json()["events"]
    assert t["bytes"] == sum(len(json.dumps(e, separators=(",", ":"), ensure_ascii=False).encode()) for e in events)
    assert t["bytes"] == metric_value(herald, "herald_publish_bytes_total")
    created = datetime.datetime.fromisoformat(t["created"].replace("Z", "+00:00"))
    assert t0 <= created <= datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=2)
    # The listing carries the same object.
    assert get(herald, "/v1/topics", prefix="info:").json()["topics"] == [t]
    # Percent-encoded name, same topic.
    assert herald.session.get(herald.url + "/v1/topics/info%3At", timeout=10).json() == t
    # Info survives a restart unchanged.
    herald.restart()
    assert info(herald, "info:t").json() == t


def test_info_of_unknown_topic_is_404(herald):
    r = info(herald, "nope")
    assert r.status_code == 404
    assert r.json()["error"] == {"code": "not_found", "message": "topic 'nope' does not exist"}


def test_delete_then_recreate_gives_a_new_epoch_and_offset_1(herald):
    for i in range(3):
        publish(herald, "del:t", f"e{i}")
    old_epoch = herald.read("del:t").json()["epoch"]
    r = herald.session.delete(herald.topic_url("del:t", ""), timeout=10)
    assert r.status_code == 200, r.text
    assert r.json() == {"deleted": "del:t"}
    assert info(herald, "del:t").status_code == 404
    assert metric_value(herald, "herald_topics") == 0
    body = herald.read("del:t").json()
    assert body == {"events": [], "next": 0, "epoch": "", "truncated": False}
    assert get(herald, "/v1/topics").json()["topics"] == []
    # Dedup entries went with it: the same id is a new event at offset 1.
    r = herald.publish("del:t", json.dumps(structured("e0")), headers=CE_JSON)
    assert r.status_code == 201 and r.json()["offset"] == 1, r.text
    body = herald.read("del:t").json()
    assert [e["offset"] for e in body["events"]] == [1]
    assert body["epoch"] and body["epoch"] != old_epoch
    assert info(herald, "del:t").json()["epoch"] == body["epoch"]
    # The new incarnation survives a restart; the old one does not come back.
    herald.restart()
    body = herald.read("del:t").json()
    assert [e["id"] for e in body["events"]] == ["e0"] and body["epoch"] != old_epoch
    assert publish(herald, "del:t", "e1")["offset"] == 2


def test_delete_of_a_topic_read_from_disk_and_memory(herald_factory):
    h = herald_factory(args=["--ring-events", "4"])
    h.publish("dm", json.dumps([structured(f"e{i}") for i in range(10)]), headers=CE_BATCH)
    h.read("dm", after=0)     # disk
    h.read("dm", after=8)     # ring
    assert h.session.delete(h.topic_url("dm", ""), timeout=10).status_code == 200
    for after in (0, 8):
        assert h.read("dm", after=after).json()["events"] == []
    assert publish(h, "dm", "new")["offset"] == 1
    assert [e["id"] for e in h.read("dm").json()["events"]] == ["new"]


def test_delete_of_unknown_topic_is_404(herald):
    r = herald.session.delete(herald.topic_url("ghost", ""), timeout=10)
    assert r.status_code == 404
    assert r.json()["error"] == {"code": "not_found", "message": "topic 'ghost' does not exist"}
    publish(herald, "ghost", "e")
    assert herald.session.delete(herald.topic_url("ghost", ""), timeout=10).status_code == 200
    assert herald.session.delete(herald.topic_url("ghost", ""), timeout=10).status_code == 404


def test_healthz_and_readyz(herald):
    r = get(herald, "/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert r.headers["Content-Type"].startswith("application/json")
    r = get(herald, "/readyz")
    assert r.status_code == 200 and r.json() == {"status": "ready"}


def parse_metrics(text):
    """name{labels} -> value, and the TYPE of each family."""
    values, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            types[name] = kind
        elif line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            values[key] = float(value)
    return values, types


def test_metrics_count_publishes_duplicates_commits_and_connections(herald):
    r = get(herald, "/metrics")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")
    base, _ = parse_metrics(r.text)

    for i in range(5):
        publish(herald, "m:a", f"e{i}")
    publish(herald, "m:a", "e0")                       # duplicate
    publish(herald, "m:b", "x")
    r = herald.publish("m:b", json.dumps([structured("y"), {"id": 1}, structured("x")]), headers=CE_BATCH)
    assert r.json()["failed_count"] == 1                # one invalid, one duplicate
    herald.publish("m:b", "{bad", headers=CE_JSON)     # invalid

    values, types = parse_metrics(get(herald, "/metrics").text)
    d = {k: values[k] - base.get(k, 0) for k in values}
    assert d["herald_publishes_total"] == 7
    assert d["herald_duplicates_total"] == 2
    assert d["herald_publish_errors_total"] == 2
    assert d["herald_publish_bytes_total"] == sum(
        info(herald, t).json()["bytes"] for t in ("m:a", "m:b"))
    assert values["herald_topics"] == 2
    assert values["herald_connections_open"] >= 1
    assert types["herald_store_commit_batch_events"] == "histogram"
    assert types["herald_store_commit_seconds"] == "histogram"
    assert types["herald_publishes_total"] == "counter" and types["herald_connections_open"] == "gauge"

    for family in ("herald_store_commit_batch_events", "herald_store_commit_seconds"):
        buckets = [(k, v) for k, v in values.items() if k.startswith(family + "_bucket{")]
        les = [re.search(r'le="([^"]+)"', k).group(1) for k, _ in buckets]
        assert les[-1] == "+Inf" and len(les) > 3
        counts = [v for _, v in buckets]
        assert counts == sorted(counts), family
        assert counts[-1] == values[family + "_count"]
    # Every event-carrying commit is observed: 8 publishes reached the store
    # (6 single, 1 batch of 2 valid entries, 1 single duplicate is counted too).
    assert d["herald_store_commit_batch_events_count"] >= 1
    assert d["herald_store_commit_batch_events_sum"] == 9
    assert values['herald_store_commit_batch_events_bucket{le="1"}'] >= 1


def test_connections_open_follows_clients(herald):
    import requests
    from conftest import wait_for
    base = metric_value(herald, "herald_connections_open")
    sessions = [requests.Session() for _ in range(3)]
    for s in sessions:
        assert s.get(herald.url + "/healthz", timeout=10).status_code == 200
    # The /metrics request's own connection is one of those counted.
    wait_for(lambda: metric_value(herald, "herald_connections_open") >= base + 3, timeout=5,
             what="three more open connections")
    for s in sessions:
        s.close()
    wait_for(lambda: metric_value(herald, "herald_connections_open") <= base, timeout=5,
             what="the connections to be counted closed")


def test_pipelined_delete_publish_read_apply_in_order(herald):
    """DELETE, POST and GET sent back to back on one connection: the
    publish lands in the new incarnation and the read sees only it."""
    for i in range(5):
        publish(herald, "pipe", f"old{i}")
    old_epoch = herald.read("pipe").json()["epoch"]
    body = json.dumps(structured("new"))
    with RawConn(herald.port) as c:
        c.send(http_request("DELETE", "/v1/topics/pipe")
               + http_request("POST", "/v1/topics/pipe/events", body, CE_JSON)
               + http_request("GET", "/v1/topics/pipe/events?after=0")
               + http_request("DELETE", "/v1/topics/pipe")
               + http_request("GET", "/v1/topics/pipe/events?after=0"))
        answers = [c.response() for _ in range(5)]
    assert [a.status for a in answers] == [200, 201, 200, 200, 200]
    assert answers[1].json() == {"topic": "pipe", "offset": 1, "id": "new"}
    read = answers[2].json()
    assert [e["id"] for e in read["events"]] == ["new"] and read["epoch"] not in ("", old_epoch)
    assert answers[4].json() == {"events": [], "next": 0, "epoch": "", "truncated": False}


def test_head_works_wherever_get_does(herald):
    publish(herald, "h:t", "e")
    for path in ("/v1/topics", "/v1/topics/h:t", "/v1/topics/h:t/events", "/healthz", "/metrics"):
        get_r = herald.session.get(herald.url + path, timeout=10)
        head_r = herald.session.head(herald.url + path, timeout=10)
        assert head_r.status_code == get_r.status_code == 200, path
        assert head_r.content == b""
        assert head_r.headers["Content-Type"] == get_r.headers["Content-Type"]
    assert herald.session.head(herald.url + "/v1/topics/none", timeout=10).status_code == 404
    # The connection is still in step after the bodiless answers.
    assert herald.session.get(herald.url + "/healthz", timeout=10).json() == {"status": "ok"}
