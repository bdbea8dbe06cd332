"""docs/deploy/nginx.conf, run as it is by Debian's nginx in front of herald:
REST, WebSocket and Server-Sent Events through nginx, live (no buffering),
and the per-IP limit applies per forwarded client (--trusted-proxies).

nginx runs unprivileged (as nobody when the tests run as root), in the
foreground, with every path (pid, logs, temp dirs) in the test's temp dir
and free loopback ports; only the upstream and listen lines of the file
are changed.
"""
import asyncio
import json
import os
import pathlib
import pwd
import re
import shutil
import subprocess
import tempfile

import pytest
import requests
import websockets

from conftest import CE_JSON, ROOT, structured, free_port, per_test_timeout, stop_process, wait_for
from wsclient import SECRET, token

_timeout = per_test_timeout(90)

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


@pytest.fixture
def nginx():
    """Returns start(herald_port) -> nginx's port; stops nginx afterwards."""
    if not os.path.exists(NGINX):
        pytest.skip("nginx is not installed (scripts/install-deps.sh installs it)")
    procs, workdirs = [], []

    def start(herald_port):
        port = free_port()
        # Its own directory right under /tmp: pytest's tmp_path sits in a
        # directory only its owner may enter, and nginx may run as nobody.
        work = pathlib.Path(tempfile.mkdtemp(prefix="herald-nginx-"))
        workdirs.append(work)
        with open(os.path.join(ROOT, "docs", "deploy", "nginx.conf")) as f:
            site = f.read()
        site, n1 = re.subn(r"server 127\.0\.0\.1:8080;", f"server 127.0.0.1:{herald_port};", site)
        site, n2 = re.subn(r"listen 80;", f"listen 127.0.0.1:{port};", site)
        assert n1 == 1 and n2 == 1, "docs/deploy/nginx.conf no longer has the lines the test changes"
        (work / "herald.conf").write_text(site)
        (work / "nginx.conf").write_text(f"""
daemon off;
master_process off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {work}/access.log;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    include {work}/herald.conf;
}}
""")
        preexec = None
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            for root, dirs, files in os.walk(work):
                for p in [root] + [os.path.join(root, x) for x in dirs + files]:
                    os.chown(p, nobody.pw_uid, nobody.pw_gid)

            def preexec():
                os.setgroups([])
                os.setgid(nobody.pw_gid)
                os.setuid(nobody.pw_uid)
        log = open(work / "stdout.log", "wb")
        proc = subprocess.Popen([NGINX, "-p", str(work), "-c", str(work / "nginx.conf"),
                                 "-e", str(work / "error.log")],
                                stdout=log, stderr=log, preexec_fn=preexec)
        procs.append((proc, log))

        def up():
            assert proc.poll() is None, (work / "error.log").read_text()
            try:
                return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
            except requests.RequestException:
                return False
        wait_for(up, 15, interval=0.05, what="nginx in front of herald")
        return port

    yield start
    for proc, log in procs:
        stop_process(proc)
        log.close()
    for d in workdirs:
        shutil.rmtree(d, ignore_errors=True)


def sse_events(url, n, headers=None, timeout=10):
    """Reads n events of an SSE stream through requests (nginx re-frames the
    stream as chunked)."""
    with requests.get(url, stream=True, headers=headers, timeout=timeout) as r:
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/event-stream")
        out, data = [], []
        for line in r.iter_lines(chunk_size=1, decode_unicode=True):
            if line.startswith("data:"):
                data.append(line[5:].strip())
            elif line == "" and data:
                out.append(json.loads("\n".join(data)))
                data = []
                if len(out) == n:
                    return out
    raise AssertionError(f"stream ended after {len(out)} events")


def test_rest_websocket_and_sse_through_nginx(herald_factory, nginx):
    h = herald_factory(args=["--trusted-proxies", "127.0.0.1", "--jwt-secret", SECRET])
    port = nginx(h.port)
    base = f"http://127.0.0.1:{port}"
    # REST
    r = requests.post(f"{base}/v1/topics/news/events",
                      data=json.dumps(structured("e1", data={"n": 1})), headers=CE_JSON, timeout=10)
    assert r.status_code == 201, r.text
    r = requests.get(f"{base}/v1/topics/news/events", params={"after": 0}, timeout=10)
    assert r.status_code == 200 and [e["data"]["n"] for e in r.json()["events"]] == [1]

    # SSE: history, then a live event published while the stream is open
    # arrives through nginx at once (buffering is off).
    import threading
    got = {}
    th = threading.Thread(target=lambda: got.update(evs=sse_events(f"{base}/v1/topics/news/sse?after=0", 2)))
    th.start()
    wait_for(lambda: requests.get(f"{h.url}/metrics", timeout=5).text.count("herald_sse_streams 1") > 0,
             10, what="the SSE stream through nginx")
    r = requests.post(f"{base}/v1/topics/news/events",
                      data=json.dumps(structured("e2", data={"n": 2})), headers=CE_JSON, timeout=10)
    assert r.status_code == 201
    th.join(20)
    assert not th.is_alive()
    assert [e["data"]["n"] for e in got["evs"]] == [1, 2]

    # WebSocket: connect with a JWT, subscribe, receive a publication; the
    # connection listing shows the client nginx forwarded (127.0.0.1 here).
    async def ws():
        async with websockets.connect(f"ws://127.0.0.1:{port}/connection/websocket") as c:
            await c.send(json.dumps({"connect": {"token": token("u1")}, "id": 1}) + "\n" +
                         json.dumps({"subscribe": {"channel": "news"}, "id": 2}))
            seen = ""
            while '"id":2' not in seen:
                seen += await asyncio.wait_for(c.recv(), 10)
            conns = requests.get(f"{h.url}/v1/users/u1/connections", timeout=10).json()["connections"]
            assert [x["remote"] for x in conns] == ["127.0.0.1"], conns
            r = requests.post(f"{base}/v1/topics/news/events",
                      data=json.dumps(structured("e3", data={"n": 3})), headers=CE_JSON, timeout=10)
            assert r.status_code == 201
            while '"n":3' not in seen:
                seen += await asyncio.wait_for(c.recv(), 10)
    asyncio.run(asyncio.wait_for(ws(), 30))


def test_per_ip_limit_applies_per_forwarded_client(herald_factory, nginx):
    # Two tiers: the test's requests carry the address an outer proxy
    # would have added; nginx appends its peer (127.0.0.1), which herald
    # trusts, so the client is the address left of it.
    h = herald_factory(args=["--trusted-proxies", "127.0.0.1", "--max-connections-per-ip", "1",
                             "--connection-rate-per-ip", "0"])
    port = nginx(h.port)
    url = f"http://127.0.0.1:{port}/v1/topics/t/sse"
    a = requests.get(url, stream=True, headers={"X-Forwarded-For": "203.0.113.1"}, timeout=10)
    assert a.status_code == 200
    # 203.0.113.1 holds its one stream: a second one is refused...
    r = requests.get(url, stream=True, headers={"X-Forwarded-For": "203.0.113.1"}, timeout=10)
    assert r.status_code == 429, r.text
    r.close()
    # ...while another client behind the same nginx is not.
    b = requests.get(url, stream=True, headers={"X-Forwarded-For": "203.0.113.2"}, timeout=10)
    assert b.status_code == 200
    a.close()
    b.close()
