"""API keys (docs/api.md "Authentication"): once a key is configured every
publish, read and admin call needs one (401 with WWW-Authenticate: Bearer
without one, with an unknown, expired or revoked one; 403 outside its
scopes); /healthz and /readyz stay open. Keys come from the keys file,
written by `herald keys create|list|revoke`, and from [key NAME] sections
of the config file; SIGHUP reloads them."""
import hashlib
import json
import os
import signal
import subprocess
import time

import requests

from conftest import BIN, metric_value, per_test_timeout, wait_for

_timeout = per_test_timeout(60)


def keys_cli(*args, data_dir):
    return subprocess.run([BIN, "keys", *args, "--data-dir", str(data_dir)], capture_output=True,
                          timeout=30, stdin=subprocess.DEVNULL)


def create(data_dir, name, *scopes, expires=None):
    args = ["create", name]
    for s in scopes:
        args += ["--scope", s]
    if expires:
        args += ["--expires", expires]
    p = keys_cli(*args, data_dir=data_dir)
    assert p.returncode == 0, p.stderr
    secret = p.stdout.decode().strip()
    assert secret.startswith("hd_") and len(secret) == 46
    return secret


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def assert_401(r):
    assert r.status_code == 401, r.text
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert r.json()["error"]["code"] in ("unauthorized", "token_expired")


def assert_403(r):
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "forbidden"


def post(h, topic, headers=None, body=None):
    return requests.post(h.topic_url(topic), data=json.dumps(body or {"n": 1}),
                         headers=dict({"Content-Type": "application/json"}, **(headers or {})), timeout=10)


def keyed_server(herald_factory, tmp_path):
    h = herald_factory(start=False)
    keys = {
        "pub": create(h.data_dir, "pub", "publish:rides"),
        "reader": create(h.data_dir, "reader", "read"),
        "ops": create(h.data_dir, "ops", "metrics"),
        "admin": create(h.data_dir, "admin", "admin"),
        "all": create(h.data_dir, "all", "publish:*", "read"),
    }
    h.start()
    return h, keys


def test_every_call_needs_a_key(herald_factory, tmp_path):
    h, k = keyed_server(herald_factory, tmp_path)
    assert requests.get(h.url + "/healthz", timeout=10).status_code == 200
    assert requests.get(h.url + "/readyz", timeout=10).status_code == 200
    for r in (post(h, "rides:1"),
              post(h, "rides:1", {"Authorization": "Bearer hd_unknownunknownunknownunknownunknownunknown1"}),
              post(h, "rides:1", {"X-API-Key": "nope"}),
              post(h, "rides:1", {"Authorization": "Basic dXNlcjpwYXNz"}),
              requests.get(h.topic_url("rides:1"), timeout=10),
              requests.get(h.url + "/v1/topics", timeout=10),
              requests.get(h.topic_url("rides:1", ""), timeout=10),
              requests.delete(h.topic_url("rides:1", ""), timeout=10),
              requests.get(h.topic_url("rides:1", "/presence"), timeout=10),
              requests.get(h.url + "/v1/users/42/connections", timeout=10),
              requests.post(h.url + "/v1/users/42/notifications", json={"a": 1}, timeout=10),
              requests.get(h.url + "/metrics", timeout=10),
              requests.get(h.topic_url("rides:1", "/sse"), timeout=10),
              requests.get(h.url + "/v1/sse?topic=rides:1", timeout=10)):
        assert_401(r)
    # An API key is never taken from the URL.
    assert_401(requests.get(h.topic_url("rides:1"), params={"token": k["reader"]}, timeout=10))


def test_scopes(herald_factory, tmp_path):
    h, k = keyed_server(herald_factory, tmp_path)
    r = post(h, "rides:1", auth(k["pub"]))
    assert r.status_code == 201 and r.json()["offset"] == 1
    r = post(h, "rides:1", {"X-API-Key": k["pub"]})
    assert r.status_code == 201
    assert_403(post(h, "other:1", auth(k["pub"])))
    assert_403(post(h, "rides", auth(k["pub"])))  # no namespace: publish:* only
    assert_403(requests.post(h.url + "/v1/users/42/notifications", json={"a": 1}, headers=auth(k["pub"]),
                             timeout=10))
    assert_403(requests.get(h.topic_url("rides:1"), headers=auth(k["pub"]), timeout=10))
    assert post(h, "anything", auth(k["all"])).status_code == 201
    assert requests.post(h.url + "/v1/users/42/notifications", json={"a": 1}, headers=auth(k["all"]),
                         timeout=10).status_code == 201

    r = requests.get(h.topic_url("rides:1"), headers=auth(k["reader"]), timeout=10)
    assert r.status_code == 200 and [e["offset"] for e in r.json()["events"]] == [1, 2]
    assert requests.get(h.topic_url("rides:1", ""), headers=auth(k["reader"]), timeout=10).status_code == 200
    assert requests.get(h.url + "/v1/topics", headers=auth(k["reader"]), timeout=10).status_code == 200
    assert_403(post(h, "rides:1", auth(k["reader"])))
    assert_403(requests.delete(h.topic_url("rides:1", ""), headers=auth(k["reader"]), timeout=10))
    assert_403(requests.get(h.topic_url("rides:1", "/presence"), headers=auth(k["reader"]), timeout=10))
    assert_403(requests.get(h.url + "/v1/users/42/connections", headers=auth(k["reader"]), timeout=10))
    assert_403(requests.get(h.url + "/metrics", headers=auth(k["reader"]), timeout=10))

    r = requests.get(h.url + "/metrics", headers=auth(k["ops"]), timeout=10)
    assert r.status_code == 200 and "herald_publishes_total" in r.text
    assert_403(requests.get(h.topic_url("rides:1"), headers=auth(k["ops"]), timeout=10))

    for path in ("/presence", ""):
        assert requests.get(h.topic_url("rides:1", path), headers=auth(k["admin"]), timeout=10).status_code == 200
    assert requests.get(h.url + "/v1/users/42/connections", headers=auth(k["admin"]), timeout=10).status_code == 200
    assert post(h, "x:1", auth(k["admin"])).status_code == 201
    r = requests.delete(h.topic_url("rides:1", ""), headers=auth(k["admin"]), timeout=10)
    assert r.status_code == 200 and r.json() == {"deleted": "rides:1"}


def test_keys_file_holds_hashes_only_and_cli_lifecycle(herald_factory, tmp_path):
    h = herald_factory(start=False)
    first = create(h.data_dir, "first", "publish:rides", "read", expires="30d")
    h.start()
    assert post(h, "rides:1", auth(first)).status_code == 201

    second = create(h.data_dir, "second", "publish:rides")
    text = open(os.path.join(h.data_dir, "keys")).read()
    for secret in (first, second):
        assert secret not in text and secret[3:] not in text
    assert "sha256:" + hashlib.sha256(second.encode()).hexdigest() in text
    assert oct(os.stat(os.path.join(h.data_dir, "keys")).st_mode & 0o777) == "0o600"

    p = keys_cli("list", data_dir=h.data_dir)
    assert p.returncode == 0, p.stderr
    out = p.stdout.decode()
    assert first not in out and second not in out
    lines = {ln.split()[0]: ln for ln in out.splitlines()[1:]}
    assert set(lines) == {"first", "second"}
    assert hashlib.sha256(first.encode()).hexdigest()[:12] in lines["first"]
    assert "publish:rides read" in lines["first"] and "never" in lines["second"]

    # Not known to the running server until SIGHUP.
    assert_401(post(h, "rides:1", auth(second)))
    h.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: post(h, "rides:1", auth(second)).status_code == 201, 10, 0.05, "the new key")

    p = keys_cli("revoke", "second", data_dir=h.data_dir)
    assert p.returncode == 0, p.stderr
    h.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: post(h, "rides:1", auth(second)).status_code == 401, 10, 0.05, "the revoked key to fail")
    assert_401(post(h, "rides:1", auth(second)))
    assert post(h, "rides:1", auth(first)).status_code == 201
    assert keys_cli("revoke", "second", data_dir=h.data_dir).returncode == 1
    assert keys_cli("create", "bad", "--scope", "write", data_dir=h.data_dir).returncode == 2
    assert keys_cli("create", "first", "--scope", "read", data_dir=h.data_dir).returncode == 1

    # A broken keys file on reload keeps the keys in use.
    with open(os.path.join(h.data_dir, "keys"), "a") as f:
        f.write("garbage\n")
    h.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "keys_reload_failed" in h.read_log(), 10, 0.05, "the reload to fail")
    assert post(h, "rides:1", auth(first)).status_code == 201

    # The publish and read commands take --api-key (or HERALD_API_KEY).
    cmd = [BIN, "publish", "rides:cli", "hello", "--server", h.url]
    p = subprocess.run(cmd, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode == 1 and b"401" in p.stderr
    p = subprocess.run(cmd + ["--api-key", first], capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    p = subprocess.run([BIN, "read", "rides:cli", "--server", h.url], capture_output=True, timeout=30,
                       env=dict(os.environ, HERALD_API_KEY=first))
    assert p.returncode == 0 and json.loads(p.stdout)["events"][0]["data"] == "hello"


def test_config_key_sections_and_expiry(herald_factory):
    good, old = "good-secret-" + "x" * 40, "old-secret-" + "y" * 40
    conf = (f"[key good]\nhash = sha256:{hashlib.sha256(good.encode()).hexdigest()}\n"
            "scopes = publish:* read\n"
            f"[key old]\nhash = sha256:{hashlib.sha256(old.encode()).hexdigest()}\n"
            "scopes = admin\nexpires = 2020-01-01T00:00:00Z\n")
    h = herald_factory(config=conf)
    assert post(h, "a", auth(good)).status_code == 201
    r = post(h, "a", auth(old))
    assert_401(r)
    assert "expired" in r.json()["error"]["message"]

    # A bad section stops the server with the line named.
    conf_path = os.path.join(str(h.data_dir) + "-bad.conf")
    with open(conf_path, "w") as f:
        f.write("[key x]\nhash = sha256:00\nscopes = read\n")
    p = subprocess.run([BIN, "serve", "--data-dir", str(h.data_dir) + "-bad", "--config", conf_path,
                        "--listen", "127.0.0.1:0"], capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    assert p.returncode == 2 and b"-bad.conf:1: key 'x' needs hash" in p.stderr, p.stderr


def test_sighup_reads_the_config_files_key_sections_again(herald_factory):
    def section(name, secret):
        return f"[key {name}]\nhash = sha256:{hashlib.sha256(secret.encode()).hexdigest()}\nscopes = publish:*\n"
    one, two = "one-secret-" + "1" * 40, "two-secret-" + "2" * 40
    h = herald_factory(config=section("one", one))
    assert post(h, "a", auth(one)).status_code == 201
    assert_401(post(h, "a", auth(two)))
    with open(h.data_dir + ".conf", "w") as f:  # "one" revoked, "two" added
        f.write(section("two", two))
    h.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: post(h, "a", auth(two)).status_code == 201, 10, 0.05, "the new section's key")
    assert_401(post(h, "a", auth(one)))
    # A config file that no longer parses keeps the keys in use.
    with open(h.data_dir + ".conf", "w") as f:
        f.write("[key broken]\nscopes = read\n")
    h.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: b"keys_reload_failed" in open(h.log_path, "rb").read(), 10, 0.05, "the failed reload logged")
    assert post(h, "a", auth(two)).status_code == 201


def test_stream_and_held_longpoll_end_when_their_api_key_expires(herald_factory):
    """An expiring key is not honoured past its expiry by a connection it
    opened: the SSE stream ends with an "expired" event, a held long-poll
    is answered 401."""
    from test_sse import SSE
    soon, admin = "soon-secret-" + "s" * 40, "admin-secret-" + "a" * 40
    exp = time.time() + 8  # room for a slow start; the waits below allow for it
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(exp))
    exp = int(exp)  # the stamp has whole seconds
    conf = (f"[key soon]\nhash = sha256:{hashlib.sha256(soon.encode()).hexdigest()}\n"
            f"scopes = read\nexpires = {stamp}\n"
            f"[key admin]\nhash = sha256:{hashlib.sha256(admin.encode()).hexdigest()}\n"
            "scopes = admin\n")
    h = herald_factory(config=conf)
    assert post(h, "k", auth(admin)).status_code == 201
    s = SSE(h, "/v1/topics/k/sse?after=0", headers=auth(soon))
    assert s.status == 200
    assert s.next_event()["id"] == "1"
    t0 = time.monotonic()
    r = requests.get(h.topic_url("k"), params={"after": 1, "wait": 60}, headers=auth(soon),
                     timeout=90)
    assert r.status_code == 401 and r.json()["error"]["code"] == "token_expired", r.text
    assert "API key" in r.json()["error"]["message"]
    assert time.time() >= exp - 0.05 and time.monotonic() - t0 < 30
    ev = s.next_event(timeout=30)
    assert ev is not None and ev["event"] == "expired", ev
    assert json.loads(ev["data"]) == {"reason": "API key expired"}
    assert s.next_event(timeout=5) is None  # then the end of the stream
    s.close()
    # The expired key opens nothing new.
    assert_401(requests.get(h.topic_url("k"), headers=auth(soon), timeout=10))


def test_no_key_is_development_mode(herald):
    # As before keys existed: everything open, keys ignored.
    assert post(herald, "rides:1").status_code == 201
    assert post(herald, "rides:1", auth("hd_whatever")).status_code == 201
    assert requests.get(herald.url + "/metrics", timeout=10).status_code == 200
    assert requests.delete(herald.topic_url("rides:1", ""), timeout=10).status_code == 200


def test_reload_ends_what_a_revoked_key_opened(herald_factory):
    """SIGHUP with a key gone, or its secret replaced: the SSE streams it
    opened get a "revoked" event and end, its held long-poll is answered
    401, while streams of the keys that stayed go on; a reload that gives
    a key an expiry ends its stream then."""
    from concurrent.futures import ThreadPoolExecutor
    from test_sse import SSE

    def section(name, secret, scopes="read", expires=None):
        text = f"[key {name}]\nhash = sha256:{hashlib.sha256(secret.encode()).hexdigest()}\nscopes = {scopes}\n"
        return text + (f"expires = {expires}\n" if expires else "")

    gone, kept, later, admin = ("gone-", "kept-", "later-", "admin-")
    gone, kept, later, admin = (p + "secret-" + p[0] * 40 for p in (gone, kept, later, admin))
    base = section("kept", kept) + section("admin", admin, "publish:* metrics")
    h = herald_factory(config=base + section("gone", gone) + section("later", later))

    def reload(conf):
        with open(h.data_dir + ".conf", "w") as f:
            f.write(conf)
        n = h.read_log().count("keys_reloaded")
        h.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: h.read_log().count("keys_reloaded") > n, 10, 0.05, "the reload")

    def waiting():
        return metric_value(h, "herald_longpoll_waiting", auth(admin))

    assert post(h, "r", auth(admin)).status_code == 201
    streams = {k: SSE(h, "/v1/topics/r/sse?after=0", headers=auth(v))
               for k, v in (("gone", gone), ("kept", kept), ("later", later))}
    for s in streams.values():
        assert s.status == 200 and s.next_event()["id"] == "1"
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(requests.get, h.topic_url("r"), params={"after": 1, "wait": 60},
                           headers=auth(gone), timeout=90)
        wait_for(lambda: waiting() == 1, 10, 0.05, "the long-poll to be held")
        t0 = time.monotonic()
        reload(base + section("later", later))  # "gone" revoked
        r = held.result(timeout=30)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized", r.text
    assert "revoked" in r.json()["error"]["message"]
    assert time.monotonic() - t0 < 10
    ev = streams["gone"].next_event(timeout=10)
    assert ev is not None and ev["event"] == "revoked", ev
    assert json.loads(ev["data"]) == {"reason": "API key revoked"}
    assert streams["gone"].next_event(timeout=5) is None  # then the end of the stream
    # The others go on.
    assert post(h, "r", auth(admin)).status_code == 201
    for k in ("kept", "later"):
        assert streams[k].next_event(timeout=10)["id"] == "2"

    # "later" gets a new secret (revoked), and "kept" an expiry 3 s away.
    exp = time.time() + 3
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(exp))
    reload(section("kept", kept, expires=stamp) + section("admin", admin, "publish:* metrics")
           + section("later", "new-" + later))
    ev = streams["later"].next_event(timeout=10)
    assert ev is not None and ev["event"] == "revoked", ev
    ev = streams["kept"].next_event(timeout=20)
    assert ev is not None and ev["event"] == "expired", ev
    assert time.time() >= int(exp) - 0.05
    for s in streams.values():
        s.close()
    assert_401(requests.get(h.topic_url("r"), headers=auth(gone), timeout=10))


def test_held_group_fetch_ends_at_its_keys_revocation_or_expiry(herald_factory):
    """A pull-group fetch held by a key is answered 401 when a reload
    revokes the key (exact and pattern groups), or when the key expires
    while the fetch waits, instead of handing out events later."""
    from concurrent.futures import ThreadPoolExecutor

    def section(name, secret, scopes="read", expires=None):
        text = f"[key {name}]\nhash = sha256:{hashlib.sha256(secret.encode()).hexdigest()}\nscopes = {scopes}\n"
        return text + (f"expires = {expires}\n" if expires else "")

    gone, soon, admin = ("g" * 40, "s" * 40, "a" * 40)
    exp = time.time() + 6
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(exp))
    base = section("admin", admin, "publish:* read metrics")
    h = herald_factory(config=base + section("gone", gone) + section("soon", soon, expires=stamp))

    def fetch(topic, key):
        return requests.post(f"{h.url}/v1/topics/{topic}/groups/workers/fetch",
                             params={"max": 5, "wait": 60}, headers=auth(key), timeout=90)

    # A pattern group must exist before a fetch (PUT creates it).
    r = requests.put(f"{h.url}/v1/topics/jobs.*/groups/workers", json={}, headers=auth(admin), timeout=10)
    assert r.status_code in (200, 201), r.text
    with ThreadPoolExecutor(3) as pool:
        exact = pool.submit(fetch, "jobs", gone)
        pattern = pool.submit(fetch, "jobs.*", gone)
        expiring = pool.submit(fetch, "other", soon)
        time.sleep(1.0)  # the fetches are held (nothing to hand out)
        assert not exact.done() and not pattern.done()
        with open(h.data_dir + ".conf", "w") as f:
            f.write(base + section("soon", soon, expires=stamp))  # "gone" revoked
        t0 = time.monotonic()
        h.proc.send_signal(signal.SIGHUP)
        for fut in (exact, pattern):
            r = fut.result(timeout=30)
            assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized", r.text
            assert "revoked" in r.json()["error"]["message"]
        assert time.monotonic() - t0 < 10
        # Nothing was handed out to the revoked key: the events stay for others.
        assert post(h, "jobs", auth(admin)).status_code == 201
        r = expiring.result(timeout=40)
        assert r.status_code == 401 and r.json()["error"]["code"] == "token_expired", r.text
        assert time.time() >= int(exp) - 0.05
    r = requests.post(f"{h.url}/v1/topics/jobs/groups/workers/fetch", params={"max": 5},
                      headers=auth(admin), timeout=10)
    assert r.status_code == 200 and len(r.json()["events"]) == 1, r.text
