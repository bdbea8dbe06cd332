/* Unit tests for the RFC 3339 parsing and formatting of core/clock.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/clock.h"

static int64_t parse(const char *s)
{
	int64_t ms = -1;
	if (hd_clock_parse_rfc3339(s, strlen(s), &ms) != 0)
		return -1;
	return ms;
}

static void test_valid(void **state)
{
	assert_int_equal(parse("1970-01-01T00:00:00Z"), 0);
	assert_int_equal(parse("2018-04-05T17:31:00Z"), 1522949460000LL);
	assert_int_equal(parse("2018-04-05T17:31:00.5Z"), 1522949460500LL);
	assert_int_equal(parse("2018-04-05T17:31:00.123456789z"), 1522949460123LL);
	assert_int_equal(parse("2018-04-05T19:31:00+02:00"), 1522949460000LL);
	assert_int_equal(parse("2018-04-05T12:01:00-05:30"), 1522949460000LL);
	assert_int_equal(parse("2024-02-29T00:00:00Z"), 1709164800000LL);
	assert_int_equal(parse("2016-12-31T23:59:60Z"), parse("2016-12-31T23:59:59Z"));
}

static void test_invalid(void **state)
{
	const char *bad[] = {"", "2018-04-05", "2018-04-05T17:31:00", "2018-04-05 17:31:00Z",
			     "2018-13-05T17:31:00Z", "2023-02-29T00:00:00Z", "2018-04-05T24:00:00Z",
			     "2018-04-05T17:31:00.Z", "2018-04-05T17:31:00+0200", "2018-04-05T17:31:00Zjunk",
			     "18-04-05T17:31:00Z", "2018-04-05T17:31:00+24:00"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(parse(bad[i]), -1);
}

static void test_format_round_trip(void **state)
{
	char out[32];
	hd_clock_format_rfc3339(1522949460123LL, out, sizeof(out));
	assert_string_equal(out, "2018-04-05T17:31:00.123Z");
	assert_int_equal(parse(out), 1522949460123LL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_format_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
