// A real centrifuge-js 5 client (npm "centrifuge", JSON or its protobuf
// build) making the client-to-server calls once each, for
// tests/e2e/test_protobuf.py: subscribe, publish, history, presence,
// presence stats and an RPC nobody handles. Prints one JSON line per result
// and exits.
//   env: HERALD_WS, HERALD_TOKEN, HERALD_TOPIC, HERALD_FORMAT, HERALD_TRANSPORT (see sdk.js)
'use strict';
const { client, data: dec, protobuf } = require('./sdk');

const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
// Data the app publishes: JSON values, or (protobuf) the JSON text's bytes.
const enc = (v) => (protobuf ? new TextEncoder().encode(JSON.stringify(v)) : v);
const err = (e) => ({ code: e && e.code, message: String(e && e.message) });

async function main() {
  const topic = process.env.HERALD_TOPIC;
  const c = client({ token: process.env.HERALD_TOKEN, timeout: 5000 });
  c.on('error', (ctx) => out({ ev: 'error', error: String(ctx.error && ctx.error.message) }));
  c.connect();
  const ctx = await new Promise((resolve) => c.once('connected', resolve));
  out({ ev: 'connected', client: ctx.client, transport: ctx.transport });
  const sub = c.newSubscription(topic);
  const pubs = [];
  sub.on('publication', (p) => pubs.push({ offset: p.offset, data: dec(p.data) }));
  sub.subscribe();
  await sub.ready(5000);
  for (let i = 1; i <= 3; i++) {
    await c.publish(topic, enc({ n: i }));
  }
  out({ ev: 'published', n: 3 });
  const h = await c.history(topic, { limit: 10 });
  out({ ev: 'history', offset: h.offset, epoch: h.epoch,
        pubs: h.publications.map((p) => ({ offset: p.offset, data: dec(p.data) })) });
  const pr = await c.presence(topic);
  out({ ev: 'presence', clients: Object.keys(pr.clients),
        users: Object.values(pr.clients).map((i) => i.user) });
  const ps = await c.presenceStats(topic);
  out({ ev: 'presence_stats', numClients: ps.numClients, numUsers: ps.numUsers });
  try {
    await c.rpc('nothing', enc({}));
    out({ ev: 'rpc', ok: true });
  } catch (e) {
    out({ ev: 'rpc', error: err(e) });
  }
  const deadline = Date.now() + 5000;
  while (pubs.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  out({ ev: 'pubs', pubs });
  c.disconnect();
  process.exit(0);
}
main().catch((e) => { out({ ev: 'fatal', error: err(e) }); process.exit(1); });
