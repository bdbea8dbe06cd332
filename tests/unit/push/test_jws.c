/*
 * Unit tests for push/jws.c: ES256 and RS256 tokens from every PEM form the
 * providers hand out, each verified twice — by OpenSSL here (the r||s
 * signature turned back into DER) and by Node's crypto (tests/js/
 * jws_verify.js, skipped when node is not on PATH) — and the clear errors
 * for keys that cannot sign.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/err.h"
#include "core/b64.h"
#include "push/jws.h"
#include "node_run.h"

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/encoder.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HEADER_ES "{\"alg\":\"ES256\",\"kid\":\"ABC123DEFG\"}"
#define CLAIMS_ES "{\"iss\":\"DEF123GHIJ\",\"iat\":1700000000}"
#define HEADER_RS "{\"alg\":\"RS256\",\"typ\":\"JWT\"}"
#define CLAIMS_RS                                                                          \
	"{\"iss\":\"herald@example.iam.gserviceaccount.com\",\"scope\":"                   \
	"\"https://www.googleapis.com/auth/firebase.messaging\",\"aud\":"                 \
	"\"https://oauth2.googleapis.com/token\",\"iat\":1700000000,\"exp\":1700003600}"

/* ---- helpers ---- */

/* key written as PEM: "pkcs8" (PRIVATE KEY), "traditional" (EC / RSA
 * PRIVATE KEY) or "spki" (PUBLIC KEY). Returns an owned string. */
static char *pem_of(EVP_PKEY *key, const char *form)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data;
	long n;
	char *s;

	if (strcmp(form, "pkcs8") == 0)
		assert_true(PEM_write_bio_PKCS8PrivateKey(b, key, NULL, NULL, 0, NULL, NULL));
	else if (strcmp(form, "traditional") == 0)
		assert_true(PEM_write_bio_PrivateKey_traditional(b, key, NULL, NULL, 0, NULL, NULL));
	else
		assert_true(PEM_write_bio_PUBKEY(b, key));
	n = BIO_get_mem_data(b, &data);
	s = strndup(data, (size_t)n);
	BIO_free(b);
	return s;
}

static EVP_PKEY *load(const char *pem)
{
	EVP_PKEY *key = NULL;
	struct hd_error err = {0};

	assert_int_equal(hd_jws_key_from_pem(pem, strlen(pem), "test key", &key, &err), 0);
	assert_non_null(key);
	return key;
}

/* Splits token into its three parts, decoded. */
struct parts {
	char header[HD_JWS_PART_MAX + 1];
	char claims[HD_JWS_PART_MAX + 1];
	unsigned char sig[HD_JWS_SIG_MAX];
	size_t sig_len;
	size_t input_len; /* bytes of header "." claims, the signed text */
};

static void split(const char *token, struct parts *p)
{
	const char *d1 = strchr(token, '.');
	const char *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	size_t n;

	assert_non_null(d2);
	assert_null(strchr(d2 + 1, '.'));
	assert_int_equal(hd_b64_decode(token, (size_t)(d1 - token), HD_B64_URL, (unsigned char *)p->header,
					  HD_JWS_PART_MAX, &n),
			 0);
	p->header[n] = '\0';
	assert_int_equal(hd_b64_decode(d1 + 1, (size_t)(d2 - d1 - 1), HD_B64_URL,
					  (unsigned char *)p->claims, HD_JWS_PART_MAX, &n),
			 0);
	p->claims[n] = '\0';
	assert_int_equal(hd_b64_decode(d2 + 1, strlen(d2 + 1), HD_B64_URL, p->sig, sizeof(p->sig),
					  &p->sig_len),
			 0);
	p->input_len = (size_t)(d2 - token);
	/* No padding, no characters outside base64url. */
	for (const char *c = token; *c; c++)
		assert_true(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.",
				   *c) != NULL);
}

/* OpenSSL's verdict on token under key (which holds the public half). */
static bool openssl_verifies(EVP_PKEY *key, enum hd_jws_alg alg, const char *token)
{
	struct parts p;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	unsigned char der[128];
	const unsigned char *sig;
	size_t sig_len;
	bool ok;

	split(token, &p);
	if (alg == HD_JWS_ES256) {
		ECDSA_SIG *es = ECDSA_SIG_new();
		unsigned char *w = der;
		assert_int_equal(p.sig_len, 64);
		assert_true(ECDSA_SIG_set0(es, BN_bin2bn(p.sig, 32, NULL),
					   BN_bin2bn(p.sig + 32, 32, NULL)));
		sig_len = (size_t)i2d_ECDSA_SIG(es, &w);
		ECDSA_SIG_free(es);
		sig = der;
	} else {
		sig = p.sig;
		sig_len = p.sig_len;
	}
	assert_true(EVP_DigestVerifyInit_ex(md, &pctx, "SHA256", NULL, NULL, key, NULL) > 0);
	if (alg == HD_JWS_RS256)
		assert_true(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) > 0);
	ok = EVP_DigestVerify(md, sig, sig_len, (const unsigned char *)token, p.input_len) == 1;
	EVP_MD_CTX_free(md);
	return ok;
}

/* Node's verdict: writes key's public PEM to a temporary file and runs
 * jws_verify.js. Returns the exit status (0 = verified), or -2 without node. */
static int node_verifies(EVP_PKEY *key, const char *token, char *out, size_t cap)
{
	char path[] = "/tmp/hd_test_jws_XXXXXX";
	char args[HD_JWS_TOKEN_MAX + 128];
	char *pem;
	int fd, rc;

	if (!node_available())
		return -2;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	pem = pem_of(key, "spki");
	assert_int_equal(write(fd, pem, strlen(pem)), (ssize_t)strlen(pem));
	close(fd);
	snprintf(args, sizeof(args), "--pem %s '%s'", path, token);
	rc = node_run("jws_verify.js", args, out, cap);
	unlink(path);
	free(pem);
	return rc;
}

/* A token's last signature character changed: a signature that must fail. */
static char *tampered(const char *token)
{
	char *t = strdup(token);
	char *last = t + strlen(t) - 2; /* not the last: its low bits may be unused */
	*last = *last == 'A' ? 'B' : 'A';
	return t;
}

/* Signs with key and alg and checks the token every way. */
static void sign_and_verify(EVP_PKEY *key, enum hd_jws_alg alg, const char *header,
			    const char *claims)
{
	struct hd_error err = {0};
	struct parts p;
	char *token = NULL, *bad;
	char out[8192];
	int rc;

	assert_int_equal(hd_jws_sign(alg, key, header, strlen(header), claims, strlen(claims),
				     &token, &err),
			 0);
	assert_true(strlen(token) < HD_JWS_TOKEN_MAX);
	split(token, &p);
	assert_string_equal(p.header, header);
	assert_string_equal(p.claims, claims);
	assert_int_equal(p.sig_len, alg == HD_JWS_ES256 ? 64 : (size_t)EVP_PKEY_get_size(key));
	assert_true(openssl_verifies(key, alg, token));
	bad = tampered(token);
	assert_false(openssl_verifies(key, alg, bad));

	rc = node_verifies(key, token, out, sizeof(out));
	if (rc != -2) {
		assert_int_equal(rc, 0);
		assert_non_null(strstr(out, "\"claims\""));
		assert_int_equal(node_verifies(key, bad, out, sizeof(out)), 1);
	}
	free(bad);
	free(token);
}

/* ---- tests ---- */

static void test_es256_pkcs8_and_sec1(void **state)
{
	EVP_PKEY *gen = EVP_EC_gen("P-256");
	char *p8 = pem_of(gen, "pkcs8");
	char *sec1 = pem_of(gen, "traditional");
	EVP_PKEY *a, *b;

	assert_non_null(strstr(p8, "-----BEGIN PRIVATE KEY-----"));
	assert_non_null(strstr(sec1, "-----BEGIN EC PRIVATE KEY-----"));
	a = load(p8);
	b = load(sec1);
	sign_and_verify(a, HD_JWS_ES256, HEADER_ES, CLAIMS_ES);
	sign_and_verify(b, HD_JWS_ES256, HEADER_ES, CLAIMS_ES);
	/* ECDSA draws a fresh nonce: two signatures of one text differ. */
	{
		struct hd_error err = {0};
		char *t1 = NULL, *t2 = NULL;
		assert_int_equal(hd_jws_sign(HD_JWS_ES256, a, "{}", 2, "{}", 2, &t1, &err), 0);
		assert_int_equal(hd_jws_sign(HD_JWS_ES256, a, "{}", 2, "{}", 2, &t2, &err), 0);
		assert_string_not_equal(t1, t2);
		free(t1);
		free(t2);
	}
	EVP_PKEY_free(a);
	EVP_PKEY_free(b);
	EVP_PKEY_free(gen);
	free(p8);
	free(sec1);
}

static void test_rs256_pkcs8_and_pkcs1(void **state)
{
	EVP_PKEY *gen = EVP_RSA_gen(2048);
	char *p8 = pem_of(gen, "pkcs8");
	char *p1 = pem_of(gen, "traditional");
	EVP_PKEY *a, *b;

	assert_non_null(strstr(p8, "-----BEGIN PRIVATE KEY-----"));
	assert_non_null(strstr(p1, "-----BEGIN RSA PRIVATE KEY-----"));
	a = load(p8);
	b = load(p1);
	sign_and_verify(a, HD_JWS_RS256, HEADER_RS, CLAIMS_RS);
	sign_and_verify(b, HD_JWS_RS256, HEADER_RS, CLAIMS_RS);
	EVP_PKEY_free(a);
	EVP_PKEY_free(b);
	EVP_PKEY_free(gen);
	free(p8);
	free(p1);
}

/* The key as an FCM service-account JSON carries it: "\n" escapes decoded
 * by the JSON reader, text around it ignored by PEM. */
static void test_pem_inside_text(void **state)
{
	EVP_PKEY *gen = EVP_EC_gen("P-256");
	char *p8 = pem_of(gen, "pkcs8");
	char text[4096];
	EVP_PKEY *k;

	snprintf(text, sizeof(text), "the APNs key, downloaded once:\n%s\ntrailing words\n", p8);
	k = load(text);
	sign_and_verify(k, HD_JWS_ES256, HEADER_ES, CLAIMS_ES);
	EVP_PKEY_free(k);
	EVP_PKEY_free(gen);
	free(p8);
}

static void test_sign_json(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	json_t *h = json_pack("{s:s, s:s}", "alg", "ES256", "kid", "ABC123DEFG");
	json_t *c = json_pack("{s:s, s:I}", "iss", "DEF123GHIJ", "iat", (json_int_t)1700000000);
	struct hd_error err = {0};
	struct parts p;
	char *token = NULL;

	assert_int_equal(hd_jws_sign_json(HD_JWS_ES256, k, h, c, &token, &err), 0);
	split(token, &p);
	assert_string_equal(p.header, HEADER_ES);
	assert_string_equal(p.claims, CLAIMS_ES);
	assert_true(openssl_verifies(k, HD_JWS_ES256, token));
	free(token);
	json_decref(h);
	h = json_array();
	token = NULL;
	assert_int_equal(hd_jws_sign_json(HD_JWS_ES256, k, h, c, &token, &err), HD_EINVAL);
	assert_null(token);
	json_decref(h);
	json_decref(c);
	EVP_PKEY_free(k);
}

/* Expects the sign to fail with code and a message containing words. */
static void sign_fails(EVP_PKEY *key, enum hd_jws_alg alg, int code, const char *words)
{
	struct hd_error err = {0};
	char *token = NULL;

	assert_int_equal(hd_jws_sign(alg, key, "{}", 2, "{}", 2, &token, &err), code);
	assert_null(token);
	assert_int_equal(err.code, code);
	if (!strstr(err.msg, words))
		fail_msg("message '%s' lacks '%s'", err.msg, words);
}

static void test_wrong_key_types(void **state)
{
	EVP_PKEY *ec = EVP_EC_gen("P-256");
	EVP_PKEY *p384 = EVP_EC_gen("P-384");
	EVP_PKEY *rsa = EVP_RSA_gen(2048);
	EVP_PKEY *small = EVP_RSA_gen(1024);
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");

	sign_fails(rsa, HD_JWS_ES256, HD_ECONFIG, "ES256 needs an EC P-256 private key, found RSA");
	sign_fails(p384, HD_JWS_ES256, HD_ECONFIG, "on another curve");
	sign_fails(ed, HD_JWS_ES256, HD_ECONFIG, "found ED25519");
	sign_fails(ec, HD_JWS_RS256, HD_ECONFIG, "RS256 needs an RSA private key, found EC");
	sign_fails(small, HD_JWS_RS256, HD_ECONFIG, "1024 bits");
	/* Public-only keys cannot sign. */
	{
		char *pub = pem_of(ec, "spki");
		struct hd_error err = {0};
		EVP_PKEY *k = NULL;
		assert_int_equal(hd_jws_key_from_pem(pub, strlen(pub), "APNs key file 'a.p8'", &k,
						     &err),
				 HD_ECONFIG);
		assert_null(k);
		assert_string_equal(err.msg, "APNs key file 'a.p8' holds a public key or "
					     "certificate, not the private key");
		free(pub);
	}
	EVP_PKEY_free(ec);
	EVP_PKEY_free(p384);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(small);
	EVP_PKEY_free(ed);
}

static void test_bad_pem(void **state)
{
	static const char *const bad[] = {
		"",
		"not a key at all",
		"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
		"-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n",
		"-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n",
	};
	struct hd_error err = {0};
	EVP_PKEY *k = NULL;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(hd_jws_key_from_pem(bad[i], strlen(bad[i]), "key file 'k.pem'", &k,
						     &err),
				 HD_ECONFIG);
		assert_null(k);
		assert_non_null(strstr(err.msg, "key file 'k.pem' holds no PEM private key"));
	}
	/* An encrypted key is named as such; OpenSSL never prompts. */
	{
		EVP_PKEY *gen = EVP_EC_gen("P-256");
		BIO *b = BIO_new(BIO_s_mem());
		char *data;
		long n;
		assert_true(PEM_write_bio_PKCS8PrivateKey(b, gen, EVP_aes_128_cbc(), NULL, 0, NULL,
							  (void *)"secret"));
		n = BIO_get_mem_data(b, &data);
		assert_int_equal(hd_jws_key_from_pem(data, (size_t)n, "k", &k, &err), HD_ECONFIG);
		assert_non_null(strstr(err.msg, "encrypted"));
		BIO_free(b);
		EVP_PKEY_free(gen);
	}
}

static void test_key_files(void **state)
{
	char path[] = "/tmp/hd_test_jws_XXXXXX";
	EVP_PKEY *gen = EVP_EC_gen("P-256");
	char *p8 = pem_of(gen, "pkcs8");
	struct hd_error err = {0};
	EVP_PKEY *k = NULL;
	FILE *f;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, p8, strlen(p8)), (ssize_t)strlen(p8));
	close(fd);
	assert_int_equal(hd_jws_key_from_file(path, &k, &err), 0);
	assert_int_equal(EVP_PKEY_eq(k, gen), 1);
	EVP_PKEY_free(k);
	k = NULL;

	/* Too large: one byte over the cap. */
	f = fopen(path, "w");
	for (int i = 0; i <= HD_JWS_KEY_FILE_MAX; i++)
		fputc('x', f);
	fclose(f);
	assert_int_equal(hd_jws_key_from_file(path, &k, &err), HD_ECONFIG);
	assert_non_null(strstr(err.msg, "larger than"));
	unlink(path);

	assert_int_equal(hd_jws_key_from_file(path, &k, &err), HD_ECONFIG);
	assert_non_null(strstr(err.msg, "cannot open key file"));
	assert_null(k);
	EVP_PKEY_free(gen);
	free(p8);
}

static void test_part_limits(void **state)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	struct hd_error err = {0};
	char *big = malloc(HD_JWS_PART_MAX + 1);
	char *token = NULL;

	memset(big, 'a', HD_JWS_PART_MAX + 1);
	assert_int_equal(hd_jws_sign(HD_JWS_ES256, k, big, HD_JWS_PART_MAX + 1, "{}", 2, &token,
				     &err),
			 HD_EINVAL);
	assert_int_equal(hd_jws_sign(HD_JWS_ES256, k, "", 0, "{}", 2, &token, &err), HD_EINVAL);
	assert_null(token);
	/* The largest parts fit the token buffer, with RSA's largest signature too. */
	assert_int_equal(hd_jws_sign(HD_JWS_ES256, k, big, HD_JWS_PART_MAX, big, HD_JWS_PART_MAX,
				     &token, &err),
			 0);
	assert_true(strlen(token) < HD_JWS_TOKEN_MAX);
	free(token);
	free(big);
	EVP_PKEY_free(k);
	assert_string_equal(hd_jws_alg_name(HD_JWS_ES256), "ES256");
	assert_string_equal(hd_jws_alg_name(HD_JWS_RS256), "RS256");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_es256_pkcs8_and_sec1),
		cmocka_unit_test(test_rs256_pkcs8_and_pkcs1),
		cmocka_unit_test(test_pem_inside_text),
		cmocka_unit_test(test_sign_json),
		cmocka_unit_test(test_wrong_key_types),
		cmocka_unit_test(test_bad_pem),
		cmocka_unit_test(test_key_files),
		cmocka_unit_test(test_part_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
