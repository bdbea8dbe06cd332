/*
 * Unit tests for auth/b64.c: the RFC 4648 §10 vectors, padding optional but
 * only at the end of a whole group, the standard alphabet alone, the output
 * bound.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "auth/b64.h"

static int dec(const char *text, unsigned char *out, size_t cap, size_t *n)
{
	return hd_b64_decode(text, strlen(text), out, cap, n);
}

static void test_vectors(void **state)
{
	static const char *const enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
	static const char *const unpadded[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
	unsigned char out[16];
	size_t n;
	(void)state;

	for (size_t i = 0; i < 7; i++) {
		assert_int_equal(dec(enc[i], out, sizeof(out), &n), 0);
		assert_int_equal(n, i);
		assert_memory_equal(out, "foobar", n);
		assert_int_equal(dec(unpadded[i], out, sizeof(out), &n), 0);
		assert_int_equal(n, i);
		assert_memory_equal(out, "foobar", n);
	}
	/* The standard alphabet's last two digits. */
	assert_int_equal(dec("+/8=", out, sizeof(out), &n), 0);
	assert_int_equal(n, 2);
	assert_memory_equal(out, "\xfb\xff", 2);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
