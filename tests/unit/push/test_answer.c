/*
 * Unit tests for push/answer.c: each service's documented answers (APNs,
 * FCM HTTP v1, Web Push) and transport failures map to the verdicts of
 * answer.h's tables, with Retry-After and the service's reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/err.h"
#include "push/answer.h"

#include <string.h>

typedef void (*classify_fn)(int, const char *, size_t, int64_t, struct hd_push_verdict *);

struct row {
	classify_fn fn;
	int status;
	const char *body;
	int64_t retry_after_ms;
	enum hd_push_verdict_kind kind;
	bool wide;
	const char *reason;
};

#define FCM_ERR(code, st, ec)                                                                  \
	"{\"error\":{\"code\":" #code ",\"message\":\"m\",\"status\":\"" st "\",\"details\":[{" \
	"\"@type\":\"type.googleapis.com/google.firebase.fcm.v1.FcmError\",\"errorCode\":\"" ec \
	"\"}]}}"

static const struct row rows[] = {
	{hd_answer_apns, 200, "", -1, HD_PUSH_OK, false, ""},
	{hd_answer_apns, 410, "{\"reason\":\"Unregistered\",\"timestamp\":1}", -1, HD_PUSH_INVALID, false, "Unregistered"},
	{hd_answer_apns, 400, "{\"reason\":\"BadDeviceToken\"}", -1, HD_PUSH_INVALID, false, "BadDeviceToken"},
	{hd_answer_apns, 400, "{\"reason\":\"DeviceTokenNotForTopic\"}", -1, HD_PUSH_INVALID, false, "DeviceTokenNotForTopic"},
	{hd_answer_apns, 400, "{\"reason\":\"BadCollapseId\"}", -1, HD_PUSH_REFUSED, false, "BadCollapseId"},
	{hd_answer_apns, 413, "{\"reason\":\"PayloadTooLarge\"}", -1, HD_PUSH_REFUSED, false, "PayloadTooLarge"},
	{hd_answer_apns, 403, "{\"reason\":\"ExpiredProviderToken\"}", -1, HD_PUSH_AUTH, false, "ExpiredProviderToken"},
	{hd_answer_apns, 403, "{\"reason\":\"InvalidProviderToken\"}", -1, HD_PUSH_AUTH, false, "InvalidProviderToken"},
	{hd_answer_apns, 429, "{\"reason\":\"TooManyRequests\"}", 3000, HD_PUSH_THROTTLED, false, "TooManyRequests"},
	{hd_answer_apns, 429, "{\"reason\":\"TooManyProviderTokenUpdates\"}", -1, HD_PUSH_THROTTLED, true, "TooManyProviderTokenUpdates"},
	{hd_answer_apns, 500, "{\"reason\":\"InternalServerError\"}", -1, HD_PUSH_RETRY, false, "InternalServerError"},
	{hd_answer_apns, 503, "not json", 5000, HD_PUSH_RETRY, false, "HTTP 503"},
	{hd_answer_fcm, 200, "{\"name\":\"projects/p/messages/1\"}", -1, HD_PUSH_OK, false, ""},
	{hd_answer_fcm, 404, FCM_ERR(404, "NOT_FOUND", "UNREGISTERED"), -1, HD_PUSH_INVALID, false, "UNREGISTERED"},
	{hd_answer_fcm, 403, FCM_ERR(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH"), -1, HD_PUSH_INVALID, false, "SENDER_ID_MISMATCH"},
	{hd_answer_fcm, 400, "{\"error\":{\"code\":400,\"message\":\"The registration token is not a valid FCM registration token\",\"status\":\"INVALID_ARGUMENT\"}}", -1, HD_PUSH_INVALID, false, "INVALID_ARGUMENT"},
	{hd_answer_fcm, 400, "{\"error\":{\"code\":400,\"message\":\"Invalid value\",\"status\":\"INVALID_ARGUMENT\",\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.BadRequest\",\"fieldViolations\":[{\"field\":\"message.token\"}]}]}}", -1, HD_PUSH_INVALID, false, "INVALID_ARGUMENT"},
	{hd_answer_fcm, 400, "{\"error\":{\"code\":400,\"message\":\"Invalid JSON payload\",\"status\":\"INVALID_ARGUMENT\"}}", -1, HD_PUSH_REFUSED, false, "INVALID_ARGUMENT"},
	{hd_answer_fcm, 401, "{\"error\":{\"code\":401,\"status\":\"UNAUTHENTICATED\"}}", -1, HD_PUSH_AUTH, false, "UNAUTHENTICATED"},
	{hd_answer_fcm, 401, FCM_ERR(401, "UNAUTHENTICATED", "THIRD_PARTY_AUTH_ERROR"), -1, HD_PUSH_REFUSED, false, "THIRD_PARTY_AUTH_ERROR"},
	{hd_answer_fcm, 429, FCM_ERR(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"), 7000, HD_PUSH_THROTTLED, true, "QUOTA_EXCEEDED"},
	{hd_answer_fcm, 503, FCM_ERR(503, "UNAVAILABLE", "UNAVAILABLE"), 2000, HD_PUSH_RETRY, false, "UNAVAILABLE"},
	{hd_answer_fcm, 500, "{\"error\":{\"code\":500,\"status\":\"INTERNAL\"}}", -1, HD_PUSH_RETRY, false, "INTERNAL"},
	{hd_answer_webpush, 201, "", -1, HD_PUSH_OK, false, ""},
	{hd_answer_webpush, 410, "{\"reason\":\"Push subscription has unsubscribed or expired.\"}", -1, HD_PUSH_INVALID, false, "Push subscription has unsubscribed or expired."},
	{hd_answer_webpush, 404, "", -1, HD_PUSH_INVALID, false, "HTTP 404"},
	{hd_answer_webpush, 403, "{\"reason\":\"BadJwtToken\"}", -1, HD_PUSH_AUTH, false, "BadJwtToken"},
	{hd_answer_webpush, 429, "", 4000, HD_PUSH_THROTTLED, false, "HTTP 429"},
	{hd_answer_webpush, 400, "{\"error\":{\"message\":\"TTL header is invalid\"}}", -1, HD_PUSH_REFUSED, false, "TTL header is invalid"},
	{hd_answer_webpush, 502, "<html>", -1, HD_PUSH_RETRY, false, "HTTP 502"},
};

static void test_table(void **state)
{
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		struct hd_push_verdict v;
		r->fn(r->status, r->body, strlen(r->body), r->retry_after_ms, &v);
		if (v.kind != r->kind || strcmp(v.reason, r->reason) != 0)
			fail_msg("row %zu (status %d): kind %s reason '%s', want %s '%s'", i, r->status,
				 hd_provider_verdict_name(v.kind), v.reason,
				 hd_provider_verdict_name(r->kind), r->reason);
		assert_int_equal(v.status, r->status);
		assert_int_equal(v.provider_wide, r->wide);
		assert_true(v.count_attempt);
		bool waits = v.kind == HD_PUSH_RETRY || v.kind == HD_PUSH_THROTTLED;
		assert_int_equal(v.after_ms, waits ? r->retry_after_ms : -1);
	}
}

static void test_transport(void **state)
{
	struct hd_push_verdict v;

	hd_answer_transport(HD_EUNAVAIL, true, "HTTP/2 stream refused", &v);
	assert_int_equal(v.kind, HD_PUSH_RETRY);
	assert_false(v.count_attempt);
	assert_int_equal(v.after_ms, 0);
	assert_string_equal(v.reason, "HTTP/2 stream refused");
	hd_answer_transport(HD_ETIMEOUT, false, "", &v);
	assert_int_equal(v.kind, HD_PUSH_RETRY);
	assert_true(v.count_attempt);
	assert_int_equal(v.after_ms, -1);
	assert_true(v.reason[0] != '\0');
	hd_answer_transport(HD_EFORBIDDEN, false, "destination 10.0.0.1 is private", &v);
	assert_int_equal(v.kind, HD_PUSH_REFUSED);
	assert_int_equal(v.status, 0);
}

static void test_reason_sanitised(void **state)
{
	struct hd_push_verdict v;
	char body[600];

	hd_answer_apns(400, "{\"reason\":\"a\\nb\\u00e9\"}", 21, -1, &v);
	for (const char *c = v.reason; *c; c++)
		assert_true(*c >= ' ' && *c < 0x7f);
	memset(body, 0, sizeof(body));
	strcpy(body, "{\"reason\":\"");
	memset(body + 11, 'x', 400);
	strcpy(body + 411, "\"}");
	hd_answer_apns(400, body, strlen(body), -1, &v);
	assert_int_equal(strlen(v.reason), HD_PUSH_REASON_MAX - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_transport),
		cmocka_unit_test(test_reason_sanitised),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
