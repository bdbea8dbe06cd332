/*
 * Unit tests for push/webpush.c against a real Web Push service stand-in:
 * tests/js/webpush_mock.js (npm web-push-testing, itself validated with npm
 * web-push at start; it checks the VAPID token and decrypts the body) —
 * what herald sends is read back decrypted. Checks the verdicts (201, 410,
 * 404, 429, 500, 403 with one fresh token), the RFC 8030 headers, the
 * endpoint rules (https, http only to localhost with allow_private, the
 * SSRF rule) and the startup errors. Live tests skip without node.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/clock.h"
#include "core/err.h"
#include "push/vapid.h"
#include "push/webpush.h"
#include "../mock_proc.h"
#include "provider_run.h"

#define SUBJECT "mailto:push-tests@example.com"

struct sub {
	char endpoint[512];
	char hash[128];
	struct hd_webpush_crypto_keys keys;
};

struct fixture {
	char dir[64];
	char key_file[128];
	char public_key[HD_VAPID_PUBLIC_KEY_LEN + 1];
	struct mock_proc mock;
	int port;
	struct sub ok, expired;
	uv_loop_t loop;
};

static struct fixture fx;

static void sub_read(const json_t *j, struct sub *s)
{
	const char *ep = json_string_value(json_object_get(j, "endpoint"));
	const json_t *keys = json_object_get(j, "keys");
	const char *p256dh = json_string_value(json_object_get(keys, "p256dh"));
	const char *auth = json_string_value(json_object_get(keys, "auth"));
	struct hd_error err = {0};

	assert_non_null(ep);
	snprintf(s->endpoint, sizeof(s->endpoint), "%s", ep);
	snprintf(s->hash, sizeof(s->hash), "%s", json_string_value(json_object_get(j, "clientHash")));
	assert_int_equal(hd_webpush_crypto_keys_parse(p256dh, strlen(p256dh), auth, strlen(auth),
						      &s->keys, &err), 0);
}

static int setup(void **state)
{
	char private_key[HD_VAPID_PRIVATE_KEY_LEN + 1];
	struct hd_error err = {0};

	memset(&fx, 0, sizeof(fx));
	assert_true(mock_tmpdir(fx.dir));
	assert_int_equal(hd_vapid_keys_generate(private_key, fx.public_key, &err), 0);
	snprintf(fx.key_file, sizeof(fx.key_file), "%s/vapid.key", fx.dir);
	FILE *f = fopen(fx.key_file, "w");
	fprintf(f, "%s\n", private_key);
	fclose(f);
	uv_loop_init(&fx.loop);
	*state = &fx;
	if (!mock_node_available())
		return 0;
	const char *args[] = {fx.public_key, NULL};
	assert_true(mock_start(&fx.mock, "webpush_mock.js", args));
	json_t *j = json_loads(fx.mock.line, 0, NULL);
	assert_non_null(j);
	fx.port = (int)json_integer_value(json_object_get(j, "port"));
	sub_read(json_object_get(j, "ok"), &fx.ok);
	sub_read(json_object_get(j, "expired"), &fx.expired);
	json_decref(j);
	return 0;
}

static int teardown(void **state)
{
	mock_stop(&fx.mock);
	mock_rmdir(fx.dir);
	uv_loop_close(&fx.loop);
	return 0;
}

static struct hd_push_provider *webpush(bool allow_private)
{
	struct hd_webpush_opts o = {
		.base = {.allow_private = allow_private},
		.vapid_key_file = fx.key_file,
		.subject = SUBJECT,
	};
	struct hd_push_provider *p = NULL;
	struct hd_error err = {0};

	if (hd_webpush_new(&fx.loop, &o, &p, &err) != 0)
		fail_msg("hd_webpush_new: %s", err.msg);
	return p;
}

static struct hd_push_message message(const char *text)
{
	return (struct hd_push_message){
		.mode = HD_PUSH_ALERT, .urgency = HD_PUSH_URGENCY_HIGH, .payload = text,
		.payload_len = strlen(text), .collapse_id = "rides981",
		.expiration = hd_now_ms() / 1000 + 60,
	};
}

static void expect(struct hd_push_provider *p, const char *endpoint,
		   const struct hd_webpush_crypto_keys *keys, enum hd_push_verdict_kind kind,
		   struct sent *out)
{
	struct hd_push_target to = {.endpoint = endpoint, .keys = keys};
	struct hd_push_message m = message("{\"herald\":{\"topic\":\"user:42\",\"offset\":7}}");

	send_one(&fx.loop, p, &to, &m, out);
	if (out->s.verdict.kind != kind)
		fail_msg("%s: %s '%s', want %s", endpoint, hd_provider_verdict_name(out->s.verdict.kind),
			 out->s.verdict.reason, hd_provider_verdict_name(kind));
}

static json_t *mock_post(const char *path, const char *body)
{
	char url[128];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", fx.port, path);
	json_t *j = mock_json(url, NULL, body);
	assert_non_null(j);
	return j;
}

static void canned(char *out, size_t cap, const char *name)
{
	snprintf(out, cap, "http://localhost:%d/notify/%s", fx.port, name);
}

static void test_delivered_and_decrypted(void **state)
{
	if (!mock_node_available())
		skip();
	struct hd_push_provider *p = webpush(true);
	struct sent s;
	struct hd_push_target to = {.endpoint = fx.ok.endpoint, .keys = &fx.ok.keys};
	struct hd_push_message m = message("hello from herald");

	send_one(&fx.loop, p, &to, &m, &s);
	assert_int_equal(s.s.verdict.kind, HD_PUSH_OK);
	assert_int_equal(s.s.verdict.status, 201);
	/* A second message reuses the cached VAPID header for the origin. */
	m = message("second");
	send_one(&fx.loop, p, &to, &m, &s);
	assert_int_equal(s.s.verdict.kind, HD_PUSH_OK);

	char body[256];
	snprintf(body, sizeof(body), "{\"clientHash\":\"%s\"}", fx.ok.hash);
	json_t *got = mock_post("/get-notifications", body);
	json_t *msgs = json_object_get(json_object_get(got, "data"), "messages");
	assert_int_equal(json_array_size(msgs), 2);
	assert_string_equal(json_string_value(json_array_get(msgs, 0)), "hello from herald");
	assert_string_equal(json_string_value(json_array_get(msgs, 1)), "second");
	json_decref(got);

	json_t *seen = mock_post("/seen", "{}");
	json_t *last = json_array_get(seen, json_array_size(seen) - 1);
	int ttl = atoi(json_string_value(json_object_get(last, "ttl")));
	assert_true(ttl > 50 && ttl <= 60);
	assert_string_equal(json_string_value(json_object_get(last, "urgency")), "high");
	assert_string_equal(json_string_value(json_object_get(last, "topic")), "rides981");
	assert_string_equal(json_string_value(json_object_get(last, "encoding")), "aes128gcm");
	assert_non_null(strstr(json_string_value(json_object_get(last, "authorization")),
			       fx.public_key));
	json_decref(seen);
	provider_free_run(&fx.loop, p);
}

static void test_answers(void **state)
{
	if (!mock_node_available())
		skip();
	struct hd_push_provider *p = webpush(true);
	struct sent s;
	char ep[256];

	expect(p, fx.expired.endpoint, &fx.expired.keys, HD_PUSH_INVALID, &s);
	assert_int_equal(s.s.verdict.status, 410);
	canned(ep, sizeof(ep), "gone404");
	expect(p, ep, &fx.ok.keys, HD_PUSH_INVALID, &s);
	canned(ep, sizeof(ep), "busy");
	expect(p, ep, &fx.ok.keys, HD_PUSH_THROTTLED, &s);
	assert_false(s.s.verdict.provider_wide);
	assert_int_equal(s.s.verdict.after_ms, 4000);
	canned(ep, sizeof(ep), "down");
	expect(p, ep, &fx.ok.keys, HD_PUSH_RETRY, &s);
	canned(ep, sizeof(ep), "denied");
	expect(p, ep, &fx.ok.keys, HD_PUSH_AUTH, &s);
	assert_string_equal(s.s.verdict.reason, "BadJwtToken");
	assert_int_equal(p->tokens_issued, 1); /* one fresh token for the one retry */
	assert_int_equal(p->auth_alarms, 1);
	provider_free_run(&fx.loop, p);
}

static void test_endpoint_rules(void **state)
{
	struct hd_push_provider *p = webpush(false);
	struct hd_push_message m = message("x");
	struct hd_push_send s = {.to = {.keys = &fx.ok.keys}, .msg = m, .done = sent_done};

	s.to.endpoint = "http://push.example.com/x"; /* plain http to another host */
	assert_int_equal(p->ops->send(p, &s), HD_EINVAL);
	s.to.endpoint = "http://localhost:1/x";        /* only with allow_private */
	assert_int_equal(p->ops->send(p, &s), HD_EINVAL);
	s.to.endpoint = "https://user@push.example.com/x";
	assert_int_equal(p->ops->send(p, &s), HD_EINVAL);
	char big[HD_WEBPUSH_CRYPTO_PLAINTEXT_MAX + 1];
	memset(big, 'x', sizeof(big));
	s.to.endpoint = "https://push.example.com/x";
	s.msg.payload = big;
	s.msg.payload_len = sizeof(big);
	assert_int_equal(p->ops->send(p, &s), HD_EINVAL);
	provider_free_run(&fx.loop, p);
}

static void test_ssrf_refused(void **state)
{
	if (!mock_node_available())
		skip();
	struct hd_push_provider *p = webpush(false);
	struct sent s;

	/* An https endpoint on a loopback address: refused when curl opens the
	 * socket, and the subscription is dead. */
	expect(p, "https://127.0.0.1:9/push/abc", &fx.ok.keys, HD_PUSH_INVALID, &s);
	assert_non_null(strstr(s.s.verdict.reason, "127.0.0.1"));
	provider_free_run(&fx.loop, p);
}

static void test_config_errors(void **state)
{
	struct hd_push_provider *p = NULL;
	struct hd_error err = {0};
	struct hd_webpush_opts o = {.vapid_key_file = "/nonexistent/vapid.pem", .subject = SUBJECT};

	assert_int_equal(hd_webpush_new(&fx.loop, &o, &p, &err), HD_ECONFIG);
	assert_non_null(strstr(err.msg, "/nonexistent/vapid.pem"));
	o.vapid_key_file = fx.key_file;
	o.subject = "";
	assert_int_equal(hd_webpush_new(&fx.loop, &o, &p, &err), HD_ECONFIG);
	assert_non_null(strstr(err.msg, "--push-vapid-subject"));
	o.subject = "ftp://example.com";
	assert_int_equal(hd_webpush_new(&fx.loop, &o, &p, &err), HD_ECONFIG);
	assert_null(p);
	o.subject = SUBJECT;
	assert_int_equal(hd_webpush_new(&fx.loop, &o, &p, &err), 0);
	assert_string_equal(hd_webpush_public_key(p), fx.public_key);
	provider_free_run(&fx.loop, p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_errors),
		cmocka_unit_test(test_endpoint_rules),
		cmocka_unit_test(test_delivered_and_decrypted),
		cmocka_unit_test(test_answers),
		cmocka_unit_test(test_ssrf_refused),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
