"""The catch-up races of live delivery on the Redis engine
(src/engine/redis_deliver.c, docs/cluster.md "Live delivery"): one Redis
primary with a replica and three herald nodes on 127.0.0.1, run with the
test-only hooks HERALD_TEST_REDIS_READ_DELAY_MS (a gap or catch-up read's
answer is held that long before the delivery logic sees it) and
HERALD_TEST_REDIS_READ_FAIL (the first N such answers fail). Every
subscriber must get every confirmed event without a later publish:
- a message that arrives while a catch-up read is out (the read ran before
  that publish) makes one more read (the `again` flag);
- an event published while a node's PUB/SUB connection is down is read
  when it comes back, also when another one arrives during that read;
- a failed catch-up read is retried on a timer (50 ms .. 2 s);
- a PUB/SUB connection's catch-up read waits for its SUBSCRIBE answer:
  HERALD_TEST_REDIS_SUB_DELAY_MS holds the SUBSCRIBEs on one node, and an
  event published meanwhile (not a message there) must be read after."""
import contextlib
import signal

from conftest import Herald, per_test_timeout, wait_for
from redis_cluster import cluster_fixture, needs_redis, ready
from test_cluster_notices import publish
from wsclient import SECRET, connect, run

pytestmark = needs_redis

_timeout = per_test_timeout(90)

ARGS = ["--jwt-secret", SECRET]
DELAY_MS = 1500  # a catch-up read's answer is held this long


# Three nodes run with the test-only delivery hooks in env.
delayed = cluster_fixture(args=ARGS, env={"HERALD_TEST_REDIS_READ_DELAY_MS": str(DELAY_MS)})
failing = cluster_fixture(args=ARGS, env={"HERALD_TEST_REDIS_READ_FAIL": "1"})
two = cluster_fixture(args=ARGS, nodes=2)
SUB_DELAY_MS = 3000  # a PUB/SUB connection's SUBSCRIBEs are held this long


async def offsets(subs, n, timeout=10):
    """The next n offsets each subscriber gets (bounded wait, no later publish)."""
    return [[p["pub"]["offset"] for p in await s.pubs(n, timeout=timeout)] for s in subs]


@contextlib.asynccontextmanager
async def following(cluster, topic):
    """A subscriber of topic on each node, which got offset 1 (published
    on node A); closed after."""
    subs = []
    try:
        for i, h in enumerate(cluster.nodes):
            s, _ = await connect(h, sub=f"u{i}")
            subs.append(s)
            assert "subscribe" in await s.call({"subscribe": {"channel": topic}})
        assert publish(cluster.nodes[0], topic, 1) == 1
        assert await offsets(subs, 1) == [[1]] * 3
        yield subs
    finally:
        for s in subs:
            await s.close()


def kill_pubsub(cluster):
    assert cluster.primary.cmd("CLIENT", "KILL", "TYPE", "pubsub") >= 1


def missed_while_stopped(cluster, topic, n):
    """Node B is stopped while every PUB/SUB connection is killed and A
    publishes n (offset n) once A and C are subscribed again: B's PUB/SUB
    message of offset n is lost, only its catch-up read brings it."""
    a, b, c = cluster.nodes
    b.proc.send_signal(signal.SIGSTOP)
    try:
        kill_pubsub(cluster)
        wait_for(lambda: ready(a) and ready(c), 10, interval=0.01, what="A and C ready")
        assert publish(a, topic, n) == n
    finally:
        b.proc.send_signal(signal.SIGCONT)


def test_a_message_during_a_catch_up_read_makes_one_more_read(delayed):
    topic = "news:1"

    async def go():
        async with following(delayed, topic) as subs:
            kill_pubsub(delayed)
            # Ready again = subscribed again: each node's catch-up read has
            # run and its answer (up to offset 1) is held DELAY_MS, so the
            # message of offset 2 arrives while that read is out.
            for h in delayed.nodes:
                wait_for(lambda: ready(h), 10, interval=0.01, what=f"{h.url} ready")
            assert publish(delayed.nodes[1], topic, 2) == 2
            assert await offsets(subs, 1, timeout=4 * DELAY_MS / 1000 + 5) == [[2]] * 3

    run(go())


def test_an_event_missed_while_pubsub_was_down_is_read(delayed):
    """B is stopped while every PUB/SUB connection is killed and offset 2 is
    published; when B's PUB/SUB is back, its catch-up read (held) must bring
    offset 2, and offset 3, published while that read is out, too."""
    a, b, c = delayed.nodes
    topic = "news:2"

    async def go():
        async with following(delayed, topic) as subs:
            missed_while_stopped(delayed, topic, 2)
            wait_for(lambda: ready(b), 10, interval=0.01, what="B ready")
            assert publish(c, topic, 3) == 3
            assert await offsets(subs, 2, timeout=4 * DELAY_MS / 1000 + 5) == [[2, 3]] * 3

    run(go())


def test_a_failed_catch_up_read_is_retried(failing):
    """B misses offset 2 while stopped; its first catch-up read fails (the
    hook) and nothing else is published: the retry timer must bring it."""
    b = failing.nodes[1]
    topic = "news:3"

    async def go():
        async with following(failing, topic) as subs:
            missed_while_stopped(failing, topic, 2)
            assert await offsets(subs, 1) == [[2]] * 3
            assert "catch-up read failed topic=news:3, retry in 50 ms" in b.read_log()

    run(go())


def test_a_catch_up_read_waits_for_the_subscribe_answer(two):
    """A third node, B, holds its SUBSCRIBEs SUB_DELAY_MS after its PUB/SUB
    connection comes up (the hook). Every PUB/SUB connection is killed; once
    B's is back (and held) and A is subscribed again, A publishes offset 2:
    B is not subscribed yet, so the message never reaches it, and only a
    catch-up read sent after the SUBSCRIBE answer (not one sent with it)
    sees offset 2. Nothing is published after."""
    b = Herald(two.tmp / "nodeB", args=two.node_args(), config=two.config,
               env={"HERALD_TEST_REDIS_SUB_DELAY_MS": str(SUB_DELAY_MS)})
    two.nodes.append(b.start())
    wait_for(lambda: ready(b), 15, what="B ready")
    a = two.nodes[0]
    topic = "news:4"

    def holds():
        return b.read_log().count("test hook: SUBSCRIBE held")

    async def go():
        async with following(two, topic) as subs:
            before = holds()
            kill_pubsub(two)
            wait_for(lambda: holds() > before, 10, interval=0.01, what="B's SUBSCRIBEs held")
            wait_for(lambda: ready(a), 10, interval=0.01, what="A ready")
            assert publish(a, topic, 2) == 2
            assert await offsets(subs, 1, timeout=2 * SUB_DELAY_MS / 1000 + 5) == [[2]] * 3

    run(go())
