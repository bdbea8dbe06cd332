// A real EventSource client (npm "eventsource"), driven by
// tests/e2e/test_interop_js.py.  env: HERALD_SSE (stream URL)
// stdout: {"ev":"open"} | {"ev":"msg","id":lastEventId,"type":..,"event_id":..} | {"ev":"error"}
'use strict';
const EventSource = require('eventsource');
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const es = new EventSource(process.env.HERALD_SSE);
es.onopen = () => out({ ev: 'open' });
es.onerror = () => out({ ev: 'error' });
const onEvent = (e) => {
  const data = JSON.parse(e.data);
  out({ ev: 'msg', id: e.lastEventId, type: e.type, event_id: data.id, offset: data.offset });
};
es.addEventListener('com.example.test', onEvent);
es.addEventListener('reset', (e) => out({ ev: 'reset', id: e.lastEventId, data: JSON.parse(e.data) }));
process.stdin.on('data', (d) => { if (String(d).includes('quit')) { es.close(); process.exit(0); } });
