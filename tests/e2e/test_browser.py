"""Debian's Chromium, headless, with the browser's own WebSocket and
EventSource in a page this test serves: subscribe, receive, lose the
connection while events are published, come back, and see every event
exactly once and in order (also across a herald restart), and be told when
retention removed events. The page speaks the Centrifugo JSON protocol by
hand over the native WebSocket, and uses EventSource for SSE (cross-origin,
so herald's CORS support is exercised too).

The page takes commands from the test (GET /cmd, held until one is queued)
and reports what it sees (POST /report, in order)."""
import json

from browser_page import PageServer, chromium
from conftest import per_test_timeout, publish_ce
from wsclient import SECRET, token, ws_url

_timeout = per_test_timeout(150)

PAGE = """<!doctype html><meta charset="utf-8"><title>herald browser test</title>
<script>
const CFG = %(cfg)s;
let chain = Promise.resolve();
function report(o) {  // reports are sent one after another, so they stay in order
  chain = chain.then(() => fetch('/report', {method: 'POST', body: JSON.stringify(o)}));
}
let ws = null, offset = 0, epoch = '', nextId = 1;
function wsOpen() {
  ws = new WebSocket(CFG.ws);
  ws.onopen = () => {
    const sub = {channel: CFG.topic};
    if (offset || epoch) { sub.recover = true; if (offset) sub.offset = offset; if (epoch) sub.epoch = epoch; }
    ws.send(JSON.stringify({connect: {token: CFG.token}, id: nextId++}) + '\\n' +
            JSON.stringify({subscribe: sub, id: nextId++}));
  };
  ws.onmessage = (e) => {
    for (const line of e.data.trim().split('\\n')) {
      const m = JSON.parse(line);
      if (m.id && m.subscribe) {
        const s = m.subscribe;
        epoch = s.epoch || '';
        report({ev: 'subscribed', recovered: !!s.recovered, was: !!s.was_recovering});
        if (s.recovered) {
          for (const p of s.publications || []) { offset = p.offset; report({ev: 'pub', offset: p.offset, id: p.tags.id}); }
        } else {
          offset = s.offset || 0;
        }
      } else if (m.push && m.push.pub && m.push.channel === CFG.topic) {
        offset = m.push.pub.offset;
        report({ev: 'pub', offset: offset, id: m.push.pub.tags.id});
      } else if (!m.id && !m.push) {
        ws.send('{}');
      }
    }
  };
  ws.onclose = (e) => report({ev: 'closed', code: e.code});
}
let es = null;
function sseOpen() {
  es = new EventSource(CFG.sse);
  es.onopen = () => report({ev: 'sse_open'});
  es.addEventListener('com.example.test', (e) =>
    report({ev: 'sse', id: e.lastEventId, event_id: JSON.parse(e.data).id}));
  es.addEventListener('reset', (e) => report({ev: 'sse_reset', data: JSON.parse(e.data)}));
}
async function loop() {
  for (;;) {
    const r = await fetch('/cmd');
    const cmd = await r.text();
    if (cmd === 'ws_open') wsOpen();
    else if (cmd === 'ws_close') ws.close();
    else if (cmd === 'sse_open') sseOpen();
    else if (cmd === 'quit') { if (ws) ws.close(); if (es) es.close(); report({ev: 'bye'}); return; }
  }
}
report({ev: 'loaded'});
loop();
</script>"""


def page_server(cfg):
    return PageServer(PAGE % {"cfg": json.dumps(cfg)})


def collect(srv, ev, n, timeout=15.0):
    return [srv.expect(lambda m: m["ev"] == ev, timeout, f"{n} {ev}") for _ in range(n)]


def test_browser_websocket_and_eventsource(herald_factory, tmp_path):
    h = herald_factory(args=["--jwt-secret", SECRET, "--sse-retry", "200ms", "--cors-origins", "*"],
                       config="[namespace short]\nretention-max-count = 2\n")
    srv = page_server({"ws": ws_url(h), "token": token("u5"), "topic": "web",
                      "sse": h.topic_url("web", "/sse") + "?after=0"})
    browser = chromium(srv.url, tmp_path / "profile")
    try:
        srv.expect(lambda m: m["ev"] == "loaded", timeout=30, what="page loaded")
        srv.cmds.put("ws_open")
        srv.cmds.put("sse_open")
        srv.expect(lambda m: m["ev"] == "subscribed")
        srv.expect(lambda m: m["ev"] == "sse_open")
        publish_ce(h, "web", 1, 3)
        ws_got = [(m["offset"], m["id"]) for m in collect(srv, "pub", 3)]
        # WebSocket: close, publish meanwhile, reopen with recovery.
        srv.cmds.put("ws_close")
        srv.expect(lambda m: m["ev"] == "closed")
        publish_ce(h, "web", 4, 2)
        srv.cmds.put("ws_open")
        m = srv.expect(lambda m: m["ev"] == "subscribed")
        assert m["recovered"] and m["was"], m
        ws_got += [(m["offset"], m["id"]) for m in collect(srv, "pub", 2)]
        # A herald restart: both come back (EventSource by itself, with Last-Event-ID).
        h.stop()
        srv.expect(lambda m: m["ev"] == "closed")
        h.start(h.port)
        publish_ce(h, "web", 6, 2)
        srv.cmds.put("ws_open")
        m = srv.expect(lambda m: m["ev"] == "subscribed")
        assert m["recovered"], m
        ws_got += [(m["offset"], m["id"]) for m in collect(srv, "pub", 2)]
        assert ws_got == [(i, f"e{i}") for i in range(1, 8)]
        sse = []
        while len(sse) < 7:
            m = srv.expect(lambda m: m["ev"] == "sse", what=f"7 sse events (have {sse})")
            sse.append((m["id"], m["event_id"]))
        assert sse == [(str(i), f"e{i}") for i in range(1, 8)]
        srv.cmds.put("quit")
        srv.expect(lambda m: m["ev"] == "bye")
    finally:
        browser.kill()
        browser.wait()
        srv.close()


def test_browser_told_when_history_is_gone(herald_factory, tmp_path):
    h = herald_factory(args=["--jwt-secret", SECRET, "--sse-retry", "200ms", "--cors-origins", "*"],
                       config="[namespace short]\nretention-max-count = 2\n")
    publish_ce(h, "short:b", 1, 6)
    srv = page_server({"ws": ws_url(h), "token": token("u5"), "topic": "short:b",
                      "sse": h.topic_url("short:b", "/sse") + "?after=1"})
    browser = chromium(srv.url, tmp_path / "profile")
    try:
        srv.expect(lambda m: m["ev"] == "loaded", timeout=30, what="page loaded")
        srv.cmds.put("sse_open")
        m = srv.expect(lambda m: m["ev"] == "sse_reset")
        assert m["data"]["after"] == 1 and m["data"]["first"] == 5, m
        got = [srv.expect(lambda m: m["ev"] == "sse")["event_id"] for _ in range(2)]
        assert got == ["e5", "e6"]
        srv.cmds.put("quit")
        srv.expect(lambda m: m["ev"] == "bye")
    finally:
        browser.kill()
        browser.wait()
        srv.close()
