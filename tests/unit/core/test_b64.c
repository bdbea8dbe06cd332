/*
 * Unit tests for core/b64.c. The standard alphabet: the RFC 4648 §10
 * vectors, padding optional but only at the end of a whole group, the
 * standard alphabet alone, the output bound. The base64url alphabet: the
 * same vectors encoded and decoded, bytes that differ between the two
 * alphabets, the tolerated padding and the refused texts, the buffer limits.
 * The canonical form (HD_B64_CANONICAL, JWT segments): no padding, unused
 * low bits zero.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/b64.h"

static int dec(const char *text, unsigned char *out, size_t cap, size_t *n)
{
	return hd_b64_decode(text, strlen(text), 0, out, cap, n);
}

/* Asserts that text decodes, under flags, to want[0, want_len). */
static void assert_decodes(unsigned flags, const char *text, const void *want, size_t want_len)
{
	unsigned char out[16];
	size_t n;

	assert_int_equal(hd_b64_decode(text, strlen(text), flags, out, sizeof(out), &n), 0);
	assert_int_equal(n, want_len);
	assert_memory_equal(out, want, n);
}

static void test_vectors(void **state)
{
	static const char *const enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
	static const char *const unpadded[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
	(void)state;

	for (size_t i = 0; i < 7; i++) {
		assert_decodes(0, enc[i], "foobar", i);
		assert_decodes(0, unpadded[i], "foobar", i);
	}
	/* The standard alphabet's last two digits. */
	assert_decodes(0, "+/8=", "\xfb\xff", 2);
	/* The digits of both alphabets. */
	assert_int_equal(hd_b64_digit('+', false), 62);
	assert_int_equal(hd_b64_digit('/', false), 63);
	assert_int_equal(hd_b64_digit('-', true), 62);
	assert_int_equal(hd_b64_digit('_', true), 63);
	assert_int_equal(hd_b64_digit('-', false), -1);
	assert_int_equal(hd_b64_digit('+', true), -1);
	assert_int_equal(hd_b64_digit('z', true), 51);
	assert_int_equal(hd_b64_digit('=', false), -1);
}

static void test_refused(void **state)
{
	static const char *const bad[] = {"Z", "Zm9vY", "Zg=", "Zg===", "Z===", "=Zg=", "Zg==Zg==",
					  "Zm9v Yg==", "Zm9v\nYg==", "-_8=", "Zm9v*", "Zg=a"};
	unsigned char out[16];
	size_t n;
	(void)state;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (dec(bad[i], out, sizeof(out), &n) == 0)
			fail_msg("\"%s\" was accepted", bad[i]);
	/* The output bound: 6 bytes do not fit in 5. */
	assert_int_equal(dec("Zm9vYmFy", out, 5, &n), -1);
	assert_int_equal(dec("Zm9vYmFy", out, 6, &n), 0);
}

static void test_url_vectors(void **state)
{
	static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	static const char *const text[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
	char out[16];
	unsigned char back[16];
	size_t n;

	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		size_t len = strlen(plain[i]);
		assert_int_equal(hd_b64_url_encode(plain[i], len, out, sizeof(out)),
				 (int)strlen(text[i]));
		assert_int_equal(HD_B64_URL_LEN(len), strlen(text[i]));
		assert_string_equal(out, text[i]);
		assert_int_equal(hd_b64_decode(text[i], strlen(text[i]), HD_B64_URL, back, sizeof(back), &n),
				 0);
		assert_int_equal(n, len);
		assert_memory_equal(back, plain[i], len);
	}
}

static void test_url_alphabet(void **state)
{
	static const unsigned char bytes[] = {0xfb, 0xff, 0xbf, 0xfe};
	char out[16];
	unsigned char back[16];
	size_t n = 0;

	assert_int_equal(hd_b64_url_encode(bytes, sizeof(bytes), out, sizeof(out)), 6);
	assert_string_equal(out, "-_-__g");
	assert_int_equal(hd_b64_decode("-_-__g", 6, HD_B64_URL, back, sizeof(back), &n), 0);
	assert_int_equal(n, 4);
	assert_memory_equal(back, bytes, 4);
	/* Padding tolerated on whole groups only. */
	assert_int_equal(hd_b64_decode("-_-__g==", 8, HD_B64_URL, back, sizeof(back), &n), 0);
	assert_int_equal(n, 4);
	assert_int_equal(hd_b64_decode("Zm8=", 4, HD_B64_URL, back, sizeof(back), &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(hd_b64_decode("Zm8==", 5, HD_B64_URL, back, sizeof(back), &n), -1);
	assert_int_equal(hd_b64_decode("Zg=", 3, HD_B64_URL, back, sizeof(back), &n), -1);
	assert_int_equal(hd_b64_decode("Z===", 4, HD_B64_URL, back, sizeof(back), &n), -1);
	assert_int_equal(hd_b64_decode("Zm=8", 4, HD_B64_URL, back, sizeof(back), &n), -1);
	/* The standard alphabet's characters, spaces, and 4k+1 lengths are refused. */
	assert_int_equal(hd_b64_decode("+/+/", 4, HD_B64_URL, back, sizeof(back), &n), -1);
	assert_int_equal(hd_b64_decode("Zm 9v", 5, HD_B64_URL, back, sizeof(back), &n), -1);
	assert_int_equal(hd_b64_decode("Zm9vY", 5, HD_B64_URL, back, sizeof(back), &n), -1);
}

static void test_url_limits(void **state)
{
	char out[5];
	unsigned char back[2];
	size_t n;

	/* "foo" needs 4 characters and the NUL. */
	assert_int_equal(hd_b64_url_encode("foo", 3, out, 4), -1);
	assert_string_equal(out, "");
	assert_int_equal(hd_b64_url_encode("foo", 3, out, 5), 4);
	assert_int_equal(hd_b64_decode("Zm9v", 4, HD_B64_URL, back, sizeof(back), &n), -1);
	assert_int_equal(hd_b64_decode("Zm8", 3, HD_B64_URL, back, sizeof(back), &n), 0);
	assert_int_equal(n, 2);
}

static int canon(const char *text, unsigned char *out, size_t cap, size_t *n)
{
	return hd_b64_decode(text, strlen(text), HD_B64_URL | HD_B64_CANONICAL, out, cap, n);
}

static void test_canonical(void **state)
{
	static const char *const text[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
	static const char *const bad[] = {"Zg==", "Zm8=", "Zh", "Zm9", "Zm9vYh", "Z", "Zm9vY",
					  "+/8", "Zm 9v", "Zm9v="};
	unsigned char out[16];
	size_t n;
	(void)state;

	for (size_t i = 0; i < sizeof(text) / sizeof(text[0]); i++)
		assert_decodes(HD_B64_URL | HD_B64_CANONICAL, text[i], "foobar", i);
	assert_decodes(HD_B64_URL | HD_B64_CANONICAL, "-_-__g", "\xfb\xff\xbf\xfe", 4);
	/* Padding, nonzero unused bits ("Zh" and "Zg" would both be "f"), the
	 * other alphabet, spaces and 4k+1 lengths are refused. */
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (canon(bad[i], out, sizeof(out), &n) == 0)
			fail_msg("\"%s\" was accepted", bad[i]);
	/* The leniently decoded forms of the same texts are accepted. */
	assert_decodes(HD_B64_URL, "Zh", "f", 1);
	assert_decodes(HD_B64_URL, "Zm9vYh", "foob", 4);
	assert_int_equal(canon("Zm9vYmFy", out, 5, &n), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_url_vectors),
		cmocka_unit_test(test_url_alphabet),
		cmocka_unit_test(test_url_limits),
		cmocka_unit_test(test_canonical),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
