"""Real Redis servers (Debian's redis-server) and herald nodes on the Redis
engine, for the cluster tests (docs/cluster.md). Every server gets a free
127.0.0.1 port and its own directory; every wait is a bounded poll."""
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest
import requests

from conftest import Herald, free_port, stop_process, wait_for

REDIS_SERVER = shutil.which("redis-server")

# A cluster test module's `pytestmark = needs_redis`.
needs_redis = pytest.mark.skipif(REDIS_SERVER is None,
                                 reason="redis-server is not installed (Debian: redis-server)")


def resp_command(port, *args, timeout=5.0):
    """Sends one command over RESP and returns the decoded reply (bytes,
    int, list, None; an error reply raises RuntimeError)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        s.sendall(out)
        f = s.makefile("rb")
        return _read_reply(f)


def _read_reply(f):
    line = f.readline()
    if not line:
        raise ConnectionError("redis closed the connection")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2]
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_reply(f) for _ in range(n)]
    raise RuntimeError(f"bad reply {line!r}")


def ping(port):
    """Whether a Redis server or Sentinel answers PING on port."""
    try:
        return resp_command(port, "PING", timeout=1) == b"PONG"
    except (OSError, RuntimeError):
        return False


class Redis:
    """One redis-server: a primary, or a replica of `replicaof` (a Redis)."""

    def __init__(self, directory, replicaof=None, extra=()):
        self.dir = str(directory)
        os.makedirs(self.dir, exist_ok=True)
        self.port = None
        self.replicaof = replicaof
        self.extra = list(extra)
        self.proc = None
        self.log_path = self.dir + ".log"

    def start(self, port=None):
        self.port = port or self.port or free_port()
        cmd = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "yes", "--appendfsync", "always", "--dir", self.dir,
               "--logfile", self.log_path, *self.extra]
        if self.replicaof:
            cmd += ["--replicaof", "127.0.0.1", str(self.replicaof.port)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.ping, 30, what=f"redis on {self.port}")  # loads its AOF first
        return self

    def ping(self):
        return ping(self.port)

    def cmd(self, *args):
        return resp_command(self.port, *args)

    def info(self, section):
        text = self.cmd("INFO", section).decode()
        return dict(line.split(":", 1) for line in text.split("\r\n") if ":" in line)

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def stop(self):
        if self.proc:
            stop_process(self.proc)
        self.proc = None


def wait_replicated(primary, replica, timeout=15):
    """Until the replica's link is up and the primary counts it."""
    def ok():
        try:
            return (replica.info("replication").get("master_link_status") == "up"
                    and int(primary.info("replication").get("connected_slaves", "0")) >= 1)
        except (OSError, RuntimeError):
            return False
    wait_for(ok, timeout, interval=0.05, what="the replica to sync")


def ready(h):
    try:
        return requests.get(h.url + "/readyz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


class Cluster:
    """A primary, one replica and n herald nodes on --engine redis (each
    with args, its config file text and env added to the environment)."""

    def __init__(self, tmp_path, nodes=3, args=(), durability="replicated", config=None, env=None):
        self.tmp = tmp_path
        self.config = config
        self.env = env
        self.primary = Redis(tmp_path / "redis-primary")
        self.replica = Redis(tmp_path / "redis-replica", replicaof=self.primary)
        self.args = list(args)
        self.durability = durability
        self.n = nodes
        self.nodes = []

    def start_redis(self):
        self.primary.start()
        self.replica.start()
        wait_replicated(self.primary, self.replica)

    def start(self):
        self.start_redis()
        for i in range(self.n):
            self.nodes.append(self.node(f"node{i}"))
        for h in self.nodes:
            wait_for(lambda: ready(h), 15, what=f"{h.url}/readyz")
        return self

    def node_args(self):
        return ["--engine", "redis", "--redis-url", f"redis://127.0.0.1:{self.primary.port}",
                "--redis-durability", self.durability, "--redis-wait-timeout", "1s",
                *self.args]

    def node(self, name):
        h = Herald(self.tmp / name, args=self.node_args(), env=self.env, config=self.config)
        return h.start()

    def stop(self):
        """Stops everything, even when a node's stop fails (raised after)."""
        errors = []
        for h in self.nodes:
            if h.proc:
                try:
                    h.stop()
                except AssertionError as e:
                    errors.append(e)
        self.replica.stop()
        self.primary.stop()
        if errors:
            raise errors[0]


class Sentinel:
    """One `redis-server --sentinel` watching `primary` under `name`."""

    def __init__(self, directory, primary, name="herald", quorum=2):
        self.dir = str(directory)
        os.makedirs(self.dir, exist_ok=True)
        self.primary = primary
        self.name = name
        self.quorum = quorum
        self.port = None
        self.proc = None

    def start(self):
        self.port = self.port or free_port()
        conf = os.path.join(self.dir, "sentinel.conf")
        with open(conf, "w") as f:
            f.write(f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
                    f"logfile {self.dir}.log\n"
                    f"sentinel monitor {self.name} 127.0.0.1 {self.primary.port} {self.quorum}\n"
                    f"sentinel down-after-milliseconds {self.name} 1000\n"
                    f"sentinel failover-timeout {self.name} 4000\n"
                    f"sentinel parallel-syncs {self.name} 1\n")
        self.proc = subprocess.Popen([REDIS_SERVER, conf, "--sentinel"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: self.ping(), 10, what=f"sentinel on {self.port}")
        return self

    def ping(self):
        return ping(self.port)

    def primary_port(self):
        r = resp_command(self.port, "SENTINEL", "get-master-addr-by-name", self.name)
        return int(r[1]) if r else None

    def knows(self, replicas, sentinels):
        def count(*args):
            try:
                return len(resp_command(self.port, "SENTINEL", *args, self.name) or [])
            except (OSError, RuntimeError):
                return -1
        return count("replicas") >= replicas and count("sentinels") >= sentinels

    def stop(self):
        if self.proc:
            stop_process(self.proc)
        self.proc = None


class SentinelCluster(Cluster):
    """Cluster with three Sentinels; the nodes find the primary through them."""

    def __init__(self, tmp_path, **kw):
        super().__init__(tmp_path, **kw)
        self.sentinels = [Sentinel(tmp_path / f"sentinel{i}", self.primary) for i in range(3)]

    def start_redis(self):
        super().start_redis()
        for s in self.sentinels:
            s.start()
        for s in self.sentinels:
            wait_for(lambda: s.knows(1, 2), 20, interval=0.1, what="sentinels to know each other")

    def node_args(self):
        addrs = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return ["--engine", "redis", "--redis-sentinel", addrs, "--redis-master-name", "herald",
                "--redis-durability", self.durability, "--redis-wait-timeout", "1s",
                *self.args]

    def stop(self):
        try:
            super().stop()
        finally:
            for s in self.sentinels:
                s.stop()


def started(c):
    """Starts cluster c, yields it and stops it (also when start fails):
    the body of a test module's cluster fixture, `yield from started(…)`."""
    try:
        c.start()
        yield c
    finally:
        c.stop()


def cluster_fixture(cls=None, params=None, **kw):
    """A test module's cluster fixture, `cluster = cluster_fixture(args=ARGS)`:
    for each test, cls (Cluster) made with kw (args, config, env, nodes,
    durability), started, and stopped after. With params (a list of dicts
    of more kw), a parametrized fixture: each test runs once per dict, its
    id the dict's values (`params=[{"durability": "primary"}, …]`)."""
    if params is None:
        @pytest.fixture
        def fixture(tmp_path):
            yield from started((cls or Cluster)(tmp_path, **kw))
        return fixture

    @pytest.fixture(params=params, ids=lambda p: "-".join(str(v) for v in p.values()))
    def parametrized(tmp_path, request):
        yield from started((cls or Cluster)(tmp_path, **kw, **request.param))
    return parametrized
