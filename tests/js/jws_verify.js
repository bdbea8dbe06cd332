// An independent JWS verifier for herald's unit tests (tests/unit/push/):
// checks an ES256 or RS256 compact token with Node's built-in `crypto` only,
// so a signature herald makes is judged by code that shares nothing with it.
//
// Usage:
//   node jws_verify.js --pem FILE TOKEN        a PEM public key (SPKI)
//   node jws_verify.js --p256 B64URL TOKEN     a raw uncompressed P-256 point
//                                              (VAPID's "k"), base64url
// Exit 0 and one JSON line {"header": {...}, "claims": {...}} on stdout when
// the signature verifies under the key and the header's "alg" (ES256 with
// the 64-byte r||s signature of RFC 7518 §3.4, 'ieee-p1363' in Node terms;
// RS256 RSASSA-PKCS1-v1_5) matches the key's type; exit 1 with a reason on
// stderr otherwise; exit 2 on bad usage.
'use strict';

const crypto = require('crypto');
const fs = require('fs');

function fail(msg, code = 1) {
  process.stderr.write(`jws_verify: ${msg}\n`);
  process.exit(code);
}

function strictB64url(s, what) {
  if (!/^[A-Za-z0-9_-]*$/.test(s)) fail(`${what} is not base64url`);
  return Buffer.from(s, 'base64url');
}

function publicKey(kind, arg) {
  if (kind === '--pem') return crypto.createPublicKey(fs.readFileSync(arg));
  if (kind === '--p256') {
    const pt = strictB64url(arg, 'the P-256 key');
    if (pt.length !== 65 || pt[0] !== 4) fail('the P-256 key is not a 65-byte uncompressed point');
    return crypto.createPublicKey({
      key: { kty: 'EC', crv: 'P-256', x: pt.subarray(1, 33).toString('base64url'),
             y: pt.subarray(33).toString('base64url') },
      format: 'jwk',
    });
  }
  return fail('usage: jws_verify.js --pem FILE|--p256 B64URL TOKEN', 2);
}

const [kind, keyArg, token] = process.argv.slice(2);
if (!kind || !keyArg || !token) fail('usage: jws_verify.js --pem FILE|--p256 B64URL TOKEN', 2);
const key = publicKey(kind, keyArg);
const parts = token.split('.');
if (parts.length !== 3) fail('a compact JWS has three parts');
const header = JSON.parse(strictB64url(parts[0], 'the header').toString('utf8'));
const claims = JSON.parse(strictB64url(parts[1], 'the claims').toString('utf8'));
const sig = strictB64url(parts[2], 'the signature');
const data = Buffer.from(`${parts[0]}.${parts[1]}`, 'ascii');

let ok;
if (header.alg === 'ES256') {
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails.namedCurve !== 'prime256v1')
    fail('ES256 with a key that is not EC P-256');
  if (sig.length !== 64) fail(`an ES256 signature is 64 bytes, not ${sig.length}`);
  ok = crypto.verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, sig);
} else if (header.alg === 'RS256') {
  if (key.asymmetricKeyType !== 'rsa') fail('RS256 with a key that is not RSA');
  ok = crypto.verify('sha256', data, { key, padding: crypto.constants.RSA_PKCS1_PADDING }, sig);
} else {
  fail(`unexpected alg ${JSON.stringify(header.alg)}`);
}
if (!ok) fail('the signature does not verify');
process.stdout.write(`${JSON.stringify({ header, claims })}\n`);
