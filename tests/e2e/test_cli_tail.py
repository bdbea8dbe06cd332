"""`herald tail` and `herald stats`, the built binary against a real herald:
tail prints one line per event (plain and --json), from an offset or from
the tail, follows live, resumes after a restart of herald from the last
offset it printed (nothing missed, nothing twice), stops on SIGINT/SIGTERM
with 0 and on a refused key or a bad topic with 1; stats prints the
overview and --json the server's JSON, and needs an admin key."""
import json
import os
import queue
import signal
import subprocess
import threading

import requests

from conftest import BIN, create_key, per_test_timeout, publish_ce, wait_for

_timeout = per_test_timeout(120)


class Tail:
    """A `herald tail` process whose stdout lines a thread queues."""

    def __init__(self, h, key, *args):
        env = dict(os.environ, HERALD_SERVER=h.url)
        env.pop("HERALD_API_KEY", None)
        cmd = [BIN, "tail", *args] + (["--api-key", key] if key else [])
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.lines = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.decode().rstrip("\n"))

    def take(self, n, timeout=15):
        out = []
        for _ in range(n):
            out.append(self.lines.get(timeout=timeout))
        return out

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.reader.join(10)
        return rc, self.proc.stderr.read().decode()


def sse_streams(h, key):
    return requests.get(h.url + "/v1/stats", headers={"Authorization": f"Bearer {key}"},
                        timeout=10).json()["connections"]["sse"]


def admin_herald(herald_factory):
    """A started herald with an admin key its session sends; returns (h, key)."""
    h = herald_factory(start=False)
    key = create_key(h.data_dir, "ops", "admin")
    h.start()
    h.session.headers["Authorization"] = f"Bearer {key}"
    return h, key


def test_tail_json_follows_and_resumes_across_restart(herald_factory):
    h, key = admin_herald(herald_factory)
    publish_ce(h, "t:1", 1, 3)
    t = Tail(h, key, "t:1", "--after", "1", "--json")
    try:
        got = [json.loads(line) for line in t.take(2)]
        assert [(e["offset"], e["id"]) for e in got] == [(2, "e2"), (3, "e3")]
        publish_ce(h, "t:1", 4, 2)
        got += [json.loads(line) for line in t.take(2)]
        # herald goes away and comes back; events stored meanwhile are not
        # seen until it reconnects, then each exactly once and in order.
        port = h.port
        h.stop()
        h.start(port)
        h.session.headers["Authorization"] = f"Bearer {key}"
        publish_ce(h, "t:1", 6, 2)
        got += [json.loads(line) for line in t.take(2, timeout=30)]
        assert [e["offset"] for e in got] == [2, 3, 4, 5, 6, 7]
        assert [e["id"] for e in got] == [f"e{i}" for i in range(2, 8)]
        assert all(e["topic"] == "t:1" and e["type"] == "com.example.test" for e in got)
        publish_ce(h, "t:1", 8, 1)
        assert json.loads(t.take(1)[0])["offset"] == 8
        assert t.lines.empty()
    finally:
        rc, err = t.stop(signal.SIGINT)
    assert rc == 0, err
    assert "connecting again" in err


def test_tail_plain_from_the_tail(herald_factory):
    h, key = admin_herald(herald_factory)
    publish_ce(h, "plain", 1, 2)
    t = Tail(h, key, "plain")
    try:
        wait_for(lambda: sse_streams(h, key) == 1, 15, what="the tail's stream")
        r = h.publish("plain", json.dumps({"specversion": "1.0", "id": "x1", "source": "/s", "type": "a.b",
                                           "data": {"k": [1, 2]}}),
                      headers={"Content-Type": "application/cloudevents+json"})
        assert r.status_code == 201, r.text
        # Only what came after the start: offset 3, not 1 or 2.
        assert t.take(1) == ['3 a.b x1 {"k":[1,2]}']
    finally:
        rc, err = t.stop()
    assert rc == 0, err


def test_tail_refusals(herald_factory):
    h = herald_factory(start=False)
    create_key(h.data_dir, "ops", "admin")
    h.start()
    t = Tail(h, "hd_wrong", "t:1")
    assert t.proc.wait(30) == 1
    _, err = t.stop()
    assert "401" in err and "unknown API key" in err
    t = Tail(h, None, "bad topic name")
    assert t.proc.wait(30) == 1
    _, err = t.stop()
    assert "400" in err or "401" in err
    p = subprocess.run([BIN, "tail"], capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode == 2 and b"usage" in p.stderr
    p = subprocess.run([BIN, "tail", "t", "--after", "x"], capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode == 2 and b"whole number" in p.stderr


def test_stats_command(herald_factory):
    h = herald_factory(start=False)
    key = create_key(h.data_dir, "ops", "admin")
    reader = create_key(h.data_dir, "reader", "read")
    h.start()
    h.session.headers["Authorization"] = f"Bearer {key}"
    publish_ce(h, "s:1", 1, 4)
    env = dict(os.environ, HERALD_SERVER=h.url, HERALD_API_KEY=key)
    p = subprocess.run([BIN, "stats"], capture_output=True, timeout=30, env=env, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    out = p.stdout.decode()
    assert out.startswith("herald 0.") and "users online" in out
    assert "4 events stored" in out and "topics        1" in out
    p = subprocess.run([BIN, "stats", "--json", "--server", h.url + "/"], capture_output=True, timeout=30,
                       env=env, stdin=subprocess.DEVNULL)
    s = json.loads(p.stdout)
    assert s["publishes_total"] == 4 and s["topics"] == 1
    p = subprocess.run([BIN, "stats", "--api-key", reader], capture_output=True, timeout=30, env=env,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 1 and b"403" in p.stderr
    p = subprocess.run([BIN, "stats", "extra"], capture_output=True, timeout=30, env=env, stdin=subprocess.DEVNULL)
    assert p.returncode == 2
