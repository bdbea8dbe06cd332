// npm centrifuge's protobuf build (over the WebSocket) showing what an app
// sees of a subscription's chan_info and of a server-side refresh, for
// tests/e2e/test_protobuf_info.py. Prints one JSON line per event and exits.
//   HERALD_MODE=chan_info: client A (HERALD_TOKEN_A) subscribes to
//     HERALD_TOPIC with join/leave, client B (HERALD_TOKEN_B) subscribes and
//     unsubscribes; A prints the join, its presence call and the leave.
//     HERALD_SUBTOKEN_A / _B: subscription tokens, when the topic wants them.
//   HERALD_MODE=refresh: connects without a token (the connect proxy) and
//     prints each refresh push as the SDK's codec decodes it (the SDK has
//     no event for it), until HERALD_REFRESHES of them; then a call.
//   HERALD_MODE=publish: client A (HERALD_TOKEN_A) subscribes to
//     HERALD_TOPIC (HERALD_SUBTOKEN_A when wanted) and publishes {"n":1};
//     client B (HERALD_TOKEN_B) subscribed there prints the publication's
//     info, then its history call's publications' infos (null: none).
//   env also: HERALD_WS (see sdk.js; HERALD_FORMAT is set to protobuf here)
'use strict';
process.env.HERALD_FORMAT = 'protobuf';
const { client } = require('./sdk');

const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const err = (e) => ({ code: e && e.code, message: String(e && e.message) });
// Info bytes as the app gets them: the JSON text, and its value.
const text = (b) => (b && b.length ? new TextDecoder().decode(b) : null);
const info = (i) => ({ user: i.user, client: i.client, conn_info: text(i.connInfo),
                       chan_info: text(i.chanInfo) });

async function connected(c) {
  c.connect();
  return new Promise((resolve) => c.once('connected', resolve));
}

async function chanInfo() {
  const topic = process.env.HERALD_TOPIC;
  const a = client({ token: process.env.HERALD_TOKEN_A, timeout: 5000 });
  const ca = await connected(a);
  out({ ev: 'connected', who: 'a', client: ca.client });
  const sa = a.newSubscription(topic, { joinLeave: true, token: process.env.HERALD_SUBTOKEN_A || '' });
  const seen = [];
  sa.on('join', (ctx) => seen.push({ ev: 'join', info: info(ctx.info) }));
  sa.on('leave', (ctx) => seen.push({ ev: 'leave', info: info(ctx.info) }));
  sa.subscribe();
  await sa.ready(5000);
  const b = client({ token: process.env.HERALD_TOKEN_B, timeout: 5000 });
  const cb = await connected(b);
  out({ ev: 'connected', who: 'b', client: cb.client });
  const sb = b.newSubscription(topic, { token: process.env.HERALD_SUBTOKEN_B || '' });
  sb.subscribe();
  await sb.ready(5000);
  const wait = async (n) => {
    const deadline = Date.now() + 5000;
    while (seen.length < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  };
  await wait(1);
  const pr = await sa.presence();
  out({ ev: 'presence', clients: Object.fromEntries(Object.entries(pr.clients).map(([k, v]) => [k, info(v)])) });
  sb.unsubscribe();
  await wait(2);
  for (const s of seen) out(s);
  b.disconnect();
  a.disconnect();
  out({ ev: 'done' });
  process.exit(0);
}

async function refresh() {
  const want = Number(process.env.HERALD_REFRESHES || '1');
  const c = client({ timeout: 5000 });
  let n = 0;
  const decode = c._codec.decodeReplies.bind(c._codec);
  c._codec.decodeReplies = (data) => {
    const replies = decode(data);
    for (const r of replies) {
      if (r.push && r.push.refresh) {
        n++;
        out({ ev: 'refresh', expires: !!r.push.refresh.expires, ttl: Number(r.push.refresh.ttl || 0) });
      }
    }
    return replies;
  };
  const ctx = await connected(c);
  out({ ev: 'connected', client: ctx.client });
  const deadline = Date.now() + 15000;
  while (n < want && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  const ps = await c.presenceStats('x');
  out({ ev: 'presence_stats', numClients: ps.numClients, state: c.state });
  c.disconnect();
  out({ ev: 'done' });
  process.exit(0);
}

const pubInfo = (p) => (p.info ? info(p.info) : null);

async function publish() {
  const topic = process.env.HERALD_TOPIC;
  const b = client({ token: process.env.HERALD_TOKEN_B, timeout: 5000 });
  await connected(b);
  const sb = b.newSubscription(topic);
  const got = new Promise((resolve) => sb.on('publication', resolve));
  sb.subscribe();
  await sb.ready(5000);
  const a = client({ token: process.env.HERALD_TOKEN_A, timeout: 5000 });
  const ca = await connected(a);
  out({ ev: 'connected', who: 'a', client: ca.client });
  const sa = a.newSubscription(topic, { token: process.env.HERALD_SUBTOKEN_A || '' });
  sa.subscribe();
  await sa.ready(5000);
  await sa.publish({ n: 1 });
  const p = await got;
  out({ ev: 'publication', info: pubInfo(p) });
  const h = await sb.history({ limit: 10 });
  out({ ev: 'history', infos: h.publications.map(pubInfo) });
  a.disconnect();
  b.disconnect();
  out({ ev: 'done' });
  process.exit(0);
}

const modes = { refresh, publish, chan_info: chanInfo };
(modes[process.env.HERALD_MODE] || chanInfo)()
  .catch((e) => { out({ ev: 'fatal', error: err(e) }); process.exit(1); });
