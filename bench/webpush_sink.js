// webpush_sink — a bare Web Push service stand-in for bench/push_bench.py
// (WEBPUSH_MOCK=sink): Node's http (HTTP/1.1, keep-alive) on 127.0.0.1, so
// the Web Push fan-out measures herald alone. POST /subscribe answers
// {"data": {endpoint, keys: {p256dh, auth}}} (the shape of
// web-push-testing's /subscribe) with a fresh P-256 point and auth secret;
// every POST /notify/{id} is answered 201 at once, its body read and
// dropped (no VAPID check, no decryption: tests/js/webpush_mock.js does
// those). GET /stats answers {"requests","connections"}.
// Usage: node webpush_sink.js. Prints {"port": N} once listening.
'use strict';
const http = require('http');
const crypto = require('crypto');

const stats = { requests: 0, connections: 0 };
let next = 0;

const server = http.createServer((req, res) => {
  req.on('error', () => {});
  req.resume();
  req.on('end', () => {
    if (req.method === 'POST' && req.url.startsWith('/notify/')) {
      stats.requests++;
      res.writeHead(201, { 'Content-Length': '0' });
      res.end();
    } else if (req.method === 'POST' && req.url === '/subscribe') {
      const ecdh = crypto.createECDH('prime256v1');
      ecdh.generateKeys();
      const port = server.address().port;
      const body = JSON.stringify({
        data: {
          endpoint: 'http://localhost:' + port + '/notify/' + (next++),
          keys: {
            p256dh: ecdh.getPublicKey().toString('base64url'),
            auth: crypto.randomBytes(16).toString('base64url'),
          },
        },
      });
      res.writeHead(201, { 'Content-Type': 'application/json' });
      res.end(body);
    } else {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(stats));
    }
  });
});
server.keepAliveTimeout = 60000;
server.on('connection', (s) => { stats.connections++; s.on('error', () => {}); });
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
});
