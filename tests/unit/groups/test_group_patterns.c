/* Unit tests for groups/group_patterns.c's pure part: the name of the part
 * rows, which is stored and so must never change. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "groups/group_patterns.h"

static void test_part_name(void **state)
{
	char out[HD_GROUP_NAME_MAX + 1];
	(void)state;
	/* FNV-1a 64 of "" is the offset basis; of "a" a known value. */
	assert_int_equal(hd_group_patterns_part_name("", "g", out, sizeof(out)), 18);
	assert_string_equal(out, "g*cbf29ce484222325");
	hd_group_patterns_part_name("a", "g", out, sizeof(out));
	assert_string_equal(out, "g*af63dc4c8601ec8c");
	/* Different patterns, different names; same pattern, same name. */
	char b[HD_GROUP_NAME_MAX + 1];
	hd_group_patterns_part_name("orders.*", "ship", out, sizeof(out));
	hd_group_patterns_part_name("orders:*", "ship", b, sizeof(b));
	assert_string_not_equal(out, b);
	hd_group_patterns_part_name("orders.*", "ship", b, sizeof(b));
	assert_string_equal(out, b);
	/* The longest pattern group name fits a group row's name. */
	char name[HD_GROUP_PATTERN_NAME_MAX + 1];
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	assert_int_equal(hd_group_patterns_part_name("x.*", name, out, sizeof(out)), HD_GROUP_NAME_MAX);
	assert_non_null(strchr(out, '*'));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_part_name),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
