"""The centrifuge-js SDK's own browser bundles (npm "centrifuge" dist/:
the JSON build and the protobuf build) in Debian's headless Chromium
against herald: subscribe, receive, disconnect, miss events, reconnect and
recover them exactly once and in order; both builds side by side in one page
on one topic see the same events in the same order; and the HTTP-streaming
emulation transport (browser fetch + ReadableStream, cross-origin through
herald's CORS support).

The test's own server serves the page and the two bundles from
tests/js/node_modules/centrifuge/dist (nothing comes from the network). Both
bundles set globalThis.Centrifuge (the class); the page keeps each under its own name
(CFJSON, CFPB) as it loads them. The page takes commands from the test
(GET /cmd, JSON, held until one is queued) and reports what its clients see
(POST /report, in order), each report naming the client."""
import json
import os

import pytest

from browser_page import PageServer, chromium
from conftest import per_test_timeout, structured
from wsclient import SECRET, token, ws_url

_timeout = per_test_timeout(90)

DIST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "js", "node_modules",
                    "centrifuge", "dist")
BUNDLES = {"/centrifuge.js": "centrifuge.js", "/centrifuge.protobuf.js": "centrifuge.protobuf.js"}

PAGE = """<!doctype html><meta charset="utf-8"><title>herald SDK browser test</title>
<script src="/centrifuge.js"></script>
<script>window.CFJSON = globalThis.Centrifuge;</script>
<script src="/centrifuge.protobuf.js"></script>
<script>
window.CFPB = globalThis.Centrifuge;
const CFG = %(cfg)s;
let chain = Promise.resolve();
function report(o) {  // reports are sent one after another, so they stay in order
  chain = chain.then(() => fetch('/report', {method: 'POST', body: JSON.stringify(o)}));
}
const dec = (d) => (d instanceof Uint8Array ? (d.length ? JSON.parse(new TextDecoder().decode(d)) : null) : d);
const clients = {};
function open(name, fmt, transport) {
  const C = fmt === 'protobuf' ? CFPB : CFJSON;
  const opts = {token: CFG.token, minReconnectDelay: 100, maxReconnectDelay: 500, timeout: 5000};
  let c;
  if (transport === 'websocket') {
    c = new C(CFG.ws, opts);
  } else {
    c = new C([{transport: transport, endpoint: CFG.http + '/connection/' + transport}],
              Object.assign({emulationEndpoint: CFG.http + '/emulation'}, opts));
  }
  const r = (o) => report(Object.assign({c: name}, o));
  c.on('connected', (ctx) => r({ev: 'connected', transport: ctx.transport}));
  c.on('disconnected', (ctx) => r({ev: 'disconnected', code: ctx.code}));
  c.on('error', (ctx) => r({ev: 'error', error: String(ctx.error && ctx.error.message)}));
  const sub = c.newSubscription(CFG.topic);
  sub.on('subscribed', (ctx) => r({ev: 'subscribed', recovered: !!ctx.recovered,
                                   was: !!ctx.wasRecovering}));
  sub.on('publication', (ctx) => {
    r({ev: 'pub', offset: ctx.offset, id: ctx.tags && ctx.tags.id, data: dec(ctx.data),
       bytes: ctx.data instanceof Uint8Array});
  });
  sub.on('error', (ctx) => r({ev: 'sub_error', error: String(ctx.error && ctx.error.message)}));
  sub.subscribe();
  c.connect();
  clients[name] = c;
}
async function loop() {
  for (;;) {
    let cmd;
    try { cmd = await (await fetch('/cmd')).json(); } catch (e) { continue; }
    if (cmd.op === 'open') open(cmd.name, cmd.fmt, cmd.transport);
    else if (cmd.op === 'disconnect') clients[cmd.name].disconnect();
    else if (cmd.op === 'connect') clients[cmd.name].connect();
    else if (cmd.op === 'quit') {
      for (const c of Object.values(clients)) c.disconnect();
      report({ev: 'bye'});
      return;
    }
  }
}
report({ev: 'loaded', json: typeof CFJSON, pb: typeof CFPB,
        distinct: CFJSON !== CFPB});
loop();
</script>"""


class SdkPage(PageServer):
    """The page with the SDK bundles; commands are JSON objects {op, …}."""

    def __init__(self, cfg):
        files = {}
        for path, name in BUNDLES.items():
            with open(os.path.join(DIST, name), "rb") as f:
                files[path] = (f.read(), "text/javascript; charset=utf-8")
        super().__init__(PAGE % {"cfg": json.dumps(cfg)}, files, noop={"op": "noop"})

    def cmd(self, op, **kw):
        self.cmds.put(dict(op=op, **kw))

    def ev(self, name, ev, timeout=15.0):
        return self.expect(lambda m: m.get("c") == name and m["ev"] == ev, timeout, f"{name} {ev}")

    def pubs(self, name, n, timeout=15.0):
        return [self.ev(name, "pub", timeout) for _ in range(n)]


class Browser:
    """A page in headless Chromium with its server; quits and joins both."""

    def __init__(self, h, tmp_path, topic):
        base = f"http://127.0.0.1:{h.port}"
        self.srv = SdkPage({"ws": ws_url(h), "http": base, "token": token("u7"), "topic": topic})
        self.proc = chromium(self.srv.url, tmp_path / "profile")
        try:
            m = self.srv.expect(lambda m: m["ev"] == "loaded", timeout=30, what="page loaded")
            assert m == {"ev": "loaded", "json": "function", "pb": "function", "distinct": True}, m
        except BaseException:
            self.proc.kill()
            self.proc.wait()
            self.srv.close()
            raise

    def close(self):
        """Quits the page (its reports up to "bye" land in srv.backlog) and
        joins Chromium and the server; a second call does nothing."""
        if self.proc.returncode is not None:
            return
        try:
            self.srv.cmd("quit")
            self.srv.expect(lambda m: m["ev"] == "bye", timeout=5, what="bye")
        finally:
            self.proc.kill()
            self.proc.wait()
            self.srv.close()


def herald_for_browser(herald_factory):
    return herald_factory(args=["--jwt-secret", SECRET, "--cors-origins", "*"])


def publish_ce(h, topic, start, n):
    """Publishes n CloudEvents e<start>.. with data {"n": i}, asserting each
    is stored (the data shows each build decodes the payload)."""
    for i in range(start, start + n):
        r = h.publish(topic, json.dumps(structured(f"e{i}", data={"n": i})),
                      headers={"Content-Type": "application/cloudevents+json"})
        assert r.status_code == 201, r.text


def ids(pubs):
    return [(m["offset"], m["id"], m["data"]) for m in pubs]


@pytest.mark.parametrize("fmt,transport", [("json", "websocket"), ("protobuf", "websocket"),
                                           ("json", "http_stream"), ("protobuf", "http_stream")])
def test_sdk_bundle_recovers_missed_events_once_in_order(herald_factory, tmp_path, fmt, transport):
    h = herald_for_browser(herald_factory)
    b = Browser(h, tmp_path, "sdkweb")
    try:
        srv = b.srv
        srv.cmd("open", name="a", fmt=fmt, transport=transport)
        m = srv.ev("a", "connected")
        assert m["transport"] == transport, m
        srv.ev("a", "subscribed")
        publish_ce(h, "sdkweb", 1, 3)
        got = srv.pubs("a", 3)
        assert all(m["bytes"] == (fmt == "protobuf") for m in got), got
        # Disconnected, the client misses three events; back, it recovers them.
        srv.cmd("disconnect", name="a")
        srv.ev("a", "disconnected")
        publish_ce(h, "sdkweb", 4, 3)
        srv.cmd("connect", name="a")
        m = srv.ev("a", "subscribed")
        assert m["was"] and m["recovered"], m
        got += srv.pubs("a", 3)
        publish_ce(h, "sdkweb", 7, 1)
        got += srv.pubs("a", 1)
        assert ids(got) == [(i, f"e{i}", {"n": i}) for i in range(1, 8)]
        # Exactly once: nothing else arrived for this client.
        b.close()
        assert [m for m in srv.backlog if m.get("ev") == "pub"] == []
    finally:
        b.close()


def test_json_and_protobuf_bundles_in_one_page_see_the_same_events(herald_factory, tmp_path):
    h = herald_for_browser(herald_factory)
    b = Browser(h, tmp_path, "sdkmix")
    try:
        srv = b.srv
        srv.cmd("open", name="j", fmt="json", transport="websocket")
        srv.cmd("open", name="p", fmt="protobuf", transport="websocket")
        for name in ("j", "p"):
            srv.ev(name, "subscribed")
        publish_ce(h, "sdkmix", 1, 4)
        got = {name: srv.pubs(name, 4) for name in ("j", "p")}
        # Both miss events while away and recover them.
        for name in ("j", "p"):
            srv.cmd("disconnect", name=name)
            srv.ev(name, "disconnected")
        publish_ce(h, "sdkmix", 5, 3)
        for name in ("j", "p"):
            srv.cmd("connect", name=name)
            m = srv.ev(name, "subscribed")
            assert m["was"] and m["recovered"], m
            got[name] += srv.pubs(name, 3)
        publish_ce(h, "sdkmix", 8, 2)
        for name in ("j", "p"):
            got[name] += srv.pubs(name, 2)
        assert ids(got["j"]) == ids(got["p"]) == [(i, f"e{i}", {"n": i}) for i in range(1, 10)]
        assert not any(m["bytes"] for m in got["j"]) and all(m["bytes"] for m in got["p"])
        b.close()
        assert [m for m in srv.backlog if m.get("ev") == "pub"] == []
    finally:
        b.close()
