// apns_sink — a bare APNs stand-in for bench/push_bench.py's latency run:
// Node's http2 over TLS on 127.0.0.1; every POST /3/device/{token} is
// answered 200 at once (no provider-token check: tests/js/apns_mock.js does
// that) and its arrival time (wall clock, ms with fractions) is kept by
// the herald.offset of its JSON body. GET /arrivals answers
// {offset: arrival ms}; GET /stats {"requests","sessions"}.
// Usage: node apns_sink.js CERT KEY. Prints "ready <port>" once listening.
'use strict';
const http2 = require('http2');
const fs = require('fs');
const { performance } = require('perf_hooks');

const [certFile, keyFile] = process.argv.slice(2);
const arrivals = {};
const stats = { requests: 0, sessions: 0 };
const MAX_ARRIVALS = 1000000; // a limit on what is kept

const server = http2.createSecureServer({
  cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile), maxSessionMemory: 64,
});
server.on('sessionError', () => {});
server.on('session', (s) => { stats.sessions++; s.on('error', () => {}); });
server.on('stream', (stream, h) => {
  stream.on('error', () => {});
  const chunks = [];
  stream.on('data', (d) => chunks.push(d));
  stream.on('end', () => {
    const t = performance.timeOrigin + performance.now();
    const path = h[':path'];
    if (path.startsWith('/3/device/')) {
      stats.requests++;
      try {
        const off = JSON.parse(Buffer.concat(chunks).toString('utf8')).herald.offset;
        if (stats.requests <= MAX_ARRIVALS) arrivals[off] = t;
      } catch (e) { /* counted, not timed */ }
      stream.respond({ ':status': 200, 'apns-id': '00000000-0000-0000-0000-000000000000' });
      stream.end();
    } else {
      stream.respond({ ':status': 200, 'content-type': 'application/json' });
      stream.end(JSON.stringify(path === '/arrivals' ? arrivals : stats));
    }
  });
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write('ready ' + server.address().port + '\n');
});
