// fcm_mock — an FCM HTTP v1 stand-in for herald's tests: Node's http2 over
// TLS (HTTP/1.1 allowed) on 127.0.0.1 with
//   POST /token   the OAuth 2.0 token endpoint: checks the JWT-bearer grant
//                 (grant_type, an RS256 assertion verified against the
//                 public key of the service-account file's private_key, iss
//                 = client_email, scope = firebase.messaging, aud = the
//                 file's token_uri, exp = iat + 3600) and answers
//                 {"access_token","expires_in":EXPIRES_IN,"token_type":"Bearer"};
//   POST /v1/projects/PROJECT/messages:send  checks the bearer is an issued
//                 token that is not revoked (else 401 UNAUTHENTICATED), that
//                 every message.data value is a string (else 400) and
//                 answers by message.token prefix:
//                   unreg… 404 UNREGISTERED   badtok… 400 INVALID_ARGUMENT on message.token
//                   quota… 429 QUOTA_EXCEEDED with Retry-After: 7
//                   quotaonce… the first time for each token 429 QUOTA_EXCEEDED
//                     with Retry-After: 2, then 200
//                   unavail… 503 UNAVAILABLE  stale… revokes the bearer, then 401
//                   anything else: 200 {"name":"projects/P/messages/N"}
//   GET /stats    {"tokens_issued","assertions_bad","sends","last":{message}}.
//   GET /by-token {token: [every message sent to it]}.
//   (stale…: only the first time for each token; the retry gets 200)
// Usage: node fcm_mock.js CERT KEY SERVICE_ACCOUNT_JSON [EXPIRES_IN]
// Prints "ready <port>" once listening; the account file is read at each
// request, so the test writes it (token_uri https://127.0.0.1:<port>/token)
// after that line.
'use strict';
const http2 = require('http2');
const crypto = require('crypto');
const fs = require('fs');

const [certFile, keyFile, saFile, expiresArg] = process.argv.slice(2);
const account = () => JSON.parse(fs.readFileSync(saFile, 'utf8'));
const staleSeen = new Set();
const expiresIn = Number(expiresArg || 3600);
const issued = new Set();
const stats = { tokens_issued: 0, assertions_bad: 0, sends: 0, last: null };
const byToken = {};
let msgNo = 0;

function b64json(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

function assertionOk(jwt) {
  const sa = account();
  const pub = crypto.createPublicKey(crypto.createPrivateKey(sa.private_key));
  const parts = (jwt || '').split('.');
  if (parts.length !== 3) return false;
  let h, c;
  try { h = b64json(parts[0]); c = b64json(parts[1]); } catch (e) { return false; }
  if (h.alg !== 'RS256') return false;
  const ok = crypto.verify('sha256', Buffer.from(parts[0] + '.' + parts[1]), pub,
    Buffer.from(parts[2], 'base64url'));
  return ok && c.iss === sa.client_email && c.aud === sa.token_uri &&
    c.scope === 'https://www.googleapis.com/auth/firebase.messaging' &&
    c.exp - c.iat === 3600 && Math.abs(Date.now() / 1000 - c.iat) < 300;
}

function json(res, status, body, extra) {
  res.writeHead(status, Object.assign({ 'content-type': 'application/json' }, extra || {}));
  res.end(JSON.stringify(body));
}

function fcmError(res, status, st, code, message, extra, details) {
  const d = details || [];
  if (code) d.push({ '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode: code });
  json(res, status, { error: { code: status, message, status: st, details: d } }, extra);
}

function token(req, res, body) {
  const form = new URLSearchParams(body);
  if (req.headers['content-type'] !== 'application/x-www-form-urlencoded' ||
      form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer' ||
      !assertionOk(form.get('assertion'))) {
    stats.assertions_bad++;
    return json(res, 400, { error: 'invalid_grant', error_description: 'Invalid JWT Signature.' });
  }
  const access = 'ya29.' + crypto.randomBytes(24).toString('base64url');
  issued.add(access);
  stats.tokens_issued++;
  json(res, 200, { access_token: access, expires_in: expiresIn, token_type: 'Bearer' });
}

function send(req, res, body) {
  stats.sends++;
  const auth = req.headers.authorization || '';
  const bearer = auth.startsWith('Bearer ') ? auth.slice(7) : '';
  if (!issued.has(bearer))
    return fcmError(res, 401, 'UNAUTHENTICATED', null, 'Request had invalid authentication credentials.');
  let m;
  try { m = JSON.parse(body).message; } catch (e) { m = null; }
  if (!m || typeof m.token !== 'string')
    return fcmError(res, 400, 'INVALID_ARGUMENT', null, 'Invalid JSON payload received.');
  stats.last = m;
  (byToken[m.token] = byToken[m.token] || []).push(m);
  for (const v of Object.values(m.data || {}))
    if (typeof v !== 'string')
      return fcmError(res, 400, 'INVALID_ARGUMENT', null, 'Invalid value at message.data');
  const t = m.token;
  if (t.startsWith('unreg')) return fcmError(res, 404, 'NOT_FOUND', 'UNREGISTERED', 'Requested entity was not found.');
  if (t.startsWith('badtok')) return fcmError(res, 400, 'INVALID_ARGUMENT', 'INVALID_ARGUMENT',
    'The registration token is not a valid FCM registration token', null,
    [{ '@type': 'type.googleapis.com/google.rpc.BadRequest', fieldViolations: [{ field: 'message.token', description: 'Invalid registration token' }] }]);
  if (t.startsWith('quotaonce') && !staleSeen.has(t)) {
    staleSeen.add(t);
    return fcmError(res, 429, 'RESOURCE_EXHAUSTED', 'QUOTA_EXCEEDED', 'Quota exceeded.', { 'retry-after': '2' });
  }
  if (t.startsWith('quota') && !t.startsWith('quotaonce')) return fcmError(res, 429, 'RESOURCE_EXHAUSTED', 'QUOTA_EXCEEDED', 'Quota exceeded.', { 'retry-after': '7' });
  if (t.startsWith('unavail')) return fcmError(res, 503, 'UNAVAILABLE', 'UNAVAILABLE', 'The service is currently unavailable.');
  if (t.startsWith('stale') && !staleSeen.has(t)) {
    staleSeen.add(t);
    issued.delete(bearer);
    return fcmError(res, 401, 'UNAUTHENTICATED', null, 'Request had invalid authentication credentials.');
  }
  json(res, 200, { name: 'projects/' + account().project_id + '/messages/' + (++msgNo) });
}

const server = http2.createSecureServer({
  cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile), allowHTTP1: true,
});
server.on('sessionError', () => {});
server.on('session', (s) => s.on('error', () => {}));
server.on('request', (req, res) => {
  req.on('error', () => {});
  res.on('error', () => {});
  const chunks = [];
  req.on('data', (d) => chunks.push(d));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    if (req.url === '/stats') return json(res, 200, stats);
    if (req.url === '/by-token') return json(res, 200, byToken);
    if (req.method === 'POST' && req.url === '/token') return token(req, res, body);
    if (req.method === 'POST' && req.url === '/v1/projects/' + account().project_id + '/messages:send')
      return send(req, res, body);
    json(res, 404, { error: { code: 404, status: 'NOT_FOUND' } });
  });
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write('ready ' + server.address().port + '\n');
});
