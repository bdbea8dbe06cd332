// An independent Web Push decrypter for herald's unit tests
// (tests/unit/push/test_webpush_crypto.c): opens an RFC 8291 aes128gcm body
// the way a browser does, with Node's built-in `crypto` only.
//
// Usage: node webpush_decrypt.js UA_PRIVATE AUTH BODY_HEX
//   UA_PRIVATE  the subscription's private scalar, base64url (32 bytes)
//   AUTH        the subscription's auth secret, base64url (16 bytes)
//   BODY_HEX    the message body, hex
// Prints the plaintext as hex and exits 0, or exits 1 with a reason.
'use strict';

const crypto = require('crypto');

function fail(msg) {
  process.stderr.write(`webpush_decrypt: ${msg}\n`);
  process.exit(1);
}

const [uaPrivB64, authB64, bodyHex] = process.argv.slice(2);
if (!uaPrivB64 || !authB64 || bodyHex === undefined) fail('usage: UA_PRIVATE AUTH BODY_HEX');
const body = Buffer.from(bodyHex, 'hex');
const auth = Buffer.from(authB64, 'base64url');

// RFC 8188 §2.1 header: salt(16) rs(4) idlen(1) keyid(idlen).
if (body.length < 21) fail('shorter than the header');
const salt = body.subarray(0, 16);
const rs = body.readUInt32BE(16);
const idlen = body[20];
if (idlen !== 65) fail(`idlen ${idlen}, not 65`);
const asPublic = body.subarray(21, 86);
const record = body.subarray(86);
if (record.length > rs) fail('more than one record');

const ua = crypto.createECDH('prime256v1');
ua.setPrivateKey(Buffer.from(uaPrivB64, 'base64url'));
const uaPublic = ua.getPublicKey();
const ecdhSecret = ua.computeSecret(asPublic);

// RFC 8291 §3.4, then RFC 8188 §2.2 and §2.3.
const keyInfo = Buffer.concat([Buffer.from('WebPush: info\0', 'latin1'), uaPublic, asPublic]);
const ikm = Buffer.from(crypto.hkdfSync('sha256', ecdhSecret, auth, keyInfo, 32));
const cek = Buffer.from(crypto.hkdfSync('sha256', ikm, salt,
  Buffer.from('Content-Encoding: aes128gcm\0', 'latin1'), 16));
const nonce = Buffer.from(crypto.hkdfSync('sha256', ikm, salt,
  Buffer.from('Content-Encoding: nonce\0', 'latin1'), 12));

const decipher = crypto.createDecipheriv('aes-128-gcm', cek, nonce);
decipher.setAuthTag(record.subarray(record.length - 16));
let padded;
try {
  padded = Buffer.concat([decipher.update(record.subarray(0, record.length - 16)), decipher.final()]);
} catch (e) {
  fail(`the tag does not verify: ${e.message}`);
}
// The last record ends with 0x02 then zero padding.
let end = padded.length - 1;
while (end >= 0 && padded[end] === 0) end--;
if (end < 0 || padded[end] !== 2) fail('no 0x02 delimiter');
process.stdout.write(`${padded.subarray(0, end).toString('hex')}\n`);
