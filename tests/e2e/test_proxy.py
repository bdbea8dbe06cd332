"""herald behind a reverse proxy or load balancer: --trusted-proxies with
Forwarded / X-Forwarded-For, and --proxy-protocol (PROXY v1 and v2).

The per-IP limits apply per forwarded client; the same headers from an
untrusted address change nothing; the connection registry shows the
forwarded client; PROXY headers name the client, malformed ones (or none)
close only their own connection and are counted.
"""
import struct
import time

import requests

from conftest import (RawConn, free_port, herald_launch, http_request, metric_value,
                      per_test_timeout, wait_for)
from wsclient import SECRET, connect, run

_timeout = per_test_timeout(60)

LIMIT_ONE = ["--max-connections-per-ip", "1", "--connection-rate-per-ip", "0"]


def held(h, headers=None, prefix=b""):
    """A keep-alive connection that got an answer to GET /healthz (it stays
    open, counted); returns (conn, status)."""
    c = RawConn(h.port)
    c.send(prefix + http_request("GET", "/healthz", headers=headers))
    return c, c.response().status


def xff(addr):
    return {"X-Forwarded-For": addr}


def test_limits_apply_per_forwarded_client(herald_factory):
    h = herald_factory(args=LIMIT_ONE + ["--trusted-proxies", "10.0.0.0/8, 127.0.0.1"])
    a, sa = held(h, xff("203.0.113.1"))
    assert sa == 200
    # The same client through the proxy again: over its limit of one.
    a2, sa2 = held(h, xff("203.0.113.1"))
    assert sa2 == 429
    # Another client through the same proxy is not throttled by the first.
    b, sb = held(h, xff("203.0.113.2"))
    assert sb == 200
    # The right-most untrusted hop is the client: what is left of it (the
    # client's own claim) does not matter, trusted hops right of it skip.
    c, sc = held(h, xff("198.51.100.77, 203.0.113.2, 10.1.2.3"))
    assert sc == 429
    d, sd = held(h, xff("203.0.113.1, 203.0.113.3"))
    assert sd == 200
    for x in (a, a2, b, c, d):
        x.close()
    assert metric_value(h, "herald_forwarded_requests_total") >= 5


def test_forwarded_header_wins_and_ipv6_counts_per_64(herald_factory):
    h = herald_factory(args=LIMIT_ONE + ["--trusted-proxies", "127.0.0.1"])
    fwd = {"Forwarded": 'for="[2001:db8:cafe::17]:4711";proto=https', "X-Forwarded-For": "203.0.113.9"}
    a, sa = held(h, fwd)
    assert sa == 200
    # Same /64, another address: the same client for the limit.
    b, sb = held(h, {"Forwarded": 'for="[2001:db8:cafe::99]"'})
    assert sb == 429
    # X-Forwarded-For's client was not used while Forwarded was present.
    c, sc = held(h, xff("203.0.113.9"))
    assert sc == 200
    for x in (a, b, c):
        x.close()


def test_forged_headers_from_an_untrusted_address_change_nothing(herald_factory):
    h = herald_factory(args=LIMIT_ONE + ["--trusted-proxies", "10.0.0.0/8"])
    a, sa = held(h, xff("203.0.113.1"))
    assert sa == 200
    b, sb = held(h, {"X-Forwarded-For": "203.0.113.2", "Forwarded": "for=203.0.113.3"})
    assert sb == 429  # still 127.0.0.1, which has its one connection
    a.close()
    b.close()
    # The server sees the closes a moment later; until then 127.0.0.1 still
    # has its one connection and /metrics would be refused too.
    wait_for(lambda: requests.get(f"{h.url}/healthz", timeout=10).status_code == 200, 10,
             what="127.0.0.1's connection to be released")
    assert metric_value(h, "herald_forwarded_requests_total") == 0


def test_connection_registry_shows_the_forwarded_client(herald_factory):
    h = herald_factory(args=["--jwt-secret", SECRET, "--trusted-proxies", "127.0.0.1"])

    async def go():
        c, _ = await connect(h, sub="u9", extra_headers={"X-Forwarded-For": "192.0.2.44"})
        conns = requests.get(f"{h.url}/v1/users/u9/connections", timeout=10).json()
        await c.ws.close()
        return conns

    conns = run(go())
    assert [x["remote"] for x in conns["connections"]] == ["192.0.2.44"], conns


def test_bad_trusted_proxies_refuse_to_start(herald_factory):
    h = herald_factory(args=["--trusted-proxies", "10.0.0.0/33"], start=False)
    herald_launch(h)
    assert h.proc.wait(30) == 2
    h.proc = None
    h.log.close()
    assert "--trusted-proxies" in h.read_log()


# ---- PROXY protocol ------------------------------------------------------

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(src, sport=40000, dport=80):
    fam, dst = ("TCP6", "::1") if ":" in src else ("TCP4", "127.0.0.1")
    return f"PROXY {fam} {src} {dst} {sport} {dport}\r\n".encode()


def v2_inet(src, sport=40000):
    addr = bytes(int(x) for x in src.split(".")) + bytes([127, 0, 0, 1]) + struct.pack("!HH", sport, 80)
    tlv = b"\x04\x00\x03abc"  # a TLV (NOOP) to skip
    return V2_SIG + bytes([0x21, 0x11]) + struct.pack("!H", len(addr) + len(tlv)) + addr + tlv


def v2_local():
    return V2_SIG + bytes([0x20, 0x00]) + struct.pack("!H", 0)


def start_proxied(herald_factory, args):
    """A herald with --proxy-protocol; it is up once a PROXY-prefixed
    /healthz answers 200 (plain requests.get cannot speak PROXY)."""
    h = herald_factory(args=["--proxy-protocol"] + args, start=False)
    herald_launch(h, free_port())

    def up():
        assert h.proc.poll() is None, h.read_log()
        try:
            c, status = held(h, prefix=v2_local())
            c.close()
            return status == 200
        except OSError:
            return False
    wait_for(up, 15, interval=0.05, what="herald with --proxy-protocol")
    return h


def proxied_metric(h, name):
    c = RawConn(h.port)
    c.send(v2_local() + http_request("GET", "/metrics"))
    r = c.response()
    c.close()
    for line in r.body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(name)


def test_proxy_protocol_v1_and_v2_name_the_client(herald_factory):
    h = start_proxied(herald_factory, LIMIT_ONE)
    a, sa = held(h, prefix=v1("198.51.100.1"))
    assert sa == 200
    a2, sa2 = held(h, prefix=v2_inet("198.51.100.1"))
    assert sa2 == 429  # v2 names the same client as v1 did
    b, sb = held(h, prefix=v2_inet("198.51.100.2"))
    assert sb == 200
    c, sc = held(h, prefix=v1("2001:db8::5"))
    assert sc == 200
    u, su = held(h, prefix=b"PROXY UNKNOWN\r\n")  # the peer (127.0.0.1) stands
    assert su == 200
    # A header split across reads is still read.
    s = RawConn(h.port)
    whole = v1("198.51.100.3") + http_request("GET", "/healthz")
    for i in range(0, len(whole), 7):
        s.send(whole[i:i + 7])
        time.sleep(0.002)
    assert s.response().status == 200
    for x in (a, a2, b, c, u, s):
        x.close()
    assert proxied_metric(h, "herald_proxy_protocol_errors_total") == 0


def test_malformed_proxy_headers_are_closed_and_counted(herald_factory):
    h = start_proxied(herald_factory, [])
    keep, st = held(h, prefix=v1("198.51.100.9"))
    assert st == 200
    bad = [
        http_request("GET", "/healthz"),                      # no header at all
        b"PROXY TCP4 198.51.100.1 127.0.0.1 99999 80\r\n",     # port out of range
        b"PROXY TCP4 not-an-ip 127.0.0.1 1 80\r\n",
        b"PROXY TCP6 198.51.100.1 127.0.0.1 1 80\r\n",          # family mismatch
        b"PROXY " + b"A" * 200,                                # no CRLF within 107 bytes
        V2_SIG + bytes([0x31, 0x11, 0, 12]) + bytes(12),       # version 3
        V2_SIG + bytes([0x21, 0x11, 0, 4]) + bytes(4),         # INET with 4 address bytes
        V2_SIG + bytes([0x21, 0x12, 0, 12]) + bytes(12),       # UDP
    ]
    for data in bad:
        with RawConn(h.port) as c:
            c.send(data)
            assert c.closed_by_peer(timeout=10), data
            assert c.buf == b"", (data, c.buf)
    # Nothing else was affected: the good connection still serves.
    keep.send(http_request("GET", "/healthz"))
    assert keep.response().status == 200
    keep.close()
    assert proxied_metric(h, "herald_proxy_protocol_errors_total") == len(bad)


def test_proxy_header_from_an_untrusted_peer_is_ignored(herald_factory):
    h = start_proxied(herald_factory, LIMIT_ONE + ["--trusted-proxies", "10.0.0.0/8"])
    a, sa = held(h, prefix=v1("198.51.100.1"))
    assert sa == 200
    b, sb = held(h, prefix=v1("198.51.100.2"))
    assert sb == 429  # both are 127.0.0.1, which is not trusted
    a.close()
    b.close()


# ---- PROXY protocol on the HTTPS listener ---------------------------------

def tls_get(port, ctx, prefix, path="/healthz"):
    """Sends prefix, then a TLS handshake and one GET, all over one socket,
    the first TLS record in the same write as prefix (a memory BIO drives
    TLS). Returns the status, or None when the server closed first."""
    import socket
    import ssl
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, out, server_hostname="127.0.0.1")
    pending = prefix

    def pump():
        nonlocal pending
        data = pending + out.read()
        pending = b""
        if data:
            sock.sendall(data)
        got = sock.recv(65536)
        if not got:
            raise ConnectionError("closed")
        inc.write(got)

    try:
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pump()
        tls.write(http_request("GET", path))
        buf = b""
        while b"\r\n\r\n" not in buf:
            try:
                buf += tls.read(65536)
            except ssl.SSLWantReadError:
                pump()
        return int(buf.split(b" ", 2)[1]), sock
    except (ConnectionError, OSError, ssl.SSLError):
        sock.close()
        return None, None


def test_proxy_protocol_on_the_tls_listener(herald_factory, tmp_path):
    from test_tls import Pki, tls_args
    pki = Pki(tmp_path / "pki")
    tls_port = free_port()
    h = start_proxied(herald_factory, LIMIT_ONE + tls_args(pki, tls_port))
    ctx = pki.context()
    a, sa = tls_get(tls_port, ctx, v1("198.51.100.1"))
    assert a == 200
    # The same client again: refused (closed before the handshake, as a
    # refused HTTPS connection always is); another client is served.
    b, _ = tls_get(tls_port, ctx, v2_inet("198.51.100.1"))
    assert b is None
    c, sc = tls_get(tls_port, ctx, v2_inet("198.51.100.2"))
    assert c == 200
    d, _ = tls_get(tls_port, ctx, b"PROXY TCP4 bad\r\n")
    assert d is None
    for s in (sa, sc):
        s.close()
    assert proxied_metric(h, "herald_proxy_protocol_errors_total") == 1
