"""Shared fixtures for herald's end-to-end tests.

Every test talks to a real herald process started on a free 127.0.0.1 port
with its own data directory. HERALD_BIN names the binary (CTest sets it; the
default is build/herald). A server that logs a sanitizer report or exits
non-zero on SIGTERM fails the test that owned it.
"""
import json
import os
import signal
import socket
import subprocess
import time
import urllib.parse

import pytest
import requests

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("HERALD_BIN", os.path.join(ROOT, "build", "herald"))
START_TIMEOUT = 15.0
STOP_TIMEOUT = 30.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Herald:
    """One herald server process; start() and stop() may be repeated on the
    same data directory to test restarts."""

    def __init__(self, data_dir, args=(), env=None, config=None):
        self.data_dir = str(data_dir)
        self.args = list(args)
        self.env = dict(os.environ, **(env or {}))
        self.env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        self.config = config
        self.proc = None
        self.port = None
        self.log_path = self.data_dir + ".log"
        self.session = requests.Session()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, port=None):
        self.port = port or free_port()
        cmd = [BIN, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.data_dir,
               *self.args]
        if self.config is not None:
            path = self.data_dir + ".conf"
            with open(path, "w") as f:
                f.write(self.config)
            cmd += ["--config", path]
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, env=self.env)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"herald exited at start ({self.proc.returncode}):\n{self.read_log()}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                time.sleep(0.02)
        raise RuntimeError("herald did not answer /healthz in time:\n" + self.read_log())

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM):
        """Stops the server; for SIGTERM asserts a clean exit (code 0)."""
        if not self.proc:
            return None
        self.session.close()
        self.session = requests.Session()
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("herald did not stop within %ss:\n%s" % (STOP_TIMEOUT, self.read_log()))
        self.proc = None
        self.log.close()
        log = self.read_log()
        assert "ERROR: AddressSanitizer" not in log, log
        assert "runtime error:" not in log, log
        assert "ERROR: LeakSanitizer" not in log, log
        if sig == signal.SIGTERM:
            assert code == 0, f"exit code {code}:\n{log}"
        return code

    def kill9(self):
        return self.stop(signal.SIGKILL)

    def restart(self):
        self.stop()
        return self.start(self.port)

    # Small helpers for the REST API.
    def topic_url(self, topic, suffix="/events"):
        return f"{self.url}/v1/topics/{urllib.parse.quote(topic, safe='')}{suffix}"

    def publish(self, topic, body, headers=None, **kw):
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            headers = dict({"Content-Type": "application/json"}, **(headers or {}))
        return self.session.post(self.topic_url(topic), data=body, headers=headers or {}, timeout=30, **kw)

    def read(self, topic, after=0, limit=None, **params):
        params = dict(params, after=after)
        if limit is not None:
            params["limit"] = limit
        r = self.session.get(self.topic_url(topic), params=params, timeout=30)
        return r

    def read_all(self, topic, after=0):
        """Reads every event after `after`, following `next`."""
        events = []
        while True:
            r = self.read(topic, after=after, limit=1000)
            assert r.status_code == 200, r.text
            body = r.json()
            events += body["events"]
            if not body["events"]:
                return events
            after = body["next"]


@pytest.fixture
def herald_factory(tmp_path):
    servers = []

    def make(args=(), env=None, config=None, name="data", start=True):
        h = Herald(tmp_path / name, args=args, env=env, config=config)
        servers.append(h)
        return h.start() if start else h

    yield make
    for h in servers:
        if h.proc:
            h.stop()


@pytest.fixture
def herald(herald_factory):
    return herald_factory()


def structured(id_, source="/test", type_="com.example.test", **extra):
    """A structured-mode CloudEvent as a dict."""
    ev = {"specversion": "1.0", "id": id_, "source": source, "type": type_}
    ev.update(extra)
    return ev


CE_JSON = {"Content-Type": "application/cloudevents+json"}
CE_BATCH = {"Content-Type": "application/cloudevents-batch+json"}
