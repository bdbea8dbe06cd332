// Prints the bytes npm centrifuge's protobuf build sends for each command,
// one "name hex" line per WebSocket frame, for the codec's unit tests
// (tests/unit/proto/test_centrifuge_pb.c holds the output as fixtures).
// A stand-in WebSocket answers every command with an empty result of its
// kind, so the SDK goes on to the next call; no server is needed.
//   node pb_fixtures.js
'use strict';
const { Centrifuge } = require('centrifuge/build/protobuf');

const frames = [];
let names = [];

// The Reply field of a Command field (connect 4 -> 5 … ping 11 -> 12; rpc
// 13, refresh 14, sub_refresh 15 keep theirs).
const replyField = (f) => (f <= 11 ? f + 1 : f);

function varint(n) {
  const out = [];
  do { let b = n & 0x7f; n >>>= 7; if (n) b |= 0x80; out.push(b); } while (n);
  return out;
}

class FakeWS {
  constructor() {
    this.binaryType = 'arraybuffer';
    setTimeout(() => this.onopen && this.onopen(), 0);
  }
  send(data) {
    const u = new Uint8Array(data);
    frames.push({ name: names.shift() || 'unnamed', hex: Buffer.from(u).toString('hex') });
    const replies = [];
    for (let pos = 0; pos < u.length;) {
      let len = 0, shift = 0, b;
      do { b = u[pos++]; len |= (b & 0x7f) << shift; shift += 7; } while (b & 0x80);
      const msg = u.subarray(pos, pos + len);
      pos += len;
      if (msg.length === 0 || msg[0] !== 0x08) continue;
      let id = 0, p = 1; shift = 0;
      do { b = msg[p++]; id |= (b & 0x7f) << shift; shift += 7; } while (b & 0x80);
      const field = msg[p] >> 3;
      const body = [0x08, ...varint(id), (replyField(field) << 3) | 2, 0];
      replies.push(...varint(body.length), ...body);
    }
    if (replies.length)
      setTimeout(() => this.onmessage && this.onmessage({ data: new Uint8Array(replies).buffer }), 0);
  }
  close() {}
}

async function main() {
  const enc = new TextEncoder();
  const c = new Centrifuge('ws://127.0.0.1:1/connection/websocket', {
    websocket: FakeWS, token: 'tok', name: 'fx', data: enc.encode('{"a":1}'),
  });
  names = ['connect'];
  c.connect();
  await c.ready(2000);
  names = ['subscribe_recover'];
  const s = c.newSubscription('news', { since: { offset: 5, epoch: 'ep' }, joinLeave: true });
  s.subscribe();
  await s.ready(2000);
  names = ['publish'];
  await c.publish('news', enc.encode('{"x":"y"}'));
  names = ['history'];
  await c.history('news', { limit: 10, since: { offset: 3, epoch: 'e3' }, reverse: true });
  names = ['presence'];
  await c.presence('news');
  names = ['presence_stats'];
  await c.presenceStats('news');
  names = ['rpc'];
  await c.rpc('m', enc.encode('{}'));
  names = ['unsubscribe'];
  s.unsubscribe();
  await new Promise((r) => setTimeout(r, 50));
  for (const f of frames) process.stdout.write(`${f.name} ${f.hex}\n`);
  process.exit(0);
}
main().catch((e) => { console.error(e); process.exit(1); });
