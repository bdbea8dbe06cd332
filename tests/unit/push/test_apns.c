/*
 * Unit tests for push/apns.c against a real stand-in: tests/js/apns_mock.js
 * (Node's http2 over TLS with a certificate made here, verifying each ES256
 * provider token against the public key of the .p8 made here, answering by
 * device token). Checks the verdict of every answer, one provider token
 * and one connection for a burst, the silent push's headers, the renewal
 * on 403 and its floor, refused streams and GOAWAY, and the startup errors.
 * The live tests skip when node is not on PATH.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/err.h"
#include "core/metrics.h"
#include "push/apns.h"
#include "../mock_proc.h"
#include "provider_run.h"

#define KEY_ID "ABC123DEFG"
#define TEAM_ID "DEF123GHIJ"
#define TOPIC "com.example.app"
#define OK_TOKEN "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
#define BURST 100

struct fixture {
	char dir[64];
	char ca[128], p8[128], other_p8[128];
	struct mock_proc mock;
	int port;
	char url[64];
	uv_loop_t loop;
};

static struct fixture fx;

static int setup(void **state)
{
	memset(&fx, 0, sizeof(fx));
	assert_true(mock_tmpdir(fx.dir));
	snprintf(fx.p8, sizeof(fx.p8), "%s/AuthKey.p8", fx.dir);
	snprintf(fx.other_p8, sizeof(fx.other_p8), "%s/Other.p8", fx.dir);
	assert_true(mock_sh("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 "
			    "-out '%s' 2>/dev/null%s", fx.p8, ""));
	assert_true(mock_sh("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 "
			    "-out '%s' 2>/dev/null%s", fx.other_p8, ""));
	char pub[128];
	snprintf(pub, sizeof(pub), "%s/pub.pem", fx.dir);
	assert_true(mock_sh("openssl pkey -in '%s' -pubout -out '%s' 2>/dev/null", fx.p8, pub));
	uv_loop_init(&fx.loop);
	*state = &fx;
	if (!mock_node_available())
		return 0;
	assert_true(mock_make_cert(fx.dir));
	char cert[128], key[128];
	snprintf(cert, sizeof(cert), "%s/cert.pem", fx.dir);
	snprintf(key, sizeof(key), "%s/cert.key", fx.dir);
	snprintf(fx.ca, sizeof(fx.ca), "%s", cert);
	const char *args[] = {cert, key, pub, KEY_ID, TEAM_ID, TOPIC, NULL};
	assert_true(mock_start(&fx.mock, "apns_mock.js", args));
	assert_int_equal(sscanf(fx.mock.line, "ready %d", &fx.port), 1);
	snprintf(fx.url, sizeof(fx.url), "https://127.0.0.1:%d", fx.port);
	return 0;
}

static int teardown(void **state)
{
	mock_stop(&fx.mock);
	mock_rmdir(fx.dir);
	uv_loop_close(&fx.loop);
	return 0;
}

static struct hd_apns_opts opts(const char *p8, uint32_t renew_min_ms)
{
	return (struct hd_apns_opts){
		.base = {.ca_file = fx.ca, .allow_private = true, .url = fx.url},
		.key_file = p8, .key_id = KEY_ID, .team_id = TEAM_ID, .topic = TOPIC,
		.token_renew_min_ms = renew_min_ms,
	};
}

static struct hd_push_provider *apns(const char *p8, uint32_t renew_min_ms)
{
	struct hd_apns_opts o = opts(p8, renew_min_ms);
	struct hd_push_provider *p = NULL;
	struct hd_error err = {0};

	assert_int_equal(hd_apns_new(&fx.loop, &o, &p, &err), 0);
	return p;
}

static const struct hd_push_message alert = {
	.mode = HD_PUSH_ALERT, .payload = "{\"aps\":{\"alert\":\"hi\"}}", .payload_len = 22,
	.collapse_id = "rides:981", .expiration = 4102444800,
};

static json_t *stats(void)
{
	char url[96];

	snprintf(url, sizeof(url), "%s/stats", fx.url);
	json_t *j = mock_json(url, fx.ca, NULL);
	assert_non_null(j);
	return j;
}

static void expect(struct hd_push_provider *p, const char *token, const struct hd_push_message *m,
		   enum hd_push_verdict_kind kind, const char *reason)
{
	struct sent s;
	struct hd_push_target to = {.token = token};

	send_one(&fx.loop, p, &to, m, &s);
	if (s.s.verdict.kind != kind || strcmp(s.s.verdict.reason, reason) != 0)
		fail_msg("token %s: %s '%s', want %s '%s'", token,
			 hd_provider_verdict_name(s.s.verdict.kind), s.s.verdict.reason,
			 hd_provider_verdict_name(kind), reason);
}

static void test_answers(void **state)
{
	if (!mock_node_available())
		skip();
	struct hd_push_provider *p = apns(fx.p8, 0);
	struct sent s;
	struct hd_push_target to = {.token = OK_TOKEN};

	send_one(&fx.loop, p, &to, &alert, &s);
	assert_int_equal(s.s.verdict.kind, HD_PUSH_OK);
	assert_int_equal(s.s.verdict.status, 200);
	assert_int_equal(strlen(s.s.id), 36); /* the apns-id, a UUID */
	json_t *st = stats();
	json_t *last = json_object_get(st, "last");
	json_t *h = json_object_get(last, "headers");
	assert_string_equal(json_string_value(json_object_get(h, "apns-push-type")), "alert");
	assert_string_equal(json_string_value(json_object_get(h, "apns-priority")), "10");
	assert_string_equal(json_string_value(json_object_get(h, "apns-collapse-id")), "rides:981");
	assert_string_equal(json_string_value(json_object_get(h, "apns-expiration")), "4102444800");
	assert_string_equal(json_string_value(json_object_get(last, "body")), alert.payload);
	json_decref(st);

	expect(p, "410" OK_TOKEN, &alert, HD_PUSH_INVALID, "Unregistered");
	expect(p, "400b" OK_TOKEN, &alert, HD_PUSH_INVALID, "BadDeviceToken");
	expect(p, "400d" OK_TOKEN, &alert, HD_PUSH_INVALID, "DeviceTokenNotForTopic");
	expect(p, "500" OK_TOKEN, &alert, HD_PUSH_RETRY, "InternalServerError");
	to.token = "429" OK_TOKEN;
	send_one(&fx.loop, p, &to, &alert, &s);
	assert_int_equal(s.s.verdict.kind, HD_PUSH_THROTTLED);
	assert_false(s.s.verdict.provider_wide);
	assert_int_equal(s.s.verdict.after_ms, 3000);

	/* Silent: background with priority 5 (the mock refuses anything else). */
	struct hd_push_message silent = alert;
	silent.mode = HD_PUSH_SILENT;
	silent.payload = "{\"aps\":{\"content-available\":1}}";
	silent.payload_len = strlen(silent.payload);
	expect(p, OK_TOKEN, &silent, HD_PUSH_OK, "");
	st = stats();
	h = json_object_get(json_object_get(st, "last"), "headers");
	assert_string_equal(json_string_value(json_object_get(h, "apns-push-type")), "background");
	assert_string_equal(json_string_value(json_object_get(h, "apns-priority")), "5");
	/* Every request carried the one provider token signed at start. */
	assert_int_equal(json_array_size(json_object_get(st, "tokens")), 1);
	json_decref(st);
	assert_int_equal(p->tokens_issued, 1);
	assert_int_equal(p->auth_alarms, 0);
	provider_free_run(&fx.loop, p);
}

static void test_burst_one_connection(void **state)
{
	if (!mock_node_available())
		skip();
	json_t *st = stats();
	json_int_t sessions = json_integer_value(json_object_get(st, "sessions"));
	json_decref(st);
	struct hd_push_provider *p = apns(fx.p8, 0);
	static struct sent v[BURST];
	struct hd_push_target to = {.token = OK_TOKEN};

	memset(v, 0, sizeof(v));
	for (int i = 0; i < BURST; i++) {
		v[i].s.to = to;
		v[i].s.msg = alert;
		v[i].s.done = sent_done;
		v[i].s.arg = &v[i];
		assert_int_equal(p->ops->send(p, &v[i].s), 0);
	}
	sent_wait(&fx.loop, v, BURST);
	for (int i = 0; i < BURST; i++)
		assert_int_equal(v[i].s.verdict.kind, HD_PUSH_OK);
	st = stats();
	/* One connection for the burst (PIPEWAIT made it wait for the first
	 * one), one for this read of the stats. */
	assert_int_equal(json_integer_value(json_object_get(st, "sessions")), sessions + 2);
	json_decref(st);
	assert_int_equal(p->tokens_issued, 1);
	provider_free_run(&fx.loop, p);
}

static void test_expired_token_renewed_once(void **state)
{
	if (!mock_node_available())
		skip();
	int64_t alarms = hd_metrics_get(HD_M_push_auth_alarms_total);
	/* A renewal floor of 1 ms: the 403 gets a new token and one more try. */
	struct hd_push_provider *p = apns(fx.p8, 1);
	uv_sleep(2);
	expect(p, "403e" OK_TOKEN, &alert, HD_PUSH_AUTH, "ExpiredProviderToken");
	assert_int_equal(p->tokens_issued, 2);
	assert_int_equal(p->auth_alarms, 1);
	assert_int_equal(hd_metrics_get(HD_M_push_auth_alarms_total), alarms + 1);
	/* The renewed token works for the next send. */
	expect(p, OK_TOKEN, &alert, HD_PUSH_OK, "");
	provider_free_run(&fx.loop, p);

	/* The default floor (20 min): no renewal so soon, the alarm at once. */
	p = apns(fx.p8, 0);
	expect(p, "403e" OK_TOKEN, &alert, HD_PUSH_AUTH, "ExpiredProviderToken");
	assert_int_equal(p->tokens_issued, 1);
	assert_int_equal(p->auth_alarms, 1);
	provider_free_run(&fx.loop, p);
}

static void test_token_reused_then_renewed(void **state)
{
	if (!mock_node_available())
		skip();
	struct hd_apns_opts o = opts(fx.p8, 0);
	struct hd_push_provider *p = NULL;
	struct hd_error err = {0};

	/* Reuse cut to 1 ms: the next send signs a new token (the renewal
	 * floor does not hold a token past its reuse). */
	o.token_reuse_ms = 1;
	assert_int_equal(hd_apns_new(&fx.loop, &o, &p, &err), 0);
	uv_sleep(2);
	expect(p, OK_TOKEN, &alert, HD_PUSH_OK, "");
	assert_int_equal(p->tokens_issued, 2);
	provider_free_run(&fx.loop, p);
	/* The default (50 min): the token signed at start serves on. */
	p = apns(fx.p8, 0);
	expect(p, OK_TOKEN, &alert, HD_PUSH_OK, "");
	expect(p, OK_TOKEN, &alert, HD_PUSH_OK, "");
	assert_int_equal(p->tokens_issued, 1);
	provider_free_run(&fx.loop, p);
}

static void test_wrong_key(void **state)
{
	if (!mock_node_available())
		skip();
	struct hd_push_provider *p = apns(fx.other_p8, 1);
	uv_sleep(2);
	expect(p, OK_TOKEN, &alert, HD_PUSH_AUTH, "InvalidProviderToken");
	assert_int_equal(p->tokens_issued, 2); /* renewed once, refused again */
	assert_int_equal(p->auth_alarms, 1);
	provider_free_run(&fx.loop, p);
}

static void test_refused_stream(void **state)
{
	if (!mock_node_available())
		skip();
	struct hd_push_provider *p = apns(fx.p8, 0);
	struct sent s;
	struct hd_push_target to = {.token = "dead0" OK_TOKEN};

	send_one(&fx.loop, p, &to, &alert, &s);
	assert_int_equal(s.s.verdict.kind, HD_PUSH_RETRY);
	assert_false(s.s.verdict.count_attempt);
	assert_int_equal(s.s.verdict.after_ms, 0);
	to.token = "dead1" OK_TOKEN;
	send_one(&fx.loop, p, &to, &alert, &s);
	assert_int_equal(s.s.verdict.kind, HD_PUSH_RETRY);
	assert_false(s.s.verdict.count_attempt);
	/* After the GOAWAY a new connection carries the next send. */
	expect(p, OK_TOKEN, &alert, HD_PUSH_OK, "");
	provider_free_run(&fx.loop, p);
}

static void test_send_refused_early(void **state)
{
	struct hd_apns_opts o = opts(fx.p8, 0);
	o.base.url = "https://127.0.0.1:9"; /* never called */
	struct hd_push_provider *p = NULL;
	struct hd_error err = {0};
	struct hd_push_send s = {.to = {.token = "xyz"}, .msg = alert, .done = sent_done};
	char big[HD_PUSH_PAYLOAD_MAX + 2];

	assert_int_equal(hd_apns_new(&fx.loop, &o, &p, &err), 0);
	assert_int_equal(p->ops->send(p, &s), HD_EINVAL); /* not hex */
	s.to.token = OK_TOKEN;
	memset(big, ' ', sizeof(big));
	s.msg.payload = big;
	s.msg.payload_len = sizeof(big);
	assert_int_equal(p->ops->send(p, &s), HD_EINVAL); /* over 4,096 bytes */
	s.msg = alert;
	s.msg.collapse_id = "0123456789012345678901234567890123456789012345678901234567890123456789";
	assert_int_equal(p->ops->send(p, &s), HD_EINVAL); /* collapse id over 64 bytes */
	provider_free_run(&fx.loop, p);
}

static void test_config_errors(void **state)
{
	struct hd_push_provider *p = NULL;
	struct hd_error err = {0};
	struct hd_apns_opts o = opts("/nonexistent/AuthKey.p8", 0);

	assert_int_equal(hd_apns_new(&fx.loop, &o, &p, &err), HD_ECONFIG);
	assert_non_null(strstr(err.msg, "/nonexistent/AuthKey.p8"));
	o = opts(fx.p8, 0);
	o.key_id = "";
	assert_int_equal(hd_apns_new(&fx.loop, &o, &p, &err), HD_ECONFIG);
	assert_non_null(strstr(err.msg, "--push-apns-key-id"));
	o = opts(fx.p8, 0);
	o.base.url = "http://127.0.0.1:1";
	assert_int_equal(hd_apns_new(&fx.loop, &o, &p, &err), HD_ECONFIG);
	assert_non_null(strstr(err.msg, "--push-apns-url"));
	o = opts(fx.ca[0] ? fx.ca : "/etc/hostname", 0); /* a certificate, not a key */
	assert_int_equal(hd_apns_new(&fx.loop, &o, &p, &err), HD_ECONFIG);
	assert_null(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_errors),
		cmocka_unit_test(test_send_refused_early),
		cmocka_unit_test(test_answers),
		cmocka_unit_test(test_burst_one_connection),
		cmocka_unit_test(test_expired_token_renewed_once),
		cmocka_unit_test(test_token_reused_then_renewed),
		cmocka_unit_test(test_wrong_key),
		cmocka_unit_test(test_refused_stream),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
