/*
 * Unit tests for push/fcm.c against a real stand-in: tests/js/fcm_mock.js
 * (Node's http2 over TLS with a certificate made here; a token endpoint
 * verifying the RS256 JWT-bearer assertion against the service-account
 * file written here, and messages:send answering by device token). Checks
 * each answer's verdict, the message as FCM gets it (data values as
 * strings, android priority, ttl, collapse_key), one token renewal for a
 * burst that found none, 401 → renew and retry, a refused grant, and the
 * startup errors. The live tests skip when node is not on PATH.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/err.h"
#include "push/fcm.h"
#include "../mock_proc.h"
#include "provider_run.h"

#define PROJECT "herald-test"
#define EMAIL "herald@herald-test.iam.gserviceaccount.com"
#define BURST 50

struct fixture {
	char dir[64];
	char ca[128], sa[128], other_sa[128], rsa[128], other_rsa[128];
	struct mock_proc mock;
	int port;
	char url[64];
	uv_loop_t loop;
};

static struct fixture fx;

/* Writes a service-account file at path with the key in key_path. */
static void account_write(const char *path, const char *key_path, const char *token_uri)
{
	FILE *f = fopen(key_path, "r");
	char pem[8192];
	size_t n;

	assert_non_null(f);
	n = fread(pem, 1, sizeof(pem) - 1, f);
	pem[n] = '\0';
	fclose(f);
	json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "type", "service_account", "project_id",
			      PROJECT, "private_key_id", "k1", "private_key", pem, "client_email",
			      EMAIL, "token_uri", token_uri);
	assert_int_equal(json_dump_file(j, path, JSON_INDENT(2)), 0);
	json_decref(j);
}

static int setup(void **state)
{
	memset(&fx, 0, sizeof(fx));
	assert_true(mock_tmpdir(fx.dir));
	snprintf(fx.rsa, sizeof(fx.rsa), "%s/rsa.pem", fx.dir);
	snprintf(fx.other_rsa, sizeof(fx.other_rsa), "%s/other.pem", fx.dir);
	snprintf(fx.sa, sizeof(fx.sa), "%s/account.json", fx.dir);
	snprintf(fx.other_sa, sizeof(fx.other_sa), "%s/other.json", fx.dir);
	assert_true(mock_sh("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 "
			    "-out '%s' 2>/dev/null%s", fx.rsa, ""));
	assert_true(mock_sh("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 "
			    "-out '%s' 2>/dev/null%s", fx.other_rsa, ""));
	uv_loop_init(&fx.loop);
	*state = &fx;
	if (!mock_node_available()) {
		account_write(fx.sa, fx.rsa, "https://127.0.0.1:9/token");
		return 0;
	}
	assert_true(mock_make_cert(fx.dir));
	char cert[128], key[128], uri[128];
	snprintf(cert, sizeof(cert), "%s/cert.pem", fx.dir);
	snprintf(key, sizeof(key), "%s/cert.key", fx.dir);
	snprintf(fx.ca, sizeof(fx.ca), "%s", cert);
	const char *args[] = {cert, key, fx.sa, NULL};
	assert_true(mock_start(&fx.mock, "fcm_mock.js", args));
	assert_int_equal(sscanf(fx.mock.line, "ready %d", &fx.port), 1);
	snprintf(fx.url, sizeof(fx.url), "https://127.0.0.1:%d", fx.port);
	snprintf(uri, sizeof(uri), "%s/token", fx.url);
	account_write(fx.sa, fx.rsa, uri);
	account_write(fx.other_sa, fx.other_rsa, uri);
	return 0;
}

static int teardown(void **state)
{
	mock_stop(&fx.mock);
	mock_rmdir(fx.dir);
	uv_loop_close(&fx.loop);
	return 0;
}

static struct hd_push_provider *fcm(const char *sa)
{
	struct hd_fcm_opts o = {
		.base = {.ca_file = fx.ca, .allow_private = true, .url = fx.url},
		.credentials_file = sa,
	};
	struct hd_push_provider *p = NULL;
	struct hd_error err = {0};

	if (hd_fcm_new(&fx.loop, &o, &p, &err) != 0)
		fail_msg("hd_fcm_new: %s", err.msg);
	return p;
}

static const struct hd_push_message msg = {
	.mode = HD_PUSH_ALERT,
	.payload = "{\"notification\":{\"title\":\"Ride\"},\"data\":{\"offset\":42,\"topic\":\"rides:981\","
		   "\"nested\":{\"a\":true}}}",
	.collapse_id = "rides:981",
	.expiration = 4102444800,
};

static json_t *stats(void)
{
	char url[96];

	snprintf(url, sizeof(url), "%s/stats", fx.url);
	json_t *j = mock_json(url, fx.ca, NULL);
	assert_non_null(j);
	return j;
}

static json_int_t stat_int(const char *name)
{
	json_t *st = stats();
	json_int_t v = json_integer_value(json_object_get(st, name));
	json_decref(st);
	return v;
}

static struct hd_push_message message(void)
{
	struct hd_push_message m = msg;
	m.payload_len = strlen(m.payload);
	return m;
}

static void expect(struct hd_push_provider *p, const char *token, enum hd_push_verdict_kind kind,
		   const char *reason, struct sent *out)
{
	struct hd_push_target to = {.token = token};
	struct hd_push_message m = message();

	send_one(&fx.loop, p, &to, &m, out);
	if (out->s.verdict.kind != kind || strcmp(out->s.verdict.reason, reason) != 0)
		fail_msg("token %s: %s '%s', want %s '%s'", token,
			 hd_provider_verdict_name(out->s.verdict.kind), out->s.verdict.reason,
			 hd_provider_verdict_name(kind), reason);
}

static void test_answers(void **state)
{
	if (!mock_node_available())
		skip();
	json_int_t issued = stat_int("tokens_issued");
	struct hd_push_provider *p = fcm(fx.sa);
	struct sent s;

	expect(p, "device-1", HD_PUSH_OK, "", &s);
	assert_non_null(strstr(s.s.id, "projects/" PROJECT "/messages/"));
	json_t *st = stats();
	json_t *last = json_object_get(st, "last");
	assert_string_equal(json_string_value(json_object_get(last, "token")), "device-1");
	json_t *data = json_object_get(last, "data");
	assert_string_equal(json_string_value(json_object_get(data, "offset")), "42");
	assert_string_equal(json_string_value(json_object_get(data, "topic")), "rides:981");
	assert_string_equal(json_string_value(json_object_get(data, "nested")), "{\"a\":true}");
	json_t *android = json_object_get(last, "android");
	assert_string_equal(json_string_value(json_object_get(android, "priority")), "high");
	assert_string_equal(json_string_value(json_object_get(android, "collapse_key")), "rides:981");
	assert_non_null(strchr(json_string_value(json_object_get(android, "ttl")), 's'));
	assert_string_equal(json_string_value(json_object_get(json_object_get(last, "notification"),
							       "title")), "Ride");
	assert_int_equal(json_integer_value(json_object_get(st, "tokens_issued")), issued + 1);
	assert_int_equal(json_integer_value(json_object_get(st, "assertions_bad")), 0);
	json_decref(st);

	expect(p, "unreg-1", HD_PUSH_INVALID, "UNREGISTERED", &s);
	assert_int_equal(s.s.verdict.status, 404);
	expect(p, "badtok-1", HD_PUSH_INVALID, "INVALID_ARGUMENT", &s);
	expect(p, "unavail-1", HD_PUSH_RETRY, "UNAVAILABLE", &s);
	expect(p, "quota-1", HD_PUSH_THROTTLED, "QUOTA_EXCEEDED", &s);
	assert_true(s.s.verdict.provider_wide);
	assert_int_equal(s.s.verdict.after_ms, 7000);
	/* One access token served them all. */
	assert_int_equal(p->tokens_issued, 1);
	assert_int_equal(stat_int("tokens_issued"), issued + 1);
	provider_free_run(&fx.loop, p);
}

static void test_burst_waits_for_one_renewal(void **state)
{
	if (!mock_node_available())
		skip();
	json_int_t issued = stat_int("tokens_issued");
	struct hd_push_provider *p = fcm(fx.sa);
	static struct sent v[BURST];
	struct hd_push_message m = message();

	memset(v, 0, sizeof(v));
	for (int i = 0; i < BURST; i++) {
		v[i].s.to.token = "device-burst";
		v[i].s.msg = m;
		v[i].s.done = sent_done;
		v[i].s.arg = &v[i];
		assert_int_equal(p->ops->send(p, &v[i].s), 0);
	}
	sent_wait(&fx.loop, v, BURST);
	for (int i = 0; i < BURST; i++)
		assert_int_equal(v[i].s.verdict.kind, HD_PUSH_OK);
	assert_int_equal(p->tokens_issued, 1);
	assert_int_equal(stat_int("tokens_issued"), issued + 1);
	provider_free_run(&fx.loop, p);
}

static void test_401_renews_and_retries(void **state)
{
	if (!mock_node_available())
		skip();
	struct hd_push_provider *p = fcm(fx.sa);
	struct sent s;

	expect(p, "device-1", HD_PUSH_OK, "", &s);
	/* The mock revokes the token on this send and answers 401 once. */
	expect(p, "stale-1", HD_PUSH_OK, "", &s);
	assert_int_equal(p->tokens_issued, 2);
	assert_int_equal(p->auth_alarms, 0);
	provider_free_run(&fx.loop, p);
}

static void test_refused_grant(void **state)
{
	if (!mock_node_available())
		skip();
	json_int_t bad = stat_int("assertions_bad");
	/* A key the mock does not know for this account: invalid_grant. */
	struct hd_push_provider *p = fcm(fx.other_sa);
	struct sent s;

	expect(p, "device-1", HD_PUSH_AUTH, "token endpoint: invalid_grant", &s);
	assert_int_equal(s.s.verdict.status, 400);
	assert_int_equal(p->auth_alarms, 1);
	assert_int_equal(p->tokens_issued, 0);
	assert_int_equal(stat_int("assertions_bad"), bad + 1);
	provider_free_run(&fx.loop, p);
}

/* Runs the loop until ms have passed (a timer: the token's life is what
 * is being waited for, there is no event to wait on). */
static void on_run_for(uv_timer_t *t)
{
	*(bool *)t->data = true;
}

static void run_for(uint64_t ms)
{
	uv_timer_t t;
	bool fired = false;

	uv_timer_init(&fx.loop, &t);
	t.data = &fired;
	uv_timer_start(&t, on_run_for, ms, 0);
	while (!fired)
		uv_run(&fx.loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(&fx.loop, UV_RUN_NOWAIT);
}

static void test_renewed_at_80_percent(void **state)
{
	if (!mock_node_available())
		skip();
	/* A mock of its own whose access tokens live 2 s: renewal from 1.6 s. */
	struct mock_proc short_lived;
	char cert[128], key[128], sa[128], uri[128], url[64];
	int port;
	snprintf(cert, sizeof(cert), "%s/cert.pem", fx.dir);
	snprintf(key, sizeof(key), "%s/cert.key", fx.dir);
	snprintf(sa, sizeof(sa), "%s/short.json", fx.dir);
	const char *args[] = {cert, key, sa, "2", NULL};
	assert_true(mock_start(&short_lived, "fcm_mock.js", args));
	assert_int_equal(sscanf(short_lived.line, "ready %d", &port), 1);
	snprintf(url, sizeof(url), "https://127.0.0.1:%d", port);
	snprintf(uri, sizeof(uri), "%s/token", url);
	account_write(sa, fx.rsa, uri);
	struct hd_fcm_opts o = {
		.base = {.ca_file = fx.ca, .allow_private = true, .url = url},
		.credentials_file = sa,
	};
	struct hd_push_provider *p = NULL;
	struct hd_error err = {0};
	assert_int_equal(hd_fcm_new(&fx.loop, &o, &p, &err), 0);
	struct sent s;
	struct hd_push_target to = {.token = "device-1"};
	struct hd_push_message m = message();

	send_one(&fx.loop, p, &to, &m, &s);
	assert_int_equal(s.s.verdict.kind, HD_PUSH_OK);
	assert_int_equal(p->tokens_issued, 1);
	run_for(1700);
	/* Past 80% of the life: this send starts one renewal and goes out
	 * (with the old token when it is still valid). */
	send_one(&fx.loop, p, &to, &m, &s);
	assert_int_equal(s.s.verdict.kind, HD_PUSH_OK);
	uint64_t end = hd_mono_ms() + PROVIDER_WAIT_MS;
	while (p->tokens_issued < 2 && hd_mono_ms() < end)
		uv_run(&fx.loop, UV_RUN_ONCE);
	assert_int_equal(p->tokens_issued, 2);
	send_one(&fx.loop, p, &to, &m, &s);
	assert_int_equal(s.s.verdict.kind, HD_PUSH_OK);
	assert_int_equal(p->tokens_issued, 2);
	provider_free_run(&fx.loop, p);
	mock_stop(&short_lived);
}

static void test_config_errors(void **state)
{
	struct hd_push_provider *p = NULL;
	struct hd_error err = {0};
	struct hd_fcm_opts o = {.credentials_file = "/nonexistent/account.json"};
	char path[128];

	assert_int_equal(hd_fcm_new(&fx.loop, &o, &p, &err), HD_ECONFIG);
	assert_non_null(strstr(err.msg, "/nonexistent/account.json"));
	snprintf(path, sizeof(path), "%s/bad.json", fx.dir);
	o.credentials_file = path;
	FILE *f = fopen(path, "w");
	fputs("{\"project_id\":\"p\",\"client_email\":\"e\",\"token_uri\":\"https://x/token\"}", f);
	fclose(f);
	assert_int_equal(hd_fcm_new(&fx.loop, &o, &p, &err), HD_ECONFIG);
	assert_non_null(strstr(err.msg, "private_key"));
	account_write(path, fx.rsa, "http://oauth2.example/token");
	assert_int_equal(hd_fcm_new(&fx.loop, &o, &p, &err), HD_ECONFIG);
	assert_non_null(strstr(err.msg, "token_uri"));
	f = fopen(path, "w");
	fputs("not json", f);
	fclose(f);
	assert_int_equal(hd_fcm_new(&fx.loop, &o, &p, &err), HD_ECONFIG);
	assert_null(p);
	/* A good file: the provider is built without any request. */
	o.credentials_file = fx.sa;
	assert_int_equal(hd_fcm_new(&fx.loop, &o, &p, &err), 0);
	struct hd_push_send s = {.to = {.token = "t"}, .msg = message(), .done = sent_done};
	s.msg.payload = "[1]";
	s.msg.payload_len = 3;
	assert_int_equal(p->ops->send(p, &s), HD_EINVAL); /* not an object */
	provider_free_run(&fx.loop, p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_errors),
		cmocka_unit_test(test_answers),
		cmocka_unit_test(test_burst_waits_for_one_renewal),
		cmocka_unit_test(test_401_renews_and_retries),
		cmocka_unit_test(test_refused_grant),
		cmocka_unit_test(test_renewed_at_80_percent),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
