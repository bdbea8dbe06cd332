#!/usr/bin/python3
"""storm — a reconnect storm against herald: N clients connect at once.

Kinds:
  longpoll  each client opens a TCP connection and sends one long-poll GET
            (?after=0&wait=W); the answer is awaited (a publish or the wait).
  ws        each client opens a WebSocket (raw handshake), sends connect (with
            a JWT when --secret is given) and subscribe in one frame, and
            waits for the subscribe reply.
Reports: clients, connects/s (all TCP connects done over the time they took),
connect p50/p99 (TCP handshake, which the kernel does: a SYN dropped by a
full accept queue shows as about 1 s), ready p99 (the answer / the
subscribe reply), failures (refused, reset, timed out, wrong answer) and
ListenOverflows of /proc/net/netstat before and after (machine-wide).

Used by bench/storm.sh and by tests/e2e/test_storm.py (import storm).
"""
import argparse
import asyncio
import base64
import errno
import hashlib
import hmac
import json
import os
import socket
import struct
import time


def listen_overflows():
    """TcpExt ListenOverflows of the whole machine, or None."""
    try:
        with open("/proc/net/netstat") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for i in range(0, len(lines) - 1, 2):
        names, values = lines[i].split(), lines[i + 1].split()
        if names[0] == "TcpExt:" and "ListenOverflows" in names:
            return int(values[names.index("ListenOverflows")])
    return None


def jwt_hs256(secret, sub):
    def b64(d):
        return base64.urlsafe_b64encode(d).rstrip(b"=").decode()
    signing = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(json.dumps({"sub": sub}).encode())
    sig = hmac.new(secret.encode(), signing.encode(), hashlib.sha256).digest()
    return signing + "." + b64(sig)


def ws_frame(text):
    """One masked text frame (clients must mask)."""
    data = text.encode()
    mask = os.urandom(4)
    n = len(data)
    if n < 126:
        head = struct.pack("!BB", 0x81, 0x80 | n)
    else:
        head = struct.pack("!BBH", 0x81, 0x80 | 126, n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


async def read_frame(reader):
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", await reader.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", await reader.readexactly(8))[0]
    return b0 & 0x0F, await reader.readexactly(n)


class SourcePorts:
    """Source ports lo..hi handed out in turn (see bench/fanout.c
    --source-ports: past half the ephemeral range to one destination, the
    kernel's own choice scans thousands of ports per connect)."""

    def __init__(self, lo, hi):
        self.lo, self.hi, self.next = lo, hi, lo

    def bind(self, sock):
        """Binds sock to the next port that is free (one pass at most)."""
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        for _ in range(self.hi - self.lo + 1):
            p = self.next
            self.next = self.lo if p >= self.hi else p + 1
            try:
                sock.bind(("", p))
                return
            except OSError as e:
                if e.errno != errno.EADDRINUSE:
                    raise
        raise OSError(errno.EADDRNOTAVAIL, "no free source port in %d-%d" % (self.lo, self.hi))


async def open_tcp(host, port, source_ports=None):
    """A non-blocking connect (from the next of source_ports, a SourcePorts,
    when given); returns (reader, writer, seconds it took)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    if source_ports:
        try:
            source_ports.bind(sock)
        except OSError:
            sock.close()
            raise
    t0 = time.monotonic()
    try:
        await loop.sock_connect(sock, (host, port))
    except BaseException:
        sock.close()
        raise
    took = time.monotonic() - t0
    reader, writer = await asyncio.open_connection(sock=sock)
    return reader, writer, took


def pct(sorted_values, p):
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p))]


async def run_storm(host, port, kind, n, secret=None, topic="storm", wait=30, timeout=60,
                    release=None, source_ports=None):
    """Runs the storm; returns a dict of results. release: an async function
    called once every client has sent its request (long-poll: a publish
    that answers them) or is ready (ws), before the clients close.
    source_ports: a SourcePorts the clients bind, or None (the kernel's)."""
    hold = asyncio.Event()
    ready = []      # (connect seconds, ready monotonic)
    failures = []
    remaining = [n]
    all_in = asyncio.Event()

    async def client(i):
        try:
            if kind == "longpoll":
                await one_longpoll_ready(i)
            else:
                await one_ws_ready(i)
        except (OSError, RuntimeError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as e:
            failures.append(repr(e)[:120])
        finally:
            remaining[0] -= 1
            if remaining[0] == 0:
                all_in.set()

    # The clients report readiness through ready[] and then wait for hold.
    async def one_longpoll_ready(i):
        reader, writer, took = await open_tcp(host, port, source_ports)
        try:
            writer.write(f"GET /v1/topics/{topic}/events?after=0&wait={wait} HTTP/1.1\r\n"
                         f"Host: {host}\r\n\r\n".encode())
            conn_done[0] += 1
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(head.split(b"\r\n")[0].decode())
            ready.append((took, time.monotonic()))
        finally:
            writer.close()

    async def one_ws_ready(i):
        reader, writer, took = await open_tcp(host, port, source_ports)
        try:
            key = base64.b64encode(os.urandom(16)).decode()
            writer.write(("GET /connection/websocket HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                          "Sec-WebSocket-Version: 13\r\n\r\n" % (host, key)).encode())
            conn_done[0] += 1
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 101"):
                raise RuntimeError(head.split(b"\r\n")[0].decode())
            connect = {"name": "storm"}
            if secret:
                connect["token"] = jwt_hs256(secret, f"u{i}")
            writer.write(ws_frame(json.dumps({"connect": connect, "id": 1}) + "\n" +
                                  json.dumps({"subscribe": {"channel": topic}, "id": 2})))
            got = b""
            while b'"id":2' not in got:
                op, payload = await read_frame(reader)
                if op == 8:
                    raise RuntimeError("closed: %r" % payload[2:])
                got += payload
            if b'"error"' in got:
                raise RuntimeError(got.decode()[:200])
            ready.append((took, time.monotonic()))
            await hold.wait()
        finally:
            writer.close()

    conn_done = [0]
    before = listen_overflows()
    t0 = time.monotonic()
    tasks = [asyncio.ensure_future(client(i)) for i in range(n)]
    if kind == "longpoll":
        # Long-polls are answered by a publish once all are held.
        while conn_done[0] + len(failures) < n and time.monotonic() - t0 < timeout:
            await asyncio.sleep(0.01)
        if release:
            await release()
    else:
        while len(ready) + len(failures) < n and time.monotonic() - t0 < timeout:
            await asyncio.sleep(0.01)
        if release:
            await release()
        hold.set()
    try:
        await asyncio.wait_for(all_in.wait(), max(1.0, timeout - (time.monotonic() - t0)))
    except asyncio.TimeoutError:
        pass
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    after = listen_overflows()
    connects = sorted(c for c, _ in ready)
    readies = sorted(r - t0 for _, r in ready)
    span = readies[-1] if readies else float("nan")
    lost = n - len(ready) - len(failures)
    return {
        "kind": kind, "clients": n, "ok": len(ready), "failures": len(failures) + lost,
        "failure_samples": failures[:5] + (["%d timed out" % lost] if lost else []),
        "connect_p50_ms": pct(connects, 0.50) * 1000, "connect_p99_ms": pct(connects, 0.99) * 1000,
        "connect_max_ms": (connects[-1] if connects else float("nan")) * 1000,
        "ready_p99_ms": pct(readies, 0.99) * 1000, "all_ready_s": span,
        "connects_per_s": len(ready) / span if ready and span > 0 else float("nan"),
        "listen_overflows": (after - before) if before is not None and after is not None else None,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--kind", choices=["longpoll", "ws"], default="ws")
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--secret", help="HS256 secret: the WebSocket clients send a JWT")
    ap.add_argument("--topic", default="storm")
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--source-ports", metavar="LO-HI",
                    help="bind the clients to these source ports in turn (default: the kernel's)")
    args = ap.parse_args()
    ports = None
    if args.source_ports:
        lo, hi = (int(x) for x in args.source_ports.split("-"))
        ports = SourcePorts(lo, hi)

    async def release():
        if args.kind != "longpoll":
            return
        # One publish answers every held long-poll.
        r, w, _ = await open_tcp(args.host, args.port)
        body = b'{"type":"storm","source":"bench","data":{}}'
        w.write(b"POST /v1/topics/%s/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (args.topic.encode(), len(body), body))
        await r.read()
        w.close()

    res = asyncio.run(run_storm(args.host, args.port, args.kind, args.n, args.secret, args.topic,
                                timeout=args.timeout, release=release, source_ports=ports))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
