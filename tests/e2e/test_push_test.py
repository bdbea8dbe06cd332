"""POST /v1/users/{id}/devices/{device}/test (docs/api.md "Devices"): a real
herald with the three providers pointed at real stand-ins on 127.0.0.1 —
the APNs mock over HTTP/2 and TLS (tests/js/apns_mock.js: checks the ES256
provider token against the .p8 made here), the FCM mock (tests/js/fcm_mock.js:
its token endpoint checks the RS256 grant of the service-account file made
here) and web-push-testing (tests/js/webpush_mock.js: checks VAPID and
decrypts). A test push answers the provider's verdict; the mock saw it (Web
Push: the decrypted payload); a token the service calls dead gives
"invalid", the device turns invalid and one push.feedback event is
published; /metrics counts the sends by provider and result; a platform
without a provider is a clear 503; a bad --push-apns-key-file is exit 2."""
import json
import os
import shutil
import socket
import subprocess
import threading
import urllib.parse

import pytest
import requests

from conftest import BIN, per_test_timeout, wait_for

_timeout = per_test_timeout(120)

pytestmark = pytest.mark.skipif(not all(shutil.which(t) for t in ("node", "openssl", "curl")),
                                reason="node, openssl and curl are needed for the push mocks")

JS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "js")
KEY_ID, TEAM_ID, TOPIC = "ABC123DEFG", "TEAM123456", "com.example.app"
PROJECT, EMAIL = "herald-test", "push@herald-test.iam.gserviceaccount.com"
APNS_OK, APNS_GONE, APNS_BAD = "a1b2c3d4" * 8, "410" + "0" * 61, "400b" + "0" * 60


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


class Mock:
    """A node stand-in; its first stdout line says it is ready."""

    def __init__(self, script, *args):
        self.proc = subprocess.Popen(["node", os.path.join(JS, script), *args], cwd=JS,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.line = None
        got = threading.Event()

        def read():
            self.line = self.proc.stdout.readline()
            got.set()
        threading.Thread(target=read, daemon=True).start()
        if not got.wait(60) or not self.line:
            self.stop()
            raise RuntimeError(f"{script} did not get ready: {self.proc.stderr.read()}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for f in (self.proc.stdout, self.proc.stderr):
            f.close()


@pytest.fixture
def mocks(tmp_path):
    """The three stand-ins and the files herald needs to reach them."""
    d = tmp_path
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(d / "cert.key"), "-out", str(d / "cert.pem"), "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost")
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-out", str(d / "AuthKey.p8"))
    openssl("pkey", "-in", str(d / "AuthKey.p8"), "-pubout", "-out", str(d / "apns.pub"))
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
            "-out", str(d / "rsa.pem"))
    vapid = subprocess.run([BIN, "push", "vapid-keys", "--json"], capture_output=True, check=True,
                           timeout=30)
    vkeys = json.loads(vapid.stdout)
    (d / "vapid.key").write_text(vkeys["privateKey"] + "\n")
    started = []
    try:
        apns = Mock("apns_mock.js", str(d / "cert.pem"), str(d / "cert.key"), str(d / "apns.pub"),
                    KEY_ID, TEAM_ID, TOPIC)
        started.append(apns)
        sa = d / "account.json"
        sa.write_text("{}")
        fcm = Mock("fcm_mock.js", str(d / "cert.pem"), str(d / "cert.key"), str(sa))
        started.append(fcm)
        fcm_port = int(fcm.line.split()[1])
        sa.write_text(json.dumps({
            "type": "service_account", "project_id": PROJECT, "private_key_id": "k1",
            "private_key": (d / "rsa.pem").read_text(), "client_email": EMAIL,
            "token_uri": f"https://127.0.0.1:{fcm_port}/token"}))
        wp = Mock("webpush_mock.js", vkeys["publicKey"])
        started.append(wp)
        m = {
            "apns": f"https://127.0.0.1:{int(apns.line.split()[1])}",
            "fcm": f"https://127.0.0.1:{fcm_port}",
            "webpush": json.loads(wp.line),
            "ca": str(d / "cert.pem"), "p8": str(d / "AuthKey.p8"), "sa": str(sa),
            "vapid": str(d / "vapid.key"), "vapid_public": vkeys["publicKey"],
        }
        m["args"] = ["--push-ca-file", m["ca"], "--push-allow-private",
                     "--push-apns-key-file", m["p8"], "--push-apns-key-id", KEY_ID,
                     "--push-apns-team-id", TEAM_ID, "--push-apns-topic", TOPIC,
                     "--push-apns-url", m["apns"],
                     "--push-fcm-credentials-file", m["sa"], "--push-fcm-url", m["fcm"],
                     "--push-vapid-private-key-file", m["vapid"],
                     "--push-vapid-subject", "mailto:ops@example.com"]
        yield m
    finally:
        for mock in started:
            mock.stop()


def dev_url(h, user, device, suffix=""):
    return f"{h.url}/v1/users/{urllib.parse.quote(user, safe='')}/devices/{device}{suffix}"


def register(h, user, device, body):
    r = requests.put(dev_url(h, user, device), json=body, timeout=10)
    assert r.status_code == 201, r.text
    return r.json()


def send_test(h, user, device):
    return requests.post(dev_url(h, user, device, "/test"), timeout=30)


def h2_stats(mocks, which):
    """GET /stats of an HTTP/2-only mock (curl speaks HTTP/2 over TLS)."""
    p = subprocess.run(["curl", "-sS", "--http2", "--cacert", mocks["ca"], mocks[which] + "/stats"],
                       capture_output=True, timeout=30, check=True)
    return json.loads(p.stdout)


def webpush_sub(s):
    return {"platform": "webpush",
            "subscription": {"endpoint": s["endpoint"], "keys": s["keys"]}}


def metrics(h):
    r = requests.get(h.url + "/metrics", timeout=10)
    assert r.status_code == 200
    out = {}
    for line in r.text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def sends(m, provider, result):
    return m[f'herald_push_sends_total{{provider="{provider}",result="{result}"}}']


def test_test_push_per_platform(herald_factory, mocks):
    h = herald_factory(args=mocks["args"])
    wp = mocks["webpush"]
    register(h, "42", "iphone", {"platform": "apns", "token": APNS_OK, "environment": "sandbox"})
    register(h, "42", "pixel", {"platform": "fcm", "token": "fcm-token-ok-1"})
    register(h, "42", "browser", webpush_sub(wp["ok"]))

    r = requests.get(h.url + "/v1/push/vapid-public-key", timeout=10)
    assert r.status_code == 200 and r.json()["public_key"] == mocks["vapid_public"]

    for device in ("iphone", "pixel", "browser"):
        r = send_test(h, "42", device)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["result"] == "ok", body
        assert body["status"] in (200, 201), body
        assert body["device"]["device"] == device and body["device"]["state"] == "active", body
        assert body["device"]["last_success"] is not None, body

    # What the mocks received.
    apns = h2_stats(mocks, "apns")
    assert apns["last"]["token"] == APNS_OK
    assert json.loads(apns["last"]["body"])["aps"]["alert"]["body"] == "Test push"
    fcm = h2_stats(mocks, "fcm")
    assert fcm["sends"] == 1 and fcm["tokens_issued"] == 1
    assert fcm["last"]["token"] == "fcm-token-ok-1"
    got = requests.post(f"http://localhost:{wp['port']}/get-notifications",
                        json={"clientHash": wp["ok"]["clientHash"]}, timeout=10).json()
    messages = got["data"]["messages"]
    assert len(messages) == 1, got
    payload = json.loads(messages[0])
    assert payload["herald"]["topic"] == "push.test", payload
    assert payload["notification"]["body"] == "Test push", payload
    assert payload["data"] == {"test": True}, payload

    m = metrics(h)
    for provider in ("apns", "fcm", "webpush"):
        assert sends(m, provider, "ok") == 1, provider
        assert sends(m, provider, "invalid") == 0, provider
    assert m['herald_push_devices{platform="apns",state="active"}'] == 1
    assert m["herald_push_send_seconds_count"] >= 3
    assert m["herald_push_provider_tokens_total"] >= 2  # the APNs JWT and the FCM access token
    assert "herald_push_auth_alarms_total" in m


def test_dead_tokens_turn_invalid_with_feedback(herald_factory, mocks):
    h = herald_factory(args=mocks["args"])
    register(h, "7", "old-iphone", {"platform": "apns", "token": APNS_GONE})
    register(h, "7", "old-ipad", {"platform": "apns", "token": APNS_BAD})
    register(h, "7", "old-pixel", {"platform": "fcm", "token": "unreg-token-1"})
    register(h, "7", "old-browser", webpush_sub(mocks["webpush"]["expired"]))

    want = {"old-iphone": (410, "Unregistered"), "old-ipad": (400, "BadDeviceToken"),
            "old-pixel": (404, "UNREGISTERED"),
            "old-browser": (410, None)}
    for device, (status, reason) in want.items():
        r = send_test(h, "7", device)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["result"] == "invalid" and body["status"] == status, body
        if reason:
            assert body["reason"] == reason, body
        assert body["device"]["state"] == "invalid", body
        assert body["device"]["last_failure"]["status"] == status, body
        g = requests.get(dev_url(h, "7", device), timeout=10).json()
        assert g["state"] == "invalid" and g["invalid_reason"] == body["reason"], g

    # The events are published as the verdicts come (not before the answer).
    def feedback():
        r = requests.get(h.topic_url("push.feedback"), params={"after": 0}, timeout=10)
        return r.json()["events"] if r.status_code == 200 else []
    wait_for(lambda: len(feedback()) >= 4, 20, what="four push.feedback events")
    events = feedback()
    assert len(events) == 4, events
    by_device = {e["data"]["device"]: e for e in events}
    assert set(by_device) == set(want)
    e = by_device["old-iphone"]
    assert e["type"] == "herald.push.invalidated" and e["specversion"] == "1.0"
    assert e["data"] == {"user": "7", "device": "old-iphone", "platform": "apns",
                         "reason": "Unregistered", "status": 410}
    assert by_device["old-pixel"]["data"]["platform"] == "fcm"
    assert by_device["old-browser"]["data"]["platform"] == "webpush"

    m = metrics(h)
    for provider, n in (("apns", 2), ("fcm", 1), ("webpush", 1)):
        assert sends(m, provider, "invalid") == n, provider
        assert sends(m, provider, "ok") == 0, provider
        assert m[f'herald_push_devices{{platform="{provider}",state="invalid"}}'] == n
        assert m[f'herald_push_devices{{platform="{provider}",state="active"}}'] == 0
    wait_for(lambda: metrics(h)["herald_push_feedback_events_total"] == 4, 20,
             what="four feedback events counted")

    # Registered again, the device is active again.
    register_again = requests.put(dev_url(h, "7", "old-iphone"),
                                  json={"platform": "apns", "token": APNS_OK}, timeout=10)
    assert register_again.status_code == 200 and register_again.json()["state"] == "active"


def test_provider_not_configured(herald_factory, mocks):
    # Only Web Push is configured here.
    h = herald_factory(args=["--push-allow-private", "--push-vapid-private-key-file",
                             mocks["vapid"], "--push-vapid-subject", "mailto:ops@example.com"])
    register(h, "9", "iphone", {"platform": "apns", "token": APNS_OK})
    register(h, "9", "pixel", {"platform": "fcm", "token": "fcm-token-ok-2"})
    r = send_test(h, "9", "iphone")
    assert r.status_code == 503, r.text
    msg = r.json()["error"]["message"]
    assert "APNs" in msg and "not configured" in msg and "--push-apns-key-file" in msg, msg
    r = send_test(h, "9", "pixel")
    assert r.status_code == 503 and "--push-fcm-credentials-file" in r.json()["error"]["message"]
    r = send_test(h, "9", "nosuch")
    assert r.status_code == 404, r.text
    assert requests.get(dev_url(h, "9", "iphone"), timeout=10).json()["state"] == "active"


def test_client_leaving_during_a_test_push(herald_factory, mocks):
    """The held request survives its client going away: the verdict still
    counts, the server stays well (and stops cleanly: no leak, ASan)."""
    h = herald_factory(args=mocks["args"])
    register(h, "5", "pixel", {"platform": "fcm", "token": "fcm-token-ok-3"})
    before = sends(metrics(h), "fcm", "ok")
    s = socket.create_connection(("127.0.0.1", h.port), timeout=10)
    s.sendall(b"POST /v1/users/5/devices/pixel/test HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    s.close()
    wait_for(lambda: sends(metrics(h), "fcm", "ok") == before + 1, 20, what="the send counted")
    r = send_test(h, "5", "pixel")
    assert r.status_code == 200 and r.json()["result"] == "ok", r.text


def test_bad_apns_key_file_is_a_startup_error(tmp_path):
    bad = tmp_path / "AuthKey.p8"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    p = subprocess.run([BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "d"),
                        "--push-apns-key-file", str(bad), "--push-apns-key-id", KEY_ID,
                        "--push-apns-team-id", TEAM_ID, "--push-apns-topic", TOPIC],
                       capture_output=True, timeout=30)
    assert p.returncode == 2, p.stderr
    err = p.stderr.decode()
    assert "--push-apns-key-file" in err or str(bad) in err, err
    assert "ERROR: AddressSanitizer" not in err and "LeakSanitizer" not in err, err
