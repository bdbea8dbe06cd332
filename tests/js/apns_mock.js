// apns_mock — an APNs stand-in for herald's tests: Node's http2 over TLS
// on 127.0.0.1, checking each POST /3/device/{token} the way APNs does
// (the ES256 provider token against the public key of the test's .p8, its
// kid and iss, apns-topic, apns-push-type and apns-priority, the payload
// size) and answering by device token prefix:
//   410… 410 Unregistered     400b… 400 BadDeviceToken   400t… 400 DeviceTokenNotForTopic
//   403e… 403 ExpiredProviderToken   429… 429 TooManyRequests (Retry-After: 3)
//   500… 500 InternalServerError     dead0… the stream is refused (REFUSED_STREAM)
//   dead1… GOAWAY, stream refused    anything else: 200 with an apns-id
//   dead2… the first request for each token: GOAWAY (last stream 0: every
//          stream in flight on that connection is refused), then as usual
//   dead3… the first request for each token: GOAWAY whose last stream is an
//          earlier one (this stream's id - 2; 0 for stream 1): the streams up to
//          it are answered, this one and later ones not yet answered refused;
//          then as usual
//   dead4… the first request for each token: REFUSED_STREAM (no GOAWAY), then as usual
//   dead2, dead3 and dead4 refuse only once the whole request body has arrived
//   (as /h2/refuse-once-read below): the client has then read all of its body
//   and cannot send the request again by itself without rewinding it, so the
//   refusal always reaches herald (refused as soon as the stream opened, curl
//   resent a request whose body it had not read yet, on a loaded machine, and
//   herald never saw the refusal).
// GET /stats answers {"requests","tokens":[distinct bearer JWTs],"sessions","goaways",
// "open" (sessions open now and not sent GOAWAY), "most_open" (most open at once since the start or
// the last GET /stats/mark), "per_session":
// {session number: device requests on it}, "last":{token,headers,body}}; GET /by-token answers {device token:
// [{headers,body}] of every request to it}. Other paths (for net/http_client's tests):
// /h2/ok answers 200 "h2 <session number>" with x-echo: <x-echo header>,
// /h2/refuse refuses the stream, /h2/goaway sends GOAWAY and refuses it,
// /h2/goaway-after the first time for each x-echo value: GOAWAY with the last
// stream an earlier one (as dead3), then like /h2/ok; "goaways_after" counts them;
// /h2/refuse-once the first time for each x-echo value: REFUSED_STREAM, then like
// /h2/ok; "refused_once" counts them. /h2/refuse-once-read and /h2/goaway-after-read
// are the same two, but refuse only once the whole request body has arrived (so
// the client has read all of its body and cannot send the request again without
// rewinding it), and answer 200 "h2 <session number> sends <n>", n counting every
// request of that path and x-echo value this mock received ("sends").
// Usage: node apns_mock.js CERT KEY [P8_PUBLIC_PEM KEY_ID TEAM_ID TOPIC]
// Prints "ready <port>" once listening.
'use strict';
const http2 = require('http2');
const crypto = require('crypto');
const fs = require('fs');

const [certFile, keyFile, pubFile, keyId, teamId, topic] = process.argv.slice(2);
const pub = pubFile ? crypto.createPublicKey(fs.readFileSync(pubFile)) : null;
const C = http2.constants;
const stats = { requests: 0, tokens: [], sessions: 0, open: 0, most_open: 0, goaways: 0, per_session: {},
  last: null };
const byToken = {};
let sessionNo = 0;
const goawaySeen = new Set();
stats.goaways_after = 0;
stats.refused_once = 0;
stats.sends = {};

// A session leaves "open" when it closes or when this mock sent it GOAWAY
// (it takes no new stream then; Node may keep such a session until long after
// the client went away, and later tests count the sessions open at once).
function retire(session) {
  if (session.retired) return;
  session.retired = true;
  stats.open--;
}

// GOAWAY with last stream LAST: the streams after it are not processed
// (device() refuses one whose request ends after this, unrecorded: the client
// sends it again, and it must not count as a second push to its token).
function goaway(session, last) {
  session.goaway(C.NGHTTP2_NO_ERROR, last);
  if (session.goawayLast === undefined || last < session.goawayLast) session.goawayLast = last;
  retire(session);
}

function b64json(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

// The reason the bearer is refused, or null when it is a valid provider token.
function checkBearer(auth) {
  if (!auth || !auth.startsWith('bearer ')) return 'MissingProviderToken';
  const jwt = auth.slice(7);
  const parts = jwt.split('.');
  if (parts.length !== 3) return 'InvalidProviderToken';
  let h, c;
  try { h = b64json(parts[0]); c = b64json(parts[1]); } catch (e) { return 'InvalidProviderToken'; }
  if (h.alg !== 'ES256' || h.kid !== keyId || c.iss !== teamId) return 'InvalidProviderToken';
  if (Object.keys(c).sort().join() !== 'iat,iss') return 'InvalidProviderToken';
  // A token string verified before carries the same signature: verified
  // once (APNs checks a provider token once per connection, not per push;
  // verifying every request capped this mock near 4,500 requests/s).
  const ok = stats.tokens.includes(jwt) ||
    crypto.verify('sha256', Buffer.from(parts[0] + '.' + parts[1]),
      { key: pub, dsaEncoding: 'ieee-p1363' }, Buffer.from(parts[2], 'base64url'));
  if (!ok) return 'InvalidProviderToken';
  if (Math.abs(Date.now() / 1000 - c.iat) > 3600) return 'ExpiredProviderToken';
  if (!stats.tokens.includes(jwt)) stats.tokens.push(jwt);
  return null;
}

function answer(stream, status, reason, extra) {
  // The client may be gone (a herald killed mid-request): respond() on a
  // destroyed stream throws, which would end the mock.
  if (stream.destroyed || stream.closed) return;
  try { respond(stream, status, reason, extra); } catch (e) { /* the client went away */ }
}

function respond(stream, status, reason, extra) {
  const headers = Object.assign({ ':status': status }, extra || {});
  if (reason) {
    headers['content-type'] = 'application/json';
    const body = { reason };
    if (status === 410) body.timestamp = Date.now();
    stream.respond(headers);
    stream.end(JSON.stringify(body));
  } else {
    stream.respond(headers);
    stream.end();
  }
}

function device(stream, h, token, body) {
  if (stream.session && stream.session.goawayLast !== undefined && stream.id > stream.session.goawayLast) {
    if (!stream.destroyed && !stream.closed) stream.close(C.NGHTTP2_REFUSED_STREAM);
    return;
  }
  stats.requests++;
  const no = stream.session ? stream.session.no : 0; // no session: the client is gone
  stats.per_session[no] = (stats.per_session[no] || 0) + 1;
  // Cut short (its client killed mid-send): never a push, so not recorded.
  const len = h['content-length'];
  if (len !== undefined && body.length !== Number(len)) return answer(stream, 400, 'BadPayload');
  stats.last = { token, headers: h, body: body.toString('utf8') };
  (byToken[token] = byToken[token] || []).push({ headers: h, body: stats.last.body });
  const bad = checkBearer(h.authorization);
  if (bad) return answer(stream, 403, bad);
  if (h['apns-topic'] !== topic) return answer(stream, 400, 'TopicDisallowed');
  const type = h['apns-push-type'];
  if (type !== 'alert' && type !== 'background') return answer(stream, 400, 'InvalidPushType');
  if (type === 'background' && h['apns-priority'] !== '5') return answer(stream, 400, 'BadPriority');
  if (h['apns-collapse-id'] && Buffer.byteLength(h['apns-collapse-id']) > 64)
    return answer(stream, 400, 'BadCollapseId');
  if (body.length === 0) return answer(stream, 400, 'PayloadEmpty');
  if (body.length > 4096) return answer(stream, 413, 'PayloadTooLarge');
  try { JSON.parse(body.toString('utf8')); } catch (e) { return answer(stream, 400, 'BadPayload'); }
  if (token.startsWith('410')) return answer(stream, 410, 'Unregistered');
  if (token.startsWith('400b')) return answer(stream, 400, 'BadDeviceToken');
  if (token.startsWith('400d')) return answer(stream, 400, 'DeviceTokenNotForTopic');
  if (token.startsWith('403e')) return answer(stream, 403, 'ExpiredProviderToken');
  if (token.startsWith('429')) return answer(stream, 429, 'TooManyRequests', { 'retry-after': '3' });
  if (token.startsWith('500')) return answer(stream, 500, 'InternalServerError');
  return answer(stream, 200, null, { 'apns-id': crypto.randomUUID().toUpperCase() });
}

// The first request of a dead2/dead3/dead4 token: its body is read to the
// end, then it is refused (dead4), or refused with a GOAWAY whose last stream
// is 0 (dead2) or this stream's id - 2 (dead3). The token counts as seen only
// then: a request cut short before its end is not its first.
function deadOnceRead(stream, h, path) {
  const chunks = [];
  stream.on('data', (d) => chunks.push(d));
  stream.on('end', () => {
    if (goawaySeen.has(path)) { // another request of this token came first
      device(stream, h, path.slice('/3/device/'.length), Buffer.concat(chunks));
      return;
    }
    goawaySeen.add(path);
    if (stream.destroyed || stream.closed || !stream.session) return;
    if (path.startsWith('/3/device/dead4')) {
      stats.refused_once++;
    } else {
      stats.goaways++;
      if (path.startsWith('/3/device/dead3')) stats.goaways_after++;
      goaway(stream.session, path.startsWith('/3/device/dead3') && stream.id > 2 ? stream.id - 2 : 0);
    }
    stream.close(C.NGHTTP2_REFUSED_STREAM);
  });
}

const server = http2.createSecureServer({
  cert: fs.readFileSync(certFile), key: fs.readFileSync(keyFile),
});
server.on('sessionError', () => {});
server.on('session', (s) => {
  s.no = ++sessionNo;
  stats.sessions++;
  stats.open++;
  stats.most_open = Math.max(stats.most_open, stats.open);
  s.on('error', () => {});
  s.on('close', () => retire(s));
});
server.on('stream', (stream, h) => {
  stream.on('error', () => {});
  const path = h[':path'];
  const chunks = [];
  if (path === '/h2/refuse' || path.startsWith('/3/device/dead0')) {
    stream.close(C.NGHTTP2_REFUSED_STREAM);
    return;
  }
  if (path === '/h2/refuse-once-read' || path === '/h2/goaway-after-read') {
    const key = path + ' ' + (h['x-echo'] || '');
    const n = stats.sends[key] = (stats.sends[key] || 0) + 1;
    stream.on('data', () => {});
    stream.on('end', () => {
      if (n === 1) {
        if (path === '/h2/goaway-after-read') {
          stats.goaways++;
          stats.goaways_after++;
          goaway(stream.session, stream.id > 2 ? stream.id - 2 : 0);
        } else {
          stats.refused_once++;
        }
        stream.close(C.NGHTTP2_REFUSED_STREAM);
        return;
      }
      if (stream.destroyed || stream.closed) return;
      stream.respond({ ':status': 200, 'x-echo': h['x-echo'] || '' });
      stream.end('h2 ' + stream.session.no + ' sends ' + n);
    });
    return;
  }
  if (/^\/3\/device\/dead[234]/.test(path) && !goawaySeen.has(path)) {
    deadOnceRead(stream, h, path);
    return;
  }
  const refuseKey = path === '/h2/refuse-once' ? 'refuse:' + (h['x-echo'] || '') : null;
  if (refuseKey && !goawaySeen.has(refuseKey)) {
    goawaySeen.add(refuseKey);
    stats.refused_once++;
    stream.close(C.NGHTTP2_REFUSED_STREAM);
    return;
  }
  if (path === '/h2/goaway-after' && !goawaySeen.has('after:' + (h['x-echo'] || ''))) {
    goawaySeen.add('after:' + (h['x-echo'] || ''));
    stats.goaways++;
    stats.goaways_after++;
    goaway(stream.session, stream.id > 2 ? stream.id - 2 : 0);
    stream.close(C.NGHTTP2_REFUSED_STREAM);
    return;
  }
  if (path === '/h2/goaway' || path.startsWith('/3/device/dead1')) {
    stats.goaways++;
    goaway(stream.session, 0);
    stream.close(C.NGHTTP2_REFUSED_STREAM);
    return;
  }
  stream.on('data', (d) => chunks.push(d));
  stream.on('end', () => {
    const body = Buffer.concat(chunks);
    if (path === '/stats/mark') { // most_open counts from now
      stats.most_open = stats.open;
      stats.requests_at_mark = stats.requests;
      stream.respond({ ':status': 200, 'content-type': 'application/json' });
      stream.end(JSON.stringify(stats));
    } else if (path === '/stats') {
      stream.respond({ ':status': 200, 'content-type': 'application/json' });
      stream.end(JSON.stringify(stats));
    } else if (path === '/by-token') {
      stream.respond({ ':status': 200, 'content-type': 'application/json' });
      stream.end(JSON.stringify(byToken));
    } else if (path === '/h2/ok' || path === '/h2/goaway-after' || path === '/h2/refuse-once') {
      stream.respond({ ':status': 200, 'x-echo': h['x-echo'] || '' });
      stream.end('h2 ' + stream.session.no);
    } else if (path.startsWith('/3/device/') && h[':method'] === 'POST') {
      device(stream, h, path.slice('/3/device/'.length), body);
    } else {
      answer(stream, 404, 'BadPath');
    }
  });
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write('ready ' + server.address().port + '\n');
});
