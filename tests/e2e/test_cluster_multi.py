"""A publish cycle's writes in one MULTI … EXEC (docs/cluster.md, the
publish cycle; --redis-transactions, issue 12): each test runs with the
option off and on. Checked:
- concurrent publishes to many topics (a batch larger than one Redis read
  of the connection) all answer 201 with dense offsets per topic, and every
  201's event is on the replica already (the WAIT after the EXEC covered
  it); with the option on, the primary ran EXECs (as many as MULTIs), off
  it ran none;
- the server losing its script cache (SCRIPT FLUSH) mid-run: the EVALSHAs
  queued in a bracket fail at EXEC and are retried as EVAL outside it,
  behind the WAIT; such an item answers 503, never a 201 whose event the
  replica does not hold, and later publishes answer 201 again."""
import json
import threading

import pytest
import requests

from conftest import CE_JSON, per_test_timeout, publish_in_threads, structured
from redis_cluster import Cluster, needs_redis, resp_command, started

pytestmark = needs_redis

_timeout = per_test_timeout(120)

PUBLISHERS = 24
EACH = 20
TOPICS = 60
PAD = "x" * 900  # ~1 KB events: a batch spans several Redis reads


@pytest.fixture(params=["off", "on"], ids=["multi-off", "multi-on"])
def cluster(tmp_path, request):
    yield from started(Cluster(tmp_path, nodes=1,
                               args=["--redis-transactions", request.param]))


def cmdstat_calls(port, *names):
    """Calls of each of names, from one INFO (a bracket of the last
    confirms' TOPS may run meanwhile)."""
    text = resp_command(port, "INFO", "commandstats").decode()
    calls = dict.fromkeys(names, 0)
    for line in text.splitlines():
        for name in names:
            if line.startswith(f"cmdstat_{name}:calls="):
                calls[name] = int(line.split("=")[1].split(",")[0])
    return [calls[name] for name in names]


def replica_last(port, topic):
    """The last offset of topic's stream on the replica (0 when none)."""
    last = resp_command(port, "XREVRANGE", "{t:%s}:s" % topic, "+", "-", "COUNT", "1")
    return int(last[0][0].split(b"-")[0]) if last else 0


def publish_all(cluster, flush_at=None):
    """PUBLISHERS threads, EACH publishes each, round-robin over TOPICS
    topics; with flush_at, publisher 0 sends SCRIPT FLUSH to the primary
    after that many of its publishes. Returns (201s as (topic, offset),
    other answers as (status, text), uncovered 201s)."""
    h = cluster.nodes[0]
    ok, other, uncovered = [], [], []
    lock = threading.Lock()

    def publish(s, k, i):
        if k == 0 and i == flush_at:
            resp_command(cluster.primary.port, "SCRIPT", "FLUSH")
        topic = f"m{(k * EACH + i) % TOPICS}"
        r = s.post(h.topic_url(topic), headers=CE_JSON, timeout=30,
                   data=json.dumps(structured(f"p{k}-{i}", data={"pad": PAD})))
        if r.status_code != 201:
            with lock:
                other.append((r.status_code, r.text))
            return
        off = r.json()["offset"]
        covered = replica_last(cluster.replica.port, topic) >= off
        with lock:
            ok.append((topic, off))
            if not covered:
                uncovered.append((topic, off))

    publish_in_threads(PUBLISHERS, EACH, publish)
    return ok, other, uncovered


def test_many_topics_answer_201_dense_and_replicated(cluster, request):
    ok, other, uncovered = publish_all(cluster)
    assert other == []
    assert uncovered == [], "a 201 whose event the replica did not hold"
    by_topic = {}
    for topic, off in ok:
        by_topic.setdefault(topic, []).append(off)
    assert len(ok) == PUBLISHERS * EACH
    for topic, offs in by_topic.items():
        assert sorted(offs) == list(range(1, len(offs) + 1)), topic
    port = cluster.primary.port
    multi, execs, waits = cmdstat_calls(port, "multi", "exec", "wait")
    if request.node.callspec.id == "multi-on":
        assert execs > 0 and multi == execs
        assert execs >= waits
    else:
        assert execs == 0 and multi == 0


def test_script_flush_mid_run_never_answers_an_uncovered_201(cluster):
    ok, other, uncovered = publish_all(cluster, flush_at=EACH // 3)
    assert uncovered == [], "a 201 whose event the replica did not hold"
    assert all(status == 503 for status, _ in other), other
    assert ok, "no publish answered 201"
    # Later publishes are 201 again (the scripts are loaded back).
    h = cluster.nodes[0]
    r = requests.post(h.topic_url("m-after"), data=json.dumps(structured("after")),
                      headers=CE_JSON, timeout=30)
    assert r.status_code == 201, r.text
