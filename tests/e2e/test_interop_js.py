"""Interop with clients nobody here wrote, under Node: npm `centrifuge` 5
(with `ws`) over WebSocket and npm `eventsource` over SSE. Each scenario
subscribes, receives, loses the connection (a client disconnect, a herald
restart) while events are published, comes back, and must see every event
exactly once and in order; the retention path must tell the client it
missed events. The node scripts live in tests/js/ (npm install there is done
by scripts/install-deps.sh)."""
import json
import os
import queue
import subprocess
import threading
import time

import pytest
import requests

from conftest import per_test_timeout, publish_ce, structured
from wsclient import SECRET, token, ws_url

_timeout = per_test_timeout(120)

JS = os.path.join(os.path.dirname(__file__), "..", "js")
NODE = "/usr/bin/node"



class Node:
    """A node script whose stdout is JSON lines, read by a thread."""

    def __init__(self, script, env):
        self.proc = subprocess.Popen([NODE, os.path.join(JS, script)], cwd=JS, env=dict(os.environ, **env),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))
        self.lines.put(None)

    def expect(self, pred, timeout=10.0, what="message"):
        """Returns the first message matching pred; others seen meanwhile are returned too."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            left = deadline - time.monotonic()
            try:
                m = self.lines.get(timeout=max(left, 0.001))
            except queue.Empty:
                raise AssertionError(f"timed out waiting for {what}; saw {seen}; stderr: {self.stderr()}")
            if m is None:
                raise AssertionError(f"node exited waiting for {what}; saw {seen}; stderr: {self.stderr()}")
            seen.append(m)
            if pred(m):
                return m, seen

    def collect(self, ev, n, timeout=10.0):
        """The next n messages of kind ev (other kinds are skipped)."""
        got = []
        while len(got) < n:
            m, _ = self.expect(lambda m: m["ev"] == ev, timeout, what=f"{n} {ev} (have {len(got)})")
            got.append(m)
        return got

    def send(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stderr(self):
        if self.proc.poll() is None:
            return "(running)"
        return self.proc.stderr.read()

    def quit(self):
        try:
            self.send("quit")
            self.proc.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


# Both wire formats of the SDK (JSON, and its protobuf build) over the
# WebSocket and the emulation transports it falls back to (HTTP-streaming,
# and SSE, which carries JSON only).
FORMATS = pytest.mark.parametrize("fmt,transport", [
    ("json", "websocket"), ("protobuf", "websocket"),
    ("json", "http_stream"), ("protobuf", "http_stream"), ("json", "sse")])


@FORMATS
def test_centrifuge_js_recovers_across_disconnect_and_restart(herald_factory, fmt, transport):
    h = herald_factory(args=["--jwt-secret", SECRET])
    n = Node("centrifuge_client.js", {"HERALD_WS": ws_url(h), "HERALD_TOKEN": token("u9"),
                                      "HERALD_TOPIC": "interop", "HERALD_FORMAT": fmt,
                                      "HERALD_TRANSPORT": transport})
    try:
        m, _ = n.expect(lambda m: m["ev"] == "connected", what="connected")
        assert m["transport"] == transport, m
        n.expect(lambda m: m["ev"] == "subscribed", what="subscribed")
        publish_ce(h, "interop", 1, 3)
        got = n.collect("pub", 3)
        # The client disconnects; events are published while it is away.
        n.send("disconnect")
        n.expect(lambda m: m["ev"] == "disconnected")
        publish_ce(h, "interop", 4, 3)
        n.send("connect")
        m, _ = n.expect(lambda m: m["ev"] == "subscribed", what="resubscribed")
        assert m["wasRecovering"] and m["recovered"], m
        got += n.collect("pub", 3)
        # herald restarts; the client reconnects by itself and recovers.
        h.stop()
        h.start(h.port)
        publish_ce(h, "interop", 7, 2)
        m, _ = n.expect(lambda m: m["ev"] == "subscribed", timeout=15, what="subscribed after restart")
        assert m["wasRecovering"] and m["recovered"], m
        got += n.collect("pub", 2)
        publish_ce(h, "interop", 9, 1)
        got += n.collect("pub", 1)
        assert [(m["offset"], m["id"]) for m in got] == [(i, f"e{i}") for i in range(1, 10)]
        # user:u9 is a server-side subscription: a notification reaches it.
        r = requests.post(f"{h.url}/v1/users/u9/notifications",
                          data=json.dumps(structured("note-1")),
                          headers={"Content-Type": "application/cloudevents+json"}, timeout=10)
        assert r.status_code == 201
        m, _ = n.expect(lambda m: m["ev"] == "user_pub", what="user notification")
        assert m["channel"] == "user:u9" and m["id"] == "note-1"
    finally:
        n.quit()


@FORMATS
def test_centrifuge_js_told_when_history_is_gone(herald_factory, fmt, transport):
    h = herald_factory(args=["--jwt-secret", SECRET], config="[namespace short]\nretention-max-count = 2\n")
    n = Node("centrifuge_client.js", {"HERALD_WS": ws_url(h), "HERALD_TOKEN": token("u1"),
                                      "HERALD_TOPIC": "short:t", "HERALD_FORMAT": fmt,
                                      "HERALD_TRANSPORT": transport})
    try:
        n.expect(lambda m: m["ev"] == "subscribed")
        publish_ce(h, "short:t", 1, 1)
        n.collect("pub", 1)
        n.send("disconnect")
        n.expect(lambda m: m["ev"] == "disconnected")
        publish_ce(h, "short:t", 2, 5)  # retention keeps only the last 2
        n.send("connect")
        m, _ = n.expect(lambda m: m["ev"] == "subscribed")
        assert m["wasRecovering"] and not m["recovered"], m
        publish_ce(h, "short:t", 7, 1)
        (p,) = n.collect("pub", 1)
        assert p["offset"] == 7
    finally:
        n.quit()


def test_eventsource_resumes_after_restart(herald_factory):
    h = herald_factory(args=["--sse-retry", "200ms"])
    n = Node("sse_client.js", {"HERALD_SSE": h.topic_url("feed", "/sse") + "?after=0"})
    try:
        n.expect(lambda m: m["ev"] == "open")
        publish_ce(h, "feed", 1, 3)
        got = n.collect("msg", 3)
        h.stop()
        h.start(h.port)
        publish_ce(h, "feed", 4, 3)  # the client reconnects with Last-Event-ID: 3
        got += n.collect("msg", 3, timeout=15)
        assert [(m["id"], m["event_id"]) for m in got] == [(str(i), f"e{i}") for i in range(1, 7)]
    finally:
        n.quit()
