"""Configuration as a user meets it (docs/config.md): the config file, the
environment and flags with their precedence, namespace sections, errors
that stop `herald serve`, the generated docs; and the `herald publish` /
`herald read` client commands against a real server."""
import base64
import json
import os
import subprocess

import pytest
import requests

from conftest import BIN, CE_JSON, ROOT, free_port, per_test_timeout, structured

_timeout = per_test_timeout(40)


def status_for_body(h, size):
    """The status of a raw publish of `size` bytes (413 above --body-max)."""
    try:
        r = requests.post(h.topic_url("size"), data=b"x" * size,
                          headers={"Content-Type": "application/octet-stream"}, timeout=10)
    except requests.ConnectionError:
        return "closed"
    return r.status_code


def test_body_max_precedence_config_then_env_then_flag(herald_factory):
    conf = "# limits\nbody-max = 2k\n"
    h = herald_factory(config=conf, name="file")
    assert status_for_body(h, 2048) == 201
    assert status_for_body(h, 3000) == 413

    h = herald_factory(config=conf, env={"HERALD_BODY_MAX": "4k"}, name="env")
    assert status_for_body(h, 3000) == 201
    assert status_for_body(h, 5000) == 413

    h = herald_factory(config=conf, env={"HERALD_BODY_MAX": "4k"}, args=["--body-max", "8k"], name="flag")
    assert status_for_body(h, 5000) == 201
    assert status_for_body(h, 9000) == 413
    r = requests.post(h.topic_url("size"), data=b"x" * 9000, timeout=10)
    assert r.json()["error"]["code"] == "payload_too_large"


def test_config_file_named_by_herald_config_env(herald_factory, tmp_path):
    conf = tmp_path / "via-env.conf"
    conf.write_text("body-max = 1k\n")
    h = herald_factory(env={"HERALD_CONFIG": str(conf)})
    assert status_for_body(h, 1024) == 201
    assert status_for_body(h, 2000) == 413


def test_namespaces_inherit_the_final_top_level_defaults(herald_factory):
    conf = ("retention-max-count = 6\n\n"
            "[namespace keep2]\nretention-max-count = 2\n\n"
            "[namespace quiet]\nhistory = off\n")
    # The environment overrides the file's top level; a namespace's own
    # setting wins over both for its topics; a namespace without that
    # option inherits the final top-level value.
    h = herald_factory(config=conf, env={"HERALD_RETENTION_MAX_COUNT": "3"})
    # The namespace is the part before the first ':' ("keep2" alone is not in it).
    topics = ("keep2:a", "keep2:a:b", "other:a", "quiet:a", "plain", "keep2")
    for topic in topics:
        for i in range(8):
            h.publish(topic, json.dumps(structured(f"e{i}")), headers=CE_JSON)
    kept = {t: [e["offset"] for e in h.read(t).json()["events"]] for t in topics}
    assert kept == {"keep2:a": [7, 8], "keep2:a:b": [7, 8], "other:a": [6, 7, 8], "quiet:a": [],
                    "plain": [6, 7, 8], "keep2": [6, 7, 8]}

    # A flag beats the environment.
    h = herald_factory(config=conf, env={"HERALD_RETENTION_MAX_COUNT": "3"},
                       args=["--retention-max-count", "4"], name="flag")
    for topic in ("keep2:a", "other:a"):
        for i in range(8):
            h.publish(topic, json.dumps(structured(f"e{i}")), headers=CE_JSON)
    assert [e["offset"] for e in h.read("other:a").json()["events"]] == [5, 6, 7, 8]
    assert [e["offset"] for e in h.read("keep2:a").json()["events"]] == [7, 8]


def serve_fails(tmp_path, args=(), env=None, config=None):
    cmd = [BIN, "serve", "--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(tmp_path / "data"), *args]
    if config is not None:
        path = tmp_path / "bad.conf"
        path.write_text(config)
        cmd += ["--config", str(path)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=20, env=dict(os.environ, **(env or {})))
    return p


@pytest.mark.parametrize("args,env,config,expect", [
    (["--bogus", "1"], None, None, ["--bogus", "unknown option 'bogus'"]),
    (["--body-max", "10"], None, None, ["--body-max", "between 1k and 64m", "'10'"]),
    (["--body-max", "1t"], None, None, ["--body-max"]),
    (["--dedup-window", "1x"], None, None, ["--dedup-window", "'1x' is not a duration"]),
    (["--sync", "sometimes"], None, None, ["--sync", "full|normal|off"]),
    (["--listen", "nowhere"], None, None, ["--listen", "HOST:PORT", "nowhere"]),
    (["--ring-events", "-1"], None, None, ["--ring-events"]),
    (["--header-timeout", "1ms"], None, None, ["--header-timeout", "100ms"]),
    (["extra"], None, None, ["unexpected argument 'extra'"]),
    ([], {"HERALD_SYNC": "bogus"}, None, ["HERALD_SYNC", "sync must be one of full|normal|off"]),
    ([], {"HERALD_MAX_HEADERS": "7"}, None, ["HERALD_MAX_HEADERS"]),
    (["--engine", "redis", "--redis-transactions", "maybe"], None, None,
     ["redis-transactions must be on or off, not 'maybe'"]),
    ([], {"HERALD_REDIS_TRANSACTIONS": "1x"}, None, ["HERALD_REDIS_TRANSACTIONS", "on or off"]),
    ([], None, "redis-transactions = sometimes\n", ["bad.conf:1", "redis-transactions must be on or off"]),
    ([], None, "colour = red\n", ["bad.conf:1", "unknown option 'colour'"]),
    ([], None, "# c\n\n[namespace x]\nlisten = 1\n", ["bad.conf:4", "listen is not a namespace option"]),
    ([], None, "[namespace x]\nretention-max-count = abc\n", ["bad.conf:2", "retention-max-count", "'abc'"]),
    ([], None, "[namespace x\n", ["bad.conf:1", "[namespace NAME]"]),
    ([], None, "history = maybe\n", ["bad.conf:1", "history"]),
    ([], None, "[namespace x]\nproxy-subscribe = sometimes\n", ["bad.conf:2", "proxy-subscribe must be on or off"]),
    (["--config", "/nonexistent/herald.conf"], None, None, ["/nonexistent/herald.conf"]),
])
def test_bad_option_stops_serve_with_exit_2_naming_it(tmp_path, args, env, config, expect):
    p = serve_fails(tmp_path, args, env, config)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert p.stderr.startswith("herald: ")
    for part in expect:
        assert part in p.stderr, p.stderr
    assert not (tmp_path / "data").exists() or not os.listdir(tmp_path / "data")


def test_unknown_last_flag_is_reported_as_unknown(tmp_path):
    p = serve_fails(tmp_path, ["--bogus"])
    assert p.returncode == 2
    assert "unknown option 'bogus'" in p.stderr, p.stderr


def test_redis_options_are_ignored_by_the_local_engine(herald_factory):
    # As --redis-durability: a config shared with redis nodes starts a local one.
    h = herald_factory(args=["--redis-transactions", "on", "--redis-durability", "none"])
    assert requests.get(h.url + "/healthz", timeout=10).status_code == 200


def test_herald_server_variable_of_the_client_does_not_upset_serve(herald_factory):
    h = herald_factory(env={"HERALD_SERVER": "http://127.0.0.1:1"})
    assert requests.get(h.url + "/healthz", timeout=10).status_code == 200


def test_config_doc_matches_docs_config_md():
    out = subprocess.run([BIN, "config-doc"], capture_output=True, text=True, timeout=10, check=True).stdout
    with open(os.path.join(ROOT, "docs", "config.md")) as f:
        assert out == f.read(), "docs/config.md is stale: regenerate it with `herald config-doc > docs/config.md`"
    # Every option of --help is in the docs.
    help_text = subprocess.run([BIN, "--help"], capture_output=True, text=True, timeout=10).stdout
    for line in help_text.splitlines():
        word = line.strip().split(" ")[0]
        if word.startswith("--") and len(word) > 2:
            assert f"`{word}`" in out, word


# ---- the client commands ------------------------------------------------------

def cli(*args, server=None, stdin=None, env=None, timeout=30):
    cmd = [BIN, *args[:1], *(["--server", server] if server else []), *args[1:]]
    # Without input, stdin is /dev/null: `publish TOPIC` with no DATA reads it.
    extra = {"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}
    return subprocess.run(cmd, capture_output=True, timeout=timeout, env=dict(os.environ, **(env or {})), **extra)


def test_cli_publish_data_argument_and_stdin(herald):
    p = cli("publish", "cli:t", '{"n": 12345678901234567890}', server=herald.url)
    assert p.returncode == 0, p.stderr
    ans = json.loads(p.stdout)
    assert ans["topic"] == "cli:t" and ans["offset"] == 1 and ans["id"]
    p = cli("publish", "cli:t", "-", server=herald.url, stdin=b"line one\nline two\n")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["offset"] == 2
    # No DATA argument at all reads stdin too.
    p = cli("publish", "cli:t", server=herald.url, stdin=b'[1, 2, 3]')
    assert p.returncode == 0, p.stderr
    raw = herald.read("cli:t").text
    assert '"data":{"n":12345678901234567890}' in raw
    events = json.loads(raw)["events"]
    assert events[0]["datacontenttype"] == "application/json"
    assert events[1]["data"] == "line one\nline two\n" and events[1]["datacontenttype"].startswith("text/plain")
    assert events[2]["data"] == [1, 2, 3]


def test_cli_publish_binary_stdin_round_trips(herald):
    payload = bytes(range(256))
    p = cli("publish", "cli:bin", "-", server=herald.url, stdin=payload)
    assert p.returncode == 0, p.stderr
    ev = herald.read("cli:bin").json()["events"][0]
    assert base64.b64decode(ev["data_base64"]) == payload
    assert ev["datacontenttype"] == "application/octet-stream"


def test_cli_publish_cloudevent_attributes_and_dedup(herald):
    args = ["publish", "cli:ce", "hello", "--type", "com.example.greeting", "--source", "/cli/test", "--id", "g-1"]
    p = cli(*args, server=herald.url)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"topic": "cli:ce", "offset": 1, "id": "g-1"}
    p = cli(*args, server=herald.url)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"topic": "cli:ce", "offset": 1, "id": "g-1", "duplicate": True}
    ev = herald.read("cli:ce").json()["events"]
    assert len(ev) == 1
    assert (ev[0]["type"], ev[0]["source"], ev[0]["id"], ev[0]["data"]) == (
        "com.example.greeting", "/cli/test", "g-1", "hello")


def test_cli_publish_attribute_values_are_sent_verbatim(herald):
    """Values with spaces, '%', quotes and non-ASCII arrive exactly as typed:
    the client must percent-encode them for the ce- headers."""
    src, typ, id_ = "/my-app/100%20done", "com.example.caf\u00e9 x", 'id "quoted" %41'
    p = cli("publish", "cli:enc", "x", "--source", src, "--type", typ, "--id", id_, server=herald.url)
    assert p.returncode == 0, p.stderr.decode()
    assert json.loads(p.stdout)["id"] == id_
    ev = herald.read("cli:enc").json()["events"][0]
    assert (ev["source"], ev["type"], ev["id"]) == (src, typ, id_)


def test_cli_topic_with_namespace_and_server_from_environment(herald):
    env = {"HERALD_SERVER": herald.url + "/"}  # a trailing slash is common in URLs
    p = cli("publish", "user:42", "hi", env=env)
    assert p.returncode == 0, p.stderr.decode()
    assert json.loads(p.stdout)["topic"] == "user:42"
    p = cli("read", "user:42", env=env)
    assert p.returncode == 0, p.stderr.decode()
    assert [e["data"] for e in json.loads(p.stdout)["events"]] == ["hi"]


def test_cli_read_pages_with_after_and_limit(herald):
    for i in range(5):
        herald.publish("cli:r", json.dumps(structured(f"e{i}")), headers=CE_JSON)
    p = cli("read", "cli:r", "--after", "1", "--limit", "2", server=herald.url)
    assert p.returncode == 0, p.stderr
    body = json.loads(p.stdout)
    assert [e["offset"] for e in body["events"]] == [2, 3] and body["next"] == 3
    p = cli("read", "cli:r", "--after", str(body["next"]), server=herald.url)
    assert [e["offset"] for e in json.loads(p.stdout)["events"]] == [4, 5]
    p = cli("read", "cli:unknown", server=herald.url)
    assert p.returncode == 0 and json.loads(p.stdout) == {"events": [], "next": 0, "epoch": "", "truncated": False}


@pytest.mark.parametrize("args,code,message", [
    (["read", "cli:r", "--limit", "0"], 1,
     "herald: server answered 400: query parameter 'limit' must be from 1 to 1000"),
    (["read", "cli:r", "--limit", "5000"], 1, "herald: server answered 400: query parameter 'limit'"),
    (["read", "cli:r", "--limit", "x"], 2, "herald: --after and --limit take whole numbers"),
    (["read", "cli:r", "--after", "-1"], 2, "herald: --after and --limit take whole numbers"),
    (["publish", "bad topic!", "x"], 1, "herald: server answered 400: topic name has a character outside"),
    (["publish", ".."], 1, "herald: server answered 400: topic name cannot be '.' or '..'"),
    (["publish"], 2, "herald: a TOPIC is required"),
    (["read"], 2, "herald: a TOPIC is required"),
    (["publish", "t", "x", "--colour", "red"], 2, "herald: unknown flag --colour"),
    (["publish", "t", "x", "extra"], 2, "herald: unexpected argument 'extra'"),
    (["read", "t", "--limit"], 2, "herald: --limit needs a value"),
    (["read", "t", "--limit", "--after", "1"], 2, "herald: --limit needs a value"),
    (["publish", "t", "x", "--id", ""], 2, "herald: --id must not be empty"),
    (["publish", "t", "x", "--source", ""], 2, "herald: --source must not be empty"),
])
def test_cli_errors_exit_non_zero_with_a_clear_message(herald, args, code, message):
    p = cli(*args, server=herald.url)
    assert p.returncode == code, (p.returncode, p.stderr)
    assert message in p.stderr.decode(), p.stderr
    assert p.stdout == b""


def test_cli_without_a_server_says_so(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    for args in (["publish", "t", "x"], ["read", "t"]):
        p = cli(*args, server=url)
        assert p.returncode == 1
        err = p.stderr.decode()
        assert err.startswith(f"herald: {url}/v1/topics/t/events") and "connect" in err.lower(), err
