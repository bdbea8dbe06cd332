/*
 * Unit tests for push/b64url.c: the RFC 4648 §10 test vectors in the
 * base64url alphabet, bytes that differ between the two alphabets, the
 * tolerated padding and the refused texts, and the buffer limits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "push/b64url.h"

#include <string.h>

static void test_rfc4648_vectors(void **state)
{
	static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	static const char *const text[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
	char out[16];
	unsigned char back[16];
	size_t n;

	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		size_t len = strlen(plain[i]);
		assert_int_equal(hd_b64url_encode(plain[i], len, out, sizeof(out)),
				 (int)strlen(text[i]));
		assert_int_equal(HD_B64URL_LEN(len), strlen(text[i]));
		assert_string_equal(out, text[i]);
		assert_int_equal(hd_b64url_decode(text[i], strlen(text[i]), back, sizeof(back), &n),
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
	size_t n;

	assert_int_equal(hd_b64url_encode(bytes, sizeof(bytes), out, sizeof(out)), 6);
	assert_string_equal(out, "-_-__g");
	assert_int_equal(hd_b64url_decode("-_-__g", 6, back, sizeof(back), &n), 0);
	assert_int_equal(n, 4);
	assert_memory_equal(back, bytes, 4);
	/* Padding tolerated on whole groups only. */
	assert_int_equal(hd_b64url_decode("-_-__g==", 8, back, sizeof(back), &n), 0);
	assert_int_equal(n, 4);
	assert_int_equal(hd_b64url_decode("Zm8=", 4, back, sizeof(back), &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(hd_b64url_decode("Zm8==", 5, back, sizeof(back), &n), -1);
	assert_int_equal(hd_b64url_decode("Zg=", 3, back, sizeof(back), &n), -1);
	assert_int_equal(hd_b64url_decode("Z===", 4, back, sizeof(back), &n), -1);
	assert_int_equal(hd_b64url_decode("Zm=8", 4, back, sizeof(back), &n), -1);
	/* The standard alphabet's characters, spaces, and 4k+1 lengths are refused. */
	assert_int_equal(hd_b64url_decode("+/+/", 4, back, sizeof(back), &n), -1);
	assert_int_equal(hd_b64url_decode("Zm 9v", 5, back, sizeof(back), &n), -1);
	assert_int_equal(hd_b64url_decode("Zm9vY", 5, back, sizeof(back), &n), -1);
}

static void test_limits(void **state)
{
	char out[5];
	unsigned char back[2];
	size_t n;

	/* "foo" needs 4 characters and the NUL. */
	assert_int_equal(hd_b64url_encode("foo", 3, out, 4), -1);
	assert_string_equal(out, "");
	assert_int_equal(hd_b64url_encode("foo", 3, out, 5), 4);
	assert_int_equal(hd_b64url_decode("Zm9v", 4, back, sizeof(back), &n), -1);
	assert_int_equal(hd_b64url_decode("Zm8", 3, back, sizeof(back), &n), 0);
	assert_int_equal(n, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc4648_vectors),
		cmocka_unit_test(test_url_alphabet),
		cmocka_unit_test(test_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
