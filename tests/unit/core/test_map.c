/* Unit tests for core/map.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>

#include "core/err.h"
#include "core/map.h"

static void test_put_get_del_and_ceiling(void **state)
{
	struct hd_map m;
	char key[32];
	hd_map_init(&m, 1000);
	for (intptr_t i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "k%ld", (long)i);
		assert_int_equal(hd_map_put(&m, key, (void *)(i + 1)), 0);
	}
	assert_int_equal(hd_map_put(&m, "one-too-many", (void *)1), HD_ELIMIT);
	/* Replacing an existing key is not growth. */
	assert_int_equal(hd_map_put(&m, "k5", (void *)77), 0);
	assert_ptr_equal(hd_map_get(&m, "k5"), (void *)77);
	assert_ptr_equal(hd_map_get(&m, "k999"), (void *)1000);
	assert_null(hd_map_get(&m, "absent"));
	assert_ptr_equal(hd_map_del(&m, "k999"), (void *)1000);
	assert_null(hd_map_get(&m, "k999"));
	assert_int_equal(m.count, 999);
	assert_int_equal(hd_map_put(&m, "again", (void *)2), 0);
	hd_map_fini(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_put_get_del_and_ceiling),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
