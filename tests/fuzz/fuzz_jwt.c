/*
 * fuzz_jwt — libFuzzer target for the JWT verifier (src/auth/jwt.c), the
 * first code that reads a token a client sends.
 *
 * Input: the whole input is the token text, verified at a fixed time
 * (FUZZ_NOW) against one HMAC secret (FUZZ_SECRET) with a leeway of 30 s,
 * audience and issuer unchecked. A mutated token almost never keeps a
 * valid MAC, so the claims would stay out of reach; hence a second use of
 * the same input: when it starts with '{' it is also read as
 *   <header JSON> '\n' <payload JSON>
 * (no newline: the payload is {}), which is encoded and signed here with
 * FUZZ_SECRET (HMAC-SHA-384 or -512 when the header text names HS384 or
 * HS512, else -256) and verified too. The seeds in tests/fuzz/corpus/jwt/
 * are tokens signed with FUZZ_SECRET, broken tokens, and json_* inputs of
 * the second form.
 *
 * Properties checked:
 *   - the result is 0, HD_EUNAUTH or HD_EEXPIRED, with err->code equal to
 *     it and a message on a refusal;
 *   - a refusal leaves the claims empty;
 *   - an acceptance (0 or HD_EEXPIRED) happens only for a token of at most
 *     HD_JWT_TOKEN_MAX bytes whose third part is exactly the base64url
 *     HMAC-SHA-256, -384 or -512 of the first two with FUZZ_SECRET,
 *     computed here with OpenSSL alone: no forgery passes;
 *   - accepted claims are well formed: sub set, at most
 *     HD_JWT_CHANNELS_MAX channels, each a string, info (when set) JSON
 *     that jansson reads and that is already compact; with a subs claim,
 *     one options entry per channel whose info is such JSON and whose data
 *     is too (or, from b64data, bytes followed by a NUL).
 */
#include "auth/jwt.h"
#include "fuzz_check.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_SECRET "herald-fuzz-secret-0123456789abcdef"
#define FUZZ_NOW 1700000000LL


/* Built on the first input and kept for the process's life. */
static struct hd_jwt_keys *keys;
static bool keys_made;

static void make_keys(void)
{
	static const char *const secrets[] = {FUZZ_SECRET, NULL};
	struct hd_jwt_config cfg = {.hmac_secrets = secrets, .leeway_s = 30};
	struct hd_error err = {0};

	CHECK(hd_jwt_keys_new(&cfg, &keys, &err) == 0 && keys);
	keys_made = true;
}

/* Whether sig[0, sig_len) is the base64url (unpadded) MAC of input under md. */
static bool mac_matches(const EVP_MD *md, const char *input, size_t input_len, const char *sig,
			size_t sig_len)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned mac_len = 0;
	char b64[2 * EVP_MAX_MD_SIZE];
	int n;

	CHECK(HMAC(md, FUZZ_SECRET, (int)strlen(FUZZ_SECRET), (const unsigned char *)input,
		   input_len, mac, &mac_len));
	n = EVP_EncodeBlock((unsigned char *)b64, mac, (int)mac_len);
	while (n > 0 && b64[n - 1] == '=')
		n--;
	for (int i = 0; i < n; i++)
		b64[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
	return (size_t)n == sig_len && memcmp(b64, sig, sig_len) == 0;
}

static void check_signed(const char *t, size_t len)
{
	const char *d1 = memchr(t, '.', len);
	const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - t)) : NULL;
	size_t input_len, sig_len;

	CHECK(len <= HD_JWT_TOKEN_MAX);
	CHECK(d1 && d2);
	input_len = (size_t)(d2 - t);
	sig_len = len - input_len - 1;
	CHECK(memchr(d2 + 1, '.', sig_len) == NULL);
	CHECK(mac_matches(EVP_sha256(), t, input_len, d2 + 1, sig_len) ||
	      mac_matches(EVP_sha384(), t, input_len, d2 + 1, sig_len) ||
	      mac_matches(EVP_sha512(), t, input_len, d2 + 1, sig_len));
}

/* text is compact JSON that jansson reads. */
static void check_compact(const char *text)
{
	json_error_t jerr;
	json_t *v = json_loads(text, JSON_DECODE_ANY, &jerr);
	char *again;
	CHECK(v);
	again = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	CHECK(again && strcmp(again, text) == 0);
	free(again);
	json_decref(v);
}

static void check_claims(const struct hd_jwt_claims *c)
{
	CHECK(c->sub);
	CHECK(c->nchannels <= HD_JWT_CHANNELS_MAX);
	CHECK((c->nchannels == 0) == (c->channels == NULL));
	CHECK(!c->subs || c->nchannels > 0);
	for (size_t i = 0; i < c->nchannels; i++) {
		CHECK(c->channels[i]);
		if (!c->subs)
			continue;
		if (c->subs[i].info)
			check_compact(c->subs[i].info);
		if (c->subs[i].data && !c->subs[i].data_b64) {
			CHECK(strlen(c->subs[i].data) == c->subs[i].data_len);
			check_compact(c->subs[i].data);
		}
		if (c->subs[i].data_b64)
			CHECK(c->subs[i].data && c->subs[i].data[c->subs[i].data_len] == '\0');
	}
	if (c->info)
		check_compact(c->info);
}

static char *b64url(const void *data, size_t n)
{
	char *s = malloc(4 * ((n + 2) / 3) + 1);
	int len = EVP_EncodeBlock((unsigned char *)s, data, (int)n);
	int o = 0;

	for (int i = 0; i < len && s[i] != '='; i++)
		s[o++] = s[i] == '+' ? '-' : s[i] == '/' ? '_' : s[i];
	s[o] = '\0';
	return s;
}

/* The second form of the input, as a token signed with FUZZ_SECRET. */
static char *sign_json(const char *in, size_t size, size_t *len)
{
	const char *nl = memchr(in, '\n', size);
	size_t hlen = nl ? (size_t)(nl - in) : size;
	const EVP_MD *md = memmem(in, hlen, "HS384", 5)	  ? EVP_sha384()
			   : memmem(in, hlen, "HS512", 5) ? EVP_sha512()
							  : EVP_sha256();
	char *h = b64url(in, hlen);
	char *p = nl ? b64url(nl + 1, size - hlen - 1) : b64url("{}", 2);
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned mac_len = 0;
	char *t, *sig;
	size_t input_len = strlen(h) + 1 + strlen(p);

	t = malloc(input_len + 2 * EVP_MAX_MD_SIZE + 2);
	sprintf(t, "%s.%s", h, p);
	CHECK(HMAC(md, FUZZ_SECRET, (int)strlen(FUZZ_SECRET), (unsigned char *)t, input_len, mac,
		   &mac_len));
	sig = b64url(mac, mac_len);
	sprintf(t + input_len, ".%s", sig);
	*len = strlen(t);
	free(sig);
	free(h);
	free(p);
	return t;
}

static void verify_one(const char *t, size_t size)
{
	struct hd_jwt_claims c;
	struct hd_error err;
	int rc;

	rc = hd_jwt_verify(keys, t, size, FUZZ_NOW, &c, &err);
	CHECK(rc == 0 || rc == HD_EUNAUTH || rc == HD_EEXPIRED);
	CHECK(err.code == rc);
	if (rc == 0) {
		CHECK(err.msg[0] == '\0');
		check_signed(t, size);
		check_claims(&c);
	} else {
		CHECK(err.msg[0] != '\0');
		CHECK(c.sub == NULL && c.channel == NULL && c.channels == NULL && c.nchannels == 0 && c.subs == NULL &&
		      c.info == NULL && c.exp == 0 && c.iat == 0);
		if (rc == HD_EEXPIRED)
			check_signed(t, size);
	}
	hd_jwt_claims_fini(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!keys_made)
		make_keys();
	verify_one((const char *)data, size);
	if (size > 0 && data[0] == '{') {
		size_t len;
		char *t = sign_json((const char *)data, size, &len);
		verify_one(t, len);
		free(t);
	}
	return 0;
}
