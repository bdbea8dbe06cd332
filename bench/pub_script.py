#!/usr/bin/python3
"""Microbenchmark of the Redis engine's publish script (pub_lua) alone.

Compares two versions of src/engine/redis_scripts.c (e.g. main's copy and
the work tree's) on one Redis with no AOF: the script's own CPU, without
herald, the fsync or WAIT, so that a change to the script can be measured
on a loaded machine (bench/cluster.sh's rows vary by 2x there). Each call
carries N new events of one topic (like a publish batch); the two texts
alternate in ROUNDS rounds of CALLS pipelined calls, and the minimum of
Redis's usec_per_call (INFO commandstats) per text is the figure.

Usage: bench/pub_script.py PORT OLD_SCRIPTS_C NEW_SCRIPTS_C
          [--window MS] [--rounds R] [--calls C] [--events N]
(start a throwaway `redis-server --port PORT --save '' --appendonly no`
first; the script writes keys {t:old*} / {t:new*} and resets its stats).
"""
import argparse
import codecs
import re
import socket
import time


def lua(path, name):
    s = open(path).read()
    i = s.index("static const char %s[] =" % name)
    j = s.index(";\n", i)
    lits = re.findall(r'"((?:[^"\\]|\\.)*)"', s[i:j])
    return codecs.decode("".join(lits), "unicode_escape")


def enc(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.f = self.s.makefile("rb")

    def send(self, *cmds):
        self.s.sendall(b"".join(enc(c) for c in cmds))

    def read(self):
        line = self.f.readline()
        t, v = line[:1], line[1:-2]
        if t == b"-":
            raise RuntimeError(v.decode())
        if t == b"+":
            return v
        if t == b":":
            return int(v)
        if t == b"$":
            n = int(v)
            return None if n < 0 else self.f.read(n + 2)[:-2]
        if t == b"*":
            return [self.read() for _ in range(int(v))]
        raise RuntimeError("bad reply %r" % line)

    def call(self, *a):
        self.send(a)
        return self.read()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--window", type=int, default=600000)
    ap.add_argument("--rounds", type=int, default=25)
    ap.add_argument("--calls", type=int, default=40)
    ap.add_argument("--events", type=int, default=128)
    o = ap.parse_args()
    r = Conn(o.port)
    sha = {k: r.call("SCRIPT", "LOAD", lua(p, "pub_lua")).decode()
           for k, p in (("old", o.old), ("new", o.new))}
    js = '{"id":"x","source":"bench","type":"t","data":{"n":12345,"text":"hello world"}}'
    ctr = 0
    res = {"old": [], "new": []}
    for _ in range(o.rounds):
        for k in ("old", "new"):
            r.call("CONFIG", "RESETSTAT")
            cmds = []
            for c in range(o.calls):
                topic = "%s%d" % (k, c % 8)
                now = int(time.time() * 1000)
                b = now // o.window if o.window else 0
                keys = ["{t:%s}:m" % topic, "{t:%s}:s" % topic, "bench:topics"] + [
                    "{t:%s}:d:%d" % (topic, b - 2 + i) for i in range(4)]
                recs, pairs = [], []
                for _ in range(o.events):
                    ctr += 1
                    rec = "%d 0 %d\n%s" % (now, len(js), js)
                    recs.append(rec)
                    pairs += ["bench\0id%d" % ctr, str(len(rec))]
                argv = [topic, str(o.window), "100000", "E" * 16, "1", "0", "bench:ch", str(b),
                        str(now), "".join(recs)] + pairs
                cmds.append(["EVALSHA", sha[k], str(len(keys))] + keys + argv)
            r.send(*cmds)
            for _ in cmds:
                r.read()
            info = r.call("INFO", "commandstats").decode()
            m = re.search(r"cmdstat_evalsha:calls=\d+,usec=\d+,usec_per_call=([\d.]+)", info)
            res[k].append(float(m.group(1)))
    for k in ("old", "new"):
        best = min(res[k])
        print("%s: %.1f us per call of %d events (min of %d rounds), %.2f us per event"
              % (k, best, o.events, o.rounds, best / o.events))


if __name__ == "__main__":
    main()
