"""The admin console (/ui) in Debian's headless Chromium, driven by
puppeteer-core (tests/js/console_driver.js): a wrong key shows an error, not
a blank page; an admin key signs in; a topic created by a publish appears;
the live tail shows an event within a second of its publish, pauses,
resumes after the last offset it saw and starts from an offset; the publish
form stores an event; pausing a webhook in the console pauses it in the
API; a user's connection is listed; the console logs no error. Screenshots
go to the test's temp dir. Also the serving itself: content types, ETag and
304, the Content-Security-Policy, 404s, --ui off."""
import json
import os
import shutil
import subprocess

import requests

from conftest import create_key, per_test_timeout, wait_for
from wsclient import SECRET, token

_timeout = per_test_timeout(150)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
JS = os.path.join(ROOT, "tests", "js")
NODE = shutil.which("node") or "/usr/bin/node"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def test_ui_files_types_etag_csp(herald):
    r = requests.get(herald.url + "/ui", timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe" not in csp
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert "<script src=\"/ui/app.js\"" in r.text and "<script>" not in r.text  # no inline script
    assert requests.get(herald.url + "/ui/", timeout=10).text == r.text
    for name, ctype in [("app.js", "text/javascript; charset=utf-8"), ("chart.js", "text/javascript; charset=utf-8"),
                        ("console.css", "text/css; charset=utf-8"), ("favicon.svg", "image/svg+xml")]:
        a = requests.get(f"{herald.url}/ui/{name}", timeout=10)
        assert a.status_code == 200 and a.headers["Content-Type"] == ctype, name
        etag = a.headers["ETag"]
        assert etag.startswith('"') and a.headers["Cache-Control"] == "no-cache"
        b = requests.get(f"{herald.url}/ui/{name}", headers={"If-None-Match": etag}, timeout=10)
        assert b.status_code == 304 and b.content == b"" and b.headers["ETag"] == etag
        c = requests.get(f"{herald.url}/ui/{name}", headers={"If-None-Match": '"other"'}, timeout=10)
        assert c.status_code == 200 and c.content == a.content
        assert requests.head(f"{herald.url}/ui/{name}", timeout=10).headers["Content-Length"] == str(len(a.content))
    # Nothing of the page is fetched from another origin.
    app = requests.get(herald.url + "/ui/app.js", timeout=10).text
    assert "http://" not in app and "https://" not in app
    for bad in ["/ui/nope.js", "/ui/..%2fCMakeLists.txt", "/ui/app.js/x"]:
        assert requests.get(herald.url + bad, timeout=10).status_code == 404, bad
    assert requests.post(herald.url + "/ui/app.js", timeout=10).status_code == 405


def test_ui_off(herald_factory):
    h = herald_factory(args=["--ui", "off"])
    assert requests.get(h.url + "/ui", timeout=10).status_code == 404
    assert requests.get(h.url + "/ui/app.js", timeout=10).status_code == 404


def test_stats_needs_admin(herald_factory):
    h = herald_factory(start=False, config="[namespace short]\nretention-max-count = 3\nhistory = on\n")
    admin = create_key(h.data_dir, "ops", "admin")
    reader = create_key(h.data_dir, "reader", "read")
    h.start()
    url = h.url + "/v1/stats"
    assert requests.get(url, timeout=10).status_code == 401
    assert requests.get(url, headers={"Authorization": f"Bearer {reader}"}, timeout=10).status_code == 403
    s = requests.get(url, headers={"Authorization": f"Bearer {admin}"}, timeout=10).json()
    assert s["version"] and s["uptime_s"] >= 0 and s["store_bytes"] > 0
    assert set(s["connections"]) == {"open", "websocket", "sse", "longpoll"}
    for path in ["/v1/groups", "/v1/topics/a:b/policy"]:
        assert requests.get(h.url + path, headers={"Authorization": f"Bearer {reader}"}, timeout=10).status_code == 403
    # Counters move with what happens; groups are listed; a policy is the namespace's.
    ev = {"specversion": "1.0", "id": "s1", "source": "/t", "type": "t"}
    r = requests.post(h.topic_url("short:1"), json=ev, timeout=10,
                      headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/cloudevents+json"})
    assert r.status_code == 201, r.text
    for g in ["g1", "g2"]:
        r = requests.put(h.topic_url("short:1", f"/groups/{g}"), json={}, headers={"Authorization": f"Bearer {admin}"},
                         timeout=10)
        assert r.status_code == 201, r.text
    s2 = requests.get(url, headers={"Authorization": f"Bearer {admin}"}, timeout=10).json()
    assert s2["publishes_total"] == s["publishes_total"] + 1 and s2["topics"] == 1
    groups = requests.get(h.url + "/v1/groups", headers={"Authorization": f"Bearer {admin}"}, timeout=10).json()
    assert groups["count"] == 2
    assert sorted((g["topic"], g["group"]) for g in groups["groups"]) == [("short:1", "g1"), ("short:1", "g2")]
    p = requests.get(h.topic_url("short:9", "/policy"), headers={"Authorization": f"Bearer {admin}"}, timeout=10).json()
    assert p == {"topic": "short:9", "namespace": "short", "retention_max_age_ms": 0, "retention_max_count": 3,
                 "dedup_window_ms": p["dedup_window_ms"], "max_event_size": 0, "history": True}
    p = requests.get(h.topic_url("plain", "/policy"), headers={"Authorization": f"Bearer {admin}"}, timeout=10).json()
    assert p["namespace"] == "" and p["retention_max_count"] == 0


def test_console_in_chromium(herald_factory, tmp_path):
    h = herald_factory(args=["--webhook-allow-private", "on", "--jwt-secret", SECRET], start=False)
    admin = create_key(h.data_dir, "ops", "admin")
    h.start()
    auth = {"Authorization": f"Bearer {admin}"}
    topic = "console:demo"
    # A webhook to pause (its receiver need not exist: it stays active
    # until the first event), a pull group to list, a user online.
    r = requests.post(h.url + "/v1/subscriptions", json={"topic": topic, "url": "http://127.0.0.1:9/hook",
                                                          "start": "latest"}, headers=auth, timeout=10)
    assert r.status_code == 201, r.text
    sub = r.json()["id"]
    r = requests.put(h.topic_url(topic, "/groups/billing"), json={"start": "oldest"}, headers=auth, timeout=10)
    assert r.status_code in (200, 201), r.text
    r = requests.put(h.topic_url("console:*", "/groups/audit"), json={"start": "oldest"}, headers=auth, timeout=10)
    assert r.status_code in (200, 201), r.text
    stream = requests.get(h.topic_url("user:u7", "/sse") + "?token=" + token("u7"), stream=True, timeout=30)
    try:
        assert stream.status_code == 200
        wait_for(lambda: requests.get(h.url + "/v1/users/u7/connections", headers=auth, timeout=10)
                 .json()["connections"], 10, what="u7's SSE stream registered")
        shots = tmp_path / "shots"
        shots.mkdir()
        cfg = {"base": h.url, "key": admin, "bad_key": "hd_not-a-key", "topic": topic, "sub_id": sub,
               "user": "u7", "shots": str(shots), "chromium": CHROMIUM}
        p = subprocess.run([NODE, os.path.join(JS, "console_driver.js")], cwd=JS, capture_output=True,
                           timeout=120, env=dict(os.environ, CONSOLE_CFG=json.dumps(cfg)),
                           stdin=subprocess.DEVNULL)
        assert p.returncode == 0, p.stderr.decode()[-3000:]
        out = json.loads(p.stdout.decode().strip().splitlines()[-1])
    finally:
        stream.close()
    assert out["ok"], f"failed at {out['step']}: {out.get('error')}\nconsole: {out['console']}"
    # A wrong key: an error in words, still on the sign-in page.
    assert "Sign-in failed" in out["wrong_key_message"] and "unknown" in out["wrong_key_message"]
    assert not out["signed_in_after_wrong_key"]
    assert out["stored_key"]
    assert "0.1.0" in out["overview"] or "version" in out["overview"]
    assert "epoch" in out["topic_info"] and "retention" in out["topic_info"]
    # The live tail: within a second of the publish's acknowledgement.
    assert out["tail_after_ack_ms"] < 1000, out
    assert out["paused_state"].startswith("paused")
    assert out["tail_rows"][:2] == ["while-paused", "live-1"], out["tail_rows"]
    assert "stored at offset" in out["published"]
    assert "billing" in out["groups"] and topic in out["groups"]
    # A group over a pattern: named as one, with its topic count, no link.
    assert "audit" in out["groups"] and "console:* (pattern, " in out["groups"], out["groups"]
    # Pausing in the console paused it in the API.
    assert out["sub_state"] == "paused" and out["row_state"].startswith("paused")
    got = requests.get(f"{h.url}/v1/subscriptions/{sub}", headers=auth, timeout=10).json()
    assert got["state"] == "paused"
    assert "sse" in out["user_conns"]
    # No console errors but the expected failed loads: the wrong key's 401
    # and the 404s of push routes on a node without push.
    def expected(m):
        if not m["text"].startswith("Failed to load resource"):
            return False
        if m["step"] == "wrong-key" and "401" in m["text"]:
            return True
        return "404" in m["text"] and ("/v1/push/" in m["url"] or "/devices" in m["url"])
    errors = [m for m in out["console"] if m["type"] == "error" and not expected(m)]
    assert errors == [] and out["page_errors"] == [], (errors, out["page_errors"])
    for f in out["shots"]:
        assert os.path.getsize(f) > 1000, f
