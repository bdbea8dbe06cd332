/*
 * test_cloudevent — unit tests of src/proto/cloudevent.c: every mode
 * (structured, batch, binary, raw), every validation rule with the exact
 * message the user sees, the canonical JSON byte for byte, the HTTP
 * binding's header decoding, expiry sources and their precedence, and the
 * UUIDs of raw publishes. Every event produced is also read back with
 * jansson to prove it is well-formed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "../uuid_check.h"
#include "proto/cloudevent.h"

#define NOW 1700000000123LL
#define NOW_TS "2023-11-14T22:13:20.123Z"
#define TIME_MEMBER "\"time\":\"" NOW_TS "\""
#define HEAD "\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\""
#define CE_JSON "application/cloudevents+json"
#define CE_BATCH "application/cloudevents-batch+json"

/* One request under test and its outcome. */
struct req {
	struct hd_header h[160];
	size_t n;
	struct hd_cloudevent_batch out;
	struct hd_error err;
	int rc;
};

static void hdr(struct req *q, const char *name, const char *value)
{
	assert_true(q->n < sizeof(q->h) / sizeof(q->h[0]));
	q->h[q->n++] = (struct hd_header){name, strlen(name), value, strlen(value)};
}

/* The four headers that make a request binary mode. */
static void binary_headers(struct req *q)
{
	hdr(q, "ce-specversion", "1.0");
	hdr(q, "ce-id", "1");
	hdr(q, "ce-source", "/s");
	hdr(q, "ce-type", "t");
}

/* Every event produced must be JSON jansson reads, with no raw newline. */
static void check_events(const struct hd_cloudevent_batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		const struct hd_event *ev = &b->events[i];
		json_error_t jerr;
		if (b->errors[i].code) {
			assert_null(ev->json);
			continue;
		}
		assert_non_null(ev->json);
		assert_int_equal(strlen(ev->json), ev->json_len);
		assert_null(strchr(ev->json, '\n'));
		/* data may hold big integers, \u0000 and repeated keys (all valid
		 * JSON), hence the flags; jansson alone refuses numbers beyond a
		 * double's range, which RFC 8259 allows. */
		json_t *root = json_loads(ev->json, JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, &jerr);
		if (!root && json_error_code(&jerr) == json_error_numeric_overflow)
			continue;
		if (!root)
			fail_msg("event json '%s' unreadable: %s", ev->json, jerr.text);
		assert_true(json_is_object(root));
		assert_null(json_object_get(root, "topic"));
		assert_null(json_object_get(root, "offset"));
		assert_string_equal(json_string_value(json_object_get(root, "id")), ev->id);
		assert_string_equal(json_string_value(json_object_get(root, "source")), ev->source);
		assert_string_equal(json_string_value(json_object_get(root, "type")), ev->type);
		assert_non_null(json_object_get(root, "time"));
		json_decref(root);
	}
}

/* Decodes body (n bytes) with content type ct (NULL for none) and q's headers. */
static int decode_n(struct req *q, const char *ct, const char *body, size_t n)
{
	struct hd_cloudevent_request r;

	if (ct)
		hdr(q, "content-type", ct);
	r = (struct hd_cloudevent_request){
		.topic = "orders",
		.now_ms = NOW,
		.headers = q->h,
		.nheaders = q->n,
		.body = body,
		.body_len = n,
	};
	memset(&q->err, 0x55, sizeof(q->err)); /* prove the decoder sets it */
	q->rc = hd_cloudevent_decode(&r, &q->out, &q->err);
	if (q->rc == 0) {
		assert_int_equal(q->err.code, 0);
		assert_string_equal(q->err.msg, "");
		check_events(&q->out);
	} else {
		assert_int_equal(q->err.code, q->rc);
		assert_int_equal(q->out.n, 0);
		assert_null(q->out.events);
		assert_null(q->out.errors);
	}
	return q->rc;
}

static int decode(struct req *q, const char *ct, const char *body)
{
	return decode_n(q, ct, body, strlen(body));
}

static void done(struct req *q)
{
	hd_cloudevent_batch_fini(&q->out);
	assert_int_equal(q->out.n, 0);
	assert_null(q->out.events);
	memset(q, 0, sizeof(*q));
}

/* Decodes one event and checks its canonical JSON byte for byte. */
static void expect_event(struct req *q, const char *ct, const char *body, const char *json)
{
	if (decode(q, ct, body) != 0)
		fail_msg("refused (%d): %s\nbody: %s", q->rc, q->err.msg, body);
	assert_false(q->out.is_batch);
	assert_int_equal(q->out.n, 1);
	assert_int_equal(q->out.errors[0].code, 0);
	assert_string_equal(q->out.events[0].json, json);
}

/* Decodes and expects the request refused with exactly code and msg. */
static void expect_error(struct req *q, const char *ct, const char *body, int code, const char *msg)
{
	if (decode(q, ct, body) == 0)
		fail_msg("accepted: %s\nexpected: %s", body, msg);
	assert_int_equal(q->rc, code);
	assert_string_equal(q->err.msg, msg);
}

static void structured_ok(const char *body, const char *json)
{
	struct req q = {0};
	expect_event(&q, CE_JSON, body, json);
	done(&q);
}

static void structured_bad(const char *body, const char *msg)
{
	struct req q = {0};
	expect_error(&q, CE_JSON, body, HD_EBADEVENT, msg);
	done(&q);
}

/* ---- structured mode: the canonical form ---- */

static void test_structured_pretty_event_comes_out_compact(void **state)
{
	struct req q = {0};

	expect_event(&q, "application/cloudevents+json; charset=UTF-8",
		     "{\n"
		     "  \"specversion\" : \"1.0\",\n"
		     "  \"id\": \"A234-1234-1234\",\n"
		     "  \"source\": \"https://example.com/orders\",\n"
		     "  \"type\": \"com.example.order.created\",\n"
		     "  \"data\": { \"price\" : 0.1, \"big\": 12345678901234567890,\n"
		     "            \"text\": \"two  spaces\\n\", \"list\": [ 1 , 2 ] }\n"
		     "}\n",
		     "{\"specversion\":\"1.0\",\"id\":\"A234-1234-1234\","
		     "\"source\":\"https://example.com/orders\",\"type\":\"com.example.order.created\","
		     "\"data\":{\"price\":0.1,\"big\":12345678901234567890,"
		     "\"text\":\"two  spaces\\n\",\"list\":[1,2]},"
		     TIME_MEMBER "}");
	const struct hd_event *ev = &q.out.events[0];
	assert_string_equal(ev->id, "A234-1234-1234");
	assert_string_equal(ev->source, "https://example.com/orders");
	assert_string_equal(ev->type, "com.example.order.created");
	assert_int_equal(ev->time_ms, NOW);
	assert_int_equal(ev->expires_ms, 0);
	done(&q);
}

static void test_structured_time_kept_when_present(void **state)
{
	struct req q = {0};

	expect_event(&q, CE_JSON,
		     "{\"time\":\"2024-05-01T12:00:00.000Z\"," HEAD ",\"data\":\"x\"}",
		     "{\"time\":\"2024-05-01T12:00:00.000Z\"," HEAD ",\"data\":\"x\"}");
	assert_int_equal(q.out.events[0].time_ms, 1714564800000LL);
	done(&q);

	/* A numeric offset and lower-case separators are RFC 3339 too. */
	expect_event(&q, CE_JSON, "{" HEAD ",\"time\":\"2024-05-01t14:00:00.5+02:00\"}",
		     "{" HEAD ",\"time\":\"2024-05-01t14:00:00.5+02:00\"}");
	assert_int_equal(q.out.events[0].time_ms, 1714564800500LL);
	done(&q);
}

static void test_structured_content_types(void **state)
{
	static const char *const types[] = {
		"application/cloudevents+json",
		"application/cloudevents",
		"Application/CloudEvents+JSON",
		"application/cloudevents+json;charset=utf-8",
		"application/cloudevents+json ; charset=utf-8",
	};
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		struct req q = {0};
		expect_event(&q, types[i], "{" HEAD "}", "{" HEAD "," TIME_MEMBER "}");
		done(&q);
	}
	struct req q = {0};
	expect_error(&q, "application/cloudevents+avro", "{" HEAD "}", HD_EMEDIATYPE,
		     "event format 'application/cloudevents+avro' is not supported: send "
		     "application/cloudevents+json");
	done(&q);
	expect_error(&q, "application/cloudevents-batch+protobuf", "[]", HD_EMEDIATYPE,
		     "event format 'application/cloudevents-batch+protobuf' is not supported: "
		     "send application/cloudevents-batch+json");
	done(&q);
	/* ce- headers beside a structured body are ignored: the body is authoritative. */
	hdr(&q, "ce-id", "other");
	expect_event(&q, CE_JSON, "{" HEAD "}", "{" HEAD "," TIME_MEMBER "}");
	assert_string_equal(q.out.events[0].id, "1");
	done(&q);
}

static void test_structured_member_forms(void **state)
{
	/* Extensions of each CloudEvents type are kept in order, as sent. */
	structured_ok("{\"zeta\":\"z\"," HEAD ",\"count\":-2147483648,\"max\":2147483647,"
		      "\"flag\":true,\"off\":false,\"subject\":\"s\",\"dataschema\":\"https://x/s\","
		      "\"datacontenttype\":\"text/plain\",\"data\":\"hi\"}",
		      "{\"zeta\":\"z\"," HEAD ",\"count\":-2147483648,\"max\":2147483647,"
		      "\"flag\":true,\"off\":false,\"subject\":\"s\",\"dataschema\":\"https://x/s\","
		      "\"datacontenttype\":\"text/plain\",\"data\":\"hi\"," TIME_MEMBER "}");
	/* data keeps its spelling: escapes, numbers, a JSON string is not re-parsed. */
	structured_ok("{" HEAD ",\"data\":\"\\u00e9\\/\\\"{}\"}",
		      "{" HEAD ",\"data\":\"\\u00e9\\/\\\"{}\"," TIME_MEMBER "}");
	structured_ok("{" HEAD ",\"data\":[1.0E+2,-0,1e400,\"\\u0000\"]}",
		      "{" HEAD ",\"data\":[1.0E+2,-0,1e400,\"\\u0000\"]," TIME_MEMBER "}");
	structured_ok("{" HEAD ",\"data\":{\"a\":{\"a\":1},\"a\":2}}",
		      "{" HEAD ",\"data\":{\"a\":{\"a\":1},\"a\":2}," TIME_MEMBER "}");
	/* Binary data travels as data_base64. */
	structured_ok("{" HEAD ",\"data_base64\":\"AQIDBA==\"}",
		      "{" HEAD ",\"data_base64\":\"AQIDBA==\"," TIME_MEMBER "}");
	structured_ok("{" HEAD ",\"data_base64\":\"\"}",
		      "{" HEAD ",\"data_base64\":\"\"," TIME_MEMBER "}");
	structured_ok("{" HEAD ",\"data_base64\":\"ab\\/+\"}",
		      "{" HEAD ",\"data_base64\":\"ab\\/+\"," TIME_MEMBER "}");
	/* Member names are stored unescaped. */
	structured_ok("{\"spec\\u0076ersion\":\"1.0\",\"\\u0069d\":\"1\",\"source\":\"/s\","
		      "\"type\":\"t\"}",
		      "{" HEAD "," TIME_MEMBER "}");
	/* Escaped attribute values are decoded for id, source and type. */
	struct req q = {0};
	expect_event(&q, CE_JSON,
		     "{\"specversion\":\"1.0\",\"id\":\"\\u00e9\\\"\",\"source\":\"\\/s\",\"type\":\"t\"}",
		     "{\"specversion\":\"1.0\",\"id\":\"\\u00e9\\\"\",\"source\":\"\\/s\",\"type\":\"t\","
		     TIME_MEMBER "}");
	assert_string_equal(q.out.events[0].id, "\xc3\xa9\"");
	assert_string_equal(q.out.events[0].source, "/s");
	done(&q);
}

static void test_structured_nulls_unset_attributes(void **state)
{
	structured_ok("{" HEAD ",\"subject\":null,\"ext\":null}", "{" HEAD "," TIME_MEMBER "}");
	/* A null time is no time: herald adds one, and only one. */
	structured_ok("{\"time\":null," HEAD "}", "{" HEAD "," TIME_MEMBER "}");
	structured_ok("{" HEAD ",\"data_base64\":null,\"data\":1}",
		      "{" HEAD ",\"data\":1," TIME_MEMBER "}");
	/* data is not an attribute: null is its value. */
	structured_ok("{" HEAD ",\"data\":null}", "{" HEAD ",\"data\":null," TIME_MEMBER "}");
	/* herald's own read-side names: null unsets them, any value is refused. */
	structured_ok("{\"topic\":null," HEAD ",\"offset\":null}", "{" HEAD "," TIME_MEMBER "}");
	structured_bad("{\"topic\":{\"x\":[1]}," HEAD "}",
		       "attribute 'topic' is reserved: herald adds 'topic' and 'offset' to every stored "
		       "event, so a producer's own would be lost; rename it");
	structured_bad("{" HEAD ",\"offset\":77}",
		       "attribute 'offset' is reserved: herald adds 'topic' and 'offset' to every stored "
		       "event, so a producer's own would be lost; rename it");
	structured_bad("{\"id\":null,\"specversion\":\"1.0\",\"source\":\"/s\",\"type\":\"t\"}",
		       "missing required attribute 'id'");
}

/* ---- structured mode: validation ---- */

static void test_structured_required_attributes(void **state)
{
	structured_bad("{\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\"}",
		       "missing required attribute 'specversion'");
	structured_bad("{\"specversion\":\"1.0\",\"source\":\"/s\",\"type\":\"t\"}",
		       "missing required attribute 'id'");
	structured_bad("{\"specversion\":\"1.0\",\"id\":\"1\",\"type\":\"t\"}",
		       "missing required attribute 'source'");
	structured_bad("{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\"}",
		       "missing required attribute 'type'");
	structured_bad("{}", "missing required attribute 'specversion'");
	structured_bad("{\"specversion\":\"0.3\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\"}",
		       "attribute 'specversion' must be \"1.0\"");
	structured_bad("{\"specversion\":1.0,\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\"}",
		       "attribute 'specversion' must be \"1.0\"");
	structured_bad("{\"specversion\":\"1.0 \",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\"}",
		       "attribute 'specversion' must be \"1.0\"");
	structured_bad("{\"specversion\":\"1.0\",\"id\":\"\",\"source\":\"/s\",\"type\":\"t\"}",
		       "attribute 'id' must not be empty");
	structured_bad("{\"specversion\":\"1.0\",\"id\":7,\"source\":\"/s\",\"type\":\"t\"}",
		       "attribute 'id' must be a string");
	structured_bad("{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"\",\"type\":\"t\"}",
		       "attribute 'source' must not be empty");
	structured_bad("{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":[\"t\"]}",
		       "attribute 'type' must be a string");
}

static void test_structured_optional_attributes(void **state)
{
	structured_bad("{" HEAD ",\"subject\":\"\"}", "attribute 'subject' must not be empty");
	structured_bad("{" HEAD ",\"datacontenttype\":\"\"}",
		       "attribute 'datacontenttype' must not be empty");
	structured_bad("{" HEAD ",\"dataschema\":5}", "attribute 'dataschema' must be a string");
	structured_bad("{" HEAD ",\"time\":\"yesterday\"}",
		       "attribute 'time' is not an RFC 3339 timestamp");
	structured_bad("{" HEAD ",\"time\":\"2024-02-30T00:00:00Z\"}",
		       "attribute 'time' is not an RFC 3339 timestamp");
	structured_bad("{" HEAD ",\"time\":\"2024-05-01 12:00:00Z\"}",
		       "attribute 'time' is not an RFC 3339 timestamp");
	structured_bad("{" HEAD ",\"time\":1714564800}",
		       "attribute 'time' is not an RFC 3339 timestamp");
	structured_bad("{" HEAD ",\"expirytime\":\"soon\"}",
		       "attribute 'expirytime' is not an RFC 3339 timestamp");
}

static void test_structured_names(void **state)
{
	structured_bad("{" HEAD ",\"Foo\":1}",
		       "attribute name 'Foo' must be 1-20 lower-case letters or digits");
	structured_bad("{" HEAD ",\"a_b\":1}",
		       "attribute name 'a_b' must be 1-20 lower-case letters or digits");
	structured_bad("{" HEAD ",\"\":1}",
		       "attribute name '' must be 1-20 lower-case letters or digits");
	structured_bad("{" HEAD ",\"abcdefghijklmnopqrstu\":1}",
		       "attribute name 'abcdefghijklmnopqrstu' must be 1-20 lower-case letters "
		       "or digits");
	structured_ok("{" HEAD ",\"abcdefghijklmnopqrs0\":1}",
		      "{" HEAD ",\"abcdefghijklmnopqrs0\":1," TIME_MEMBER "}");
	structured_bad("{" HEAD ",\"caf\xc3\xa9\":1}",
		       "attribute name 'caf\xc3\xa9' must be 1-20 lower-case letters or digits");
	/* A hostile name is shortened and defused in the message. */
	structured_bad("{" HEAD ",\"a'b\\\"c\\n01234567890123456789012345678901234567890123456789"
		       "0123456789\":1}",
		       "attribute name 'a?b?c?01234567890123456789012345678901234567890123456789"
		       "01234567...' must be 1-20 lower-case letters or digits");
	/* A name is cut on a character boundary: 'é' straddles byte 64 here. */
	structured_bad("{" HEAD ",\"012345678901234567890123456789012345678901234567890123456789012"
		       "\xc3\xa9\":1}",
		       "attribute name '012345678901234567890123456789012345678901234567890123456789012"
		       "...' must be 1-20 lower-case letters or digits");
	structured_bad("{" HEAD ",\"id\":\"2\"}", "event has more than one 'id' member");
	structured_bad("{" HEAD ",\"\\u0069d\":\"2\"}", "event has more than one 'id' member");
	structured_bad("{" HEAD ",\"data\":1,\"data\":2}", "event has more than one 'data' member");
	structured_bad("{" HEAD ",\"x\":null,\"x\":1}", "event has more than one 'x' member");
	structured_bad("{" HEAD ",\"subject\":\"a\",\"subject\":\"b\"}",
		       "event has more than one 'subject' member");

	/* The member count is bounded. */
	char body[4096];
	size_t o = (size_t)snprintf(body, sizeof(body), "{" HEAD);
	for (int i = 4; i < 128; i++)
		o += (size_t)snprintf(body + o, sizeof(body) - o, ",\"x%d\":1", i);
	snprintf(body + o, sizeof(body) - o, "}");
	struct req q = {0};
	assert_int_equal(decode(&q, CE_JSON, body), 0);
	done(&q);
	snprintf(body + o, sizeof(body) - o, ",\"y\":1}");
	structured_bad(body, "event has more than 128 members");
}

static void test_structured_data_rules(void **state)
{
	structured_bad("{" HEAD ",\"data\":1,\"data_base64\":\"AA==\"}",
		       "event has both 'data' and 'data_base64'");
	structured_bad("{" HEAD ",\"data_base64\":\"AA==\",\"data\":null}",
		       "event has both 'data' and 'data_base64'");
	static const char *const bad64[] = {"\"A\"", "\"AAA\"", "\"AA=A\"", "\"A===\"", "\"AA AA\"",
					    "\"AA-_\"", "5", "[]", "\"====\""};
	for (size_t i = 0; i < sizeof(bad64) / sizeof(bad64[0]); i++) {
		char body[128];
		snprintf(body, sizeof(body), "{" HEAD ",\"data_base64\":%s}", bad64[i]);
		structured_bad(body, "'data_base64' is not valid base64");
	}
}

static void test_structured_extension_values(void **state)
{
	structured_bad("{" HEAD ",\"ext\":{}}",
		       "attribute 'ext' must be a string, an integer or a boolean");
	structured_bad("{" HEAD ",\"ext\":[1]}",
		       "attribute 'ext' must be a string, an integer or a boolean");
	structured_bad("{" HEAD ",\"ext\":1.5}",
		       "attribute 'ext' must be a string, an integer or a boolean");
	structured_bad("{" HEAD ",\"ext\":1e3}",
		       "attribute 'ext' must be a string, an integer or a boolean");
	structured_bad("{" HEAD ",\"ext\":2147483648}",
		       "attribute 'ext' must be an integer from -2147483648 to 2147483647");
	structured_bad("{" HEAD ",\"ext\":-2147483649}",
		       "attribute 'ext' must be an integer from -2147483648 to 2147483647");
	structured_bad("{" HEAD ",\"ext\":12345678901234567890123}",
		       "attribute 'ext' must be an integer from -2147483648 to 2147483647");
	/* Strings are CloudEvents Strings: no controls, no noncharacters. */
	structured_bad("{" HEAD ",\"subject\":\"a\\u0001b\"}",
		       "attribute 'subject' contains the control character U+0001");
	structured_bad("{" HEAD ",\"ext\":\"tab\\there\"}",
		       "attribute 'ext' contains the control character U+0009");
	structured_bad("{" HEAD ",\"ext\":\"\\u007f\"}",
		       "attribute 'ext' contains the control character U+007F");
	structured_bad("{" HEAD ",\"ext\":\"\xc2\x85\"}",
		       "attribute 'ext' contains the control character U+0085");
	structured_bad("{" HEAD ",\"ext\":\"\\uFFFE\"}",
		       "attribute 'ext' contains the noncharacter U+FFFE");
	structured_bad("{" HEAD ",\"ext\":\"\\uFDD0\"}",
		       "attribute 'ext' contains the noncharacter U+FDD0");
	structured_bad("{\"specversion\":\"1.0\",\"id\":\"\\u0000\",\"source\":\"/s\",\"type\":\"t\"}",
		       "attribute 'id' contains the control character U+0000");
	/* Long values with escapes are decoded off the stack, and still checked. */
	char body[2048];
	char val[1200];
	for (size_t i = 0; i < 600; i++)
		memcpy(val + i * 2, "\\/", 2);
	val[1200 - 1] = '\0';
	val[1200 - 2] = 'x';
	snprintf(body, sizeof(body), "{" HEAD ",\"ext\":\"%s\\u0002\"}", val);
	structured_bad(body, "attribute 'ext' contains the control character U+0002");
	/* Everything else printable is fine, including non-BMP characters. */
	structured_ok("{" HEAD ",\"ext\":\"\\ud83d\\ude00 \xe2\x82\xac\\u00a0\"}",
		      "{" HEAD ",\"ext\":\"\\ud83d\\ude00 \xe2\x82\xac\\u00a0\"," TIME_MEMBER "}");
}

static void test_structured_bad_json(void **state)
{
	structured_bad("", "event is not valid JSON: the text is empty");
	structured_bad("{\"id\":", "event is not valid JSON: unexpected end of text at byte 6");
	structured_bad("{" HEAD ",}",
		       "event is not valid JSON: unexpected character '}' at byte 55, expected "
		       "a member name");
	structured_bad("{" HEAD ",\"ext\":\"\\ud800\"}",
		       "event is not valid JSON: unpaired surrogate escape at byte 62");
	structured_bad("{" HEAD ",\"ext\":\"\xc0\xa0\"}",
		       "event is not valid JSON: invalid UTF-8 in a string at byte 62");
	structured_bad("[" "{" HEAD "}" "]", "event must be a JSON object");
	structured_bad("\"event\"", "event must be a JSON object");
	structured_bad("null", "event must be a JSON object");
	/* Nesting is bounded, inside data too. */
	char body[512];
	size_t o = (size_t)snprintf(body, sizeof(body), "{" HEAD ",\"data\":");
	for (int i = 0; i < 64; i++)
		body[o++] = '[';
	for (int i = 0; i < 64; i++)
		body[o++] = ']';
	body[o++] = '}';
	body[o] = '\0';
	structured_bad(body, "event is not valid JSON: nesting deeper than 64 levels at byte 125");
}

/* ---- expiry ---- */

static void test_expiry_sources_and_precedence(void **state)
{
	struct req q = {0};

	/* expirytime wins over ttl and over the header. */
	hdr(&q, "herald-ttl", "30");
	expect_event(&q, CE_JSON, "{" HEAD ",\"ttl\":60,\"expirytime\":\"2030-01-01T00:00:00Z\"}",
		     "{" HEAD ",\"ttl\":60,\"expirytime\":\"2030-01-01T00:00:00Z\"," TIME_MEMBER "}");
	assert_int_equal(q.out.events[0].expires_ms, 1893456000000LL);
	done(&q);
	/* ttl (seconds from publish) wins over the header, as a number or a string. */
	hdr(&q, "herald-ttl", "30");
	expect_event(&q, CE_JSON, "{" HEAD ",\"ttl\":60}", "{" HEAD ",\"ttl\":60," TIME_MEMBER "}");
	assert_int_equal(q.out.events[0].expires_ms, NOW + 60000);
	done(&q);
	expect_event(&q, CE_JSON, "{" HEAD ",\"ttl\":\"31536000\"}",
		     "{" HEAD ",\"ttl\":\"31536000\"," TIME_MEMBER "}");
	assert_int_equal(q.out.events[0].expires_ms, NOW + 31536000000LL);
	done(&q);
	/* ttl counts from the publish, not from an event time in the past. */
	expect_event(&q, CE_JSON, "{" HEAD ",\"time\":\"2000-01-01T00:00:00Z\",\"ttl\":1}",
		     "{" HEAD ",\"time\":\"2000-01-01T00:00:00Z\",\"ttl\":1}");
	assert_int_equal(q.out.events[0].expires_ms, NOW + 1000);
	done(&q);
	/* The header applies when the event says nothing. */
	hdr(&q, "herald-ttl", "1");
	expect_event(&q, CE_JSON, "{" HEAD "}", "{" HEAD "," TIME_MEMBER "}");
	assert_int_equal(q.out.events[0].expires_ms, NOW + 1000);
	done(&q);
	/* An expiry at the epoch is in the past, not "never" (0). */
	expect_event(&q, CE_JSON, "{" HEAD ",\"expirytime\":\"1970-01-01T00:00:00Z\"}",
		     "{" HEAD ",\"expirytime\":\"1970-01-01T00:00:00Z\"," TIME_MEMBER "}");
	assert_int_equal(q.out.events[0].expires_ms, 1);
	done(&q);
	/* A null ttl is no ttl. */
	hdr(&q, "herald-ttl", "5");
	expect_event(&q, CE_JSON, "{" HEAD ",\"ttl\":null}", "{" HEAD "," TIME_MEMBER "}");
	assert_int_equal(q.out.events[0].expires_ms, NOW + 5000);
	done(&q);
}

static void test_expiry_bad_values(void **state)
{
	static const char *const bad_ttl[] = {"0", "-1", "31536001", "1.5", "1e2", "\"\"",
					      "\"6O\"", "\"+5\"", "\" 5\"", "true", "99999999999999999999"};
	for (size_t i = 0; i < sizeof(bad_ttl) / sizeof(bad_ttl[0]); i++) {
		char body[128];
		snprintf(body, sizeof(body), "{" HEAD ",\"ttl\":%s}", bad_ttl[i]);
		structured_bad(body, "attribute 'ttl' must be a whole number of seconds from 1 to "
				     "31536000");
	}
	/* A bad header is a bad request, whatever the event says. */
	static const char *const bad_hdr[] = {"", "0", "abc", "31536001", "-5", "5s", "1e3"};
	for (size_t i = 0; i < sizeof(bad_hdr) / sizeof(bad_hdr[0]); i++) {
		struct req q = {0};
		hdr(&q, "herald-ttl", bad_hdr[i]);
		expect_error(&q, CE_JSON, "{" HEAD ",\"expirytime\":\"2030-01-01T00:00:00Z\"}",
			     HD_EINVAL,
			     "header 'herald-ttl' must be a whole number of seconds from 1 to "
			     "31536000");
		done(&q);
	}
}

/* ---- batch mode ---- */

static void test_batch_empty(void **state)
{
	struct req q = {0};

	assert_int_equal(decode(&q, CE_BATCH, " [ ] "), 0);
	assert_true(q.out.is_batch);
	assert_int_equal(q.out.n, 0);
	done(&q);
	assert_int_equal(decode(&q, "application/cloudevents-batch", "[]"), 0);
	assert_true(q.out.is_batch);
	done(&q);
}

static void test_batch_partial_failure(void **state)
{
	struct req q = {0};

	hdr(&q, "herald-ttl", "10");
	assert_int_equal(decode(&q, CE_BATCH,
				"[\n  {\n    " HEAD ",\n    \"offset\": null\n  },\n"
				"  42,\n"
				"  {\"specversion\": \"0.3\", \"id\": \"2\", \"source\": \"/s\", \"type\": \"t\"},\n"
				"  [],\n"
				"  {\"specversion\":\"1.0\",\"id\":\"3\",\"source\":\"/s\",\"type\":\"t\","
				"\"ttl\":\"20\",\"data\":{ \"n\" : 0.1 }},\n"
				"  {\"specversion\":\"1.0\",\"id\":\"4\",\"source\":\"/s\"},\n"
				"  null\n"
				"]"),
			 0);
	assert_true(q.out.is_batch);
	assert_int_equal(q.out.n, 7);
	assert_int_equal(q.out.errors[0].code, 0);
	assert_string_equal(q.out.events[0].json, "{" HEAD "," TIME_MEMBER "}");
	assert_int_equal(q.out.events[0].expires_ms, NOW + 10000);
	assert_int_equal(q.out.errors[1].code, HD_EBADEVENT);
	assert_string_equal(q.out.errors[1].msg, "batch entry must be a JSON object");
	assert_string_equal(q.out.errors[2].msg, "attribute 'specversion' must be \"1.0\"");
	assert_string_equal(q.out.errors[3].msg, "batch entry must be a JSON object");
	assert_int_equal(q.out.errors[4].code, 0);
	assert_string_equal(q.out.events[4].json,
			    "{\"specversion\":\"1.0\",\"id\":\"3\",\"source\":\"/s\",\"type\":\"t\","
			    "\"ttl\":\"20\",\"data\":{\"n\":0.1}," TIME_MEMBER "}");
	assert_int_equal(q.out.events[4].expires_ms, NOW + 20000);
	assert_string_equal(q.out.errors[5].msg, "missing required attribute 'type'");
	assert_string_equal(q.out.errors[6].msg, "batch entry must be a JSON object");
	/* Entries that failed hold nothing. */
	for (size_t i = 1; i < 7; i++) {
		if (i == 4)
			continue;
		assert_null(q.out.events[i].json);
		assert_null(q.out.events[i].id);
		assert_int_equal(q.out.events[i].expires_ms, 0);
	}
	done(&q);
}

static void test_batch_whole_request_errors(void **state)
{
	struct req q = {0};

	expect_error(&q, CE_BATCH, "{" HEAD "}", HD_EBADEVENT, "batch must be a JSON array of events");
	done(&q);
	expect_error(&q, CE_BATCH, "[{" HEAD "},", HD_EBADEVENT,
		     "batch is not valid JSON: unexpected end of text at byte 57");
	done(&q);
	expect_error(&q, CE_BATCH, "", HD_EBADEVENT, "batch is not valid JSON: the text is empty");
	done(&q);
	hdr(&q, "herald-ttl", "x");
	expect_error(&q, CE_BATCH, "[]", HD_EINVAL,
		     "header 'herald-ttl' must be a whole number of seconds from 1 to 31536000");
	done(&q);

	/* The entry count is bounded: 10000 pass, 10001 do not. */
	size_t n = HD_CLOUDEVENT_BATCH_MAX + 1;
	char *body = malloc(n * 3 + 2);
	size_t o = 0;
	body[o++] = '[';
	for (size_t i = 0; i < n; i++) {
		if (i)
			body[o++] = ',';
		body[o++] = '{';
		body[o++] = '}';
	}
	body[o++] = ']';
	assert_int_equal(decode_n(&q, CE_BATCH, body, o), HD_ETOOBIG);
	assert_string_equal(q.err.msg, "batch has more than 10000 events");
	done(&q);
	/* Drop the last entry ("{},") to get exactly the maximum. */
	memmove(body + o - 4, "]", 1);
	assert_int_equal(decode_n(&q, CE_BATCH, body, o - 3), 0);
	assert_int_equal(q.out.n, HD_CLOUDEVENT_BATCH_MAX);
	assert_string_equal(q.out.errors[9999].msg, "missing required attribute 'specversion'");
	done(&q);
	free(body);
}

static void test_batch_depth_matches_single_events(void **state)
{
	/* An entry may nest as deep as a single event, one level for the array aside. */
	char body[512];
	size_t o = (size_t)snprintf(body, sizeof(body), "[{" HEAD ",\"data\":");
	for (int i = 0; i < 63; i++)
		body[o++] = '[';
	for (int i = 0; i < 63; i++)
		body[o++] = ']';
	memcpy(body + o, "}]", 3);
	struct req q = {0};
	assert_int_equal(decode(&q, CE_BATCH, body), 0);
	assert_int_equal(q.out.errors[0].code, 0);
	done(&q);
}

/* ---- binary mode ---- */

static void test_binary_event(void **state)
{
	struct req q = {0};

	binary_headers(&q);
	hdr(&q, "ce-time", "2024-05-01T12:00:00.000Z");
	hdr(&q, "ce-subject", "Euro%20%E2%82%AC");
	hdr(&q, "ce-partitionkey", "\"key \\\"7\\\"\"");
	hdr(&q, "idempotency-key", "ignored in binary mode");
	expect_event(&q, "application/json; charset=utf-8", " { \"a\" : [ 0.1 , 12345678901234567890 ] }\n",
		     "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\","
		     "\"time\":\"2024-05-01T12:00:00.000Z\",\"subject\":\"Euro \xe2\x82\xac\","
		     "\"partitionkey\":\"key \\\"7\\\"\","
		     "\"datacontenttype\":\"application/json; charset=utf-8\","
		     "\"data\":{\"a\":[0.1,12345678901234567890]}}");
	assert_int_equal(q.out.events[0].time_ms, 1714564800000LL);
	assert_string_equal(q.out.events[0].id, "1");
	done(&q);
}

/* One ce-note header value → the attribute stored, or NULL for refused. */
static void header_value(const char *raw, const char *want)
{
	struct req q = {0};
	char json[256];

	binary_headers(&q);
	hdr(&q, "ce-note", raw);
	if (!want) {
		expect_error(&q, NULL, "", HD_EBADEVENT,
			     "header 'ce-note' is not valid UTF-8 after percent-decoding");
	} else {
		snprintf(json, sizeof(json), "{" HEAD ",\"note\":\"%s\"," TIME_MEMBER "}", want);
		expect_event(&q, NULL, "", json);
	}
	done(&q);
}

static void test_binary_header_decoding(void **state)
{
	header_value("Euro%20%E2%82%AC", "Euro \xe2\x82\xac"); /* the spec's example */
	header_value("Euro \xe2\x82\xac", "Euro \xe2\x82\xac");  /* raw UTF-8, as the npm SDK sends */
	header_value("%C0%A0", NULL);                           /* the spec's invalid example */
	header_value("%ff", NULL);
	header_value("%e2%82", NULL);                           /* a truncated sequence */
	header_value("caf\xe9", NULL);                          /* Latin-1 is not UTF-8 */
	header_value("%41%62c", "Abc");
	header_value("%2541", "%41");                           /* decoded exactly once */
	header_value("100%", "100%");                           /* a stray '%' stays */
	header_value("50%_off%2", "50%_off%2");
	header_value("%22quoted%22 %5C", "\\\"quoted\\\" \\\\");
	header_value("\"a \\\"b\\\" c\"", "a \\\"b\\\" c");     /* an RFC 7230 quoted-string */
	header_value("\"%20\"", " ");                           /* unquoted, then decoded */
	header_value("\"unbalanced", "\\\"unbalanced");        /* not a quoted-string: raw */
	header_value("\"a\"b\"", "\\\"a\\\"b\\\"");
	header_value("\"ends in \\\"", "\\\"ends in \\\\\\\"");
	header_value("\"\"", "");
	header_value("https://example.com/a?b=c&d", "https://example.com/a?b=c&d");
}

/* source, dataschema, datacontenttype grammars; reserved names in binary mode. */
static void test_attribute_grammars(void **state)
{
	struct req q = {0};

	structured_ok("{" HEAD ",\"dataschema\":\"https://example.com/s.json\","
		      "\"datacontenttype\":\"application/json; charset=\\\"utf-8\\\"\"}",
		      "{" HEAD ",\"dataschema\":\"https://example.com/s.json\","
		      "\"datacontenttype\":\"application/json; charset=\\\"utf-8\\\"\"," TIME_MEMBER "}");
	structured_ok("{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"urn:x:y\",\"type\":\"t\"}",
		      "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"urn:x:y\",\"type\":\"t\","
		      TIME_MEMBER "}");
	structured_bad("{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/a b\",\"type\":\"t\"}",
		       "attribute 'source' must be a URI-reference (RFC 3986 section 4.1): a space is "
		       "not allowed (write %20)");
	structured_bad("{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"http://[::1\",\"type\":\"t\"}",
		       "attribute 'source' must be a URI-reference (RFC 3986 section 4.1): an IP literal "
		       "host must end with ']'");
	structured_bad("{" HEAD ",\"dataschema\":\"/relative\"}",
		       "attribute 'dataschema' must be an absolute URI (RFC 3986 section 4.3): it has no "
		       "scheme (an absolute URI starts with one, such as https:)");
	structured_bad("{" HEAD ",\"datacontenttype\":\"json\"}",
		       "attribute 'datacontenttype' must be a media type (RFC 2045 section 5.1: "
		       "type/subtype[; name=value]): the type must be followed by '/' and a subtype "
		       "(type/subtype)");
	binary_headers(&q);
	hdr(&q, "ce-topic", "elsewhere");
	assert_int_equal(decode(&q, "text/plain", "x"), HD_EBADEVENT);
	done(&q);
	binary_headers(&q);
	assert_int_equal(decode(&q, "text plain", "x"), HD_EBADEVENT);
	assert_non_null(strstr(q.err.msg, "media type"));
	done(&q);
}

static void test_binary_attributes_are_strings(void **state)
{
	struct req q = {0};

	binary_headers(&q);
	hdr(&q, "ce-count", "5");
	hdr(&q, "ce-flag", "true");
	hdr(&q, "ce-ttl", "30");
	hdr(&q, "herald-ttl", "99");
	expect_event(&q, "text/plain", "hello\nworld",
		     "{" HEAD ",\"count\":\"5\",\"flag\":\"true\",\"ttl\":\"30\"," TIME_MEMBER ","
		     "\"datacontenttype\":\"text/plain\",\"data\":\"hello\\nworld\"}");
	assert_int_equal(q.out.events[0].expires_ms, NOW + 30000);
	done(&q);

	binary_headers(&q);
	hdr(&q, "ce-expirytime", "2030-01-01T00:00:00Z");
	expect_event(&q, NULL, "", "{" HEAD ",\"expirytime\":\"2030-01-01T00:00:00Z\"," TIME_MEMBER "}");
	assert_int_equal(q.out.events[0].expires_ms, 1893456000000LL);
	done(&q);
}

/* One body with Content-Type ct (NULL for none) → the members after "time". */
static void body_as(const char *ct, const char *body, size_t n, const char *tail)
{
	struct req q = {0};
	char json[512];

	binary_headers(&q);
	snprintf(json, sizeof(json), "{" HEAD "," TIME_MEMBER "%s}", tail);
	if (decode_n(&q, ct, body, n) != 0)
		fail_msg("refused: %s", q.err.msg);
	assert_string_equal(q.out.events[0].json, json);
	done(&q);
}

#define BODY_AS(ct, lit, tail) body_as(ct, lit, sizeof(lit) - 1, tail)

static void test_binary_body_encodings(void **state)
{
	BODY_AS("application/json", "\"a string\"",
		",\"datacontenttype\":\"application/json\",\"data\":\"a string\"");
	BODY_AS("Application/JSON", " 1E400 ", ",\"datacontenttype\":\"Application/JSON\",\"data\":1E400");
	BODY_AS("application/vnd.api+json", "[ ]",
		",\"datacontenttype\":\"application/vnd.api+json\",\"data\":[]");
	BODY_AS("text/json", "{}", ",\"datacontenttype\":\"text/json\",\"data\":{}");
	BODY_AS("text/plain", "caf\xc3\xa9 \"q\" \\ \t",
		",\"datacontenttype\":\"text/plain\",\"data\":\"caf\xc3\xa9 \\\"q\\\" \\\\ \\t\"");
	BODY_AS("text/csv", "a,b\r\n", ",\"datacontenttype\":\"text/csv\",\"data\":\"a,b\\r\\n\"");
	BODY_AS("application/xml; charset=utf-8", "<a/>",
		",\"datacontenttype\":\"application/xml; charset=utf-8\",\"data\":\"<a/>\"");
	BODY_AS("application/xml;q=1; Charset=utf-8", "<a/>",
		",\"datacontenttype\":\"application/xml;q=1; Charset=utf-8\",\"data\":\"<a/>\"");
	BODY_AS("application/xml;q=1", "<a/>",
		",\"datacontenttype\":\"application/xml;q=1\",\"data_base64\":\"PGEvPg==\"");
	BODY_AS("application/x-www-form-urlencoded", "a=1&b=%20",
		",\"datacontenttype\":\"application/x-www-form-urlencoded\",\"data\":\"a=1&b=%20\"");
	BODY_AS("text/plain", "\x00\x01", ",\"datacontenttype\":\"text/plain\",\"data\":\"\\u0000\\u0001\"");
	/* Text that is not UTF-8 is carried as bytes. */
	BODY_AS("text/plain; charset=iso-8859-1", "caf\xe9",
		",\"datacontenttype\":\"text/plain; charset=iso-8859-1\",\"data_base64\":\"Y2Fm6Q==\"");
	BODY_AS("application/octet-stream", "\x01\x02\x03\xff",
		",\"datacontenttype\":\"application/octet-stream\",\"data_base64\":\"AQID/w==\"");
	BODY_AS("image/png", "ab", ",\"datacontenttype\":\"image/png\",\"data_base64\":\"YWI=\"");
	BODY_AS("application/jsonl", "{}", ",\"datacontenttype\":\"application/jsonl\",\"data_base64\":\"e30=\"");
	/* No Content-Type: bytes of unknown kind, and no datacontenttype. */
	BODY_AS(NULL, "{}", ",\"data_base64\":\"e30=\"");
	BODY_AS("", "xyz", ",\"data_base64\":\"eHl6\"");
	/* An empty body is no data. */
	BODY_AS("application/json", "", ",\"datacontenttype\":\"application/json\"");

	/* Long binary bodies cross the base64 encoder's chunks. */
	struct req q = {0};
	char body[5000];
	for (size_t i = 0; i < sizeof(body); i++)
		body[i] = (char)(i * 7);
	binary_headers(&q);
	assert_int_equal(decode_n(&q, "application/octet-stream", body, sizeof(body)), 0);
	json_t *root = json_loads(q.out.events[0].json, 0, NULL);
	const char *b64 = json_string_value(json_object_get(root, "data_base64"));
	assert_int_equal(strlen(b64), (sizeof(body) + 2) / 3 * 4);
	assert_memory_equal(b64, "AAcOFRwjKjE4", 12);
	json_decref(root);
	done(&q);
}

static void test_binary_errors(void **state)
{
	struct req q = {0};

	binary_headers(&q);
	expect_error(&q, "application/json", "{\"a\":", HD_EBADEVENT,
		     "body is not valid JSON: unexpected end of text at byte 5");
	done(&q);
	binary_headers(&q);
	expect_error(&q, "application/json", "hello", HD_EBADEVENT,
		     "body is not valid JSON: unexpected character 'h' at byte 0, expected a "
		     "JSON value");
	done(&q);
	/* data nests as deep in a binary body as in a structured event, no deeper. */
	char deep[200];
	memset(deep, '[', 63);
	memset(deep + 63, ']', 63);
	binary_headers(&q);
	assert_int_equal(decode_n(&q, "application/json", deep, 126), 0);
	done(&q);
	memset(deep, '[', 64);
	memset(deep + 64, ']', 64);
	binary_headers(&q);
	assert_int_equal(decode_n(&q, "application/json", deep, 128), HD_EBADEVENT);
	assert_string_equal(q.err.msg, "body is not valid JSON: nesting deeper than 63 levels at byte 63");
	done(&q);
	binary_headers(&q);
	hdr(&q, "ce-datacontenttype", "text/plain");
	expect_error(&q, NULL, "", HD_EBADEVENT,
		     "header 'ce-datacontenttype' is not allowed: binary mode sends the data's "
		     "media type as Content-Type");
	done(&q);
	binary_headers(&q);
	hdr(&q, "ce-data", "x");
	expect_error(&q, NULL, "", HD_EBADEVENT, "header 'ce-data' is not allowed: the body is the data");
	done(&q);
	binary_headers(&q);
	hdr(&q, "ce-foo_bar", "x");
	expect_error(&q, NULL, "", HD_EBADEVENT,
		     "attribute name 'foo_bar' must be 1-20 lower-case letters or digits");
	done(&q);
	binary_headers(&q);
	hdr(&q, "ce-", "x");
	expect_error(&q, NULL, "", HD_EBADEVENT,
		     "attribute name '' must be 1-20 lower-case letters or digits");
	done(&q);
	binary_headers(&q);
	hdr(&q, "ce-id", "2");
	expect_error(&q, NULL, "", HD_EBADEVENT, "header 'ce-id' appears more than once");
	done(&q);
	hdr(&q, "ce-specversion", "0.3");
	hdr(&q, "ce-id", "1");
	hdr(&q, "ce-source", "/s");
	hdr(&q, "ce-type", "t");
	expect_error(&q, NULL, "", HD_EBADEVENT, "attribute 'specversion' must be \"1.0\"");
	done(&q);
	hdr(&q, "ce-specversion", "1.0");
	hdr(&q, "ce-id", "");
	hdr(&q, "ce-source", "/s");
	hdr(&q, "ce-type", "t");
	expect_error(&q, NULL, "", HD_EBADEVENT, "attribute 'id' must not be empty");
	done(&q);
	binary_headers(&q);
	hdr(&q, "ce-time", "2024-05-01T12:00:00");
	expect_error(&q, NULL, "", HD_EBADEVENT, "attribute 'time' is not an RFC 3339 timestamp");
	done(&q);
	binary_headers(&q);
	hdr(&q, "ce-subject", "line%0Abreak");
	expect_error(&q, NULL, "", HD_EBADEVENT,
		     "attribute 'subject' contains the control character U+000A");
	done(&q);
	binary_headers(&q);
	hdr(&q, "ce-ttl", "0");
	expect_error(&q, NULL, "", HD_EBADEVENT,
		     "attribute 'ttl' must be a whole number of seconds from 1 to 31536000");
	done(&q);
	binary_headers(&q);
	expect_error(&q, "text/\x01", "", HD_EBADEVENT,
		     "header 'content-type' contains the control character U+0001");
	done(&q);

	/* Some ce- headers but not the four of binary mode: a mistake, not a raw publish. */
	hdr(&q, "ce-id", "1");
	hdr(&q, "ce-source", "/s");
	expect_error(&q, "application/json", "{}", HD_EBADEVENT,
		     "binary-mode event is missing header 'ce-type'");
	done(&q);
	hdr(&q, "ce-subject", "x");
	expect_error(&q, NULL, "", HD_EBADEVENT, "binary-mode event is missing header 'ce-id'");
	done(&q);

	/* The attribute count is bounded. */
	static char names[130][8];
	binary_headers(&q);
	for (int i = 0; i < 125; i++) {
		snprintf(names[i], sizeof(names[i]), "ce-x%d", i);
		hdr(&q, names[i], "v");
	}
	expect_error(&q, NULL, "", HD_EBADEVENT, "event has more than 128 attributes");
	done(&q);
}

/* ---- raw mode ---- */

static void test_raw_event(void **state)
{
	struct req q = {0};
	char json[512];

	assert_int_equal(decode(&q, "application/json", " {\"price\": 0.1} "), 0);
	const struct hd_event *ev = &q.out.events[0];
	assert_true(is_uuid_v4(ev->id));
	assert_string_equal(ev->source, "/topics/orders");
	assert_string_equal(ev->type, "herald.message");
	assert_int_equal(ev->time_ms, NOW);
	assert_int_equal(ev->expires_ms, 0);
	snprintf(json, sizeof(json),
		 "{\"specversion\":\"1.0\",\"id\":\"%s\",\"source\":\"/topics/orders\","
		 "\"type\":\"herald.message\"," TIME_MEMBER ","
		 "\"datacontenttype\":\"application/json\",\"data\":{\"price\":0.1}}",
		 ev->id);
	assert_string_equal(ev->json, json);
	done(&q);
}

static void test_raw_idempotency_key_and_ttl(void **state)
{
	struct req q = {0};

	hdr(&q, "idempotency-key", "order-7 \xe2\x82\xac \"x\"");
	hdr(&q, "herald-ttl", "3600");
	expect_event(&q, "text/plain; charset=utf-8", "hi",
		     "{\"specversion\":\"1.0\",\"id\":\"order-7 \xe2\x82\xac \\\"x\\\"\","
		     "\"source\":\"/topics/orders\",\"type\":\"herald.message\"," TIME_MEMBER ","
		     "\"datacontenttype\":\"text/plain; charset=utf-8\",\"data\":\"hi\"}");
	assert_string_equal(q.out.events[0].id, "order-7 \xe2\x82\xac \"x\"");
	assert_int_equal(q.out.events[0].expires_ms, NOW + 3600000);
	done(&q);

	/* No Content-Type and no body: an event with no data. */
	hdr(&q, "idempotency-key", "k");
	expect_event(&q, NULL, "",
		     "{\"specversion\":\"1.0\",\"id\":\"k\",\"source\":\"/topics/orders\","
		     "\"type\":\"herald.message\"," TIME_MEMBER "}");
	done(&q);

	hdr(&q, "idempotency-key", "");
	expect_error(&q, NULL, "x", HD_EBADEVENT, "header 'idempotency-key' must not be empty");
	done(&q);
	hdr(&q, "idempotency-key", "a\x7f");
	expect_error(&q, NULL, "x", HD_EBADEVENT,
		     "header 'idempotency-key' contains the control character U+007F");
	done(&q);
	hdr(&q, "idempotency-key", "\xff");
	expect_error(&q, NULL, "x", HD_EBADEVENT, "header 'idempotency-key' is not valid UTF-8");
	done(&q);
	expect_error(&q, "application/problem+json", "{", HD_EBADEVENT,
		     "body is not valid JSON: unexpected end of text at byte 1");
	done(&q);
}

static void test_raw_body_kinds(void **state)
{
	struct req q = {0};

	/* curl -d sends form encoding: the text is kept as a string. */
	hdr(&q, "idempotency-key", "k");
	expect_event(&q, "application/x-www-form-urlencoded", "hello",
		     "{\"specversion\":\"1.0\",\"id\":\"k\",\"source\":\"/topics/orders\","
		     "\"type\":\"herald.message\"," TIME_MEMBER ","
		     "\"datacontenttype\":\"application/x-www-form-urlencoded\",\"data\":\"hello\"}");
	done(&q);
	hdr(&q, "idempotency-key", "k");
	const char bytes[] = {'\0', '\x80', 'a'};
	assert_int_equal(decode_n(&q, NULL, bytes, sizeof(bytes)), 0);
	assert_string_equal(q.out.events[0].json,
			    "{\"specversion\":\"1.0\",\"id\":\"k\",\"source\":\"/topics/orders\","
			    "\"type\":\"herald.message\"," TIME_MEMBER ",\"data_base64\":\"AIBh\"}");
	done(&q);
}

/* The ceiling on one event's JSON: text of control bytes escapes to six times its size. */
static void test_event_size_ceiling(void **state)
{
	size_t n = (64u << 20) / 6 + 1;
	char *body = malloc(n);
	struct req q = {0};

	memset(body, 1, n);
	hdr(&q, "idempotency-key", "k");
	assert_int_equal(decode_n(&q, "text/plain", body, n), HD_ETOOBIG);
	assert_string_equal(q.err.msg, "the event would be larger than 67108864 bytes");
	done(&q);
	binary_headers(&q);
	assert_int_equal(decode_n(&q, "text/plain", body, n), HD_ETOOBIG);
	assert_string_equal(q.err.msg, "the event would be larger than 67108864 bytes");
	done(&q);
	free(body);
}

/* err may be NULL: the code alone still comes back. */
static void test_null_error_struct(void **state)
{
	struct hd_header h = {"content-type", 12, CE_JSON, strlen(CE_JSON)};
	struct hd_cloudevent_request r = {.topic = "t", .now_ms = NOW, .headers = &h, .nheaders = 1,
				  .body = "{", .body_len = 1};
	struct hd_cloudevent_batch b;

	assert_int_equal(hd_cloudevent_decode(&r, &b, NULL), HD_EBADEVENT);
	r.body = "{}";
	r.body_len = 2;
	assert_int_equal(hd_cloudevent_decode(&r, &b, NULL), HD_EBADEVENT);
	r.body = "{" HEAD "}";
	r.body_len = strlen(r.body);
	assert_int_equal(hd_cloudevent_decode(&r, &b, NULL), 0);
	hd_cloudevent_batch_fini(&b);
}

static void test_fini_is_idempotent(void **state)
{
	struct hd_cloudevent_batch b = {0};
	struct hd_event ev = {0};

	hd_cloudevent_batch_fini(&b);
	hd_cloudevent_batch_fini(&b);
	hd_cloudevent_event_fini(&ev);
	ev.id = strdup("x");
	ev.json = strdup("{}");
	hd_cloudevent_event_fini(&ev);
	assert_null(ev.id);
	assert_null(ev.json);
	hd_cloudevent_event_fini(&ev);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_structured_pretty_event_comes_out_compact),
		cmocka_unit_test(test_structured_time_kept_when_present),
		cmocka_unit_test(test_structured_content_types),
		cmocka_unit_test(test_structured_member_forms),
		cmocka_unit_test(test_structured_nulls_unset_attributes),
		cmocka_unit_test(test_structured_required_attributes),
		cmocka_unit_test(test_structured_optional_attributes),
		cmocka_unit_test(test_structured_names),
		cmocka_unit_test(test_structured_data_rules),
		cmocka_unit_test(test_structured_extension_values),
		cmocka_unit_test(test_structured_bad_json),
		cmocka_unit_test(test_expiry_sources_and_precedence),
		cmocka_unit_test(test_expiry_bad_values),
		cmocka_unit_test(test_batch_empty),
		cmocka_unit_test(test_batch_partial_failure),
		cmocka_unit_test(test_batch_whole_request_errors),
		cmocka_unit_test(test_batch_depth_matches_single_events),
		cmocka_unit_test(test_binary_event),
		cmocka_unit_test(test_binary_header_decoding),
		cmocka_unit_test(test_binary_attributes_are_strings),
		cmocka_unit_test(test_attribute_grammars),
		cmocka_unit_test(test_binary_body_encodings),
		cmocka_unit_test(test_binary_errors),
		cmocka_unit_test(test_raw_event),
		cmocka_unit_test(test_raw_idempotency_key_and_ttl),
		cmocka_unit_test(test_raw_body_kinds),
		cmocka_unit_test(test_event_size_ceiling),
		cmocka_unit_test(test_null_error_struct),
		cmocka_unit_test(test_fini_is_idempotent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
