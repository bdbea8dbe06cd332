/* Unit tests for engine/redis.c: what can be checked without a Redis (the
 * --redis-url syntax and the options hd_redis_engine_new refuses). The
 * engine itself is tested end to end in tests/e2e/test_cluster*.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/err.h"
#include "engine/redis.h"

static int parse(const char *url, char host[256], int *port, int *db)
{
	return hd_redis_parse_url(url, strlen(url), host, port, db);
}

static void test_parse_url(void **state)
{
	char host[256];
	int port, db;
	assert_int_equal(parse("redis://127.0.0.1:6380/3", host, &port, &db), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 6380);
	assert_int_equal(db, 3);
	assert_int_equal(parse("redis://cache.internal", host, &port, &db), 0);
	assert_string_equal(host, "cache.internal");
	assert_int_equal(port, 6379);
	assert_int_equal(db, 0);
	assert_int_equal(parse("redis://h:1/", host, &port, &db), HD_ECONFIG);
	assert_int_equal(parse("redis://h:1/16", host, &port, &db), HD_ECONFIG);
	assert_int_equal(parse("redis://h:0", host, &port, &db), HD_ECONFIG);
	assert_int_equal(parse("redis://h:65536", host, &port, &db), HD_ECONFIG);
	assert_int_equal(parse("redis://h:12x", host, &port, &db), HD_ECONFIG);
	assert_int_equal(parse("redis://:6379", host, &port, &db), HD_ECONFIG);
	assert_int_equal(parse("http://h:6379", host, &port, &db), HD_ECONFIG);
	assert_int_equal(parse("redis://", host, &port, &db), HD_ECONFIG);
}

static void test_bad_options_are_refused(void **state)
{
	struct hd_error err = {0};
	struct hd_redis_opts o = {.urls = "redis://h:1,nope"};
	assert_null(hd_redis_engine_new(NULL, &o, &err));
	assert_int_equal(err.code, HD_ECONFIG);
	assert_non_null(strstr(err.msg, "nope"));
	o.urls = "";
	assert_null(hd_redis_engine_new(NULL, &o, &err));
	o = (struct hd_redis_opts){.urls = "redis://h:1", .sentinels = "h:26379"};
	assert_null(hd_redis_engine_new(NULL, &o, &err));
	assert_non_null(strstr(err.msg, "--redis-master-name"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_url),
		cmocka_unit_test(test_bad_options_are_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
