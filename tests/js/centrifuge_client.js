// A real centrifuge-js 5 client (npm "centrifuge" under Node with "ws"),
// driven line by line by tests/e2e/test_interop_js.py.
//   env: HERALD_WS (ws URL), HERALD_TOKEN, HERALD_TOPIC,
//        HERALD_FORMAT, HERALD_TRANSPORT (see sdk.js), HERALD_DELTA (set: subscribe with
//        delta: 'fossil', so the SDK's own fossil decoder applies herald's deltas)
//   stdin: "disconnect" | "connect" | "stats" (the subscription's deltaStats) | "quit"
//   stdout: one JSON object per line: {"ev":"connected"|"subscribed"|"pub"|"user_pub"|"disconnected"|"error", ...}
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
c.on('connected', (ctx) => out({ ev: 'connected', client: ctx.client, transport: ctx.transport }));
c.on('disconnected', (ctx) => out({ ev: 'disconnected', code: ctx.code, reason: ctx.reason }));
c.on('error', (ctx) => out({ ev: 'error', error: String(ctx.error && ctx.error.message) }));
// Server-side subscriptions (user:U) arrive on the client object.
c.on('subscribed', (ctx) => out({ ev: 'server_subscribed', channel: ctx.channel,
  recovered: !!ctx.recovered, wasRecovering: !!ctx.wasRecovering }));
c.on('publication', (ctx) => out({ ev: 'user_pub', channel: ctx.channel, offset: ctx.offset,
  id: ctx.tags && ctx.tags.id }));

const sub = c.newSubscription(process.env.HERALD_TOPIC, process.env.HERALD_DELTA ? { delta: 'fossil' } : {});
sub.on('subscribed', (ctx) => out({ ev: 'subscribed', recoverable: !!ctx.recoverable,
  recovered: !!ctx.recovered, wasRecovering: !!ctx.wasRecovering, offset: ctx.streamPosition && ctx.streamPosition.offset }));
// The data as JSON where it is JSON (publications without data, e.g. a
// protobuf event with none, carry empty bytes: null here).
const pubData = (d) => { try { return dec(d); } catch (e) { return null; } };
sub.on('publication', (ctx) => out({ ev: 'pub', offset: ctx.offset, id: ctx.tags && ctx.tags.id,
  data: pubData(ctx.data) }));
sub.on('error', (ctx) => out({ ev: 'sub_error', error: String(ctx.error && ctx.error.message) }));
sub.subscribe();
c.connect();

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (line === 'disconnect') c.disconnect();
  else if (line === 'connect') c.connect();
  else if (line === 'stats') out({ ev: 'stats', stats: sub.deltaStats() });
  else if (line === 'quit') { c.disconnect(); process.exit(0); }
});
