/*
 * Unit tests for push/webpush_crypto.c: the RFC 8291 example (§5 and
 * Appendix A) reproduced byte for byte, fresh keys and salts opened by an
 * independent decrypter (Node's crypto, tests/js/webpush_decrypt.js,
 * skipped without node), the 3,993-byte plaintext limit, and subscription
 * keys refused with the member named.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/err.h"
#include "core/b64.h"
#include "push/p256.h"
#include "push/webpush_crypto.h"
#include "node_run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* RFC 8291 §5 and Appendix A, the example's values. */
#define RFC_PLAINTEXT "When I grow up, I want to be a watermelon"
#define RFC_AS_PUBLIC                                                                      \
	"BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl" \
	"7A8"
#define RFC_AS_PRIVATE "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
#define RFC_UA_PUBLIC                                                                      \
	"BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIA" \
	"iw4"
#define RFC_UA_PRIVATE "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"
#define RFC_SALT "DGv6ra1nlYgDCS1FRnbzlw"
#define RFC_AUTH "BTBZMqHH6r4Tts7J_aSIgg"
#define RFC_BODY                                                                           \
	"DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27ml"                     \
	"mlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPT"                     \
	"pK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"

static void decode(const char *text, unsigned char *out, size_t want)
{
	size_t n = 0;
	assert_int_equal(hd_b64_decode(text, strlen(text), HD_B64_URL, out, want, &n), 0);
	assert_int_equal(n, want);
}

static void rfc_keys(struct hd_webpush_crypto_keys *ua)
{
	struct hd_error err = {0};
	assert_int_equal(hd_webpush_crypto_keys_parse(RFC_UA_PUBLIC, strlen(RFC_UA_PUBLIC),
						      RFC_AUTH, strlen(RFC_AUTH), ua, &err),
			 0);
}

static void test_rfc8291_vector(void **state)
{
	struct hd_webpush_crypto_keys ua;
	struct hd_error err = {0};
	unsigned char d[HD_P256_PRIVATE_LEN], salt[HD_WEBPUSH_CRYPTO_SALT_LEN];
	unsigned char as_pub[HD_P256_PUBLIC_LEN], got_pub[HD_P256_PUBLIC_LEN];
	unsigned char body[HD_WEBPUSH_CRYPTO_BODY_MAX];
	char text[2 * HD_WEBPUSH_CRYPTO_BODY_MAX];
	size_t len = 0;
	EVP_PKEY *as_key = NULL;

	rfc_keys(&ua);
	decode(RFC_AS_PRIVATE, d, sizeof(d));
	decode(RFC_AS_PUBLIC, as_pub, sizeof(as_pub));
	decode(RFC_SALT, salt, sizeof(salt));
	assert_int_equal(hd_p256_from_private(d, &as_key), 0);
	/* The public key derived from the private one is the RFC's. */
	assert_int_equal(hd_p256_public(as_key, got_pub), 0);
	assert_memory_equal(got_pub, as_pub, sizeof(as_pub));

	assert_int_equal(hd_webpush_crypto_encrypt_with(&ua, as_key, salt, RFC_PLAINTEXT,
							strlen(RFC_PLAINTEXT), body, sizeof(body),
							&len, &err),
			 0);
	assert_int_equal(len, HD_WEBPUSH_CRYPTO_BODY_LEN(strlen(RFC_PLAINTEXT)));
	assert_int_equal(len, 144);
	assert_true(hd_b64_url_encode(body, len, text, sizeof(text)) > 0);
	assert_string_equal(text, RFC_BODY);
	EVP_PKEY_free(as_key);

	/* A sender key without its private half cannot encrypt. */
	assert_int_equal(hd_p256_from_public(as_pub, &as_key), 0);
	assert_int_equal(hd_webpush_crypto_encrypt_with(&ua, as_key, salt, RFC_PLAINTEXT,
							strlen(RFC_PLAINTEXT), body, sizeof(body),
							&len, &err),
			 HD_EINVAL);
	assert_non_null(strstr(err.msg, "ECDH failed"));
	EVP_PKEY_free(as_key);
}

/* Runs the Node decrypter on body with the RFC's subscription; returns its
 * status (0 = opened) with the plaintext hex in out, or -2 without node. */
static int node_open(const unsigned char *body, size_t len, char *out, size_t cap)
{
	char *args = malloc(2 * len + 256);
	int n, rc;

	if (!node_available()) {
		free(args);
		return -2;
	}
	n = sprintf(args, "'%s' '%s' ", RFC_UA_PRIVATE, RFC_AUTH);
	for (size_t i = 0; i < len; i++)
		n += sprintf(args + n, "%02x", body[i]);
	rc = node_run("webpush_decrypt.js", args, out, cap);
	free(args);
	return rc;
}

static void hex(const void *data, size_t len, char *out)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
	out[2 * len] = '\0';
}

static void test_fresh_key_and_salt(void **state)
{
	struct hd_webpush_crypto_keys ua;
	struct hd_error err = {0};
	unsigned char a[HD_WEBPUSH_CRYPTO_BODY_MAX], b[HD_WEBPUSH_CRYPTO_BODY_MAX];
	char out[2 * HD_WEBPUSH_CRYPTO_BODY_MAX + 2], want[2 * HD_WEBPUSH_CRYPTO_BODY_MAX + 1];
	size_t alen = 0, blen = 0;
	int rc;

	rfc_keys(&ua);
	assert_int_equal(hd_webpush_crypto_encrypt(&ua, RFC_PLAINTEXT, strlen(RFC_PLAINTEXT), a,
						   sizeof(a), &alen, &err),
			 0);
	assert_int_equal(hd_webpush_crypto_encrypt(&ua, RFC_PLAINTEXT, strlen(RFC_PLAINTEXT), b,
						   sizeof(b), &blen, &err),
			 0);
	assert_int_equal(alen, blen);
	/* The header layout: rs = 4096 big-endian, idlen 65, an uncompressed point. */
	assert_memory_equal(a + 16, "\x00\x00\x10\x00\x41\x04", 6);
	/* Salt and sender key are new each time. */
	assert_memory_not_equal(a, b, 16);
	assert_memory_not_equal(a + 21, b + 21, HD_P256_PUBLIC_LEN);

	rc = node_open(a, alen, out, sizeof(out));
	if (rc == -2)
		return;
	assert_int_equal(rc, 0);
	hex(RFC_PLAINTEXT, strlen(RFC_PLAINTEXT), want);
	assert_string_equal(strtok(out, "\n"), want);
	/* A flipped ciphertext bit fails the tag. */
	a[100] ^= 1;
	assert_int_equal(node_open(a, alen, out, sizeof(out)), 1);
}

static void test_plaintext_limit(void **state)
{
	struct hd_webpush_crypto_keys ua;
	struct hd_error err = {0};
	unsigned char *plain = malloc(HD_WEBPUSH_CRYPTO_PLAINTEXT_MAX + 1);
	unsigned char body[HD_WEBPUSH_CRYPTO_BODY_MAX + 64];
	char *out = malloc(2 * HD_WEBPUSH_CRYPTO_BODY_MAX + 2);
	char *want = malloc(2 * HD_WEBPUSH_CRYPTO_BODY_MAX + 1);
	size_t len = 0;
	int rc;

	rfc_keys(&ua);
	for (size_t i = 0; i <= HD_WEBPUSH_CRYPTO_PLAINTEXT_MAX; i++)
		plain[i] = (unsigned char)(i * 7);
	assert_int_equal(hd_webpush_crypto_encrypt(&ua, plain, HD_WEBPUSH_CRYPTO_PLAINTEXT_MAX + 1,
						   body, sizeof(body), &len, &err),
			 HD_ETOOBIG);
	assert_string_equal(err.msg, "a Web Push message holds at most 3993 bytes of plaintext, "
				     "not 3994");
	/* Exactly the limit fills the 4,096 bytes a push service must accept. */
	assert_int_equal(hd_webpush_crypto_encrypt(&ua, plain, HD_WEBPUSH_CRYPTO_PLAINTEXT_MAX,
						   body, sizeof(body), &len, &err),
			 0);
	assert_int_equal(len, 4096);
	rc = node_open(body, len, out, 2 * HD_WEBPUSH_CRYPTO_BODY_MAX + 2);
	if (rc != -2) {
		assert_int_equal(rc, 0);
		hex(plain, HD_WEBPUSH_CRYPTO_PLAINTEXT_MAX, want);
		assert_string_equal(strtok(out, "\n"), want);
	}
	/* An empty message is a body of 103 bytes. */
	assert_int_equal(hd_webpush_crypto_encrypt(&ua, "", 0, body, sizeof(body), &len, &err), 0);
	assert_int_equal(len, 103);
	/* No room for the body. */
	assert_int_equal(hd_webpush_crypto_encrypt(&ua, "abc", 3, body, 105, &len, &err),
			 HD_EINVAL);
	free(plain);
	free(out);
	free(want);
}

static void parse_fails(const char *p256dh, const char *auth, const char *words)
{
	struct hd_webpush_crypto_keys ua;
	struct hd_error err = {0};

	assert_int_equal(hd_webpush_crypto_keys_parse(p256dh, strlen(p256dh), auth, strlen(auth),
						      &ua, &err),
			 HD_EINVAL);
	if (!strstr(err.msg, words))
		fail_msg("message '%s' lacks '%s'", err.msg, words);
}

static void test_keys_parse(void **state)
{
	struct hd_webpush_crypto_keys ua;
	struct hd_error err = {0};
	char text[200];
	unsigned char pt[HD_P256_PUBLIC_LEN];

	/* Padding as some libraries print it is accepted. */
	assert_int_equal(hd_webpush_crypto_keys_parse(RFC_UA_PUBLIC "=", strlen(RFC_UA_PUBLIC) + 1,
						      RFC_AUTH "==", strlen(RFC_AUTH) + 2, &ua,
						      &err),
			 0);
	decode(RFC_UA_PUBLIC, pt, sizeof(pt));
	assert_memory_equal(ua.p256dh, pt, sizeof(pt));

	parse_fails("not*base64", RFC_AUTH, "'p256dh' must be the base64url of a 65-byte");
	parse_fails(RFC_AUTH, RFC_AUTH, "'p256dh' must be");
	parse_fails(RFC_UA_PUBLIC "AAAA", RFC_AUTH, "'p256dh' must be");
	parse_fails(RFC_UA_PUBLIC, "BTBZMqHH6r4Tts7J_aSI", "'auth' must be the base64url of 16");
	parse_fails(RFC_UA_PUBLIC, "BTBZMqHH6r4Tts7J_aSIgg+", "'auth' must be");
	/* 65 bytes that are no point on the curve, and a compressed prefix. */
	pt[64] ^= 1;
	hd_b64_url_encode(pt, sizeof(pt), text, sizeof(text));
	parse_fails(text, RFC_AUTH, "'p256dh' is not an uncompressed point on curve P-256");
	/* decode (each push, keys parsed at registration) skips the curve
	 * check; the encryption still refuses the point. */
	unsigned char body[HD_WEBPUSH_CRYPTO_BODY_LEN(3)];
	size_t len = 0;
	assert_int_equal(hd_webpush_crypto_keys_decode(text, strlen(text), RFC_AUTH,
						       strlen(RFC_AUTH), &ua, &err),
			 0);
	assert_memory_equal(ua.p256dh, pt, sizeof(pt));
	assert_int_equal(hd_webpush_crypto_encrypt(&ua, "abc", 3, body, sizeof(body), &len, &err),
			 HD_EINVAL);
	assert_int_equal(hd_webpush_crypto_keys_decode("not*base64", 10, RFC_AUTH,
						       strlen(RFC_AUTH), &ua, &err),
			 HD_EINVAL);
	pt[64] ^= 1;
	pt[0] = 0x02;
	hd_b64_url_encode(pt, sizeof(pt), text, sizeof(text));
	parse_fails(text, RFC_AUTH, "not an uncompressed point");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc8291_vector),
		cmocka_unit_test(test_fresh_key_and_salt),
		cmocka_unit_test(test_plaintext_limit),
		cmocka_unit_test(test_keys_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
