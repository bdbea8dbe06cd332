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
			       "\"channels\": [\"news\", \"n\\/2\"], \"b64data\": \"\"}}", &a), 0);
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
	assert_int_equal(parse(HD_CPROXY_SUBSCRIBE, "{\"result\":{\"expired\":true}}", &a), 0);
	assert_false(a.expired);
	hd_cproxy_answer_fini(&a);
}

/* The sub-refresh answer reads as the refresh one (expired, expire_at,
 * info or b64info), and a subscribe answer has an expire_at too. */
static void test_sub_refresh(void **state)
{
	(void)state;
	struct hd_cproxy_answer a;
	assert_int_equal(parse(HD_CPROXY_SUB_REFRESH, "{\"result\":{\"expire_at\":1900000000,"
			       "\"info\":{\"v\":1},\"b64info\":\"eyJzZWF0IjogMn0=\"}}", &a), 0);
	assert_int_equal(a.outcome, HD_CPROXY_RESULT);
	assert_false(a.expired);
	assert_int_equal(a.expire_at, 1900000000);
	assert_string_equal(a.info, "{\"seat\":2}"); /* b64info wins, minified */
	hd_cproxy_answer_fini(&a);
	assert_int_equal(parse(HD_CPROXY_SUB_REFRESH, "{\"result\":{\"expired\":true,\"expire_at\":null}}", &a), 0);
	assert_true(a.expired);
	assert_int_equal(a.expire_at, 0);
	hd_cproxy_answer_fini(&a);
	static const char *const bad[] = {
		"{\"result\":{\"expired\":\"yes\"}}", "{\"result\":{\"expire_at\":-1}}",
		"{\"result\":{\"expire_at\":1.5}}", "{\"result\":{\"b64info\":\"AP8=\"}}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse(HD_CPROXY_SUB_REFRESH, bad[i], &a), HD_EINVAL);
		assert_int_equal(a.outcome, HD_CPROXY_FAILED);
		hd_cproxy_answer_fini(&a);
	}
	/* A sub refresh has no data to give the client: b64data is not read. */
	assert_int_equal(parse(HD_CPROXY_SUB_REFRESH, "{\"result\":{\"b64data\":\"!\"}}", &a), 0);
	assert_false(a.data_b64);
	hd_cproxy_answer_fini(&a);
	assert_int_equal(parse(HD_CPROXY_SUBSCRIBE, "{\"result\":{\"expire_at\":1900000000}}", &a), 0);
	assert_int_equal(a.expire_at, 1900000000);
	hd_cproxy_answer_fini(&a);
	assert_int_equal(parse(HD_CPROXY_SUBSCRIBE, "{\"result\":{\"expire_at\":\"soon\"}}", &a), HD_EINVAL);
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

/* b64info and b64data (Centrifugo's base64 forms) replace info and data. */
static void test_b64(void **state)
{
	(void)state;
	struct hd_cproxy_answer a;
	/* {"a": 1} and the bytes 00 ff; info and data are then not used. */
	assert_int_equal(parse(HD_CPROXY_SUBSCRIBE, "{\"result\":{\"info\":{\"x\":1},\"b64info\":\"eyJhIjogMX0=\","
			       "\"data\":2,\"b64data\":\"AP8=\"}}", &a), 0);
	assert_string_equal(a.info, "{\"a\":1}");
	assert_int_equal(a.info_len, 7);
	assert_true(a.data_b64);
	assert_int_equal(a.data_len, 2);
	assert_memory_equal(a.data, "\x00\xff", 2);
	hd_cproxy_answer_fini(&a);
	/* Escaped '/' in the JSON string, no padding. */
	assert_int_equal(parse(HD_CPROXY_RPC, "{\"result\":{\"b64data\":\"\\/w\"}}", &a), 0);
	assert_int_equal(a.data_len, 1);
	assert_memory_equal(a.data, "\xff", 1);
	hd_cproxy_answer_fini(&a);
	/* connect and refresh take b64info too; refresh ignores b64data. */
	assert_int_equal(parse(HD_CPROXY_CONNECT, "{\"result\":{\"b64info\":\"WzFd\"}}", &a), 0);
	assert_string_equal(a.info, "[1]");
	hd_cproxy_answer_fini(&a);
	assert_int_equal(parse(HD_CPROXY_REFRESH, "{\"result\":{\"b64info\":\"WzFd\",\"b64data\":\"!\"}}", &a), 0);
	assert_string_equal(a.info, "[1]");
	assert_null(a.data);
	hd_cproxy_answer_fini(&a);
	/* "" and null are absent. */
	assert_int_equal(parse(HD_CPROXY_SUBSCRIBE, "{\"result\":{\"info\":1,\"b64info\":\"\",\"b64data\":null}}", &a), 0);
	assert_string_equal(a.info, "1");
	assert_null(a.data);
	assert_false(a.data_b64);
	hd_cproxy_answer_fini(&a);
	/* Failures: not base64, not a string, info not JSON or too long. */
	static const char *const bad[] = {
		"{\"result\":{\"b64data\":\"A\"}}", "{\"result\":{\"b64data\":\"AP8*\"}}",
		"{\"result\":{\"b64data\":5}}", "{\"result\":{\"b64info\":\"AP8=\"}}",
		"{\"result\":{\"b64info\":\"e30 \"}}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse(HD_CPROXY_SUBSCRIBE, bad[i], &a), HD_EINVAL);
		assert_int_equal(a.outcome, HD_CPROXY_FAILED);
		assert_non_null(strstr(a.message, "b64"));
		hd_cproxy_answer_fini(&a);
	}
	/* A publish answer's b64data replaces the publication's data. */
	assert_int_equal(parse(HD_CPROXY_PUBLISH, "{\"result\":{\"b64data\":\"eyJ4IjoxfQ==\",\"data\":1}}", &a), 0);
	assert_true(a.data_b64);
	assert_int_equal(a.data_len, 7);
	assert_string_equal(a.data, "{\"x\":1}");
	hd_cproxy_answer_fini(&a);
	/* 4096 bytes of decoded info pass, 4097 do not: "xx…" base64 encoded
	 * (3-byte groups of "xxx" are "eHh4"). */
	for (int extra = 0; extra < 2; extra++) {
		size_t n = 4096 + (size_t)extra; /* a JSON string: quotes and n - 2 x */
		char raw[4200], b64[6000], body[6100];
		raw[0] = '"';
		memset(raw + 1, 'x', n - 2);
		raw[n - 1] = '"';
		static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
		size_t o = 0;
		for (size_t i = 0; i < n; i += 3) {
			unsigned v = (unsigned char)raw[i] << 16 | (i + 1 < n ? (unsigned char)raw[i + 1] << 8 : 0) |
				     (i + 2 < n ? (unsigned char)raw[i + 2] : 0);
			b64[o++] = digits[v >> 18];
			b64[o++] = digits[(v >> 12) & 63];
			b64[o++] = i + 1 < n ? digits[(v >> 6) & 63] : '=';
			b64[o++] = i + 2 < n ? digits[v & 63] : '=';
		}
		b64[o] = '\0';
		snprintf(body, sizeof(body), "{\"result\":{\"b64info\":\"%s\"}}", b64);
		assert_int_equal(parse(HD_CPROXY_SUBSCRIBE, body, &a), extra ? HD_EINVAL : 0);
		if (!extra)
			assert_int_equal(a.info_len, 4096);
		hd_cproxy_answer_fini(&a);
	}
}

/* A connect answer's subs: read as the token's subs claim (auth/jwt.c),
 * with the same limits; a bad entry fails the answer; other kinds ignore it. */
static void test_connect_subs(void **state)
{
	(void)state;
	struct hd_cproxy_answer a;
	assert_int_equal(parse(HD_CPROXY_CONNECT,
			       "{\"result\":{\"user\":\"u\",\"channels\":[\"b\",\"news\"],\"subs\":{"
			       "\"a\":{\"b64info\":\"WzFd\",\"b64data\":\"AP8=\",\"override\":{"
			       "\"force_push_join_leave\":{\"value\":true},\"join_leave\":{\"value\":false}}},"
			       "\"b\":{\"info\":{ \"r\" : 1 },\"data\":{\"w\":true}},\"c\":null}}}", &a), 0);
	assert_int_equal(a.subs.nchannels, 3);
	assert_string_equal(a.subs.channels[0], "a");
	assert_string_equal(a.subs.subs[0].info, "[1]");
	assert_true(a.subs.subs[0].data_b64);
	assert_memory_equal(a.subs.subs[0].data, "\x00\xff", 2);
	assert_true(a.subs.subs[0].push_join_leave);
	assert_true(a.subs.subs[0].join_leave_set);
	assert_false(a.subs.subs[0].join_leave);
	assert_string_equal(a.subs.channels[1], "b");
	assert_string_equal(a.subs.subs[1].info, "{\"r\":1}");
	assert_string_equal(a.subs.subs[1].data, "{\"w\":true}");
	assert_false(a.subs.subs[1].join_leave_set);
	assert_null(a.subs.subs[2].info);
	assert_int_equal(a.nchannels, 2);
	hd_cproxy_answer_fini(&a);
	assert_null(a.subs.subs);
	/* Not read for subscribe. */
	assert_int_equal(parse(HD_CPROXY_SUBSCRIBE, "{\"result\":{\"subs\":7}}", &a), 0);
	assert_int_equal(a.subs.nchannels, 0);
	hd_cproxy_answer_fini(&a);
	static const char *const bad[] = {
		"{\"result\":{\"subs\":[\"a\"]}}",
		"{\"result\":{\"subs\":{\"a\":{\"b64data\":\"A\"}}}}",
		"{\"result\":{\"subs\":{\"a\":{\"b64info\":\"AP8=\"}}}}",
		"{\"result\":{\"subs\":{\"a\":{\"override\":{\"join_leave\":true}}}}}",
		"{\"result\":{\"subs\":{\"a\":{},\"a\":{}}}}",
	};
	static const char *const why[] = {
		"result.subs must be an object", "result.subs[a].b64data is not base64",
		"result.subs[a].b64info is not base64 of a JSON text",
		"result.subs[a].override.join_leave must be", "result.subs is not JSON",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(parse(HD_CPROXY_CONNECT, bad[i], &a), HD_EINVAL);
		assert_int_equal(a.outcome, HD_CPROXY_FAILED);
		if (!strstr(a.message, why[i]))
			fail_msg("%s: %s", bad[i], a.message);
		hd_cproxy_answer_fini(&a);
	}
	/* 64 channels pass, 65 do not. */
	for (int extra = 0; extra < 2; extra++) {
		char body[2048];
		size_t o = (size_t)snprintf(body, sizeof(body), "{\"result\":{\"subs\":{");
		for (int i = 0; i < 64 + extra; i++)
			o += (size_t)snprintf(body + o, sizeof(body) - o, "%s\"c%d\":{}", i ? "," : "", i);
		snprintf(body + o, sizeof(body) - o, "}}}");
		assert_int_equal(parse(HD_CPROXY_CONNECT, body, &a), extra ? HD_EINVAL : 0);
		if (extra)
			assert_non_null(strstr(a.message, "result.subs has 65 channels, at most 64"));
		else
			assert_int_equal(a.subs.nchannels, 64);
		hd_cproxy_answer_fini(&a);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connect_result),
		cmocka_unit_test(test_b64),
		cmocka_unit_test(test_connect_subs),
		cmocka_unit_test(test_error_and_disconnect),
		cmocka_unit_test(test_refresh),
		cmocka_unit_test(test_sub_refresh),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_kinds),
		cmocka_unit_test(test_options_and_headers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
