"""Load driver of bench/webhooks.sh (Python standard library only, one
keep-alive connection to herald per role).

  webhook_load.py publish PORT TOPIC N
      publishes N structured CloudEvents (about 200 bytes each) in batches
      of 100; fails unless every one is stored.
  webhook_load.py drain PORT TOPIC N URL ORDERED CONCURRENCY PIDS
      creates a subscription of TOPIC from the oldest event and polls
      herald's /metrics every 10 ms until webhook_deliveries_total has grown
      by N; prints one line of key=value: deliveries_per_s (N over the time
      from the creation to the poll that saw the last delivery), seconds,
      failures (webhook_attempt_failures_total growth) and the CPU seconds
      of each comma-separated group of PIDS ("herald_pid nginx_pids").
  webhook_load.py live PORT TOPIC URL ORDERED CONCURRENCY RATE SECONDS ARRIVALS PIDS
      creates a subscription from the latest event, publishes single events
      at RATE a second for SECONDS (each stamped with its send time in data),
      waits until all are delivered, then matches the receiver's arrival
      log (ARRIVALS: lines "unix_seconds.millis offset attempt") to the send
      times by offset: deliveries_per_s (first to last arrival), latency
      p50/p99 from the start of the publish request to the arrival
      (millisecond resolution: nginx's $msec), publish rate reached.

Every wait is bounded (DEADLINE seconds); any failure exits non-zero.
"""
import http.client
import json
import sys
import time

DEADLINE = 120.0
BATCH = 100
PAYLOAD = "0123456789abcdef" * 4


def conn(port):
    return http.client.HTTPConnection("127.0.0.1", port, timeout=30)


def request(c, method, path, body=None, headers=None, expect=(200, 201, 204)):
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    if r.status not in expect:
        sys.exit(f"webhook_load: {method} {path}: {r.status} {data[:300]!r}")
    return json.loads(data) if data else None


def event(i, prefix, **data):
    return {"specversion": "1.0", "id": f"{prefix}-{i}", "source": "/bench", "type": "bench.event",
            "data": {"n": i, "payload": PAYLOAD, **data}}


def publish(port, topic, n):
    c = conn(port)
    prefix = f"p{time.time_ns()}"
    for start in range(0, n, BATCH):
        batch = [event(i, prefix) for i in range(start, min(n, start + BATCH))]
        r = request(c, "POST", f"/v1/topics/{topic}/events", json.dumps(batch),
                    {"Content-Type": "application/cloudevents-batch+json"}, expect=(200,))
        if r["failed_count"]:
            sys.exit(f"webhook_load: {r['failed_count']} events of a batch failed")


def metric(c, name):
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    sys.exit(f"webhook_load: no {name} in /metrics")


def cpu_seconds(pids):
    """User + system CPU seconds of a comma-separated list of pids."""
    total = 0
    for pid in filter(None, pids.split(",")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / 100.0


def subscribe(c, topic, url, ordered, concurrency, start):
    body = {"topic": topic, "url": url, "ordered": ordered == "true", "start": start}
    if ordered != "true":
        body["concurrency"] = int(concurrency)
    return request(c, "POST", "/v1/subscriptions", json.dumps(body),
                   {"Content-Type": "application/json"}, expect=(201,))["id"]


def wait_delivered(c, base, n):
    deadline = time.monotonic() + DEADLINE
    while True:
        done = metric(c, "herald_webhook_deliveries_total") - base
        if done >= n:
            return time.monotonic()
        if time.monotonic() > deadline:
            sys.exit(f"webhook_load: only {done:.0f} of {n} delivered in {DEADLINE:.0f} s")
        time.sleep(0.01)


def drain(port, topic, n, url, ordered, concurrency, pids):
    groups = pids.split()
    c = conn(port)
    base = metric(c, "herald_webhook_deliveries_total")
    fail0 = metric(c, "herald_webhook_attempt_failures_total")
    cpu0 = [cpu_seconds(g) for g in groups]
    t0 = time.monotonic()
    subscribe(c, topic, url, ordered, concurrency, "oldest")
    t1 = wait_delivered(c, base, n)
    cpu = [cpu_seconds(g) - a for g, a in zip(groups, cpu0)]
    fails = metric(c, "herald_webhook_attempt_failures_total") - fail0
    secs = t1 - t0
    print(f"deliveries_per_s={n / secs:.0f} seconds={secs:.2f} failures={fails:.0f} "
          f"herald_cpu_s={cpu[0]:.2f} receiver_cpu_s={cpu[1]:.2f}")


def pct(xs, p):
    return xs[min(len(xs) - 1, int(p / 100.0 * len(xs)))]


def live(port, topic, url, ordered, concurrency, rate, seconds, arrivals, pids):
    groups = pids.split()
    c = conn(port)
    base = metric(c, "herald_webhook_deliveries_total")
    fail0 = metric(c, "herald_webhook_attempt_failures_total")
    subscribe(c, topic, url, ordered, concurrency, "latest")
    cpu0 = [cpu_seconds(g) for g in groups]
    n = int(rate * seconds)
    sent = {}
    prefix = f"l{time.time_ns()}"
    start = time.monotonic()
    for i in range(n):
        due = start + i / rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        t = time.time()
        r = request(c, "POST", f"/v1/topics/{topic}/events", json.dumps(event(i, prefix, sent=t)),
                    {"Content-Type": "application/cloudevents+json"}, expect=(201,))
        sent[r["offset"]] = t
    published = time.monotonic() - start
    wait_delivered(c, base, n)
    cpu = [cpu_seconds(g) - a for g, a in zip(groups, cpu0)]
    fails = metric(c, "herald_webhook_attempt_failures_total") - fail0
    # nginx writes the log line when the request ends; give it a moment.
    deadline = time.monotonic() + 10
    while True:
        got = {}
        with open(arrivals) as f:
            for line in f:
                ts, off, attempt = line.split()
                if off.isdigit() and int(off) in sent and attempt == "1":
                    got[int(off)] = float(ts)
        if len(got) >= n or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if len(got) < n:
        sys.exit(f"webhook_load: {len(got)} of {n} arrivals logged")
    lat = sorted((got[o] - sent[o]) * 1000 for o in sent)
    span = max(got.values()) - min(got.values())
    print(f"deliveries_per_s={(n - 1) / span if span > 0 else 0:.0f} published_per_s={n / published:.0f} "
          f"p50_ms={pct(lat, 50):.1f} p99_ms={pct(lat, 99):.1f} max_ms={lat[-1]:.1f} failures={fails:.0f} "
          f"herald_cpu_s={cpu[0]:.2f} receiver_cpu_s={cpu[1]:.2f}")


def main(a):
    if len(a) == 4 and a[0] == "publish":
        publish(int(a[1]), a[2], int(a[3]))
    elif len(a) == 8 and a[0] == "drain":
        drain(int(a[1]), a[2], int(a[3]), a[4], a[5], a[6], a[7])
    elif len(a) == 10 and a[0] == "live":
        live(int(a[1]), a[2], a[3], a[4], a[5], float(a[6]), float(a[7]), a[8], a[9])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
