/*
 * Unit tests for hd_push_delivery_send_plan (push/push_delivery.h), the pure
 * decision after a device send's verdict: OK, INVALID and REFUSED end the
 * send; a request never processed is sent again at once, at most
 * HD_PUSH_DELIVERY_RESEND_MAX times in a row; RETRY, THROTTLED and AUTH
 * wait (the service's after_ms, else a doubling backoff capped at
 * HD_PUSH_DELIVERY_BACKOFF_MAX_MS) until max_attempts, and never past the
 * event's expiry.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "push/push_delivery.h"

static struct hd_push_verdict verdict(enum hd_push_verdict_kind kind, int64_t after_ms)
{
	struct hd_push_verdict v = {.kind = kind, .count_attempt = true, .after_ms = after_ms};
	return v;
}

static enum hd_push_delivery_step plan(const struct hd_push_verdict *v, uint32_t attempt,
				       uint32_t resends, int64_t expires_ms, int64_t *wait)
{
	return hd_push_delivery_send_plan(v, attempt, resends, 5, 1000000, expires_ms, 1000, wait);
}

static void test_final_verdicts(void **state)
{
	int64_t wait = -1;
	struct hd_push_verdict ok = verdict(HD_PUSH_OK, -1), inv = verdict(HD_PUSH_INVALID, -1),
			       ref = verdict(HD_PUSH_REFUSED, -1);
	(void)state;
	assert_int_equal(plan(&ok, 1, 0, 0, &wait), HD_PUSH_DELIVERY_SENT);
	assert_int_equal(wait, 0);
	/* Final whatever the attempt: an invalid device is never retried. */
	assert_int_equal(plan(&inv, 1, 0, 0, &wait), HD_PUSH_DELIVERY_INVALID);
	assert_int_equal(plan(&ref, 1, 0, 0, &wait), HD_PUSH_DELIVERY_REFUSED);
	assert_int_equal(plan(&ref, 5, 0, 0, &wait), HD_PUSH_DELIVERY_REFUSED);
}

static void test_backoff_doubles_then_caps(void **state)
{
	int64_t wait;
	struct hd_push_verdict v = verdict(HD_PUSH_RETRY, -1);
	(void)state;
	assert_int_equal(plan(&v, 1, 0, 0, &wait), HD_PUSH_DELIVERY_RETRY);
	assert_int_equal(wait, 1000);
	assert_int_equal(plan(&v, 2, 0, 0, &wait), HD_PUSH_DELIVERY_RETRY);
	assert_int_equal(wait, 2000);
	assert_int_equal(plan(&v, 4, 0, 0, &wait), HD_PUSH_DELIVERY_RETRY);
	assert_int_equal(wait, 8000);
	assert_int_equal(hd_push_delivery_send_plan(&v, 40, 0, 50, 0, 0, 1000, &wait),
			 HD_PUSH_DELIVERY_RETRY);
	assert_int_equal(wait, HD_PUSH_DELIVERY_BACKOFF_MAX_MS);
	/* The service's Retry-After wins; THROTTLED and AUTH retry too. */
	v = verdict(HD_PUSH_THROTTLED, 7000);
	assert_int_equal(plan(&v, 1, 0, 0, &wait), HD_PUSH_DELIVERY_RETRY);
	assert_int_equal(wait, 7000);
	v = verdict(HD_PUSH_AUTH, -1);
	assert_int_equal(plan(&v, 3, 0, 0, &wait), HD_PUSH_DELIVERY_RETRY);
	assert_int_equal(wait, 4000);
}

static void test_gives_up(void **state)
{
	int64_t wait;
	struct hd_push_verdict v = verdict(HD_PUSH_RETRY, -1);
	(void)state;
	/* max_attempts 5: the fifth failed attempt is the last. */
	assert_int_equal(plan(&v, 4, 0, 0, &wait), HD_PUSH_DELIVERY_RETRY);
	assert_int_equal(plan(&v, 5, 0, 0, &wait), HD_PUSH_DELIVERY_GIVE_UP);
	/* Never past the event's expiry: now 1,000,000 + 2 s wait. */
	assert_int_equal(plan(&v, 2, 0, 1002001, &wait), HD_PUSH_DELIVERY_RETRY);
	assert_int_equal(plan(&v, 2, 0, 1002000, &wait), HD_PUSH_DELIVERY_GIVE_UP);
	v = verdict(HD_PUSH_THROTTLED, 60000);
	assert_int_equal(plan(&v, 1, 0, 1030000, &wait), HD_PUSH_DELIVERY_GIVE_UP);
}

static void test_resend_not_counted_capped(void **state)
{
	int64_t wait;
	struct hd_push_verdict v = verdict(HD_PUSH_RETRY, -1);
	(void)state;
	v.count_attempt = false; /* a refused stream, a GOAWAY */
	assert_int_equal(plan(&v, 5, 0, 0, &wait), HD_PUSH_DELIVERY_RESEND);
	assert_int_equal(plan(&v, 1, HD_PUSH_DELIVERY_RESEND_MAX - 1, 0, &wait),
			 HD_PUSH_DELIVERY_RESEND);
	/* Past the cap in a row it counts as an ordinary retry. */
	assert_int_equal(plan(&v, 1, HD_PUSH_DELIVERY_RESEND_MAX, 0, &wait), HD_PUSH_DELIVERY_RETRY);
	assert_int_equal(plan(&v, 5, HD_PUSH_DELIVERY_RESEND_MAX, 0, &wait),
			 HD_PUSH_DELIVERY_GIVE_UP);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_final_verdicts),
		cmocka_unit_test(test_backoff_doubles_then_caps),
		cmocka_unit_test(test_gives_up),
		cmocka_unit_test(test_resend_not_counted_capped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
