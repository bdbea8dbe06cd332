/*
 * test_server — unit tests of the graceful stop of src/http/server.c: the
 * drain deadline (shutdown_timeout_ms) against a request still in the
 * handler and against a client that does not read, an answer given in time
 * still delivered, and a stop with nothing open that does not wait for the
 * deadline. Then upgrades (hd_http_upgrade): bytes sent with the request
 * reach on_input, never from inside the upgrade call; stream writes reach
 * the client; hd_http_stream_read pauses and resumes input; the client's
 * EOF calls on_close; the header and idle timers no longer apply; a stop
 * waits for the edge to end the connection. A real server on a real loop;
 * the client is a plain blocking socket on 127.0.0.1. Every wait is bounded
 * by a guard timer on the loop.
 */
#include "http/server.h"

#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#define BIG_BODY (4 * 1024 * 1024) /* far more than the socket buffers hold */

static const char get_hold[] = "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n";

struct fixture {
	uv_loop_t loop;
	uv_timer_t guard; /* bounds every wait */
	bool expired;
	struct hd_http_server *srv;
	bool hold;                    /* the handler keeps requests instead of answering */
	struct hd_http_request *held; /* the request kept, until answered */
	int requests;
	bool done; /* the shutdown's done callback ran */
	int client;
	char got[4096]; /* what the client received, NUL-terminated, truncated */
	size_t got_len;
	bool got_eof;   /* the server closed (FIN or reset) */

	/* Upgrades: the handler upgrades every request when upgrade is set. */
	bool upgrade;
	bool pause_at_upgrade;   /* the handler pauses input right after upgrading */
	bool echo;               /* on_input writes back what it got, in brackets */
	struct hd_http_request *up; /* the upgraded request, until on_close */
	bool in_call;            /* the test is inside a server call */
	char input[4096];        /* what on_input received, NUL-terminated */
	size_t input_len;
	int inputs;              /* on_input calls */
	bool up_closed;          /* on_close ran */
	const char *want;        /* what client_has_want looks for */
};

static char big[BIG_BODY];

static const char head_101[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\n"
			       "Connection: Upgrade\r\n\r\n";

static void on_input(void *arg, const char *p, size_t n)
{
	struct fixture *f = arg;

	/* Never from inside a call the edge (here, the test) made. */
	assert_false(f->in_call);
	assert_true(n > 0);
	assert_true(f->input_len + n < sizeof(f->input));
	memcpy(f->input + f->input_len, p, n);
	f->input_len += n;
	f->input[f->input_len] = '\0';
	f->inputs++;
	if (f->echo) {
		/* Two writes: they go out together after on_input returns. */
		assert_int_equal(hd_http_stream_write_copy(f->up, "[", 1), 0);
		assert_int_equal(hd_http_stream_write_copy(f->up, p, n), 0);
		assert_int_equal(hd_http_stream_write_copy(f->up, "]", 1), 0);
	}
}

static void on_up_close(void *arg)
{
	struct fixture *f = arg;

	f->up_closed = true;
	f->up = NULL;
}

static void handler(struct hd_http_request *req, void *arg)
{
	struct fixture *f = arg;

	f->requests++;
	if (f->upgrade) {
		f->up = req;
		f->in_call = true;
		assert_int_equal(req->http_major, 1);
		assert_int_equal(req->http_minor, 1);
		assert_int_equal(hd_http_upgrade(req, head_101, sizeof(head_101) - 1, on_input,
						 on_up_close, f),
				 0);
		if (f->pause_at_upgrade)
			hd_http_stream_read(req, false);
		f->in_call = false;
	} else if (f->hold)
		f->held = req;
	else
		hd_http_respond(req, 200, "text/plain", NULL, big, sizeof(big));
}

static void on_done(void *arg)
{
	struct fixture *f = arg;

	f->done = true;
}

static void on_guard(uv_timer_t *t)
{
	struct fixture *f = t->data;

	f->expired = true;
}

static void start_with(struct fixture *f, const struct hd_http_limits *lim)
{
	memset(f, 0, sizeof(*f));
	f->client = -1;
	assert_int_equal(uv_loop_init(&f->loop), 0);
	uv_timer_init(&f->loop, &f->guard);
	f->guard.data = f;
	f->srv = hd_http_server_new(&f->loop, lim, handler, f);
	assert_int_equal(hd_http_server_listen(f->srv, "127.0.0.1", 0), 0);
}

static void start(struct fixture *f, uint32_t shutdown_timeout_ms)
{
	struct hd_http_limits lim;

	hd_http_limits_default(&lim);
	lim.shutdown_timeout_ms = shutdown_timeout_ms;
	start_with(f, &lim);
}

/* Runs the loop until cond(f) holds or ms pass; returns cond(f). */
static bool run_until(struct fixture *f, bool (*cond)(struct fixture *f), uint64_t ms)
{
	f->expired = false;
	uv_timer_start(&f->guard, on_guard, ms, 0);
	while (!cond(f) && !f->expired)
		uv_run(&f->loop, UV_RUN_ONCE);
	uv_timer_stop(&f->guard);
	return cond(f);
}

static bool is_held(struct fixture *f)
{
	return f->held != NULL;
}

static bool is_done(struct fixture *f)
{
	return f->done;
}

static bool has_requests(struct fixture *f)
{
	return f->requests > 0;
}

static bool no_connections(struct fixture *f)
{
	return hd_http_server_connections(f->srv) == 0;
}

/* Connects a blocking client and sends req. The kernel completes the
 * handshake against the listen backlog, so the loop need not run. */
static void client_send(struct fixture *f, const char *req, int rcvbuf)
{
	struct sockaddr_in a = {.sin_family = AF_INET};

	a.sin_port = htons((uint16_t)hd_http_server_port(f->srv));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	f->client = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(f->client >= 0);
	if (rcvbuf)
		assert_int_equal(setsockopt(f->client, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
	assert_int_equal(connect(f->client, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(send(f->client, req, strlen(req), 0), (ssize_t)strlen(req));
}

/*
 * Reads what has arrived without blocking; returns whether the server has
 * closed the connection. Used as a run_until condition, so the client reads
 * between turns of the loop and a server lingering for its FIN gets it.
 */
static bool client_closed(struct fixture *f)
{
	char tmp[4096];
	ssize_t r;

	while (!f->got_eof) {
		r = recv(f->client, tmp, sizeof(tmp), MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno == ECONNRESET)) {
			f->got_eof = true;
		} else if (r < 0) {
			assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
			break;
		} else {
			size_t room = sizeof(f->got) - 1 - f->got_len;
			size_t keep = (size_t)r < room ? (size_t)r : room;
			memcpy(f->got + f->got_len, tmp, keep);
			f->got_len += keep;
			f->got[f->got_len] = '\0';
		}
	}
	return f->got_eof;
}

/* Reads what arrived; whether it holds f->want. */
static bool client_has_want(struct fixture *f)
{
	client_closed(f);
	return strstr(f->got, f->want) != NULL;
}

static bool input_has_want(struct fixture *f)
{
	return strstr(f->input, f->want) != NULL;
}

static bool up_closed(struct fixture *f)
{
	return f->up_closed;
}

static void client_write(struct fixture *f, const char *p)
{
	assert_int_equal(send(f->client, p, strlen(p), 0), (ssize_t)strlen(p));
}

static const char get_upgrade[] = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: test\r\n"
				  "Connection: Upgrade\r\n\r\n";

/* Upgrades a connection whose request came with first (possibly "") in
 * the same write, and waits until the client has the 101. */
static void upgrade(struct fixture *f, const char *first)
{
	char req[512];

	f->upgrade = true;
	snprintf(req, sizeof(req), "%s%s", get_upgrade, first);
	client_send(f, req, 0);
	f->want = "\r\n\r\n";
	assert_true(run_until(f, client_has_want, 2000));
	assert_non_null(f->up);
	assert_memory_equal(f->got, head_101, sizeof(head_101) - 1);
	/* Nothing else: no Content-Length, no body. */
	assert_int_equal(f->got_len, sizeof(head_101) - 1);
	f->got_len = 0;
	f->got[0] = '\0';
}

static void finish(struct fixture *f)
{
	hd_http_server_free(f->srv);
	uv_close((uv_handle_t *)&f->guard, NULL);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	if (f->client >= 0)
		close(f->client);
}

static void test_deadline_closes_connection_of_request_in_handler(void **state)
{
	struct fixture f;

	start(&f, 50);
	f.hold = true;
	client_send(&f, get_hold, 0);
	assert_true(run_until(&f, is_held, 2000));
	hd_http_server_shutdown(f.srv, on_done, &f);
	/* Shutdown leaves a connection whose request is in the handler; the
	 * deadline closes it. */
	assert_true(run_until(&f, no_connections, 2000));
	assert_false(hd_http_request_alive(f.held));
	assert_true(run_until(&f, client_closed, 2000));
	assert_int_equal(f.got_len, 0);
	/* The request stays valid until it is answered, and the stop waits
	 * for that answer. */
	assert_string_equal(f.held->path, "/hold");
	assert_false(run_until(&f, is_done, 20));
	hd_http_respond(f.held, 200, "text/plain", NULL, "late", 4);
	f.held = NULL;
	assert_true(run_until(&f, is_done, 2000));
	finish(&f);
}

static void test_answer_before_deadline_is_delivered(void **state)
{
	struct fixture f;

	start(&f, 5000);
	f.hold = true;
	client_send(&f, get_hold, 0);
	assert_true(run_until(&f, is_held, 2000));
	hd_http_server_shutdown(f.srv, on_done, &f);
	hd_http_respond(f.held, 200, "text/plain", NULL, "in time", 7);
	f.held = NULL;
	/* The response is written and the connection closed after it; the
	 * client closes in turn and the stop is done, long before the
	 * deadline. */
	assert_true(run_until(&f, client_closed, 1000));
	assert_non_null(strstr(f.got, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(f.got, "Connection: close\r\n"));
	assert_non_null(strstr(f.got, "\r\n\r\nin time"));
	close(f.client);
	f.client = -1;
	assert_true(run_until(&f, is_done, 1000));
	finish(&f);
}

static void test_deadline_closes_client_that_does_not_read(void **state)
{
	struct fixture f;

	/* Without the deadline this stop would wait for idle_timeout_ms (60 s
	 * by default) with the answer unwritten. */
	start(&f, 100);
	client_send(&f, get_hold, 4096);
	assert_true(run_until(&f, has_requests, 2000));
	hd_http_server_shutdown(f.srv, on_done, &f);
	assert_true(run_until(&f, is_done, 3000));
	finish(&f);
}

static void test_stop_with_nothing_open_does_not_wait_for_the_deadline(void **state)
{
	struct fixture f;

	start(&f, 60 * 1000);
	hd_http_server_shutdown(f.srv, on_done, &f);
	assert_true(run_until(&f, is_done, 1000));
	finish(&f);
}

static void test_zero_means_no_deadline(void **state)
{
	struct fixture f;

	start(&f, 0);
	f.hold = true;
	client_send(&f, get_hold, 0);
	assert_true(run_until(&f, is_held, 2000));
	hd_http_server_shutdown(f.srv, on_done, &f);
	assert_false(run_until(&f, no_connections, 100));
	assert_true(hd_http_request_alive(f.held));
	hd_http_respond(f.held, 204, NULL, NULL, NULL, 0);
	f.held = NULL;
	assert_true(run_until(&f, client_closed, 1000));
	assert_non_null(strstr(f.got, "HTTP/1.1 204 No Content\r\n"));
	close(f.client);
	f.client = -1;
	assert_true(run_until(&f, is_done, 1000));
	finish(&f);
}

static void test_upgrade_input_output_and_pause(void **state)
{
	struct fixture f;

	start(&f, 1000);
	upgrade(&f, "early bytes");
	/* The bytes sent with the request come out of the loop, not out of
	 * hd_http_upgrade (on_input checks in_call). */
	f.want = "early bytes";
	assert_true(run_until(&f, input_has_want, 2000));
	assert_string_equal(f.input, "early bytes");

	/* Stream writes reach the client as they are. */
	f.in_call = true;
	assert_int_equal(hd_http_stream_write_copy(f.up, "from server", 11), 0);
	f.in_call = false;
	f.want = "from server";
	assert_true(run_until(&f, client_has_want, 2000));
	assert_string_equal(f.got, "from server");

	/* Later input arrives too. */
	client_write(&f, "+more");
	f.want = "+more";
	assert_true(run_until(&f, input_has_want, 2000));

	/* Paused: nothing is handed over... */
	f.in_call = true;
	hd_http_stream_read(f.up, false);
	f.in_call = false;
	client_write(&f, "+paused");
	f.want = "+paused";
	assert_false(run_until(&f, input_has_want, 100));
	assert_string_equal(f.input, "early bytes+more");
	/* ...until input is on again; the resume itself hands nothing over. */
	f.in_call = true;
	hd_http_stream_read(f.up, true);
	f.in_call = false;
	assert_true(run_until(&f, input_has_want, 2000));
	assert_string_equal(f.input, "early bytes+more+paused");

	/* Writes from on_input go out once it returns. */
	f.echo = true;
	client_write(&f, "ping");
	f.want = "[ping]";
	assert_true(run_until(&f, client_has_want, 2000));

	/* The client leaves: on_close, and the connection is freed. */
	close(f.client);
	f.client = -1;
	assert_true(run_until(&f, up_closed, 2000));
	assert_true(run_until(&f, no_connections, 2000));
	hd_http_server_shutdown(f.srv, on_done, &f);
	assert_true(run_until(&f, is_done, 2000));
	finish(&f);
}

static void test_upgrade_paused_before_early_bytes(void **state)
{
	struct fixture f;

	start(&f, 1000);
	f.pause_at_upgrade = true;
	upgrade(&f, "held back");
	assert_false(run_until(&f, up_closed, 100));
	assert_int_equal(f.inputs, 0);
	f.in_call = true;
	hd_http_stream_read(f.up, true);
	f.in_call = false;
	f.want = "held back";
	assert_true(run_until(&f, input_has_want, 2000));
	/* The edge ends: the client sees the output, then the close. */
	f.in_call = true;
	assert_int_equal(hd_http_stream_write_copy(f.up, "bye", 3), 0);
	hd_http_stream_end(f.up);
	f.up = NULL;
	f.in_call = false;
	assert_true(run_until(&f, client_closed, 2000));
	assert_string_equal(f.got, "bye");
	assert_false(f.up_closed); /* not after an explicit end */
	close(f.client);
	f.client = -1;
	assert_true(run_until(&f, no_connections, 2000));
	hd_http_server_shutdown(f.srv, on_done, &f);
	assert_true(run_until(&f, is_done, 2000));
	finish(&f);
}

static void test_upgrade_no_header_or_idle_timeout(void **state)
{
	struct hd_http_limits lim;
	struct fixture f;

	hd_http_limits_default(&lim);
	lim.header_timeout_ms = 30;
	lim.idle_timeout_ms = 30;
	start_with(&f, &lim);
	/* Half a request line after the upgrade would be a slow request if
	 * the HTTP timers still ran. */
	upgrade(&f, "GET / HT");
	assert_false(run_until(&f, up_closed, 300));
	assert_true(client_closed(&f) == false);
	assert_string_equal(f.input, "GET / HT");
	assert_int_equal(f.got_len, 0);
	/* A stop waits for the edge; the edge ends the connection. */
	hd_http_server_shutdown(f.srv, on_done, &f);
	assert_false(run_until(&f, no_connections, 50));
	hd_http_stream_end(f.up);
	f.up = NULL;
	assert_true(run_until(&f, client_closed, 2000));
	close(f.client);
	f.client = -1;
	assert_true(run_until(&f, is_done, 2000));
	finish(&f);
}

static void test_upgrade_closed_by_deadline(void **state)
{
	struct fixture f;

	start(&f, 50);
	upgrade(&f, "");
	hd_http_server_shutdown(f.srv, on_done, &f);
	/* The edge does not end it: the deadline closes it and on_close runs. */
	assert_true(run_until(&f, up_closed, 2000));
	assert_true(run_until(&f, is_done, 2000));
	finish(&f);
}

int main(void)
{
	/* A server writing to a client that left must see EPIPE, as herald's
	 * main arranges. */
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_deadline_closes_connection_of_request_in_handler),
		cmocka_unit_test(test_answer_before_deadline_is_delivered),
		cmocka_unit_test(test_deadline_closes_client_that_does_not_read),
		cmocka_unit_test(test_stop_with_nothing_open_does_not_wait_for_the_deadline),
		cmocka_unit_test(test_zero_means_no_deadline),
		cmocka_unit_test(test_upgrade_input_output_and_pause),
		cmocka_unit_test(test_upgrade_paused_before_early_bytes),
		cmocka_unit_test(test_upgrade_no_header_or_idle_timeout),
		cmocka_unit_test(test_upgrade_closed_by_deadline),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
