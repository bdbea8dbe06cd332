/*
 * test_query — unit tests of src/http/query.c: percent-decoding edge cases
 * and query-string look-ups.
 */
#include "http/query.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static long dec(const char *in, char *out, size_t out_max, bool plus)
{
	return hd_query_url_decode(in, strlen(in), out, out_max, plus);
}

static void test_decode_plain(void **state)
{
	char out[64];

	assert_int_equal(dec("", out, sizeof(out), false), 0);
	assert_string_equal(out, "");
	assert_int_equal(dec("abc", out, sizeof(out), false), 3);
	assert_string_equal(out, "abc");
	assert_int_equal(dec("a%20b%2fc%2F", out, sizeof(out), false), 6);
	assert_string_equal(out, "a b/c/");
	assert_int_equal(dec("%e2%82%AC", out, sizeof(out), false), 3);
	assert_string_equal(out, "\xe2\x82\xac");
	assert_int_equal(dec("%FF", out, sizeof(out), false), 1);
	assert_int_equal((unsigned char)out[0], 0xff);
}

static void test_decode_bad_escapes(void **state)
{
	char out[64];

	assert_int_equal(dec("%zz", out, sizeof(out), false), -1);
	assert_int_equal(dec("%G1", out, sizeof(out), false), -1);
	assert_int_equal(dec("%1G", out, sizeof(out), false), -1);
	assert_int_equal(dec("%", out, sizeof(out), false), -1);
	assert_int_equal(dec("abc%4", out, sizeof(out), false), -1);
	assert_int_equal(dec("abc%", out, sizeof(out), false), -1);
	assert_int_equal(dec("%%41", out, sizeof(out), false), -1);
	/* The length bounds the input: an escape cut by it is truncated. */
	assert_int_equal(hd_query_url_decode("%41", 2, out, sizeof(out), false), -1);
	assert_int_equal(hd_query_url_decode("%41", 3, out, sizeof(out), false), 1);
	assert_string_equal(out, "A");
}

static void test_decode_nul(void **state)
{
	char out[64];

	assert_int_equal(dec("a%00b", out, sizeof(out), false), -1);
	assert_int_equal(hd_query_url_decode("a\0b", 3, out, sizeof(out), false), -1);
}

static void test_decode_plus(void **state)
{
	char out[64];

	assert_int_equal(dec("a+b", out, sizeof(out), true), 3);
	assert_string_equal(out, "a b");
	assert_int_equal(dec("a+b", out, sizeof(out), false), 3);
	assert_string_equal(out, "a+b");
	assert_int_equal(dec("%2B+", out, sizeof(out), true), 2);
	assert_string_equal(out, "+ ");
}

static void test_decode_fit(void **state)
{
	char out[4];

	assert_int_equal(dec("abc", out, sizeof(out), false), 3);
	assert_string_equal(out, "abc");
	assert_int_equal(dec("abcd", out, sizeof(out), false), -1);
	assert_int_equal(dec("%41%42%43", out, sizeof(out), false), 3);
	assert_int_equal(dec("%41%42%43%44", out, sizeof(out), false), -1);
	assert_int_equal(dec("", out, 1, false), 0);
	assert_int_equal(dec("a", out, 1, false), -1);
	assert_int_equal(dec("", out, 0, false), -1);
}

static void test_query_get(void **state)
{
	char out[64];

	assert_int_equal(hd_query_get("a=1&b=two&c", "b", out, sizeof(out)), 3);
	assert_string_equal(out, "two");
	assert_int_equal(hd_query_get("a=1&b=two&c", "a", out, sizeof(out)), 1);
	assert_string_equal(out, "1");
	assert_int_equal(hd_query_get("a=1&b=two&c", "c", out, sizeof(out)), 0);
	assert_string_equal(out, "");
	assert_int_equal(hd_query_get("a=1&b=two&c", "d", out, sizeof(out)), -1);
	assert_int_equal(hd_query_get("", "a", out, sizeof(out)), -1);
	assert_int_equal(hd_query_get("ab=1", "a", out, sizeof(out)), -1);
	assert_int_equal(hd_query_get("a=1", "ab", out, sizeof(out)), -1);
	assert_int_equal(hd_query_get("a=", "a", out, sizeof(out)), 0);
	assert_int_equal(hd_query_get("a=b=c", "a", out, sizeof(out)), 3);
	assert_string_equal(out, "b=c");
	assert_int_equal(hd_query_get("&&a=1&", "a", out, sizeof(out)), 1);
	assert_string_equal(out, "1");
}

static void test_query_decoding(void **state)
{
	char out[8];

	assert_int_equal(hd_query_get("q=hello+big%20world", "q", out, sizeof(out)), -2);
	assert_int_equal(hd_query_get("q=a+b%2Bc", "q", out, sizeof(out)), 5);
	assert_string_equal(out, "a b+c");
	assert_int_equal(hd_query_get("q=%zz", "q", out, sizeof(out)), -2);
	assert_int_equal(hd_query_get("q=%4", "q", out, sizeof(out)), -2);
	assert_int_equal(hd_query_get("q=a%00", "q", out, sizeof(out)), -2);
	/* Names are compared decoded; an undecodable name matches nothing. */
	assert_int_equal(hd_query_get("t%6Fpic=x", "topic", out, sizeof(out)), 1);
	assert_int_equal(hd_query_get("my+key=v", "my key", out, sizeof(out)), 1);
	assert_int_equal(hd_query_get("t%zzpic=x&topic=y", "topic", out, sizeof(out)), 1);
	assert_string_equal(out, "y");
}

static void test_query_repeated(void **state)
{
	const char *q = "topic=a&x=1&topic=b%2Fc&topic=%zz&topic&topic=d";
	char out[16];
	size_t pos = 0;

	assert_int_equal(hd_query_next(q, "topic", &pos, out, sizeof(out)), 1);
	assert_string_equal(out, "a");
	assert_int_equal(hd_query_next(q, "topic", &pos, out, sizeof(out)), 3);
	assert_string_equal(out, "b/c");
	/* A bad value is reported and skipped; iteration goes on. */
	assert_int_equal(hd_query_next(q, "topic", &pos, out, sizeof(out)), -2);
	assert_int_equal(hd_query_next(q, "topic", &pos, out, sizeof(out)), 0);
	assert_string_equal(out, "");
	assert_int_equal(hd_query_next(q, "topic", &pos, out, sizeof(out)), 1);
	assert_string_equal(out, "d");
	assert_int_equal(hd_query_next(q, "topic", &pos, out, sizeof(out)), -1);
	assert_int_equal(pos, strlen(q));
	assert_int_equal(hd_query_next(q, "topic", &pos, out, sizeof(out)), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decode_plain),
		cmocka_unit_test(test_decode_bad_escapes),
		cmocka_unit_test(test_decode_nul),
		cmocka_unit_test(test_decode_plus),
		cmocka_unit_test(test_decode_fit),
		cmocka_unit_test(test_query_get),
		cmocka_unit_test(test_query_decoding),
		cmocka_unit_test(test_query_repeated),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
