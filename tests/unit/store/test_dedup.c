/* Unit tests for store/dedup.c: the writer's in-memory dedup index. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "store/dedup.h"

static void test_find_add_expire(void **state)
{
	struct hd_dedup d;
	(void)state;
	hd_dedup_init(&d, 100);
	assert_null(hd_dedup_find(&d, 1, 42, 0));
	hd_dedup_add(&d, 1, 42, 7, 1000, 0);
	const struct hd_dedup_entry *e = hd_dedup_find(&d, 1, 42, 999);
	assert_non_null(e);
	assert_int_equal(e->offset, 7);
	assert_null(hd_dedup_find(&d, 2, 42, 999));   /* other topic */
	assert_null(hd_dedup_find(&d, 1, 43, 999));   /* other key */
	assert_null(hd_dedup_find(&d, 1, 42, 1000));  /* expired */
	/* The expired entry leaves when something is added after it. */
	hd_dedup_add(&d, 1, 42, 8, 3000, 2000);
	assert_int_equal(d.n, 1);
	assert_int_equal(hd_dedup_find(&d, 1, 42, 2000)->offset, 8);
	hd_dedup_fini(&d);
}

static void test_max_evicts_oldest(void **state)
{
	struct hd_dedup d;
	(void)state;
	hd_dedup_init(&d, 3);
	for (uint64_t i = 1; i <= 5; i++)
		hd_dedup_add(&d, 1, i, i, 1000000, 0);
	assert_int_equal(d.n, 3);
	assert_int_equal(d.evicted, 2);
	assert_null(hd_dedup_find(&d, 1, 1, 0));
	assert_null(hd_dedup_find(&d, 1, 2, 0));
	for (uint64_t i = 3; i <= 5; i++)
		assert_int_equal(hd_dedup_find(&d, 1, i, 0)->offset, i);
	hd_dedup_fini(&d);
}

static void test_rollback_and_drop_topic(void **state)
{
	struct hd_dedup d;
	(void)state;
	hd_dedup_init(&d, 1000);
	for (uint64_t i = 1; i <= 10; i++)
		hd_dedup_add(&d, (int64_t)(i % 2), i, i, 1000000, 0);
	uint64_t mark = hd_dedup_mark(&d);
	for (uint64_t i = 11; i <= 20; i++)
		hd_dedup_add(&d, 1, i, i, 1000000, 0);
	hd_dedup_rollback(&d, mark);
	assert_int_equal(d.n, 10);
	for (uint64_t i = 1; i <= 20; i++)
		assert_true((hd_dedup_find(&d, (int64_t)(i % 2), i, 0) != NULL) == (i <= 10));
	hd_dedup_drop_topic(&d, 1);
	assert_int_equal(d.n, 5);
	for (uint64_t i = 1; i <= 10; i++)
		assert_true((hd_dedup_find(&d, (int64_t)(i % 2), i, 0) != NULL) == (i % 2 == 0));
	hd_dedup_fini(&d);
}

/* Many keys through growth, eviction and removal (backward-shift deletion)
 * with deliberately clustered hashes: every live key is found, no evicted
 * one is. */
static void test_many_keys(void **state)
{
	enum { MAX = 5000, N = 20000 };
	struct hd_dedup d;
	(void)state;
	hd_dedup_init(&d, MAX);
	for (uint64_t i = 0; i < N; i++) {
		/* Keys that differ only in high bits cluster in the index. */
		hd_dedup_add(&d, 1, i << 40, i, 1000000, 0);
		if (i % 997 == 0) {
			for (uint64_t j = i >= MAX ? i - MAX + 1 : 0; j <= i; j++)
				assert_non_null(hd_dedup_find(&d, 1, j << 40, 0));
			if (i >= MAX)
				assert_null(hd_dedup_find(&d, 1, (i - MAX) << 40, 0));
		}
	}
	assert_int_equal(d.n, MAX);
	assert_int_equal(d.evicted, N - MAX);
	hd_dedup_fini(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_find_add_expire),
		cmocka_unit_test(test_max_evicts_oldest),
		cmocka_unit_test(test_rollback_and_drop_topic),
		cmocka_unit_test(test_many_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
