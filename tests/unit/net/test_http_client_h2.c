/*
 * Unit tests for net/http_client.c's HTTP/2 side (the push providers'
 * transport) against a real HTTP/2 server: tests/js/apns_mock.js (Node's
 * http2 over TLS, with a certificate made here and trusted through the
 * client's ca_file). Multiplexing on one connection, wanted response
 * headers, REFUSED_STREAM and GOAWAY told apart from other failures, the CA
 * file. Skipped when node is not on PATH.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/clock.h"
#include "core/err.h"
#include "net/http_client.h"
#include "../mock_proc.h"

#define WAIT_MS 20000
#define PARALLEL 20

struct fixture {
	char dir[64];
	char ca[128];
	struct mock_proc mock;
	int port;
	uv_loop_t loop;
};

struct result {
	bool done;
	int err, status;
	bool refused;
	char body[64];
	char echo[HD_HTTP_WANT_VALUE_MAX];
	bool echo_found;
};

static int setup(void **state)
{
	static struct fixture f;

	memset(&f, 0, sizeof(f));
	if (!mock_node_available()) {
		*state = NULL;
		return 0;
	}
	assert_true(mock_tmpdir(f.dir));
	assert_true(mock_make_cert(f.dir));
	char cert[128], key[128];
	snprintf(cert, sizeof(cert), "%s/cert.pem", f.dir);
	snprintf(key, sizeof(key), "%s/cert.key", f.dir);
	snprintf(f.ca, sizeof(f.ca), "%s", cert);
	const char *args[] = {cert, key, NULL};
	assert_true(mock_start(&f.mock, "apns_mock.js", args));
	assert_int_equal(sscanf(f.mock.line, "ready %d", &f.port), 1);
	uv_loop_init(&f.loop);
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (!f)
		return 0;
	mock_stop(&f->mock);
	mock_rmdir(f->dir);
	uv_loop_close(&f->loop);
	return 0;
}

static struct hd_http_client *client_conn(struct fixture *f, const char *ca, uint32_t per_host,
					  uint32_t streams, uint32_t per_conn)
{
	struct hd_http_client_opts o = {
		.timeout_ms = 10000, .connect_timeout_ms = 5000, .max_per_host = per_host,
		.max_total = 4, .max_inflight = 100, .max_response = 1024, .allow_private = true,
		.user_agent = "test", .http2 = true, .max_streams = streams,
		.max_requests_per_conn = per_conn, .ca_file = ca,
	};
	struct hd_error err = {0};
	struct hd_http_client *c = hd_http_client_new(&f->loop, &o, &err);

	assert_non_null(c);
	return c;
}

static struct hd_http_client *client(struct fixture *f, const char *ca, uint32_t per_host)
{
	return client_conn(f, ca, per_host, 50, 0);
}

static void on_done(struct hd_http_call *call)
{
	struct result *r = call->arg;

	r->done = true;
	r->err = call->err;
	r->status = call->status;
	r->refused = call->stream_refused;
	snprintf(r->body, sizeof(r->body), "%s", call->response);
	if (call->nwant) {
		r->echo_found = call->want[0].found;
		snprintf(r->echo, sizeof(r->echo), "%s", call->want[0].value);
	}
}

/* Runs the loop until every result is done (or the deadline). */
static void wait_all(struct fixture *f, struct result *r, size_t n)
{
	uint64_t end = hd_mono_ms() + WAIT_MS;

	for (;;) {
		size_t k = 0;
		while (k < n && r[k].done)
			k++;
		if (k == n || hd_mono_ms() > end)
			break;
		uv_run(&f->loop, UV_RUN_ONCE);
	}
	for (size_t i = 0; i < n; i++)
		assert_true(r[i].done);
}

static void close_client(struct fixture *f, struct hd_http_client *c)
{
	hd_http_client_free(c);
	uv_run(&f->loop, UV_RUN_DEFAULT);
}

static void test_multiplexed(void **state)
{
	struct fixture *f = *state;
	if (!f)
		skip();
	struct hd_http_client *c = client(f, f->ca, 1);
	char url[128];
	struct hd_http_call calls[PARALLEL];
	struct hd_http_want want[PARALLEL];
	struct result res[PARALLEL];
	char echo[PARALLEL][16];
	struct hd_http_header hdr[PARALLEL];

	snprintf(url, sizeof(url), "https://127.0.0.1:%d/h2/ok", f->port);
	memset(calls, 0, sizeof(calls));
	memset(res, 0, sizeof(res));
	memset(want, 0, sizeof(want));
	for (int i = 0; i < PARALLEL; i++) {
		snprintf(echo[i], sizeof(echo[i]), "call-%d", i);
		hdr[i] = (struct hd_http_header){"x-echo", echo[i]};
		want[i].name = "X-Echo";
		calls[i] = (struct hd_http_call){.url = url, .method = "POST", .body = "x",
						 .body_len = 1, .headers = &hdr[i], .nheaders = 1,
						 .want = &want[i], .nwant = 1, .done = on_done,
						 .arg = &res[i]};
		assert_int_equal(hd_http_client_send(c, &calls[i]), 0);
	}
	wait_all(f, res, PARALLEL);
	for (int i = 0; i < PARALLEL; i++) {
		assert_int_equal(res[i].err, 0);
		assert_int_equal(res[i].status, 200);
		assert_true(res[i].echo_found);
		assert_string_equal(res[i].echo, echo[i]);
		/* Every request on the mock's first (and only) session. */
		assert_string_equal(res[i].body, "h2 1");
	}
	close_client(f, c);
}

static void one(struct fixture *f, struct hd_http_client *c, const char *path, struct result *r)
{
	char url[128];
	struct hd_http_call call = {0};

	snprintf(url, sizeof(url), "https://127.0.0.1:%d%s", f->port, path);
	memset(r, 0, sizeof(*r));
	call = (struct hd_http_call){.url = url, .method = "POST", .body = "{}", .body_len = 2,
				     .done = on_done, .arg = r};
	assert_int_equal(hd_http_client_send(c, &call), 0);
	wait_all(f, r, 1);
}

static void test_refused_and_goaway(void **state)
{
	struct fixture *f = *state;
	if (!f)
		skip();
	struct hd_http_client *c = client(f, f->ca, 2);
	struct result r;

	one(f, c, "/h2/refuse", &r);
	assert_int_equal(r.err, HD_EUNAVAIL);
	assert_true(r.refused);
	one(f, c, "/h2/goaway", &r);
	assert_int_equal(r.err, HD_EUNAVAIL);
	assert_true(r.refused);
	/* The next request gets a new connection and an answer. */
	one(f, c, "/h2/ok", &r);
	assert_int_equal(r.err, 0);
	assert_int_equal(r.status, 200);
	assert_false(r.refused);
	close_client(f, c);
}

/* Sends path twice with the same x-echo value: the mock refuses the first
 * (REFUSED_STREAM, or a GOAWAY whose last stream is an earlier one) and
 * answers the second. curl must not send the first again by itself (its
 * body cannot be rewound): the call ends refused and the caller decides.
 * With the body in POSTFIELDS, curl 7.88 resent a refused stream silently
 * on a new connection and the call came back 200 with no sign of the first
 * attempt (curl 8 does the same for a stream above a GOAWAY's last one).
 *
 * read_first: the mock refuses only once the whole body has arrived (the
 * "-read" paths), so curl has read all of it and a resend needs a rewind,
 * which on_seek refuses: the first send must end refused, every time, and
 * the mock must have seen no send this test did not make ("sends <n>" in
 * the answer). Otherwise the refusal may come before curl read the body;
 * curl then needs no rewind and may resend by itself (harmless: the server
 * never processed the refused stream), so a 200 on the first send is
 * accepted there. Returns whether the first send ended refused. */
static bool refused_once(struct fixture *f, const char *path, const char *key, bool read_first)
{
	struct hd_http_client *c = client(f, f->ca, 1);
	char url[128];
	struct hd_http_header hdr = {"x-echo", key};
	struct result r;
	bool refused = false;
	int sends = 0;

	one(f, c, "/h2/ok", &r); /* stream 1 on a new connection: a GOAWAY can name it */
	assert_int_equal(r.err, 0);
	snprintf(url, sizeof(url), "https://127.0.0.1:%d%s", f->port, path);
	/* The second send may still meet the connection being retired (curl can
	 * see the refused stream before the GOAWAY behind it): then it too is
	 * refused, as a caller's retry would be, and is sent once more; the
	 * mock answers every send of the key after its first. */
	for (int i = 0, again = 0; i < 2; i++) {
		char body[600];
		memset(body, 'b', sizeof(body));
		memset(&r, 0, sizeof(r));
		struct hd_http_call call = {.url = url, .method = "POST", .body = body,
					    .body_len = sizeof(body), .headers = &hdr, .nheaders = 1,
					    .done = on_done, .arg = &r};
		assert_int_equal(hd_http_client_send(c, &call), 0);
		sends++;
		wait_all(f, &r, 1);
		if (i == 0 && r.err == 0 && !read_first) {
			/* The stream was refused before curl read any of the body:
			 * nothing to rewind, so curl sent it again by itself (the
			 * server never processed the refused one). */
			assert_int_equal(r.status, 200);
			break;
		}
		if (i == 0) {
			assert_int_equal(r.err, HD_EUNAVAIL);
			assert_true(r.refused);
			refused = true;
		} else if (r.err == HD_EUNAVAIL && r.refused && again++ < 3) {
			i--;
		} else {
			assert_int_equal(r.err, 0);
			assert_int_equal(r.status, 200);
			assert_false(r.refused);
		}
	}
	if (read_first) {
		/* The refused send and this test's resend reached the mock; no
		 * send of curl's own did. */
		int session, seen = 0;
		assert_int_equal(sscanf(r.body, "h2 %d sends %d", &session, &seen), 2);
		assert_true(seen >= 2);
		assert_true(seen <= sends);
	}
	close_client(f, c);
	return refused;
}

static void test_refused_stream_is_not_resent_by_curl(void **state)
{
	struct fixture *f = *state;
	if (!f)
		skip();
	refused_once(f, "/h2/refuse-once", "refuse-once-1", false);
	refused_once(f, "/h2/goaway-after", "goaway-after-1", false);
	/* These two cannot pass if curl resends a stream whose body it read. */
	assert_true(refused_once(f, "/h2/refuse-once-read", "refuse-once-read-1", true));
	assert_true(refused_once(f, "/h2/goaway-after-read", "goaway-after-read-1", true));
}

static void test_untrusted_without_ca(void **state)
{
	struct fixture *f = *state;
	if (!f)
		skip();
	struct hd_http_client *c = client(f, NULL, 1);
	struct result r;

	one(f, c, "/h2/ok", &r);
	assert_int_equal(r.err, HD_EUNAVAIL); /* the self-signed certificate is not trusted */
	assert_false(r.refused);
	close_client(f, c);
}

static void test_bad_ca_file(void **state)
{
	uv_loop_t loop;
	struct hd_http_client_opts o = {
		.timeout_ms = 1000, .connect_timeout_ms = 1000, .max_per_host = 1, .max_total = 1,
		.max_inflight = 1, .max_response = 1, .user_agent = "t", .http2 = true,
		.ca_file = "/nonexistent/ca.pem",
	};
	struct hd_error err = {0};

	uv_loop_init(&loop);
	assert_null(hd_http_client_new(&loop, &o, &err));
	assert_int_equal(err.code, HD_ECONFIG);
	assert_non_null(strstr(err.msg, "/nonexistent/ca.pem"));
	o.ca_file = "/etc/hostname"; /* a file with no certificate */
	assert_null(hd_http_client_new(&loop, &o, &err));
	assert_non_null(strstr(err.msg, "no PEM certificate"));
	uv_loop_close(&loop);
}

static void test_want_limits(void **state)
{
	uv_loop_t loop;
	struct hd_http_client_opts o = {
		.timeout_ms = 1000, .connect_timeout_ms = 1000, .max_per_host = 1, .max_total = 1,
		.max_inflight = 1, .max_response = 1, .user_agent = "t",
	};
	struct hd_error err = {0};
	struct hd_http_want want[HD_HTTP_WANT_MAX + 1] = {{.name = "a"}};
	struct hd_http_call call = {.url = "http://x/", .method = "GET", .want = want,
				    .nwant = HD_HTTP_WANT_MAX + 1, .done = on_done};

	uv_loop_init(&loop);
	struct hd_http_client *c = hd_http_client_new(&loop, &o, &err);
	assert_int_equal(hd_http_client_send(c, &call), HD_EINVAL);
	call.nwant = 2; /* the second has no name */
	assert_int_equal(hd_http_client_send(c, &call), HD_EINVAL);
	hd_http_client_free(c);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
}

/* max_requests_per_conn 5, 4 streams at once, 2 connections: 20 requests
 * (one cancelled while it waits in the client) are answered, no connection
 * carries more than 5, and the cancelled one never runs done(). */
static void test_connection_rotation(void **state)
{
	struct fixture *f = *state;
	if (!f)
		skip();
	struct hd_http_client *c = client_conn(f, f->ca, 2, 4, 5);
	char url[128];
	struct hd_http_call calls[PARALLEL];
	struct result res[PARALLEL];
	int per_session[64] = {0};

	snprintf(url, sizeof(url), "https://127.0.0.1:%d/h2/ok", f->port);
	memset(calls, 0, sizeof(calls));
	memset(res, 0, sizeof(res));
	for (int i = 0; i < PARALLEL; i++) {
		calls[i] = (struct hd_http_call){.url = url, .method = "POST", .body = "x",
						 .body_len = 1, .done = on_done, .arg = &res[i]};
		assert_int_equal(hd_http_client_send(c, &calls[i]), 0);
	}
	/* The last one waits in the client (4 run at once at most). */
	hd_http_client_cancel(c, &calls[PARALLEL - 1]);
	assert_int_equal(hd_http_client_inflight(c), PARALLEL - 1);
	wait_all(f, res, PARALLEL - 1);
	for (int i = 0; i < PARALLEL - 1; i++) {
		int no = 0;
		assert_int_equal(res[i].err, 0);
		assert_int_equal(res[i].status, 200);
		assert_int_equal(sscanf(res[i].body, "h2 %d", &no), 1);
		assert_true(no > 0 && no < 64);
		per_session[no]++;
	}
	int sessions = 0;
	for (int i = 0; i < 64; i++) {
		assert_true(per_session[i] <= 5);
		sessions += per_session[i] > 0;
	}
	assert_true(sessions >= 4);
	assert_false(res[PARALLEL - 1].done);
	close_client(f, c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_ca_file),
		cmocka_unit_test(test_want_limits),
		cmocka_unit_test(test_multiplexed),
		cmocka_unit_test(test_refused_and_goaway),
		cmocka_unit_test(test_refused_stream_is_not_resent_by_curl),
		cmocka_unit_test(test_untrusted_without_ca),
		cmocka_unit_test(test_connection_rotation),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
