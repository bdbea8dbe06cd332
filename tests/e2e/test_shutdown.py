"""Graceful stop (src/main.c): SIGTERM or SIGINT stops accepting, lets
in-flight requests finish (a publish waits for its commit), stops the store
and exits 0. Every publish answered 201 before or during the stop is there
after a restart.
"""
import json
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import (BIN, CE_BATCH, CE_JSON, RawConn, check_published_store, http_request,
                      join_publishers, per_test_timeout, run_publishers, structured, wait_for)

_timeout = per_test_timeout(45)

PROMPT = 5.0  # seconds an idle server may take to stop
DRAIN = 1.0  # --shutdown-timeout of the test below


def timed_stop(h, sig):
    t0 = time.monotonic()
    code = h.stop(sig)
    return code, time.monotonic() - t0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_idle_server_stops_promptly_with_exit_0(herald, sig):
    assert herald.publish("idle", structured("i1"), headers=CE_JSON).status_code == 201
    code, took = timed_stop(herald, sig)
    assert code == 0, herald.read_log()
    assert took < PROMPT, f"stopping an idle server took {took:.2f}s"
    assert "stopped" in herald.read_log()
    herald.start()
    assert [e["id"] for e in herald.read_all("idle")] == ["i1"]


def test_stop_closes_idle_keep_alive_and_half_sent_requests(herald):
    idle = RawConn(herald.port)
    half = RawConn(herald.port)
    try:
        # Both connections are accepted (each had an answer) before the signal.
        assert idle.request(http_request("GET", "/healthz")).status == 200
        assert half.request(http_request("GET", "/healthz")).status == 200
        half.send(b"POST /v1/topics/half/events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"partial")
        code, took = timed_stop(herald, signal.SIGTERM)
        assert code == 0
        assert took < PROMPT, f"stop took {took:.2f}s with an idle and a half-sent connection open"
        assert idle.closed_by_peer(2) and half.closed_by_peer(2)
        assert idle.buf == b""
    finally:
        idle.close()
        half.close()
    herald.start()
    assert herald.read("half").json()["events"] == []


def test_stop_is_not_held_by_a_client_that_keeps_a_refused_connection_open(herald):
    """After a 400 the server lingers for the client's FIN; a client that
    never sends it delays the stop by a bounded time only."""
    c = RawConn(herald.port)
    try:
        assert c.request(b"BAD\r\n\r\n").status == 400
        code, took = timed_stop(herald, signal.SIGTERM)
        assert code == 0
        assert took < PROMPT, f"stop took {took:.2f}s"
    finally:
        c.close()


def test_sigterm_during_concurrent_publishes_keeps_every_acknowledged_event(herald_factory):
    h = herald_factory(args=["--sync", "full"])
    topics = ["stop:a", "stop:b"]
    stop = threading.Event()
    pubs = run_publishers(h.port, 8, topics, seed=7, stop=stop, duration=30, batch_ratio=0.25)
    try:
        # Let the publishers get going, then stop while they are busy.
        wait_for(lambda: sum(len(p.acked) for p in pubs) >= 300, 20, what="300 acknowledged publishes")
        before = sum(len(p.acked) for p in pubs)
        code, took = timed_stop(h, signal.SIGTERM)
        assert code == 0
        assert took < 10, f"stop under load took {took:.2f}s"
    finally:
        stop.set()
        join_publishers(pubs)
    acked = sum(len(p.acked) for p in pubs)
    print(f"acknowledged {before} before SIGTERM, {acked} in all; stop took {took:.2f}s")
    unexpected = [u for p in pubs for u in p.unexpected]
    assert not unexpected, unexpected[:5]
    h.start()
    last = check_published_store(h, topics, pubs, "after SIGTERM:")
    assert sum(last.values()) >= acked >= before
    # The store goes on from where it stopped.
    for t in topics:
        r = h.publish(t, structured(f"after-{t}"), headers=CE_JSON)
        assert r.status_code == 201 and r.json()["offset"] == last[t] + 1


def test_port_in_use_fails_cleanly(tmp_path):
    """A start that cannot listen exits 1 with a message (it used to abort on
    an assertion in hd_http_server_free in debug and sanitizer builds)."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        p = subprocess.run([BIN, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "d")],
                           capture_output=True, text=True, timeout=30)
    assert p.returncode == 1, p.stderr
    assert "cannot listen" in p.stderr
    assert "Assertion" not in p.stderr and "Sanitizer" not in p.stderr, p.stderr


def test_stop_is_bounded_when_a_client_stops_reading(herald_factory):
    """A client that stops reading its responses holds the stop for the
    shutdown deadline at most, not for --idle-timeout."""
    h = herald_factory(args=["--idle-timeout", "30s", "--sync", "off", "--shutdown-timeout", "1s"])
    blob = "q" * 60000
    for i in range(3):
        batch = [structured(f"b{i}-{j}", data={"blob": blob}) for j in range(5)]
        assert h.publish("big", json.dumps(batch), headers=CE_BATCH).status_code == 200
    c = RawConn(h.port)
    try:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        # About 20 MB of answers that this client never reads.
        c.send(http_request("GET", "/v1/topics/big/events?limit=1000") * 20)
        assert c.sock.recv(1000).startswith(b"HTTP/1.1 200")  # the server is writing
        proc, h.proc = h.proc, None  # this test stops it itself
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(DRAIN + PROMPT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"herald did not stop within {DRAIN + PROMPT}s while a client did not read")
        finally:
            h.log.close()
        took = time.monotonic() - t0
        log = h.read_log()
        assert code == 0, log
        assert "http_shutdown_deadline" in log, log
        assert "Sanitizer" not in log and "runtime error:" not in log, log
        print(f"stop took {took:.2f}s")
    finally:
        c.close()

