"""Per-user server-side cursors (docs/api.md "User cursors", edge/cursors.h):
set, get, list and delete with an admin key and as the user with a client
token; forward only unless forced or the topic's epoch changed; another
user's token refused; cursors survive a restart; bad input gets 400 with a
message; concurrent sets keep the highest offset; and the flow they exist
for: device A reads a user's notifications and acknowledges, a new device B
resumes from the user's cursor and sees exactly the events after it."""
import hashlib
import json
import threading
import urllib.parse

import requests

from conftest import RawConn, http_request, per_test_timeout
from test_sse import SSE
from wsclient import SECRET, token

_timeout = per_test_timeout(90)

ADMIN, READER = "admin-secret-" + "a" * 40, "reader-secret-" + "r" * 40
PUB = "publisher-secret-" + "p" * 40
KEYS = (f"[key admin]\nhash = sha256:{hashlib.sha256(ADMIN.encode()).hexdigest()}\nscopes = admin\n"
        f"[key reader]\nhash = sha256:{hashlib.sha256(READER.encode()).hexdigest()}\nscopes = read\n"
        f"[key pub]\nhash = sha256:{hashlib.sha256(PUB.encode()).hexdigest()}\nscopes = publish:*\n")
ARGS = ["--jwt-secret", SECRET]


def server(herald_factory, keys=True, name="data"):
    return herald_factory(args=ARGS, config=KEYS if keys else None, name=name)


def url(h, user, name=None):
    u = f"{h.url}/v1/users/{urllib.parse.quote(user, safe='')}/cursors"
    return u if name is None else u + "/" + name


def auth(cred):
    return {"Authorization": "Bearer " + cred} if cred else {}


def put(h, user, name, body, cred=ADMIN):
    return requests.post(url(h, user, name), data=body if isinstance(body, (str, bytes)) else json.dumps(body),
                         headers=auth(cred), timeout=10)


def get(h, user, name=None, cred=ADMIN, **params):
    return requests.get(url(h, user, name), params=params, headers=auth(cred), timeout=10)


def notify(h, user, n, start=0):
    offsets = []
    for i in range(start, start + n):
        r = requests.post(f"{h.url}/v1/users/{user}/notifications", json={"n": i}, headers=auth(PUB),
                          timeout=10)
        assert r.status_code == 201, r.text
        offsets.append(r.json()["offset"])
    return offsets


def read(h, topic, **params):
    r = requests.get(h.topic_url(topic), params=params, headers=auth(READER), timeout=10)
    assert r.status_code == 200, r.text
    return r


def code(r):
    return r.json()["error"]["code"]


def test_set_get_list_delete_with_admin_key(herald_factory):
    h = server(herald_factory)
    notify(h, "42", 3)
    epoch = read(h, "user:42").json()["epoch"]
    r = put(h, "42", "phone", {"offset": 2, "epoch": epoch})
    assert r.status_code == 200, r.text
    c = r.json()
    assert c["moved"] is True and c["topic"] == "user:42" and c["offset"] == 2 and c["epoch"] == epoch
    assert c["user"] == "42" and c["name"] == "phone" and c["updated"].endswith("Z")

    r = get(h, "42", "phone")
    assert r.status_code == 200, r.text
    g = r.json()
    assert (g["offset"], g["last"], g["lag"], g["epoch"]) == (2, 3, 1, epoch)
    assert "moved" not in g

    # The same request through a raw HTTP/1.1 exchange.
    resp = http_request("POST", "/v1/users/42/cursors/tab", b'{"offset":1}',
                        {"Authorization": "Bearer " + ADMIN, "Content-Type": "application/json"})
    with RawConn(h.port) as conn:
        r2 = conn.request(resp)
    assert r2.status == 200 and r2.json()["offset"] == 1 and r2.json()["moved"] is True

    names = [(c["name"], c["offset"]) for c in get(h, "42").json()["cursors"]]
    assert names == [("phone", 2), ("tab", 1)]
    page = get(h, "42", limit=1).json()
    assert [c["name"] for c in page["cursors"]] == ["phone"] and page["next"] == "phone"
    page = get(h, "42", limit=1, after="phone").json()
    assert [c["name"] for c in page["cursors"]] == ["tab"]
    assert get(h, "42", after="tab").json() == {"user": "42", "cursors": [], "next": None}
    # Another user's cursors are not in the list: the key prefix is the id and '\n'.
    assert put(h, "4", "phone", {"offset": 9}).status_code == 200
    assert put(h, "421", "phone", {"offset": 9}).status_code == 200
    assert [c["name"] for c in get(h, "42").json()["cursors"]] == ["phone", "tab"]
    assert [c["offset"] for c in get(h, "4").json()["cursors"]] == [9]

    r = requests.delete(url(h, "42", "phone"), headers=auth(ADMIN), timeout=10)
    assert r.status_code == 200 and r.json()["deleted"] is True
    r = get(h, "42", "phone")
    assert r.status_code == 404 and "no cursor named 'phone'" in r.json()["error"]["message"]
    assert requests.delete(url(h, "42", "phone"), headers=auth(ADMIN), timeout=10).status_code == 404
    assert [c["name"] for c in get(h, "42").json()["cursors"]] == ["tab"]


def test_forward_only_force_and_epoch(herald_factory):
    h = server(herald_factory)
    notify(h, "7", 5)
    epoch = read(h, "user:7").json()["epoch"]
    assert put(h, "7", "app", {"offset": 4, "epoch": epoch}).json()["moved"] is True
    # A stale device acks an older offset: the user is not rewound.
    r = put(h, "7", "app", {"offset": 2, "epoch": epoch})
    assert r.status_code == 200 and r.json()["moved"] is False and r.json()["offset"] == 4
    assert put(h, "7", "app", {"offset": 4}).json()["moved"] is False
    assert get(h, "7", "app").json()["offset"] == 4
    # Forward moves; without an epoch the stored one is kept.
    r = put(h, "7", "app", {"offset": 5}).json()
    assert r["moved"] is True and r["offset"] == 5 and r["epoch"] == epoch
    # force rewinds.
    r = put(h, "7", "app", {"offset": 1, "force": True}).json()
    assert r["moved"] is True and r["offset"] == 1
    assert get(h, "7", "app").json()["offset"] == 1

    # The topic is recreated: a new epoch, offsets start again at 1.
    assert put(h, "7", "app", {"offset": 5, "epoch": epoch}).json()["offset"] == 5
    assert requests.delete(h.topic_url("user:7", ""), headers=auth(ADMIN), timeout=10).status_code == 200
    notify(h, "7", 2)
    epoch2 = read(h, "user:7").json()["epoch"]
    assert epoch2 != epoch
    g = get(h, "7", "app").json()
    assert g["last"] == 2 and "lag" not in g and g["topic_epoch"] == epoch2  # lag would be meaningless
    r = put(h, "7", "app", {"offset": 1, "epoch": epoch2}).json()
    assert r["moved"] is True and (r["offset"], r["epoch"]) == (1, epoch2)
    g = get(h, "7", "app").json()
    assert (g["lag"], g["last"]) == (1, 2) and "topic_epoch" not in g
    # A cursor on another topic (the topic field) is another stream: it moves.
    r = put(h, "7", "app", {"offset": 0, "topic": "orders:7"}).json()
    assert r["moved"] is True and r["topic"] == "orders:7" and r["offset"] == 0 and r["epoch"] == ""


def test_user_token_access(herald_factory):
    h = server(herald_factory)
    notify(h, "u1", 2)
    mine = token("u1")
    r = put(h, "u1", "phone", {"offset": 1}, cred=mine)
    assert r.status_code == 200, r.text
    assert get(h, "u1", "phone", cred=mine).json()["offset"] == 1
    assert get(h, "u1", cred=mine).json()["cursors"][0]["name"] == "phone"
    # ?token= works as for the other reads (EventSource cannot set headers).
    r = requests.get(url(h, "u1", "phone"), params={"token": mine}, timeout=10)
    assert r.status_code == 200 and r.json()["offset"] == 1
    # Another user's token: 403, whatever the method.
    other = token("u2")
    for r in (put(h, "u1", "phone", {"offset": 2}, cred=other), get(h, "u1", "phone", cred=other),
              get(h, "u1", cred=other),
              requests.delete(url(h, "u1", "phone"), headers=auth(other), timeout=10)):
        assert r.status_code == 403 and code(r) == "forbidden", r.text
        assert "its own user" in r.json()["error"]["message"]
    anon = token("")
    assert get(h, "u1", "phone", cred=anon).status_code == 403
    # A user keeps cursors only on topics they may read.
    r = put(h, "u1", "x", {"offset": 1, "topic": "user:u2"}, cred=mine)
    assert r.status_code == 403, r.text
    # Keys: admin may; a read key may not; none at all: 401.
    r = get(h, "u1", "phone", cred=READER)
    assert r.status_code == 403 and "admin" in r.json()["error"]["message"]
    r = get(h, "u1", "phone", cred=None)
    assert r.status_code == 401 and code(r) == "unauthorized"
    assert r.headers.get("WWW-Authenticate", "").startswith("Bearer")
    assert get(h, "u1", "phone", cred=token("u1", secret="wrong")).status_code == 401
    assert get(h, "u1", "phone", cred=ADMIN).json()["offset"] == 1
    assert requests.delete(url(h, "u1", "phone"), headers=auth(mine), timeout=10).status_code == 200


def test_survives_restart(herald_factory):
    h = server(herald_factory)
    notify(h, "42", 4)
    epoch = read(h, "user:42").json()["epoch"]
    assert put(h, "42", "phone", {"offset": 3, "epoch": epoch}).status_code == 200
    assert put(h, "42", "tab", {"offset": 1}).status_code == 200
    assert requests.delete(url(h, "42", "tab"), headers=auth(ADMIN), timeout=10).status_code == 200
    h.restart()
    g = get(h, "42", "phone").json()
    assert (g["offset"], g["epoch"], g["last"], g["lag"]) == (3, epoch, 4, 1)
    assert [c["name"] for c in get(h, "42").json()["cursors"]] == ["phone"]
    # Still forward only after the restart.
    assert put(h, "42", "phone", {"offset": 2, "epoch": epoch}).json()["moved"] is False


def test_bad_input(herald_factory):
    h = server(herald_factory)

    def bad(r, status, code_, words):
        assert r.status_code == status, r.text
        assert code(r) == code_, r.text
        assert words in r.json()["error"]["message"], r.text

    bad(put(h, "42", "bad%20name", {"offset": 1}), 400, "invalid_request", "cursor name")
    bad(put(h, "42", "a" * 65, {"offset": 1}), 400, "invalid_request", "1-64 characters")
    assert put(h, "42", "a" * 64, {"offset": 1}).status_code == 200
    bad(put(h, "42", "x", {"offset": -1}), 400, "invalid_request", "'offset'")
    bad(put(h, "42", "x", {"offset": 1.5}), 400, "invalid_request", "'offset'")
    bad(put(h, "42", "x", {"offset": "3"}), 400, "invalid_request", "'offset'")
    bad(put(h, "42", "x", {}), 400, "invalid_request", "'offset' is required")
    bad(put(h, "42", "x", "not json"), 400, "invalid_request", "JSON object")
    bad(put(h, "42", "x", "[1]"), 400, "invalid_request", "JSON object")
    bad(put(h, "42", "x", ""), 400, "invalid_request", "JSON object")
    bad(put(h, "42", "x", '{"offset":1,"offset":2}'), 400, "invalid_request", "JSON object")
    bad(put(h, "42", "x", {"offset": 1, "epoch": "z" * 17}), 400, "invalid_request", "'epoch'")
    bad(put(h, "42", "x", {"offset": 1, "epoch": "a-b"}), 400, "invalid_request", "'epoch'")
    bad(put(h, "42", "x", {"offset": 1, "force": "yes"}), 400, "invalid_request", "'force'")
    bad(put(h, "42", "x", {"offset": 1, "topic": "bad topic"}), 400, "invalid_topic", "'topic'")
    bad(put(h, "42", "x", {"offset": 1, "topic": "t" * 300}), 400, "invalid_topic", "'topic'")
    bad(put(h, "42", "x", {"offset": 1, "ofset": 2}), 400, "invalid_request", "unknown member 'ofset'")
    bad(put(h, "42", "x", json.dumps({"offset": 1, "epoch": "a" * 5000})), 413, "payload_too_large",
        "at most 4096 bytes")
    bad(get(h, "42", limit=0), 400, "invalid_request", "'limit'")
    bad(get(h, "42", limit=1001), 400, "invalid_request", "'limit'")
    bad(get(h, "42", after="a b"), 400, "invalid_request", "'after'")
    bad(put(h, "a:b", "x", {"offset": 1}), 400, "invalid_topic", "user id")
    bad(put(h, "u" * 300, "x", {"offset": 1}), 400, "invalid_topic", "user id")
    r = requests.put(url(h, "42", "x"), data="{}", headers=auth(ADMIN), timeout=10)
    assert r.status_code == 405 and r.headers["Allow"] == "GET, POST, DELETE"
    r = requests.post(url(h, "42"), data="{}", headers=auth(ADMIN), timeout=10)
    assert r.status_code == 405 and r.headers["Allow"] == "GET"
    r = requests.get(url(h, "42") + "x", headers=auth(ADMIN), timeout=10)
    assert r.status_code == 404
    # Nothing bad was stored.
    assert [c["name"] for c in get(h, "42").json()["cursors"]] == ["a" * 64]


def test_concurrent_sets_keep_the_highest(herald_factory):
    h = server(herald_factory, keys=False)
    results, errors = [], []

    def worker(offsets):
        s = requests.Session()
        try:
            for o in offsets:
                r = s.post(url(h, "42", "phone"), json={"offset": o}, timeout=20)
                if r.status_code == 429:  # the per-cursor queue is full: retry
                    r = s.post(url(h, "42", "phone"), json={"offset": o}, timeout=20)
                results.append((o, r.status_code, r.json()))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(range(w, 200, 4),)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and not any(t.is_alive() for t in threads)
    assert all(st == 200 for _, st, _ in results), [r for r in results if r[1] != 200][:3]
    assert get(h, "42", "phone", cred=None).json()["offset"] == 199
    # Every answer is consistent: moved means the offset asked for was stored.
    for o, _, body in results:
        assert body["offset"] >= o if not body["moved"] else body["offset"] == o


def test_new_device_resumes_from_users_cursor(herald_factory):
    """Device A follows user 42's notifications over SSE and acknowledges;
    a new device B reads the user's cursor and sees exactly what came after."""
    h = server(herald_factory)
    tok = token("42")
    notify(h, "42", 3, start=0)  # before A connects: A starts from the beginning
    a = SSE(h, "/v1/topics/user:42/sse?after=0", headers=auth(tok))
    assert a.status == 200
    seen = a.events(3)
    assert [json.loads(e["data"])["data"]["n"] for e in seen] == [0, 1, 2]
    notify(h, "42", 2, start=3)
    seen += a.events(2)
    a.close()
    last = int(seen[-1]["id"])
    epoch = read(h, "user:42").json()["epoch"]
    r = put(h, "42", "inbox", {"offset": last, "epoch": epoch}, cred=tok)
    assert r.status_code == 200 and r.json()["moved"] is True
    # An older device acks late: no effect.
    assert put(h, "42", "inbox", {"offset": 2, "epoch": epoch}, cred=tok).json()["moved"] is False
    notify(h, "42", 4, start=5)  # while no device is connected

    # Device B: a fresh install knows only the user and the consumer name.
    c = get(h, "42", "inbox", cred=tok).json()
    assert c["offset"] == last and c["lag"] == 4 and c["epoch"] == epoch
    r = requests.get(h.topic_url("user:42"), params={"after": c["offset"], "token": tok}, timeout=10)
    assert r.status_code == 200 and r.json()["epoch"] == c["epoch"]
    assert [e["data"]["n"] for e in r.json()["events"]] == [5, 6, 7, 8]
    # The same over SSE, from the cursor's offset (Last-Event-ID / ?after=).
    b = SSE(h, f"/v1/topics/user:42/sse?after={c['offset']}", headers=auth(tok))
    got = b.events(4)
    assert [json.loads(e["data"])["data"]["n"] for e in got] == [5, 6, 7, 8]
    assert [int(e["id"]) for e in got] == list(range(last + 1, last + 5))
    notify(h, "42", 1, start=9)
    assert json.loads(b.events(1)[0]["data"])["data"]["n"] == 9
    b.close()
    r = put(h, "42", "inbox", {"offset": int(got[-1]["id"]) + 1, "epoch": epoch}, cred=tok)
    assert r.json()["moved"] is True
    assert get(h, "42", "inbox", cred=tok).json()["lag"] == 0
