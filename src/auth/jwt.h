/*
 * jwt — verifying the JSON Web Tokens that clients connect and subscribe
 * with (RFC 7519, RFC 7515 compact form).
 * Layer: auth. Built once by main.c from the configuration; hd_jwt_verify
 * is a pure function of its arguments (thread-safe), called by the edges
 * on the loop thread and by the fuzzer.
 *
 * Signature checks use libjwt (and OpenSSL under it); what libjwt leaves to
 * the caller is done here, because that is where tokens are forged:
 *   - the algorithm comes from the key, never from the token: a token
 *     whose header "alg" is not one the matching key is for (alg "none",
 *     HS256 signed with an RSA public key as the secret, …) is refused
 *     before libjwt sees it;
 *   - several keys may be configured (rotation): a token is accepted when
 *     one of the keys of its algorithm family verifies it; a "kid" header
 *     that names a key selects that key only;
 *   - exp and nbf are checked against `now` with `leeway` seconds; an
 *     expired token is told apart (HD_EEXPIRED) because the client then
 *     fetches a new one; iat is not checked;
 *   - aud (string or array) and iss are checked when configured;
 *   - claims are typed: sub must be a string, exp/nbf/iat numbers,
 *     channels an array of strings, info any JSON value.
 * The token text is bounded (HD_JWT_TOKEN_MAX) before anything is decoded.
 */
#ifndef HD_AUTH_JWT_H
#define HD_AUTH_JWT_H

#include "core/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HD_JWT_TOKEN_MAX (8 * 1024)
#define HD_JWT_CHANNELS_MAX 64
#define HD_JWT_KEYS_MAX 16

struct hd_jwt_config {
	/* HMAC secrets (HS256/384/512), NULL-terminated list of borrowed
	 * strings; NULL for none. */
	const char *const *hmac_secrets;
	/* PEM files with an RSA (RS256/384/512) or EC P-256 (ES256) public
	 * key each, NULL-terminated list; NULL for none. */
	const char *const *public_key_files;
	const char *audience;      /* NULL: aud not checked */
	const char *issuer;        /* NULL: iss not checked */
	uint32_t leeway_s;         /* clock skew allowed on exp and nbf */
};

struct hd_jwt_keys;

/* Loads the keys. Returns 0 and *out (owned, NULL when no key is
 * configured at all), or HD_ECONFIG with err saying which file or secret is
 * unusable (unreadable, not a public key, an unsupported key type, an empty
 * secret). */
int hd_jwt_keys_new(const struct hd_jwt_config *cfg, struct hd_jwt_keys **out,
		    struct hd_error *err);
void hd_jwt_keys_free(struct hd_jwt_keys *k);

/* What herald uses of a token. Owned by the claims; hd_jwt_claims_fini. */
struct hd_jwt_claims {
	char *sub;                 /* the user id; "" when absent (anonymous) */
	int64_t exp;               /* 0 when absent */
	int64_t iat;
	char *channel;             /* subscription tokens: the channel; NULL when absent */
	char **channels;           /* server-side subscriptions to make at connect */
	size_t nchannels;
	char *info;                /* the "info" claim as minified JSON; NULL when absent */
};

/*
 * Verifies token[0, len) at time now_s (Unix seconds). Returns 0 and fills
 * out; HD_EEXPIRED when everything holds but exp (+ leeway) is past;
 * HD_EUNAUTH for anything else (malformed, unknown or refused algorithm,
 * bad signature, nbf in the future, wrong aud/iss, a claim of the wrong
 * type, no keys) with err->msg saying which. out is zeroed first and must
 * be finished with hd_jwt_claims_fini in every case. keys may be NULL
 * (then every token is HD_EUNAUTH).
 */
int hd_jwt_verify(const struct hd_jwt_keys *keys, const char *token, size_t len, int64_t now_s,
		  struct hd_jwt_claims *out, struct hd_error *err);
void hd_jwt_claims_fini(struct hd_jwt_claims *c);

#endif
