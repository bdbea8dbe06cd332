/* Unit tests for edge/cproxy.c: the parser of the app backend's answers
 * (each outcome, the limits, byte-for-byte data), the option checks of
 * hd_cproxy_new and the copy of forwarded request headers. The calls
 * themselves run against a real backend in tests/e2e/test_app_proxy.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "edge/cproxy.h"

static int parse(enum hd_cproxy_kind k, const char *body, struct hd_cproxy_answer *a)
{
	return hd_cproxy_answer_parse(k, body, strlen(body), a);
}

static void test_connect_result(void **state)
{
	(void)state;
	struct hd_cproxy_answer a;
	assert_int_equal(parse(HD_CPROXY_CONNECT, " {\"result\": {\"user\":\"al\\u00e9\", \"expire_at\": 1900000000,"
			       "\"info\": {\"a\": 1.50}, \"data\": [18446744073709551616, \"x\"],"
			       "\"channels\": [\"news\", \"n\\/2\"], \"b64data\": \"AA==\"}}", &a), 0);
	assert_int_equal(a.outcome, HD_CPROXY_RESULT);
	assert_string_equal(a.user, "al\xc3\xa9");
	assert_int_equal(a.expire_at, 1900000000);
	assert_string_equal(a.info, "{\"a\":1.50}");
	/* Numbers pass byte for byte (no DOM round trip). */
	assert_string_equal(a.data, "[18446744073709551616,\"x\"]");
	assert_int_equal(a.data_len, strlen(a.data));
	assert_int_equal(a.nchannels, 2);
	assert_string_equal(a.channels[1], "n/2");
	hd_cproxy_answer_fini(&a);

	assert_int_equal(parse(HD_CPROXY_CONNECT, "{\"result\":{}}", &a), 0);
	assert_string_equal(a.user, "");
	assert_null(a.data);
	hd_cproxy_answer_fini(&a);
}

static void test_error_and_disconnect(void **state)
{
	(void)state;
	struct hd_cproxy_answer a;
	assert_int_equal(parse(HD_CPROXY_SUBSCRIBE, "{\"error\":{\"code\":403,\"message\":\"no\"}}", &a), 0);
	assert_int_equal(a.outcome, HD_CPROXY_ERROR);
	assert_int_equal(a.code, 403);
	assert_string_equal(a.message, "no");
	hd_cproxy_answer_fini(&a);
	/* disconnect wins over error, error over result */
	assert_int_equal(parse(HD_CPROXY_RPC, "{\"result\":{},\"error\":{\"code\":400},\"disconnect\":{\"code\":4000}}",
			       &a), 0);
	assert_int_equal(a.outcome, HD_CPROXY_DISCONNECT);
	assert_int_equal(a.code, 4000);
	hd_cproxy_answer_fini(&a);
	assert_int_equal(parse(HD_CPROXY_RPC, "{\"result\":{},\"error\":{\"code\":1999}}", &a), 0);
	assert_int_equal(a.outcome, HD_CPROXY_ERROR);
	hd_cproxy_answer_fini(&a);
}

static void test_refresh(void **state)
{
	(void)state;
	struct hd_cproxy_answer a;
	assert_int_equal(parse(HD_CPROXY_REFRESH, "{\"result\":{\"expire_at\":1767225600,\"info\":{\"n\":1.50}}}",
			       &a), 0);
	assert_int_equal(a.outcome, HD_CPROXY_RESULT);
	assert_false(a.expired);
	assert_int_equal(a.expire_at, 1767225600);
	assert_int_equal(a.info_len, 10);
	assert_memory_equal(a.info, "{\"n\":1.50}", 10);
	hd_cproxy_answer_fini(&a);
	assert_int_equal(parse(HD_CPROXY_REFRESH, "{\"result\":{\"expired\":true}}", &a), 0);
	assert_true(a.expired);
	assert_int_equal(a.expire_at, 0);
	hd_cproxy_answer_fini(&a);
	assert_int_equal(parse(HD_CPROXY_REFRESH, "{\"result\":{\"expired\":1}}", &a), HD_EINVAL);
	assert_int_equal(a.outcome, HD_CPROXY_FAILED);
	hd_cproxy_answer_fini(&a);
	/* Other kinds ignore expired (it is not theirs). */
	assert_int_equal(parse(HD_CPROXY_CONNECT, "{\"result\":{\"expired\":true}}", &a), 0);
	assert_false(a.expired);
	hd_cproxy_answer_fini(&a);
}

static void test_malformed(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"", "null", "[]", "{}", "{\"result\":1}", "{\"result\":{}", "{\"result\":{}} x",
		"{\"error\":{\"code\":399}}", "{\"error\":{\"code\":2000}}", "{\"error\":{\"code\":400.0}}",
		"{\"error\":{}}", "{\"error\":{\"code\":400,\"message\":7}}",
		"{\"disconnect\":{\"code\":3999}}", "{\"disconnect\":{\"code\":5000}}",
		"{\"result\":{\"user\":\"a:b\"}}", "{\"result\":{\"user\":5}}",
		"{\"result\":{\"user\":\"a\\u0000b\"}}", "{\"result\":{\"expire_at\":-1}}",
		"{\"result\":{\"channels\":\"x\"}}", "{\"result\":{\"channels\":[1]}}",
		"{\"error\":{\"code\":400,\"message\":\"\xff\"}}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct hd_cproxy_answer a;
		assert_int_equal(parse(HD_CPROXY_CONNECT, bad[i], &a), HD_EINVAL);
		assert_int_equal(a.outcome, HD_CPROXY_FAILED);
		assert_true(a.message[0] != '\0');
		hd_cproxy_answer_fini(&a);
	}
	/* limits: a reason of 124 bytes, a message of 256 */
	char body[600];
	struct hd_cproxy_answer a;
	snprintf(body, sizeof(body), "{\"disconnect\":{\"code\":4000,\"reason\":\"%0124d\"}}", 0);
	assert_int_equal(parse(HD_CPROXY_CONNECT, body, &a), HD_EINVAL);
	hd_cproxy_answer_fini(&a);
	snprintf(body, sizeof(body), "{\"disconnect\":{\"code\":4000,\"reason\":\"%0123d\"}}", 0);
	assert_int_equal(parse(HD_CPROXY_CONNECT, body, &a), 0);
	hd_cproxy_answer_fini(&a);
	snprintf(body, sizeof(body), "{\"error\":{\"code\":400,\"message\":\"%0256d\"}}", 0);
	assert_int_equal(parse(HD_CPROXY_CONNECT, body, &a), HD_EINVAL);
	hd_cproxy_answer_fini(&a);
}

static void test_kinds(void **state)
{
	(void)state;
	struct hd_cproxy_answer a;
	/* channels and user only mean something to connect, info not to publish */
	assert_int_equal(parse(HD_CPROXY_PUBLISH, "{\"result\":{\"user\":\"x\",\"channels\":7,\"info\":1,"
			       "\"data\":{\"t\":\"HI\"},\"skip_history\":true}}", &a), 0);
	assert_string_equal(a.user, "");
	assert_null(a.info);
	assert_string_equal(a.data, "{\"t\":\"HI\"}");
	assert_true(a.skip_history);
	hd_cproxy_answer_fini(&a);
	assert_int_equal(parse(HD_CPROXY_PUBLISH, "{\"result\":{\"skip_history\":1}}", &a), HD_EINVAL);
	hd_cproxy_answer_fini(&a);
	assert_int_equal(parse(HD_CPROXY_SUBSCRIBE, "{\"result\":{\"info\":{\"r\":1}}}", &a), 0);
	assert_string_equal(a.info, "{\"r\":1}");
	hd_cproxy_answer_fini(&a);
}

static const char *get(void *arg, const char *lname)
{
	(void)arg;
	if (strcmp(lname, "cookie") == 0)
		return "sid=1";
	return NULL;
}

static void test_options_and_headers(void **state)
{
	(void)state;
	struct hd_error err = {0};
	uv_loop_t *loop = uv_default_loop();
	struct hd_cproxy_opts o = {.url = {"http://127.0.0.1:1/c"}, .static_header = "nocolon"};
	assert_null(hd_cproxy_new(loop, &o, &err));
	assert_non_null(strstr(err.msg, "--proxy-static-header"));
	o.static_header = "X-Key: v";
	o.http_headers = "Cookie, bad name";
	assert_null(hd_cproxy_new(loop, &o, &err));
	assert_non_null(strstr(err.msg, "--proxy-http-headers"));
	o.http_headers = " Cookie ,X-Real-Ip,";
	struct hd_cproxy *p = hd_cproxy_new(loop, &o, &err);
	assert_non_null(p);
	assert_true(hd_cproxy_enabled(p, HD_CPROXY_CONNECT));
	assert_false(hd_cproxy_enabled(p, HD_CPROXY_RPC));
	assert_false(hd_cproxy_enabled(NULL, HD_CPROXY_RPC));
	struct hd_cproxy_req r = {.kind = HD_CPROXY_RPC};
	assert_int_equal(hd_cproxy_send(p, &r, NULL, NULL), HD_EINVAL);
	struct hd_cproxy_headers *h = hd_cproxy_headers_take(p, get, NULL);
	assert_string_equal(hd_cproxy_headers_get(h, "cookie"), "sid=1");
	assert_null(hd_cproxy_headers_get(h, "x-real-ip"));
	assert_null(hd_cproxy_headers_get(NULL, "cookie"));
	hd_cproxy_headers_free(h);
	hd_cproxy_close(p);
	uv_run(loop, UV_RUN_DEFAULT);
	hd_cproxy_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connect_result),
		cmocka_unit_test(test_error_and_disconnect),
		cmocka_unit_test(test_refresh),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_kinds),
		cmocka_unit_test(test_options_and_headers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
