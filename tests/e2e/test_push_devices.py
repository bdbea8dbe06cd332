"""Push devices (docs/api.md "Devices", push/devices.h, edge/push_http.h):
register (201 created, 200 replaced), list, get and delete through HTTP;
who may call (the user's own client token, an admin key; another user's
token 403, no credential 401); unknown members and bad tokens get 400
naming what is wrong; the per-user and global caps give 429; a token
registered for another user moves there; devices survive a restart; the
VAPID public key from a key file made by `herald push vapid-keys` and by
openssl (PEM), and the CLI's key pair checked by Node's crypto."""
import base64
import hashlib
import json
import os
import shutil
import subprocess
import urllib.parse

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from conftest import BIN, per_test_timeout, wait_for
from wsclient import SECRET, token

_timeout = per_test_timeout(90)

ADMIN, READER = "admin-secret-" + "a" * 40, "reader-secret-" + "r" * 40
KEYS = (f"[key admin]\nhash = sha256:{hashlib.sha256(ADMIN.encode()).hexdigest()}\nscopes = admin\n"
        f"[key reader]\nhash = sha256:{hashlib.sha256(READER.encode()).hexdigest()}\nscopes = read\n")
ARGS = ["--jwt-secret", SECRET]
APNS = "a1b2c3d4" * 8


def server(herald_factory, args=(), name="data"):
    return herald_factory(args=ARGS + list(args), config=KEYS, name=name)


def url(h, user, device=None):
    u = f"{h.url}/v1/users/{urllib.parse.quote(user, safe='')}/devices"
    return u if device is None else u + "/" + device


def auth(cred):
    return {"Authorization": "Bearer " + cred} if cred else {}


def put(h, user, device, body, cred=ADMIN):
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return requests.put(url(h, user, device), data=data, headers=auth(cred), timeout=10)


def get(h, user, device=None, cred=ADMIN):
    return requests.get(url(h, user, device), headers=auth(cred), timeout=10)


def delete(h, user, device, cred=ADMIN):
    return requests.delete(url(h, user, device), headers=auth(cred), timeout=10)


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def subscription(endpoint="https://fcm.googleapis.com/fcm/send/abc123"):
    """A browser-like PushSubscription.toJSON() with a real P-256 key."""
    pub = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return {"endpoint": endpoint, "expirationTime": None,
            "keys": {"p256dh": b64url(pub), "auth": b64url(os.urandom(16))}}


def error(r):
    return r.json()["error"]["message"]


def test_register_list_get_delete(herald_factory):
    h = server(herald_factory)
    r = put(h, "42", "phone", {"platform": "apns", "token": APNS.upper(), "environment": "sandbox",
                               "topics": ["rides:981", "rides:981", "news"]})
    assert r.status_code == 201, r.text
    d = r.json()
    assert d["user"] == "42" and d["device"] == "phone" and d["platform"] == "apns"
    assert d["token"] == APNS and d["environment"] == "sandbox" and d["topics"] == ["rides:981", "news"]
    assert d["state"] == "active" and d["invalid_reason"] is None
    assert d["last_success"] is None and d["last_failure"] is None
    assert d["created"].endswith("Z") and d["updated"].endswith("Z")
    created = d["created"]

    r = put(h, "42", "phone", {"platform": "fcm", "token": "fcm-token:1"})
    assert r.status_code == 200, r.text
    assert r.json()["platform"] == "fcm" and r.json()["token"] == "fcm-token:1"
    assert r.json()["created"] == created and "environment" not in r.json()

    sub = subscription()
    r = put(h, "42", "browser", {"platform": "webpush", "subscription": sub})
    assert r.status_code == 201, r.text
    assert r.json()["subscription"]["endpoint"] == sub["endpoint"]
    assert r.json()["subscription"]["keys"] == sub["keys"]

    r = get(h, "42")
    assert r.status_code == 200, r.text
    assert r.json()["user"] == "42"
    assert [d["device"] for d in r.json()["devices"]] == ["phone", "browser"]
    assert get(h, "42", "browser").json()["platform"] == "webpush"
    assert get(h, "43").json()["devices"] == []

    r = delete(h, "42", "phone")
    assert r.status_code == 204 and r.content == b""
    r = get(h, "42", "phone")
    assert r.status_code == 404 and "no device 'phone'" in error(r)
    assert delete(h, "42", "phone").status_code == 404
    assert [d["device"] for d in get(h, "42").json()["devices"]] == ["browser"]


def test_access(herald_factory):
    h = server(herald_factory)
    body = {"platform": "fcm", "token": "t-own"}
    r = put(h, "42", "phone", body, cred=token("42"))
    assert r.status_code == 201, r.text
    assert get(h, "42", cred=token("42")).status_code == 200
    assert get(h, "42", "phone", cred=token("42")).status_code == 200
    assert put(h, "42", "phone", body, cred=token("43")).status_code == 403
    assert get(h, "42", cred=token("43")).status_code == 403
    assert delete(h, "42", "phone", cred=token("43")).status_code == 403
    assert get(h, "42", cred=READER).status_code == 403
    assert get(h, "42", cred=None).status_code == 401
    assert put(h, "42", "phone", body, cred=None).status_code == 401
    assert get(h, "42", cred="wrong-key").status_code == 401
    assert delete(h, "42", "phone", cred=token("42")).status_code == 204


@pytest.mark.parametrize("body,words", [
    ({"platform": "fcm", "token": "x", "extra": 1}, "unknown member 'extra'"),
    ({"platform": "webpush", "subscription": dict(subscription(), foo=1)}, "'subscription.foo'"),
    ({"platform": "sms", "token": "x"}, "'platform'"),
    ({"token": "x"}, "'platform'"),
    ("not json", "not JSON"), ("[1]", "JSON object"),
    ({"platform": "apns", "token": "xyz"}, "hex"),
    ({"platform": "apns", "token": "abc"}, "hex"),
    ({"platform": "apns", "token": APNS, "environment": "staging"}, "production or sandbox"),
    ({"platform": "apns"}, "'token' is required"),
    ({"platform": "fcm", "token": ""}, "FCM registration token"),
    ({"platform": "fcm", "token": "a b"}, "FCM registration token"),
    ({"platform": "fcm", "token": "x" * 1025}, "'token'"),
    ({"platform": "fcm", "token": 7}, "'token' must be a string"),
    ({"platform": "fcm", "token": "x", "environment": "sandbox"}, "apns only"),
    ({"platform": "fcm", "subscription": {}}, "'subscription' is for webpush"),
    ({"platform": "webpush", "token": "x"}, "not for webpush"),
    ({"platform": "webpush"}, "'subscription' is required"),
    ({"platform": "webpush", "subscription": subscription("http://push.example/x")}, "https://"),
    ({"platform": "webpush", "subscription": subscription("http://127.0.0.1:9/x")}, "https://"),
    ({"platform": "webpush", "subscription": subscription("ftp://push.example/x")}, "endpoint"),
    ({"platform": "webpush", "subscription": subscription("https://u@push.example/x")}, "endpoint"),
    ({"platform": "webpush", "subscription": dict(subscription(), keys={"p256dh": "AAAA", "auth": "AAAA"})},
     "p256dh"),
    ({"platform": "webpush", "subscription": dict(subscription(), keys={"p256dh": subscription()["keys"]["p256dh"]})},
     "'subscription.keys.auth' is required"),
    ({"platform": "fcm", "token": "x", "topics": "news"}, "'topics'"),
    ({"platform": "fcm", "token": "x", "topics": ["bad topic"]}, "'topics[0]'"),
    ({"platform": "fcm", "token": "x", "topics": [f"t{i}" for i in range(33)]}, "at most 32"),
])
def test_bad_bodies(herald_factory, body, words):
    h = server(herald_factory)
    r = put(h, "42", "phone", body)
    assert r.status_code == 400, r.text
    assert words in error(r), error(r)
    assert get(h, "42").json()["devices"] == []


def test_bad_device_ids(herald_factory):
    h = server(herald_factory)
    for bad in ["a%20b", "x" * 65, "a%2Fb", "%C3%A9"]:
        r = put(h, "42", bad, {"platform": "fcm", "token": "x"})
        assert r.status_code == 400 and "device id" in error(r), (bad, r.text)
    assert put(h, "42", "x" * 64, {"platform": "fcm", "token": "x"}).status_code == 201
    r = requests.put(url(h, "42", "p"), data=b"x" * 20000, headers=auth(ADMIN), timeout=10)
    assert r.status_code == 413, r.text


def test_loopback_http_endpoint_needs_allow_private(herald_factory):
    h = server(herald_factory, args=["--push-allow-private"])
    for ep in ["http://127.0.0.1:9/push/1", "http://localhost:8/p", "http://[::1]:7/p"]:
        r = put(h, "42", "b", {"platform": "webpush", "subscription": subscription(ep)})
        assert r.status_code in (200, 201), (ep, r.text)
    r = put(h, "42", "b", {"platform": "webpush", "subscription": subscription("http://10.0.0.1/p")})
    assert r.status_code == 400 and "loopback" in error(r)


def test_per_user_cap(herald_factory):
    h = server(herald_factory, args=["--push-max-devices-per-user", "3"])
    for i in range(3):
        assert put(h, "42", f"d{i}", {"platform": "fcm", "token": f"t{i}"}).status_code == 201
    r = put(h, "42", "d3", {"platform": "fcm", "token": "t3"})
    assert r.status_code == 429, r.text
    assert "--push-max-devices-per-user" in error(r) and "delete one" in error(r)
    # Replacing one of the three is not a new device; another user is not limited.
    assert put(h, "42", "d0", {"platform": "fcm", "token": "t0b"}).status_code == 200
    assert put(h, "43", "d0", {"platform": "fcm", "token": "t9"}).status_code == 201
    # Moving one of the user's own tokens to a new id frees its old slot.
    assert put(h, "42", "d3", {"platform": "fcm", "token": "t1"}).status_code == 201
    assert sorted(d["device"] for d in get(h, "42").json()["devices"]) == ["d0", "d2", "d3"]
    assert delete(h, "42", "d2").status_code == 204
    assert put(h, "42", "d4", {"platform": "fcm", "token": "t4"}).status_code == 201


def test_global_cap(herald_factory):
    h = server(herald_factory, args=["--push-max-devices", "2"])
    assert put(h, "1", "d", {"platform": "fcm", "token": "a"}).status_code == 201
    assert put(h, "2", "d", {"platform": "fcm", "token": "b"}).status_code == 201
    r = put(h, "3", "d", {"platform": "fcm", "token": "c"})
    assert r.status_code == 429 and "--push-max-devices" in error(r)
    # A move keeps the count: allowed at the cap.
    assert put(h, "3", "d", {"platform": "fcm", "token": "a"}).status_code == 201


def test_token_moves_to_another_user(herald_factory):
    h = server(herald_factory)
    sub = subscription()
    assert put(h, "42", "phone", {"platform": "apns", "token": APNS}).status_code == 201
    assert put(h, "42", "web", {"platform": "webpush", "subscription": sub}).status_code == 201
    r = put(h, "43", "handset", {"platform": "apns", "token": APNS}, cred=token("43"))
    assert r.status_code == 201, r.text
    assert [d["device"] for d in get(h, "42").json()["devices"]] == ["web"]
    assert [d["device"] for d in get(h, "43").json()["devices"]] == ["handset"]
    # The same token on another platform is another device.
    assert put(h, "44", "x", {"platform": "fcm", "token": APNS}).status_code == 201
    # A Web Push endpoint is the token of a subscription.
    assert put(h, "43", "web", {"platform": "webpush", "subscription": subscription(sub["endpoint"])}).status_code == 201
    assert get(h, "42").json()["devices"] == []
    # The move is durable: after a restart the old registrations stay gone.
    h.restart()
    # /healthz does not wait for the registry to load (503 "loading" until then).
    wait_for(lambda: get(h, "42").status_code != 503, 30, what="the device registry loaded")
    assert get(h, "42").json()["devices"] == []
    assert sorted(d["device"] for d in get(h, "43").json()["devices"]) == ["handset", "web"]


def test_restart_keeps_devices(herald_factory):
    h = server(herald_factory)
    wait_for(lambda: get(h, "0").status_code != 503, 30, what="the device registry loaded")
    before = {}
    for i in range(30):  # several users, all three platforms
        user = str(i % 4)
        body = ({"platform": "apns", "token": f"{i:02x}" * 16, "topics": [f"rides:{i}"]} if i % 3 == 0 else
                {"platform": "fcm", "token": f"fcm-{i}"} if i % 3 == 1 else
                {"platform": "webpush", "subscription": subscription(f"https://push.example/{i}")})
        r = put(h, user, f"d{i}", body)
        assert r.status_code == 201, r.text
        before[(user, f"d{i}")] = r.json()
    assert delete(h, "0", "d0").status_code == 204
    del before[("0", "d0")]
    h.stop()
    h.start()
    wait_for(lambda: get(h, "0").status_code != 503, 30, what="the device registry loaded again")
    after = {}
    for user in "0123":
        r = get(h, user)
        assert r.status_code == 200, r.text
        for d in r.json()["devices"]:
            after[(user, d["device"])] = d
    assert after == before


def test_unknown_route_methods(herald_factory):
    h = server(herald_factory)
    r = requests.post(url(h, "42", "phone"), data="{}", headers=auth(ADMIN), timeout=10)
    assert r.status_code == 405
    assert "PUT" in r.headers["Allow"] and "DELETE" in r.headers["Allow"]
    # POST .../test is not there yet (it needs the providers).
    r = requests.post(url(h, "42", "phone") + "/test", headers=auth(ADMIN), timeout=10)
    assert r.status_code == 404


def vapid_keys_cli(*args):
    p = subprocess.run([BIN, "push", "vapid-keys", *args], capture_output=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    return p.stdout.decode()


def test_vapid_public_key_from_cli_key(herald_factory, tmp_path):
    h = server(herald_factory)
    r = requests.get(h.url + "/v1/push/vapid-public-key", timeout=10)
    assert r.status_code == 404 and "--push-vapid-private-key-file" in error(r)
    h.stop()

    out = vapid_keys_cli()
    lines = [l for l in out.splitlines() if l]
    assert lines[0] == "Public Key:" and lines[2] == "Private Key:"
    pub, priv = lines[1], lines[3]
    assert len(pub) == 87 and pub.startswith("B") and len(priv) == 43
    keys = json.loads(vapid_keys_cli("--json"))
    assert set(keys) == {"publicKey", "privateKey"} and keys["publicKey"] != pub

    (tmp_path / "vapid.key").write_text(priv + "\n")
    h2 = server(herald_factory, args=["--push-vapid-private-key-file", str(tmp_path / "vapid.key"),
                                     "--push-vapid-subject", "mailto:ops@example.com"],
                name="data2")
    r = requests.get(h2.url + "/v1/push/vapid-public-key", timeout=10)  # open: no credential
    assert r.status_code == 200, r.text
    assert r.json() == {"public_key": pub}
    # The private key's public point is the one printed.
    d = int.from_bytes(base64.urlsafe_b64decode(priv + "="), "big")
    point = ec.derive_private_key(d, ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    assert b64url(point) == pub


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl is not installed")
def test_vapid_public_key_from_openssl_pem(herald_factory, tmp_path):
    pem = tmp_path / "vapid.pem"
    subprocess.run(["openssl", "ecparam", "-genkey", "-name", "prime256v1", "-noout", "-out", str(pem)],
                   check=True, capture_output=True, timeout=30)
    key = serialization.load_pem_private_key(pem.read_bytes(), None)
    want = b64url(key.public_key().public_bytes(serialization.Encoding.X962,
                                                serialization.PublicFormat.UncompressedPoint))
    h = server(herald_factory, args=["--push-vapid-private-key-file", str(pem),
                                     "--push-vapid-subject", "https://example.com/contact"])
    r = requests.get(h.url + "/v1/push/vapid-public-key", timeout=10)
    assert r.status_code == 200 and r.json()["public_key"] == want


def test_bad_vapid_key_file_is_a_startup_error(tmp_path):
    bad = tmp_path / "bad.key"
    bad.write_text("not a key\n")
    p = subprocess.run([BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path / "d"),
                        "--push-vapid-private-key-file", str(bad), "--push-vapid-subject", "mailto:a@b.c"],
                       capture_output=True, timeout=30)
    assert p.returncode == 2 and str(bad).encode() in p.stderr, p.stderr


@pytest.mark.skipif(not shutil.which("node"), reason="node is not installed")
def test_cli_key_pair_usable_by_node_crypto(tmp_path):
    keys = json.loads(vapid_keys_cli("--json"))
    script = r"""
const crypto = require('crypto');
const [pub, priv] = process.argv.slice(1);
const raw = Buffer.from(pub, 'base64url');
const key = crypto.createPrivateKey({key: {kty: 'EC', crv: 'P-256',
  d: priv, x: raw.subarray(1, 33).toString('base64url'), y: raw.subarray(33).toString('base64url')},
  format: 'jwk'});
const ecdh = crypto.createECDH('prime256v1');
ecdh.setPrivateKey(Buffer.from(priv, 'base64url'));
if (ecdh.getPublicKey('base64url') !== pub) { console.log('public key mismatch'); process.exit(1); }
const sig = crypto.sign('sha256', Buffer.from('herald'), key);
const ok = crypto.verify('sha256', Buffer.from('herald'), crypto.createPublicKey(key), sig);
console.log(ok ? 'ok' : 'bad');
"""
    p = subprocess.run(["node", "-e", script, keys["publicKey"], keys["privateKey"]],
                       capture_output=True, timeout=30)
    assert p.stdout.decode().strip() == "ok", p.stdout + p.stderr
