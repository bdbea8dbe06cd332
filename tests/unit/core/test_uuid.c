/* Unit tests of core/uuid.c: random version 4 UUIDs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/uuid.h"
#include "../uuid_check.h"

static void test_uuid_v4(void **state)
{
	char a[37], b[37];

	for (int i = 0; i < 1000; i++) {
		hd_uuid_v4(a);
		hd_uuid_v4(b);
		assert_true(is_uuid_v4(a));
		assert_true(is_uuid_v4(b));
		assert_string_not_equal(a, b);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uuid_v4),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
