/*
 * jwt — verifying the JSON Web Tokens that clients connect and subscribe
 * with (RFC 7519, RFC 7515 compact form).
 * Layer: auth. Built once by main.c from the configuration; hd_jwt_verify
 * is a pure function of its arguments (thread-safe), called by the edges
 * on the loop thread and by the fuzzer.
 *
 * Signature checks use libjwt 1.10 (and OpenSSL under it); what libjwt
 * leaves to the caller is done here, because that is where tokens are
 * forged. libjwt takes the algorithm from the token (case-insensitively),
 * accepts alg "none" when given no key, would use a PEM public key as an
 * HMAC secret, and checks no claim. So, before libjwt sees a token:
 *   - the text is bounded (HD_JWT_TOKEN_MAX), made of base64url characters
 *     and exactly two dots, with three non-empty segments, each canonical
 *     base64url without padding;
 *   - the header and the payload are read here: JSON objects, no repeated
 *     member, no NUL byte;
 *   - the algorithm comes from the key, never from the token: a secret is
 *     for HS256/384/512, an RSA key (2048 bits or more) for RS256/384/512,
 *     an EC P-256 key for ES256 only. A header "alg" that is not exactly
 *     (case-sensitively) one of the algorithms of a configured key is
 *     refused: "none" in any case, "hs256", PS256, an HS256 token when only
 *     public keys are configured (the key-confusion forgery: HMAC keyed
 *     with the public PEM text), RS256 when only secrets are;
 *   - the signature must have the algorithm's length (32/48/64 bytes for
 *     HS*, the modulus size for RS*, 64 bytes of JOSE r||s for ES256);
 *   - a "crit" header is refused (no extension is understood); "typ", when
 *     present, must be "JWT" in any case (libjwt insists on that too);
 *   - several keys may be configured (rotation): a token is accepted when
 *     one of the keys of its algorithm family verifies it, tried in the
 *     order configured. Keys from a JWKS file carry their "kid": a token
 *     whose header names a kid is checked only against the keys with that
 *     kid and the keys that have none (secrets and PEM files); a token
 *     without a kid against every key of its family.
 * Claims are read only from a payload whose signature holds:
 *   - they are typed: sub must be a string, exp/nbf/iat numbers
 *     (NumericDate; a fraction is rounded down), channel a string,
 *     channels an array of at most HD_JWT_CHANNELS_MAX strings, info any
 *     JSON value, b64info a string of standard base64 (core/b64.h) whose
 *     bytes are a JSON text of at most HD_JWT_INFO_MAX bytes (it then
 *     replaces info, as in Centrifugo); integers beyond 64 bits make the
 *     payload unreadable;
 *   - subs (Centrifugo's connection token) is an object channel → options
 *     {info, b64info, data, b64data, override} (null is as {}), at most
 *     HD_JWT_CHANNELS_MAX of them; its channels and those of `channels`
 *     (duplicates once, subs first) are the server-side subscriptions,
 *     together at most HD_JWT_CHANNELS_MAX. info/b64info are typed as the
 *     token's own; data is any JSON value, b64data standard base64 of any
 *     bytes; override must be an object, of which
 *     force_push_join_leave and join_leave ({"value":<boolean>}) are
 *     used; other members are ignored;
 *   - nbf is checked against `now` with `leeway` seconds, then aud (a
 *     string, or an array of strings one of which matches) and iss when
 *     configured, and exp (+ leeway) last: an expired token is told apart
 *     (HD_EEXPIRED) because the client then fetches a new one, so it is
 *     reported only when everything else holds; iat is not checked.
 * Costs: the header and payload are decoded twice (here and in libjwt),
 * and libjwt parses the PEM key again for each key it tries; bounded by
 * HD_JWT_TOKEN_MAX and HD_JWT_KEYS_MAX, paid once per connect or subscribe.
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
#define HD_JWT_INFO_MAX 4096   /* a b64info's decoded bytes, at most */

struct hd_jwt_config {
	/* HMAC secrets (HS256/384/512), NULL-terminated list of borrowed
	 * strings; NULL for none. */
	const char *const *hmac_secrets;
	/* PEM files with an RSA (RS256/384/512) or EC P-256 (ES256) public
	 * key each, NULL-terminated list; NULL for none. */
	const char *const *public_key_files;
	/* JWKS files (RFC 7517 {"keys":[…]}): RSA (n, e), EC P-256 (crv, x,
	 * y) and oct (k) keys, each with an optional "kid"; NULL-terminated
	 * list; NULL for none. */
	const char *const *jwks_files;
	const char *audience;      /* NULL: aud not checked */
	const char *issuer;        /* NULL: iss not checked */
	uint32_t leeway_s;         /* clock skew allowed on exp and nbf */
};

struct hd_jwt_keys;

/* Loads the keys; cfg and its strings are borrowed for the call only (the
 * keys keep copies). Returns 0 and *out (owned, NULL when no key is
 * configured at all), or HD_ECONFIG with err saying which file or secret is
 * unusable (unreadable, not a PEM public key, an unsupported key type or
 * curve, an RSA key under 2048 bits, an empty secret, a secret that is a
 * PEM text, more than HD_JWT_KEYS_MAX keys). Main thread, at start. */
int hd_jwt_keys_new(const struct hd_jwt_config *cfg, struct hd_jwt_keys **out,
		    struct hd_error *err);
/* Frees the keys, wiping the secrets; k may be NULL. */
void hd_jwt_keys_free(struct hd_jwt_keys *k);

/* The options of one server-side subscription (an entry of the subs
 * claim); every member NULL when the channel has none (a `channels` entry). */
struct hd_jwt_sub {
	char *info;                /* info or b64info as minified JSON, or NULL */
	char *data;                /* data as minified JSON, or b64data's bytes; a NUL */
	size_t data_len;           /* follows them; NULL when absent */
	bool data_b64;             /* data came from b64data (may be any bytes) */
	bool push_join_leave;      /* override.force_push_join_leave: the client gets
	                            * the channel's join and leave pushes */
	bool join_leave_set;       /* override.join_leave is there: join_leave, not the */
	bool join_leave;           /* namespace's join-leave, says whether the client's
	                            * join and leave on this channel are announced */
};

/* What herald uses of a token. Owned by the claims; hd_jwt_claims_fini. */
struct hd_jwt_claims {
	char *sub;                 /* the user id; "" when absent (anonymous) */
	int64_t exp;               /* 0 when absent */
	int64_t iat;
	char *channel;             /* subscription tokens: the channel; NULL when absent */
	char **channels;           /* server-side subscriptions to make at connect: */
	size_t nchannels;          /* the subs claim's channels, then channels' */
	struct hd_jwt_sub *subs;   /* nchannels options, parallel to channels; NULL
	                            * when the token has no subs claim */
	char *info;                /* info (or b64info) as minified JSON; NULL when absent */
};

/*
 * Verifies token[0, len) at time now_s (Unix seconds). Returns 0 and fills
 * out; HD_EEXPIRED when everything holds but exp (+ leeway) is past;
 * HD_EUNAUTH for anything else (malformed, unknown or refused algorithm,
 * bad signature, nbf in the future, wrong aud/iss, a claim of the wrong
 * type, no keys) with err->msg saying which (it never quotes the token).
 * out is zeroed first and must be finished with hd_jwt_claims_fini in every
 * case; on an error it holds nothing. keys (borrowed) may be NULL: then
 * every token is HD_EUNAUTH. token need not be NUL-terminated. Any thread;
 * leaves no error of its own on the thread's OpenSSL error queue.
 */
int hd_jwt_verify(const struct hd_jwt_keys *keys, const char *token, size_t len, int64_t now_s,
		  struct hd_jwt_claims *out, struct hd_error *err);
/*
 * Parses text[0, len), the JSON text of a Centrifugo `subs` object
 * (channel → {info, b64info, data, b64data, override}, or null) as the
 * subs claim is read above: the connect proxy's result.subs goes through
 * here too. Fills out->channels, out->subs and out->nchannels (out zeroed
 * by the caller; finish with hd_jwt_claims_fini in every case). label
 * starts each error message ("result.subs"). Returns 0, or HD_EUNAUTH
 * with err saying which entry is wrong (not JSON, a repeated channel,
 * more than HD_JWT_CHANNELS_MAX channels, an option of the wrong type, bad
 * base64, a b64info over HD_JWT_INFO_MAX bytes or not JSON). Pure.
 */
int hd_jwt_subs_parse(const char *text, size_t len, const char *label, struct hd_jwt_claims *out,
		      struct hd_error *err);
/* Frees what c holds and zeroes it; idempotent. */
void hd_jwt_claims_fini(struct hd_jwt_claims *c);

#endif
