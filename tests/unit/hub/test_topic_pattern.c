/* Unit tests for hub/topic_pattern.c: syntax, matching, dead letters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "hub/topic_pattern.h"
#include "hub/topic_name.h"

static void test_is(void **state)
{
	(void)state;
	assert_true(hd_topic_pattern_is("orders.*"));
	assert_true(hd_topic_pattern_is("*"));
	assert_true(hd_topic_pattern_is("a*b*"));
	assert_false(hd_topic_pattern_is("orders"));
	assert_false(hd_topic_pattern_is("or*ders"));
	assert_false(hd_topic_pattern_is(""));
	assert_false(hd_topic_pattern_is(NULL));
}

static void test_check(void **state)
{
	struct hd_error err;
	(void)state;
	assert_int_equal(hd_topic_pattern_check("orders.*", &err), 0);
	assert_int_equal(hd_topic_pattern_check("orders:*", &err), 0);
	assert_int_equal(hd_topic_pattern_check("tenant-7*", &err), 0);
	assert_int_equal(hd_topic_pattern_check(".*", &err), 0);
	assert_int_equal(hd_topic_pattern_check("..*", &err), 0);

	hd_error_clear(&err);
	assert_int_equal(hd_topic_pattern_check("*", &err), HD_EBADTOPIC);
	assert_non_null(strstr(err.msg, "alone"));
	assert_int_equal(hd_topic_pattern_check("or*ders.*", &err), HD_EBADTOPIC);
	assert_non_null(strstr(err.msg, "byte 2"));
	assert_int_equal(hd_topic_pattern_check("**", &err), HD_EBADTOPIC);
	assert_int_equal(hd_topic_pattern_check("*orders", &err), HD_EBADTOPIC);
	assert_int_equal(hd_topic_pattern_check("orders", &err), HD_EBADTOPIC);
	assert_int_equal(hd_topic_pattern_check("", &err), HD_EBADTOPIC);
	assert_int_equal(hd_topic_pattern_check("ord ers*", &err), HD_EBADTOPIC);
	assert_non_null(strstr(err.msg, "prefix"));
	assert_int_equal(hd_topic_pattern_check("a/b*", &err), HD_EBADTOPIC);
	/* NULL err is allowed. */
	assert_int_equal(hd_topic_pattern_check("*", NULL), HD_EBADTOPIC);

	char longp[HD_TOPIC_NAME_MAX + 3];
	memset(longp, 'a', sizeof(longp));
	longp[HD_TOPIC_NAME_MAX] = '*';
	longp[HD_TOPIC_NAME_MAX + 1] = '\0';
	assert_int_equal(hd_topic_pattern_check(longp, &err), 0);
	longp[HD_TOPIC_NAME_MAX] = 'a';
	longp[HD_TOPIC_NAME_MAX + 1] = '*';
	longp[HD_TOPIC_NAME_MAX + 2] = '\0';
	assert_int_equal(hd_topic_pattern_check(longp, &err), HD_EBADTOPIC);
}

static void test_match(void **state)
{
	(void)state;
	assert_true(hd_topic_pattern_match("orders.*", "orders.eu"));
	assert_true(hd_topic_pattern_match("orders.*", "orders."));
	assert_true(hd_topic_pattern_match("orders.*", "orders.eu.paid"));
	assert_false(hd_topic_pattern_match("orders.*", "orders"));
	assert_false(hd_topic_pattern_match("orders.*", "orders:eu"));
	assert_false(hd_topic_pattern_match("orders.*", "xorders.eu"));
	assert_true(hd_topic_pattern_match("orders:*", "orders:eu"));
	assert_true(hd_topic_pattern_match("tenant-7*", "tenant-7"));
	assert_true(hd_topic_pattern_match("tenant-7*", "tenant-77:x"));
	/* Dead letters never match, whatever the prefix. */
	assert_false(hd_topic_pattern_match("orders.*", "orders.eu.dlq"));
	assert_false(hd_topic_pattern_match("orders.*", "orders.dlq"));
	assert_true(hd_topic_pattern_match("orders.*", "orders.dlqx"));
	assert_true(hd_topic_pattern_is_dlq("a.dlq"));
	assert_false(hd_topic_pattern_is_dlq("dlq"));
	/* Not a pattern: never matches. */
	assert_false(hd_topic_pattern_match("orders", "orders"));
	assert_false(hd_topic_pattern_match("", "orders"));
}

static void test_prefix(void **state)
{
	char out[16];
	(void)state;
	assert_int_equal(hd_topic_pattern_prefix("orders.*", out, sizeof(out)), 7);
	assert_string_equal(out, "orders.");
	assert_int_equal(hd_topic_pattern_prefix("tenant-7*", out, 4), 8);
	assert_string_equal(out, "ten");
	assert_int_equal(hd_topic_pattern_prefix("x*", out, 0), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_is),
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_prefix),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
