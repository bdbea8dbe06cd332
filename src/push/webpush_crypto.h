/*
 * webpush_crypto — Web Push message encryption (RFC 8291) in the aes128gcm
 * content coding (RFC 8188): what herald sends as the body of a push to a
 * browser's subscription endpoint (with "Content-Encoding: aes128gcm").
 * Layer: push (pure: no I/O). Any thread.
 * Callers: the Web Push provider (later), tests.
 *
 * For each message the application server (herald) draws an ephemeral
 * P-256 key pair (as_private, as_public) and a 16-byte salt, then:
 *   ecdh_secret = ECDH(as_private, ua_public)              (32 bytes)
 *   IKM   = HKDF-SHA-256(salt = auth_secret, ikm = ecdh_secret,
 *                        info = "WebPush: info" 0x00 ua_public as_public, 32)
 *   CEK   = HKDF-SHA-256(salt, IKM, "Content-Encoding: aes128gcm" 0x00, 16)
 *   NONCE = HKDF-SHA-256(salt, IKM, "Content-Encoding: nonce" 0x00, 12)
 * (RFC 8291 §3.3–3.4, RFC 8188 §2.2–2.3). The message is one record:
 *
 *   offset  bytes  field
 *        0     16  salt
 *       16      4  rs = 4096, big-endian
 *       20      1  idlen = 65
 *       21     65  keyid = as_public (uncompressed point)
 *       86    n+17 AES-128-GCM(CEK, NONCE, plaintext || 0x02) with its 16-byte tag
 *
 * so a body is 103 + n bytes. Push services must accept 4,096 bytes of
 * body (RFC 8030 §7.2), which leaves HD_WEBPUSH_CRYPTO_PLAINTEXT_MAX
 * (3,993) bytes of plaintext (RFC 8291 §4). No padding is added.
 */
#ifndef HD_PUSH_WEBPUSH_CRYPTO_H
#define HD_PUSH_WEBPUSH_CRYPTO_H

#include "core/err.h"
#include "push/p256.h"

#include <openssl/evp.h>
#include <stddef.h>

#define HD_WEBPUSH_CRYPTO_AUTH_LEN 16 /* the subscription's auth secret */
#define HD_WEBPUSH_CRYPTO_SALT_LEN 16
#define HD_WEBPUSH_CRYPTO_RS 4096
#define HD_WEBPUSH_CRYPTO_HEADER_LEN (HD_WEBPUSH_CRYPTO_SALT_LEN + 4 + 1 + HD_P256_PUBLIC_LEN)
#define HD_WEBPUSH_CRYPTO_TAG_LEN 16
#define HD_WEBPUSH_CRYPTO_BODY_MAX 4096
/* The body of n bytes of plaintext. */
#define HD_WEBPUSH_CRYPTO_BODY_LEN(n) \
	(HD_WEBPUSH_CRYPTO_HEADER_LEN + (n) + 1 + HD_WEBPUSH_CRYPTO_TAG_LEN)
#define HD_WEBPUSH_CRYPTO_PLAINTEXT_MAX \
	(HD_WEBPUSH_CRYPTO_BODY_MAX - HD_WEBPUSH_CRYPTO_HEADER_LEN - 1 - HD_WEBPUSH_CRYPTO_TAG_LEN)

/* A subscription's keys (PushSubscription.getKey("p256dh") and ("auth")). */
struct hd_webpush_crypto_keys {
	unsigned char p256dh[HD_P256_PUBLIC_LEN]; /* ua_public: a point on P-256 */
	unsigned char auth[HD_WEBPUSH_CRYPTO_AUTH_LEN];
};

/*
 * Reads a subscription's "p256dh" and "auth" (base64url, as browsers give
 * them; '=' padding tolerated) into out. Returns 0, or HD_EINVAL with err
 * naming the member that is wrong: not base64url, not 65 / 16 bytes, or a
 * p256dh that is not an uncompressed point on P-256.
 */
int hd_webpush_crypto_keys_parse(const char *p256dh, size_t p256dh_len, const char *auth,
				 size_t auth_len, struct hd_webpush_crypto_keys *out,
				 struct hd_error *err);

/*
 * hd_webpush_crypto_keys_parse without the check that p256dh lies on P-256
 * (the lengths and base64url are checked): for keys parsed before, like a
 * registered device's on every push; hd_webpush_crypto_encrypt still
 * refuses a point off the curve (HD_EINVAL).
 */
int hd_webpush_crypto_keys_decode(const char *p256dh, size_t p256dh_len, const char *auth,
				  size_t auth_len, struct hd_webpush_crypto_keys *out,
				  struct hd_error *err);

/*
 * Encrypts plaintext[0, n) for the subscription ua with a fresh ephemeral
 * key and 16 random bytes of salt (OpenSSL's CSPRNG), writing the body
 * (HD_WEBPUSH_CRYPTO_BODY_LEN(n) bytes) to out[0, out_cap) and its length
 * to *out_len. Returns 0, HD_ETOOBIG (n > HD_WEBPUSH_CRYPTO_PLAINTEXT_MAX),
 * HD_EINVAL (out_cap too small, ua not a valid point) or HD_EINTERNAL
 * (OpenSSL failed), with err saying which.
 */
int hd_webpush_crypto_encrypt(const struct hd_webpush_crypto_keys *ua, const void *plaintext,
			      size_t n, unsigned char *out, size_t out_cap, size_t *out_len,
			      struct hd_error *err);

/*
 * hd_webpush_crypto_encrypt with the ephemeral key pair as_key (borrowed;
 * an EC P-256 private key) and the salt given, for the RFC 8291 test
 * vector and tests. Never reuse a key and salt pair in production: the
 * content key and nonce would repeat. Same returns (HD_EINVAL for an
 * as_key that is not a P-256 private key).
 */
int hd_webpush_crypto_encrypt_with(const struct hd_webpush_crypto_keys *ua, EVP_PKEY *as_key,
				   const unsigned char salt[HD_WEBPUSH_CRYPTO_SALT_LEN],
				   const void *plaintext, size_t n, unsigned char *out,
				   size_t out_cap, size_t *out_len, struct hd_error *err);

#endif
