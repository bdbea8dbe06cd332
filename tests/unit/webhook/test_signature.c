/*
 * Unit tests for webhook/signature.c: the Standard Webhooks test vector,
 * a second key (its expected signature computed independently with
 * Python's hmac module), rotation, secrets refused, and generated secrets
 * parsing back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/err.h"
#include "webhook/signature.h"

/* From the Standard Webhooks specification's libraries. */
#define SPEC_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SPEC_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define SPEC_TS 1614265330
#define SPEC_BODY "{\"test\": 2432232314}"
#define SPEC_SIG "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

/* Bytes 1..40, padded and not; the same id, timestamp and body. */
#define KEY2_PADDED "whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKA=="
#define KEY2_BARE "whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKA"
#define KEY2_SIG "v1,q+CDJgYSZzwW395uRBMtpc04exSmpq8uLX8fX8zhFZE="

static void test_spec_vector(void **state)
{
	struct hd_whsec k;
	struct hd_error err = {0};
	char out[HD_SIGNATURE_HEADER_MAX];

	assert_int_equal(hd_signature_secret_parse(SPEC_SECRET, &k, &err), 0);
	assert_int_equal(k.len, 24);
	int n = hd_signature_header(&k, 1, SPEC_ID, SPEC_TS, SPEC_BODY, strlen(SPEC_BODY), out,
				    sizeof(out));
	assert_int_equal(n, (int)strlen(SPEC_SIG));
	assert_string_equal(out, SPEC_SIG);
	/* A different byte anywhere changes the signature. */
	assert_true(hd_signature_header(&k, 1, SPEC_ID, SPEC_TS + 1, SPEC_BODY, strlen(SPEC_BODY),
					out, sizeof(out)) > 0);
	assert_string_not_equal(out, SPEC_SIG);
	assert_true(hd_signature_header(&k, 1, SPEC_ID, SPEC_TS, SPEC_BODY, strlen(SPEC_BODY) - 1,
					out, sizeof(out)) > 0);
	assert_string_not_equal(out, SPEC_SIG);
}

static void test_padding_optional(void **state)
{
	struct hd_whsec a, b;
	struct hd_error err = {0};
	char out[HD_SIGNATURE_HEADER_MAX];

	assert_int_equal(hd_signature_secret_parse(KEY2_PADDED, &a, &err), 0);
	assert_int_equal(hd_signature_secret_parse(KEY2_BARE, &b, &err), 0);
	assert_int_equal(a.len, 40);
	assert_int_equal(b.len, 40);
	assert_memory_equal(a.key, b.key, 40);
	for (int i = 0; i < 40; i++)
		assert_int_equal(a.key[i], i + 1);
	assert_true(hd_signature_header(&a, 1, SPEC_ID, SPEC_TS, SPEC_BODY, strlen(SPEC_BODY), out,
					sizeof(out)) > 0);
	assert_string_equal(out, KEY2_SIG);
}

static void test_rotation(void **state)
{
	struct hd_whsec k[2];
	struct hd_error err = {0};
	char out[HD_SIGNATURE_HEADER_MAX];

	assert_int_equal(hd_signature_secret_parse(KEY2_BARE, &k[0], &err), 0);
	assert_int_equal(hd_signature_secret_parse(SPEC_SECRET, &k[1], &err), 0);
	int n = hd_signature_header(k, 2, SPEC_ID, SPEC_TS, SPEC_BODY, strlen(SPEC_BODY), out,
				    sizeof(out));
	assert_string_equal(out, KEY2_SIG " " SPEC_SIG);
	assert_int_equal(n, (int)strlen(out));
	/* The most secrets fit the header buffer exactly as declared. */
	struct hd_whsec four[HD_SIGNATURE_SECRETS_MAX];
	for (int i = 0; i < HD_SIGNATURE_SECRETS_MAX; i++)
		four[i] = k[i % 2];
	n = hd_signature_header(four, HD_SIGNATURE_SECRETS_MAX, SPEC_ID, SPEC_TS, SPEC_BODY,
				strlen(SPEC_BODY), out, sizeof(out));
	assert_int_equal(n, HD_SIGNATURE_SECRETS_MAX * (HD_SIGNATURE_ONE_MAX + 1) - 1);
	assert_string_equal(out, KEY2_SIG " " SPEC_SIG " " KEY2_SIG " " SPEC_SIG);
}

static void test_header_refused(void **state)
{
	struct hd_whsec k;
	struct hd_error err = {0};
	char out[HD_SIGNATURE_HEADER_MAX];
	struct hd_whsec many[HD_SIGNATURE_SECRETS_MAX + 1];

	assert_int_equal(hd_signature_secret_parse(SPEC_SECRET, &k, &err), 0);
	for (int i = 0; i <= HD_SIGNATURE_SECRETS_MAX; i++)
		many[i] = k;
	assert_int_equal(hd_signature_header(&k, 0, SPEC_ID, 1, "x", 1, out, sizeof(out)), -1);
	assert_int_equal(hd_signature_header(many, HD_SIGNATURE_SECRETS_MAX + 1, SPEC_ID, 1, "x", 1,
					     out, sizeof(out)), -1);
	assert_int_equal(hd_signature_header(&k, 1, "msg.1", 1, "x", 1, out, sizeof(out)), -1);
	assert_int_equal(hd_signature_header(&k, 1, "", 1, "x", 1, out, sizeof(out)), -1);
	assert_int_equal(hd_signature_header(&k, 1, NULL, 1, "x", 1, out, sizeof(out)), -1);
	assert_int_equal(hd_signature_header(&k, 1, SPEC_ID, 1, "x", 1, out, HD_SIGNATURE_ONE_MAX), -1);
	/* An empty body is signed too. */
	assert_true(hd_signature_header(&k, 1, SPEC_ID, 1, NULL, 0, out, sizeof(out)) > 0);
}

static void test_bad_secrets(void **state)
{
	static const char *const bad[] = {
		"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",        /* no prefix */
		"whsk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",   /* another prefix */
		"WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",  /* the prefix is lower case */
		"whsec_",                                   /* empty */
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa",    /* 22 bytes: too short */
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",   /* 23 bytes: too short */
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwA", /* a dangling character */
		"whsec_MfKQ9r8GKYqrTwjUPD8I-PZIo2LaLaSw",  /* base64url '-' */
		"whsec_MfKQ9r8GKYqrTwjUPD8I_PZIo2LaLaSw",  /* base64url '_' */
		"whsec_MfKQ9r8GKYqrTwjUPD8I PZIo2LaLaSw",  /* a space */
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw=", /* padding where none belongs */
		"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2La=aSw",  /* padding inside */
		"whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKA=", /* half padded */
		"whsec_AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKA===",
	};
	struct hd_whsec k;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct hd_error err = {0};
		if (hd_signature_secret_parse(bad[i], &k, &err) != HD_EINVAL)
			fail_msg("accepted %s", bad[i]);
		assert_int_equal(err.code, HD_EINVAL);
		assert_true(err.msg[0] != '\0');
	}
	struct hd_error err = {0};
	assert_int_equal(hd_signature_secret_parse(NULL, &k, &err), HD_EINVAL);
	/* Secrets of n zero bytes: "whsec_" + n/3*4 'A's and what the rest
	 * takes. 24 and 64 bytes are the bounds; 23 and 65 are refused. */
	static const struct {
		size_t bytes;
		int rc;
	} lens[] = {{23, HD_EINVAL}, {24, 0}, {64, 0}, {65, HD_EINVAL}, {66, HD_EINVAL}};
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		char text[200] = HD_WHSEC_PREFIX;
		size_t chars = (lens[i].bytes * 4 + 2) / 3;
		memset(text + 6, 'A', chars);
		if (lens[i].bytes == 64)
			strcat(text, "=="); /* and padded */
		k.len = 0;
		assert_int_equal(hd_signature_secret_parse(text, &k, &err), lens[i].rc);
		if (lens[i].rc == 0)
			assert_int_equal(k.len, lens[i].bytes);
	}
}

static void test_generate(void **state)
{
	char a[HD_WHSEC_TEXT_MAX], b[HD_WHSEC_TEXT_MAX], small[20];
	struct hd_whsec k;
	struct hd_error err = {0};

	assert_int_equal(hd_signature_secret_generate(a, sizeof(a)), 0);
	assert_int_equal(hd_signature_secret_generate(b, sizeof(b)), 0);
	assert_int_equal(strlen(a), 6 + 44);
	assert_memory_equal(a, HD_WHSEC_PREFIX, 6);
	assert_string_not_equal(a, b);
	assert_int_equal(hd_signature_secret_parse(a, &k, &err), 0);
	assert_int_equal(k.len, 32);
	assert_int_equal(hd_signature_secret_generate(small, sizeof(small)), HD_EINTERNAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spec_vector),
		cmocka_unit_test(test_padding_optional),
		cmocka_unit_test(test_rotation),
		cmocka_unit_test(test_header_refused),
		cmocka_unit_test(test_bad_secrets),
		cmocka_unit_test(test_generate),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
