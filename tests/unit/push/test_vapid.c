/*
 * Unit tests for push/vapid.c: the origin of odd endpoint URLs, the key in
 * its three forms (raw base64url as npm web-push prints it, PKCS#8, SEC1)
 * and refused keys and subjects, the Authorization header decoded (aud,
 * exp, sub, k) and its signature verified by OpenSSL and by Node's crypto
 * (tests/js/jws_verify.js with the "k" point, skipped without node), the
 * per-origin cache (reuse, renewal, eviction at its cap), new key pairs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/err.h"
#include "core/b64.h"
#include "push/jws.h"
#include "push/p256.h"
#include "push/vapid.h"
#include "node_run.h"

#include <fcntl.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* RFC 8291 §5's application server key pair: a known raw key and its point. */
#define RAW_PRIVATE "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
#define RAW_PUBLIC                                                                         \
	"BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl" \
	"7A8"
#define SUBJECT "mailto:ops@example.com"
#define NOW 1700000000LL
#define FCM_ENDPOINT "https://fcm.googleapis.com/fcm/send/dXN1YXJpbzpBUEE5MWJH"

/* ---- the origin ---- */

static void origin_is(const char *url, const char *want)
{
	char out[HD_VAPID_ORIGIN_MAX + 1];
	struct hd_error err = {0};
	int rc = hd_vapid_origin(url, strlen(url), out, sizeof(out), &err);

	if (rc != 0)
		fail_msg("'%s' refused: %s", url, err.msg);
	assert_string_equal(out, want);
}

static void origin_refused(const char *url, const char *words)
{
	char out[HD_VAPID_ORIGIN_MAX + 1];
	struct hd_error err = {0};

	assert_int_equal(hd_vapid_origin(url, strlen(url), out, sizeof(out), &err), HD_EINVAL);
	assert_string_equal(out, "");
	if (!strstr(err.msg, words))
		fail_msg("'%s': message '%s' lacks '%s'", url, err.msg, words);
}

static void test_origin(void **state)
{
	origin_is(FCM_ENDPOINT, "https://fcm.googleapis.com");
	origin_is("HTTPS://Updates.Push.Services.Mozilla.COM/wpush/v2/gAAAA",
		  "https://updates.push.services.mozilla.com");
	origin_is("https://web.push.apple.com", "https://web.push.apple.com");
	origin_is("https://web.push.apple.com?x=1", "https://web.push.apple.com");
	origin_is("https://web.push.apple.com#frag", "https://web.push.apple.com");
	origin_is("https://push.example:443/p", "https://push.example");
	origin_is("https://push.example:00443/p", "https://push.example");
	origin_is("https://push.example:8443/p", "https://push.example:8443");
	origin_is("https://push.example:080/p", "https://push.example:80");
	origin_is("http://localhost:80/p", "http://localhost");
	origin_is("http://127.0.0.1:8090/push/1", "http://127.0.0.1:8090");
	origin_is("https://[::1]:9000/p", "https://[::1]:9000");
	origin_is("https://[2001:DB8::1]/p", "https://[2001:db8::1]");
	origin_is("https://[::ffff:127.0.0.1]:443", "https://[::ffff:127.0.0.1]");

	origin_refused("https://user:pw@push.example/", "userinfo");
	origin_refused("https://@push.example/", "userinfo");
	origin_refused("https://push.example@evil.example/", "userinfo");
	origin_refused("ftp://push.example/", "scheme must be https");
	origin_refused("httpss://push.example/", "scheme must be https");
	origin_refused("push.example/p", "no \"scheme://\"");
	origin_refused("https:/push.example/p", "no \"scheme://\"");
	origin_refused("https://", "no host");
	origin_refused("https:///p", "no host");
	origin_refused("https://:443/p", "no host");
	origin_refused("https://push.example:/p", "empty port");
	origin_refused("https://push.example:0/p", "1 to 65535");
	origin_refused("https://push.example:65536/p", "1 to 65535");
	origin_refused("https://push.example:4430000/p", "1 to 65535");
	origin_refused("https://push.example:44a3/p", "not a number");
	origin_refused("https://push.example:-1/p", "not a number");
	origin_refused("https://push example/p", "space");
	origin_refused("https://push.example/p q", "space");
	origin_refused("https://push.ex\x01mple/", "control");
	origin_refused("https://p\xc3\xbcsh.example/", "non-ASCII");
	origin_refused("https://push%2eexample/", "host holds '%'");
	origin_refused("https://push_example/", "host holds '_'");
	origin_refused("https://[::1/p", "not closed");
	origin_refused("https://[]/p", "not closed");
	origin_refused("https://[::g]/p", "IPv6 literal holds 'g'");
	origin_refused("https://[::1]x/p", "text after its IPv6 literal");

	/* Host and URL lengths. */
	{
		char url[HD_VAPID_URL_MAX + 64];
		char want[HD_VAPID_ORIGIN_MAX + 1];
		int n = sprintf(url, "https://");
		memset(url + n, 'a', HD_VAPID_HOST_MAX);
		strcpy(url + n + HD_VAPID_HOST_MAX, ":65535/p");
		snprintf(want, sizeof(want), "%.*s:65535", n + HD_VAPID_HOST_MAX, url);
		origin_is(url, want);
		assert_int_equal(strlen(want), HD_VAPID_ORIGIN_MAX);
		memset(url + n, 'a', HD_VAPID_HOST_MAX + 1);
		strcpy(url + n + HD_VAPID_HOST_MAX + 1, "/p");
		origin_refused(url, "longer than 253");
		n = sprintf(url, "https://a/");
		memset(url + n, 'p', HD_VAPID_URL_MAX - (size_t)n);
		url[HD_VAPID_URL_MAX] = '\0';
		origin_is(url, "https://a");
		strcpy(url + HD_VAPID_URL_MAX, "p");
		origin_refused(url, "longer than 2048");
	}
	/* No room in out. */
	{
		char small[8];
		struct hd_error err = {0};
		assert_int_equal(hd_vapid_origin(FCM_ENDPOINT, strlen(FCM_ENDPOINT), small,
						 sizeof(small), &err),
				 HD_EINVAL);
		assert_string_equal(small, "");
	}
}

/* ---- keys and subjects ---- */

static struct hd_vapid *make(const char *key, const char *subject)
{
	struct hd_vapid *v = NULL;
	struct hd_error err = {0};

	if (hd_vapid_new(key, strlen(key), subject, &v, &err) != 0)
		fail_msg("refused: %s", err.msg);
	return v;
}

static void new_fails(const char *key, const char *subject, const char *words)
{
	struct hd_vapid *v = NULL;
	struct hd_error err = {0};

	assert_int_equal(hd_vapid_new(key, strlen(key), subject, &v, &err), HD_ECONFIG);
	assert_null(v);
	if (!strstr(err.msg, words))
		fail_msg("message '%s' lacks '%s'", err.msg, words);
}

static char *pem_of(EVP_PKEY *key, bool pkcs8)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data;
	long n;
	char *s;

	if (pkcs8)
		assert_true(PEM_write_bio_PKCS8PrivateKey(b, key, NULL, NULL, 0, NULL, NULL));
	else
		assert_true(PEM_write_bio_PrivateKey_traditional(b, key, NULL, NULL, 0, NULL, NULL));
	n = BIO_get_mem_data(b, &data);
	s = strndup(data, (size_t)n);
	BIO_free(b);
	return s;
}

static void test_key_forms(void **state)
{
	struct hd_vapid *v;
	unsigned char d[HD_P256_PRIVATE_LEN];
	size_t n;
	EVP_PKEY *k = NULL;
	char *p8, *sec1;

	/* The raw form derives the RFC's public key; white space around is fine. */
	v = make(RAW_PRIVATE, SUBJECT);
	assert_string_equal(hd_vapid_public_key(v), RAW_PUBLIC);
	assert_int_equal(strlen(hd_vapid_public_key(v)), 87);
	hd_vapid_free(v);
	v = make("  " RAW_PRIVATE "\n", "https://example.com/contact");
	assert_string_equal(hd_vapid_public_key(v), RAW_PUBLIC);
	hd_vapid_free(v);

	/* The same key as PKCS#8 and SEC1 PEM. */
	assert_int_equal(hd_b64_decode(RAW_PRIVATE, strlen(RAW_PRIVATE), HD_B64_URL, d, sizeof(d), &n), 0);
	assert_int_equal(hd_p256_from_private(d, &k), 0);
	p8 = pem_of(k, true);
	sec1 = pem_of(k, false);
	assert_non_null(strstr(sec1, "BEGIN EC PRIVATE KEY"));
	v = make(p8, SUBJECT);
	assert_string_equal(hd_vapid_public_key(v), RAW_PUBLIC);
	hd_vapid_free(v);
	v = make(sec1, SUBJECT);
	assert_string_equal(hd_vapid_public_key(v), RAW_PUBLIC);
	hd_vapid_free(v);
	/* A key file that stores its point compressed still gives the 65-byte form. */
	{
		char *compressed;
		assert_true(EVP_PKEY_set_utf8_string_param(
			k, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, "compressed"));
		compressed = pem_of(k, false);
		assert_string_not_equal(compressed, sec1);
		v = make(compressed, SUBJECT);
		assert_string_equal(hd_vapid_public_key(v), RAW_PUBLIC);
		hd_vapid_free(v);
		free(compressed);
	}

	/* From a file. */
	{
		char path[] = "/tmp/hd_test_vapid_XXXXXX";
		struct hd_error err = {0};
		int fd = mkstemp(path);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, p8, strlen(p8)), (ssize_t)strlen(p8));
		close(fd);
		v = NULL;
		assert_int_equal(hd_vapid_new_file(path, SUBJECT, &v, &err), 0);
		assert_string_equal(hd_vapid_public_key(v), RAW_PUBLIC);
		hd_vapid_free(v);
		fd = open(path, O_WRONLY | O_TRUNC);
		assert_int_equal(write(fd, "garbage", 7), 7);
		close(fd);
		v = NULL;
		assert_int_equal(hd_vapid_new_file(path, SUBJECT, &v, &err), HD_ECONFIG);
		assert_non_null(strstr(err.msg, "VAPID key file '"));
		unlink(path);
		assert_int_equal(hd_vapid_new_file(path, SUBJECT, &v, &err), HD_ECONFIG);
		assert_non_null(strstr(err.msg, "cannot open VAPID key file '/tmp/"));
	}
	EVP_PKEY_free(k);
	free(p8);
	free(sec1);
}

static void test_bad_keys_and_subjects(void **state)
{
	EVP_PKEY *rsa = EVP_RSA_gen(2048);
	EVP_PKEY *p384 = EVP_EC_gen("P-384");
	char *rsa_pem = pem_of(rsa, true);
	char *p384_pem = pem_of(p384, true);
	char text[100];
	unsigned char d[HD_P256_PRIVATE_LEN];

	new_fails(rsa_pem, SUBJECT, "ES256 needs an EC P-256 private key, found RSA");
	new_fails(p384_pem, SUBJECT, "on another curve");
	new_fails("", SUBJECT, "the VAPID private key is empty");
	new_fails(" \n", SUBJECT, "the VAPID private key is empty");
	new_fails("not a key!", SUBJECT, "neither a PEM private key nor the base64url");
	new_fails("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oR", SUBJECT, "32 bytes");
	new_fails(RAW_PUBLIC, SUBJECT, "not 65 (this is the public key)");
	memset(d, 0, sizeof(d));
	hd_b64_url_encode(d, sizeof(d), text, sizeof(text));
	new_fails(text, SUBJECT, "not a valid P-256 private key");
	memset(d, 0xff, sizeof(d));
	hd_b64_url_encode(d, sizeof(d), text, sizeof(text));
	new_fails(text, SUBJECT, "not a valid P-256 private key");
	new_fails("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", SUBJECT,
		  "holds no PEM private key");

	new_fails(RAW_PRIVATE, "ops@example.com", "\"mailto:\" or \"https:\"");
	new_fails(RAW_PRIVATE, "http://example.com", "\"mailto:\" or \"https:\"");
	new_fails(RAW_PRIVATE, "mailto:", "\"mailto:\" or \"https:\"");
	new_fails(RAW_PRIVATE, "", "\"mailto:\" or \"https:\"");
	new_fails(RAW_PRIVATE, "mailto:a b@example.com", "space");
	new_fails(RAW_PRIVATE, "mailto:\"a\"@example.com", "quote");
	{
		char big[HD_VAPID_SUBJECT_MAX + 2];
		strcpy(big, "mailto:");
		memset(big + 7, 'a', HD_VAPID_SUBJECT_MAX + 1 - 7);
		big[HD_VAPID_SUBJECT_MAX + 1] = '\0';
		new_fails(RAW_PRIVATE, big, "at most 256 bytes");
		big[HD_VAPID_SUBJECT_MAX] = '\0';
		hd_vapid_free(make(RAW_PRIVATE, big));
	}
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(p384);
	free(rsa_pem);
	free(p384_pem);
}

/* ---- the header ---- */

struct decoded {
	char token[HD_VAPID_HEADER_MAX];
	char k[HD_VAPID_HEADER_MAX];
	json_t *header;
	json_t *claims;
};

/* Splits "vapid t=<jwt>, k=<key>" and decodes the JWT's two JSON parts. */
static void decode_header(const char *value, struct decoded *d)
{
	const char *t = value + strlen("vapid t=");
	const char *comma = strstr(value, ", k=");
	const char *d1, *d2;
	unsigned char buf[HD_VAPID_HEADER_MAX];
	size_t n;

	assert_true(strncmp(value, "vapid t=", 8) == 0);
	assert_non_null(comma);
	snprintf(d->token, sizeof(d->token), "%.*s", (int)(comma - t), t);
	snprintf(d->k, sizeof(d->k), "%s", comma + 4);
	d1 = strchr(d->token, '.');
	d2 = strchr(d1 + 1, '.');
	assert_int_equal(hd_b64_decode(d->token, (size_t)(d1 - d->token), HD_B64_URL, buf, sizeof(buf), &n),
			 0);
	d->header = json_loadb((char *)buf, n, 0, NULL);
	assert_int_equal(hd_b64_decode(d1 + 1, (size_t)(d2 - d1 - 1), HD_B64_URL, buf, sizeof(buf), &n), 0);
	d->claims = json_loadb((char *)buf, n, 0, NULL);
	assert_non_null(d->header);
	assert_non_null(d->claims);
}

static void decoded_fini(struct decoded *d)
{
	json_decref(d->header);
	json_decref(d->claims);
}

/* OpenSSL's verdict on the ES256 token under the raw point k. */
static bool openssl_verifies(const char *token, const char *k)
{
	unsigned char pt[HD_P256_PUBLIC_LEN], sig[64], der[80], *w = der;
	const char *d2 = strrchr(token, '.');
	EVP_PKEY *key = NULL;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	ECDSA_SIG *es = ECDSA_SIG_new();
	size_t n;
	int der_len;
	bool ok;

	assert_int_equal(hd_b64_decode(k, strlen(k), HD_B64_URL, pt, sizeof(pt), &n), 0);
	assert_int_equal(hd_p256_from_public(pt, &key), 0);
	assert_int_equal(hd_b64_decode(d2 + 1, strlen(d2 + 1), HD_B64_URL, sig, sizeof(sig), &n), 0);
	assert_int_equal(n, 64);
	assert_true(ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL)));
	der_len = i2d_ECDSA_SIG(es, &w);
	assert_true(EVP_DigestVerifyInit_ex(md, NULL, "SHA256", NULL, NULL, key, NULL) > 0);
	ok = EVP_DigestVerify(md, der, (size_t)der_len, (const unsigned char *)token,
			      (size_t)(d2 - token)) == 1;
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(md);
	EVP_PKEY_free(key);
	return ok;
}

static void header_at(struct hd_vapid *v, const char *endpoint, int64_t now, char *out)
{
	struct hd_error err = {0};
	if (hd_vapid_header(v, endpoint, strlen(endpoint), now, out, HD_VAPID_HEADER_MAX, &err))
		fail_msg("no header for '%s': %s", endpoint, err.msg);
}

static void test_header(void **state)
{
	struct hd_vapid *v = make(RAW_PRIVATE, SUBJECT);
	char value[HD_VAPID_HEADER_MAX];
	char out[4096], args[3 * HD_VAPID_HEADER_MAX];
	struct decoded d;
	int rc;

	header_at(v, FCM_ENDPOINT, NOW, value);
	decode_header(value, &d);
	assert_string_equal(d.k, RAW_PUBLIC);
	assert_string_equal(json_string_value(json_object_get(d.header, "typ")), "JWT");
	assert_string_equal(json_string_value(json_object_get(d.header, "alg")), "ES256");
	assert_int_equal(json_object_size(d.header), 2);
	assert_string_equal(json_string_value(json_object_get(d.claims, "aud")),
			    "https://fcm.googleapis.com");
	assert_string_equal(json_string_value(json_object_get(d.claims, "sub")), SUBJECT);
	assert_int_equal(json_integer_value(json_object_get(d.claims, "exp")),
			 NOW + HD_VAPID_TTL_S);
	assert_true(json_integer_value(json_object_get(d.claims, "exp")) <= NOW + 24 * 3600);
	assert_int_equal(json_object_size(d.claims), 3);
	assert_true(openssl_verifies(d.token, d.k));

	if (node_available()) {
		snprintf(args, sizeof(args), "--p256 '%s' '%s'", d.k, d.token);
		rc = node_run("jws_verify.js", args, out, sizeof(out));
		assert_int_equal(rc, 0);
		assert_non_null(strstr(out, "\"aud\":\"https://fcm.googleapis.com\""));
		/* Another key's point does not verify it. */
		snprintf(args, sizeof(args), "--p256 '%s' '%s'",
			 "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZG"
			 "H6SRpkNtoIAiw4",
			 d.token);
		assert_int_equal(node_run("jws_verify.js", args, out, sizeof(out)), 1);
	}
	decoded_fini(&d);

	/* A bad endpoint gives the origin's reason. */
	{
		struct hd_error err = {0};
		const char *bad = "https://u@push.example/";
		assert_int_equal(hd_vapid_header(v, bad, strlen(bad), NOW, value, sizeof(value),
						 &err),
				 HD_EINVAL);
		assert_non_null(strstr(err.msg, "userinfo"));
		assert_int_equal(hd_vapid_header(v, FCM_ENDPOINT, strlen(FCM_ENDPOINT), NOW, value,
						 100, &err),
				 HD_EINVAL);
		assert_string_equal(value, "");
	}
	hd_vapid_free(v);
}

static void test_cache(void **state)
{
	struct hd_vapid *v = make(RAW_PRIVATE, SUBJECT);
	char first[HD_VAPID_HEADER_MAX], again[HD_VAPID_HEADER_MAX];
	char url[64];
	struct decoded d;

	/* Reused for the same origin (another path, the default port written out). */
	header_at(v, FCM_ENDPOINT, NOW, first);
	header_at(v, "https://FCM.googleapis.com:443/fcm/send/other", NOW + 60, again);
	assert_string_equal(first, again);
	header_at(v, FCM_ENDPOINT, NOW + HD_VAPID_TTL_S - HD_VAPID_RENEW_S, again);
	assert_string_equal(first, again);

	/* Signed again once less than HD_VAPID_RENEW_S remains. */
	header_at(v, FCM_ENDPOINT, NOW + HD_VAPID_TTL_S - HD_VAPID_RENEW_S + 1, again);
	assert_string_not_equal(first, again);
	decode_header(again, &d);
	assert_int_equal(json_integer_value(json_object_get(d.claims, "exp")),
			 NOW + 2 * HD_VAPID_TTL_S - HD_VAPID_RENEW_S + 1);
	decoded_fini(&d);
	/* A clock set back is never handed a token with exp more than 24 h ahead. */
	header_at(v, FCM_ENDPOINT, NOW, again);
	decode_header(again, &d);
	assert_true(json_integer_value(json_object_get(d.claims, "exp")) <= NOW + 24 * 3600);
	decoded_fini(&d);
	header_at(v, FCM_ENDPOINT, NOW - 3600, again);
	decode_header(again, &d);
	assert_int_equal(json_integer_value(json_object_get(d.claims, "exp")),
			 NOW - 3600 + HD_VAPID_TTL_S);
	decoded_fini(&d);
	hd_vapid_free(v);

	/* Another origin gets its own aud. */
	v = make(RAW_PRIVATE, SUBJECT);
	header_at(v, "https://web.push.apple.com/QGuQ", NOW, first);
	decode_header(first, &d);
	assert_string_equal(json_string_value(json_object_get(d.claims, "aud")),
			    "https://web.push.apple.com");
	decoded_fini(&d);

	/* The cap: HD_VAPID_CACHE_MAX - 1 other origins keep the first cached... */
	for (int i = 0; i < HD_VAPID_CACHE_MAX - 1; i++) {
		snprintf(url, sizeof(url), "https://push%d.example/x", i);
		header_at(v, url, NOW, again);
	}
	header_at(v, "https://web.push.apple.com/QGuQ", NOW, again);
	assert_string_equal(first, again);
	/* ...one more evicts the one expiring first (all tie: the oldest slot). */
	snprintf(url, sizeof(url), "https://push%d.example/x", HD_VAPID_CACHE_MAX);
	header_at(v, url, NOW + 1, again);
	header_at(v, "https://web.push.apple.com/QGuQ", NOW, again);
	assert_string_not_equal(first, again);
	hd_vapid_free(v);
}

static void test_token_direct(void **state)
{
	struct hd_vapid *v = make(RAW_PRIVATE, SUBJECT);
	struct hd_error err = {0};
	char value[HD_VAPID_HEADER_MAX];
	struct decoded d;
	char *token = NULL;

	assert_int_equal(hd_vapid_token(v, "https://push.example:8443", NOW + 60, &token, &err), 0);
	snprintf(value, sizeof(value), "vapid t=%s, k=%s", token, hd_vapid_public_key(v));
	decode_header(value, &d);
	assert_string_equal(json_string_value(json_object_get(d.claims, "aud")),
			    "https://push.example:8443");
	assert_int_equal(json_integer_value(json_object_get(d.claims, "exp")), NOW + 60);
	assert_true(openssl_verifies(d.token, d.k));
	decoded_fini(&d);
	free(token);
	hd_vapid_free(v);
}

static void test_keys_generate(void **state)
{
	char priv[HD_VAPID_PRIVATE_KEY_LEN + 1], pub[HD_VAPID_PUBLIC_KEY_LEN + 1];
	char priv2[HD_VAPID_PRIVATE_KEY_LEN + 1], pub2[HD_VAPID_PUBLIC_KEY_LEN + 1];
	struct hd_error err = {0};
	struct hd_vapid *v;

	assert_int_equal(hd_vapid_keys_generate(priv, pub, &err), 0);
	assert_int_equal(strlen(priv), 43);
	assert_int_equal(strlen(pub), 87);
	assert_int_equal(pub[0], 'B'); /* 0x04: an uncompressed point */
	v = make(priv, SUBJECT);
	assert_string_equal(hd_vapid_public_key(v), pub);
	hd_vapid_free(v);
	assert_int_equal(hd_vapid_keys_generate(priv2, pub2, &err), 0);
	assert_string_not_equal(priv, priv2);
	assert_string_not_equal(pub, pub2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_origin),
		cmocka_unit_test(test_key_forms),
		cmocka_unit_test(test_bad_keys_and_subjects),
		cmocka_unit_test(test_header),
		cmocka_unit_test(test_cache),
		cmocka_unit_test(test_token_direct),
		cmocka_unit_test(test_keys_generate),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
