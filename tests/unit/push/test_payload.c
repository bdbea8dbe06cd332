/*
 * Unit tests for push/payload.c: each mode on each platform, the size
 * limits at the exact boundary (data kept at the limit, left out one byte
 * over, never truncated; TOO_BIG when even the minimum does not fit), the
 * event's data byte for byte, FCM data values all strings, every override
 * with good and bad values (ignored with a reason), the collapse id, and
 * expiry (the event's, the subscription's ttl, the earlier wins, expired
 * events skipped).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rcbuf.h"
#include "push/payload.h"

#define NOW 1800000000000LL /* ms */

static const enum hd_push_payload_platform platforms[] = {
	HD_PUSH_PAYLOAD_APNS, HD_PUSH_PAYLOAD_FCM, HD_PUSH_PAYLOAD_WEBPUSH};

/* An event as herald stores it: attributes, then topic and offset. */
static char *event_json(const char *extra, const char *data)
{
	size_t n = strlen(extra) + (data ? strlen(data) : 0) + 256;
	char *s = malloc(n);
	snprintf(s, n,
		 "{\"specversion\":\"1.0\",\"id\":\"ev-1\",\"source\":\"/app\",\"type\":"
		 "\"com.example.ride.arrived\"%s%s%s,\"topic\":\"user:42\",\"offset\":17}",
		 extra, data ? ",\"data\":" : "", data ? data : "");
	return s;
}

struct run {
	struct hd_stored_event ev;
	struct hd_push_payload_in in;
	struct hd_push_payload out;
	json_t *j; /* the payload parsed, when OK */
};

static enum hd_push_payload_result run_json(struct run *r, const char *json,
					    enum hd_push_sub_mode mode,
					    enum hd_push_payload_platform platform)
{
	memset(r, 0, sizeof(*r));
	r->ev.offset = 17;
	r->ev.time_ms = NOW - 1000;
	r->ev.json = hd_rcbuf_from(json, strlen(json));
	r->in.ev = &r->ev;
	r->in.topic = "user:42";
	r->in.epoch = "0123456789abcdef";
	r->in.mode = mode;
	r->in.platform = platform;
	r->in.now_ms = NOW;
	return hd_push_payload_build(&r->in, &r->out);
}

/* Builds again with r's input as changed by the caller. */
static enum hd_push_payload_result rerun(struct run *r)
{
	hd_push_payload_fini(&r->out);
	json_decref(r->j);
	r->j = NULL;
	enum hd_push_payload_result res = hd_push_payload_build(&r->in, &r->out);
	if (res == HD_PUSH_PAYLOAD_OK) {
		r->j = json_loadb(r->out.msg.payload, r->out.msg.payload_len, 0, NULL);
		assert_non_null(r->j);
	}
	return res;
}

static enum hd_push_payload_result run(struct run *r, const char *extra, const char *data,
				       enum hd_push_sub_mode mode,
				       enum hd_push_payload_platform platform)
{
	char *json = event_json(extra, data);
	enum hd_push_payload_result res = run_json(r, json, mode, platform);
	free(json);
	if (res == HD_PUSH_PAYLOAD_OK) {
		r->j = json_loadb(r->out.msg.payload, r->out.msg.payload_len, 0, NULL);
		assert_non_null(r->j);
		assert_int_equal(strlen(r->out.text), r->out.msg.payload_len);
	}
	return res;
}

static void done(struct run *r)
{
	hd_push_payload_fini(&r->out);
	hd_rcbuf_unref(r->ev.json);
	json_decref(r->j);
}

/* The herald object every payload carries (FCM: as JSON text). */
static void check_herald(const json_t *h)
{
	json_t *parsed = NULL;
	if (json_is_string(h))
		h = parsed = json_loads(json_string_value(h), 0, NULL);
	assert_true(json_is_object(h));
	assert_int_equal(json_object_size(h), 5);
	assert_string_equal(json_string_value(json_object_get(h, "topic")), "user:42");
	assert_int_equal(json_integer_value(json_object_get(h, "offset")), 17);
	assert_string_equal(json_string_value(json_object_get(h, "epoch")), "0123456789abcdef");
	assert_string_equal(json_string_value(json_object_get(h, "id")), "ev-1");
	assert_string_equal(json_string_value(json_object_get(h, "type")),
			    "com.example.ride.arrived");
	json_decref(parsed);
}

static const char *jstr(const json_t *o, const char *path)
{
	char key[64];
	const char *dot;
	while ((dot = strchr(path, '.'))) {
		snprintf(key, sizeof(key), "%.*s", (int)(dot - path), path);
		o = json_object_get(o, key);
		path = dot + 1;
	}
	return json_string_value(json_object_get(o, path));
}

static json_t *jget(json_t *o, const char *path)
{
	char key[64];
	const char *dot;
	while ((dot = strchr(path, '.'))) {
		snprintf(key, sizeof(key), "%.*s", (int)(dot - path), path);
		o = json_object_get(o, key);
		path = dot + 1;
	}
	return json_object_get(o, path);
}

/* ---- modes × platforms ------------------------------------------------- */

static const char *ALERT_EXTRA = ",\"pushtitle\":\"Your ride\",\"pushbody\":\"is here\","
				 "\"pushbadge\":3,\"pushsound\":\"ding.caf\"";

static void test_apns(void **state)
{
	struct run r;
	(void)state;
	assert_int_equal(run(&r, ALERT_EXTRA, "{\"car\":\"blue\"}", HD_PUSH_SUB_ALERT,
			     HD_PUSH_PAYLOAD_APNS),
			 HD_PUSH_PAYLOAD_OK);
	assert_int_equal(r.out.msg.mode, HD_PUSH_ALERT);
	assert_int_equal(r.out.msg.urgency, HD_PUSH_URGENCY_NORMAL);
	assert_string_equal(jstr(r.j, "aps.alert.title"), "Your ride");
	assert_string_equal(jstr(r.j, "aps.alert.body"), "is here");
	assert_int_equal(json_integer_value(jget(r.j, "aps.badge")), 3);
	assert_string_equal(jstr(r.j, "aps.sound"), "ding.caf");
	assert_null(jget(r.j, "aps.content-available"));
	check_herald(jget(r.j, "herald"));
	assert_string_equal(jstr(r.j, "data.car"), "blue");
	assert_int_equal(r.out.nignored, 0);
	assert_string_equal(r.out.ignored, "");
	done(&r);

	assert_int_equal(run(&r, ALERT_EXTRA, "{\"car\":\"blue\"}", HD_PUSH_SUB_SILENT,
			     HD_PUSH_PAYLOAD_APNS),
			 HD_PUSH_PAYLOAD_OK);
	assert_int_equal(r.out.msg.mode, HD_PUSH_SILENT); /* background, priority 5 */
	assert_int_equal(json_integer_value(jget(r.j, "aps.content-available")), 1);
	assert_int_equal(json_object_size(jget(r.j, "aps")), 1);
	check_herald(jget(r.j, "herald"));
	assert_string_equal(jstr(r.j, "data.car"), "blue");
	done(&r);

	assert_int_equal(run(&r, ALERT_EXTRA, "{\"car\":\"blue\"}", HD_PUSH_SUB_DOORBELL,
			     HD_PUSH_PAYLOAD_APNS),
			 HD_PUSH_PAYLOAD_OK);
	assert_int_equal(r.out.msg.mode, HD_PUSH_SILENT);
	assert_int_equal(json_integer_value(jget(r.j, "aps.content-available")), 1);
	assert_int_equal(json_object_size(r.j), 2); /* aps, herald: no data */
	check_herald(jget(r.j, "herald"));
	assert_false(r.out.data_left_out);
	done(&r);
}

/* Every value of FCM's data map is a string. */
static void check_fcm_strings(const json_t *j)
{
	const char *k;
	json_t *v, *data = json_object_get(j, "data");
	assert_true(json_is_object(data));
	json_object_foreach(data, k, v)
		assert_true(json_is_string(v));
}

static void test_fcm(void **state)
{
	struct run r;
	(void)state;
	assert_int_equal(run(&r, ALERT_EXTRA, "{\"car\":\"blue\",\"n\":1}", HD_PUSH_SUB_ALERT,
			     HD_PUSH_PAYLOAD_FCM),
			 HD_PUSH_PAYLOAD_OK);
	assert_int_equal(r.out.msg.mode, HD_PUSH_ALERT);
	assert_string_equal(jstr(r.j, "notification.title"), "Your ride");
	assert_string_equal(jstr(r.j, "notification.body"), "is here");
	assert_string_equal(jstr(r.j, "android.notification.sound"), "ding.caf");
	assert_int_equal(json_integer_value(jget(r.j, "android.notification.notification_count")), 3);
	check_fcm_strings(r.j);
	check_herald(jget(r.j, "data.herald"));
	assert_string_equal(jstr(r.j, "data.data"), "{\"car\":\"blue\",\"n\":1}");
	assert_null(jget(r.j, "token"));
	done(&r);

	/* Silent: data only. A string data is sent as itself. */
	assert_int_equal(run(&r, ALERT_EXTRA, "\"hello\"", HD_PUSH_SUB_SILENT, HD_PUSH_PAYLOAD_FCM),
			 HD_PUSH_PAYLOAD_OK);
	assert_int_equal(r.out.msg.mode, HD_PUSH_SILENT);
	assert_int_equal(json_object_size(r.j), 1);
	check_fcm_strings(r.j);
	assert_string_equal(jstr(r.j, "data.data"), "hello");
	check_herald(jget(r.j, "data.herald"));
	done(&r);

	/* Numbers, arrays, null and booleans as their JSON text. */
	static const char *const datas[] = {"12.50", "[1,{\"a\":null}]", "null", "true"};
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(run(&r, "", datas[i], HD_PUSH_SUB_SILENT, HD_PUSH_PAYLOAD_FCM),
				 HD_PUSH_PAYLOAD_OK);
		check_fcm_strings(r.j);
		assert_string_equal(jstr(r.j, "data.data"), datas[i]);
		done(&r);
	}

	assert_int_equal(run(&r, ALERT_EXTRA, "{\"car\":1}", HD_PUSH_SUB_DOORBELL,
			     HD_PUSH_PAYLOAD_FCM),
			 HD_PUSH_PAYLOAD_OK);
	assert_int_equal(r.out.msg.mode, HD_PUSH_SILENT);
	assert_int_equal(json_object_size(r.j), 1);
	assert_int_equal(json_object_size(jget(r.j, "data")), 1);
	check_herald(jget(r.j, "data.herald"));
	done(&r);
}

static void test_webpush(void **state)
{
	struct run r;
	(void)state;
	assert_int_equal(run(&r, ALERT_EXTRA, "[1,2]", HD_PUSH_SUB_ALERT, HD_PUSH_PAYLOAD_WEBPUSH),
			 HD_PUSH_PAYLOAD_OK);
	assert_string_equal(jstr(r.j, "notification.title"), "Your ride");
	assert_string_equal(jstr(r.j, "notification.body"), "is here");
	assert_int_equal(json_integer_value(jget(r.j, "notification.badge")), 3);
	assert_string_equal(jstr(r.j, "notification.sound"), "ding.caf");
	check_herald(jget(r.j, "herald"));
	assert_true(json_is_array(jget(r.j, "data")));
	done(&r);

	assert_int_equal(run(&r, ALERT_EXTRA, "[1,2]", HD_PUSH_SUB_SILENT, HD_PUSH_PAYLOAD_WEBPUSH),
			 HD_PUSH_PAYLOAD_OK);
	assert_int_equal(json_object_size(r.j), 2); /* herald, data */
	assert_true(json_is_array(jget(r.j, "data")));
	done(&r);

	assert_int_equal(run(&r, ALERT_EXTRA, "[1,2]", HD_PUSH_SUB_DOORBELL,
			     HD_PUSH_PAYLOAD_WEBPUSH),
			 HD_PUSH_PAYLOAD_OK);
	assert_int_equal(json_object_size(r.j), 1);
	check_herald(jget(r.j, "herald"));
	done(&r);
}

/* ---- data ------------------------------------------------------------- */

static void test_data_byte_for_byte(void **state)
{
	struct run r;
	(void)state;
	/* jansson would print 0.1 as 0.10000000000000001 and 1E2 as 100.0. */
	const char *data = "{\"n\":0.1,\"e\":1E2,\"s\":\"\\u00e9\\n\"}";
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(run(&r, "", data, HD_PUSH_SUB_SILENT, platforms[i]),
				 HD_PUSH_PAYLOAD_OK);
		if (platforms[i] == HD_PUSH_PAYLOAD_FCM)
			assert_string_equal(jstr(r.j, "data.data"), data);
		else
			assert_non_null(strstr(r.out.text, data));
		done(&r);
	}
	/* data_base64 travels under its own name. */
	assert_int_equal(run(&r, ",\"data_base64\":\"AAEC\"", NULL, HD_PUSH_SUB_SILENT,
			     HD_PUSH_PAYLOAD_APNS),
			 HD_PUSH_PAYLOAD_OK);
	assert_string_equal(jstr(r.j, "data_base64"), "AAEC");
	assert_null(jget(r.j, "data"));
	done(&r);
	/* No data: none sent, nothing left out. */
	assert_int_equal(run(&r, "", NULL, HD_PUSH_SUB_SILENT, HD_PUSH_PAYLOAD_WEBPUSH),
			 HD_PUSH_PAYLOAD_OK);
	assert_int_equal(json_object_size(r.j), 1);
	assert_false(r.out.data_left_out);
	done(&r);
	/* Members after "data" and white space in the stored form. */
	const char *json = "{ \"id\" : \"ev-1\" , \"type\":\"t\", \"data\" : [ 1 , \"]\\\"\" ] ,"
			   "\"subject\":\"s\",\"topic\":\"user:42\",\"offset\":17}";
	assert_int_equal(run_json(&r, json, HD_PUSH_SUB_SILENT, HD_PUSH_PAYLOAD_APNS),
			 HD_PUSH_PAYLOAD_OK);
	assert_non_null(strstr(r.out.text, ",\"data\":[ 1 , \"]\\\"\" ]}"));
	r.j = json_loadb(r.out.msg.payload, r.out.msg.payload_len, 0, NULL);
	assert_non_null(r.j);
	done(&r);
	/* An escaped key is still found (through jansson). */
	json = "{\"id\":\"ev-1\",\"type\":\"t\",\"\\u0064ata\":{\"a\":1}}";
	assert_int_equal(run_json(&r, json, HD_PUSH_SUB_SILENT, HD_PUSH_PAYLOAD_WEBPUSH),
			 HD_PUSH_PAYLOAD_OK);
	assert_non_null(strstr(r.out.text, ",\"data\":{\"a\":1}}"));
	done(&r);
}

/* The length of the payload with data a string of n 'x'. */
static size_t len_with(enum hd_push_sub_mode mode, enum hd_push_payload_platform p, size_t n,
		       bool *left_out, enum hd_push_payload_result *res)
{
	struct run r;
	char *data = malloc(n + 3);
	data[0] = '"';
	memset(data + 1, 'x', n);
	strcpy(data + 1 + n, "\"");
	*res = run(&r, ALERT_EXTRA, data, mode, p);
	free(data);
	size_t len = r.out.msg.payload_len;
	*left_out = r.out.data_left_out;
	if (*res == HD_PUSH_PAYLOAD_OK && !*left_out) {
		json_t *d = p == HD_PUSH_PAYLOAD_FCM ? jget(r.j, "data.data") : jget(r.j, "data");
		assert_int_equal(json_string_length(d), n); /* never truncated */
	}
	done(&r);
	return len;
}

static void test_size_boundary(void **state)
{
	(void)state;
	for (size_t m = 0; m < 2; m++) {
		enum hd_push_sub_mode mode = m ? HD_PUSH_SUB_SILENT : HD_PUSH_SUB_ALERT;
		for (size_t i = 0; i < 3; i++) {
			size_t max = platforms[i] == HD_PUSH_PAYLOAD_WEBPUSH ? 3993 : 4096;
			enum hd_push_payload_result res;
			bool left_out;
			size_t base = len_with(mode, platforms[i], 0, &left_out, &res);
			assert_int_equal(res, HD_PUSH_PAYLOAD_OK);
			assert_false(left_out);
			size_t n = max - base;
			assert_int_equal(len_with(mode, platforms[i], n, &left_out, &res), max);
			assert_int_equal(res, HD_PUSH_PAYLOAD_OK);
			assert_false(left_out);
			size_t without = len_with(mode, platforms[i], n + 1, &left_out, &res);
			assert_int_equal(res, HD_PUSH_PAYLOAD_OK);
			assert_true(left_out);
			assert_true(without < base);
		}
	}
}

static void test_too_big(void **state)
{
	struct run r;
	(void)state;
	/* A type of 3,950 bytes fits APNs without data but not Web Push. */
	size_t n = 3950;
	char *json = malloc(n + 200);
	strcpy(json, "{\"id\":\"1\",\"type\":\"");
	memset(json + strlen(json), 'a', n);
	strcpy(json + 18 + n, "\",\"data\":\"");
	memset(json + strlen(json), 'd', 100);
	strcpy(json + 18 + n + 10 + 100, "\"}");
	assert_int_equal(run_json(&r, json, HD_PUSH_SUB_DOORBELL, HD_PUSH_PAYLOAD_WEBPUSH),
			 HD_PUSH_PAYLOAD_TOO_BIG);
	assert_null(r.out.msg.payload);
	assert_string_equal(hd_push_payload_result_name(r.out.result), "too big");
	done(&r);
	assert_int_equal(run_json(&r, json, HD_PUSH_SUB_SILENT, HD_PUSH_PAYLOAD_APNS),
			 HD_PUSH_PAYLOAD_OK);
	assert_true(r.out.data_left_out);
	assert_true(r.out.msg.payload_len <= 4096);
	done(&r);
	free(json);
}

static void test_unreadable(void **state)
{
	struct run r;
	(void)state;
	assert_int_equal(run_json(&r, "{bad", HD_PUSH_SUB_ALERT, HD_PUSH_PAYLOAD_APNS),
			 HD_PUSH_PAYLOAD_UNREADABLE);
	done(&r);
	assert_int_equal(run_json(&r, "[1]", HD_PUSH_SUB_ALERT, HD_PUSH_PAYLOAD_FCM),
			 HD_PUSH_PAYLOAD_UNREADABLE);
	assert_string_equal(hd_push_payload_result_name(r.out.result), "unreadable");
	done(&r);
}

/* ---- overrides -------------------------------------------------------- */

static void test_mode_and_urgency(void **state)
{
	struct run r;
	(void)state;
	assert_int_equal(run(&r, ",\"pushmode\":\"silent\",\"pushurgency\":\"high\"", "1",
			     HD_PUSH_SUB_ALERT, HD_PUSH_PAYLOAD_APNS),
			 HD_PUSH_PAYLOAD_OK);
	assert_int_equal(r.out.mode, HD_PUSH_SUB_SILENT);
	assert_int_equal(r.out.msg.mode, HD_PUSH_SILENT);
	assert_int_equal(r.out.msg.urgency, HD_PUSH_URGENCY_HIGH);
	done(&r);
	assert_int_equal(run(&r, ",\"pushmode\":\"alert\",\"pushurgency\":\"low\"", "1",
			     HD_PUSH_SUB_DOORBELL, HD_PUSH_PAYLOAD_WEBPUSH),
			 HD_PUSH_PAYLOAD_OK);
	assert_int_equal(r.out.mode, HD_PUSH_SUB_ALERT);
	assert_int_equal(r.out.msg.urgency, HD_PUSH_URGENCY_LOW);
	assert_non_null(jget(r.j, "notification"));
	done(&r);
	assert_int_equal(run(&r, ",\"pushmode\":\"doorbell\"", "1", HD_PUSH_SUB_ALERT,
			     HD_PUSH_PAYLOAD_FCM),
			 HD_PUSH_PAYLOAD_OK);
	assert_int_equal(r.out.mode, HD_PUSH_SUB_DOORBELL);
	assert_null(jget(r.j, "data.data"));
	done(&r);
	/* Bad values: ignored, named, the subscription's choice kept. */
	assert_int_equal(run(&r, ",\"pushmode\":\"loud\",\"pushurgency\":\"urgent\"", "1",
			     HD_PUSH_SUB_SILENT, HD_PUSH_PAYLOAD_APNS),
			 HD_PUSH_PAYLOAD_OK);
	assert_int_equal(r.out.mode, HD_PUSH_SUB_SILENT);
	assert_int_equal(r.out.msg.urgency, HD_PUSH_URGENCY_NORMAL);
	assert_int_equal(r.out.nignored, 2);
	assert_string_equal(r.out.ignored, "pushmode: must be alert, silent or doorbell; "
					   "pushurgency: must be high, normal or low");
	done(&r);
	assert_int_equal(run(&r, ",\"pushmode\":true,\"pushurgency\":1", "1", HD_PUSH_SUB_ALERT,
			     HD_PUSH_PAYLOAD_APNS),
			 HD_PUSH_PAYLOAD_OK);
	assert_int_equal(r.out.mode, HD_PUSH_SUB_ALERT);
	assert_int_equal(r.out.nignored, 2);
	done(&r);
}

static void test_alert_texts(void **state)
{
	struct run r;
	char extra[2048];
	char big[HD_PUSH_PAYLOAD_BODY_MAX + 2];
	(void)state;
	/* No pushbody: the subject, else the type. No pushtitle: no title. */
	assert_int_equal(run(&r, ",\"subject\":\"ride 981\"", NULL, HD_PUSH_SUB_ALERT,
			     HD_PUSH_PAYLOAD_APNS),
			 HD_PUSH_PAYLOAD_OK);
	assert_string_equal(jstr(r.j, "aps.alert.body"), "ride 981");
	assert_null(jget(r.j, "aps.alert.title"));
	assert_null(jget(r.j, "aps.badge"));
	assert_null(jget(r.j, "aps.sound"));
	done(&r);
	assert_int_equal(run(&r, "", NULL, HD_PUSH_SUB_ALERT, HD_PUSH_PAYLOAD_FCM),
			 HD_PUSH_PAYLOAD_OK);
	assert_string_equal(jstr(r.j, "notification.body"), "com.example.ride.arrived");
	assert_null(jget(r.j, "android"));
	done(&r);
	/* At the bound a pushbody is used; one byte over, ignored. */
	memset(big, 'b', HD_PUSH_PAYLOAD_BODY_MAX);
	big[HD_PUSH_PAYLOAD_BODY_MAX] = '\0';
	snprintf(extra, sizeof(extra), ",\"pushbody\":\"%s\"", big);
	assert_int_equal(run(&r, extra, NULL, HD_PUSH_SUB_ALERT, HD_PUSH_PAYLOAD_WEBPUSH),
			 HD_PUSH_PAYLOAD_OK);
	assert_string_equal(jstr(r.j, "notification.body"), big);
	assert_int_equal(r.out.nignored, 0);
	done(&r);
	strcat(big, "b");
	snprintf(extra, sizeof(extra), ",\"pushbody\":\"%s\",\"pushtitle\":\"\",\"pushsound\":false",
		 big);
	assert_int_equal(run(&r, extra, NULL, HD_PUSH_SUB_ALERT, HD_PUSH_PAYLOAD_WEBPUSH),
			 HD_PUSH_PAYLOAD_OK);
	assert_string_equal(jstr(r.j, "notification.body"), "com.example.ride.arrived");
	assert_null(jget(r.j, "notification.title"));
	assert_null(jget(r.j, "notification.sound"));
	assert_int_equal(r.out.nignored, 3);
	assert_non_null(strstr(r.out.ignored, "pushbody: must be a string of 1 to 1024 bytes"));
	assert_non_null(strstr(r.out.ignored, "pushtitle: must be a string of 1 to 256 bytes"));
	assert_non_null(strstr(r.out.ignored, "pushsound: must be a string of 1 to 256 bytes"));
	done(&r);
}

static void test_badge(void **state)
{
	static const struct {
		const char *extra;
		long long badge; /* -1: none, ignored */
	} cases[] = {{",\"pushbadge\":0", 0},	       {",\"pushbadge\":\"12\"", 12},
		     {",\"pushbadge\":2147483647", 2147483647}, {",\"pushbadge\":-1", -1},
		     {",\"pushbadge\":\"x\"", -1},	       {",\"pushbadge\":\"1234567890\"", -1},
		     {",\"pushbadge\":\"\"", -1},	       {",\"pushbadge\":true", -1},
		     {",\"pushbadge\":\"-3\"", -1}};
	struct run r;
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(run(&r, cases[i].extra, NULL, HD_PUSH_SUB_ALERT,
				     HD_PUSH_PAYLOAD_APNS),
				 HD_PUSH_PAYLOAD_OK);
		json_t *b = jget(r.j, "aps.badge");
		if (cases[i].badge < 0) {
			assert_null(b);
			assert_int_equal(r.out.nignored, 1);
			assert_non_null(strstr(r.out.ignored, "pushbadge: must be a whole number"));
		} else {
			assert_int_equal(json_integer_value(b), cases[i].badge);
			assert_int_equal(r.out.nignored, 0);
		}
		done(&r);
	}
}

static void test_collapse(void **state)
{
	struct run r;
	char extra[256];
	char id[HD_PUSH_PAYLOAD_COLLAPSE_MAX + 2];
	(void)state;
	assert_int_equal(run(&r, ",\"subject\":\"ride-981\",\"pushcollapse\":\"eta\"", NULL,
			     HD_PUSH_SUB_SILENT, HD_PUSH_PAYLOAD_APNS),
			 HD_PUSH_PAYLOAD_OK);
	assert_string_equal(r.out.msg.collapse_id, "eta");
	done(&r);
	assert_int_equal(run(&r, ",\"subject\":\"ride-981\"", NULL, HD_PUSH_SUB_SILENT,
			     HD_PUSH_PAYLOAD_FCM),
			 HD_PUSH_PAYLOAD_OK);
	assert_string_equal(r.out.msg.collapse_id, "ride-981");
	done(&r);
	assert_int_equal(run(&r, ",\"pushcollapse\":981", NULL, HD_PUSH_SUB_SILENT,
			     HD_PUSH_PAYLOAD_WEBPUSH),
			 HD_PUSH_PAYLOAD_OK);
	assert_string_equal(r.out.msg.collapse_id, "981");
	done(&r);
	assert_int_equal(run(&r, "", NULL, HD_PUSH_SUB_SILENT, HD_PUSH_PAYLOAD_WEBPUSH),
			 HD_PUSH_PAYLOAD_OK);
	assert_null(r.out.msg.collapse_id);
	done(&r);
	/* 64 bytes pass; 65 are ignored (then the subject), a long subject is none. */
	memset(id, 'c', HD_PUSH_PAYLOAD_COLLAPSE_MAX);
	id[HD_PUSH_PAYLOAD_COLLAPSE_MAX] = '\0';
	snprintf(extra, sizeof(extra), ",\"pushcollapse\":\"%s\"", id);
	assert_int_equal(run(&r, extra, NULL, HD_PUSH_SUB_SILENT, HD_PUSH_PAYLOAD_APNS),
			 HD_PUSH_PAYLOAD_OK);
	assert_string_equal(r.out.msg.collapse_id, id);
	done(&r);
	strcat(id, "c");
	snprintf(extra, sizeof(extra), ",\"pushcollapse\":\"%s\",\"subject\":\"s1\"", id);
	assert_int_equal(run(&r, extra, NULL, HD_PUSH_SUB_SILENT, HD_PUSH_PAYLOAD_APNS),
			 HD_PUSH_PAYLOAD_OK);
	assert_string_equal(r.out.msg.collapse_id, "s1");
	assert_int_equal(r.out.nignored, 1);
	assert_non_null(strstr(r.out.ignored, "pushcollapse: must be a string of 1 to 64 bytes"));
	done(&r);
	snprintf(extra, sizeof(extra), ",\"subject\":\"%s\"", id);
	assert_int_equal(run(&r, extra, NULL, HD_PUSH_SUB_SILENT, HD_PUSH_PAYLOAD_APNS),
			 HD_PUSH_PAYLOAD_OK);
	assert_null(r.out.msg.collapse_id);
	assert_int_equal(r.out.nignored, 0);
	done(&r);
}

static void test_ignored_note_bounded(void **state)
{
	struct run r;
	(void)state;
	assert_int_equal(run(&r,
			     ",\"pushmode\":1,\"pushurgency\":1,\"pushcollapse\":true,"
			     "\"pushtitle\":1,\"pushbody\":1,\"pushbadge\":\"z\",\"pushsound\":1",
			     NULL, HD_PUSH_SUB_ALERT, HD_PUSH_PAYLOAD_APNS),
			 HD_PUSH_PAYLOAD_OK);
	assert_int_equal(r.out.nignored, 7);
	assert_true(strlen(r.out.ignored) < sizeof(r.out.ignored));
	assert_non_null(strstr(r.out.ignored, "pushmode: "));
	done(&r);
}

/* ---- expiry ----------------------------------------------------------- */

static void test_expiry(void **state)
{
	struct run r;
	(void)state;
	/* None: no expiration. */
	assert_int_equal(run(&r, "", NULL, HD_PUSH_SUB_SILENT, HD_PUSH_PAYLOAD_APNS),
			 HD_PUSH_PAYLOAD_OK);
	assert_int_equal(r.out.msg.expiration, 0);
	/* The event's own, rounded up to a second. */
	r.ev.expires_ms = NOW + 1500;
	assert_int_equal(rerun(&r), HD_PUSH_PAYLOAD_OK);
	assert_int_equal(r.out.msg.expiration, NOW / 1000 + 2);
	/* Expired at now: skipped, no message. */
	r.ev.expires_ms = NOW;
	assert_int_equal(rerun(&r), HD_PUSH_PAYLOAD_EXPIRED);
	assert_null(r.out.msg.payload);
	assert_string_equal(hd_push_payload_result_name(r.out.result), "skip: expired");
	r.ev.expires_ms = NOW + 1;
	assert_int_equal(rerun(&r), HD_PUSH_PAYLOAD_OK);
	assert_int_equal(r.out.msg.expiration, NOW / 1000 + 1);
	/* The subscription's ttl counts from when the event was stored. */
	r.ev.expires_ms = 0;
	r.in.ttl_ms = 60000;
	assert_int_equal(rerun(&r), HD_PUSH_PAYLOAD_OK);
	assert_int_equal(r.out.msg.expiration, (NOW - 1000 + 60000) / 1000);
	r.in.ttl_ms = 1000;
	assert_int_equal(rerun(&r), HD_PUSH_PAYLOAD_EXPIRED);
	r.in.ttl_ms = 1001;
	assert_int_equal(rerun(&r), HD_PUSH_PAYLOAD_OK);
	/* The earlier of the two wins. */
	r.in.ttl_ms = 60000;
	r.ev.expires_ms = NOW + 5000;
	assert_int_equal(rerun(&r), HD_PUSH_PAYLOAD_OK);
	assert_int_equal(r.out.msg.expiration, NOW / 1000 + 5);
	r.ev.expires_ms = NOW + 600000;
	assert_int_equal(rerun(&r), HD_PUSH_PAYLOAD_OK);
	assert_int_equal(r.out.msg.expiration, (NOW + 59000) / 1000);
	r.ev.expires_ms = NOW - 1;
	assert_int_equal(rerun(&r), HD_PUSH_PAYLOAD_EXPIRED);
	done(&r);
	for (size_t i = 0; i < 3; i++) {
		char *json = event_json("", NULL);
		memset(&r, 0, sizeof(r));
		assert_int_equal(run_json(&r, json, HD_PUSH_SUB_ALERT, platforms[i]),
				 HD_PUSH_PAYLOAD_OK);
		r.ev.expires_ms = NOW - 5;
		assert_int_equal(rerun(&r), HD_PUSH_PAYLOAD_EXPIRED);
		done(&r);
		free(json);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_apns),
		cmocka_unit_test(test_fcm),
		cmocka_unit_test(test_webpush),
		cmocka_unit_test(test_data_byte_for_byte),
		cmocka_unit_test(test_size_boundary),
		cmocka_unit_test(test_too_big),
		cmocka_unit_test(test_unreadable),
		cmocka_unit_test(test_mode_and_urgency),
		cmocka_unit_test(test_alert_texts),
		cmocka_unit_test(test_badge),
		cmocka_unit_test(test_collapse),
		cmocka_unit_test(test_ignored_note_bounded),
		cmocka_unit_test(test_expiry),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
