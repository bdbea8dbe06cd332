/*
 * jws — compact JWS signing (RFC 7515 §7.1) for the push providers' tokens:
 * APNs provider tokens and VAPID tokens are ES256, the FCM service-account
 * grant is RS256 (RFC 7518 §3.1). Also the private keys those are made
 * with, from PEM text or a file.
 * Layer: push (pure apart from reading a key file). Any thread: a loaded
 * key is only read while signing, so one key may sign on several threads.
 * Callers: push/vapid.c now; the APNs and FCM providers later.
 *
 * A token is  b64url(header) "." b64url(claims) "." b64url(signature)
 * over the exact header and claims bytes given (JWS signs the encoded
 * text, so no canonical JSON is needed). The signatures:
 *   ES256  ECDSA P-256 with SHA-256; OpenSSL returns a DER ECDSA-Sig-Value,
 *          JWS wants the 64 bytes r || s, each zero-padded to 32 bytes
 *          (RFC 7518 §3.4).
 *   RS256  RSASSA-PKCS1-v1_5 with SHA-256 (RFC 8017 §8.2), as long as the
 *          modulus; RSA keys of fewer than HD_JWS_RSA_BITS_MIN bits are refused.
 *
 * Keys: PEM "PRIVATE KEY" (PKCS#8: an APNs .p8 file, the private_key of an
 * FCM service-account file), "EC PRIVATE KEY" (SEC1) and "RSA PRIVATE KEY"
 * (PKCS#1). Encrypted keys are refused: herald has no passphrase to give.
 */
#ifndef HD_PUSH_JWS_H
#define HD_PUSH_JWS_H

#include "core/err.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stddef.h>

#define HD_JWS_KEY_FILE_MAX (64 * 1024) /* bytes of a key file */
#define HD_JWS_PART_MAX 4096            /* bytes of the header or the claims JSON */
#define HD_JWS_SIG_MAX 512              /* signature bytes: RSA up to 4096 bits */
#define HD_JWS_RSA_BITS_MIN 2048
/* Longest token: both parts and the largest signature, encoded, two dots, NUL. */
#define HD_JWS_TOKEN_MAX \
	(2 * ((HD_JWS_PART_MAX + 2) / 3 * 4) + (HD_JWS_SIG_MAX + 2) / 3 * 4 + 3)

enum hd_jws_alg { HD_JWS_ES256, HD_JWS_RS256 };

/* "ES256" or "RS256" (the JWS "alg" value). Any thread. */
const char *hd_jws_alg_name(enum hd_jws_alg alg);

/* A key file's text, read whole, with the name messages give it. */
#define HD_JWS_WHAT_MAX 160
struct hd_jws_key_text {
	char *text; /* owned, NUL-terminated; NULL after a failed read */
	size_t len;
	char what[HD_JWS_WHAT_MAX]; /* "<kind> file '<path>'" */
};

/*
 * Reads the key file at path (at most HD_JWS_KEY_FILE_MAX bytes) into t,
 * naming it "<kind> file '<path>'" (kind: "key", "VAPID key", ...). Returns
 * 0, or HD_ECONFIG with err naming the file and why (missing, unreadable,
 * too large). Either way t needs hd_jws_key_text_fini.
 */
int hd_jws_key_text_read(const char *path, const char *kind, struct hd_jws_key_text *t,
			 struct hd_error *err);

/* Cleanses and frees t's text (it holds a private key). */
void hd_jws_key_text_fini(struct hd_jws_key_text *t);

/*
 * Parses a PEM private key from pem[0, len) (leading text before the
 * "-----BEGIN" line is allowed, as OpenSSL allows it). Returns 0 with *out
 * owned (EVP_PKEY_free), or HD_ECONFIG with err saying why: no PEM private
 * key in the text, an encrypted key, or a public key or certificate given
 * where the private key belongs. what names the source in messages
 * ("APNs key file 'x.p8'"). Never prompts for a passphrase.
 */
int hd_jws_key_from_pem(const char *pem, size_t len, const char *what, EVP_PKEY **out,
			struct hd_error *err);

/* hd_jws_key_from_pem on the contents of path (read with
 * hd_jws_key_text_read, kind "key"). Same returns. */
int hd_jws_key_from_file(const char *path, EVP_PKEY **out, struct hd_error *err);

/*
 * Whether key can sign with alg: an EC P-256 private key for ES256, an RSA
 * private key of at least HD_JWS_RSA_BITS_MIN bits for RS256. Returns 0 or
 * HD_ECONFIG with err naming what was expected and what key was found
 * (what names the source, as above).
 */
int hd_jws_key_check(const EVP_PKEY *key, enum hd_jws_alg alg, const char *what,
		     struct hd_error *err);

/*
 * Signs header[0, header_len) and claims[0, claims_len) (JSON texts of at
 * most HD_JWS_PART_MAX bytes each; not parsed here) with key. Returns 0 with
 * *out owned (free(), NUL-terminated, at most HD_JWS_TOKEN_MAX bytes), or
 * HD_ECONFIG (a key unfit for alg, see hd_jws_key_check), HD_EINVAL (a part
 * empty or too long) or HD_EINTERNAL (OpenSSL failed), with err saying why.
 */
int hd_jws_sign(enum hd_jws_alg alg, EVP_PKEY *key, const char *header, size_t header_len,
		const char *claims, size_t claims_len, char **out, struct hd_error *err);

/* hd_jws_sign over the compact JSON text of two objects (members in the
 * order they were set). Borrows both. Same returns. */
int hd_jws_sign_json(enum hd_jws_alg alg, EVP_PKEY *key, const json_t *header,
		     const json_t *claims, char **out, struct hd_error *err);

#endif
