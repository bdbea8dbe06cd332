"""A pull-group consumer as its own process, for test_groups.py.

    group_consumer.py URL TOPIC GROUP MODE [TOTAL] [WORK_MS]

MODE "work": prints "ready", waits for a line on stdin, then fetches
(max=5, wait=1) and acknowledges each batch by its offsets until the
group's position reaches TOTAL, sleeping WORK_MS per batch (the work);
prints one JSON line per ack answer: {"offsets":[...],"acked":k,"ignored":[...]}.
MODE "crash": fetches one batch of 7, prints its offsets as JSON and then
sleeps without acknowledging, until the test kills it.
Only the standard library, so that it starts fast."""
import json
import sys
import time
import urllib.request


def post(url, body=None):
    data = json.dumps(body or {}).encode()
    req = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def main():
    base, topic, group, mode = sys.argv[1:5]
    g = f"{base}/v1/topics/{topic}/groups/{group}"
    if mode == "crash":
        evs = post(g + "/fetch?max=7")["events"]
        print(json.dumps([e["offset"] for e in evs]), flush=True)
        time.sleep(3600)
        return
    total, work_ms = int(sys.argv[5]), int(sys.argv[6])
    print("ready", flush=True)
    sys.stdin.readline()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        evs = post(g + "/fetch?max=5&wait=1")["events"]
        if not evs:
            with urllib.request.urlopen(g, timeout=30) as r:
                if json.loads(r.read())["position"] >= total:
                    return
            continue
        time.sleep(work_ms / 1000)
        offs = [e["offset"] for e in evs]
        ans = post(g + "/ack", {"offsets": offs})
        print(json.dumps({"offsets": offs, "acked": ans["acked"], "ignored": ans["ignored"]}), flush=True)
    sys.exit("gave up after 120 s")


if __name__ == "__main__":
    main()
