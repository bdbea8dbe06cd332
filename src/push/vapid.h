/*
 * vapid — Voluntary Application Server Identification (RFC 8292) for Web
 * Push: herald's application server key, the public key browsers subscribe
 * with, and the Authorization header of each push request.
 * Layer: push. Callers: main.c / the Web Push provider (later: loads the key
 * from --push-vapid-private-key-file, answers GET /v1/push/vapid-public-key,
 * signs requests), `herald push vapid-keys` (later: hd_vapid_keys_generate),
 * tests.
 *
 * The key: an EC P-256 private key, as PEM (PKCS#8 "PRIVATE KEY" or SEC1
 * "EC PRIVATE KEY") or as the base64url of the raw 32-byte scalar, the form
 * npm `web-push generate-vapid-keys` prints. Its public key travels as the
 * base64url of the uncompressed point (65 bytes → 87 characters): the
 * browser's applicationServerKey and the "k" parameter.
 *
 * The header (RFC 8292 §3):
 *     Authorization: vapid t=<JWT>, k=<public key>
 * where the JWT is ES256, header {"typ":"JWT","alg":"ES256"}, claims
 *     {"aud":"<origin of the endpoint>","exp":<now + HD_VAPID_TTL_S>,"sub":"<subject>"}
 * aud is the ASCII serialization of the endpoint URL's origin (RFC 6454 §6.2):
 * scheme "://" host, then ":" port only when it is not the scheme's default;
 * exp is at most 24 hours ahead (§2); sub is a "mailto:" or "https:" URI
 * (Apple's push service refuses others).
 *
 * Tokens are cached per origin (at most HD_VAPID_CACHE_MAX origins, the one
 * that expires first evicted) and signed again once fewer than
 * HD_VAPID_RENEW_S seconds remain, so a burst of pushes to one push service
 * costs one signature.
 */
#ifndef HD_PUSH_VAPID_H
#define HD_PUSH_VAPID_H

#include "core/err.h"
#include "core/b64.h"
#include "push/p256.h"

#include <stddef.h>
#include <stdint.h>

#define HD_VAPID_PUBLIC_KEY_LEN HD_B64_URL_LEN(HD_P256_PUBLIC_LEN)   /* 87 */
#define HD_VAPID_PRIVATE_KEY_LEN HD_B64_URL_LEN(HD_P256_PRIVATE_LEN) /* 43 */
#define HD_VAPID_URL_MAX 2048     /* bytes of an endpoint URL */
#define HD_VAPID_HOST_MAX 253     /* bytes of a host name (or bracketed IPv6 literal) */
#define HD_VAPID_ORIGIN_MAX (8 + HD_VAPID_HOST_MAX + 6) /* "https://" host ":65535" */
#define HD_VAPID_SUBJECT_MAX 256
#define HD_VAPID_TTL_S (12 * 3600) /* exp of a new token: now + 12 h */
#define HD_VAPID_EXP_MAX_S (24 * 3600)
#define HD_VAPID_RENEW_S (30 * 60) /* sign again when less than this remains */
#define HD_VAPID_CACHE_MAX 16      /* origins with a cached token */
#define HD_VAPID_HEADER_MAX 2048   /* "vapid t=…, k=…" and its NUL */

struct hd_vapid;

/*
 * Builds the signer from key text key[0, len) (PEM or base64url, leading
 * and trailing white space ignored) and subject. Returns 0 with *out owned
 * (hd_vapid_free), or HD_ECONFIG with err saying why: not a key in either
 * form, not EC P-256, a raw key of the wrong length or out of range, a
 * subject that is not "mailto:…" or "https:…" of at most
 * HD_VAPID_SUBJECT_MAX printable bytes. Any thread.
 */
int hd_vapid_new(const char *key, size_t len, const char *subject, struct hd_vapid **out,
		 struct hd_error *err);

/* hd_vapid_new on the contents of the file at path (at most
 * HD_JWS_KEY_FILE_MAX bytes). Same returns; messages name the file. */
int hd_vapid_new_file(const char *path, const char *subject, struct hd_vapid **out,
		      struct hd_error *err);

/* Frees v and its cache (the private key is cleansed by OpenSSL). NULL is a no-op. */
void hd_vapid_free(struct hd_vapid *v);

/* The public key, base64url (HD_VAPID_PUBLIC_KEY_LEN characters). Returns
 * borrowed, valid until hd_vapid_free. Any thread. */
const char *hd_vapid_public_key(const struct hd_vapid *v);

/*
 * The origin of an endpoint URL url[0, len) (see above) into out (room for
 * HD_VAPID_ORIGIN_MAX + 1), NUL-terminated: scheme and host lower-cased,
 * a default port (443 for https, 80 for http) dropped, leading zeros of a
 * port dropped. Refuses with HD_EINVAL and a reason: a scheme other than
 * http or https, userinfo ("user@host"), an empty or over-long host, a host
 * with characters outside letters, digits, '-' and '.' (percent-encoding
 * included), a bad IPv6 literal, an empty, non-numeric, zero or too-large
 * port, any space or control or non-ASCII byte in the URL, a URL longer
 * than HD_VAPID_URL_MAX. Whether http is acceptable is the caller's call.
 * Any thread.
 */
int hd_vapid_origin(const char *url, size_t len, char *out, size_t out_cap,
		    struct hd_error *err);

/*
 * Signs a new token for origin (as hd_vapid_origin writes it) expiring at
 * exp (seconds since the epoch). Returns 0 with *out owned (free()), or
 * HD_EINVAL/HD_EINTERNAL with err. No cache. Any thread.
 */
int hd_vapid_token(const struct hd_vapid *v, const char *origin, int64_t exp, char **out,
		   struct hd_error *err);

/*
 * The Authorization header value for a push to endpoint[0, len) at time now
 * (seconds since the epoch), from the cache or freshly signed (exp = now +
 * HD_VAPID_TTL_S), into out (room for HD_VAPID_HEADER_MAX), NUL-terminated.
 * Returns 0, or HD_EINVAL (a bad endpoint URL, see hd_vapid_origin; out
 * too small) or HD_EINTERNAL (signing failed), with err. Mutates the cache:
 * one thread at a time (the loop thread).
 */
int hd_vapid_header(struct hd_vapid *v, const char *endpoint, size_t len, int64_t now, char *out,
		    size_t out_cap, struct hd_error *err);

/*
 * A new application server key pair as base64url: the private scalar
 * (room for HD_VAPID_PRIVATE_KEY_LEN + 1) and the public point (room for
 * HD_VAPID_PUBLIC_KEY_LEN + 1), the forms `web-push generate-vapid-keys`
 * prints; hd_vapid_new reads the private one back. Returns 0 or
 * HD_EINTERNAL. Any thread.
 */
int hd_vapid_keys_generate(char *private_key, char *public_key, struct hd_error *err);

#endif
