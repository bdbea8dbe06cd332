/*
 * Unit tests for webhook/retry.c: outcomes by status, the schedule with its
 * last entry repeating, the jitter bounds, Retry-After for 429/503 only
 * (with its floor and cap), and the time scale.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "webhook/retry.h"

static const uint32_t sched[] = {5000, 300000, 1800000};

static void test_classify(void **state)
{
	(void)state;
	assert_int_equal(hd_retry_classify(200), HD_RETRY_SUCCESS);
	assert_int_equal(hd_retry_classify(204), HD_RETRY_SUCCESS);
	assert_int_equal(hd_retry_classify(299), HD_RETRY_SUCCESS);
	assert_int_equal(hd_retry_classify(410), HD_RETRY_GONE);
	assert_int_equal(hd_retry_classify(301), HD_RETRY_FAILED);
	assert_int_equal(hd_retry_classify(0), HD_RETRY_FAILED);
	assert_int_equal(hd_retry_classify(500), HD_RETRY_FAILED);
	assert_int_equal(hd_retry_classify(429), HD_RETRY_FAILED);
}

static void test_schedule_and_jitter(void **state)
{
	(void)state;
	/* rnd 0.5 is the middle: no jitter. */
	assert_int_equal(hd_retry_delay_ms(sched, 3, 1, 500, -1, 1.0, 0.5), 5000);
	assert_int_equal(hd_retry_delay_ms(sched, 3, 2, 500, -1, 1.0, 0.5), 300000);
	assert_int_equal(hd_retry_delay_ms(sched, 3, 3, 0, -1, 1.0, 0.5), 1800000);
	assert_int_equal(hd_retry_delay_ms(sched, 3, 9, 0, -1, 1.0, 0.5), 1800000);
	/* +-20 %. */
	assert_int_equal(hd_retry_delay_ms(sched, 3, 1, 500, -1, 1.0, 0.0), 4000);
	assert_in_range(hd_retry_delay_ms(sched, 3, 1, 500, -1, 1.0, 0.999999), 5990, 6000);
	for (int i = 0; i < 100; i++) {
		int64_t d = hd_retry_delay_ms(sched, 3, 2, 503, -1, 1.0, i / 100.0);
		assert_in_range(d, 240000, 360000);
	}
	/* Scaled. */
	assert_int_equal(hd_retry_delay_ms(sched, 3, 1, 500, -1, 0.001, 0.5), 5);
	assert_int_equal(hd_retry_delay_ms(sched, 3, 2, 500, -1, 0.01, 0.5), 3000);
	/* A 429 without Retry-After follows the schedule; other statuses ignore it. */
	assert_int_equal(hd_retry_delay_ms(sched, 3, 1, 429, -1, 1.0, 0.5), 5000);
	assert_int_equal(hd_retry_delay_ms(sched, 3, 1, 500, 60000, 1.0, 0.5), 5000);
}

static void test_retry_after(void **state)
{
	(void)state;
	assert_int_equal(hd_retry_delay_ms(sched, 3, 1, 429, 100000, 1.0, 0.9), 100000);
	assert_int_equal(hd_retry_delay_ms(sched, 3, 1, 503, 100000, 0.01, 0.1), 1000);
	assert_int_equal(hd_retry_delay_ms(sched, 3, 5, 429, 0, 1.0, 0.5), HD_RETRY_AFTER_MIN_MS);
	assert_int_equal(hd_retry_delay_ms(sched, 3, 1, 429, 90LL * 86400 * 1000, 1.0, 0.5),
			 HD_RETRY_AFTER_MAX_MS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classify),
		cmocka_unit_test(test_schedule_and_jitter),
		cmocka_unit_test(test_retry_after),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
