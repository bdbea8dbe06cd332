/*
 * Unit tests for push/push_sub_config.c: defaults, every member parsed,
 * each refusal with the member it names (unknown members at every level,
 * "to": "user" on a topic that is not a user's, the ttl and wait bounds at
 * their edges), durations both ways, and the JSON form read back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <string.h>

#include "core/buf.h"
#include "push/push_sub_config.h"

static int parse(const char *body, struct hd_push_sub_config *c, struct hd_start *st,
		 struct hd_error *err)
{
	memset(err, 0, sizeof(*err));
	return hd_push_sub_config_parse(body, strlen(body), c, st, err);
}

/* Parses body expecting a refusal whose message contains want. */
static void refused(const char *body, const char *want)
{
	struct hd_push_sub_config c;
	struct hd_start st;
	struct hd_error err;
	int rc = parse(body, &c, &st, &err);
	if (rc != HD_EINVAL || !strstr(err.msg, want))
		fail_msg("body %s: rc %d, message \"%s\", wanted \"%s\"", body, rc, err.msg, want);
}

static void test_defaults(void **state)
{
	struct hd_push_sub_config c;
	struct hd_start st;
	struct hd_error err;
	(void)state;
	assert_int_equal(parse("{\"topic\":\"user:*\",\"to\":\"user\"}", &c, &st, &err), 0);
	assert_string_equal(c.topic, "user:*");
	assert_int_equal(c.to, HD_PUSH_SUB_TO_USER);
	assert_true(hd_filter_empty(&c.filter));
	assert_int_equal(c.mode, HD_PUSH_SUB_ALERT);
	assert_int_equal(c.ttl_ms, 0);
	assert_false(c.skip_if_seen);
	assert_false(c.skip_if_online);
	assert_int_equal(c.max_attempts, HD_PUSH_SUB_ATTEMPTS_DEFAULT);
	assert_int_equal(st.kind, HD_START_LATEST);
}

static void test_every_member(void **state)
{
	struct hd_push_sub_config c;
	struct hd_start st;
	struct hd_error err;
	(void)state;
	/* The example. */
	const char *body = "{\"topic\":\"user:*\", \"to\":\"user\", \"filter\":{\"type_prefix\":"
			   "\"com.example.ride.\"}, \"mode\":\"alert\", \"ttl\":\"24h\", "
			   "\"skip_if_seen\":{\"cursor\":\"inbox\",\"wait\":\"3s\"}, "
			   "\"max_attempts\":5, \"start\":\"latest\"}";
	assert_int_equal(parse(body, &c, &st, &err), 0);
	assert_string_equal(c.filter.type_prefix, "com.example.ride.");
	assert_int_equal(c.ttl_ms, 24LL * 3600 * 1000);
	assert_true(c.skip_if_seen);
	assert_string_equal(c.seen_cursor, "inbox");
	assert_int_equal(c.seen_wait_ms, 3000);
	assert_int_equal(c.max_attempts, 5);

	body = "{\"topic\":\"rides:981\",\"to\":\"followers\",\"mode\":\"doorbell\",\"ttl\":90,"
	       "\"skip_if_seen\":{\"cursor\":\"a.B_c-9\"},\"skip_if_online\":true,"
	       "\"max_attempts\":50,\"start\":{\"offset\":7},\"filter\":null}";
	assert_int_equal(parse(body, &c, &st, &err), 0);
	assert_int_equal(c.to, HD_PUSH_SUB_TO_FOLLOWERS);
	assert_int_equal(c.mode, HD_PUSH_SUB_DOORBELL);
	assert_int_equal(c.ttl_ms, 90000);
	assert_int_equal(c.seen_wait_ms, HD_PUSH_SUB_WAIT_DEFAULT_MS);
	assert_true(c.skip_if_online);
	assert_int_equal(c.max_attempts, 50);
	assert_int_equal(st.kind, HD_START_OFFSET);
	assert_int_equal(st.offset, 7);

	assert_int_equal(parse("{\"topic\":\"user:42\",\"to\":\"user\",\"mode\":\"silent\","
			       "\"start\":{\"time\":\"2026-01-02T03:04:05Z\"},\"ttl\":null,"
			       "\"skip_if_seen\":null}",
			       &c, &st, &err),
			 0);
	assert_int_equal(c.mode, HD_PUSH_SUB_SILENT);
	assert_int_equal(st.kind, HD_START_TIME);
	assert_false(c.skip_if_seen);
	/* "followers" takes any topic, a user's too. */
	assert_int_equal(parse("{\"topic\":\"user:42\",\"to\":\"followers\"}", &c, &st, &err), 0);
	assert_int_equal(parse("{\"topic\":\"rides.*\",\"to\":\"followers\"}", &c, &st, &err), 0);
	assert_int_equal(parse("{\"topic\":\"user:4*\",\"to\":\"user\"}", &c, &st, &err), 0);
}

static void test_refusals(void **state)
{
	(void)state;
	refused("[]", "the body must be a JSON object");
	refused("{bad", "the body must be a JSON object");
	refused("{\"topic\":\"user:*\",\"to\":\"user\",\"topic\":\"x\"}",
		"the body must be a JSON object");
	refused("{\"topic\":\"user:*\",\"to\":\"user\",\"url\":\"x\"}", "unknown member 'url'");
	refused("{\"to\":\"user\"}", "'topic' is required");
	refused("{\"topic\":\"\",\"to\":\"user\"}", "'topic'");
	refused("{\"topic\":\"bad topic\",\"to\":\"followers\"}", "'topic'");
	refused("{\"topic\":\"*\",\"to\":\"followers\"}", "'topic'");
	refused("{\"topic\":\"user:*\"}", "'to' is required");
	refused("{\"topic\":\"user:*\",\"to\":\"everyone\"}", "'to' is required");
	refused("{\"topic\":\"rides:1\",\"to\":\"user\"}", "'to': \"user\" needs 'topic'");
	refused("{\"topic\":\"user:\",\"to\":\"user\"}", "'to': \"user\" needs 'topic'");
	refused("{\"topic\":\"user:1:2\",\"to\":\"user\"}", "'to': \"user\" needs 'topic'");
	refused("{\"topic\":\"user*\",\"to\":\"user\"}", "'to': \"user\" needs 'topic'");
	refused("{\"topic\":\"users:1\",\"to\":\"user\"}", "'to': \"user\" needs 'topic'");
	refused("{\"topic\":\"user:*\",\"to\":\"user\",\"filter\":{\"kind\":\"x\"}}",
		"'filter' has an unknown member 'kind'");
	refused("{\"topic\":\"user:*\",\"to\":\"user\",\"filter\":{\"type\":3}}", "'filter.type'");
	refused("{\"topic\":\"user:*\",\"to\":\"user\",\"mode\":\"loud\"}",
		"'mode' must be \"alert\", \"silent\" or \"doorbell\"");
	refused("{\"topic\":\"user:*\",\"to\":\"user\",\"mode\":1}", "'mode'");
	refused("{\"topic\":\"user:*\",\"to\":\"user\",\"ttl\":\"1 day\"}", "'ttl' must be");
	refused("{\"topic\":\"user:*\",\"to\":\"user\",\"ttl\":\"24\"}", "'ttl' must be");
	refused("{\"topic\":\"user:*\",\"to\":\"user\",\"ttl\":\"-5s\"}", "'ttl' must be");
	refused("{\"topic\":\"user:*\",\"to\":\"user\",\"ttl\":-5}", "'ttl' must be");
	refused("{\"topic\":\"user:*\",\"to\":\"user\",\"ttl\":1.5}", "'ttl' must be");
	refused("{\"topic\":\"user:*\",\"to\":\"user\",\"ttl\":\"999999999999999d\"}",
		"'ttl' must be");
	refused("{\"topic\":\"user:*\",\"to\":\"user\",\"skip_if_seen\":true}",
		"'skip_if_seen' must be an object");
	refused("{\"topic\":\"user:*\",\"to\":\"user\",\"skip_if_seen\":{\"wait\":\"1s\"}}",
		"'skip_if_seen.cursor' is required");
	refused("{\"topic\":\"user:*\",\"to\":\"user\",\"skip_if_seen\":{\"cursor\":\"a b\"}}",
		"'skip_if_seen.cursor'");
	refused("{\"topic\":\"user:*\",\"to\":\"user\",\"skip_if_seen\":{\"cursor\":\"a\","
		"\"delay\":\"1s\"}}",
		"'skip_if_seen' has an unknown member 'delay'");
	refused("{\"topic\":\"user:*\",\"to\":\"user\",\"skip_if_seen\":{\"cursor\":\"a\","
		"\"wait\":\"soon\"}}",
		"'skip_if_seen.wait' must be");
	refused("{\"topic\":\"user:*\",\"to\":\"user\",\"skip_if_online\":1}",
		"'skip_if_online' must be true or false");
	refused("{\"topic\":\"user:*\",\"to\":\"user\",\"max_attempts\":0}",
		"'max_attempts' must be a whole number from 1 to 50");
	refused("{\"topic\":\"user:*\",\"to\":\"user\",\"max_attempts\":51}", "'max_attempts'");
	refused("{\"topic\":\"user:*\",\"to\":\"user\",\"start\":\"now\"}", "'start' must be");
}

static void test_bounds(void **state)
{
	struct hd_push_sub_config c;
	struct hd_start st;
	struct hd_error err;
	char body[512], cursor[HD_PUSH_SUB_CURSOR_MAX + 2];
	(void)state;
	/* ttl: 1 s to 28 days, at both edges. */
	assert_int_equal(parse("{\"topic\":\"user:*\",\"to\":\"user\",\"ttl\":\"1s\"}", &c, &st,
			       &err),
			 0);
	assert_int_equal(c.ttl_ms, 1000);
	refused("{\"topic\":\"user:*\",\"to\":\"user\",\"ttl\":\"999ms\"}", "'ttl' must be");
	refused("{\"topic\":\"user:*\",\"to\":\"user\",\"ttl\":0}", "'ttl' must be");
	assert_int_equal(parse("{\"topic\":\"user:*\",\"to\":\"user\",\"ttl\":\"28d\"}", &c, &st,
			       &err),
			 0);
	assert_int_equal(c.ttl_ms, HD_PUSH_SUB_TTL_MAX_MS);
	assert_int_equal(parse("{\"topic\":\"user:*\",\"to\":\"user\",\"ttl\":2419200}", &c, &st,
			       &err),
			 0);
	refused("{\"topic\":\"user:*\",\"to\":\"user\",\"ttl\":2419201}", "'ttl' must be");
	refused("{\"topic\":\"user:*\",\"to\":\"user\",\"ttl\":\"2419200001ms\"}", "'ttl' must be");
	/* wait: 0 to 1 h. */
	assert_int_equal(parse("{\"topic\":\"user:*\",\"to\":\"user\",\"skip_if_seen\":{\"cursor\":"
			       "\"c\",\"wait\":\"0ms\"}}",
			       &c, &st, &err),
			 0);
	assert_int_equal(c.seen_wait_ms, 0);
	assert_int_equal(parse("{\"topic\":\"user:*\",\"to\":\"user\",\"skip_if_seen\":{\"cursor\":"
			       "\"c\",\"wait\":\"1h\"}}",
			       &c, &st, &err),
			 0);
	assert_int_equal(c.seen_wait_ms, HD_PUSH_SUB_WAIT_MAX_MS);
	refused("{\"topic\":\"user:*\",\"to\":\"user\",\"skip_if_seen\":{\"cursor\":\"c\",\"wait\":"
		"\"3600001ms\"}}",
		"'skip_if_seen.wait' must be");
	/* The cursor name: 64 bytes pass, 65 do not. */
	memset(cursor, 'c', HD_PUSH_SUB_CURSOR_MAX);
	cursor[HD_PUSH_SUB_CURSOR_MAX] = '\0';
	snprintf(body, sizeof(body),
		 "{\"topic\":\"user:*\",\"to\":\"user\",\"skip_if_seen\":{\"cursor\":\"%s\"}}", cursor);
	assert_int_equal(parse(body, &c, &st, &err), 0);
	assert_string_equal(c.seen_cursor, cursor);
	strcat(cursor, "c");
	snprintf(body, sizeof(body),
		 "{\"topic\":\"user:*\",\"to\":\"user\",\"skip_if_seen\":{\"cursor\":\"%s\"}}", cursor);
	refused(body, "'skip_if_seen.cursor'");
}

static void test_durations(void **state)
{
	static const struct {
		const char *json;
		int64_t ms;
		const char *text;
	} cases[] = {{"\"500ms\"", 500, "500ms"}, {"\"90s\"", 90000, "90s"},
		     {"\"120s\"", 120000, "2m"},   {"\"24h\"", 86400000, "1d"},
		     {"\"36h\"", 129600000, "36h"}, {"\"1500ms\"", 1500, "1500ms"},
		     {"0", 0, "0s"},                {"\"0d\"", 0, "0s"},
		     {"7", 7000, "7s"},             {"\"7d\"", 604800000, "7d"}};
	static const char *const bad[] = {"\"\"", "\"s\"", "\"5 s\"", "\"5S\"", "\"5w\"",
					  "\"+5s\"", "\"5s \"", "-1", "true", "\"1234567890123s\""};
	char text[HD_PUSH_SUB_DURATION_TEXT_MAX];
	int64_t ms;
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *j = json_loads(cases[i].json, JSON_DECODE_ANY, NULL);
		assert_int_equal(hd_push_sub_config_duration(j, &ms), 0);
		assert_int_equal(ms, cases[i].ms);
		assert_string_equal(hd_push_sub_config_duration_text(ms, text), cases[i].text);
		json_decref(j);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *j = json_loads(bad[i], JSON_DECODE_ANY, NULL);
		assert_int_equal(hd_push_sub_config_duration(j, &ms), HD_EINVAL);
		json_decref(j);
	}
	assert_int_equal(hd_push_sub_config_duration(NULL, &ms), HD_EINVAL);
}

static void test_modes(void **state)
{
	enum hd_push_sub_mode m;
	(void)state;
	assert_int_equal(hd_push_sub_config_mode_parse("doorbell", &m), 0);
	assert_int_equal(m, HD_PUSH_SUB_DOORBELL);
	assert_string_equal(hd_push_sub_config_mode_name(m), "doorbell");
	assert_string_equal(hd_push_sub_config_mode_name(HD_PUSH_SUB_ALERT), "alert");
	assert_string_equal(hd_push_sub_config_mode_name(HD_PUSH_SUB_SILENT), "silent");
	assert_int_equal(hd_push_sub_config_mode_parse("Alert", &m), HD_EINVAL);
	assert_int_equal(hd_push_sub_config_mode_parse(NULL, &m), HD_EINVAL);
}

/* Parses body, writes its JSON, loads that back and compares. */
static void round_trip(const char *body, const char *want_json)
{
	struct hd_push_sub_config c, d;
	struct hd_start st;
	struct hd_error err;
	struct hd_buf b;
	hd_buf_init(&b, 8192);
	assert_int_equal(parse(body, &c, &st, &err), 0);
	hd_buf_putc(&b, '{');
	assert_int_equal(hd_push_sub_config_json(&b, &c), 0);
	hd_buf_puts(&b, "}");
	hd_buf_putc(&b, '\0');
	if (want_json)
		assert_string_equal(b.data, want_json);
	json_t *o = json_loads(b.data, 0, NULL);
	assert_non_null(o);
	assert_int_equal(hd_push_sub_config_load(o, &d, &err), 0);
	assert_memory_equal(&c, &d, sizeof(c));
	json_decref(o);
	hd_buf_fini(&b);
}

static void test_json_round_trip(void **state)
{
	struct hd_push_sub_config d;
	struct hd_error err;
	(void)state;
	round_trip("{\"topic\":\"user:*\",\"to\":\"user\"}",
		   "{\"topic\":\"user:*\",\"to\":\"user\",\"filter\":{},\"mode\":\"alert\","
		   "\"ttl\":null,\"skip_if_seen\":null,\"skip_if_online\":false,\"max_attempts\":5}");
	round_trip("{\"topic\":\"rides:9\",\"to\":\"followers\",\"filter\":{\"type\":\"a\","
		   "\"subject_prefix\":\"s/\"},\"mode\":\"silent\",\"ttl\":\"36h\","
		   "\"skip_if_seen\":{\"cursor\":\"inbox\",\"wait\":\"1500ms\"},"
		   "\"skip_if_online\":true,\"max_attempts\":9,\"start\":\"oldest\"}",
		   "{\"topic\":\"rides:9\",\"to\":\"followers\",\"filter\":{\"type\":\"a\","
		   "\"subject_prefix\":\"s/\"},\"mode\":\"silent\",\"ttl\":\"36h\","
		   "\"skip_if_seen\":{\"cursor\":\"inbox\",\"wait\":\"1500ms\"},"
		   "\"skip_if_online\":true,\"max_attempts\":9}");
	round_trip("{\"topic\":\"user:7\",\"to\":\"user\",\"mode\":\"doorbell\",\"ttl\":3600,"
		   "\"skip_if_seen\":{\"cursor\":\"c\",\"wait\":0}}",
		   NULL);
	/* A record keeps members the config does not know (ids, state). */
	json_t *o = json_loads("{\"id\":\"psub_1\",\"topic\":\"user:*\",\"to\":\"user\"}", 0, NULL);
	assert_int_equal(hd_push_sub_config_load(o, &d, &err), 0);
	json_decref(o);
	assert_int_equal(hd_push_sub_config_load(NULL, &d, &err), HD_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),  cmocka_unit_test(test_every_member),
		cmocka_unit_test(test_refusals),  cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_durations), cmocka_unit_test(test_modes),
		cmocka_unit_test(test_json_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
