/* Unit tests for hub/topic_name.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "hub/topic_name.h"

static int check(const char *s)
{
	return hd_topic_name_check(s, strlen(s), NULL);
}

static void test_names(void **state)
{
	char longest[256];
	memset(longest, 'a', 255);
	longest[255] = '\0';
	assert_int_equal(check("demo"), 0);
	assert_int_equal(check("user:42"), 0);
	assert_int_equal(check("a.b_c~d:e@f-G9"), 0);
	assert_int_equal(check(longest), 0);
	assert_int_equal(check(""), HD_EBADTOPIC);
	assert_int_equal(check("."), HD_EBADTOPIC);
	assert_int_equal(check(".."), HD_EBADTOPIC);
	assert_int_equal(check("a/b"), HD_EBADTOPIC);
	assert_int_equal(check("a b"), HD_EBADTOPIC);
	assert_int_equal(check("caf\xc3\xa9"), HD_EBADTOPIC);
	assert_int_equal(hd_topic_name_check("a\0b", 3, NULL), HD_EBADTOPIC);
	longest[255] = 'a';
	assert_int_equal(hd_topic_name_check(longest, 256, NULL), HD_EBADTOPIC);
}

static void test_message(void **state)
{
	struct hd_error err = {0};
	assert_int_equal(hd_topic_name_check("a/b", 3, &err), HD_EBADTOPIC);
	assert_non_null(strstr(err.msg, "at byte 1"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_message),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
