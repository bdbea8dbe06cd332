/*
 * Unit tests for net/http_client.c: the client runs on a real libuv loop
 * against a receiver written here (a raw TCP server on 127.0.0.1, on the
 * same loop) that reads one request per connection and then answers with a
 * canned response, never answers, resets the connection, or holds requests
 * and answers them in batches. Every wait has a deadline; timing
 * assertions are loose (the machine may be loaded). Plus a table test of
 * the SSRF address rule.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/clock.h"
#include "core/err.h"
#include "net/http_client.h"

#define WAIT_MS 5000                /* deadline of every wait for an event */
#define RECV_BUF_MAX (4 << 20)      /* the receiver reads requests up to this */
#define HOLD_MAX 16

/* ---- the receiver --------------------------------------------------------- */

enum rmode {
	R_RESPOND, /* read the request, write r->response, close */
	R_SILENT,  /* read the request, never answer */
	R_RESET,   /* reset the connection as soon as it is accepted */
	R_HOLD,    /* hold requests; answer all held ones when hold_n are held
		      or the expect_total-th request arrived */
};

struct receiver;

struct rconn {
	uv_tcp_t tcp;
	struct receiver *r;
	char *buf;
	size_t len, cap;
	bool got;        /* the whole request was read */
	bool answered;   /* no longer counted active */
	bool closing;
	uv_write_t wr;
	struct rconn *next;
};

struct receiver {
	uv_loop_t *loop;
	uv_tcp_t server;
	int port;
	enum rmode mode;
	const char *response;
	size_t response_len;
	int accepts, open, requests;
	int active, peak_active;  /* accepted and not yet answered */
	char method[16], target[256];
	char headers[8192];
	char *body;
	size_t body_len;
	struct rconn *held[HOLD_MAX];
	int nheld, hold_n, expect_total;
	struct rconn *conns;
};

static void rconn_closed(uv_handle_t *h)
{
	struct rconn *c = h->data;
	struct receiver *r = c->r;

	for (struct rconn **pp = &r->conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	r->open--;
	free(c->buf);
	free(c);
}

static void rconn_close(struct rconn *c)
{
	struct receiver *r = c->r;

	if (c->closing)
		return;
	c->closing = true;
	for (int i = 0; i < r->nheld; i++)
		if (r->held[i] == c) {
			r->held[i] = r->held[--r->nheld];
			break;
		}
	if (!c->answered) {
		c->answered = true;
		r->active--;
	}
	uv_close((uv_handle_t *)&c->tcp, rconn_closed);
}

static void on_written(uv_write_t *w, int status)
{
	rconn_close(w->data);
}

static void respond(struct rconn *c)
{
	struct receiver *r = c->r;
	uv_buf_t b = uv_buf_init((char *)r->response, (unsigned)r->response_len);

	c->answered = true;
	r->active--;
	c->wr.data = c;
	assert_int_equal(uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, on_written), 0);
}

static void release_held(struct receiver *r)
{
	while (r->nheld > 0)
		respond(r->held[--r->nheld]);
}

static void on_request(struct rconn *c, size_t head_len, size_t body_len)
{
	struct receiver *r = c->r;
	const char *sp1 = memchr(c->buf, ' ', head_len);
	const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', head_len - (size_t)(sp1 + 1 - c->buf)) : NULL;

	c->got = true;
	r->requests++;
	assert_non_null(sp2);
	snprintf(r->method, sizeof(r->method), "%.*s", (int)(sp1 - c->buf), c->buf);
	snprintf(r->target, sizeof(r->target), "%.*s", (int)(sp2 - sp1 - 1), sp1 + 1);
	snprintf(r->headers, sizeof(r->headers), "%.*s", (int)head_len, c->buf);
	free(r->body);
	r->body = malloc(body_len + 1);
	memcpy(r->body, c->buf + head_len, body_len);
	r->body[body_len] = '\0';
	r->body_len = body_len;
	switch (r->mode) {
	case R_RESPOND:
		respond(c);
		break;
	case R_HOLD:
		assert_true(r->nheld < HOLD_MAX);
		r->held[r->nheld++] = c;
		if (r->nheld >= r->hold_n || r->requests >= r->expect_total)
			release_held(r);
		break;
	default:
		break;
	}
}

static void try_parse(struct rconn *c)
{
	char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
	size_t cl = 0;

	if (c->got || !end)
		return;
	size_t head_len = (size_t)(end - c->buf) + 4;
	for (const char *p = c->buf; p < end; p++) {
		if (p[0] == '\n' && strncasecmp(p + 1, "content-length:", 15) == 0) {
			cl = strtoul(p + 16, NULL, 10);
			break;
		}
	}
	if (c->len >= head_len + cl)
		on_request(c, head_len, cl);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct rconn *c = h->data;

	if (c->cap - c->len < 65536 && c->cap < RECV_BUF_MAX) {
		c->cap = c->cap ? c->cap * 2 : 131072;
		c->buf = realloc(c->buf, c->cap);
	}
	*b = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct rconn *c = s->data;

	if (n < 0 || c->len + (size_t)n >= c->cap) {
		rconn_close(c);
		return;
	}
	c->len += (size_t)n;
	try_parse(c);
}

static void on_reset(uv_handle_t *h)
{
	rconn_closed(h);
}

static void on_connection(uv_stream_t *server, int status)
{
	struct receiver *r = server->data;
	struct rconn *c = calloc(1, sizeof(*c));

	assert_int_equal(status, 0);
	c->r = r;
	uv_tcp_init(r->loop, &c->tcp);
	c->tcp.data = c;
	assert_int_equal(uv_accept(server, (uv_stream_t *)&c->tcp), 0);
	c->next = r->conns;
	r->conns = c;
	r->accepts++;
	r->open++;
	r->active++;
	if (r->active > r->peak_active)
		r->peak_active = r->active;
	if (r->mode == R_RESET) {
		c->answered = true;
		c->closing = true;
		r->active--;
		uv_tcp_close_reset(&c->tcp, on_reset);
		return;
	}
	uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void receiver_start(struct receiver *r, uv_loop_t *loop, enum rmode mode)
{
	struct sockaddr_in a;
	struct sockaddr_storage got;
	int len = sizeof(got);

	memset(r, 0, sizeof(*r));
	r->loop = loop;
	r->mode = mode;
	uv_tcp_init(loop, &r->server);
	r->server.data = r;
	uv_ip4_addr("127.0.0.1", 0, &a);
	assert_int_equal(uv_tcp_bind(&r->server, (struct sockaddr *)&a, 0), 0);
	assert_int_equal(uv_listen((uv_stream_t *)&r->server, 64, on_connection), 0);
	uv_tcp_getsockname(&r->server, (struct sockaddr *)&got, &len);
	r->port = ntohs(((struct sockaddr_in *)&got)->sin_port);
}

static void receiver_stop(struct receiver *r)
{
	for (struct rconn *c = r->conns; c; c = c->next)
		rconn_close(c);
	uv_close((uv_handle_t *)&r->server, NULL);
}

/* ---- the loop and the calls --------------------------------------------- */

struct t {
	uv_loop_t loop;
	uv_timer_t deadline;
	uv_prepare_t prepare;
	uv_check_t check;
	struct wait *wait;
	bool expired;
	struct receiver r;
	struct hd_http_client *c;
	char url[128];
};

struct res {
	struct hd_http_call call;
	int done;
	uint64_t done_ms;
	char *response;   /* a copy of call.response */
};

static bool in_send; /* done() must never run inside send */

static void on_done(struct hd_http_call *call)
{
	struct res *s = call->arg;

	assert_false(in_send);
	s->done++;
	s->done_ms = hd_mono_ms();
	assert_non_null(call->response);
	assert_int_equal(call->response[call->response_len], '\0');
	free(s->response);
	s->response = malloc(call->response_len + 1);
	memcpy(s->response, call->response, call->response_len + 1);
}

static int send_call(struct t *t, struct res *s, const char *url, const char *method,
		     const struct hd_http_header *h, size_t nh, const char *body, size_t body_len)
{
	memset(s, 0, sizeof(*s));
	s->call.url = url;
	s->call.method = method;
	s->call.headers = h;
	s->call.nheaders = nh;
	s->call.body = body;
	s->call.body_len = body_len;
	s->call.done = on_done;
	s->call.arg = s;
	in_send = true;
	int rc = hd_http_client_send(t->c, &s->call);
	in_send = false;
	return rc;
}

/* The wait in progress: run_until stops the loop as soon as cond holds. */
struct wait {
	bool (*cond)(void *);
	void *arg;
};

static void on_deadline(uv_timer_t *tm)
{
	struct t *t = tm->data;
	t->expired = true;
	uv_stop(tm->loop);
}

static void check_wait(struct t *t)
{
	struct wait *w = t->wait;
	if (w && w->cond(w->arg))
		uv_stop(&t->loop);
}

static void on_prepare(uv_prepare_t *h)
{
	check_wait(h->data);
}

static void on_check(uv_check_t *h)
{
	check_wait(h->data);
}

/* Runs the loop until cond(arg) holds or ms pass; returns cond(arg). The
 * condition is checked before the loop blocks for I/O and after each I/O
 * round, so the wait ends as soon as a callback made it true. */
static bool run_until(struct t *t, bool (*cond)(void *), void *arg, uint64_t ms)
{
	struct wait w = {cond, arg};

	t->expired = false;
	t->wait = &w;
	uv_timer_start(&t->deadline, on_deadline, ms, 0);
	while (!cond(arg) && !t->expired)
		uv_run(&t->loop, UV_RUN_DEFAULT);
	uv_timer_stop(&t->deadline);
	t->wait = NULL;
	return cond(arg);
}

static bool is_done(void *arg)
{
	return ((struct res *)arg)->done > 0;
}

static void wait_done(struct t *t, struct res *s)
{
	assert_true(run_until(t, is_done, s, WAIT_MS));
}

static const struct hd_http_client_opts default_opts = {
	.timeout_ms = 5000,
	.connect_timeout_ms = 5000,
	.max_per_host = 4,
	.max_total = 16,
	.max_inflight = 64,
	.max_response = 65536,
	.allow_private = true,
	.user_agent = "herald-test/1",
};

static void t_open(struct t *t, const struct hd_http_client_opts *o, enum rmode mode)
{
	struct hd_error err = {0};

	memset(t, 0, sizeof(*t));
	assert_int_equal(uv_loop_init(&t->loop), 0);
	uv_timer_init(&t->loop, &t->deadline);
	t->deadline.data = t;
	/* Both check the wait in progress; neither keeps the loop alive. */
	uv_prepare_init(&t->loop, &t->prepare);
	uv_check_init(&t->loop, &t->check);
	t->prepare.data = t->check.data = t;
	uv_prepare_start(&t->prepare, on_prepare);
	uv_check_start(&t->check, on_check);
	uv_unref((uv_handle_t *)&t->prepare);
	uv_unref((uv_handle_t *)&t->check);
	receiver_start(&t->r, &t->loop, mode);
	t->c = hd_http_client_new(&t->loop, o ? o : &default_opts, &err);
	assert_non_null(t->c);
	snprintf(t->url, sizeof(t->url), "http://127.0.0.1:%d/hook?x=1", t->r.port);
}

/* Closes everything and checks that every handle was closed. */
static void t_close(struct t *t)
{
	hd_http_client_close(t->c);
	receiver_stop(&t->r);
	uv_close((uv_handle_t *)&t->deadline, NULL);
	uv_close((uv_handle_t *)&t->prepare, NULL);
	uv_close((uv_handle_t *)&t->check, NULL);
	uv_run(&t->loop, UV_RUN_DEFAULT);
	hd_http_client_free(t->c);
	assert_int_equal(t->r.open, 0);
	assert_int_equal(uv_loop_close(&t->loop), 0);
	free(t->r.body);
}

static void res_fini(struct res *s)
{
	free(s->response);
	s->response = NULL;
}

static const char ok_response[] =
	"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";

static void set_response(struct receiver *r, const char *text)
{
	r->response = text;
	r->response_len = strlen(text);
}

/* ---- tests --------------------------------------------------------------- */

static void test_success(void **state)
{
	struct t t;
	struct res s;
	const struct hd_http_header h[] = {
		{"Content-Type", "application/json"},
		{"webhook-id", "msg_1"},
		{"X-Empty", ""},
	};
	const char body[] = "{\"a\":1}";

	t_open(&t, NULL, R_RESPOND);
	set_response(&t.r, ok_response);
	assert_int_equal(send_call(&t, &s, t.url, "POST", h, 3, body, strlen(body)), 0);
	assert_int_equal(hd_http_client_inflight(t.c), 1);
	assert_int_equal(s.done, 0);
	wait_done(&t, &s);
	assert_int_equal(s.done, 1);
	assert_int_equal(hd_http_client_inflight(t.c), 0);
	assert_int_equal(s.call.err, 0);
	assert_string_equal(s.call.error, "");
	assert_int_equal(s.call.status, 200);
	assert_int_equal(s.call.response_len, 5);
	assert_string_equal(s.response, "hello");
	assert_int_equal(s.call.retry_after_ms, -1);
	assert_true(s.call.latency_us > 0);
	assert_true(s.call.latency_us < 5000000);
	/* What the receiver saw. */
	assert_int_equal(t.r.requests, 1);
	assert_string_equal(t.r.method, "POST");
	assert_string_equal(t.r.target, "/hook?x=1");
	assert_non_null(strstr(t.r.headers, "\r\nContent-Type: application/json\r\n"));
	assert_non_null(strstr(t.r.headers, "\r\nwebhook-id: msg_1\r\n"));
	assert_non_null(strstr(t.r.headers, "\r\nX-Empty:"));
	assert_non_null(strstr(t.r.headers, "\r\nUser-Agent: herald-test/1\r\n"));
	assert_non_null(strstr(t.r.headers, "\r\nContent-Length: 7\r\n"));
	assert_null(strcasestr(t.r.headers, "\r\nExpect:"));
	assert_int_equal(t.r.body_len, strlen(body));
	assert_string_equal(t.r.body, body);
	res_fini(&s);
	t_close(&t);
}

/* Calls one after the other on one client reuse its easy handles (the
 * pool): each request has its own method, body and headers, nothing of the
 * one before (a HEAD's NOBODY, a PUT's custom verb, a header). */
static void test_reused_handles(void **state)
{
	static const struct {
		const char *method, *body, *header, *value;
	} seq[] = {
		{"POST", "{\"a\":1}", "X-One", "1"},
		{"GET", NULL, "X-Two", "2"},
		{"HEAD", NULL, NULL, NULL},
		{"PUT", "put-body", "X-Three", "3"},
		{"POST", "again", NULL, NULL},
		{"DELETE", NULL, NULL, NULL},
		{"GET", NULL, NULL, NULL},
	};
	struct t t;

	t_open(&t, NULL, R_RESPOND);
	set_response(&t.r, ok_response);
	for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
		struct res s;
		struct hd_http_header h = {seq[i].header, seq[i].value};
		size_t blen = seq[i].body ? strlen(seq[i].body) : 0;
		assert_int_equal(send_call(&t, &s, t.url, seq[i].method, seq[i].header ? &h : NULL,
					   seq[i].header ? 1 : 0, seq[i].body, blen), 0);
		wait_done(&t, &s);
		assert_int_equal(s.call.err, 0);
		assert_int_equal(s.call.status, 200);
		assert_int_equal(t.r.requests, (int)i + 1);
		assert_string_equal(t.r.method, seq[i].method);
		assert_int_equal(t.r.body_len, blen);
		if (blen)
			assert_string_equal(t.r.body, seq[i].body);
		assert_int_equal(strstr(t.r.headers, "\r\nX-One:") != NULL, i == 0);
		assert_int_equal(strstr(t.r.headers, "\r\nX-Two:") != NULL, i == 1);
		assert_int_equal(strstr(t.r.headers, "\r\nX-Three:") != NULL, i == 3);
		assert_null(strcasestr(t.r.headers, "\r\nExpect:"));
		if (strcmp(seq[i].method, "HEAD") != 0)
			assert_string_equal(s.response, "hello");
		res_fini(&s);
	}
	t_close(&t);
}

/* A body big enough for curl to ask for 100-continue (over 1 MiB) goes
 * without "Expect:" (so no wait for an interim response) and arrives
 * intact; a PUT keeps its method. */
static void test_big_body_and_method(void **state)
{
	struct t t;
	struct res s;
	size_t n = 1536 * 1024;
	char *body = malloc(n);

	for (size_t i = 0; i < n; i++)
		body[i] = (char)('a' + i % 26);
	t_open(&t, NULL, R_RESPOND);
	set_response(&t.r, ok_response);
	assert_int_equal(send_call(&t, &s, t.url, "PUT", NULL, 0, body, n), 0);
	wait_done(&t, &s);
	assert_int_equal(s.call.err, 0);
	assert_int_equal(s.call.status, 200);
	assert_string_equal(t.r.method, "PUT");
	assert_null(strcasestr(t.r.headers, "\r\nExpect:"));
	assert_int_equal(t.r.body_len, n);
	assert_memory_equal(t.r.body, body, n);
	res_fini(&s);
	free(body);
	t_close(&t);
}

static void test_redirect_not_followed(void **state)
{
	struct t t;
	struct res s;
	char resp[256];

	t_open(&t, NULL, R_RESPOND);
	snprintf(resp, sizeof(resp),
		 "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:%d/elsewhere\r\n"
		 "Content-Length: 0\r\nConnection: close\r\n\r\n",
		 t.r.port);
	set_response(&t.r, resp);
	assert_int_equal(send_call(&t, &s, t.url, "POST", NULL, 0, "x", 1), 0);
	wait_done(&t, &s);
	assert_int_equal(s.call.err, 0);
	assert_int_equal(s.call.status, 302);
	assert_int_equal(s.call.response_len, 0);
	assert_int_equal(t.r.requests, 1);
	assert_string_equal(t.r.target, "/hook?x=1");
	res_fini(&s);
	t_close(&t);
}

static void one_status(struct t *t, const char *resp, int status, int64_t lo, int64_t hi)
{
	struct res s;

	set_response(&t->r, resp);
	assert_int_equal(send_call(t, &s, t->url, "POST", NULL, 0, "x", 1), 0);
	wait_done(t, &s);
	assert_int_equal(s.call.err, 0);
	assert_int_equal(s.call.status, status);
	if (lo < 0) {
		assert_int_equal(s.call.retry_after_ms, -1);
	} else {
		assert_true(s.call.retry_after_ms >= lo);
		assert_true(s.call.retry_after_ms <= hi);
	}
	res_fini(&s);
}

static void test_retry_after(void **state)
{
	struct t t;
	char dated[256], past[256], date[64];
	time_t now = time(NULL);
	struct tm tm;

	t_open(&t, NULL, R_RESPOND);
	one_status(&t, "HTTP/1.1 429 Too Many\r\nRetry-After: 2\r\nContent-Length: 0\r\n"
		       "Connection: close\r\n\r\n", 429, 2000, 2000);
	one_status(&t, "HTTP/1.1 410 Gone\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
		   410, -1, -1);
	one_status(&t, "HTTP/1.1 503 Busy\r\nretry-after:   soon \r\nContent-Length: 0\r\n"
		       "Connection: close\r\n\r\n", 503, -1, -1);
	now += 120;
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	snprintf(dated, sizeof(dated),
		 "HTTP/1.1 503 Busy\r\nRetry-After: %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
		 date);
	/* 120 s ahead, less whatever the test took (generous). */
	one_status(&t, dated, 503, 60000, 121000);
	now -= 3600;
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	snprintf(past, sizeof(past),
		 "HTTP/1.1 503 Busy\r\nRetry-After: %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
		 date);
	one_status(&t, past, 503, 0, 0);
	assert_int_equal(t.r.requests, 5);
	t_close(&t);
}

static void test_timeout(void **state)
{
	struct t t;
	struct res s;
	struct hd_http_client_opts o = default_opts;

	o.timeout_ms = 300;
	o.connect_timeout_ms = 300;
	t_open(&t, &o, R_SILENT);
	uint64_t start = hd_mono_ms();
	assert_int_equal(send_call(&t, &s, t.url, "POST", NULL, 0, "x", 1), 0);
	wait_done(&t, &s);
	uint64_t took = s.done_ms - start;
	assert_int_equal(s.call.err, HD_ETIMEOUT);
	assert_int_equal(s.call.status, 0);
	assert_true(s.call.error[0] != '\0');
	assert_true(took >= 250);
	assert_true(took <= 5000);
	assert_int_equal(t.r.requests, 1);
	res_fini(&s);
	t_close(&t);
}

static void test_connection_refused(void **state)
{
	struct t t;
	struct res s;
	uv_tcp_t tmp;
	struct sockaddr_in a;
	struct sockaddr_storage got;
	int len = sizeof(got);
	char url[128];

	t_open(&t, NULL, R_RESPOND);
	/* A port that was just free: bind, read it, close. */
	uv_tcp_init(&t.loop, &tmp);
	uv_ip4_addr("127.0.0.1", 0, &a);
	assert_int_equal(uv_tcp_bind(&tmp, (struct sockaddr *)&a, 0), 0);
	uv_tcp_getsockname(&tmp, (struct sockaddr *)&got, &len);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", ntohs(((struct sockaddr_in *)&got)->sin_port));
	uv_close((uv_handle_t *)&tmp, NULL);
	uv_run(&t.loop, UV_RUN_NOWAIT);
	assert_int_equal(send_call(&t, &s, url, "POST", NULL, 0, "x", 1), 0);
	wait_done(&t, &s);
	assert_int_equal(s.call.err, HD_EUNAVAIL);
	assert_int_equal(s.call.status, 0);
	assert_true(s.call.error[0] != '\0');
	res_fini(&s);
	t_close(&t);
}

static void test_connection_reset(void **state)
{
	struct t t;
	struct res s;

	t_open(&t, NULL, R_RESET);
	assert_int_equal(send_call(&t, &s, t.url, "POST", NULL, 0, "x", 1), 0);
	wait_done(&t, &s);
	assert_int_equal(s.call.err, HD_EUNAVAIL);
	assert_int_equal(s.call.status, 0);
	assert_true(s.call.error[0] != '\0');
	res_fini(&s);
	t_close(&t);
}

static void on_tick(uv_timer_t *tm)
{
	*(bool *)tm->data = true;
}

static bool flag_set(void *arg)
{
	return *(bool *)arg;
}

/* Runs the loop for ms, for checking that something does not happen. */
static void run_for(struct t *t, uint64_t ms)
{
	uv_timer_t tm;
	bool fired = false;

	uv_timer_init(&t->loop, &tm);
	tm.data = &fired;
	uv_timer_start(&tm, on_tick, ms, 0);
	run_until(t, flag_set, &fired, ms + WAIT_MS);
	uv_close((uv_handle_t *)&tm, NULL);
	uv_run(&t->loop, UV_RUN_NOWAIT);
}

static void test_private_refused(void **state)
{
	struct t t;
	struct res s;
	struct hd_http_client_opts o = default_opts;
	char url6[128];

	o.allow_private = false;
	t_open(&t, &o, R_RESPOND);
	set_response(&t.r, ok_response);
	assert_int_equal(send_call(&t, &s, t.url, "POST", NULL, 0, "x", 1), 0);
	wait_done(&t, &s);
	assert_int_equal(s.call.err, HD_EFORBIDDEN);
	assert_int_equal(s.call.status, 0);
	assert_string_equal(s.call.error, "destination 127.0.0.1 is a private or loopback address");
	res_fini(&s);
	/* IPv6 loopback, literal: refused before any connection as well. */
	snprintf(url6, sizeof(url6), "http://[::1]:%d/", t.r.port);
	assert_int_equal(send_call(&t, &s, url6, "POST", NULL, 0, "x", 1), 0);
	wait_done(&t, &s);
	assert_int_equal(s.call.err, HD_EFORBIDDEN);
	assert_string_equal(s.call.error, "destination ::1 is a private or loopback address");
	res_fini(&s);
	/* "localhost" resolves to loopback: the check runs after resolution. */
	snprintf(url6, sizeof(url6), "http://localhost:%d/", t.r.port);
	assert_int_equal(send_call(&t, &s, url6, "POST", NULL, 0, "x", 1), 0);
	wait_done(&t, &s);
	assert_int_equal(s.call.err, HD_EFORBIDDEN);
	assert_non_null(strstr(s.call.error, "is a private or loopback address"));
	res_fini(&s);
	run_for(&t, 50);
	assert_int_equal(t.r.accepts, 0);
	t_close(&t);
}

static void test_invalid(void **state)
{
	struct t t;
	struct res s;
	const struct hd_http_header crlf[] = {{"X-A", "b\r\nX-Injected: 1"}};
	const struct hd_http_header colon[] = {{"X:A", "b"}};

	t_open(&t, NULL, R_RESPOND);
	assert_int_equal(send_call(&t, &s, "ftp://127.0.0.1/", "POST", NULL, 0, NULL, 0), HD_EINVAL);
	assert_int_equal(send_call(&t, &s, "file:///etc/passwd", "GET", NULL, 0, NULL, 0), HD_EINVAL);
	assert_int_equal(send_call(&t, &s, "127.0.0.1/x", "POST", NULL, 0, NULL, 0), HD_EINVAL);
	assert_int_equal(send_call(&t, &s, t.url, NULL, NULL, 0, NULL, 0), HD_EINVAL);
	assert_int_equal(send_call(&t, &s, t.url, "", NULL, 0, NULL, 0), HD_EINVAL);
	assert_int_equal(send_call(&t, &s, t.url, "PO ST", NULL, 0, NULL, 0), HD_EINVAL);
	assert_int_equal(send_call(&t, &s, t.url, "POST", crlf, 1, NULL, 0), HD_EINVAL);
	assert_int_equal(send_call(&t, &s, t.url, "POST", colon, 1, NULL, 0), HD_EINVAL);
	assert_int_equal(hd_http_client_inflight(t.c), 0);
	/* A URL curl cannot parse is accepted and ends in done() with EINVAL. */
	assert_int_equal(send_call(&t, &s, "http://[::1/", "POST", NULL, 0, NULL, 0), 0);
	wait_done(&t, &s);
	assert_int_equal(s.call.err, HD_EINVAL);
	assert_true(s.call.error[0] != '\0');
	res_fini(&s);
	assert_int_equal(t.r.accepts, 0);
	t_close(&t);
}

/* A failure found while setting the call up still ends in done(), on the
 * loop; and a call closed before that never sees done(). */
static void test_deferred_failure(void **state)
{
	struct t t;
	struct res s[2];
	size_t n = 9 << 20; /* over curl's 8 MiB input limit */
	char *url = malloc(n + 1);

	memcpy(url, "http://127.0.0.1/", 17);
	memset(url + 17, 'a', n - 17);
	url[n] = '\0';
	t_open(&t, NULL, R_RESPOND);
	assert_int_equal(send_call(&t, &s[0], url, "POST", NULL, 0, NULL, 0), 0);
	assert_int_equal(s[0].done, 0);
	assert_int_equal(hd_http_client_inflight(t.c), 1);
	wait_done(&t, &s[0]);
	assert_int_equal(s[0].done, 1);
	assert_int_equal(s[0].call.err, HD_EINVAL);
	assert_string_equal(s[0].call.error, "the URL is too long");
	assert_int_equal(hd_http_client_inflight(t.c), 0);
	res_fini(&s[0]);
	assert_int_equal(send_call(&t, &s[1], url, "POST", NULL, 0, NULL, 0), 0);
	hd_http_client_close(t.c);
	run_for(&t, 20);
	assert_int_equal(s[1].done, 0);
	t_close(&t);
	free(url);
}

struct count_req {
	struct receiver *r;
	int n;
};

static bool requests_reached(void *arg)
{
	struct count_req *c = arg;
	return c->r->requests >= c->n;
}

static bool receiver_idle(void *arg)
{
	return ((struct receiver *)arg)->open == 0;
}

static void test_max_inflight(void **state)
{
	struct t t;
	struct res s[4];
	struct hd_http_client_opts o = default_opts;

	o.max_inflight = 2;
	t_open(&t, &o, R_SILENT);
	assert_int_equal(send_call(&t, &s[0], t.url, "POST", NULL, 0, "x", 1), 0);
	assert_int_equal(send_call(&t, &s[1], t.url, "POST", NULL, 0, "x", 1), 0);
	assert_int_equal(send_call(&t, &s[2], t.url, "POST", NULL, 0, "x", 1), HD_ELIMIT);
	assert_int_equal(hd_http_client_inflight(t.c), 2);
	struct count_req cr = {&t.r, 2};
	assert_true(run_until(&t, requests_reached, &cr, WAIT_MS));
	assert_int_equal(send_call(&t, &s[2], t.url, "POST", NULL, 0, "x", 1), HD_ELIMIT);
	hd_http_client_cancel(t.c, &s[0].call);
	assert_int_equal(hd_http_client_inflight(t.c), 1);
	assert_int_equal(send_call(&t, &s[3], t.url, "POST", NULL, 0, "x", 1), 0);
	hd_http_client_cancel(t.c, &s[1].call);
	hd_http_client_cancel(t.c, &s[3].call);
	assert_int_equal(hd_http_client_inflight(t.c), 0);
	assert_true(run_until(&t, receiver_idle, &t.r, WAIT_MS));
	for (int i = 0; i < 4; i++)
		assert_int_equal(s[i].done, 0);
	t_close(&t);
}

static void test_cancel(void **state)
{
	struct t t;
	struct res s[2];

	t_open(&t, NULL, R_SILENT);
	/* Cancelled before the loop ever ran for it. */
	assert_int_equal(send_call(&t, &s[0], t.url, "POST", NULL, 0, "x", 1), 0);
	hd_http_client_cancel(t.c, &s[0].call);
	assert_int_equal(hd_http_client_inflight(t.c), 0);
	/* Cancelled while the receiver holds the request: the connection closes. */
	assert_int_equal(send_call(&t, &s[1], t.url, "POST", NULL, 0, "x", 1), 0);
	struct count_req cr = {&t.r, 1};
	assert_true(run_until(&t, requests_reached, &cr, WAIT_MS));
	hd_http_client_cancel(t.c, &s[1].call);
	assert_int_equal(hd_http_client_inflight(t.c), 0);
	assert_true(run_until(&t, receiver_idle, &t.r, WAIT_MS));
	run_for(&t, 50);
	assert_int_equal(s[0].done, 0);
	assert_int_equal(s[1].done, 0);
	t_close(&t);
}

static void test_close_with_calls_in_flight(void **state)
{
	struct t t;
	struct res s[3];

	t_open(&t, NULL, R_SILENT);
	for (int i = 0; i < 3; i++)
		assert_int_equal(send_call(&t, &s[i], t.url, "POST", NULL, 0, "x", 1), 0);
	struct count_req cr = {&t.r, 3};
	assert_true(run_until(&t, requests_reached, &cr, WAIT_MS));
	hd_http_client_close(t.c);
	assert_int_equal(hd_http_client_inflight(t.c), 0);
	assert_int_equal(send_call(&t, &s[0], t.url, "POST", NULL, 0, "x", 1), HD_EUNAVAIL);
	assert_true(run_until(&t, receiver_idle, &t.r, WAIT_MS));
	for (int i = 0; i < 3; i++)
		assert_int_equal(s[i].done, 0);
	t_close(&t); /* closes again (a no-op), frees; ASan checks for leaks */
}

/* done() may start the next call and close the client. */
struct chain {
	struct t *t;
	struct res first, second;
	int second_rc;
};

static void on_chain_second(struct hd_http_call *call)
{
	struct chain *ch = call->arg;
	ch->second.done++;
	hd_http_client_close(ch->t->c);
}

static void on_chain_first(struct hd_http_call *call)
{
	struct chain *ch = call->arg;
	ch->first.done++;
	ch->first.call.status = call->status;
	memset(&ch->second.call, 0, sizeof(ch->second.call));
	ch->second.call.url = ch->t->url;
	ch->second.call.method = "GET";
	ch->second.call.done = on_chain_second;
	ch->second.call.arg = ch;
	ch->second_rc = hd_http_client_send(ch->t->c, &ch->second.call);
}

static bool chain_done(void *arg)
{
	return ((struct chain *)arg)->second.done > 0;
}

static void test_send_and_close_from_done(void **state)
{
	struct t t;
	struct chain ch = {.t = &t};

	t_open(&t, NULL, R_RESPOND);
	set_response(&t.r, ok_response);
	ch.first.call.url = t.url;
	ch.first.call.method = "POST";
	ch.first.call.done = on_chain_first;
	ch.first.call.arg = &ch;
	assert_int_equal(hd_http_client_send(t.c, &ch.first.call), 0);
	assert_true(run_until(&t, chain_done, &ch, WAIT_MS));
	assert_int_equal(ch.second_rc, 0);
	assert_int_equal(ch.first.done, 1);
	assert_int_equal(ch.second.done, 1);
	assert_int_equal(ch.second.call.status, 200);
	assert_string_equal(t.r.method, "GET");
	t_close(&t);
}

static void test_truncated_response(void **state)
{
	struct t t;
	struct res s;
	struct hd_http_client_opts o = default_opts;
	size_t n = 1 << 20;
	char *resp = malloc(n + 128);
	int head = snprintf(resp, 128, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", n);

	for (size_t i = 0; i < n; i++)
		resp[head + i] = (char)('A' + i % 26);
	o.max_response = 1000;
	t_open(&t, &o, R_RESPOND);
	t.r.response = resp;
	t.r.response_len = (size_t)head + n;
	assert_int_equal(send_call(&t, &s, t.url, "GET", NULL, 0, NULL, 0), 0);
	wait_done(&t, &s);
	assert_int_equal(s.call.err, 0);
	assert_int_equal(s.call.status, 200);
	assert_int_equal(s.call.response_len, 1000);
	assert_memory_equal(s.response, resp + head, 1000);
	assert_int_equal(s.response[1000], '\0');
	assert_string_equal(t.r.method, "GET");
	res_fini(&s);
	t_close(&t);
	free(resp);
}

static void test_per_host_cap(void **state)
{
	struct t t;
	struct res s[5];
	struct hd_http_client_opts o = default_opts;

	o.max_per_host = 2;
	t_open(&t, &o, R_HOLD);
	set_response(&t.r, ok_response);
	/* Held requests are answered two at a time (the fifth alone): with the
	 * cap, two are all the client can have open, and a client without it
	 * would have its five connections accepted before any answer. */
	t.r.hold_n = 2;
	t.r.expect_total = 5;
	for (int i = 0; i < 5; i++)
		assert_int_equal(send_call(&t, &s[i], t.url, "POST", NULL, 0, "x", 1), 0);
	for (int i = 0; i < 5; i++) {
		wait_done(&t, &s[i]);
		assert_int_equal(s[i].call.err, 0);
		assert_int_equal(s[i].call.status, 200);
		res_fini(&s[i]);
	}
	assert_int_equal(t.r.requests, 5);
	assert_int_equal(t.r.peak_active, 2);
	t_close(&t);
}

/* An http2 client (the push providers) talking to a plain http:// origin
 * gets HTTP/1.1 answers: once it knows, a lane runs at most max_per_host
 * requests and the rest wait in the client's queue, in order. Every
 * request still completes, at most two connections at a time; an HTTP/1.1 answer
 * from a second origin (localhost next to 127.0.0.1) lifts the cap, and
 * both origins' requests complete. */
static void test_http2_client_http1_origin(void **state)
{
	enum { N = 12 };
	struct t t;
	struct res first, s[N];
	struct hd_http_client_opts o = default_opts;
	char other[128];

	o.http2 = true;
	o.max_per_host = 2;
	o.max_total = 8;
	t_open(&t, &o, R_RESPOND);
	set_response(&t.r, ok_response);
	/* The first answer tells the client the origin speaks HTTP/1.1. */
	assert_int_equal(send_call(&t, &first, t.url, "POST", NULL, 0, "x", 1), 0);
	wait_done(&t, &first);
	assert_int_equal(first.call.status, 200);
	res_fini(&first);
	/* Capped, the queue feeds the lane as answers come (not necessarily
	 * over two connections at once: curl's PIPEWAIT may keep the second
	 * request waiting for the first connection). */
	for (int i = 0; i < N; i++)
		assert_int_equal(send_call(&t, &s[i], t.url, "POST", NULL, 0, "x", 1), 0);
	for (int i = 0; i < N; i++) {
		wait_done(&t, &s[i]);
		assert_int_equal(s[i].call.err, 0);
		assert_int_equal(s[i].call.status, 200);
		res_fini(&s[i]);
	}
	assert_int_equal(t.r.requests, 1 + N);
	assert_true(t.r.peak_active <= 2);
	/* A second origin, interleaved with the first. */
	snprintf(other, sizeof(other), "http://localhost:%d/hook", t.r.port);
	for (int i = 0; i < N; i++)
		assert_int_equal(send_call(&t, &s[i], i % 2 ? other : t.url, "POST", NULL, 0, "x", 1), 0);
	for (int i = 0; i < N; i++) {
		wait_done(&t, &s[i]);
		assert_int_equal(s[i].call.err, 0);
		assert_int_equal(s[i].call.status, 200);
		res_fini(&s[i]);
	}
	assert_int_equal(t.r.requests, 1 + 2 * N);
	assert_int_equal(hd_http_client_inflight(t.c), 0);
	t_close(&t);
}

static void test_bad_options(void **state)
{
	uv_loop_t loop;
	struct hd_error err = {0};
	struct hd_http_client_opts o = default_opts;

	uv_loop_init(&loop);
	o.connect_timeout_ms = o.timeout_ms + 1;
	assert_null(hd_http_client_new(&loop, &o, &err));
	assert_int_equal(err.code, HD_EINVAL);
	o = default_opts;
	o.max_inflight = 0;
	assert_null(hd_http_client_new(&loop, &o, &err));
	assert_int_equal(uv_loop_close(&loop), 0);
}

static bool private_text(const char *text)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(text, ':')) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, text, &a->sin6_addr), 1);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, text, &a->sin_addr), 1);
	}
	return hd_http_client_addr_is_private((struct sockaddr *)&ss);
}

static void test_addr_is_private(void **state)
{
	static const char *const refused[] = {
		"127.0.0.1", "127.255.255.254", "10.0.0.1", "10.255.255.255", "172.16.0.1",
		"172.31.255.255", "192.168.0.1", "192.168.255.255", "169.254.169.254", "100.64.0.1",
		"100.127.255.255", "0.0.0.0", "0.1.2.3", "224.0.0.1", "239.255.255.255", "240.0.0.1",
		"255.255.255.255", "::", "::1", "fe80::1", "febf:ffff::1", "fc00::1", "fd12:3456::1",
		"ff02::1", "ff05::2", "::ffff:127.0.0.1", "::ffff:10.1.2.3", "::ffff:169.254.169.254",
		"::ffff:0.0.0.0", "64:ff9b::7f00:1", "64:ff9b::a00:1", "64:ff9b::c0a8:101",
		"::127.0.0.1", "64:ff9b:1::1", "fec0::1", "192.0.0.1", "192.0.0.255", "192.0.2.1",
		"198.18.0.1", "198.19.255.255", "198.51.100.7", "203.0.113.9", "2002:7f00:1::1",
		"2002:a00:1::", "2002:c0a8:101::1", "2001::1", "2001:0:4136:e378::1", "2001:db8::1",
		"100::1", "100::ffff:ffff:ffff:ffff",
	};
	static const char *const allowed[] = {
		"1.1.1.1", "8.8.8.8", "9.255.255.255", "11.0.0.1", "100.63.255.255", "100.128.0.1",
		"126.255.255.255", "128.0.0.1", "169.253.255.255", "169.255.0.1", "172.15.255.255",
		"172.32.0.1", "192.167.255.255", "192.169.0.1", "223.255.255.255", "93.184.216.34",
		"2001:4860:4860::8888", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808",
		"2a00:1450::1", "fe7f::1", "fbff::1", "fe00::1", "192.0.1.1", "192.0.3.1",
		"198.17.255.255", "198.20.0.1", "198.51.99.1", "203.0.112.1", "2002:808:808::1",
		"2001:1::1", "2001:db9::1", "100:0:0:1::1",
	};

	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		if (!private_text(refused[i]))
			fail_msg("%s should be refused", refused[i]);
	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
		if (private_text(allowed[i]))
			fail_msg("%s should be allowed", allowed[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr_is_private),
		cmocka_unit_test(test_bad_options),
		cmocka_unit_test(test_success),
		cmocka_unit_test(test_big_body_and_method),
		cmocka_unit_test(test_reused_handles),
		cmocka_unit_test(test_redirect_not_followed),
		cmocka_unit_test(test_retry_after),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_connection_refused),
		cmocka_unit_test(test_connection_reset),
		cmocka_unit_test(test_private_refused),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_deferred_failure),
		cmocka_unit_test(test_max_inflight),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_close_with_calls_in_flight),
		cmocka_unit_test(test_send_and_close_from_done),
		cmocka_unit_test(test_truncated_response),
		cmocka_unit_test(test_per_host_cap),
		cmocka_unit_test(test_http2_client_http1_origin),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
