/*
 * Unit tests for webhook/attempts.c: newest first, the ring dropping the
 * oldest past HD_ATTEMPTS_MAX, and the JSON form.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <string.h>

#include "core/buf.h"
#include "webhook/attempts.h"

static void test_ring(void **state)
{
	struct hd_attempts a;
	(void)state;
	hd_attempts_init(&a);
	assert_null(hd_attempts_get(&a, 0));
	for (uint64_t i = 1; i <= HD_ATTEMPTS_MAX + 5; i++) {
		struct hd_attempt at = {.offset = i, .attempt = 1, .status = 200};
		hd_attempts_add(&a, &at);
	}
	assert_int_equal(a.n, HD_ATTEMPTS_MAX);
	assert_int_equal(a.total, HD_ATTEMPTS_MAX + 5);
	assert_int_equal(hd_attempts_get(&a, 0)->offset, HD_ATTEMPTS_MAX + 5);
	assert_int_equal(hd_attempts_get(&a, HD_ATTEMPTS_MAX - 1)->offset, 6);
	assert_null(hd_attempts_get(&a, HD_ATTEMPTS_MAX));
	hd_attempts_fini(&a);
}

static void test_json(void **state)
{
	struct hd_attempts a;
	struct hd_buf b;
	(void)state;
	hd_attempts_init(&a);
	struct hd_attempt x = {.time_ms = 1000, .offset = 3, .attempt = 1, .status = 0,
			       .latency_us = 1500, .result = HD_ATTEMPT_RETRY, .next_ms = 2000};
	strcpy(x.error, "timed \"out\"");
	hd_attempts_add(&a, &x);
	struct hd_attempt y = {.time_ms = 3000, .offset = 3, .attempt = 2, .status = 200,
			       .result = HD_ATTEMPT_SUCCESS};
	hd_attempts_add(&a, &y);
	hd_buf_init(&b, 1 << 16);
	assert_int_equal(hd_attempts_json(&b, &a, 10), 0);
	json_t *v = json_loads(b.data, 0, NULL);
	assert_true(json_is_array(v));
	assert_int_equal(json_array_size(v), 2);
	json_t *first = json_array_get(v, 0), *second = json_array_get(v, 1);
	assert_int_equal(json_integer_value(json_object_get(first, "attempt")), 2);
	assert_string_equal(json_string_value(json_object_get(first, "result")), "success");
	assert_null(json_object_get(first, "next_attempt"));
	assert_string_equal(json_string_value(json_object_get(second, "error")), "timed \"out\"");
	assert_string_equal(json_string_value(json_object_get(second, "next_attempt")),
			    "1970-01-01T00:00:02.000Z");
	assert_true(json_real_value(json_object_get(second, "latency_ms")) == 1.5);
	json_decref(v);
	hd_buf_reset(&b);
	assert_int_equal(hd_attempts_json(&b, &a, 1), 0);
	v = json_loads(b.data, 0, NULL);
	assert_int_equal(json_array_size(v), 1);
	json_decref(v);
	hd_buf_fini(&b);
	hd_attempts_fini(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ring),
		cmocka_unit_test(test_json),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
