"""Folded publish cycles of the Redis engine (docs/cluster.md, "What an
acknowledgement means", step 4): when publishes queue while a batch's WAIT
is out, the next batch is written right behind the last batch's confirms
without waiting for their replies. Concurrent publishers make that happen
here; the test checks the rules the fold must keep:
- a 201 comes only after its confirm raised the visible top (the top read
  from the primary right after each 201 is at least its offset);
- tops rise batch by batch, in order: each confirm message's PREV is the
  LAST of the one before it, and it carries exactly PREV+1..LAST;
- offsets are dense: the 201s hold 1..N, each once."""
import json
import threading

from conftest import CE_JSON, per_test_timeout, publish_in_threads, structured
from redis_cluster import cluster_fixture, needs_redis, resp_command
from test_cluster_batch import Listener, parse

pytestmark = needs_redis

_timeout = per_test_timeout(120)

PUBLISHERS = 24
EACH = 25
TOPIC = "fold"


cluster = cluster_fixture(nodes=1)


def test_folded_cycles_answer_after_the_confirm_and_raise_tops_in_order(cluster):
    h = cluster.nodes[0]
    port = cluster.primary.port
    listener = Listener(port)
    offsets, early, errors = [], [], []
    lock = threading.Lock()

    def publish(s, k, i):
        r = s.post(h.topic_url(TOPIC), data=json.dumps(structured(f"p{k}-{i}")),
                   headers=CE_JSON, timeout=30)
        if r.status_code != 201:
            with lock:
                errors.append((r.status_code, r.text))
            return False
        off = r.json()["offset"]
        top = int(resp_command(port, "HGET", "{t:%s}:m" % TOPIC, "top") or 0)
        with lock:
            offsets.append(off)
            if top < off:
                early.append((off, top))

    publish_in_threads(PUBLISHERS, EACH, publish)
    assert errors == []
    assert early == [], "a 201 came before its confirm raised the top"
    n = PUBLISHERS * EACH
    assert sorted(offsets) == list(range(1, n + 1))

    try:
        last, sizes = 0, []
        while last < n:
            prev, _, new_last, topic, events = parse(listener.message())
            assert topic == TOPIC
            assert prev == last, f"top rose out of order: {prev} after {last}"
            assert [o for o, _ in events] == list(range(prev + 1, new_last + 1))
            sizes.append(len(events))
            last = new_last
    finally:
        listener.close()
    assert last == n
    assert max(sizes) > 1  # the publishes were batched (and so folded)
