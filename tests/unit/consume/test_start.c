/*
 * Unit tests for consume/start.c: every form of "start" and the refusals.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <string.h>

#include "consume/start.h"

static int parse(const char *text, struct hd_start *st, struct hd_error *err)
{
	json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
	memset(err, 0, sizeof(*err));
	int rc = hd_start_parse(j, st, err);
	json_decref(j);
	return rc;
}

static void test_forms(void **state)
{
	struct hd_start st;
	struct hd_error err;
	(void)state;
	assert_int_equal(hd_start_parse(NULL, &st, &err), 0);
	assert_int_equal(st.kind, HD_START_LATEST);
	assert_int_equal(parse("\"latest\"", &st, &err), 0);
	assert_int_equal(st.kind, HD_START_LATEST);
	assert_int_equal(parse("\"oldest\"", &st, &err), 0);
	assert_int_equal(st.kind, HD_START_OLDEST);
	assert_int_equal(parse("{\"offset\":1}", &st, &err), 0);
	assert_int_equal(st.kind, HD_START_OFFSET);
	assert_int_equal(st.offset, 1);
	assert_int_equal(parse("{\"time\":\"1970-01-01T00:00:01.5Z\"}", &st, &err), 0);
	assert_int_equal(st.kind, HD_START_TIME);
	assert_int_equal(st.time_ms, 1500);
}

static void test_refusals(void **state)
{
	static const char *const bad[] = {"\"newest\"", "{\"offset\":0}", "{\"offset\":\"1\"}",
					  "{\"time\":\"yesterday\"}", "{\"offset\":1,\"time\":1}",
					  "{}", "1", "null", "[]"};
	struct hd_start st;
	struct hd_error err;
	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse(bad[i], &st, &err), HD_EINVAL);
		assert_non_null(strstr(err.msg, "'start' must be"));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forms),
		cmocka_unit_test(test_refusals),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
