// A centrifuge-js client (npm "centrifuge" under Node with "ws") that
// subscribes with delta: 'fossil', so the SDK's own fossil decoder applies
// herald's deltas. Driven by tests/e2e/test_ws_delta.py.
//   env: HERALD_WS (ws URL), HERALD_TOKEN, HERALD_TOPIC, HERALD_FORMAT (see sdk.js)
//   stdin: "stats" | "disconnect" | "connect" | "quit"
//   stdout: one JSON object per line: {"ev":"subscribed"|"pub"|"stats"|"error", ...}
'use strict';
const { client, data: dec } = require('./sdk');
const readline = require('readline');

const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const c = client({
  token: process.env.HERALD_TOKEN,
  minReconnectDelay: 100,
  maxReconnectDelay: 500,
  timeout: 5000,
});
c.on('error', (ctx) => out({ ev: 'error', error: String(ctx.error && ctx.error.message) }));
const sub = c.newSubscription(process.env.HERALD_TOPIC, { delta: 'fossil' });
sub.on('subscribed', (ctx) => out({ ev: 'subscribed', recovered: !!ctx.recovered,
  wasRecovering: !!ctx.wasRecovering }));
sub.on('publication', (ctx) => out({ ev: 'pub', offset: ctx.offset, data: dec(ctx.data),
  id: ctx.tags && ctx.tags.id }));
sub.on('error', (ctx) => out({ ev: 'sub_error', error: String(ctx.error && ctx.error.message) }));
sub.subscribe();
c.connect();

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (line === 'stats') out({ ev: 'stats', stats: sub.deltaStats() });
  else if (line === 'disconnect') c.disconnect();
  else if (line === 'connect') c.connect();
  else if (line === 'quit') { c.disconnect(); process.exit(0); }
});
