/* Unit tests for consume/due.c: a consumer's wake-up timer is armed at the
 * due time, at once for INT64_MIN or a time past, never for INT64_MAX, and
 * never pushed back past a sooner wake-up. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "consume/due.h"
#include "core/clock.h"

static int fired;

static void on_timer(uv_timer_t *t)
{
	(void)t;
	fired++;
}

static void test_arm(void **state)
{
	uv_loop_t loop;
	uv_timer_t t;
	(void)state;
	assert_int_equal(uv_loop_init(&loop), 0);
	uv_timer_init(&loop, &t);

	hd_due_arm(&t, on_timer, INT64_MAX); /* never */
	assert_false(uv_is_active((uv_handle_t *)&t));

	hd_due_arm(&t, on_timer, hd_now_ms() + 60000);
	assert_true(uv_is_active((uv_handle_t *)&t));
	assert_true(uv_timer_get_due_in(&t) > 50000);

	hd_due_arm(&t, on_timer, hd_now_ms() + 120000); /* later: not pushed back */
	assert_true(uv_timer_get_due_in(&t) <= 60000);

	hd_due_arm(&t, on_timer, hd_now_ms() - 5); /* past: at once */
	assert_int_equal(uv_timer_get_due_in(&t), 0);
	uv_run(&loop, UV_RUN_ONCE);
	assert_int_equal(fired, 1);

	hd_due_arm(&t, on_timer, INT64_MIN); /* at once */
	assert_true(uv_is_active((uv_handle_t *)&t));
	uv_run(&loop, UV_RUN_ONCE);
	assert_int_equal(fired, 2);

	uv_close((uv_handle_t *)&t, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_arm),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
