/*
 * Unit tests for consume/filter.c: the "topic" member (name, pattern,
 * refusals, room for its dead-letter topic), parsing the "filter" member (every
 * member, null, the refusals naming the member, the length bound at its
 * edge), the JSON form read back, and matching on type, type prefix,
 * source and subject prefix, from attributes and from stored event JSON.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <string.h>

#include "consume/filter.h"
#include "core/buf.h"
#include "engine/engine_types.h"

static int parse(const char *text, struct hd_filter *f, struct hd_error *err)
{
	json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	memset(f, 0, sizeof(*f));
	memset(err, 0, sizeof(*err));
	int rc = hd_filter_parse(j, f, err);
	json_decref(j);
	return rc;
}

static void test_parse(void **state)
{
	struct hd_filter f;
	struct hd_error err;
	(void)state;
	assert_int_equal(parse("{\"type\":\"a.b\",\"type_prefix\":\"a.\",\"source\":\"/s\","
			       "\"subject_prefix\":\"p/\"}",
			       &f, &err),
			 0);
	assert_string_equal(f.type, "a.b");
	assert_string_equal(f.type_prefix, "a.");
	assert_string_equal(f.source, "/s");
	assert_string_equal(f.subject_prefix, "p/");
	assert_false(hd_filter_empty(&f));
	assert_int_equal(parse("{\"type\":null}", &f, &err), 0);
	assert_true(hd_filter_empty(&f));
	assert_int_equal(parse("null", &f, &err), 0);
	assert_true(hd_filter_empty(&f));
	assert_int_equal(hd_filter_parse(NULL, &f, &err), 0);
	assert_true(hd_filter_empty(&f));
}

static void test_refusals(void **state)
{
	struct hd_filter f;
	struct hd_error err;
	char big[HD_FILTER_VALUE_MAX + 40];
	(void)state;
	assert_int_equal(parse("[]", &f, &err), HD_EINVAL);
	assert_non_null(strstr(err.msg, "'filter' must be an object"));
	assert_int_equal(parse("{\"tpye\":\"x\"}", &f, &err), HD_EINVAL);
	assert_non_null(strstr(err.msg, "unknown member 'tpye'"));
	assert_int_equal(parse("{\"type\":1}", &f, &err), HD_EINVAL);
	assert_non_null(strstr(err.msg, "'filter.type' must be a string of 1 to 256 bytes"));
	assert_int_equal(parse("{\"source\":\"\"}", &f, &err), HD_EINVAL);
	assert_non_null(strstr(err.msg, "'filter.source'"));
	assert_int_equal(parse("{\"subject_prefix\":\"a\\u0000b\"}", &f, &err), HD_EINVAL);
	assert_non_null(strstr(err.msg, "'filter.subject_prefix'"));
	/* The bound at its edge: 256 bytes pass, 257 do not. */
	strcpy(big, "{\"type_prefix\":\"");
	size_t n = strlen(big);
	memset(big + n, 'x', HD_FILTER_VALUE_MAX);
	strcpy(big + n + HD_FILTER_VALUE_MAX, "\"}");
	assert_int_equal(parse(big, &f, &err), 0);
	assert_int_equal(strlen(f.type_prefix), HD_FILTER_VALUE_MAX);
	memmove(big + n + 1, big + n, strlen(big + n) + 1);
	big[n] = 'x';
	assert_int_equal(parse(big, &f, &err), HD_EINVAL);
	assert_non_null(strstr(err.msg, "'filter.type_prefix'"));
}

static int topic(const char *text, char *out, struct hd_error *err)
{
	json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	memset(err, 0, sizeof(*err));
	int rc = hd_filter_topic(j, out, err);
	json_decref(j);
	return rc;
}

static void test_topic(void **state)
{
	char out[HD_TOPIC_NAME_MAX + 1], text[HD_TOPIC_NAME_MAX + 16];
	struct hd_error err;
	(void)state;
	assert_int_equal(topic("\"orders\"", out, &err), 0);
	assert_string_equal(out, "orders");
	assert_int_equal(topic("\"user:*\"", out, &err), 0);
	assert_string_equal(out, "user:*");
	assert_int_equal(topic("7", out, &err), HD_EINVAL);
	assert_non_null(strstr(err.msg, "'topic' is required"));
	assert_int_equal(hd_filter_topic(NULL, out, &err), HD_EINVAL);
	assert_int_equal(topic("\"a\\u0000b\"", out, &err), HD_EINVAL);
	assert_non_null(strstr(err.msg, "'topic' must not contain NUL"));
	assert_int_equal(topic("\"a b\"", out, &err), HD_EINVAL);
	assert_non_null(strstr(err.msg, "'topic': "));
	assert_int_equal(topic("\"*\"", out, &err), HD_EINVAL);
	assert_int_equal(topic("\"a*b*\"", out, &err), HD_EINVAL);
	/* Room for ".dlq": 251 bytes pass, 252 do not. */
	memset(text, 'a', sizeof(text));
	text[0] = '"';
	strcpy(text + 1 + HD_TOPIC_NAME_MAX - 4, "\"");
	assert_int_equal(topic(text, out, &err), 0);
	assert_int_equal(strlen(out), HD_TOPIC_NAME_MAX - 4);
	memset(text, 'a', sizeof(text));
	text[0] = '"';
	strcpy(text + 1 + HD_TOPIC_NAME_MAX - 3, "\"");
	assert_int_equal(topic(text, out, &err), HD_EINVAL);
	assert_non_null(strstr(err.msg, "dead-letter"));
}

static void test_json_round_trip(void **state)
{
	struct hd_filter f, g;
	struct hd_error err;
	struct hd_buf b;
	(void)state;
	hd_buf_init(&b, 4096);
	memset(&f, 0, sizeof(f));
	assert_int_equal(hd_filter_json(&b, &f), 0);
	assert_memory_equal(b.data, "{}", 2);
	assert_int_equal(b.len, 2);
	hd_buf_reset(&b);
	strcpy(f.type_prefix, "a.\"q\"");
	strcpy(f.subject_prefix, "p/");
	assert_int_equal(hd_filter_json(&b, &f), 0);
	hd_buf_putc(&b, '\0');
	assert_string_equal(b.data, "{\"type_prefix\":\"a.\\\"q\\\"\",\"subject_prefix\":\"p/\"}");
	assert_int_equal(parse(b.data, &g, &err), 0);
	assert_memory_equal(&f, &g, sizeof(f));
	hd_buf_fini(&b);
}

static void test_match(void **state)
{
	struct hd_filter f;
	(void)state;
	memset(&f, 0, sizeof(f));
	assert_true(hd_filter_match(&f, "a", "b", NULL));
	assert_true(hd_filter_match(&f, NULL, NULL, NULL));
	strcpy(f.type_prefix, "order.");
	assert_true(hd_filter_match(&f, "order.created", "/s", NULL));
	assert_false(hd_filter_match(&f, "orders", "/s", NULL));
	assert_false(hd_filter_match(&f, NULL, "/s", NULL));
	strcpy(f.source, "/s");
	assert_false(hd_filter_match(&f, "order.created", "/t", NULL));
	assert_false(hd_filter_match(&f, "order.created", "/s/x", NULL));
	strcpy(f.subject_prefix, "eu/");
	assert_false(hd_filter_match(&f, "order.created", "/s", NULL));
	assert_false(hd_filter_match(&f, "order.created", "/s", "us/1"));
	assert_true(hd_filter_match(&f, "order.created", "/s", "eu/1"));
	strcpy(f.type, "order.paid");
	assert_false(hd_filter_match(&f, "order.created", "/s", "eu/1"));
	assert_true(hd_filter_match(&f, "order.paid", "/s", "eu/"));
}

static void test_match_json(void **state)
{
	struct hd_filter f;
	(void)state;
	memset(&f, 0, sizeof(f));
	strcpy(f.type, "order.paid");
	strcpy(f.subject_prefix, "eu/");
	const char *ev = "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":"
			 "\"order.paid\",\"subject\":\"eu/2\",\"topic\":\"t\",\"offset\":3}";
	assert_true(hd_filter_match_json(&f, ev, strlen(ev)));
	const char *nosubj = "{\"id\":\"1\",\"source\":\"/s\",\"type\":\"order.paid\"}";
	assert_false(hd_filter_match_json(&f, nosubj, strlen(nosubj)));
	const char *numsubj = "{\"type\":\"order.paid\",\"subject\":7}";
	assert_false(hd_filter_match_json(&f, numsubj, strlen(numsubj)));
	assert_false(hd_filter_match_json(&f, "{bad", 4));
	assert_false(hd_filter_match_json(&f, "[]", 2));
	memset(&f, 0, sizeof(f));
	assert_true(hd_filter_match_json(&f, "{bad", 4));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_json_round_trip), cmocka_unit_test(test_match),
		cmocka_unit_test(test_match_json),	cmocka_unit_test(test_topic),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
