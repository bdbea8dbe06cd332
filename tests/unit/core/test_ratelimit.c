/* Unit tests for core/ratelimit.c: the token bucket, driven by made-up times. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/ratelimit.h"

static void test_burst_then_rate(void **state)
{
	(void)state;
	struct hd_rate r = {.per_sec = 10, .burst = 5};
	struct hd_bucket b;
	hd_ratelimit_init(&b, &r, 1000);
	for (int i = 0; i < 5; i++)
		assert_int_equal(hd_ratelimit_take(&b, &r, 1, 1000), 0);
	/* Empty: the next token comes in 100 ms. */
	assert_int_equal(hd_ratelimit_take(&b, &r, 1, 1000), 100);
	assert_int_equal(hd_ratelimit_take(&b, &r, 1, 1040), 60);
	assert_int_equal(hd_ratelimit_take(&b, &r, 1, 1100), 0);
	/* A long pause refills to the burst, no further. */
	assert_true(hd_ratelimit_full(&b, &r, 100000));
	for (int i = 0; i < 5; i++)
		assert_int_equal(hd_ratelimit_take(&b, &r, 1, 100000), 0);
	assert_true(hd_ratelimit_take(&b, &r, 1, 100000) > 0);
	assert_false(hd_ratelimit_full(&b, &r, 100000));
}

static void test_request_above_burst_goes_into_debt(void **state)
{
	(void)state;
	struct hd_rate r = {.per_sec = 10, .burst = 10};
	struct hd_bucket b;
	hd_ratelimit_init(&b, &r, 0);
	/* 30 events pass on a full bucket, leaving 20 of debt... */
	assert_int_equal(hd_ratelimit_take(&b, &r, 30, 0), 0);
	/* ...so one more event waits 2.1 s (20 to repay, then 1). */
	assert_int_equal(hd_ratelimit_take(&b, &r, 1, 0), 2100);
	/* A refused request takes nothing. */
	assert_int_equal(hd_ratelimit_take(&b, &r, 1, 0), 2100);
	/* A big batch waits for a full bucket: 3 s. */
	assert_int_equal(hd_ratelimit_take(&b, &r, 100, 0), 3000);
	assert_int_equal(hd_ratelimit_take(&b, &r, 100, 3000), 0);
}

static void test_off_and_default_burst(void **state)
{
	(void)state;
	struct hd_rate off = {0};
	struct hd_bucket b;
	hd_ratelimit_init(&b, &off, 0);
	assert_false(hd_ratelimit_on(&off));
	for (int i = 0; i < 1000; i++)
		assert_int_equal(hd_ratelimit_take(&b, &off, 1000, 0), 0);
	/* burst 0 = one second's worth. */
	struct hd_rate r = {.per_sec = 3};
	hd_ratelimit_init(&b, &r, 0);
	assert_int_equal(hd_ratelimit_take(&b, &r, 3, 0), 0);
	assert_int_equal(hd_ratelimit_take(&b, &r, 1, 0), 334);
	/* A clock that steps back refills nothing and breaks nothing. */
	assert_true(hd_ratelimit_take(&b, &r, 1, -5000) > 0);
	assert_int_equal(hd_ratelimit_retry_after_s(1), 1);
	assert_int_equal(hd_ratelimit_retry_after_s(1000), 1);
	assert_int_equal(hd_ratelimit_retry_after_s(1001), 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_burst_then_rate),
		cmocka_unit_test(test_request_above_burst_goes_into_debt),
		cmocka_unit_test(test_off_and_default_burst),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
