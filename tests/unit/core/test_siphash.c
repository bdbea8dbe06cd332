/* Unit tests for core/siphash.c: the paper's vectors (key 00..0f, message
 * 00..len-1) and incremental hashing split at every point. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/siphash.h"

static unsigned char key[16], msg[64];

static int setup(void **state)
{
	(void)state;
	for (int i = 0; i < 16; i++)
		key[i] = (unsigned char)i;
	for (int i = 0; i < 64; i++)
		msg[i] = (unsigned char)i;
	return 0;
}

static void test_vectors(void **state)
{
	(void)state;
	assert_true(hd_siphash(key, msg, 0) == 0x726fdb47dd0e0e31ull);
	assert_true(hd_siphash(key, msg, 1) == 0x74f839c593dc67fdull);
	assert_true(hd_siphash(key, msg, 15) == 0xa129ca6149be45e5ull);
}

static void test_incremental_matches(void **state)
{
	(void)state;
	for (size_t len = 0; len <= sizeof(msg); len++) {
		uint64_t want = hd_siphash(key, msg, len);
		for (size_t cut = 0; cut <= len; cut++) {
			struct hd_siphash h;
			hd_siphash_init(&h, key);
			hd_siphash_add(&h, msg, cut);
			hd_siphash_add(&h, msg + cut, len - cut);
			assert_true(hd_siphash_final(&h) == want);
		}
		/* Byte by byte. */
		struct hd_siphash h;
		hd_siphash_init(&h, key);
		for (size_t i = 0; i < len; i++)
			hd_siphash_add(&h, msg + i, 1);
		assert_true(hd_siphash_final(&h) == want);
	}
}

static void test_key_matters(void **state)
{
	(void)state;
	unsigned char other[16] = {0};
	assert_true(hd_siphash(key, "abc", 3) != hd_siphash(other, "abc", 3));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_vectors, setup),
		cmocka_unit_test_setup(test_incremental_matches, setup),
		cmocka_unit_test_setup(test_key_matters, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
