"""TLS (docs/tls.md): HTTPS and WSS on --tls-listen next to plain HTTP.

A throw-away CA and server certificates are made with the openssl CLI in
the test's tmp directory; clients verify against that CA. Covered: publish
and read over HTTPS with curl (and plain HTTP side by side), keep-alive,
pipelining and large bodies over TLS, an SSE stream and a Centrifugo
WebSocket over WSS, the refusal of TLS 1.1 and of non-AEAD ciphers,
garbage on the TLS port, SIGHUP certificate reloads (open connections keep
theirs, new ones get the new one, a bad file keeps the old one), bad
certificate files at start (exit 2), and an HTTPS-only server."""
import asyncio
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import urllib.parse
import warnings

import pytest
import requests
import websockets

from conftest import (BIN, CE_BATCH, Herald, RawConn, free_port, http_request, metric_value,
                      per_test_timeout, structured, wait_for)
from wsclient import Client

_timeout = per_test_timeout(60)


class Pki:
    """A CA in directory d and the server certificates it issues."""

    def __init__(self, d):
        self.d = str(d)
        os.makedirs(self.d, exist_ok=True)
        self.ca = os.path.join(self.d, "ca.pem")
        self._openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                      "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=herald test CA",
                      "-days", "2")
        with open(os.path.join(self.d, "ext.cnf"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                    "keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n")

    def _openssl(self, *args):
        subprocess.run(["openssl", *args], cwd=self.d, check=True, capture_output=True, timeout=30)

    def issue(self, name, serial):
        """Returns (cert path, key path) of a new P-256 server certificate
        for 127.0.0.1 and localhost."""
        self._openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                      "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        self._openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                      "-set_serial", str(serial), "-days", "2", "-extfile", "ext.cnf",
                      "-out", f"{name}.pem")
        return os.path.join(self.d, f"{name}.pem"), os.path.join(self.d, f"{name}.key")

    def der(self, cert_path):
        with open(cert_path) as f:
            return ssl.PEM_cert_to_DER_cert(f.read())

    def context(self, **kw):
        ctx = ssl.create_default_context(cafile=self.ca)
        for k, v in kw.items():
            setattr(ctx, k, v)
        return ctx


@pytest.fixture
def pki(tmp_path):
    return Pki(tmp_path / "pki")


def tls_args(pki, port, name="srv1", serial=1001):
    """herald arguments for an HTTPS listener; the files live under fixed
    names (live.pem, live.key) so that a reload can replace them."""
    cert, key = pki.issue(name, serial)
    live_cert, live_key = os.path.join(pki.d, "live.pem"), os.path.join(pki.d, "live.key")
    shutil.copy(cert, live_cert)
    shutil.copy(key, live_key)
    return ["--tls-listen", f"127.0.0.1:{port}", "--tls-cert", live_cert, "--tls-key", live_key,
            "--ws-anonymous"]


@pytest.fixture
def tls_herald(herald_factory, pki):
    port = free_port()
    h = herald_factory(args=tls_args(pki, port))
    h.tls_port = port
    h.tls_url = f"https://127.0.0.1:{port}"
    return h


def curl(pki, *args):
    r = subprocess.run(["curl", "-sS", "--max-time", "20", "--cacert", pki.ca, *args],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout.decode()


def topic_path(topic, suffix="/events"):
    return f"/v1/topics/{urllib.parse.quote(topic, safe='')}{suffix}"


class TlsConn(RawConn):
    """RawConn over TLS: exact request bytes, parsed responses."""

    def __init__(self, port, ctx, timeout=5.0, rcvbuf=None):
        super().__init__(port, timeout, rcvbuf=rcvbuf)
        self.sock = ctx.wrap_socket(self.sock, server_hostname="127.0.0.1")

    def peer_der(self):
        return self.sock.getpeercert(binary_form=True)


def test_https_and_http_side_by_side_with_curl(tls_herald, pki):
    h = tls_herald
    out = curl(pki, "-X", "POST", "-H", "Content-Type: application/cloudevents+json",
               "--data-binary", json.dumps(structured("s1", data={"over": "https"})),
               h.tls_url + topic_path("side"))
    assert json.loads(out)["offset"] == 1
    r = h.publish("side", json.dumps(structured("p2", data={"over": "http"})),
                  headers={"Content-Type": "application/cloudevents+json"})
    assert r.status_code == 201, r.text
    # Both events, read over HTTPS with curl and over plain HTTP.
    body = json.loads(curl(pki, h.tls_url + topic_path("side") + "?after=0"))
    assert [e["id"] for e in body["events"]] == ["s1", "p2"]
    assert [e["id"] for e in h.read_all("side")] == ["s1", "p2"]
    # curl verified the chain and the name 127.0.0.1; ALPN picks http/1.1.
    verbose = subprocess.run(["curl", "-sS", "-v", "--cacert", pki.ca, h.tls_url + "/healthz"],
                             capture_output=True, timeout=30).stderr.decode()
    assert "ALPN: server accepted http/1.1" in verbose, verbose
    assert metric_value(h, "herald_tls_handshakes_total") >= 3


def test_keep_alive_pipelining_and_large_bodies_over_tls(tls_herald, pki):
    h = tls_herald
    ctx = pki.context()
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with TlsConn(h.tls_port, ctx) as c:
        assert c.sock.version() == "TLSv1.3"
        assert c.sock.selected_alpn_protocol() == "http/1.1"
        # Three pipelined requests in one TLS write, answered in order.
        c.send(http_request("GET", "/healthz") +
               http_request("POST", topic_path("pipe"), json.dumps(structured("a")),
                            {"Content-Type": "application/cloudevents+json"}) +
               http_request("GET", topic_path("pipe") + "?after=0"))
        assert c.response().status == 200
        assert c.response().json()["offset"] == 1
        assert [e["id"] for e in c.response().json()["events"]] == ["a"]
        # A 600 KB batch: many records in, the plaintext buffer fills and drains.
        pad = "x" * 6000
        batch = [structured(f"big{i}", data={"i": i, "pad": pad}) for i in range(100)]
        r = c.request(http_request("POST", topic_path("big"), json.dumps(batch),
                                   {"Content-Type": CE_BATCH["Content-Type"]}), timeout=20)
        assert r.status == 200 and r.json()["failed_count"] == 0, r
        # A response of many records back.
        r = c.request(http_request("GET", topic_path("big") + "?after=0&limit=100"), timeout=20)
        events = r.json()["events"]
        assert [e["data"]["i"] for e in events] == list(range(100))
        assert all(e["data"]["pad"] == pad for e in events)
    # TLS 1.2 works too, with an AEAD suite of the server's choosing.
    ctx12 = pki.context(maximum_version=ssl.TLSVersion.TLSv1_2)
    with TlsConn(h.tls_port, ctx12) as c:
        assert c.sock.version() == "TLSv1.2"
        assert c.sock.cipher()[0] in ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
                                      "ECDHE-ECDSA-CHACHA20-POLY1305"), c.sock.cipher()
        assert c.request(http_request("GET", "/healthz")).status == 200


def test_sse_stream_over_https(tls_herald, pki):
    h = tls_herald
    with requests.get(h.tls_url + topic_path("live", "/sse"), stream=True, verify=pki.ca,
                      timeout=10) as r:
        assert r.status_code == 200
        assert r.headers["Content-Type"].startswith("text/event-stream")
        lines = r.iter_lines(chunk_size=1, decode_unicode=True)
        assert next(lines).startswith("retry:")
        p = h.publish("live", json.dumps(structured("ev1", data={"n": 1})),
                      headers={"Content-Type": "application/cloudevents+json"})
        assert p.status_code == 201
        got = {}
        for line in lines:
            if not line:
                if "data" in got:
                    break
                continue
            k, _, v = line.partition(":")
            got[k] = v.strip()
        assert got["id"] == "1"
        assert json.loads(got["data"])["id"] == "ev1"


def test_slow_tls_consumer_is_cut_off_by_max_pending_bytes(herald_factory, pki):
    # Over TLS the unsent output is still counted (in plaintext, until its
    # ciphertext is written): a stream that does not read is cut off.
    port = free_port()
    h = herald_factory(args=tls_args(pki, port) + ["--max-pending-bytes", "64k"])
    slow = TlsConn(port, pki.context(), rcvbuf=4096)
    slow.send(http_request("GET", topic_path("slow", "/sse") + "?after=0"))
    wait_for(lambda: metric_value(h, "herald_sse_streams") == 1, 5, what="the stream")
    pad = "p" * 2000
    for k in range(0, 600, 50):
        batch = [structured(f"s{i}", data={"i": i, "pad": pad}) for i in range(k, k + 50)]
        r = h.publish("slow", json.dumps(batch), headers=CE_BATCH)
        assert r.status_code == 200, r.text
    wait_for(lambda: metric_value(h, "herald_slow_consumer_disconnects_total") >= 1, 20,
             what="the slow consumer to be cut off")
    wait_for(lambda: metric_value(h, "herald_sse_streams") == 0, 5, what="the stream to end")
    slow.close()


def test_websocket_over_wss_with_the_centrifugo_protocol(tls_herald, pki):
    h = tls_herald

    async def go():
        ws = await asyncio.wait_for(websockets.connect(
            f"wss://127.0.0.1:{h.tls_port}/connection/websocket", ssl=pki.context()), 10)
        c = Client(ws)
        await c.send_raw('{"connect":{},"id":1}')
        r = await c.reply(1)
        assert "connect" in r, r
        r = await c.call({"subscribe": {"channel": "wss"}})
        assert "subscribe" in r, r
        # Published over HTTPS, received over WSS.
        out = await asyncio.to_thread(
            curl, pki, "-X", "POST", "-H", "Content-Type: application/cloudevents+json",
            "--data-binary", json.dumps(structured("w1", data={"hello": "wss"})),
            h.tls_url + topic_path("wss"))
        assert json.loads(out)["offset"] == 1
        (p,) = await c.pubs(1)
        assert p["channel"] == "wss" and p["pub"]["tags"]["id"] == "w1" and p["pub"]["data"] == {"hello": "wss"}
        await c.close()

    asyncio.run(asyncio.wait_for(go(), 30))


def handshake_fails(port, ctx):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            ctx.wrap_socket(s, server_hostname="127.0.0.1")


def test_old_versions_and_non_aead_ciphers_are_refused(tls_herald, pki):
    h = tls_herald
    before = metric_value(h, "herald_tls_handshake_failures_total")
    # A client that offers TLS 1.1 only (its own security level lowered so
    # that it really sends the offer).
    old = pki.context()
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = ssl.TLSVersion.TLSv1_1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    handshake_fails(h.tls_port, old)
    # TLS 1.2 with CBC (non-AEAD) suites only.
    cbc = pki.context(maximum_version=ssl.TLSVersion.TLSv1_2)
    cbc.set_ciphers("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384:ECDHE-ECDSA-AES128-SHA256")
    handshake_fails(h.tls_port, cbc)
    # The same with the openssl CLI.
    for args in (["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"], ["-tls1_2", "-cipher", "AES128-SHA"]):
        r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{h.tls_port}", *args],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        assert r.returncode != 0 and b"Cipher is (NONE)" in r.stdout, r.stdout
    # The server refused them (not the clients themselves), and still serves.
    assert metric_value(h, "herald_tls_handshake_failures_total") >= before + 4
    assert requests.get(h.tls_url + "/healthz", verify=pki.ca, timeout=10).status_code == 200


def test_garbage_on_the_tls_port_is_closed(tls_herald, pki):
    h = tls_herald
    before = metric_value(h, "herald_tls_handshake_failures_total")
    # Plain HTTP to the TLS port.
    with RawConn(h.tls_port) as c:
        c.send(http_request("GET", "/healthz"))
        assert c.closed_by_peer(5)
        assert b"HTTP/1.1" not in c.buf
    # Random bytes shaped like a record header, then junk.
    with RawConn(h.tls_port) as c:
        c.send(b"\x16\x03\x01\x00\x30" + os.urandom(48))
        assert c.closed_by_peer(5)
    # A client that leaves in the middle of its ClientHello.
    with RawConn(h.tls_port) as c:
        c.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    # A client that says nothing is closed by the header timeout, like on HTTP.
    assert metric_value(h, "herald_tls_handshake_failures_total") >= before + 2
    assert requests.get(h.tls_url + "/healthz", verify=pki.ca, timeout=10).status_code == 200
    assert requests.get(h.url + "/healthz", timeout=10).status_code == 200


def test_sighup_reloads_the_certificate_for_new_connections_only(herald_factory, pki):
    port = free_port()
    h = herald_factory(args=tls_args(pki, port, "srv1", 1001))
    live_cert, live_key = os.path.join(pki.d, "live.pem"), os.path.join(pki.d, "live.key")
    der1 = pki.der(live_cert)
    ctx = pki.context()
    old = TlsConn(port, ctx)
    assert old.peer_der() == der1
    assert old.request(http_request("GET", "/healthz")).status == 200
    sse = requests.get(f"https://127.0.0.1:{port}" + topic_path("reload", "/sse"), stream=True,
                       verify=pki.ca, timeout=10)
    lines = sse.iter_lines(chunk_size=1, decode_unicode=True)
    assert next(lines).startswith("retry:")

    cert2, key2 = pki.issue("srv2", 2002)
    der2 = pki.der(cert2)
    assert der2 != der1
    shutil.copy(cert2, live_cert + ".tmp")
    shutil.copy(key2, live_key + ".tmp")
    os.replace(live_key + ".tmp", live_key)
    os.replace(live_cert + ".tmp", live_cert)
    h.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "tls_reloaded" in h.read_log(), 10, what="tls_reloaded in the log")
    assert "serial=07D2" in h.read_log()  # 2002

    with TlsConn(port, ctx) as new:
        assert new.peer_der() == der2
        assert new.request(http_request("GET", "/healthz")).status == 200
    # The connections from before the reload still work, on the old certificate.
    assert old.peer_der() == der1
    assert old.request(http_request("GET", "/healthz")).status == 200
    p = h.publish("reload", json.dumps(structured("r1")),
                  headers={"Content-Type": "application/cloudevents+json"})
    assert p.status_code == 201
    data = next(line for line in lines if line.startswith("data:"))
    assert json.loads(data[5:])["id"] == "r1"
    sse.close()
    old.close()

    # A broken file: the reload fails, the server keeps the last good certificate.
    with open(live_cert, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    h.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "tls_reload_failed" in h.read_log(), 10, what="tls_reload_failed in the log")
    with TlsConn(port, ctx) as c:
        assert c.peer_der() == der2
        assert c.request(http_request("GET", "/healthz")).status == 200


def run_serve(args, tmp_path):
    return subprocess.run([BIN, "serve", "--data-dir", str(tmp_path / "bad"), *args],
                          capture_output=True, timeout=30)


def test_bad_tls_settings_exit_2_with_a_clear_message(pki, tmp_path):
    cert, key = pki.issue("srv1", 1001)
    other_cert, other_key = pki.issue("srv2", 1002)
    listen = ["--listen", f"127.0.0.1:{free_port()}", "--tls-listen", f"127.0.0.1:{free_port()}"]
    cases = [
        (listen + ["--tls-cert", str(tmp_path / "missing.pem"), "--tls-key", key], "--tls-cert"),
        (listen + ["--tls-cert", cert, "--tls-key", str(tmp_path / "missing.key")], "--tls-key"),
        (listen + ["--tls-cert", key, "--tls-key", key], "--tls-cert"),
        (listen + ["--tls-cert", cert, "--tls-key", other_key], "does not match"),
        (listen, "needs --tls-cert"),
        (["--tls-cert", cert, "--tls-key", key], "need --tls-listen"),
        (["--listen", ""], "nothing to serve on"),
    ]
    for args, words in cases:
        r = run_serve(args, tmp_path)
        err = r.stderr.decode()
        assert r.returncode == 2, (args, r.returncode, err)
        assert words in err, (args, err)
    assert not os.path.exists(tmp_path / "bad")  # refused before the store opened


def test_https_only_server(pki, tmp_path):
    port = free_port()
    h = Herald(tmp_path / "data", args=tls_args(pki, port) + ["--listen", ""])
    cmd = [BIN, "serve", "--data-dir", h.data_dir, *h.args]
    h.log = open(h.log_path, "ab")
    h.proc = subprocess.Popen(cmd, stdout=h.log, stderr=h.log, env=h.env)
    try:
        def up():
            assert h.proc.poll() is None, h.read_log()
            try:
                return requests.get(f"https://127.0.0.1:{port}/healthz", verify=pki.ca,
                                    timeout=1).status_code == 200
            except requests.RequestException:
                return False
        wait_for(up, 15, interval=0.05, what="herald over HTTPS")
        assert "listening addr=none" in h.read_log()
    finally:
        h.stop()
