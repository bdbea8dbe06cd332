/*
 * webpush_crypto — RFC 8291 aes128gcm encryption. Layer: push.
 * The derivation and the body layout are in webpush_crypto.h.
 *
 * Every secret sits in a stack buffer (or an OpenSSL secure BIGNUM) that is
 * cleansed before return. Per message, only what RFC 8291 makes per
 * message is new: the ephemeral scalar k is drawn straight from OpenSSL's
 * private CSPRNG and both points (k·G, k·ua) are computed on one shared
 * EC_GROUP (no EVP_PKEY built for the ephemeral key or the peer's point).
 * HKDF is written out as HMAC-SHA-256 calls (derive() says how) on one
 * context per message duplicated from a keyless template; AES-128-GCM is
 * fetched once, with the default 12-byte IV. Shared state: made once
 * (pthread_once), read-only after, kept until exit.
 */
#include "push/webpush_crypto.h"

#include "core/b64.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#define ECDH_LEN 32
#define IKM_LEN 32
#define CEK_LEN 16
#define NONCE_LEN 12
#define KEY_INFO_PREFIX "WebPush: info" /* then 0x00 */
#define KEY_INFO_LEN (sizeof(KEY_INFO_PREFIX) + 2 * HD_P256_PUBLIC_LEN)
#define PADDING_DELIMITER 0x02 /* the last (and only) record, RFC 8188 §2 */

_Static_assert(HD_WEBPUSH_CRYPTO_HEADER_LEN == 86, "RFC 8291 §4: an 86-byte header");
_Static_assert(HD_WEBPUSH_CRYPTO_PLAINTEXT_MAX == 3993, "RFC 8291 §4: 3993 bytes of plaintext");
_Static_assert(HD_WEBPUSH_CRYPTO_BODY_LEN(HD_WEBPUSH_CRYPTO_PLAINTEXT_MAX) -
			       HD_WEBPUSH_CRYPTO_HEADER_LEN <=
		       HD_WEBPUSH_CRYPTO_RS,
	       "one record holds the largest plaintext");

/* What every message shares, made once (state_init) and kept for the life of
 * the process: all are read-only after that, so any thread may use them. */
static struct {
	EC_GROUP *group;	/* P-256, OpenSSL's fastest method for it */
	EVP_MAC *hmac;		/* HMAC, fetched once */
	EVP_MAC_CTX *sha256;	/* HMAC-SHA-256 without a key: each message dups it */
	EVP_CIPHER *gcm;	/* AES-128-GCM, fetched once */
	bool ok;
} state;
static pthread_once_t state_once = PTHREAD_ONCE_INIT;

static void state_init(void)
{
	OSSL_PARAM digest[2];

	digest[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0);
	digest[1] = OSSL_PARAM_construct_end();
	state.group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
	state.hmac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
	state.sha256 = state.hmac ? EVP_MAC_CTX_new(state.hmac) : NULL;
	if (state.sha256 && EVP_MAC_CTX_set_params(state.sha256, digest) <= 0) {
		EVP_MAC_CTX_free(state.sha256);
		state.sha256 = NULL;
	}
	state.gcm = EVP_CIPHER_fetch(NULL, "AES-128-GCM", NULL);
	state.ok = state.group && state.sha256 && state.gcm;
	ERR_clear_error();
}

/* Whether pt is an uncompressed point on P-256 (OpenSSL checks the curve
 * equation in oct2point). */
static bool point_ok(const unsigned char pt[HD_P256_PUBLIC_LEN])
{
	EC_POINT *p = EC_POINT_new(state.group);
	bool ok = p && pt[0] == POINT_CONVERSION_UNCOMPRESSED &&
		  EC_POINT_oct2point(state.group, p, pt, HD_P256_PUBLIC_LEN, NULL);

	EC_POINT_free(p);
	ERR_clear_error();
	return ok;
}

static int keys_read(const char *p256dh, size_t p256dh_len, const char *auth, size_t auth_len,
		     struct hd_webpush_crypto_keys *out, bool check_point, struct hd_error *err);

int hd_webpush_crypto_keys_parse(const char *p256dh, size_t p256dh_len, const char *auth,
				 size_t auth_len, struct hd_webpush_crypto_keys *out,
				 struct hd_error *err)
{
	return keys_read(p256dh, p256dh_len, auth, auth_len, out, true, err);
}

int hd_webpush_crypto_keys_decode(const char *p256dh, size_t p256dh_len, const char *auth,
				  size_t auth_len, struct hd_webpush_crypto_keys *out,
				  struct hd_error *err)
{
	return keys_read(p256dh, p256dh_len, auth, auth_len, out, false, err);
}

static int keys_read(const char *p256dh, size_t p256dh_len, const char *auth, size_t auth_len,
		     struct hd_webpush_crypto_keys *out, bool check_point, struct hd_error *err)
{
	unsigned char buf[HD_P256_PUBLIC_LEN + 1];
	size_t n = 0;

	if (hd_b64_decode(p256dh, p256dh_len, HD_B64_URL, buf, sizeof(buf), &n) != 0 ||
	    n != HD_P256_PUBLIC_LEN)
		return hd_error_set(err, HD_EINVAL,
				    "'p256dh' must be the base64url of a %d-byte P-256 public key",
				    HD_P256_PUBLIC_LEN);
	/* On the shared group, not an EVP_PKEY: building a key builds a group
	 * too. (Each push decodes its device's keys without this check: they
	 * were parsed when the device registered, and the ECDH checks again.) */
	pthread_once(&state_once, state_init);
	if (check_point && !state.ok)
		return hd_error_set(err, HD_EINTERNAL, "OpenSSL has no P-256, HMAC-SHA-256 or AES-128-GCM");
	if (check_point && !point_ok(buf))
		return hd_error_set(err, HD_EINVAL,
				    "'p256dh' is not an uncompressed point on curve P-256");
	memcpy(out->p256dh, buf, HD_P256_PUBLIC_LEN);
	if (hd_b64_decode(auth, auth_len, HD_B64_URL, buf, sizeof(buf), &n) != 0 ||
	    n != HD_WEBPUSH_CRYPTO_AUTH_LEN)
		return hd_error_set(err, HD_EINVAL, "'auth' must be the base64url of %d bytes",
				    HD_WEBPUSH_CRYPTO_AUTH_LEN);
	memcpy(out->auth, buf, HD_WEBPUSH_CRYPTO_AUTH_LEN);
	return 0;
}

/*
 * as_pub = k·G and the ECDH shared secret (the x coordinate of k·ua) of the
 * scalar k (1 <= k < n) with the point ua. oct2point has OpenSSL check that
 * ua lies on P-256, whose cofactor is 1, so no further validation of the
 * peer would prove anything more. Both multiplications are OpenSSL's
 * constant-time ones. Returns 0 or -1.
 */
static int ecdh(const BIGNUM *k, const unsigned char ua[HD_P256_PUBLIC_LEN],
		unsigned char as_pub[HD_P256_PUBLIC_LEN], unsigned char secret[ECDH_LEN])
{
	BN_CTX *bn = BN_CTX_secure_new();
	EC_POINT *pub = EC_POINT_new(state.group);
	EC_POINT *peer = EC_POINT_new(state.group);
	EC_POINT *sh = EC_POINT_new(state.group); /* k·ua: not into peer, no aliasing */
	unsigned char shared[HD_P256_PUBLIC_LEN];
	int rc = -1;

	if (!bn || !pub || !peer || !sh ||
	    !EC_POINT_oct2point(state.group, peer, ua, HD_P256_PUBLIC_LEN, bn) ||
	    !EC_POINT_mul(state.group, pub, k, NULL, NULL, bn) ||
	    EC_POINT_point2oct(state.group, pub, POINT_CONVERSION_UNCOMPRESSED, as_pub,
			       HD_P256_PUBLIC_LEN, bn) != HD_P256_PUBLIC_LEN ||
	    !EC_POINT_mul(state.group, sh, NULL, peer, k, bn) ||
	    EC_POINT_point2oct(state.group, sh, POINT_CONVERSION_UNCOMPRESSED, shared,
			       sizeof(shared), bn) != sizeof(shared))
		goto out;
	memcpy(secret, shared + 1, ECDH_LEN);
	rc = 0;
out:
	OPENSSL_cleanse(shared, sizeof(shared));
	EC_POINT_clear_free(sh);
	EC_POINT_free(peer);
	EC_POINT_free(pub);
	BN_CTX_free(bn);
	return rc;
}

/* HMAC-SHA-256(key, a || b) into out (32 bytes) with ctx (the digest set;
 * init with a new key starts over). Returns 0 or -1. */
static int hmac(EVP_MAC_CTX *ctx, const unsigned char *key, size_t key_len, const void *a,
		size_t a_len, const void *b, size_t b_len, unsigned char out[32])
{
	size_t n = 0;

	if (EVP_MAC_init(ctx, key, key_len, NULL) <= 0 || EVP_MAC_update(ctx, a, a_len) <= 0 ||
	    (b_len && EVP_MAC_update(ctx, b, b_len) <= 0) || EVP_MAC_final(ctx, out, &n, 32) <= 0 ||
	    n != 32)
		return -1;
	return 0;
}

/*
 * CEK and NONCE of the message (the derivation in webpush_crypto.h), as
 * HKDF-SHA-256 (RFC 5869) written out in HMACs: every output is at most 32
 * bytes, so an expand is one HMAC of info || 0x01, and the CEK and NONCE
 * share their extract (same salt and IKM):
 *   PRK_key = HMAC(auth_secret, ecdh_secret)
 *   IKM     = HMAC(PRK_key, "WebPush: info" 0x00 ua_public as_public 0x01)
 *   PRK     = HMAC(salt, IKM)
 *   CEK     = HMAC(PRK, "Content-Encoding: aes128gcm" 0x00 0x01)[0..16)
 *   NONCE   = HMAC(PRK, "Content-Encoding: nonce" 0x00 0x01)[0..12)
 * Five HMACs on one context duplicated from the keyless template (OpenSSL's
 * EVP_KDF HKDF fetched its digest and HMAC again for every derivation).
 */
static int derive(const struct hd_webpush_crypto_keys *ua,
		  const unsigned char as_pub[HD_P256_PUBLIC_LEN],
		  const unsigned char secret[ECDH_LEN],
		  const unsigned char salt[HD_WEBPUSH_CRYPTO_SALT_LEN], unsigned char cek[CEK_LEN],
		  unsigned char nonce[NONCE_LEN])
{
	static const char cek_info[] = "Content-Encoding: aes128gcm\0\1"; /* sizeof - 1 */
	static const char nonce_info[] = "Content-Encoding: nonce\0\1";
	static const unsigned char one = 1;
	EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(state.sha256);
	unsigned char info[KEY_INFO_LEN];
	unsigned char prk[32], ikm[IKM_LEN], okm[32];
	int rc = -1;

	memcpy(info, KEY_INFO_PREFIX, sizeof(KEY_INFO_PREFIX));
	memcpy(info + sizeof(KEY_INFO_PREFIX), ua->p256dh, HD_P256_PUBLIC_LEN);
	memcpy(info + sizeof(KEY_INFO_PREFIX) + HD_P256_PUBLIC_LEN, as_pub, HD_P256_PUBLIC_LEN);
	if (!ctx ||
	    hmac(ctx, ua->auth, sizeof(ua->auth), secret, ECDH_LEN, NULL, 0, prk) ||
	    hmac(ctx, prk, sizeof(prk), info, sizeof(info), &one, 1, ikm) ||
	    hmac(ctx, salt, HD_WEBPUSH_CRYPTO_SALT_LEN, ikm, sizeof(ikm), NULL, 0, prk) ||
	    hmac(ctx, prk, sizeof(prk), cek_info, sizeof(cek_info) - 1, NULL, 0, okm))
		goto out;
	memcpy(cek, okm, CEK_LEN);
	if (hmac(ctx, prk, sizeof(prk), nonce_info, sizeof(nonce_info) - 1, NULL, 0, okm))
		goto out;
	memcpy(nonce, okm, NONCE_LEN);
	rc = 0;
out:
	OPENSSL_cleanse(prk, sizeof(prk));
	OPENSSL_cleanse(ikm, sizeof(ikm));
	OPENSSL_cleanse(okm, sizeof(okm));
	EVP_MAC_CTX_free(ctx); /* the HMAC provider cleanses its key */
	return rc;
}

/* AES-128-GCM of plaintext || 0x02 into out, the tag after it. Returns 0 or -1. */
static int seal(const unsigned char cek[CEK_LEN], const unsigned char nonce[NONCE_LEN],
		const void *plaintext, size_t n, unsigned char *out)
{
	static const unsigned char delimiter = PADDING_DELIMITER;
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int len = 0, total = 0;
	int rc = -1;

	if (!ctx || EVP_EncryptInit_ex2(ctx, state.gcm, cek, nonce, NULL) <= 0)
		goto out;
	if (n > 0 && EVP_EncryptUpdate(ctx, out, &len, plaintext, (int)n) <= 0)
		goto out;
	total = len;
	if (EVP_EncryptUpdate(ctx, out + total, &len, &delimiter, 1) <= 0)
		goto out;
	total += len;
	if (EVP_EncryptFinal_ex(ctx, out + total, &len) <= 0)
		goto out;
	total += len;
	if ((size_t)total != n + 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, HD_WEBPUSH_CRYPTO_TAG_LEN,
				out + total) <= 0)
		goto out;
	rc = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

/* The body of plaintext for ua with the ephemeral scalar k (1 <= k < n). */
static int encrypt_scalar(const struct hd_webpush_crypto_keys *ua, const BIGNUM *k,
			  const unsigned char salt[HD_WEBPUSH_CRYPTO_SALT_LEN],
			  const void *plaintext, size_t n, unsigned char *out, size_t out_cap,
			  size_t *out_len, struct hd_error *err)
{
	unsigned char as_pub[HD_P256_PUBLIC_LEN];
	unsigned char secret[ECDH_LEN];
	unsigned char cek[CEK_LEN];
	unsigned char nonce[NONCE_LEN];
	unsigned char *p = out;
	int rc = 0;

	if (n > HD_WEBPUSH_CRYPTO_PLAINTEXT_MAX) {
		rc = hd_error_set(err, HD_ETOOBIG,
				  "a Web Push message holds at most %d bytes of plaintext, not %zu",
				  HD_WEBPUSH_CRYPTO_PLAINTEXT_MAX, n);
		goto out;
	}
	if (out_cap < HD_WEBPUSH_CRYPTO_BODY_LEN(n)) {
		rc = hd_error_set(err, HD_EINVAL, "the output has room for %zu bytes, not %zu",
				  out_cap, (size_t)HD_WEBPUSH_CRYPTO_BODY_LEN(n));
		goto out;
	}
	if (ecdh(k, ua->p256dh, as_pub, secret) != 0) {
		rc = hd_error_set(err, HD_EINVAL,
				  "ECDH failed: the sender key must be a P-256 private key and "
				  "p256dh a point on P-256");
		goto out;
	}
	if (derive(ua, as_pub, secret, salt, cek, nonce) != 0) {
		rc = hd_error_set(err, HD_EINTERNAL, "HKDF (HMAC-SHA-256) failed in OpenSSL");
		goto out;
	}
	memcpy(p, salt, HD_WEBPUSH_CRYPTO_SALT_LEN);
	p += HD_WEBPUSH_CRYPTO_SALT_LEN;
	*p++ = (unsigned char)(HD_WEBPUSH_CRYPTO_RS >> 24);
	*p++ = (unsigned char)(HD_WEBPUSH_CRYPTO_RS >> 16);
	*p++ = (unsigned char)(HD_WEBPUSH_CRYPTO_RS >> 8);
	*p++ = (unsigned char)HD_WEBPUSH_CRYPTO_RS;
	*p++ = HD_P256_PUBLIC_LEN;
	memcpy(p, as_pub, HD_P256_PUBLIC_LEN);
	p += HD_P256_PUBLIC_LEN;
	if (seal(cek, nonce, plaintext, n, p) != 0) {
		rc = hd_error_set(err, HD_EINTERNAL, "AES-128-GCM failed in OpenSSL");
		goto out;
	}
	*out_len = HD_WEBPUSH_CRYPTO_BODY_LEN(n);
out:
	OPENSSL_cleanse(secret, sizeof(secret));
	OPENSSL_cleanse(cek, sizeof(cek));
	OPENSSL_cleanse(nonce, sizeof(nonce));
	ERR_clear_error();
	return rc;
}

int hd_webpush_crypto_encrypt_with(const struct hd_webpush_crypto_keys *ua, EVP_PKEY *as_key,
				   const unsigned char salt[HD_WEBPUSH_CRYPTO_SALT_LEN],
				   const void *plaintext, size_t n, unsigned char *out,
				   size_t out_cap, size_t *out_len, struct hd_error *err)
{
	unsigned char d[HD_P256_PRIVATE_LEN];
	BIGNUM *k = BN_secure_new();
	int rc;

	pthread_once(&state_once, state_init);
	if (!state.ok || !k) {
		rc = hd_error_set(err, HD_EINTERNAL, "OpenSSL has no P-256, HMAC-SHA-256 or AES-128-GCM");
		goto out;
	}
	if (hd_p256_private(as_key, d) != 0 || !BN_bin2bn(d, sizeof(d), k) || BN_is_zero(k) ||
	    BN_cmp(k, EC_GROUP_get0_order(state.group)) >= 0) {
		rc = hd_error_set(err, HD_EINVAL,
				  "ECDH failed: the sender key is not a P-256 private key");
		goto out;
	}
	rc = encrypt_scalar(ua, k, salt, plaintext, n, out, out_cap, out_len, err);
out:
	OPENSSL_cleanse(d, sizeof(d));
	BN_clear_free(k);
	ERR_clear_error();
	return rc;
}

int hd_webpush_crypto_encrypt(const struct hd_webpush_crypto_keys *ua, const void *plaintext,
			      size_t n, unsigned char *out, size_t out_cap, size_t *out_len,
			      struct hd_error *err)
{
	unsigned char salt[HD_WEBPUSH_CRYPTO_SALT_LEN];
	BIGNUM *k = BN_secure_new();
	int rc;

	pthread_once(&state_once, state_init);
	if (n > HD_WEBPUSH_CRYPTO_PLAINTEXT_MAX) {
		rc = hd_error_set(err, HD_ETOOBIG,
				  "a Web Push message holds at most %d bytes of plaintext, not %zu",
				  HD_WEBPUSH_CRYPTO_PLAINTEXT_MAX, n);
		goto out;
	}
	/* The ephemeral key is a fresh scalar 1 <= k < n from OpenSSL's private
	 * CSPRNG: as_public = k·G is computed with the ECDH, so no EVP_PKEY is
	 * built for a key used once. */
	if (!state.ok || !k || RAND_bytes(salt, sizeof(salt)) != 1) {
		rc = hd_error_set(err, HD_EINTERNAL, "no ephemeral key or salt from OpenSSL");
		goto out;
	}
	do {
		if (!BN_priv_rand_range_ex(k, EC_GROUP_get0_order(state.group), 0, NULL)) {
			rc = hd_error_set(err, HD_EINTERNAL, "no ephemeral key from OpenSSL");
			goto out;
		}
	} while (BN_is_zero(k));
	rc = encrypt_scalar(ua, k, salt, plaintext, n, out, out_cap, out_len, err);
out:
	BN_clear_free(k);
	ERR_clear_error();
	return rc;
}
