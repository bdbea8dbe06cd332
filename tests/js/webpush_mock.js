// webpush_mock — a Web Push service for herald's tests: npm
// web-push-testing's server (it checks the VAPID token against the
// subscription's applicationServerKey and decrypts aes128gcm bodies) run
// in this process on 127.0.0.1/localhost, first validated with npm
// web-push as the reference sender (a message sent by web-push must come
// back decrypted, else this exits 1). In front of it, a check of what
// RFC 8030 and RFC 8292 ask that web-push-testing leaves out: the VAPID
// token's aud is the endpoint's origin and its exp at most 24 h ahead
// (else 403 BadJwtToken), TTL present; and canned answers by path:
//   /notify/gone404 → 404, /notify/busy → 429 Retry-After: 4,
//   /notify/down → 500, /notify/denied → 403 {"reason":"BadJwtToken"}.
// POST /seen answers the request headers the check recorded, newest last.
// Usage: node webpush_mock.js VAPID_PUBLIC_KEY
// Prints one JSON line once ready: {"port","ok":subscription,"expired":subscription}
// (subscription: {endpoint, keys:{p256dh,auth}, clientHash}); "expired" is
// one web-push-testing answers 410 for. Read what a subscription received
// with POST /get-notifications {"clientHash"}.
'use strict';
const { PushApiModel } = require('web-push-testing/src/PushApiModel');
const Server = require('web-push-testing/src/server');
const webpush = require('web-push');

const vapidPublic = process.argv[2];
const log = console.log;
console.log = () => {}; // web-push-testing logs to stdout; the first line is ours
const seen = [];

function b64json(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

function check(req, res, next) {
  if (req.method === 'POST' && req.path === '/seen') return res.status(200).json(seen);
  if (!req.path.startsWith('/notify/')) return next();
  const port = req.socket.localPort;
  seen.push({ path: req.path, ttl: req.get('TTL'), urgency: req.get('Urgency'),
    topic: req.get('Topic'), encoding: req.get('X-Content-Encoding'),
    authorization: req.get('Authorization') });
  const name = req.path.slice('/notify/'.length);
  if (name === 'gone404') return res.status(404).end();
  if (name === 'busy') return res.status(429).set('Retry-After', '4').end();
  if (name === 'down') return res.status(500).end();
  if (name === 'denied') return res.status(403).json({ reason: 'BadJwtToken' });
  if (req.get('TTL') === undefined) return res.status(400).json({ reason: 'MissingTTL' });
  const m = /^vapid t=([^,]+), k=(.+)$/.exec(req.get('Authorization') || '');
  if (m) {
    let c;
    try { c = b64json(m[1].split('.')[1]); } catch (e) { c = {}; }
    const now = Date.now() / 1000;
    if (c.aud !== 'http://localhost:' + port || !(c.exp > now) || c.exp > now + 86400 ||
        !/^(mailto:|https:)/.test(c.sub || ''))
      return res.status(403).json({ reason: 'BadJwtToken' });
  }
  next();
}

async function main() {
  const model = new PushApiModel();
  const server = new Server(model, 0);
  server._app.use(check);
  server.startServer();
  await new Promise((resolve) => server._server.on('listening', resolve));
  const port = server._server.address().port;
  model.notifyUrl = 'http://localhost:' + port + '/notify/';

  // Validate the stand-in with the reference sender.
  const ref = webpush.generateVAPIDKeys();
  const refSub = await model.subscribe({ userVisibleOnly: 'true', applicationServerKey: ref.publicKey });
  // web-push only speaks https: take its request (headers and encrypted
  // body) and send it over http to this stand-in.
  const d = webpush.generateRequestDetails(refSub, 'reference check', {
    vapidDetails: { subject: 'mailto:tests@example.com', publicKey: ref.publicKey, privateKey: ref.privateKey },
    contentEncoding: 'aes128gcm', TTL: 60,
  });
  const r = await fetch(d.endpoint, { method: d.method, headers: d.headers, body: d.body });
  r.statusCode = r.status;
  const got = model.getNotifications({ clientHash: refSub.clientHash }).messages;
  if (r.statusCode !== 201 || got.length !== 1 || got[0] !== 'reference check') {
    process.stderr.write('webpush_mock: the reference sender was not received\n');
    process.exit(1);
  }
  seen.length = 0;

  const ok = await model.subscribe({ userVisibleOnly: 'true', applicationServerKey: vapidPublic });
  const expired = await model.subscribe({ userVisibleOnly: 'true', applicationServerKey: vapidPublic });
  model.expireSubscription(expired.clientHash);
  process.stdout.write(JSON.stringify({ port, ok, expired }) + '\n');
}

main().catch((e) => {
  process.stderr.write('webpush_mock: ' + (e.stack || e) + '\n');
  process.exit(1);
});
void log;
