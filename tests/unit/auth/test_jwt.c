/*
 * Unit tests for auth/jwt.c: each algorithm accepted with the key it is
 * for, every forgery the header names refused, claims typed and checked,
 * malformed text refused before decoding, key loading errors.
 *
 * Keys are made at test time (RSA 2048, EC P-256 and a few unusable ones)
 * and their public halves written as PEM files to a temporary directory.
 * Tokens are signed two ways: by libjwt's own encoder (an independent
 * producer for HS* and RS*), and by the helpers below, built on OpenSSL,
 * which can also write the tokens libjwt refuses to make (alg none with a
 * signature, a PEM used as an HMAC secret, DER ECDSA signatures, odd
 * headers). ES256 is also checked against the RFC 7515 A.3 example.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/jwt.h"

#define NOW 1700000000LL

/* RFC 7515 A.3: the P-256 public key (its JWK "x" and "y" as a PEM) and the
 * ES256 JWS made with it; the payload's exp is 1300819380. */
static const char rfc_ec_pem[] = "-----BEGIN PUBLIC KEY-----\n"
				 "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEf83OJ3D2xF1Bg8vub9tLe1gHMzV7\n"
				 "6e8Tus9uPHvRVEXH8UTNG72bfocs3+257rn0s2ldbqkLJK2KRiMohYjlrQ==\n"
				 "-----END PUBLIC KEY-----\n";
static const char rfc_es256_token[] =
	"eyJhbGciOiJFUzI1NiJ9."
	"eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ."
	"DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

static const char secret1[] = "first-secret-of-at-least-32-bytes!!";
static const char secret2[] = "second-secret-of-at-least-32-bytes!";

/* Made once by the group setup. */
static struct {
	char dir[64];
	char rsa_pub[128], ec_pub[128], rfc_pub[128];
	char ec384_pub[128], rsa1024_pub[128], ed25519_pub[128];
	char priv[128], garbage[128], missing[128], two_keys[128];
	EVP_PKEY *rsa, *ec;
	char *rsa_priv_pem, *rsa_pub_pem, *ec_priv_pem;
} fx;

/* ---- helpers ---- */

static char *pem_of(EVP_PKEY *k, bool private_key)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *s;
	long n;

	assert_non_null(b);
	assert_int_equal(private_key ? PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL)
				     : PEM_write_bio_PUBKEY(b, k),
			 1);
	n = BIO_get_mem_data(b, &data);
	s = malloc((size_t)n + 1);
	memcpy(s, data, (size_t)n);
	s[n] = '\0';
	BIO_free(b);
	return s;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
	fclose(f);
}

static void write_public(const char *path, EVP_PKEY *k)
{
	char *pem = pem_of(k, false);
	write_file(path, pem);
	free(pem);
}

static char *b64url(const void *data, size_t n)
{
	char *s = malloc(4 * ((n + 2) / 3) + 1);
	int len = EVP_EncodeBlock((unsigned char *)s, data, (int)n);
	int o = 0;

	for (int i = 0; i < len; i++) {
		if (s[i] == '=')
			break;
		s[o++] = s[i] == '+' ? '-' : s[i] == '/' ? '_' : s[i];
	}
	s[o] = '\0';
	return s;
}

/* "b64(header).b64(payload)", the signing input. */
static char *signing_input(const char *header, const char *payload)
{
	char *h = b64url(header, strlen(header)), *p = b64url(payload, strlen(payload));
	char *s = malloc(strlen(h) + strlen(p) + 2);
	sprintf(s, "%s.%s", h, p);
	free(h);
	free(p);
	return s;
}

static char *join(const char *input, const unsigned char *sig, size_t n)
{
	char *b = b64url(sig, n);
	char *s = malloc(strlen(input) + strlen(b) + 2);
	sprintf(s, "%s.%s", input, b);
	free(b);
	return s;
}

static char *tok_hmac(const char *header, const char *payload, const EVP_MD *md,
		      const void *secret, size_t secret_len)
{
	char *in = signing_input(header, payload), *t;
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned mac_len = 0;

	assert_non_null(HMAC(md, secret, (int)secret_len, (unsigned char *)in, strlen(in), mac,
			     &mac_len));
	t = join(in, mac, mac_len);
	free(in);
	return t;
}

/* t with its payload replaced and its header and signature kept. */
static char *swap_payload(const char *t, const char *payload)
{
	const char *d1 = strchr(t, '.'), *d2 = strrchr(t, '.');
	char *p = b64url(payload, strlen(payload));
	char *s = malloc(strlen(t) + strlen(p) + 1);
	sprintf(s, "%.*s.%s%s", (int)(d1 - t), t, p, d2);
	free(p);
	return s;
}

static char *hs256(const char *header, const char *payload, const char *secret)
{
	return tok_hmac(header, payload, EVP_sha256(), secret, strlen(secret));
}

/* An RS* or ES* token; for EC, jose picks the RFC 7518 r||s form over
 * OpenSSL's DER. */
static char *tok_pkey(const char *header, const char *payload, EVP_PKEY *k, const EVP_MD *md,
		      bool jose)
{
	char *in = signing_input(header, payload), *t;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char sig[1024], raw[64];
	size_t n = sizeof(sig);

	assert_int_equal(EVP_DigestSignInit(ctx, NULL, md, NULL, k), 1);
	assert_int_equal(EVP_DigestSign(ctx, sig, &n, (unsigned char *)in, strlen(in)), 1);
	EVP_MD_CTX_free(ctx);
	if (jose && EVP_PKEY_get_base_id(k) == EVP_PKEY_EC) {
		const unsigned char *p = sig;
		ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)n);
		assert_non_null(es);
		assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, 32), 32);
		assert_int_equal(BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + 32, 32), 32);
		ECDSA_SIG_free(es);
		t = join(in, raw, 64);
	} else {
		t = join(in, sig, n);
	}
	free(in);
	return t;
}

/* A token made by libjwt's encoder with the given claims. */
static char *tok_libjwt(jwt_alg_t alg, const char *key, const char *claims)
{
	jwt_t *j = NULL;
	char *t;

	assert_int_equal(jwt_new(&j), 0);
	assert_int_equal(jwt_add_grants_json(j, claims), 0);
	assert_int_equal(jwt_set_alg(j, alg, (const unsigned char *)key, (int)strlen(key)), 0);
	t = jwt_encode_str(j);
	assert_non_null(t);
	jwt_free(j);
	return t;
}

struct opts {
	const char *const *secrets;
	const char *const *files;
	const char *aud, *iss;
	uint32_t leeway;
};

static struct hd_jwt_keys *keys_of(struct opts o)
{
	struct hd_jwt_config cfg = {
		.hmac_secrets = o.secrets,
		.public_key_files = o.files,
		.audience = o.aud,
		.issuer = o.iss,
		.leeway_s = o.leeway,
	};
	struct hd_jwt_keys *k = NULL;
	struct hd_error err = {0};
	int rc = hd_jwt_keys_new(&cfg, &k, &err);
	if (rc)
		fail_msg("keys: %s", err.msg);
	assert_non_null(k);
	return k;
}

/* Expects no keys object; returns the code. */
static int keys_error(struct opts o, struct hd_error *err)
{
	static char not_null;
	struct hd_jwt_config cfg = {
		.hmac_secrets = o.secrets,
		.public_key_files = o.files,
		.audience = o.aud,
		.issuer = o.iss,
		.leeway_s = o.leeway,
	};
	struct hd_jwt_keys *k = (struct hd_jwt_keys *)&not_null; /* must be reset */
	int rc = hd_jwt_keys_new(&cfg, &k, err);
	assert_null(k);
	return rc;
}

static const char *const one_secret[] = {secret1, NULL};

/* Verifies t at NOW and checks the error contract; returns the code. */
static int verify_at(const struct hd_jwt_keys *k, const char *t, int64_t now,
		     struct hd_jwt_claims *c, struct hd_error *err)
{
	int rc = hd_jwt_verify(k, t, strlen(t), now, c, err);
	if (rc) {
		assert_int_equal(err->code, rc);
		assert_true(err->msg[0] != '\0');
		assert_null(c->sub);
		assert_null(c->channels);
		assert_null(c->info);
	} else {
		assert_non_null(c->sub);
	}
	return rc;
}

/* Expects t refused with HD_EUNAUTH and a message containing `why`. */
static void refused(const struct hd_jwt_keys *k, const char *t, const char *why)
{
	struct hd_jwt_claims c;
	struct hd_error err;
	int rc = verify_at(k, t, NOW, &c, &err);
	if (rc != HD_EUNAUTH)
		fail_msg("expected HD_EUNAUTH for %s, got %d (%s)", why, rc, err.msg);
	if (!strstr(err.msg, why))
		fail_msg("expected \"%s\" in \"%s\"", why, err.msg);
	hd_jwt_claims_fini(&c);
}

static void accepted(const struct hd_jwt_keys *k, const char *t)
{
	struct hd_jwt_claims c;
	struct hd_error err;
	if (verify_at(k, t, NOW, &c, &err) != 0)
		fail_msg("refused: %s", err.msg);
	hd_jwt_claims_fini(&c);
}

/* One token signed HS256 with secret1: its header (NULL: {"alg":"HS256"})
 * and payload, and why it is refused (a part of the message), or NULL when
 * it is accepted. */
struct claim_case {
	const char *header, *payload, *why;
};

/* Checks each case of a list that ends with {0} against k. */
static void claim_cases(const struct hd_jwt_keys *k, const struct claim_case *cs)
{
	for (; cs->payload; cs++) {
		char *t = hs256(cs->header ? cs->header : "{\"alg\":\"HS256\"}", cs->payload, secret1);
		if (cs->why)
			refused(k, t, cs->why);
		else
			accepted(k, t);
		free(t);
	}
}

/* ---- setup ---- */

static int setup(void **state)
{
	EVP_PKEY *k;

	strcpy(fx.dir, "/tmp/herald-jwt-XXXXXX");
	assert_non_null(mkdtemp(fx.dir));
#define PATH(field, name) snprintf(fx.field, sizeof(fx.field), "%s/" name, fx.dir)
	PATH(rsa_pub, "rsa.pem");
	PATH(ec_pub, "ec.pem");
	PATH(rfc_pub, "rfc7515.pem");
	PATH(ec384_pub, "ec384.pem");
	PATH(rsa1024_pub, "rsa1024.pem");
	PATH(ed25519_pub, "ed25519.pem");
	PATH(priv, "private.pem");
	PATH(garbage, "garbage.pem");
	PATH(missing, "missing.pem");
	PATH(two_keys, "two.pem");
#undef PATH
	fx.rsa = EVP_RSA_gen(2048);
	fx.ec = EVP_EC_gen("P-256");
	assert_non_null(fx.rsa);
	assert_non_null(fx.ec);
	write_public(fx.rsa_pub, fx.rsa);
	write_public(fx.ec_pub, fx.ec);
	write_file(fx.rfc_pub, rfc_ec_pem);
	fx.rsa_priv_pem = pem_of(fx.rsa, true);
	fx.rsa_pub_pem = pem_of(fx.rsa, false);
	fx.ec_priv_pem = pem_of(fx.ec, true);
	write_file(fx.priv, fx.rsa_priv_pem);
	write_file(fx.garbage, "this is not a key\n");

	/* The EC key then the RSA key in one file: the first block counts. */
	char *ec_pem = pem_of(fx.ec, false);
	char *both = malloc(strlen(ec_pem) + strlen(fx.rsa_pub_pem) + 1);
	sprintf(both, "%s%s", ec_pem, fx.rsa_pub_pem);
	write_file(fx.two_keys, both);
	free(both);
	free(ec_pem);

	k = EVP_EC_gen("P-384");
	write_public(fx.ec384_pub, k);
	EVP_PKEY_free(k);
	k = EVP_RSA_gen(1024);
	write_public(fx.rsa1024_pub, k);
	EVP_PKEY_free(k);
	k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	write_public(fx.ed25519_pub, k);
	EVP_PKEY_free(k);
	return 0;
}

static int teardown(void **state)
{
	const char *files[] = {fx.rsa_pub, fx.ec_pub,	fx.rfc_pub, fx.ec384_pub, fx.rsa1024_pub,
			       fx.ed25519_pub, fx.priv, fx.garbage, fx.two_keys};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		unlink(files[i]);
	rmdir(fx.dir);
	EVP_PKEY_free(fx.rsa);
	EVP_PKEY_free(fx.ec);
	free(fx.rsa_priv_pem);
	free(fx.rsa_pub_pem);
	free(fx.ec_priv_pem);
	return 0;
}

/* ---- algorithms ---- */

static void test_hs_all_sizes_and_claims(void **state)
{
	struct hd_jwt_keys *k = keys_of((struct opts){.secrets = one_secret});
	const jwt_alg_t algs[] = {JWT_ALG_HS256, JWT_ALG_HS384, JWT_ALG_HS512};
	struct hd_jwt_claims c;
	struct hd_error err;

	for (size_t i = 0; i < 3; i++) {
		char *t = tok_libjwt(algs[i], secret1,
				     "{\"sub\":\"42\",\"exp\":1700003600,\"iat\":1699999000,"
				     "\"channel\":\"rides:981\",\"channels\":[\"user:42\",\"news\"],"
				     "\"info\":{ \"name\" : \"Ada\", \"tags\": [1, 2.5, null] }}");
		assert_int_equal(verify_at(k, t, NOW, &c, &err), 0);
		assert_string_equal(c.sub, "42");
		assert_int_equal(c.exp, 1700003600);
		assert_int_equal(c.iat, 1699999000);
		assert_string_equal(c.channel, "rides:981");
		assert_int_equal(c.nchannels, 2);
		assert_string_equal(c.channels[0], "user:42");
		assert_string_equal(c.channels[1], "news");
		assert_string_equal(c.info, "{\"name\":\"Ada\",\"tags\":[1,2.5,null]}");
		hd_jwt_claims_fini(&c);
		hd_jwt_claims_fini(&c); /* idempotent */
		free(t);
	}
	hd_jwt_keys_free(k);
}

static void test_minimal_claims(void **state)
{
	struct hd_jwt_keys *k = keys_of((struct opts){.secrets = one_secret});
	struct hd_jwt_claims c;
	struct hd_error err;
	char *t = hs256("{\"alg\":\"HS256\"}", "{}", secret1);

	assert_int_equal(verify_at(k, t, NOW, &c, &err), 0);
	assert_string_equal(c.sub, "");
	assert_int_equal(c.exp, 0);
	assert_int_equal(c.iat, 0);
	assert_null(c.channel);
	assert_null(c.channels);
	assert_int_equal(c.nchannels, 0);
	assert_null(c.info);
	hd_jwt_claims_fini(&c);
	free(t);

	/* info is minified as sent, member order kept. */
	t = hs256("{\"alg\":\"HS256\"}",
		  "{\"info\" : { \"z\" : [ 1 , { \"a\" : \"\\u00e9 \\\" x\" } ] ,\n \"b\" : true } }",
		  secret1);
	assert_int_equal(verify_at(k, t, NOW, &c, &err), 0);
	assert_string_equal(c.info, "{\"z\":[1,{\"a\":\"\u00e9 \\\" x\"}],\"b\":true}");
	hd_jwt_claims_fini(&c);
	free(t);

	/* info may be any JSON value, a string or null included. */
	t = hs256("{\"alg\":\"HS256\"}", "{\"info\":\"x\",\"channels\":[]}", secret1);
	assert_int_equal(verify_at(k, t, NOW, &c, &err), 0);
	assert_string_equal(c.info, "\"x\"");
	assert_int_equal(c.nchannels, 0);
	hd_jwt_claims_fini(&c);
	free(t);
	t = hs256("{\"alg\":\"HS256\"}", "{\"info\":null}", secret1);
	assert_int_equal(verify_at(k, t, NOW, &c, &err), 0);
	assert_string_equal(c.info, "null");
	hd_jwt_claims_fini(&c);
	free(t);
	hd_jwt_keys_free(k);
}

static void test_rs_all_sizes(void **state)
{
	const char *files[] = {fx.rsa_pub, NULL};
	struct hd_jwt_keys *k = keys_of((struct opts){.files = files});
	const jwt_alg_t algs[] = {JWT_ALG_RS256, JWT_ALG_RS384, JWT_ALG_RS512};

	for (size_t i = 0; i < 3; i++) {
		char *t = tok_libjwt(algs[i], fx.rsa_priv_pem, "{\"sub\":\"rsa\"}");
		accepted(k, t);
		free(t);
	}
	char *t = tok_pkey("{\"alg\":\"RS256\"}", "{\"sub\":\"x\"}", fx.rsa, EVP_sha256(), false);
	accepted(k, t);
	/* Another payload under the same signature. */
	char *forged = swap_payload(t, "{\"sub\":\"y\"}");
	refused(k, forged, "does not verify");
	/* The failed check left nothing on the queue the TLS code reads. */
	assert_int_equal(ERR_peek_error(), 0);
	free(forged);
	free(t);
	hd_jwt_keys_free(k);
}

static void test_es256_jose_signature(void **state)
{
	const char *files[] = {fx.ec_pub, NULL};
	struct hd_jwt_keys *k = keys_of((struct opts){.files = files});
	struct hd_jwt_claims c;
	struct hd_error err;

	/* RFC 7515 / 7518 §3.4: r||s, 32 bytes each, as the JOSE world signs. */
	for (int i = 0; i < 20; i++) { /* r or s with leading zero bytes now and then */
		char *t = tok_pkey("{\"alg\":\"ES256\",\"typ\":\"JWT\"}", "{\"sub\":\"ec\"}", fx.ec,
				   EVP_sha256(), true);
		assert_int_equal(verify_at(k, t, NOW, &c, &err), 0);
		assert_string_equal(c.sub, "ec");
		hd_jwt_claims_fini(&c);
		free(t);
	}
	/* OpenSSL's DER form is not a JWS signature. */
	char *t = tok_pkey("{\"alg\":\"ES256\"}", "{\"sub\":\"ec\"}", fx.ec, EVP_sha256(), false);
	refused(k, t, "wrong length");
	free(t);
	/* libjwt's encoder writes r||s as well. */
	t = tok_libjwt(JWT_ALG_ES256, fx.ec_priv_pem, "{\"sub\":\"ec\"}");
	accepted(k, t);
	free(t);
	/* A P-256 key is for ES256 only: ES384 is refused before libjwt,
	 * which would check it with that key. */
	t = tok_pkey("{\"alg\":\"ES384\"}", "{}", fx.ec, EVP_sha384(), true);
	refused(k, t, "unsupported alg");
	free(t);
	hd_jwt_keys_free(k);
}

static void test_es256_rfc7515_vector(void **state)
{
	const char *files[] = {fx.rfc_pub, NULL};
	struct hd_jwt_keys *k = keys_of((struct opts){.files = files, .iss = "joe"});
	struct hd_jwt_claims c;
	struct hd_error err;

	assert_int_equal(verify_at(k, rfc_es256_token, 1300819300, &c, &err), 0);
	assert_int_equal(c.exp, 1300819380);
	assert_string_equal(c.sub, "");
	hd_jwt_claims_fini(&c);
	assert_int_equal(verify_at(k, rfc_es256_token, 1300819380, &c, &err), HD_EEXPIRED);
	hd_jwt_claims_fini(&c);

	/* The last signature character changed (Q -> R). */
	char *t = strdup(rfc_es256_token);
	t[strlen(t) - 1] = 'R';
	refused(k, t, "not canonical"); /* its low bits are not zero */
	t[strlen(t) - 1] = 'A';
	assert_int_equal(verify_at(k, t, 1300819300, &c, &err), HD_EUNAUTH);
	assert_non_null(strstr(err.msg, "does not verify"));
	free(t);
	hd_jwt_keys_free(k);
}

static void test_wrong_secret(void **state)
{
	struct hd_jwt_keys *k = keys_of((struct opts){.secrets = one_secret});
	char *t = tok_libjwt(JWT_ALG_HS256, secret2, "{\"sub\":\"1\"}");
	refused(k, t, "does not verify");
	free(t);
	t = tok_libjwt(JWT_ALG_HS512, "a", "{\"sub\":\"1\"}");
	refused(k, t, "does not verify");
	free(t);
	/* A signature of another algorithm's length never reaches libjwt. */
	char *in = signing_input("{\"alg\":\"HS256\"}", "{}");
	unsigned char sig[48] = {0};
	t = join(in, sig, sizeof(sig));
	refused(k, t, "wrong length");
	free(t);
	free(in);
	hd_jwt_keys_free(k);
}

static void test_alg_none(void **state)
{
	const char *files[] = {fx.rsa_pub, NULL};
	struct hd_jwt_keys *k = keys_of((struct opts){.secrets = one_secret, .files = files});
	const char *nones[] = {"{\"alg\":\"none\"}", "{\"alg\":\"None\"}", "{\"alg\":\"NONE\"}",
			       "{\"typ\":\"JWT\",\"alg\":\"nOnE\"}"};

	for (size_t i = 0; i < 4; i++) {
		char *in = signing_input(nones[i], "{\"sub\":\"admin\"}");
		char *t = malloc(strlen(in) + 2);
		sprintf(t, "%s.", in);
		refused(k, t, "the token has an empty part"); /* no signature */
		free(t);
		t = tok_hmac(nones[i], "{\"sub\":\"admin\"}", EVP_sha256(), secret1, strlen(secret1));
		refused(k, t, "alg none"); /* with a signature, even a right one */
		free(t);
		free(in);
	}
	/* Algorithm names are case-sensitive (libjwt's are not). */
	claim_cases(k, (const struct claim_case[]){
		{"{\"alg\":\"hs256\"}", "{}", "unsupported alg"},
		{"{\"alg\":\"PS256\"}", "{}", "unsupported alg"},
		{"{\"typ\":\"JWT\"}", "{}", "no \"alg\""},
		{"{\"alg\":256}", "{}", "no \"alg\""},
		{0}});
	hd_jwt_keys_free(k);
}

static void test_key_confusion(void **state)
{
	const char *files[] = {fx.rsa_pub, NULL};
	struct hd_jwt_keys *k;
	jwt_t *j = NULL;

	/* HS256 keyed with the public PEM (the very text of the configured
	 * file): anyone holding the public key can make it. */
	char *t = tok_hmac("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", "{\"sub\":\"admin\"}",
			   EVP_sha256(), fx.rsa_pub_pem, strlen(fx.rsa_pub_pem));
	/* libjwt 1.10 alone accepts it when handed that PEM as the key, which
	 * is what "verify with each configured key" would do. */
	assert_int_equal(jwt_decode(&j, t, (const unsigned char *)fx.rsa_pub_pem,
				    (int)strlen(fx.rsa_pub_pem)),
			 0);
	jwt_free(j);

	k = keys_of((struct opts){.files = files});
	refused(k, t, "alg HS256 refused: no HMAC secret is configured");
	hd_jwt_keys_free(k);
	/* With a real secret configured too, HS256 goes to the secrets only. */
	k = keys_of((struct opts){.secrets = one_secret, .files = files});
	refused(k, t, "does not verify");
	hd_jwt_keys_free(k);
	free(t);
}

static void test_rs_token_with_only_hmac(void **state)
{
	struct hd_jwt_keys *k = keys_of((struct opts){.secrets = one_secret});
	char *t = tok_libjwt(JWT_ALG_RS256, fx.rsa_priv_pem, "{\"sub\":\"1\"}");
	refused(k, t, "alg RS256 refused: no RSA public key is configured");
	free(t);
	t = tok_pkey("{\"alg\":\"ES256\"}", "{}", fx.ec, EVP_sha256(), true);
	refused(k, t, "alg ES256 refused: no EC P-256 public key is configured");
	free(t);
	hd_jwt_keys_free(k);

	/* An RSA key and an EC key: each algorithm family meets its own key only. */
	const char *files[] = {fx.ec_pub, fx.rsa_pub, NULL};
	k = keys_of((struct opts){.files = files});
	t = tok_libjwt(JWT_ALG_RS256, fx.rsa_priv_pem, "{\"sub\":\"1\"}");
	accepted(k, t);
	free(t);
	t = tok_pkey("{\"alg\":\"ES256\"}", "{}", fx.ec, EVP_sha256(), true);
	accepted(k, t);
	free(t);
	hd_jwt_keys_free(k);
}

static void test_header_rules(void **state)
{
	struct hd_jwt_keys *k = keys_of((struct opts){.secrets = one_secret});

	claim_cases(k, (const struct claim_case[]){
		{"{\"alg\":\"HS256\",\"kid\":\"no-such-key\"}", "{}", NULL}, /* kid is ignored for now */
		{"{\"alg\":\"HS256\",\"typ\":\"jwt\"}", "{}", NULL},
		{"{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}", "{}", "typ"},
		{"{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}", "{}", "crit"},
		{"{\"alg\":\"HS256\",\"alg\":\"none\"}", "{}", "header is not a JSON object"},
		{"[\"HS256\"]", "{}", "header is not a JSON object"},
		{"{\"alg\":\"HS256\"}x", "{}", "header is not a JSON object"},
		{0}});
	hd_jwt_keys_free(k);
}

static void test_payload_rules(void **state)
{
	struct hd_jwt_keys *k = keys_of((struct opts){.secrets = one_secret});
	char *t;

	claim_cases(k, (const struct claim_case[]){
		{NULL, "[1]", "payload is not a JSON object"},
		{NULL, "{\"sub\":\"a\",\"sub\":\"b\"}", "payload is not a JSON object"},
		{NULL, "{\"n\":99999999999999999999}", "payload is not a JSON object"},
		{NULL, "{\"sub\":\"a\\u0000b\"}", "payload is not a JSON object"},
		{0}});

	/* A raw NUL in the decoded payload, then valid JSON after it. */
	static const char pl[] = "{}\0{\"sub\":\"x\"}";
	char *h = b64url("{\"alg\":\"HS256\"}", 15), *p = b64url(pl, sizeof(pl) - 1);
	char *in = malloc(strlen(h) + strlen(p) + 2);
	unsigned char mac[32];
	unsigned mac_len;
	sprintf(in, "%s.%s", h, p);
	HMAC(EVP_sha256(), secret1, (int)strlen(secret1), (unsigned char *)in, strlen(in), mac,
	     &mac_len);
	t = join(in, mac, mac_len);
	refused(k, t, "payload holds a NUL byte");
	free(t);
	free(in);
	free(h);
	free(p);
	hd_jwt_keys_free(k);
}

/* ---- claims ---- */

static void test_exp_and_leeway(void **state)
{
	struct hd_jwt_keys *k0 = keys_of((struct opts){.secrets = one_secret});
	struct hd_jwt_keys *k30 = keys_of((struct opts){.secrets = one_secret, .leeway = 30});
	struct hd_jwt_claims c;
	struct hd_error err;
	char *t = hs256("{\"alg\":\"HS256\"}", "{\"sub\":\"1\",\"exp\":1700000000}", secret1);

	assert_int_equal(verify_at(k0, t, NOW - 1, &c, &err), 0);
	hd_jwt_claims_fini(&c);
	assert_int_equal(verify_at(k0, t, NOW, &c, &err), HD_EEXPIRED);
	assert_non_null(strstr(err.msg, "expired"));
	hd_jwt_claims_fini(&c);
	assert_int_equal(verify_at(k30, t, NOW + 29, &c, &err), 0);
	assert_int_equal(c.exp, 1700000000);
	hd_jwt_claims_fini(&c);
	assert_int_equal(verify_at(k30, t, NOW + 30, &c, &err), HD_EEXPIRED);
	hd_jwt_claims_fini(&c);
	free(t);

	/* Expired but forged, or expired and for someone else: HD_EUNAUTH. */
	t = hs256("{\"alg\":\"HS256\"}", "{\"exp\":1}", secret2);
	assert_int_equal(verify_at(k0, t, NOW, &c, &err), HD_EUNAUTH);
	free(t);
	t = hs256("{\"alg\":\"HS256\"}", "{\"exp\":1,\"sub\":7}", secret1);
	assert_int_equal(verify_at(k0, t, NOW, &c, &err), HD_EUNAUTH);
	free(t);

	/* Fractions round down; types and ranges are checked. */
	t = hs256("{\"alg\":\"HS256\"}", "{\"exp\":1700000000.9}", secret1);
	assert_int_equal(verify_at(k0, t, NOW - 1, &c, &err), 0);
	assert_int_equal(c.exp, 1700000000);
	hd_jwt_claims_fini(&c);
	free(t);
	claim_cases(k0, (const struct claim_case[]){
		{NULL, "{\"exp\":\"1800000000\"}", "claim exp must be a number"},
		{NULL, "{\"exp\":1e300}", "claim exp is out of range"},
		{NULL, "{\"iat\":null}", "claim iat must be a number"},
		{0}});
	/* The far ends of int64 do not overflow. */
	t = hs256("{\"alg\":\"HS256\"}", "{\"exp\":9223372036854775807,\"nbf\":-9223372036854775807}",
		  secret1);
	accepted(k30, t);
	free(t);
	hd_jwt_keys_free(k0);
	hd_jwt_keys_free(k30);
}

static void test_nbf(void **state)
{
	struct hd_jwt_keys *k = keys_of((struct opts){.secrets = one_secret, .leeway = 10});

	claim_cases(k, (const struct claim_case[]){
		{NULL, "{\"nbf\":1700000011}", "not valid yet"},
		{NULL, "{\"nbf\":1700000010}", NULL},
		{NULL, "{\"nbf\":true}", "claim nbf must be a number"},
		/* Not valid yet and expired: not yet wins, a new token would not help. */
		{NULL, "{\"nbf\":1800000000,\"exp\":1}", "not valid yet"},
		{0}});
	hd_jwt_keys_free(k);
}

static void test_audience(void **state)
{
	struct hd_jwt_keys *k = keys_of((struct opts){.secrets = one_secret, .aud = "herald"});
	struct hd_jwt_keys *any = keys_of((struct opts){.secrets = one_secret});
	char *t;

	claim_cases(k, (const struct claim_case[]){
		{NULL, "{\"aud\":\"herald\"}", NULL},
		{NULL, "{\"aud\":[\"other\",\"herald\"]}", NULL},
		{0}});
	t = hs256("{\"alg\":\"HS256\"}", "{\"aud\":\"other\"}", secret1);
	refused(k, t, "not for this audience");
	accepted(any, t); /* not configured: not checked */
	free(t);
	claim_cases(k, (const struct claim_case[]){
		{NULL, "{\"aud\":[\"other\",\"Herald\"]}", "not for this audience"},
		{NULL, "{\"aud\":[]}", "not for this audience"},
		{NULL, "{\"aud\":[\"herald\",1]}", "claim aud must be a string or an array of strings"},
		{NULL, "{\"aud\":{\"herald\":1}}", "claim aud must be a string or an array of strings"},
		{NULL, "{\"sub\":\"1\"}", "claim aud is missing"},
		/* A wrong audience is HD_EUNAUTH even when the token has also expired. */
		{NULL, "{\"aud\":\"other\",\"exp\":1}", "not for this audience"},
		{0}});
	hd_jwt_keys_free(k);
	hd_jwt_keys_free(any);
}

static void test_issuer(void **state)
{
	struct hd_jwt_keys *k = keys_of((struct opts){.secrets = one_secret, .iss = "https://auth"});

	claim_cases(k, (const struct claim_case[]){
		{NULL, "{\"iss\":\"https://auth\"}", NULL},
		{NULL, "{\"iss\":\"https://evil\"}", "expected issuer"},
		{NULL, "{\"iss\":[\"https://auth\"]}", "expected issuer"},
		{NULL, "{}", "expected issuer"},
		{0}});
	hd_jwt_keys_free(k);
}

static void test_typed_claims(void **state)
{
	struct hd_jwt_keys *k = keys_of((struct opts){.secrets = one_secret});
	char *t;

	claim_cases(k, (const struct claim_case[]){
		{NULL, "{\"sub\":42}", "claim sub must be a string"},
		{NULL, "{\"sub\":null}", "claim sub must be a string"},
		{NULL, "{\"channel\":[\"a\"]}", "claim channel must be a string"},
		{NULL, "{\"channels\":[\"a\",1]}", "claim channels must be an array of strings"},
		{NULL, "{\"channels\":\"a\"}", "claim channels must be an array of strings"},
		{0}});

	/* HD_JWT_CHANNELS_MAX entries pass; one more does not. */
	char payload[1024] = "{\"channels\":[";
	for (int i = 0; i < HD_JWT_CHANNELS_MAX; i++)
		sprintf(payload + strlen(payload), "%s\"c%d\"", i ? "," : "", i);
	strcat(payload, "]}");
	t = hs256("{\"alg\":\"HS256\"}", payload, secret1);
	struct hd_jwt_claims c;
	struct hd_error err;
	assert_int_equal(verify_at(k, t, NOW, &c, &err), 0);
	assert_int_equal(c.nchannels, HD_JWT_CHANNELS_MAX);
	assert_string_equal(c.channels[HD_JWT_CHANNELS_MAX - 1], "c63");
	hd_jwt_claims_fini(&c);
	free(t);
	strcpy(payload + strlen(payload) - 2, ",\"one-more\"]}");
	t = hs256("{\"alg\":\"HS256\"}", payload, secret1);
	refused(k, t, "claim channels has 65 entries");
	free(t);
	hd_jwt_keys_free(k);
}

/* Centrifugo's b64info and subs claims (auth/jwt.h). */
static void test_b64info_and_subs(void **state)
{
	struct hd_jwt_keys *k = keys_of((struct opts){.secrets = one_secret});
	struct hd_jwt_claims c;
	struct hd_error err;
	char *t;

	/* b64info (base64 of {"a": 1}) wins over info, minified; "" is absent. */
	t = hs256("{\"alg\":\"HS256\"}", "{\"info\":{\"x\":2},\"b64info\":\"eyJhIjogMX0=\"}", secret1);
	assert_int_equal(verify_at(k, t, NOW, &c, &err), 0);
	assert_string_equal(c.info, "{\"a\":1}");
	hd_jwt_claims_fini(&c);
	free(t);
	t = hs256("{\"alg\":\"HS256\"}", "{\"info\":{\"x\":2},\"b64info\":\"\"}", secret1);
	assert_int_equal(verify_at(k, t, NOW, &c, &err), 0);
	assert_string_equal(c.info, "{\"x\":2}");
	hd_jwt_claims_fini(&c);
	free(t);
	/* Padding may be left out. */
	t = hs256("{\"alg\":\"HS256\"}", "{\"b64info\":\"eyJhIjogMX0\"}", secret1);
	assert_int_equal(verify_at(k, t, NOW, &c, &err), 0);
	assert_string_equal(c.info, "{\"a\":1}");
	hd_jwt_claims_fini(&c);
	free(t);

	/* subs: its channels first (object order) with their options, then
	 * channels' others; subs' data as minified JSON, b64data as bytes. */
	t = hs256("{\"alg\":\"HS256\"}",
		  "{\"sub\":\"42\",\"channels\":[\"news\",\"b\"],\"subs\":{"
		  "\"b\":{\"info\":{ \"role\" : \"mod\" },\"data\":{ \"welcome\" : true },\"override\":{\"presence\":{\"value\":true}}},"
		  "\"a\":{\"b64info\":\"WzFd\",\"b64data\":\"AP8=\",\"override\":{\"force_push_join_leave\":{\"value\":true},"
		  "\"join_leave\":{\"value\":false}}},"
		  "\"c\":null,\"d\":{\"info\":null,\"data\":null,\"other\":1}}}",
		  secret1);
	assert_int_equal(verify_at(k, t, NOW, &c, &err), 0);
	assert_int_equal(c.nchannels, 5);
	assert_non_null(c.subs);
	assert_string_equal(c.channels[0], "b");
	assert_string_equal(c.subs[0].info, "{\"role\":\"mod\"}");
	assert_string_equal(c.subs[0].data, "{\"welcome\":true}");
	assert_int_equal(c.subs[0].data_len, 16);
	assert_false(c.subs[0].data_b64);
	assert_string_equal(c.channels[1], "a");
	assert_string_equal(c.subs[1].info, "[1]");
	assert_int_equal(c.subs[1].data_len, 2);
	assert_memory_equal(c.subs[1].data, "\x00\xff", 2);
	assert_true(c.subs[1].data_b64);
	assert_true(c.subs[1].push_join_leave);
	assert_false(c.subs[0].push_join_leave);
	assert_true(c.subs[1].join_leave_set);
	assert_false(c.subs[1].join_leave);
	assert_false(c.subs[0].join_leave_set);
	assert_string_equal(c.channels[2], "c");
	assert_null(c.subs[2].info);
	assert_null(c.subs[2].data);
	assert_string_equal(c.channels[3], "d");
	assert_null(c.subs[3].info);
	assert_null(c.subs[3].data);
	assert_string_equal(c.channels[4], "news");
	assert_null(c.subs[4].info);
	hd_jwt_claims_fini(&c);
	free(t);

	/* Without subs, no options. */
	t = hs256("{\"alg\":\"HS256\"}", "{\"channels\":[\"news\"]}", secret1);
	assert_int_equal(verify_at(k, t, NOW, &c, &err), 0);
	assert_null(c.subs);
	hd_jwt_claims_fini(&c);
	free(t);

	/* Refused: bad base64, not JSON, too long, wrong types, too many. */
	claim_cases(k, (const struct claim_case[]){
		{NULL, "{\"b64info\":\"e30*\"}", "claim b64info is not base64"},
		{NULL, "{\"b64info\":\"e30 \"}", "claim b64info is not base64"},
		{NULL, "{\"b64info\":\"AP8=\"}", "claim b64info is not base64 of a JSON text"},
		{NULL, "{\"b64info\":7}", "claim b64info must be a string"},
		{NULL, "{\"subs\":{\"a\":{\"b64data\":\"A\"}}}", "claim subs[a].b64data is not base64"},
		{NULL, "{\"subs\":{\"a\":{\"b64info\":\"e30=x\"}}}", "claim subs[a].b64info is not base64"},
		{NULL, "{\"subs\":[\"a\"]}", "claim subs must be an object"},
		{NULL, "{\"subs\":{\"a\":true}}", "claim subs: the options of a channel must be an object"},
		{NULL, "{\"subs\":{\"a\":{\"override\":1}}}", "claim subs[a].override must be an object"},
		{NULL, "{\"subs\":{\"a\":{\"override\":{\"force_push_join_leave\":true}}}}",
		 "claim subs[a].override.force_push_join_leave must be"},
		{NULL, "{\"subs\":{\"a\":{\"override\":{\"join_leave\":{\"value\":1}}}}}",
		 "claim subs[a].override.join_leave must be"},
		{0}});

	/* b64info of HD_JWT_INFO_MAX bytes passes, one more does not: a JSON
	 * string "xxx…" of that length, base64 encoded. */
	for (size_t extra = 0; extra < 2; extra++) {
		size_t n = HD_JWT_INFO_MAX + extra;
		unsigned char *raw = malloc(n);
		char *b64 = malloc(n / 3 * 4 + 8), *pl = malloc(n / 3 * 4 + 64);
		raw[0] = '"';
		memset(raw + 1, 'x', n - 2);
		raw[n - 1] = '"';
		EVP_EncodeBlock((unsigned char *)b64, raw, (int)n);
		sprintf(pl, "{\"b64info\":\"%s\"}", b64);
		t = hs256("{\"alg\":\"HS256\"}", pl, secret1);
		if (extra == 0) {
			assert_int_equal(verify_at(k, t, NOW, &c, &err), 0);
			assert_int_equal(strlen(c.info), HD_JWT_INFO_MAX);
			hd_jwt_claims_fini(&c);
		} else {
			refused(k, t, "claim b64info decodes to 4097 bytes, at most 4096");
		}
		free(t);
		free(raw);
		free(b64);
		free(pl);
	}

	/* subs and channels together name at most HD_JWT_CHANNELS_MAX channels
	 * (one named by both counts once). */
	char payload[2048] = "{\"subs\":{";
	for (int i = 0; i < HD_JWT_CHANNELS_MAX; i++)
		sprintf(payload + strlen(payload), "%s\"c%d\":{}", i ? "," : "", i);
	strcat(payload, "},\"channels\":[\"c0\"]}");
	t = hs256("{\"alg\":\"HS256\"}", payload, secret1);
	assert_int_equal(verify_at(k, t, NOW, &c, &err), 0);
	assert_int_equal(c.nchannels, HD_JWT_CHANNELS_MAX);
	hd_jwt_claims_fini(&c);
	free(t);
	strcpy(payload + strlen(payload) - 2, ",\"more\"]}");
	t = hs256("{\"alg\":\"HS256\"}", payload, secret1);
	refused(k, t, "claims subs and channels name more than 64 channels");
	free(t);
	hd_jwt_keys_free(k);
}

/* ---- the token text ---- */

/* An HS256 token of exactly `total` characters: {"alg":"HS256"} is 20,
 * the signature 43 and the dots 2, so the payload takes the rest. */
static char *hs256_of_length(size_t total)
{
	size_t b64_len = total - 20 - 43 - 2, n = b64_len * 3 / 4;
	char *pl = malloc(n + 1), *t;

	assert_true(b64_len % 4 != 1);
	memcpy(pl, "{\"info\":\"", 9);
	memset(pl + 9, 'x', n - 11);
	memcpy(pl + n - 2, "\"}", 3);
	t = hs256("{\"alg\":\"HS256\"}", pl, secret1);
	assert_int_equal(strlen(t), total);
	free(pl);
	return t;
}

static void test_malformed_text(void **state)
{
	struct hd_jwt_keys *k = keys_of((struct opts){.secrets = one_secret});
	char *good = hs256("{\"alg\":\"HS256\"}", "{\"sub\":\"1\"}", secret1);
	char buf[HD_JWT_TOKEN_MAX + 64];
	struct hd_jwt_claims c;
	struct hd_error err;

	accepted(k, good);
	/* Two segments, four segments. */
	*strrchr(strcpy(buf, good), '.') = '\0';
	refused(k, buf, "2 parts, not three");
	sprintf(buf, "%s.", good);
	refused(k, buf, "more than three parts");
	sprintf(buf, "%s.abcd", good);
	refused(k, buf, "more than three parts");
	refused(k, "..", "empty part");
	refused(k, "a..b", "empty part");
	refused(k, ".a.b", "empty part");
	/* Characters outside base64url, padding included. */
	sprintf(buf, "%s=", good);
	refused(k, buf, "outside base64url");
	strcpy(buf, good);
	buf[3] = '+';
	refused(k, buf, "outside base64url");
	strcpy(buf, good);
	buf[3] = ' ';
	refused(k, buf, "outside base64url");
	refused(k, "eyJhbGciOiJIUzI1NiJ9.e30.\xc3\xa9", "outside base64url");
	/* A segment length of the form 4k+1 decodes to nothing. */
	refused(k, "eyJhbGciOiJIUzI1NiJ9A.e30.AAAA", "header is not canonical");
	/* "e31" decodes like "e30" ("{}") but with stray low bits. */
	refused(k, "eyJhbGciOiJIUzI1NiJ9.e31.AAAA", "payload is not canonical");
	/* Not JSON at all. */
	refused(k, "aGVsbG8.e30.AAAA", "header is not a JSON object");
	/* A NUL byte inside the given length. */
	strcpy(buf, good);
	buf[5] = '\0';
	assert_int_equal(hd_jwt_verify(k, buf, strlen(good), NOW, &c, &err), HD_EUNAUTH);
	assert_non_null(strstr(err.msg, "outside base64url"));
	/* The length is what counts, not a NUL: a valid token followed by junk. */
	sprintf(buf, "%sJUNK", good);
	assert_int_equal(hd_jwt_verify(k, buf, strlen(good), NOW, &c, &err), 0);
	hd_jwt_claims_fini(&c);
	/* Empty. */
	assert_int_equal(hd_jwt_verify(k, "", 0, NOW, &c, &err), HD_EUNAUTH);
	assert_int_equal(hd_jwt_verify(k, NULL, 0, NOW, &c, &err), HD_EUNAUTH);
	free(good);

	/* A validly signed token over HD_JWT_TOKEN_MAX is refused before it
	 * is read; at the limit it is read. */
	char *t = hs256_of_length(HD_JWT_TOKEN_MAX);
	assert_int_equal(hd_jwt_verify(k, t, strlen(t), NOW, &c, &err), 0);
	hd_jwt_claims_fini(&c);
	free(t);
	t = hs256_of_length(HD_JWT_TOKEN_MAX + 1);
	assert_int_equal(hd_jwt_verify(k, t, strlen(t), NOW, &c, &err), HD_EUNAUTH);
	assert_non_null(strstr(err.msg, "longer than 8192 bytes"));
	free(t);
	/* And plain garbage of a megabyte. */
	size_t huge = 1 << 20;
	char *h = malloc(huge);
	memset(h, 'A', huge);
	assert_int_equal(hd_jwt_verify(k, h, huge, NOW, &c, &err), HD_EUNAUTH);
	assert_non_null(strstr(err.msg, "longer than"));
	free(h);
	hd_jwt_keys_free(k);
}

/* ---- keys ---- */

static void test_rotation(void **state)
{
	const char *two[] = {secret1, secret2, NULL};
	struct hd_jwt_keys *k = keys_of((struct opts){.secrets = two});
	char *t = tok_libjwt(JWT_ALG_HS384, secret2, "{\"sub\":\"new\"}");
	struct hd_jwt_claims c;
	struct hd_error err;

	assert_int_equal(verify_at(k, t, NOW, &c, &err), 0);
	assert_string_equal(c.sub, "new");
	hd_jwt_claims_fini(&c);
	free(t);
	t = tok_libjwt(JWT_ALG_HS256, secret1, "{\"sub\":\"old\"}");
	accepted(k, t);
	free(t);
	t = tok_libjwt(JWT_ALG_HS256, "third-secret", "{\"sub\":\"x\"}");
	refused(k, t, "does not verify");
	free(t);
	hd_jwt_keys_free(k);

	/* Two public keys of different types, and a file holding two keys
	 * (its first, the EC key, is the one loaded). */
	const char *files[] = {fx.two_keys, NULL};
	k = keys_of((struct opts){.files = files});
	t = tok_pkey("{\"alg\":\"ES256\"}", "{}", fx.ec, EVP_sha256(), true);
	accepted(k, t);
	free(t);
	t = tok_libjwt(JWT_ALG_RS256, fx.rsa_priv_pem, "{}");
	refused(k, t, "no RSA public key");
	free(t);
	hd_jwt_keys_free(k);
}

static void test_no_keys(void **state)
{
	struct hd_jwt_claims c;
	struct hd_error err;
	char *t = tok_libjwt(JWT_ALG_HS256, secret1, "{\"sub\":\"1\"}");

	assert_int_equal(verify_at(NULL, t, NOW, &c, &err), HD_EUNAUTH);
	assert_non_null(strstr(err.msg, "no JWT keys"));
	hd_jwt_claims_fini(&c);
	free(t);

	/* Nothing configured: no keys object, no error. */
	const char *none[] = {NULL};
	struct hd_error e2 = {0};
	assert_int_equal(keys_error((struct opts){0}, &e2), 0);
	assert_int_equal(keys_error((struct opts){.secrets = none, .files = none, .aud = "a"}, &e2),
			 0);
	hd_jwt_keys_free(NULL);
}

static void test_key_errors(void **state)
{
	struct hd_error err = {0};
	struct {
		const char *secret, *file, *why;
	} cases[] = {
		{"", NULL, "HMAC secret #2 is empty"},
		{"-----BEGIN PUBLIC KEY-----\nMFkw\n", NULL, "is a PEM text"},
		{NULL, fx.missing, "cannot open public key file"},
		{NULL, fx.garbage, "holds no PEM public key"},
		{NULL, fx.priv, "holds no PEM public key"},
		{NULL, fx.ec384_pub, "only P-256 (ES256) is supported"},
		{NULL, fx.rsa1024_pub, "an RSA key of 1024 bits"},
		{NULL, fx.ed25519_pub, "unsupported key type ED25519"},
		{NULL, fx.dir, "public key file"}, /* a directory */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *secrets[] = {secret1, cases[i].secret, NULL};
		const char *files[] = {fx.rsa_pub, cases[i].file, NULL};
		int rc = keys_error((struct opts){.secrets = cases[i].secret ? secrets : NULL,
						  .files = cases[i].file ? files : NULL},
				   &err);
		assert_int_equal(rc, HD_ECONFIG);
		assert_int_equal(err.code, HD_ECONFIG);
		assert_int_equal(ERR_peek_error(), 0);
		if (!strstr(err.msg, cases[i].why))
			fail_msg("case %zu: expected \"%s\" in \"%s\"", i, cases[i].why, err.msg);
	}

	/* Secrets are named by their position. */
	const char *secrets[] = {"", secret1, NULL};
	assert_int_equal(keys_error((struct opts){.secrets = secrets}, &err), HD_ECONFIG);
	assert_non_null(strstr(err.msg, "HMAC secret #1 is empty"));

	/* HD_JWT_KEYS_MAX keys load; one more does not. */
	const char *many[HD_JWT_KEYS_MAX + 2];
	for (int i = 0; i <= HD_JWT_KEYS_MAX; i++)
		many[i] = secret1;
	many[HD_JWT_KEYS_MAX] = NULL;
	struct hd_jwt_keys *k = keys_of((struct opts){.secrets = many});
	hd_jwt_keys_free(k);
	many[HD_JWT_KEYS_MAX] = secret2;
	many[HD_JWT_KEYS_MAX + 1] = NULL;
	assert_int_equal(keys_error((struct opts){.secrets = many}, &err), HD_ECONFIG);
	assert_non_null(strstr(err.msg, "at most 16"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hs_all_sizes_and_claims),
		cmocka_unit_test(test_minimal_claims),
		cmocka_unit_test(test_rs_all_sizes),
		cmocka_unit_test(test_es256_jose_signature),
		cmocka_unit_test(test_es256_rfc7515_vector),
		cmocka_unit_test(test_wrong_secret),
		cmocka_unit_test(test_alg_none),
		cmocka_unit_test(test_key_confusion),
		cmocka_unit_test(test_rs_token_with_only_hmac),
		cmocka_unit_test(test_header_rules),
		cmocka_unit_test(test_payload_rules),
		cmocka_unit_test(test_exp_and_leeway),
		cmocka_unit_test(test_nbf),
		cmocka_unit_test(test_audience),
		cmocka_unit_test(test_issuer),
		cmocka_unit_test(test_typed_claims),
		cmocka_unit_test(test_b64info_and_subs),
		cmocka_unit_test(test_malformed_text),
		cmocka_unit_test(test_rotation),
		cmocka_unit_test(test_no_keys),
		cmocka_unit_test(test_key_errors),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
