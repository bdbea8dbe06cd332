/*
 * p256 — NIST P-256 keys as raw bytes: the forms Web Push and VAPID put on
 * the wire (SEC1 uncompressed point, 65 bytes, and the 32-byte private
 * scalar, RFC 8291 §3.1 and RFC 8292 §3.2), converted to and from OpenSSL 3
 * EVP_PKEYs.
 * Layer: push (pure: no I/O). Any thread; a key made here is immutable and
 * may be shared for signing and derivation across threads.
 * Callers: push/webpush_crypto.c, push/vapid.c, push/jws.c (the type check).
 */
#ifndef HD_PUSH_P256_H
#define HD_PUSH_P256_H

#include <openssl/evp.h>
#include <stdbool.h>

#define HD_P256_PUBLIC_LEN 65  /* 0x04 || X || Y */
#define HD_P256_PRIVATE_LEN 32 /* the scalar d, big-endian */

/* Whether key is an EC key on P-256 (prime256v1). NULL gives false. */
bool hd_p256_is(const EVP_PKEY *key);

/* A new random P-256 key pair. Returns owned (EVP_PKEY_free), or NULL when
 * OpenSSL fails. */
EVP_PKEY *hd_p256_generate(void);

/*
 * The key pair of the private scalar d (1 <= d < n), the public point
 * derived here. Returns 0 with *out owned (EVP_PKEY_free), or -1 (d out of
 * range, OpenSSL failure).
 */
int hd_p256_from_private(const unsigned char d[HD_P256_PRIVATE_LEN], EVP_PKEY **out);

/*
 * A public-only key from an uncompressed point; OpenSSL checks that the
 * point lies on the curve. Returns 0 with *out owned, or -1 (not 0x04,
 * not on the curve).
 */
int hd_p256_from_public(const unsigned char pt[HD_P256_PUBLIC_LEN], EVP_PKEY **out);

/* Writes key's public point, uncompressed, to out. Returns 0, or -1 (not a
 * P-256 key). */
int hd_p256_public(const EVP_PKEY *key, unsigned char out[HD_P256_PUBLIC_LEN]);

/* Writes key's private scalar, zero-padded to 32 bytes, to out. Returns 0,
 * or -1 (not a P-256 key, or no private part). */
int hd_p256_private(const EVP_PKEY *key, unsigned char out[HD_P256_PRIVATE_LEN]);

#endif
