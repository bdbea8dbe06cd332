"""The README's first promise: publish a JSON body with curl and read it back."""
import subprocess

from conftest import BIN


def test_curl_publish_gets_offset_1(herald):
    out = subprocess.run(
        ["curl", "-s", "-H", "Content-Type: application/json", "-d", '{"a":1}',
         herald.url + "/v1/topics/demo/events"],
        capture_output=True, text=True, timeout=30, check=True).stdout
    import json
    body = json.loads(out)
    assert body["topic"] == "demo"
    assert body["offset"] == 1
    assert body["id"]

    r = herald.read("demo")
    assert r.status_code == 200
    ev = r.json()["events"][0]
    assert ev["data"] == {"a": 1}
    assert ev["topic"] == "demo" and ev["offset"] == 1
    assert ev["specversion"] == "1.0" and ev["type"] and ev["source"] and ev["time"]


def test_version_and_help():
    assert subprocess.run([BIN, "version"], capture_output=True, text=True).stdout.startswith("herald ")
    out = subprocess.run([BIN, "--help"], capture_output=True, text=True).stdout
    assert "--data-dir" in out and "HERALD_LISTEN" in out


def test_cli_publish_and_read(herald):
    env_server = ["--server", herald.url]
    p = subprocess.run([BIN, "publish", "cli", '{"n":7}', *env_server], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert '"offset":1' in p.stdout
    p = subprocess.run([BIN, "publish", "cli", "hello", "--type", "t.x", "--source", "/s", "--id", "e1", *env_server],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    r = subprocess.run([BIN, "read", "cli", "--after", "0", *env_server], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    import json
    evs = json.loads(r.stdout)["events"]
    assert [e["offset"] for e in evs] == [1, 2]
    assert evs[1]["type"] == "t.x" and evs[1]["id"] == "e1" and evs[1]["data"] == "hello"
    bad = subprocess.run([BIN, "publish", "bad topic!", "x", *env_server], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 1 and "topic" in bad.stderr
