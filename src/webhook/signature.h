/*
 * signature — Standard Webhooks signing (https://www.standardwebhooks.com,
 * ../shared/research/protocols.md): the secret, the signed content and the
 * webhook-signature header.
 * Layer: webhook (pure: no I/O; uses OpenSSL's HMAC and base64). Any thread.
 *
 * A secret is "whsec_" + base64 of 24..64 random bytes. The signature of a
 * message is base64(HMAC-SHA256(key, id "." timestamp "." body)) and the
 * header value is "v1,<sig>" — during a rotation, several of these
 * separated by single spaces (newest first), one per secret.
 */
#ifndef HD_SIGNATURE_H
#define HD_SIGNATURE_H

#include "core/err.h"

#include <stddef.h>
#include <stdint.h>

#define HD_WHSEC_PREFIX "whsec_"
#define HD_WHSEC_KEY_MIN 24
#define HD_WHSEC_KEY_MAX 64
/* "whsec_" + base64 of HD_WHSEC_KEY_MAX bytes + NUL. */
#define HD_WHSEC_TEXT_MAX (6 + 4 * ((HD_WHSEC_KEY_MAX + 2) / 3) + 1)
/* "v1," + base64 of 32 bytes. */
#define HD_SIGNATURE_ONE_MAX (3 + 44)
/* At most this many secrets sign one message. */
#define HD_SIGNATURE_SECRETS_MAX 4
#define HD_SIGNATURE_HEADER_MAX (HD_SIGNATURE_SECRETS_MAX * (HD_SIGNATURE_ONE_MAX + 1))

struct hd_whsec {
	unsigned char key[HD_WHSEC_KEY_MAX];
	size_t len;
};

/* Parses "whsec_<base64>" (standard alphabet, padding optional), key of
 * HD_WHSEC_KEY_MIN..HD_WHSEC_KEY_MAX bytes. Returns 0 or HD_EINVAL with err
 * saying why. */
int hd_signature_secret_parse(const char *text, struct hd_whsec *out, struct hd_error *err);

/* A new random secret (32 bytes from the OS) as text into out (room for
 * HD_WHSEC_TEXT_MAX). Returns 0 or HD_EINTERNAL. */
int hd_signature_secret_generate(char *out, size_t out_len);

/* Writes the webhook-signature header value for (id, timestamp in seconds,
 * body) signed by each of n secrets (1..HD_SIGNATURE_SECRETS_MAX) into out
 * (room for HD_SIGNATURE_HEADER_MAX), NUL-terminated, in the order given.
 * id must be non-empty and hold no '.' (the signed content is joined with
 * dots). Returns its length, or -1 (bad arguments, a secret of the wrong
 * length, out too small, an OpenSSL failure). */
int hd_signature_header(const struct hd_whsec *secrets, size_t n, const char *id, int64_t timestamp,
			const void *body, size_t body_len, char *out, size_t out_len);

#endif
