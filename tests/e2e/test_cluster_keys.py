"""The Redis engine's keys (docs/cluster.md "Data layout" and "Every key"):
every script call names KEYS of one Redis Cluster slot (a topic's keys
share the hash tag {t:NAME}; leases, their token counter and want keys and
the records fenced by them share {herald}), and every key the engine
writes is one of the documented table.

The test runs every script through a cluster of three nodes (publishes with
dedup and retention, reads, topic info, list and delete, pull groups over a
topic and a pattern, webhook subscriptions with their ownership leases and
fenced positions, user cursors) while a MONITOR connection records the
commands the primary ran; then it computes each EVALSHA's KEYS' slots
(CRC16, checked against a cluster-enabled redis-server's CLUSTER KEYSLOT).

A second test does the same for the presence and the registry (a join and
a leave across nodes, a user's listing and a topic's presence read through
another node, /v1/stats users_online, the sweep of a killed node, the
clean-up at a node's start) and the topic listing, and checks more: every
key a script's commands touch (MONITOR's "lua" lines, their keys by
COMMAND GETKEYS) is one of the KEYS the call named, and every plain
command's keys are of one slot."""
import asyncio
import json
import re
import socket
import threading

import requests

from conftest import CE_BATCH, CE_JSON, free_port, per_test_timeout, structured, wait_for
from redis_cluster import Redis, _read_reply, cluster_fixture, needs_redis, ready
from test_webhooks import SECRET1, receiver  # noqa: F401 (receiver: a fixture)
from wsclient import SECRET, connect, run

pytestmark = needs_redis

_timeout = per_test_timeout(110)

CONFIG = "[namespace keep]\nretention-max-count = 4\n"
ARGS = ["--webhook-allow-private", "on", "--webhook-time-scale", "0.01", "--webhook-timeout", "1s"]

# Every key the engine writes (docs/cluster.md "Every key"), as patterns.
LAYOUT = [
    r"\{t:[^}]+\}:(m|s|b|presence)",
    r"\{t:[^}]+\}:d:-?\d+",
    r"\{t:[^}]+\}:(g|gl|gd|ga):.+",
    r"herald:(topics|groups|online|nodes)",
    r"herald:(conns|node|nodekeys|sweepcur|swept):.+",
    r"\{herald\}:(lease|lease-want):.+",
    r"\{herald\}:lease-token",
    r"\{herald\}:(healed|heal-lease)",
    r"\{herald\}:(r|rk):.+",
]


def crc16(data):
    """CRC16-CCITT (XMODEM), the Redis Cluster key hash."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def slot(key):
    """The key's Redis Cluster slot (its hash tag's when it has one)."""
    i = key.find(b"{")
    if i >= 0:
        j = key.find(b"}", i + 1)
        if j > i + 1:
            key = key[i + 1:j]
    return crc16(key) % 16384


class KeyslotRedis(Redis):
    """A cluster-enabled redis-server, only to answer CLUSTER KEYSLOT."""

    def start(self, port=None):
        # Its own bus port (the default, port + 10000, may be taken or
        # past 65535).
        self.extra = ["--cluster-enabled", "yes", "--cluster-config-file", self.dir + "/nodes.conf",
                      "--cluster-port", str(free_port()), "--appendonly", "no"]
        return super().start(port)


_ESC = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"a": b"\a", b"b": b"\b", b'"': b'"', b"\\": b"\\"}


def monitor_args(line):
    """The quoted arguments of one MONITOR line (Redis's sdscatrepr text)."""
    out = []
    i = line.find(b"] ")
    if i < 0:
        return out
    i += 2
    while i < len(line):
        if line[i:i + 1] != b'"':
            i += 1
            continue
        i += 1
        arg = bytearray()
        while i < len(line) and line[i:i + 1] != b'"':
            c = line[i:i + 1]
            if c == b"\\":
                nxt = line[i + 1:i + 2]
                if nxt == b"x":
                    arg += bytes([int(line[i + 2:i + 4], 16)])
                    i += 4
                    continue
                arg += _ESC.get(nxt, nxt)
                i += 2
                continue
            arg += c
            i += 1
        out.append(bytes(arg))
        i += 1
    return out


class Monitor:
    """A MONITOR connection to port, reading on a thread until stop()."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.sendall(b"*1\r\n$7\r\nMONITOR\r\n")
        self.f = self.sock.makefile("rb")
        assert self.f.readline() == b"+OK\r\n"
        self.lines = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            for line in self.f:
                self.lines.append(line.rstrip(b"\r\n"))
        except (OSError, ValueError):
            pass

    def stop(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.thread.join(10)
        self.f.close()
        self.sock.close()

    def calls(self):
        """[(command, [keys])] of every EVALSHA and EVAL a client sent."""
        out = []
        for line in self.lines:
            if b" lua] " in line[:80]:
                continue  # a command a script ran
            args = monitor_args(line[1:] if line.startswith(b"+") else line)
            if len(args) >= 3 and args[0].upper() in (b"EVALSHA", b"EVAL"):
                n = int(args[2])
                out.append((args[0].upper(), args[1], args[3:3 + n]))
        return out

    def groups(self):
        """[(args of a command a client sent, [args of each command its
        script ran])], in order (a script's commands follow its call's line:
        scripts run one at a time)."""
        out = []
        for line in self.lines:
            lua = b" lua] " in line[:80]
            args = monitor_args(line[1:] if line.startswith(b"+") else line)
            if not args:
                continue
            if lua:
                if out:
                    out[-1][1].append(args)
            else:
                out.append((args, []))
        return out


def getkeys(port, commands):
    """COMMAND GETKEYS of each command (a list of arguments), pipelined on
    one connection: [[keys]] ([] for a command without keys)."""
    out = []
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        f = s.makefile("rb")
        for i in range(0, len(commands), 500):
            chunk = commands[i:i + 500]
            buf = []
            for args in chunk:
                full = [b"COMMAND", b"GETKEYS", *args]
                buf.append(b"*%d\r\n" % len(full))
                buf += [b"$%d\r\n%s\r\n" % (len(a), a) for a in full]
            s.sendall(b"".join(buf))
            for _ in chunk:
                try:
                    out.append(_read_reply(f))
                except RuntimeError:  # no key arguments
                    out.append([])
    return out


cluster = cluster_fixture(args=ARGS, config=CONFIG)
ROOM = "room:1"
pcluster = cluster_fixture(args=["--jwt-secret", SECRET], config="[namespace room]\njoin-leave = on\n")


def test_the_slot_function_is_redis_clusters(tmp_path):
    assert crc16(b"123456789") == 0x31C3
    r = KeyslotRedis(tmp_path / "keyslot").start()
    try:
        for key in (b"foo", b"{t:orders}:m", b"{t:orders}:d:-3", b"{herald}:lease:webhook:x",
                    b"herald:topics", b"{}:x", b"a{}b{c}", b"{t:a}b}:s", b"\x00\xffz{q"):
            assert r.cmd("CLUSTER", "KEYSLOT", key) == slot(key), key
    finally:
        r.stop()


def gurl(h, topic, group):
    return f"{h.url}/v1/topics/{topic}/groups/{group}"


def exercise(cluster, receiver):
    """Runs every script of the engine at least once."""
    a, b, c = cluster.nodes
    s = requests.post(a.url + "/v1/subscriptions", timeout=10,
                      json={"topic": "hooks", "url": receiver.url + "/h", "secret": SECRET1}).json()
    for i in range(6):
        r = (a, b, c)[i % 3].publish("hooks", json.dumps(structured(f"h{i}")), headers=CE_JSON)
        assert r.status_code == 201, r.text
    for h in cluster.nodes:
        r = h.publish("keep:t", json.dumps([structured(f"k{i}{h.port}") for i in range(3)]),
                      headers=CE_BATCH)
        assert r.status_code == 200, r.text
    r = a.publish("keep:t", json.dumps(structured("k0%d" % a.port)), headers=CE_JSON)
    assert r.status_code == 200 and r.json()["duplicate"], r.text
    assert len(b.read_all("keep:t")) >= 4
    info = c.session.get(c.topic_url("keep:t", "")).json()
    assert info["count"] >= 4
    assert requests.get(b.url + "/v1/topics", timeout=10).status_code == 200
    r = a.publish("gone", json.dumps(structured("g")), headers=CE_JSON)
    assert r.status_code == 201
    assert requests.delete(c.topic_url("gone", ""), timeout=10).status_code == 200
    for topic in ("jobs", "orders.*"):
        r = requests.put(gurl(b, topic, "w"), json={"ack_wait_ms": 5000}, timeout=10)
        assert r.status_code in (200, 201), r.text
    assert a.publish("jobs", json.dumps(structured("j")), headers=CE_JSON).status_code == 201
    assert a.publish("orders.eu", json.dumps(structured("o")), headers=CE_JSON).status_code == 201
    r = requests.post(gurl(c, "jobs", "w") + "/fetch?max=5", timeout=10)
    assert r.status_code == 200, r.text
    got = r.json()["events"]
    assert got
    r = requests.post(gurl(c, "jobs", "w") + "/ack", json={"offsets": [e["offset"] for e in got]}, timeout=10)
    assert r.status_code in (200, 204), r.text
    r = requests.post(gurl(b, "orders.*", "w") + "/fetch?max=5", timeout=10)
    assert r.status_code == 200, r.text
    r = requests.post(f"{b.url}/v1/users/42/cursors/tab", json={"offset": 3}, timeout=10)
    assert r.status_code == 200, r.text
    # The webhook delivered, its position written under its lease.
    wait_for(lambda: len(receiver.ok("/h")) >= 6, 30, interval=0.05, what="the webhook's deliveries")
    wait_for(lambda: any(requests.get(f"{h.url}/v1/subscriptions/{s['id']}", timeout=5).json().get("position") == 6
                         for h in cluster.nodes), 30, interval=0.05, what="the webhook's position")


def test_every_script_call_names_keys_of_one_slot(cluster, receiver):
    mon = Monitor(cluster.primary.port)
    try:
        exercise(cluster, receiver)
    finally:
        mon.stop()
    calls = mon.calls()
    assert calls, "MONITOR saw no script call"
    named = set()
    for cmd, script, keys in calls:
        slots = {slot(k) for k in keys}
        assert len(slots) <= 1, (cmd, script[:60], keys)
        named.update(k.split(b":")[0] for k in keys if k.startswith(b"{herald}"))
    # The leases, their token counter and the fenced records ran.
    assert b"{herald}" in named
    assert any(b"{herald}:lease-token" in keys for _, _, keys in calls)
    assert any(any(k.startswith(b"{herald}:r:") for k in keys) for _, _, keys in calls)


def test_every_key_is_in_the_documented_layout(cluster, receiver):
    exercise(cluster, receiver)
    keys, cursor = [], b"0"
    while True:
        cursor, page = cluster.primary.cmd("SCAN", cursor, "COUNT", 1000)
        keys += page
        if cursor == b"0":
            break
    assert len(keys) > 10
    odd = [k for k in keys if not any(re.fullmatch(p.encode(), k, re.S) for p in LAYOUT)]
    assert odd == []
    # The deleted topic left only its dedup buckets (they expire); a
    # retained one keeps its boundaries list.
    assert [k for k in keys if k.startswith(b"{t:gone}") and not k.startswith(b"{t:gone}:d:")] == []
    assert b"{t:keep:t}:b" in keys


def node_name(h):
    """The default --node-name with the redis engine: host name and port."""
    return f"{socket.gethostname()}:{h.port}"


def get_json(url):
    r = requests.get(url, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def presence_exercise(cluster):
    """Runs every presence and registry call, the sweep and the clean-up at
    a node's start, and the topic listing."""
    a, b, c = cluster.nodes
    r = cluster.primary
    presence = a.topic_url(ROOM, "/presence")

    async def go():
        watcher, rw = await connect(a, sub="watcher")
        assert "subscribe" in await watcher.call({"subscribe": {"channel": ROOM, "join_leave": True}})
        clients = []
        try:
            for i, h in enumerate((b, c)):
                cl, rc = await connect(h, sub=f"u{i}")
                clients.append(cl)
                assert "subscribe" in await cl.call({"subscribe": {"channel": ROOM}})
                p = await watcher.push(timeout=10)
                assert p["join"]["info"]["client"] == rc["client"], p
            # Reads through A name B's and C's heartbeats.
            wait_for(lambda: len(get_json(presence)["clients"]) == 3, 10, what="three clients listed")
            assert len(get_json(f"{a.url}/v1/users/u1/connections")["connections"]) == 1
            wait_for(lambda: get_json(a.url + "/v1/stats")["users_online"] == 3, 10, what="users_online")
            # A leave across nodes.
            await clients[0].call({"unsubscribe": {"channel": ROOM}})
            assert "leave" in await watcher.push(timeout=10)
            # C dies: its entries are swept, its client announced as left.
            c.kill9()
            p = await watcher.push(timeout=15)
            assert "leave" in p, p
            wait_for(lambda: r.cmd("HEXISTS", "herald:nodes", node_name(c)) == 0, 15,
                     what="C swept")
            # C's name again, with entries a previous run left: the clean-up
            # at its start removes them.
            pkey = "{t:%s}:presence" % ROOM
            r.cmd("HSET", pkey, node_name(c) + "\nold", "{}")
            r.cmd("SADD", "herald:nodekeys:" + node_name(c), pkey)
            c.start(c.port)
            wait_for(lambda: ready(c), 15, what="C ready")
            wait_for(lambda: r.cmd("HEXISTS", pkey, node_name(c) + "\nold") == 0, 10,
                     what="the clean-up at C's start")
            assert get_json(c.url + "/v1/stats")["users_online"] == 2
            for h in (a, b):
                assert h.publish("t%d" % h.port, json.dumps(structured("x")), headers=CE_JSON).status_code == 201
            assert len(get_json(b.url + "/v1/topics?limit=10")["topics"]) == 2
        finally:
            for x in (*clients, watcher):
                try:
                    await x.close()
                except Exception:
                    pass
            await asyncio.sleep(0)

    run(go())


def test_presence_and_listing_calls_touch_only_the_keys_they_name(pcluster):
    mon = Monitor(pcluster.primary.port)
    try:
        presence_exercise(pcluster)
    finally:
        mon.stop()
    groups = mon.groups()
    commands = [args for args, _ in groups] + [a for _, ran in groups for a in ran]
    keys = getkeys(pcluster.primary.port, commands)
    own, ran_keys = keys[:len(groups)], iter(keys[len(groups):])
    scripts = 0
    kinds = set()
    for (args, ran), named in zip(groups, own):
        # Every command's keys in one slot (an MGET of several nodes'
        # heartbeats is not).
        assert len({slot(k) for k in named}) <= 1, (args[:1], named)
        if args[0].upper() in (b"EVAL", b"EVALSHA"):
            scripts += 1
        for a in ran:
            kinds.add(a[0].upper())
            touched = next(ran_keys)
            # A script touches only keys it was given.
            odd = [k for k in touched if k not in named]
            assert odd == [], (args[0], args[1][:80], named, a[:3])
    assert scripts
    # The sweep (HSCAN, HDEL, PUBLISH of the leave) and the topic state ran.
    assert {b"HSCAN", b"HDEL", b"PUBLISH", b"HMGET"} <= kinds, kinds
