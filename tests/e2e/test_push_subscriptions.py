"""Push subscriptions (docs/push.md, docs/api.md "Push subscriptions",
push/push_delivery.h) against a real herald and the provider stand-ins of
tests/js: an APNs mock (HTTP/2, TLS, checks the ES256 provider token), an
FCM mock (checks the RS256 grant) and web-push-testing (checks VAPID and
decrypts). "Notify user 42" reaches the user's WebSocket live and its APNs,
FCM and Web Push devices; to=followers; a filter; skip_if_seen with and
without the cursor moving; an invalid token is never called again and shows
invalid; silent mode's APNs and FCM form; kill -9 during a fan-out to 200
devices loses no device's event; the routes (create, list, get, pause,
resume, attempts, replay, delete) and who may call them."""
import contextlib
import hashlib
import json
import os
import queue
import subprocess
import threading

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from conftest import BIN, per_test_timeout, stop_process, wait_for
from wsclient import SECRET, connect, run

_timeout = per_test_timeout(180)

JS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "js")
NODE = "/usr/bin/node"
ADMIN, READER = "admin-secret-" + "a" * 40, "reader-secret-" + "r" * 40
KEYS = (f"[key admin]\nhash = sha256:{hashlib.sha256(ADMIN.encode()).hexdigest()}\nscopes = admin\n"
        f"[key reader]\nhash = sha256:{hashlib.sha256(READER.encode()).hexdigest()}\nscopes = read\n")
H = {"Authorization": "Bearer " + ADMIN}
KID, TEAM, BUNDLE, PROJECT = "KEY1234567", "TEAM123456", "com.example.app", "herald-test"


class Mock:
    """One node stand-in; its first stdout line is its ready line."""

    def __init__(self, script, *args):
        self.proc = subprocess.Popen([NODE, os.path.join(JS, script), *args], cwd=JS,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(l) for l in self.proc.stdout], daemon=True).start()
        try:
            self.line = lines.get(timeout=60).strip()
        except queue.Empty:
            self.stop()
            raise AssertionError(f"{script} did not start: " + self.proc.stderr.read())

    def stop(self):
        stop_process(self.proc)


def pem_cert(dirpath):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    import datetime
    import ipaddress
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    c, k = os.path.join(dirpath, "cert.pem"), os.path.join(dirpath, "cert.key")
    with open(c, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(k, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return c, k


class Providers:
    """The three stand-ins and the herald options that point at them."""

    def __init__(self, d):
        d = str(d)
        self.cert, key = pem_cert(d)
        p8 = ec.generate_private_key(ec.SECP256R1())
        self.p8 = os.path.join(d, "apns.p8")
        with open(self.p8, "wb") as f:
            f.write(p8.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))
        pub = os.path.join(d, "apns.pub")
        with open(pub, "wb") as f:
            f.write(p8.public_key().public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo))
        self.mocks = []
        try:
            self.apns = self._start("apns_mock.js", self.cert, key, pub, KID, TEAM, BUNDLE)
            self.apns_url = "https://127.0.0.1:%d" % int(self.apns.line.split()[1])
            sa = os.path.join(d, "account.json")
            self.fcm = self._start("fcm_mock.js", self.cert, key, sa)
            self.fcm_url = "https://127.0.0.1:%d" % int(self.fcm.line.split()[1])
            rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            with open(sa, "w") as f:
                json.dump({"type": "service_account", "project_id": PROJECT, "private_key_id": "k1",
                           "private_key": rsa_key.private_bytes(
                               serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption()).decode(),
                           "client_email": "herald@herald-test.iam.gserviceaccount.com",
                           "token_uri": self.fcm_url + "/token"}, f)
            keys = json.loads(subprocess.run([BIN, "push", "vapid-keys", "--json"], capture_output=True,
                                             timeout=30, check=True).stdout)
            self.vapid = os.path.join(d, "vapid.key")
            with open(self.vapid, "w") as f:
                f.write(keys["privateKey"] + "\n")
            self.webpush = self._start("webpush_mock.js", keys["publicKey"])
            w = json.loads(self.webpush.line)
            self.webpush_url = "http://localhost:%d" % w["port"]
            self.wp_ok, self.wp_expired = w["ok"], w["expired"]
        except BaseException:
            self.stop()
            raise
        self.sa = sa
        self.args = ["--jwt-secret", SECRET, "--push-allow-private", "on", "--push-ca-file", self.cert,
                     "--push-apns-key-file", self.p8, "--push-apns-key-id", KID,
                     "--push-apns-team-id", TEAM, "--push-apns-topic", BUNDLE,
                     "--push-apns-url", self.apns_url,
                     "--push-fcm-credentials-file", sa, "--push-fcm-url", self.fcm_url,
                     "--push-vapid-private-key-file", self.vapid,
                     "--push-vapid-subject", "mailto:ops@example.com"]

    def _start(self, script, *args):
        m = Mock(script, *args)
        self.mocks.append(m)
        return m

    def stop(self):
        for m in self.mocks:
            m.stop()

    def apns_got(self, token):
        # The APNs mock speaks HTTP/2 only: curl reads its stats.
        out = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "--cacert", self.cert,
                              self.apns_url + "/by-token"], capture_output=True, timeout=30, check=True)
        return json.loads(out.stdout).get(token, [])

    def fcm_stats(self):
        return requests.get(self.fcm_url + "/stats", verify=self.cert, timeout=10).json()

    def fcm_by_token(self):
        return requests.get(self.fcm_url + "/by-token", verify=self.cert, timeout=10).json()

    def fcm_got(self, token):
        return self.fcm_by_token().get(token, [])

    def webpush_got(self, sub):
        r = requests.post(self.webpush_url + "/get-notifications", json={"clientHash": sub["clientHash"]},
                          timeout=10)
        return [json.loads(m) for m in r.json()["data"]["messages"]] if r.status_code == 200 else []


@pytest.fixture(scope="module")
def providers(tmp_path_factory):
    p = Providers(tmp_path_factory.mktemp("providers"))
    yield p
    p.stop()


def server(herald_factory, providers, args=(), name="data"):
    """A node whose device registry and push subscriptions are loaded (until
    then their routes answer 503 "loading"; /healthz does not wait for it)."""
    h = herald_factory(args=providers.args + list(args), config=KEYS, name=name)
    wait_for(lambda: requests.get(f"{h.url}/v1/users/0/devices", headers=H, timeout=10).status_code != 503
             and requests.get(h.url + "/v1/push/subscriptions", headers=H, timeout=10).status_code != 503,
             30, what="the device registry and push subscriptions loaded")
    return h


def device(h, user, dev, body):
    r = requests.put(f"{h.url}/v1/users/{user}/devices/{dev}", json=body, headers=H, timeout=10)
    assert r.status_code in (200, 201), r.text
    return r.json()


def create(h, body, cred=ADMIN):
    return requests.post(h.url + "/v1/push/subscriptions", json=body,
                         headers={"Authorization": "Bearer " + cred}, timeout=10)


def restart_loaded(h):
    """Restarts h and waits until its push subscriptions are loaded (until
    then the routes answer 503 "loading"; /healthz does not wait for it)."""
    h.restart()
    wait_for(lambda: requests.get(h.url + "/v1/push/subscriptions", headers=H, timeout=10).status_code == 200,
             30, what="the push subscriptions loaded")


def sub_info(h, sid):
    r = requests.get(f"{h.url}/v1/push/subscriptions/{sid}", headers=H, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def notify(h, user, data):
    r = requests.post(f"{h.url}/v1/users/{user}/notifications", json=data, headers=H, timeout=10)
    assert r.status_code in (200, 201), r.text
    return r.json()


def publish_ce(h, topic, typ, data, **ext):
    ev = dict({"specversion": "1.0", "id": os.urandom(8).hex(), "source": "/test", "type": typ,
               "data": data}, **ext)
    r = requests.post(h.topic_url(topic), data=json.dumps(ev),
                      headers=dict(H, **{"Content-Type": "application/cloudevents+json"}), timeout=10)
    assert r.status_code in (200, 201), r.text
    return r.json()


def herald_of(body):
    """The herald member of a pushed payload (APNs/Web Push JSON, FCM data string)."""
    return body["herald"] if isinstance(body["herald"], dict) else json.loads(body["herald"])


def metric(h, row):
    """One row of /metrics (name and labels as rendered), as a number."""
    text = requests.get(h.url + "/metrics", headers=H, timeout=10).text
    return float(next(l.split()[-1] for l in text.splitlines() if l.startswith(row + " ")))


def hexs(tag):
    return hashlib.sha256(tag.encode()).hexdigest()


def test_notify_user_reaches_ws_and_every_device(herald_factory, providers):
    h = server(herald_factory, providers)
    apns, fcm = hexs("n42-apns"), "fcm-n42"
    device(h, "42", "phone", {"platform": "apns", "token": apns, "environment": "sandbox"})
    device(h, "42", "tablet", {"platform": "fcm", "token": fcm})
    wp = providers.wp_ok
    device(h, "42", "browser", {"platform": "webpush",
                                "subscription": {"endpoint": wp["endpoint"], "keys": wp["keys"]}})
    r = create(h, {"topic": "user:*", "to": "user", "mode": "alert"})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]

    async def go():
        c, _ = await connect(h, sub="42", subs={"user:42": {}})
        off = notify(h, "42", {"text": "your ride is here"})["offset"]
        p = (await c.pubs(1, timeout=10, channel="user:42"))[0]
        assert p["pub"]["data"] == {"text": "your ride is here"}, p
        await c.close()
        return off

    off = run(go())
    got = wait_for(lambda: providers.apns_got(apns), 30, what="the APNs push")
    body = json.loads(got[0]["body"])
    assert herald_of(body)["topic"] == "user:42" and herald_of(body)["offset"] == off
    assert body["data"] == {"text": "your ride is here"}
    assert got[0]["headers"]["apns-push-type"] == "alert"
    m = wait_for(lambda: providers.fcm_got(fcm), 30, what="the FCM push")[0]
    assert herald_of(m["data"])["offset"] == off and json.loads(m["data"]["data"]) == {"text": "your ride is here"}
    w = wait_for(lambda: providers.webpush_got(wp), 30, what="the Web Push message (decrypted)")
    assert any(herald_of(x)["offset"] == off for x in w), w
    s = wait_for(lambda: (lambda s: s if s["sent"] >= 3 else None)(sub_info(h, sid)), 30,
                 what="the counters")
    assert s["positions"]["user:42"] == off and s["state"] == "active"
    d = requests.get(f"{h.url}/v1/users/42/devices/phone", headers=H, timeout=10).json()
    assert wait_for(lambda: requests.get(f"{h.url}/v1/users/42/devices/phone", headers=H,
                                         timeout=10).json()["last_success"], 10, what="last_success")
    assert d["state"] == "active"


def test_followers_filter_and_silent(herald_factory, providers):
    h = server(herald_factory, providers)
    fa, fb, ap = "fcm-fol-a", "fcm-fol-b", hexs("fol-apns")
    device(h, "u1", "a", {"platform": "fcm", "token": fa, "topics": ["rides:981"]})
    device(h, "u2", "b", {"platform": "fcm", "token": fb, "topics": ["rides:981", "news"]})
    device(h, "u3", "c", {"platform": "apns", "token": ap, "topics": ["rides:981"]})
    device(h, "u4", "d", {"platform": "fcm", "token": "fcm-fol-other", "topics": ["news"]})
    r = create(h, {"topic": "rides:981", "to": "followers", "mode": "silent",
                   "filter": {"type_prefix": "com.example.ride."}})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    publish_ce(h, "rides:981", "com.other.thing", {"n": 0})
    off = publish_ce(h, "rides:981", "com.example.ride.arrived", {"n": 1})["offset"]
    a = wait_for(lambda: providers.fcm_got(fa), 30, what="follower a")
    b = wait_for(lambda: providers.fcm_got(fb), 30, what="follower b")
    got = wait_for(lambda: providers.apns_got(ap), 30, what="the APNs follower")
    wait_for(lambda: sub_info(h, sid)["positions"].get("rides:981") == off, 30, what="the position")
    # The filtered event went to nobody; silent: FCM data only, APNs background priority 5.
    assert len(a) == 1 and len(b) == 1 and len(got) == 1
    assert herald_of(a[0]["data"])["offset"] == off
    assert "notification" not in a[0] and set(a[0]) <= {"token", "data", "android", "apns"}
    assert got[0]["headers"]["apns-push-type"] == "background" and got[0]["headers"]["apns-priority"] == "5"
    assert json.loads(got[0]["body"])["aps"] == {"content-available": 1}
    assert providers.fcm_got("fcm-fol-other") == []


def test_skip_if_seen(herald_factory, providers):
    h = server(herald_factory, providers)
    fcm = "fcm-seen-7"
    device(h, "7", "phone", {"platform": "fcm", "token": fcm})
    r = create(h, {"topic": "user:7", "to": "user", "start": "oldest",
                   "skip_if_seen": {"cursor": "inbox", "wait": "2s"}})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    off1 = notify(h, "7", {"n": 1})["offset"]
    # The user reads it on another device within the wait: no push.
    r = requests.post(f"{h.url}/v1/users/7/cursors/inbox", json={"offset": off1, "topic": "user:7"},
                      headers=H, timeout=10)
    assert r.status_code == 200, r.text
    wait_for(lambda: sub_info(h, sid)["skipped_seen"] == 1, 30, what="skipped_seen")
    assert providers.fcm_got(fcm) == []
    # Not read: pushed after the wait.
    off2 = notify(h, "7", {"n": 2})["offset"]
    m = wait_for(lambda: providers.fcm_got(fcm), 30, what="the push of the unread event")
    assert [herald_of(x["data"])["offset"] for x in m] == [off2]
    s = sub_info(h, sid)
    assert s["skipped_seen"] == 1 and s["skip_if_seen"] == {"cursor": "inbox", "wait": "2s"}
    assert metric(h, 'herald_push_skips_total{reason="seen"}') == 1


def test_invalid_token_never_called_again(herald_factory, providers):
    h = server(herald_factory, providers)
    dead, good = "410" + hexs("dead")[3:], "fcm-inv-good"
    device(h, "9", "old", {"platform": "apns", "token": dead})
    device(h, "9", "new", {"platform": "fcm", "token": good})
    r = create(h, {"topic": "user:9", "to": "user", "start": "oldest"})
    sid = r.json()["id"]
    notify(h, "9", {"n": 1})
    wait_for(lambda: providers.apns_got(dead), 30, what="the first APNs call")
    dev = wait_for(lambda: (lambda d: d if d["state"] == "invalid" else None)(
        requests.get(f"{h.url}/v1/users/9/devices/old", headers=H, timeout=10).json()), 30,
        what="the device marked invalid")
    assert "Unregistered" in dev["invalid_reason"]

    def feedback():
        r = requests.get(h.topic_url("push.feedback"), params={"after": 0}, headers=H, timeout=10)
        return [e["data"] for e in r.json()["events"]] if r.status_code == 200 else None

    fb = wait_for(feedback, 30, what="the push.feedback event")
    assert fb[0]["user"] == "9" and fb[0]["device"] == "old" and fb[0]["status"] == 410
    off2 = notify(h, "9", {"n": 2})["offset"]
    wait_for(lambda: any(herald_of(m["data"])["offset"] == off2 for m in providers.fcm_got(good)), 30,
             what="the second event at the good device")
    wait_for(lambda: sub_info(h, sid)["positions"]["user:9"] == off2, 30, what="the position")
    assert len(providers.apns_got(dead)) == 1
    s = sub_info(h, sid)
    assert s["invalid"] == 1
    a = requests.get(f"{h.url}/v1/push/subscriptions/{sid}/attempts", headers=H, timeout=10).json()
    assert a["attempts"][0]["result"] == "invalid" and a["attempts"][0]["status"] == 410


def test_routes_and_access(herald_factory, providers):
    h = server(herald_factory, providers)
    assert create(h, {"topic": "user:*", "to": "user"}, cred=READER).status_code == 403
    assert requests.get(h.url + "/v1/push/subscriptions", timeout=10).status_code == 401
    r = create(h, {"topic": "user:*", "to": "user", "bogus": 1})
    assert r.status_code == 400 and "bogus" in r.json()["error"]["message"]
    r = create(h, {"topic": "user:*", "to": "user", "mode": "doorbell", "ttl": "24h", "max_attempts": 3})
    assert r.status_code == 201, r.text
    s = r.json()
    sid = s["id"]
    assert s["created"].endswith("Z") and s["topic"] == "user:*" and s["mode"] == "doorbell" and s["ttl"] == "1d" and s["max_attempts"] == 3
    assert [x["id"] for x in requests.get(h.url + "/v1/push/subscriptions", headers=H,
                                          timeout=10).json()["subscriptions"]] == [sid]
    r = requests.post(f"{h.url}/v1/push/subscriptions/{sid}/pause", headers=H, timeout=10)
    assert r.status_code == 200 and r.json()["state"] == "paused"
    restart_loaded(h)
    assert sub_info(h, sid)["state"] == "paused"
    r = requests.post(f"{h.url}/v1/push/subscriptions/{sid}/resume", headers=H, timeout=10)
    assert r.status_code == 200 and r.json()["state"] == "active"
    r = requests.post(f"{h.url}/v1/push/subscriptions/{sid}/replay", headers=H, timeout=10)
    assert r.status_code == 400
    r = requests.post(f"{h.url}/v1/push/subscriptions/{sid}/replay?from=1", headers=H, timeout=10)
    assert r.status_code == 200, r.text
    assert requests.delete(f"{h.url}/v1/push/subscriptions/{sid}", headers=H, timeout=10).status_code == 204
    assert requests.get(f"{h.url}/v1/push/subscriptions/{sid}", headers=H, timeout=10).status_code == 404
    assert requests.delete(f"{h.url}/v1/push/subscriptions/{sid}", headers=H, timeout=10).status_code == 404
    restart_loaded(h)
    assert requests.get(h.url + "/v1/push/subscriptions", headers=H, timeout=10).json()["subscriptions"] == []


def test_kill9_during_fan_out_loses_nothing(herald_factory, providers):
    n, events = 200, 3
    h = server(herald_factory, providers)
    tokens = [f"fcm-fan-{i}" for i in range(n)]
    for i, t in enumerate(tokens):
        device(h, f"fan{i // 20}", f"d{i}", {"platform": "fcm", "token": t, "topics": ["fan"]})
    r = create(h, {"topic": "fan", "to": "followers", "start": "oldest"})
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    # Read before the publishes: a fast fan-out may be over before a later read.
    before = providers.fcm_stats()["sends"]
    offs = [publish_ce(h, "fan", "com.example.fan", {"i": i})["offset"] for i in range(events)]
    # Killed mid-fan-out (on the ASan build about 130 of the 600 sends are out by then).
    wait_for(lambda: providers.fcm_stats()["sends"] > before, 30, what="the fan-out to start")
    h.kill9()
    h.start(h.port)

    def complete():
        by = providers.fcm_by_token()
        return all({herald_of(m["data"])["offset"] for m in by.get(t, [])} >= set(offs) for t in tokens)

    wait_for(complete, 120, interval=0.2, what="every device to get every event")
    wait_for(lambda: sub_info(h, sid)["positions"].get("fan") == offs[-1], 30, what="the position")


def test_skip_if_online(herald_factory, providers):
    h = server(herald_factory, providers)
    fcm = "fcm-online-51"
    device(h, "51", "phone", {"platform": "fcm", "token": fcm})
    sid = create(h, {"topic": "user:*", "to": "user", "skip_if_online": True}).json()["id"]

    async def live():
        c, _ = await connect(h, sub="51", subs={"user:51": {}})
        notify(h, "51", {"n": 1})
        await c.pubs(1, timeout=10, channel="user:51")
        wait_for(lambda: sub_info(h, sid)["skipped_online"] == 1, 30, what="skipped_online")
        await c.close()

    run(live())
    wait_for(lambda: requests.get(f"{h.url}/v1/users/51/connections", headers=H,
                                  timeout=10).json()["connections"] == [], 30, what="the connection gone")
    assert providers.fcm_got(fcm) == []
    off = notify(h, "51", {"n": 2})["offset"]
    m = wait_for(lambda: providers.fcm_got(fcm), 30, what="the push once offline")
    assert [herald_of(x["data"])["offset"] for x in m] == [off]
    assert metric(h, 'herald_push_skips_total{reason="online"}') == 1


def test_silent_quota_per_device(herald_factory, providers):
    h = server(herald_factory, providers, args=["--push-silent-per-hour", "2"])
    fcm = "fcm-quota-61"
    device(h, "61", "phone", {"platform": "fcm", "token": fcm})
    sid = create(h, {"topic": "user:61", "to": "user", "mode": "silent", "start": "oldest"}).json()["id"]
    offs = [notify(h, "61", {"n": i})["offset"] for i in range(4)]
    wait_for(lambda: sub_info(h, sid)["positions"].get("user:61") == offs[-1], 30, what="the position")
    s = sub_info(h, sid)
    assert s["sent"] == 2 and s["skipped_silent"] == 2
    assert metric(h, 'herald_push_skips_total{reason="silent"}') == 2
    assert metric(h, 'herald_push_skips_total{reason="online"}') == 0
    assert sorted(herald_of(x["data"])["offset"] for x in providers.fcm_got(fcm)) == offs[:2]


def test_retries_then_dead_letter(herald_factory, providers):
    h = server(herald_factory, providers)
    bad, good = "unavail-71", "fcm-dl-good-71"
    device(h, "71", "a", {"platform": "fcm", "token": bad})
    device(h, "71", "b", {"platform": "fcm", "token": good})
    sid = create(h, {"topic": "user:71", "to": "user", "start": "oldest", "max_attempts": 2}).json()["id"]
    off = notify(h, "71", {"n": 1})["offset"]
    def dead_letters():
        r = requests.get(h.topic_url("user:71.dlq"), params={"after": 0, "limit": 100}, headers=H, timeout=10)
        return r.json()["events"] if r.status_code == 200 else None

    dl = wait_for(dead_letters, 30, interval=0.1, what="the dead letter")
    assert dl[0]["type"] == "herald.push.deadletter"
    assert dl[0]["data"]["offset"] == off and dl[0]["data"]["attempts"] == 2
    assert dl[0]["data"]["push_subscription"] == sid
    wait_for(lambda: sub_info(h, sid)["positions"].get("user:71") == off, 30, what="the position")
    s = sub_info(h, sid)
    assert s["failed"] == 1 and s["sent"] == 1 and s["dead_lettered"] == 1
    assert len(providers.fcm_got(bad)) == 2 and len(providers.fcm_got(good)) == 1
    a = requests.get(f"{h.url}/v1/push/subscriptions/{sid}/attempts", headers=H, timeout=10).json()
    assert [x["result"] for x in a["attempts"]] == ["retry", "retry"] and a["attempts"][0]["status"] == 503


def test_positions_survive_restart(herald_factory, providers):
    h = server(herald_factory, providers)
    fcm = "fcm-restart-81"
    device(h, "81", "phone", {"platform": "fcm", "token": fcm})
    sid = create(h, {"topic": "user:*", "to": "user"}).json()["id"]
    off1 = notify(h, "81", {"n": 1})["offset"]
    wait_for(lambda: sub_info(h, sid)["positions"].get("user:81") == off1, 30, what="the position")
    h.restart()
    assert wait_for(lambda: (lambda r: r if r.status_code == 200 else None)(
        requests.get(f"{h.url}/v1/push/subscriptions/{sid}", headers=H, timeout=10)), 30,
        what="the subscriptions loaded").json()["positions"]["user:81"] == off1
    off2 = notify(h, "81", {"n": 2})["offset"]
    wait_for(lambda: sub_info(h, sid)["positions"].get("user:81") == off2, 30, what="the new position")
    # The event before the restart is not sent again.
    assert sorted(herald_of(m["data"])["offset"] for m in providers.fcm_got(fcm)) == [off1, off2]


def test_start_time_exact_and_pattern(herald_factory, providers):
    import time
    h = server(herald_factory, providers)
    fx, fp = "fcm-start-x", "fcm-start-p"
    device(h, "91", "x", {"platform": "fcm", "token": fx, "topics": ["tsx"]})
    device(h, "92", "p", {"platform": "fcm", "token": fp, "topics": ["tsp:1", "tsp:2"]})
    for t in ("tsx", "tsp:1", "tsp:2"):
        publish_ce(h, t, "com.example.old", {"old": t})
    # The start time: 20 ms after the old events were stored, 30 ms before the new ones.
    t0 = time.time() + 0.02
    wait_for(lambda: time.time() > t0 + 0.03, 5, what="the clock to move")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t0)) + ".%03dZ" % int((t0 % 1) * 1000)
    new = {t: publish_ce(h, t, "com.example.new", {"new": t})["offset"] for t in ("tsx", "tsp:1", "tsp:2")}
    rx = create(h, {"topic": "tsx", "to": "followers", "start": {"time": stamp}})
    rp = create(h, {"topic": "tsp:*", "to": "followers", "start": {"time": stamp}})
    assert rx.status_code == 201 and rp.status_code == 201, (rx.text, rp.text)
    sx, sp = rx.json()["id"], rp.json()["id"]
    wait_for(lambda: sub_info(h, sx)["positions"].get("tsx") == new["tsx"], 30, what="the exact position")
    wait_for(lambda: all(sub_info(h, sp)["positions"].get(t) == new[t] for t in ("tsp:1", "tsp:2")), 30,
             what="the pattern's positions")
    # Only the events stored at or after the time went out.
    assert [herald_of(m["data"])["offset"] for m in providers.fcm_got(fx)] == [new["tsx"]]
    assert sorted(herald_of(m["data"])["topic"] for m in providers.fcm_got(fp)) == ["tsp:1", "tsp:2"]
    assert all(herald_of(m["data"])["type"] == "com.example.new" for m in providers.fcm_got(fp))
    # A time in the future: nothing stored goes out; a bad time is a 400.
    later = create(h, {"topic": "tsx", "to": "followers", "start": {"time": "2100-01-01T00:00:00Z"}})
    assert later.status_code == 201
    assert create(h, {"topic": "tsx", "to": "followers", "start": {"time": "yesterday"}}).status_code == 400


def test_apns_environment_picks_the_host(herald_factory, providers):
    # The same mock under two names: production at 127.0.0.1, sandbox at localhost.
    sandbox = providers.apns_url.replace("127.0.0.1", "localhost")
    assert sandbox != providers.apns_url
    h = server(herald_factory, providers, args=["--push-apns-sandbox-url", sandbox])
    prod, dev, dflt = hexs("env-prod"), hexs("env-sandbox"), hexs("env-default")
    device(h, "93", "prod", {"platform": "apns", "token": prod, "environment": "production"})
    device(h, "93", "dev", {"platform": "apns", "token": dev, "environment": "sandbox"})
    assert device(h, "93", "dflt", {"platform": "apns", "token": dflt})["environment"] == "production"
    create(h, {"topic": "user:93", "to": "user"})
    notify(h, "93", {"n": 1})
    got = {t: wait_for(lambda t=t: providers.apns_got(t), 30, what="the push to " + t) for t in (prod, dev, dflt)}
    assert got[prod][0]["headers"][":authority"].startswith("127.0.0.1:")
    assert got[dflt][0]["headers"][":authority"].startswith("127.0.0.1:")
    assert got[dev][0]["headers"][":authority"].startswith("localhost:")
    # The test push goes to the device's own host too.
    r = requests.post(f"{h.url}/v1/users/93/devices/dev/test", headers=H, timeout=10)
    assert r.status_code == 200 and r.json()["result"] == "ok", r.text
    assert [x["headers"][":authority"].split(":")[0] for x in providers.apns_got(dev)] == ["localhost"] * 2


def test_apns_environment_default_option(herald_factory, providers):
    h = server(herald_factory, providers, args=["--push-apns-environment", "sandbox"])
    tok = hexs("env-default-sandbox")
    assert device(h, "94", "d", {"platform": "apns", "token": tok})["environment"] == "sandbox"
    r = requests.post(f"{h.url}/v1/users/94/devices/d/test", headers=H, timeout=10)
    assert r.status_code == 200 and r.json()["result"] == "ok", r.text


def test_fcm_quota_pauses_the_provider(herald_factory, providers):
    import time
    h = server(herald_factory, providers)
    q, b = "quotaonce-95", "fcm-quota-b-95"
    device(h, "95", "q", {"platform": "fcm", "token": q})
    device(h, "95", "b", {"platform": "fcm", "token": b})
    sid = create(h, {"topic": "user:95", "to": "user"}).json()["id"]
    off1 = notify(h, "95", {"n": 1})["offset"]
    device(h, "96", "c", {"platform": "fcm", "token": "fcm-quota-c-96"})
    wait_for(lambda: providers.fcm_got(q), 30, what="the 429")
    # The pause holds test sends too: 429 with the time left (until herald has
    # read the 429, the test push goes out).
    test = wait_for(lambda: (lambda r: [r] if r.status_code == 429 else None)(  # a 429 Response is falsy
        requests.post(f"{h.url}/v1/users/96/devices/c/test", headers=H, timeout=10)), 1.5,
        what="the test send to answer the pause")[0]
    assert 1 <= int(test.headers["Retry-After"]) <= 2
    assert test.json()["error"]["code"] == "too_many_requests"
    wait_for(lambda: providers.fcm_got(b), 30, what="the first push to b")
    # 429 with Retry-After: 2 paused every FCM send, b's included, then they resume.
    t = time.monotonic()
    off2 = notify(h, "95", {"n": 2})["offset"]
    got = wait_for(lambda: (lambda m: m if len(m) == 2 else None)(providers.fcm_got(b)), 30,
                   what="b's second push")
    assert time.monotonic() - t >= 1.0
    assert [herald_of(m["data"])["offset"] for m in got] == [off1, off2]
    wait_for(lambda: sub_info(h, sid)["positions"].get("user:95") == off2, 30, what="the position")
    assert sorted(herald_of(m["data"])["offset"] for m in providers.fcm_got(q)) == [off1, off1, off2]
    assert sub_info(h, sid)["sent"] == 4


@pytest.mark.parametrize("prefix", ["dead2", "dead3", "dead4"])
def test_goaway_mid_fan_out_loses_nothing(herald_factory, providers, prefix):
    n, events = 300, 2
    h = server(herald_factory, providers)
    # One token in the middle makes the mock refuse it the first time: dead2
    # sends GOAWAY with last stream 0 (every stream then in flight on that
    # connection is refused), dead3 a GOAWAY whose last stream is an earlier
    # one (the streams up to it are answered), dead4 only REFUSED_STREAM.
    # curl must not resend a refused request by itself (net/http_client.c
    # refuses to rewind the body): herald sees the refusal, counts it as a
    # retry send, and sends it again on a new connection without counting an
    # attempt. curl 7.88 resent a REFUSED_STREAM silently (dead4 came back
    # 200 and herald never knew).
    # The mock refuses only once the whole body arrived (apns_mock.js): curl
    # has read it then, so the refusal always reaches herald and the retry
    # count is certain (refused as soon as the stream opened, a loaded curl
    # that had not read the body yet resent it itself). The other streams a
    # GOAWAY cuts off may be resent by curl or by herald: only "each device
    # got each event exactly once" is asserted for them (the mock does not
    # record a stream it refuses, nor one after a GOAWAY's last stream).
    tokens = [hexs(f"goaway-{i}") for i in range(n)]
    tokens[n // 2] = prefix + hexs("goaway-mid")[5:]
    with requests.Session() as http:  # one connection: under --connection-rate-per-ip
        for i, t in enumerate(tokens):
            r = http.put(f"{h.url}/v1/users/ga{i // 20}/devices/d{i}", headers=H, timeout=10,
                         json={"platform": "apns", "token": t, "topics": ["gfan"]})
            assert r.status_code == 201, r.text
    def mock_stats():
        return json.loads(subprocess.run(
            ["curl", "-sS", "--http2-prior-knowledge", "--cacert", providers.cert, providers.apns_url + "/stats"],
            capture_output=True, timeout=30, check=True).stdout)

    def by_token():
        return json.loads(subprocess.run(
            ["curl", "-sS", "--http2-prior-knowledge", "--cacert", providers.cert, providers.apns_url + "/by-token"],
            capture_output=True, timeout=30, check=True).stdout)

    before = mock_stats()  # the mock is shared by the module's tests
    by_before = by_token()
    sid = create(h, {"topic": "gfan", "to": "followers", "start": "oldest", "max_attempts": 1}).json()["id"]
    offs = [publish_ce(h, "gfan", "com.example.fan", {"i": i})["offset"] for i in range(events)]

    def got():  # this test's requests: the mock is shared, earlier ones used the same tokens
        by = by_token()
        return {t: sorted(herald_of(json.loads(m["body"]))["offset"]
                          for m in by.get(t, [])[len(by_before.get(t, [])):]) for t in tokens}

    wait_for(lambda: all(set(o) >= set(offs) for o in got().values()), 120, interval=0.5,
             what="every device to get every event")
    wait_for(lambda: sub_info(h, sid)["positions"].get("gfan") == offs[-1], 30, what="the position")
    s = sub_info(h, sid)
    # Refused streams are sent again without counting an attempt: nothing failed.
    assert s["failed"] == 0 and s["dead_lettered"] == 0 and s["sent"] == n * events
    stats = mock_stats()
    assert stats["goaways"] - before["goaways"] == (0 if prefix == "dead4" else 1)
    # Nothing lost, nothing twice.
    dup = {t: o for t, o in got().items() if o != offs}
    assert not dup, f"{len(dup)} devices did not get each event exactly once, e.g. {list(dup.items())[:3]}"
    assert metric(h, 'herald_push_sends_total{provider="apns",result="retry"}') >= 1


def test_big_fan_out_sends_each_device_once(herald_factory, providers):
    # 2,400 devices, one event: curl 7.88 sends RST_STREAM after every answer
    # and the mock's nghttp2 ends a connection with GOAWAY after 1,000 of
    # them; herald moves to a new connection before that, so no stream is cut
    # off after the mock processed it and no device gets the push twice.
    n = 2400
    h = server(herald_factory, providers, ["--push-max-devices-per-user", "1000"])
    tokens = ["ab" + hexs(f"big-{i}")[2:] for i in range(n)]  # no prefix the mock answers with an error
    with requests.Session() as http:  # one connection: under --connection-rate-per-ip
        for i, t in enumerate(tokens):
            r = http.put(f"{h.url}/v1/users/big{i // 1000}/devices/d{i}", headers=H, timeout=10,
                         json={"platform": "apns", "token": t, "topics": ["bigfan"]})
            assert r.status_code == 201, r.text

    def stats(path="/stats"):
        return json.loads(subprocess.run(
            ["curl", "-sS", "--http2-prior-knowledge", "--cacert", providers.cert, providers.apns_url + path],
            capture_output=True, timeout=30, check=True).stdout)

    # The mock is shared by the module's tests: the connections of the ones
    # before (their heralds are stopped) are closed before counting from here
    # (only this curl's own is open).
    # On a loaded machine one may still be closing: it is counted in
    # before["open"] and allowed for below.
    with contextlib.suppress(AssertionError):
        wait_for(lambda: stats()["open"] <= 1, 15, interval=0.1, what="earlier tests' connections to close")
    before = stats("/stats/mark")  # the most open at once counts from here
    sid = create(h, {"topic": "bigfan", "to": "followers", "start": "oldest"}).json()["id"]
    off = publish_ce(h, "bigfan", "com.example.fan", {"big": 1})["offset"]
    wait_for(lambda: sub_info(h, sid)["positions"].get("bigfan") == off, 50, interval=0.2,
             what="the fan-out to end")
    s = sub_info(h, sid)
    assert s["sent"] == n and s["failed"] == 0 and s["dead_lettered"] == 0, json.dumps(s)
    by = json.loads(subprocess.run(
        ["curl", "-sS", "--http2-prior-knowledge", "--cacert", providers.cert, providers.apns_url + "/by-token"],
        capture_output=True, timeout=30, check=True).stdout)
    twice = [t for t in tokens if len(by.get(t, [])) != 1]
    assert not twice, f"{len(twice)} devices did not get exactly one push"
    after = stats()
    assert after["requests"] - before["requests"] == n
    # herald's at most 2, and curl reading these stats (1 in before["open"])
    assert after["most_open"] <= before["open"] + 2, (after["most_open"], before["open"])
    new = {k: v for k, v in after["per_session"].items() if v != before["per_session"].get(k)}
    assert all(v < 1000 for v in new.values()), new
    text = requests.get(h.url + "/metrics", headers=H, timeout=10).text
    assert 'herald_push_sends_total{provider="apns",result="retry"} ' not in text or \
        metric(h, 'herald_push_sends_total{provider="apns",result="retry"}') == 0
