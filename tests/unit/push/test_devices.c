/*
 * Unit tests for the pure parts of push/devices.c: the registration body
 * of each platform (accepted forms, every refusal naming its member), the
 * device id syntax, the durable record (round trip, refused records) and
 * the answer's form.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "push/devices.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* RFC 8291 Appendix A's user agent keys: a real P-256 point and auth secret. */
#define P256DH "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
#define AUTH "BTBZMqHH6r4Tts7J_aSIgg"
#define KEYS "\"keys\":{\"p256dh\":\"" P256DH "\",\"auth\":\"" AUTH "\"}"

static struct hd_device *parse_ok(const char *body, bool allow_private)
{
	struct hd_devices_parse_opts o = {.allow_private = allow_private};
	struct hd_device *dev = NULL;
	struct hd_error err = {0};
	int rc = hd_devices_parse(body, strlen(body), &o, &dev, &err);
	if (rc)
		fail_msg("refused %s: %s", body, err.msg);
	assert_non_null(dev);
	return dev;
}

/* Refused with HD_EINVAL (or code) and a message containing words. */
static void parse_bad(const char *body, const char *words, bool allow_private)
{
	struct hd_devices_parse_opts o = {.allow_private = allow_private};
	struct hd_device *dev = (struct hd_device *)1;
	struct hd_error err = {0};
	int rc = hd_devices_parse(body, strlen(body), &o, &dev, &err);
	if (rc == 0)
		fail_msg("accepted %s", body);
	assert_int_equal(rc, err.code);
	assert_null(dev);
	if (!strstr(err.msg, words))
		fail_msg("%s: message '%s' lacks '%s'", body, err.msg, words);
}

static void test_apns(void **state)
{
	(void)state;
	struct hd_device *d = parse_ok("{\"platform\":\"apns\",\"token\":\"ABCDEF0123456789\","
				       "\"topics\":[\"rides:981\",\"news\",\"rides:981\"]}", false);
	assert_int_equal(d->platform, HD_DEVICE_APNS);
	assert_string_equal(d->token, "abcdef0123456789"); /* one spelling */
	assert_string_equal(d->environment, "production");
	assert_int_equal(d->ntopics, 2);
	assert_string_equal(d->topics[0], "rides:981");
	assert_string_equal(d->topics[1], "news");
	assert_int_equal(d->state, HD_DEVICE_ACTIVE);
	assert_null(d->p256dh);
	hd_device_free(d);
	d = parse_ok("{\"platform\":\"apns\",\"token\":\"00112233445566778899\",\"environment\":\"sandbox\"}",
		     false);
	assert_string_equal(d->environment, "sandbox");
	assert_int_equal(d->ntopics, 0);
	hd_device_free(d);

	parse_bad("{\"platform\":\"apns\",\"token\":\"0011223344556677889\"}", "hex", false); /* odd */
	parse_bad("{\"platform\":\"apns\",\"token\":\"00112233\"}", "hex", false);            /* short */
	parse_bad("{\"platform\":\"apns\",\"token\":\"zz112233445566778899\"}", "hex", false);
	parse_bad("{\"platform\":\"apns\"}", "'token' is required", false);
	parse_bad("{\"platform\":\"apns\",\"token\":\"00112233445566778899\",\"environment\":\"dev\"}",
		  "production or sandbox", false);
	parse_bad("{\"platform\":\"apns\",\"subscription\":{}}", "'subscription' is for webpush", false);
}

static void test_fcm(void **state)
{
	(void)state;
	struct hd_device *d = parse_ok("{\"platform\":\"fcm\",\"token\":\"fZ1:APA91b-x_y\"}", false);
	assert_int_equal(d->platform, HD_DEVICE_FCM);
	assert_string_equal(d->token, "fZ1:APA91b-x_y");
	assert_string_equal(d->environment, "");
	hd_device_free(d);

	char big[HD_DEVICE_FCM_TOKEN_MAX + 64];
	snprintf(big, sizeof(big), "{\"platform\":\"fcm\",\"token\":\"%0*d\"}", HD_DEVICE_FCM_TOKEN_MAX + 1, 0);
	parse_bad(big, "'token' is longer", false);
	parse_bad("{\"platform\":\"fcm\",\"token\":\"\"}", "FCM registration token", false);
	parse_bad("{\"platform\":\"fcm\",\"token\":\"a\\tb\"}", "FCM registration token", false);
	parse_bad("{\"platform\":\"fcm\",\"token\":\"a\\u0000b\"}", "not JSON", false);
	parse_bad("{\"platform\":\"fcm\",\"token\":[]}", "'token' must be a string", false);
	parse_bad("{\"platform\":\"fcm\",\"token\":\"x\",\"environment\":\"sandbox\"}", "apns only", false);
}

static void test_webpush(void **state)
{
	(void)state;
	struct hd_device *d = parse_ok("{\"platform\":\"webpush\",\"subscription\":{\"endpoint\":"
				       "\"https://updates.push.services.mozilla.com/wpush/v2/gAAA\","
				       "\"expirationTime\":null," KEYS "}}", false);
	assert_int_equal(d->platform, HD_DEVICE_WEBPUSH);
	assert_string_equal(d->token, "https://updates.push.services.mozilla.com/wpush/v2/gAAA");
	assert_string_equal(d->p256dh, P256DH);
	assert_string_equal(d->auth, AUTH);
	hd_device_free(d);

	/* Plain http only on loopback and only when allowed. */
	const char *loop[] = {"http://127.0.0.1:8080/p", "http://localhost/p", "http://[::1]:9/p"};
	for (size_t i = 0; i < 3; i++) {
		char body[512];
		snprintf(body, sizeof(body), "{\"platform\":\"webpush\",\"subscription\":{\"endpoint\":\"%s\","
			 KEYS "}}", loop[i]);
		hd_device_free(parse_ok(body, true));
		parse_bad(body, "https://", false);
	}
	parse_bad("{\"platform\":\"webpush\",\"subscription\":{\"endpoint\":\"http://10.1.2.3/p\"," KEYS "}}",
		  "loopback", true);
	parse_bad("{\"platform\":\"webpush\",\"subscription\":{\"endpoint\":\"http://127.0.0.1.evil/p\","
		  KEYS "}}", "https://", true);
	parse_bad("{\"platform\":\"webpush\",\"subscription\":{\"endpoint\":\"ftp://x/p\"," KEYS "}}",
		  "'subscription.endpoint'", false);
	parse_bad("{\"platform\":\"webpush\",\"subscription\":{" KEYS "}}", "'subscription.endpoint' is required",
		  false);
	parse_bad("{\"platform\":\"webpush\",\"subscription\":{\"endpoint\":\"https://p.example/x\"}}",
		  "'subscription.keys' is required", false);
	parse_bad("{\"platform\":\"webpush\",\"subscription\":{\"endpoint\":\"https://p.example/x\","
		  "\"keys\":{\"p256dh\":\"" P256DH "\",\"auth\":\"AAAA\"}}}", "'subscription.keys.auth'", false);
	parse_bad("{\"platform\":\"webpush\",\"subscription\":{\"endpoint\":\"https://p.example/x\","
		  "\"keys\":{\"p256dh\":\"" AUTH "\",\"auth\":\"" AUTH "\"}}}", "'subscription.keys.p256dh'", false);
	parse_bad("{\"platform\":\"webpush\",\"subscription\":{\"endpoint\":\"https://p.example/x\","
		  "\"keys\":{\"p256dh\":\"" P256DH "\",\"auth\":\"" AUTH "\",\"x\":1}}}",
		  "unknown member 'subscription.keys.x'", false);
	parse_bad("{\"platform\":\"webpush\",\"subscription\":{\"endpoint\":\"https://p.example/x\","
		  "\"expirationTime\":\"soon\"," KEYS "}}", "expirationTime", false);
	parse_bad("{\"platform\":\"webpush\",\"subscription\":{\"endpoint\":\"https://p.example/x\","
		  "\"extra\":1," KEYS "}}", "unknown member 'subscription.extra'", false);
	parse_bad("{\"platform\":\"webpush\",\"token\":\"x\"}", "not for webpush", false);
	parse_bad("{\"platform\":\"webpush\"}", "'subscription' is required", false);
}

static void test_common_refusals(void **state)
{
	(void)state;
	parse_bad("", "not JSON", false);
	parse_bad("[]", "JSON object", false);
	parse_bad("{\"platform\":\"fcm\",\"token\":\"a\",\"token\":\"b\"}", "duplicate", false);
	parse_bad("{\"platform\":\"fcm\",\"token\":\"a\",\"colour\":1}", "unknown member 'colour'", false);
	parse_bad("{\"token\":\"a\"}", "'platform' is required", false);
	parse_bad("{\"platform\":\"APNS\",\"token\":\"a\"}", "'platform' is required", false);
	parse_bad("{\"platform\":1,\"token\":\"a\"}", "'platform' must be a string", false);
	parse_bad("{\"platform\":\"fcm\",\"token\":\"a\",\"topics\":{}}", "'topics'", false);
	parse_bad("{\"platform\":\"fcm\",\"token\":\"a\",\"topics\":[\"ok\",3]}", "'topics[1]'", false);
	parse_bad("{\"platform\":\"fcm\",\"token\":\"a\",\"topics\":[\"a b\"]}", "'topics[0]'", false);

	char body[2048] = "{\"platform\":\"fcm\",\"token\":\"a\",\"topics\":[";
	for (int i = 0; i <= HD_DEVICE_TOPICS_MAX; i++)
		snprintf(body + strlen(body), sizeof(body) - strlen(body), "%s\"t%d\"", i ? "," : "", i);
	strcat(body, "]}");
	parse_bad(body, "at most", false);

	struct hd_devices_parse_opts o = {0};
	struct hd_device *dev;
	struct hd_error err = {0};
	char *huge = calloc(1, HD_DEVICE_BODY_MAX + 2);
	memset(huge, ' ', HD_DEVICE_BODY_MAX + 1);
	assert_int_equal(hd_devices_parse(huge, HD_DEVICE_BODY_MAX + 1, &o, &dev, &err), HD_ETOOBIG);
	free(huge);
}

static void test_ids(void **state)
{
	(void)state;
	assert_true(hd_devices_id_ok("phone", 5));
	assert_true(hd_devices_id_ok("A-z_0.9", 7));
	assert_false(hd_devices_id_ok("", 0));
	assert_false(hd_devices_id_ok("a b", 3));
	assert_false(hd_devices_id_ok("a/b", 3));
	assert_false(hd_devices_id_ok("a\nb", 3));
	char id[HD_DEVICE_ID_MAX + 2];
	memset(id, 'x', sizeof(id));
	assert_true(hd_devices_id_ok(id, HD_DEVICE_ID_MAX));
	assert_false(hd_devices_id_ok(id, HD_DEVICE_ID_MAX + 1));
}

static void test_record_round_trip(void **state)
{
	(void)state;
	const char *bodies[] = {
		"{\"platform\":\"apns\",\"token\":\"00112233445566778899\",\"environment\":\"sandbox\","
		"\"topics\":[\"rides:1\"]}",
		"{\"platform\":\"fcm\",\"token\":\"tok\"}",
		"{\"platform\":\"webpush\",\"subscription\":{\"endpoint\":\"https://p.example/x\"," KEYS "}}",
	};
	for (size_t i = 0; i < 3; i++) {
		struct hd_device *d = parse_ok(bodies[i], false), *back;
		snprintf(d->user, sizeof(d->user), "42");
		snprintf(d->id, sizeof(d->id), "phone");
		d->state = HD_DEVICE_INVALID;
		snprintf(d->invalid_reason, sizeof(d->invalid_reason), "Unregistered");
		d->last_success_ms = 1000;
		d->last_failure.time_ms = 2000;
		d->last_failure.status = 410;
		snprintf(d->last_failure.reason, sizeof(d->last_failure.reason), "Unregistered");
		d->created_ms = 500;
		d->updated_ms = 600;
		char *rec = hd_devices_record(d);
		assert_int_equal(hd_devices_record_parse("42\nphone", rec, &back), 0);
		char *again = hd_devices_record(back);
		assert_string_equal(rec, again);
		assert_string_equal(back->user, "42");
		assert_string_equal(back->id, "phone");
		assert_int_equal(back->state, HD_DEVICE_INVALID);
		assert_int_equal(back->last_failure.status, 410);
		assert_int_equal(back->created_ms, 500);

		json_t *j = hd_devices_json(back);
		assert_string_equal(json_string_value(json_object_get(j, "state")), "invalid");
		assert_string_equal(json_string_value(json_object_get(j, "invalid_reason")), "Unregistered");
		assert_string_equal(json_string_value(json_object_get(j, "last_success")),
				    "1970-01-01T00:00:01.000Z");
		json_t *f = json_object_get(j, "last_failure");
		assert_int_equal(json_integer_value(json_object_get(f, "status")), 410);
		json_decref(j);
		free(rec);
		free(again);
		hd_device_free(d);
		hd_device_free(back);
	}
}

static void test_record_refused(void **state)
{
	(void)state;
	struct hd_device *d;
	const char *good = "{\"platform\":\"fcm\",\"token\":\"t\",\"topics\":[],\"state\":\"active\","
			   "\"invalid_reason\":\"\",\"last_success\":0,\"last_failure\":{\"time\":0,"
			   "\"status\":0,\"reason\":\"\"},\"created\":1,\"updated\":1}";
	assert_int_equal(hd_devices_record_parse("7\nd", good, &d), 0);
	json_t *j = hd_devices_json(d);
	assert_true(json_is_null(json_object_get(j, "last_success")));
	assert_true(json_is_null(json_object_get(j, "last_failure")));
	assert_true(json_is_null(json_object_get(j, "invalid_reason")));
	json_decref(j);
	hd_device_free(d);
	assert_int_equal(hd_devices_record_parse("no-newline", good, &d), HD_EINVAL);
	assert_null(d);
	assert_int_equal(hd_devices_record_parse("7\nbad id", good, &d), HD_EINVAL);
	assert_int_equal(hd_devices_record_parse("7\nd", "{}", &d), HD_EINVAL);
	assert_int_equal(hd_devices_record_parse("7\nd", "not json", &d), HD_EINVAL);
	assert_int_equal(hd_devices_record_parse("7\nd", "{\"platform\":\"fcm\",\"token\":\"t\"}", &d),
			 HD_EINVAL);
	assert_null(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_apns),
		cmocka_unit_test(test_fcm),
		cmocka_unit_test(test_webpush),
		cmocka_unit_test(test_common_refusals),
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_record_round_trip),
		cmocka_unit_test(test_record_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
