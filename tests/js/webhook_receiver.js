// A webhook receiver for herald's end-to-end tests (tests/e2e/test_webhooks.py).
//
// Listens on 127.0.0.1:<argv[2]> (0 = any free port) and prints one JSON
// line {"ready": true, "port": N} once it does. Further arguments are the
// first secrets (for a receiver that herald is already calling when it
// starts, so no delivery arrives before its secret). Every POST outside /_* is a
// delivery: its signature is verified with the npm `standardwebhooks`
// package against every secret set with POST /_secrets (an invalid one is
// recorded and answered 400, so the test sees it), it is parsed with the npm
// `cloudevents` package (HTTP.toEvent), recorded, and answered as the fault
// plan says.
//
// Control (JSON bodies):
//   POST /_secrets {"secrets": ["whsec_...", ...]}
//   POST /_plan    {"rules": [{"status": 500, "times": 2}, {"status": 429,
//                  "retry_after": 1, "times": 1}, {"delay_ms": 2000, "times": 1},
//                  {"status": 410, "times": 1}], "fail_rate": 0.3, "delay_ms": 0,
//                  "seed": 1}
//                  rules are used in order, each for `times` requests (-1 =
//                  for ever); a rule with "topic": T applies only to
//                  deliveries of topic T (the herald-topic header), the
//                  others skip it; without a rule: 200 after delay_ms, or 500 with
//                  probability fail_rate.
//   GET  /_log     {"deliveries": [...], "max_concurrent": N, "invalid": N}
//   POST /_reset   forgets the log and the concurrency maximum
'use strict';

const http = require('http');
const { Webhook } = require('standardwebhooks');
const { HTTP } = require('cloudevents');

const port = parseInt(process.argv[2] || '0', 10);
let secrets = process.argv.slice(3);
let plan = { rules: [], fail_rate: 0, delay_ms: 0 };
let seed = 1;
let log = [];
let current = 0;
let maxConcurrent = 0;
let invalid = 0;

function random() {
  // A small deterministic generator (mulberry32) so a failing run can be replayed.
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

function nextRule(topic) {
  // The first rule for this topic (a rule with a `topic` applies only to
  // deliveries whose herald-topic header is that topic).
  for (let i = 0; i < plan.rules.length; ) {
    const r = plan.rules[i];
    if (r.topic !== undefined && r.topic !== topic) {
      i++;
      continue;
    }
    if (r.times === undefined || r.times === -1) return r;
    if (r.times > 0) {
      r.times--;
      if (r.times === 0) plan.rules.splice(i, 1);
      return r;
    }
    plan.rules.splice(i, 1);
  }
  if (plan.fail_rate && random() < plan.fail_rate) return { status: 500 };
  return { status: 200, delay_ms: plan.delay_ms || 0 };
}

function json(res, status, obj) {
  const body = JSON.stringify(obj);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function verify(body, headers) {
  // One result per configured secret: whether that secret alone verifies.
  // The library returns JSON.parse(body) after a good signature, so a
  // non-JSON body (binary mode, text data) ends in a SyntaxError *after*
  // verification: that is a verified delivery.
  return secrets.map((s) => {
    try {
      new Webhook(s).verify(body, headers);
      return true;
    } catch (e) {
      return e instanceof SyntaxError;
    }
  });
}

function delivery(req, res, body) {
  const arrived = Date.now();
  current++;
  if (current > maxConcurrent) maxConcurrent = current;
  const headers = {};
  for (const [k, v] of Object.entries(req.headers)) headers[k.toLowerCase()] = v;
  const rec = {
    path: req.url,
    t: arrived,
    webhook_id: headers['webhook-id'],
    timestamp: headers['webhook-timestamp'],
    sig_count: (headers['webhook-signature'] || '').split(' ').filter((x) => x).length,
    attempt: parseInt(headers['herald-attempt'] || '0', 10),
    offset: parseInt(headers['herald-offset'] || '0', 10),
    topic: headers['herald-topic'],
    node: headers['herald-node'],
    content_type: headers['content-type'],
  };
  rec.verified = verify(body, headers);
  rec.valid = rec.verified.some((x) => x);
  try {
    const ev = HTTP.toEvent({ headers, body });
    rec.ce_id = ev.id;
    rec.type = ev.type;
    rec.source = ev.source;
    rec.subject = ev.subject;
    rec.data = ev.data instanceof Uint8Array ? Buffer.from(ev.data).toString('base64') : ev.data;
    rec.binary_data = ev.data instanceof Uint8Array;
  } catch (e) {
    rec.parse_error = String(e && e.message ? e.message : e);
  }
  const rule = rec.valid ? nextRule(rec.topic) : { status: 400 };
  if (!rec.valid) invalid++;
  rec.status = rule.status || 200;
  log.push(rec);
  const finish = () => {
    current--;
    rec.done = Date.now();
    const h = { 'content-length': 0 };
    if (rule.retry_after !== undefined) h['retry-after'] = String(rule.retry_after);
    try {
      res.writeHead(rec.status, h);
      res.end();
    } catch (e) {
      // herald gave up (timeout) and closed the connection.
    }
  };
  if (rule.delay_ms) setTimeout(finish, rule.delay_ms);
  else finish();
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    if (req.url === '/_secrets' && req.method === 'POST') {
      secrets = JSON.parse(body).secrets || [];
      return json(res, 200, { ok: true });
    }
    if (req.url === '/_plan' && req.method === 'POST') {
      const p = JSON.parse(body);
      plan = { rules: p.rules || [], fail_rate: p.fail_rate || 0, delay_ms: p.delay_ms || 0 };
      if (p.seed !== undefined) seed = p.seed;
      return json(res, 200, { ok: true });
    }
    if (req.url === '/_log' && req.method === 'GET') {
      return json(res, 200, { deliveries: log, max_concurrent: maxConcurrent, invalid });
    }
    if (req.url === '/_reset' && req.method === 'POST') {
      log = [];
      maxConcurrent = current;
      invalid = 0;
      return json(res, 200, { ok: true });
    }
    if (req.method === 'POST') return delivery(req, res, body);
    json(res, 404, { error: 'no such route' });
  });
});
server.keepAliveTimeout = 60000;
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ ready: true, port: server.address().port }) + '\n');
});
process.on('SIGTERM', () => process.exit(0));
