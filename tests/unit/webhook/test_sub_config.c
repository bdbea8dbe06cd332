/*
 * Unit tests for webhook/sub_config.c: defaults, every member parsed,
 * the refusals with their messages, literal private hosts, the JSON form
 * read back (filter matching: tests/unit/consume/test_filter.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <string.h>

#include "core/buf.h"
#include "webhook/signature.h"
#include "webhook/sub_config.h"

static int parse(const char *body, bool allow_private, struct hd_sub_config *c,
		 struct hd_sub_start *st, char *secret, struct hd_error *err)
{
	memset(err, 0, sizeof(*err));
	return hd_sub_config_parse(body, strlen(body), allow_private, c, st, secret, HD_WHSEC_TEXT_MAX + 1,
			    err);
}

static void test_defaults(void **state)
{
	struct hd_sub_config c;
	struct hd_sub_start st;
	struct hd_error err;
	char secret[HD_WHSEC_TEXT_MAX + 1];
	(void)state;
	assert_int_equal(parse("{\"topic\":\"orders\",\"url\":\"https://example.com/h\"}", false, &c,
			       &st, secret, &err),
			 0);
	assert_string_equal(c.topic, "orders");
	assert_string_equal(c.url, "https://example.com/h");
	assert_int_equal(c.mode, HD_SUB_STRUCTURED);
	assert_true(c.ordered);
	assert_int_equal(c.concurrency, 1);
	assert_int_equal(c.max_attempts, 8);
	assert_int_equal(c.nschedule, 7);
	assert_int_equal(c.schedule[0], 5000);
	assert_int_equal(c.schedule[6], 36000000);
	assert_int_equal(c.pause_after, 5);
	assert_int_equal(st.kind, HD_SUB_START_LATEST);
	assert_string_equal(secret, "");
	assert_true(hd_filter_empty(&c.filter));
}

static void test_every_member(void **state)
{
	struct hd_sub_config c;
	struct hd_sub_start st;
	struct hd_error err;
	char secret[HD_WHSEC_TEXT_MAX + 1];
	(void)state;
	const char *body =
		"{\"topic\":\"rides:1\",\"url\":\"http://hooks.example.com:8080/x?y=1\","
		"\"filter\":{\"type\":\"a.b\",\"type_prefix\":\"a.\",\"source\":\"/s\","
		"\"subject_prefix\":\"p/\"},\"secret\":\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\","
		"\"mode\":\"binary\",\"ordered\":false,\"concurrency\":7,\"max_attempts\":3,"
		"\"retry_schedule\":[1,2],\"start\":{\"offset\":9},\"pause_after\":0}";
	assert_int_equal(parse(body, false, &c, &st, secret, &err), 0);
	assert_int_equal(c.mode, HD_SUB_BINARY);
	assert_false(c.ordered);
	assert_int_equal(c.concurrency, 7);
	assert_int_equal(c.max_attempts, 3);
	assert_int_equal(c.nschedule, 2);
	assert_int_equal(c.schedule[1], 2);
	assert_int_equal(c.pause_after, 0);
	assert_string_equal(c.filter.type, "a.b");
	assert_string_equal(c.filter.subject_prefix, "p/");
	assert_int_equal(st.kind, HD_SUB_START_OFFSET);
	assert_int_equal(st.offset, 9);
	assert_string_equal(secret, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");

	assert_int_equal(parse("{\"topic\":\"t\",\"url\":\"http://a/\",\"start\":{\"time\":"
			       "\"2026-01-02T03:04:05Z\"}}",
			       false, &c, &st, secret, &err),
			 0);
	assert_int_equal(st.kind, HD_SUB_START_TIME);
	assert_int_equal(st.time_ms, 1767323045000LL);
	assert_int_equal(parse("{\"topic\":\"t\",\"url\":\"http://a/\",\"start\":\"oldest\"}", false,
			       &c, &st, secret, &err),
			 0);
	assert_int_equal(st.kind, HD_SUB_START_OLDEST);
	/* A topic pattern is a topic. */
	assert_int_equal(parse("{\"topic\":\"orders.*\",\"url\":\"http://a/\"}", false, &c, &st,
			       secret, &err),
			 0);
	assert_string_equal(c.topic, "orders.*");
}

static void refused(const char *body, const char *msg)
{
	struct hd_sub_config c;
	struct hd_sub_start st;
	struct hd_error err;
	char secret[HD_WHSEC_TEXT_MAX + 1];
	assert_int_equal(parse(body, false, &c, &st, secret, &err), HD_EINVAL);
	if (!strstr(err.msg, msg))
		fail_msg("%s: message '%s' lacks '%s'", body, err.msg, msg);
}

static void test_refusals(void **state)
{
	(void)state;
	refused("[]", "JSON object");
	refused("{\"topic\":\"t\",\"url\":\"http://a/\",\"topic\":\"u\"}", "JSON object");
	refused("{\"url\":\"http://a/\"}", "'topic' is required");
	refused("{\"topic\":\"*\",\"url\":\"http://a/\"}", "alone is refused");
	refused("{\"topic\":\"or*ders*\",\"url\":\"http://a/\"}", "only one trailing '*'");
	refused("{\"topic\":\"or ders*\",\"url\":\"http://a/\"}", "prefix");
	refused("{\"topic\":\"a b\",\"url\":\"http://a/\"}", "'topic'");
	refused("{\"topic\":\"t\"}", "'url' is required");
	refused("{\"topic\":\"t\",\"url\":\"ftp://a/\"}", "http:// or https://");
	refused("{\"topic\":\"t\",\"url\":\"http:///x\"}", "no host");
	refused("{\"topic\":\"t\",\"url\":\"http://a b/\"}", "spaces");
	refused("{\"topic\":\"t\",\"url\":\"http://a/\",\"mode\":\"x\"}", "'mode'");
	refused("{\"topic\":\"t\",\"url\":\"http://a/\",\"ordered\":1}", "'ordered'");
	refused("{\"topic\":\"t\",\"url\":\"http://a/\",\"concurrency\":2}", "unordered");
	refused("{\"topic\":\"t\",\"url\":\"http://a/\",\"ordered\":false,\"concurrency\":0}",
		"'concurrency'");
	refused("{\"topic\":\"t\",\"url\":\"http://a/\",\"max_attempts\":51}", "'max_attempts'");
	refused("{\"topic\":\"t\",\"url\":\"http://a/\",\"retry_schedule\":[]}", "'retry_schedule'");
	refused("{\"topic\":\"t\",\"url\":\"http://a/\",\"retry_schedule\":[1.5]}", "'retry_schedule'");
	refused("{\"topic\":\"t\",\"url\":\"http://a/\",\"retry_schedule\":"
		"[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]}",
		"'retry_schedule'");
	refused("{\"topic\":\"t\",\"url\":\"http://a/\",\"secret\":\"abc\"}", "'secret'");
	refused("{\"topic\":\"t\",\"url\":\"http://a/\",\"start\":{\"offset\":0}}", "'start'");
	refused("{\"topic\":\"t\",\"url\":\"http://a/\",\"filter\":[]}", "'filter'");
	refused("{\"topic\":\"t\",\"url\":\"http://a/\",\"filter\":{\"type\":\"\"}}", "filter.type");
	refused("{\"topic\":\"t\",\"url\":\"http://a/\",\"pause_after\":-1}", "'pause_after'");
	refused("{\"topic\":\"t\",\"url\":\"http://a/\",\"x\":1}", "unknown member 'x'");
}

static void test_private_hosts(void **state)
{
	struct hd_sub_config c;
	struct hd_sub_start st;
	struct hd_error err;
	char secret[HD_WHSEC_TEXT_MAX + 1];
	(void)state;
	assert_true(hd_sub_config_url_private("http://127.0.0.1:8080/x"));
	assert_true(hd_sub_config_url_private("http://user:pw@10.0.0.1/x"));
	assert_true(hd_sub_config_url_private("http://[::1]/"));
	assert_true(hd_sub_config_url_private("http://localhost/"));
	assert_true(hd_sub_config_url_private("http://api.localhost./"));
	assert_true(hd_sub_config_url_private("https://192.168.1.1"));
	assert_false(hd_sub_config_url_private("https://example.com/"));
	assert_false(hd_sub_config_url_private("https://8.8.8.8/"));
	assert_false(hd_sub_config_url_private("https://[2606:4700::1111]:443/"));
	assert_true(hd_sub_config_url_private("https://[2001:db8::1]:443/")); /* documentation */
	refused("{\"topic\":\"t\",\"url\":\"http://127.0.0.1/\"}", "private");
	assert_int_equal(parse("{\"topic\":\"t\",\"url\":\"http://127.0.0.1/\"}", true, &c, &st,
			       secret, &err),
			 0);
}

static void test_json_round_trip(void **state)
{
	struct hd_sub_config c, d;
	struct hd_sub_start st;
	struct hd_error err;
	struct hd_buf b;
	char secret[HD_WHSEC_TEXT_MAX + 1];
	(void)state;
	assert_int_equal(parse("{\"topic\":\"t\",\"url\":\"http://x/\\\"q\",\"filter\":{\"source\":"
			       "\"/s\"},\"ordered\":false,\"concurrency\":3,\"retry_schedule\":[7]}",
			       false, &c, &st, secret, &err),
			 0);
	hd_buf_init(&b, 1 << 16);
	hd_buf_putc(&b, '{');
	assert_int_equal(hd_sub_config_json(&b, &c), 0);
	hd_buf_putc(&b, '}');
	json_t *o = json_loads(b.data, 0, NULL);
	assert_non_null(o);
	assert_int_equal(hd_sub_config_load(o, &d, &err), 0);
	assert_memory_equal(&c, &d, sizeof(c));
	json_decref(o);
	hd_buf_fini(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),     cmocka_unit_test(test_every_member),
		cmocka_unit_test(test_refusals),     cmocka_unit_test(test_private_hosts),
		cmocka_unit_test(test_json_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
