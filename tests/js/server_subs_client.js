// A centrifuge-js 5 client whose connection token carries Centrifugo's
// `subs` claim (server-side subscriptions with info and data), for
// tests/e2e/test_centrifugo_subs.py. It reports the server-side
// subscriptions it gets (with their data), their publications and join and
// leave pushes, and on "presence <channel>" the presence as the SDK gives it.
//   env: HERALD_WS, HERALD_TOKEN, HERALD_FORMAT, HERALD_TRANSPORT (see sdk.js)
//   stdout: one JSON object per line: {"ev":"connected"|"subscribed"|"pub"|"join"|"leave"|"presence"|"error", ...}
'use strict';
const { client, data: dec } = require('./sdk');

const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
// Bytes (protobuf) that are not JSON text come as their hex.
const val = (d) => {
  if (d === undefined || d === null) return null;
  if (d instanceof Uint8Array) {
    try {
      return dec(d);
    } catch (e) {
      return { hex: Buffer.from(d).toString('hex') };
    }
  }
  return d;
};
const info = (i) => ({ user: i.user, client: i.client, connInfo: val(i.connInfo), chanInfo: val(i.chanInfo) });

const c = client({ token: process.env.HERALD_TOKEN, timeout: 5000 });
c.on('error', (ctx) => out({ ev: 'error', error: String(ctx.error && ctx.error.message) }));
c.on('connected', (ctx) => out({ ev: 'connected', client: ctx.client }));
c.on('disconnected', (ctx) => out({ ev: 'disconnected', code: ctx.code, reason: ctx.reason }));
c.on('subscribed', (ctx) => out({ ev: 'subscribed', channel: ctx.channel, data: val(ctx.data) }));
c.on('publication', (ctx) => out({ ev: 'pub', channel: ctx.channel, data: val(ctx.data) }));
c.on('join', (ctx) => out({ ev: 'join', channel: ctx.channel, info: info(ctx.info) }));
c.on('leave', (ctx) => out({ ev: 'leave', channel: ctx.channel, info: info(ctx.info) }));
c.connect();

require('readline').createInterface({ input: process.stdin }).on('line', async (line) => {
  const [cmd, arg] = line.split(' ');
  if (cmd === 'quit') {
    c.disconnect();
    process.exit(0);
  }
  if (cmd === 'presence') {
    try {
      const r = await c.presence(arg);
      const clients = {};
      for (const k of Object.keys(r.clients)) clients[k] = info(r.clients[k]);
      out({ ev: 'presence', channel: arg, clients });
    } catch (e) {
      out({ ev: 'presence_error', code: e.code, message: String(e.message) });
    }
  }
});
