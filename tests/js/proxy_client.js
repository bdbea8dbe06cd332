// A centrifuge-js 5 client that connects WITHOUT a token (herald asks the app
// backend: --proxy-connect-url), subscribes, publishes and calls an RPC, all
// answered through herald's proxies. Driven by tests/e2e/test_app_proxy.py.
//   env: HERALD_WS, HERALD_TOPIC, HERALD_FORMAT, HERALD_TRANSPORT (see sdk.js)
//   stdout: one JSON object per line: {"ev":"connected"|"subscribed"|"rpc"|"pub"|"error"|
//           "subscribing" (the server unsubscribed it with a code of 2500 or more), ...}
'use strict';
const { client, data: dec, protobuf } = require('./sdk');

const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
// The protobuf build sends and receives data as bytes: JSON text here.
const enc = (v) => (protobuf ? new TextEncoder().encode(JSON.stringify(v)) : v);

const c = client({ data: enc({ hello: 'backend' }), minReconnectDelay: 100, maxReconnectDelay: 500,
  timeout: 5000 });
c.on('error', (ctx) => out({ ev: 'error', error: String(ctx.error && ctx.error.message) }));
c.on('connected', async (ctx) => {
  out({ ev: 'connected', client: ctx.client, data: ctx.data === undefined ? null : dec(ctx.data) });
  try {
    const r = await c.rpc('add', enc({ n: [1, 2, 3] }));
    out({ ev: 'rpc', data: dec(r.data) });
  } catch (e) {
    out({ ev: 'rpc_error', code: e.code, message: e.message });
  }
  sub.subscribe();
});
const sub = c.newSubscription(process.env.HERALD_TOPIC, { data: enc({ why: 'sdk' }) });
sub.on('subscribed', async (ctx) => {
  out({ ev: 'subscribed', data: ctx.data === undefined ? null : dec(ctx.data) });
  await sub.publish(enc({ text: 'hi' }));
});
sub.on('publication', (ctx) => out({ ev: 'pub', data: dec(ctx.data) }));
sub.on('subscribing', (ctx) => { if (ctx.code >= 2500) out({ ev: 'subscribing', code: ctx.code, reason: ctx.reason }); });
sub.on('error', (ctx) => out({ ev: 'sub_error', error: String(ctx.error && ctx.error.message) }));
c.connect();

require('readline').createInterface({ input: process.stdin }).on('line', (line) => {
  if (line === 'quit') { c.disconnect(); process.exit(0); }
});
