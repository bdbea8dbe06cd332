/*
 * server — see server.h. This file holds the listeners, admission,
 * shutdown and the life of a connection; the rest of the server is in
 * server_input.c, server_respond.c, server_output.c and server_upgrade.c,
 * behind server_impl.h (which lists what each holds). The design below is
 * the whole server's.
 *
 * One struct conn per accepted TCP connection, in one of five states:
 *
 *   HEAD ──headers complete──▶ BODY ──message complete──▶ HANDLER
 *    ▲  (from accept, or from the first byte)               │ hd_http_respond
 *    │                                                      ├─ keep-alive ─▶ IDLE ─first byte─▶ HEAD
 *    │                                                      │               (pipelined bytes waiting:
 *    └──────────────────────────────────────────────────────┤                straight to HEAD)
 *                                                           ▼
 *   LINGER: the last response is written, then the write side is shut down
 *   and input is read and dropped until the client closes (or LINGER_MS,
 *   LINGER_BYTES), so that unread request bytes do not turn the close into
 *   a reset that destroys the response (a 413 sent before the body is read).
 *
 * Each connection has one timer whose meaning follows the state: HEAD →
 * header_timeout_ms (408), BODY → idle_timeout_ms without progress (408),
 * IDLE → idle_timeout_ms (silent close), LINGER → idle_timeout_ms until the
 * output is written, then LINGER_MS (close), none while the handler runs.
 * Whatever the state, a timer that fires while a write is still pending
 * means the client stopped reading: the connection is closed. So a response
 * must be written within idle_timeout_ms of being queued.
 *
 * Input is read into a per-connection buffer of READ_BUF_SIZE bytes and fed
 * to the parser (request.h), which copies what it keeps. While a request is
 * in the handler nothing more is parsed; bytes keep arriving into the
 * buffer until it is full, then reading stops (backpressure). A connection
 * that goes idle with nothing buffered hands its read buffer back to a
 * small pool on the server, so idle keep-alive connections hold no input
 * memory and busy ones do not allocate per request.
 *
 * Output (the write path, in one place so that streaming responses can be
 * added by a sibling module): responses are appended to one of two
 * per-connection buffers; a flush first tries a direct write and hands what
 * is left to uv_write, whose write request owns that buffer until its
 * callback. New responses go to the other buffer meanwhile, so responses
 * stay in order without allocating per request. Parsing of pipelined
 * requests pauses while OUT_HIGH_WATER bytes wait behind a write.
 *
 * Memory follows libuv's rules: a connection is freed only when both of its
 * handles' close callbacks have run and no request of it is in a handler.
 * A client that leaves while its request is in the handler therefore keeps
 * the connection's memory (and the request's pointers) until the handler
 * calls hd_http_respond, whose response is then dropped.
 *
 * Streaming responses (hd_http_stream_start) keep the request in the
 * handler state and queue shared rcbufs (one reference each, no copy)
 * behind out[]: they are written directly while the socket takes them,
 * the rest by one uv_write at a time (struct swrite). `spending` counts the
 * unsent bytes against lim.max_pending_bytes. Input is dropped and EOF
 * closes; once the handles are closed, on_close hands the request back.
 *
 * An upgraded connection (hd_http_upgrade) is a streaming response whose
 * input goes to the edge's on_input instead of being dropped. The parser is
 * never fed again. Each read lands in the read buffer as usual and is
 * handed over whole from the read callback, then the buffer goes back to
 * the pool. Bytes that were already buffered behind the upgrade request,
 * or that wait while the edge paused input (hd_http_stream_read), are
 * handed over from `kick`, an idle handle started by hd_server_input_pump,
 * because on_input must not run inside the edge's own calls. While
 * on_input runs, `dispatching` is set: hd_server_input_pump waits, and
 * stream writes are batched into one flush after it returns. The state
 * stays HANDLER, so no header or idle timer runs; only the stall guard of
 * stream_flush remains.
 *
 * TLS: a connection accepted on the HTTPS listener has a struct hd_tls
 * (net/tls.h), and everything above stays as it is, in plaintext. Input:
 * on_alloc reads ciphertext into the server's scratch buffer, at most as
 * much as the input buffer has room for; tls_input decrypts all of it
 * behind in_len (input buffers are then in_size = READ_BUF_SIZE +
 * HD_TLS_READ_SLACK bytes, room for a record begun in an earlier read), so
 * OpenSSL never holds more than one partial record and reading stops
 * exactly as for plain HTTP. close_notify is the client's EOF. Output:
 * conn_write encrypts what the write path hands to uv_write (a copy, also
 * of shared rcbufs: every connection has its own keys) and calls the
 * caller's callback once the ciphertext is written, so out[] and spending
 * keep counting the plaintext until then and no ciphertext waits beyond
 * what they bound; conn_try_write never writes directly. Handshake records
 * and alerts go out from tls_input, close_notify before the FIN of LINGER.
 * A TLS error closes the connection; a request cannot be answered before
 * the handshake ends (a 408 or 503 then closes instead).
 *
 * Proxies: a connection from a --trusted-proxies address (via_proxy) or
 * accepted with --proxy-protocol (proxy_wait) is counted toward
 * max_connections at accept, but its per-address admission waits
 * (ip_pending) until its client is known: from the PROXY header, read
 * before any HTTP (server_input.c proxy_header), or from each request's
 * Forwarded / X-Forwarded-For (forwarded_client, just before dispatch;
 * a later request naming another client moves the count). remote and
 * ipkey then hold the client, so logs, req->remote and the limits see it.
 *
 * Shutdown closes the listeners and idle connections at once; the others end
 * after their in-flight response as usual (LINGER). The server's drain timer
 * bounds all of that by shutdown_timeout_ms: when it fires, every connection
 * left is closed, so a client that stops reading cannot hold the stop for
 * idle_timeout_ms. Once the last connection is freed the drain timer is
 * closed, and done runs when both server handles' close callbacks have run.
 *
 * Entry points (libuv callbacks, hd_http_respond, shutdown) finish with
 * hd_server_input_pump(), which parses and dispatches what it can, flushes
 * output and starts or stops reading; `dispatching` keeps a handler that
 * answers at once from re-entering it.
 */
#include "http/server_impl.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "http/fdlimit.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void hd_http_limits_default(struct hd_http_limits *lim)
{
	lim->header_max = 8 * 1024;
	lim->max_headers = 100;
	lim->body_max = 1024 * 1024;
	lim->header_timeout_ms = 10 * 1000;
	lim->idle_timeout_ms = 60 * 1000;
	lim->max_connections = 10000;
	lim->max_connections_per_ip = 1000;
	lim->connection_rate_per_ip = (struct hd_rate){.per_sec = 100, .burst = 200};
	lim->shutdown_timeout_ms = 5 * 1000;
	lim->max_pending_bytes = 1024 * 1024;
	lim->cors_origins = NULL;
	lim->listen_backlog = 4096;
	lim->trusted_proxies = NULL;
	lim->proxy_protocol = false;
}

/* ---- Lifecycle ----------------------------------------------------------- */

char *hd_server_inbuf_get(struct hd_http_server *s)
{
	return s->nspare > 0 ? s->spare[--s->nspare] : hd_malloc(s->in_size);
}

/* Gives the read buffer back when it holds nothing. */
void hd_server_inbuf_release(struct conn *c)
{
	struct hd_http_server *s = c->srv;

	if (!c->in || c->in_len > 0)
		return;
	if (s->nspare < SPARE_MAX)
		s->spare[s->nspare++] = c->in;
	else
		free(c->in);
	c->in = NULL;
	c->in_start = 0;
}

static void on_server_handle_close(uv_handle_t *h);

/* Once every connection is freed the drain timer has nothing left to
 * bound; done runs after both server handles have closed. */
static void maybe_done(struct hd_http_server *s)
{
	void (*done)(void *arg) = s->done;

	if (!s->stopping || s->nlive > 0)
		return;
	if (!uv_is_closing((uv_handle_t *)&s->drain))
		uv_close((uv_handle_t *)&s->drain, on_server_handle_close);
	if (s->handles > 0 || !done)
		return;
	s->done = NULL;
	done(s->done_arg);
}

void hd_server_conn_maybe_free(struct conn *c)
{
	struct hd_http_server *s = c->srv;

	if (c->handles > 0 || c->in_flight)
		return;
	hd_server_output_dirty_unlink(c);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	hd_request_fini(&c->parser);
	hd_buf_fini(&c->out[0].buf);
	hd_buf_fini(&c->out[1].buf);
	while (c->sq_head) {
		struct snode *n = c->sq_head;
		c->sq_head = n->next;
		hd_server_output_snode_put(c->srv, n);
	}
	c->in_len = 0;
	hd_server_inbuf_release(c);
	hd_tls_free(c->tls);
	free(c);
	s->nlive--;
	maybe_done(s);
}

static void on_handle_close(uv_handle_t *h)
{
	struct conn *c = h->data;

	c->handles--;
	if (c->handles == 0 && c->stream_open) {
		/* The client left (or the drain deadline passed) while the edge
		 * streamed: the request goes back to the server now. */
		void (*cb)(void *arg) = c->on_close;

		c->stream_open = false;
		c->upgraded = false;
		c->in_flight = false;
		if (cb)
			cb(c->stream_arg);
	}
	hd_server_conn_maybe_free(c);
}

/* Closes at once, dropping unsent output. Safe to call more than once. */
void hd_server_conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	c->reading = false;
	if (c->counted) {
		c->counted = false;
		c->srv->nopen--;
		hd_metrics_gauge_add(HD_M_connections_open, -1);
		hd_iplimit_release(c->srv->iplimit, c->ip, (int64_t)hd_mono_ms());
		c->ip = NULL;
	}
	uv_close((uv_handle_t *)&c->timer, on_handle_close);
	uv_close((uv_handle_t *)&c->tcp, on_handle_close);
	if (c->kick_init)
		uv_close((uv_handle_t *)&c->kick, on_handle_close);
}

/* Closes after the output queued so far (see LINGER above). Until it is
 * written, the idle limit guards against a client that stopped reading. */
void hd_server_conn_end(struct conn *c)
{
	c->state = ST_LINGER;
	c->in_start = c->in_len = 0;
	hd_server_arm(c, c->srv->lim.idle_timeout_ms);
}

/* Queues the answer to a request the server refuses itself, then ends.
 * message is NULL (the table's message) or borrowed for the call. */
void hd_server_conn_fail(struct conn *c, int code, const char *message, const char *extra,
			 bool limit)
{
	struct hd_http_server *s = c->srv;
	int status = hd_err_http_status(code);
	struct hd_buf body;

	assert(!c->in_flight);
	hd_server_respond_error_body(&body, code, message);
	if (hd_server_respond_put(c, status, HD_HTTP_JSON_TYPE, extra, body.data, body.len, false,
				  false, false))
		hd_server_conn_close(c); /* the output is full of unread responses */
	else
		hd_server_conn_end(c);
	hd_buf_fini(&body);
	hd_metrics_inc(HD_M_http_errors_total);
	if (limit) {
		hd_metrics_inc(HD_M_http_limit_hits_total);
		if (hd_log_ratelimited(&s->warn_ms))
			hd_log_warn("http_limit remote=%s status=%d reason=%s", c->remote, status,
				    hd_err_slug(code));
	} else {
		hd_log_debug("http_refused remote=%s status=%d reason=%s", c->remote, status,
			     hd_err_slug(code));
	}
}

/* Lifts the time limit, lazily: a running timer finds no deadline. */
void hd_server_disarm(struct conn *c)
{
	c->deadline = 0;
}

static void on_timer(uv_timer_t *t)
{
	struct conn *c = t->data;
	uint64_t now = uv_now(t->loop);

	if (c->deadline == 0)
		return; /* the limit was lifted (a handler runs) */
	if (now < c->deadline) {
		c->due = c->deadline;
		uv_timer_start(&c->timer, on_timer, c->deadline - now, 0);
		return;
	}
	c->deadline = 0;
	if (c->writing || c->swrite) {
		/* The client stopped reading its responses; a 408 would not
		 * get through either. */
		hd_log_debug("http_stalled remote=%s", c->remote);
		hd_server_conn_close(c);
		return;
	}
	switch (c->state) {
	case ST_HEAD:
		if (!c->heard) {
			/* Not one byte since accept: nobody would read a 408. */
			hd_log_debug("http_silent_timeout remote=%s", c->remote);
			hd_server_conn_close(c);
			break;
		}
		/* fall through */
	case ST_BODY:
		hd_server_conn_fail(c, HD_ETIMEOUT, NULL, NULL, true);
		hd_server_input_pump(c);
		break;
	case ST_IDLE:
	case ST_LINGER:
		hd_server_conn_close(c);
		break;
	case ST_HANDLER:
		break;
	}
}

/* Sets the state's time limit; 0 means none. The timer only moves when it
 * would fire too late (or is not running). */
void hd_server_arm(struct conn *c, uint64_t ms)
{
	if (c->closing)
		return;
	if (ms == 0) {
		hd_server_disarm(c);
		return;
	}
	c->deadline = uv_now(c->timer.loop) + ms;
	if (uv_is_active((uv_handle_t *)&c->timer) && c->due <= c->deadline)
		return;
	c->due = c->deadline;
	uv_timer_start(&c->timer, on_timer, ms, 0);
}

/* ---- The server ---------------------------------------------------------- */

struct hd_http_server *hd_http_server_new(uv_loop_t *loop, const struct hd_http_limits *lim,
					  hd_http_handler handler, void *arg)
{
	struct hd_http_server *s = hd_calloc(1, sizeof(*s));

	s->loop = loop;
	s->lim = *lim;
	s->handler = handler;
	s->arg = arg;
	/* Initialised here so that shutdown always has handles to close. */
	uv_tcp_init(loop, &s->listener);
	s->listener.data = s;
	uv_tcp_init(loop, &s->tls_listener);
	s->tls_listener.data = s;
	uv_timer_init(loop, &s->drain);
	s->drain.data = s;
	uv_idle_init(loop, &s->flusher);
	s->flusher.data = s;
	s->handles = 4; /* listener, TLS listener, drain timer, flusher */
	s->iplimit = hd_iplimit_new(&(struct hd_iplimit_opts){
		.max_per_ip = lim->max_connections_per_ip,
		.rate = lim->connection_rate_per_ip,
		.max_entries = (size_t)lim->max_connections + IPLIMIT_IDLE,
	});
	s->in_size = READ_BUF_SIZE;
	s->fd_ceiling = hd_fdlimit_ceiling(hd_fdlimit_soft());
	if (hd_forwarded_parse(&s->trusted, lim->trusted_proxies, NULL))
		s->trusted.n = 0; /* main.c checked it; a bad list trusts nobody */
	s->lim.trusted_proxies = NULL; /* copied into trusted */
	return s;
}

void hd_server_conn_address(struct conn *c, const struct sockaddr *sa)
{
	char ip[INET6_ADDRSTRLEN];
	unsigned port = 0;

	snprintf(c->remote, sizeof(c->remote), "unknown");
	if (hd_iplimit_key(sa, c->ipkey))
		c->ipkey[0] = '\0';
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
		uv_ip6_name(a, ip, sizeof(ip));
		port = ntohs(a->sin6_port);
		/* A forwarded client has no port (0): its address alone. */
		if (port)
			snprintf(c->remote, sizeof(c->remote), "[%s]:%u", ip, port);
		else
			snprintf(c->remote, sizeof(c->remote), "%s", ip);
	} else if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
		uv_ip4_name(a, ip, sizeof(ip));
		port = ntohs(a->sin_port);
		if (port)
			snprintf(c->remote, sizeof(c->remote), "%s:%u", ip, port);
		else
			snprintf(c->remote, sizeof(c->remote), "%s", ip);
	}
}

/* Fills c->remote and c->ipkey from the peer ("unknown" and "" when it
 * cannot be read); returns whether the peer is a trusted proxy. */
static bool peer_name(struct conn *c)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	snprintf(c->remote, sizeof(c->remote), "unknown");
	c->ipkey[0] = '\0';
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len))
		return false;
	hd_server_conn_address(c, (const struct sockaddr *)&ss);
	return hd_forwarded_trusts(&c->srv->trusted, (const struct sockaddr *)&ss);
}

static struct conn *conn_new(struct hd_http_server *s)
{
	struct conn *c = hd_calloc(1, sizeof(*c));

	c->srv = s;
	uv_tcp_init(s->loop, &c->tcp);
	uv_timer_init(s->loop, &c->timer);
	c->tcp.data = c;
	c->timer.data = c;
	c->handles = 2;
	c->state = ST_HEAD;
	hd_request_init(&c->parser, &s->lim);
	hd_buf_init(&c->out[0].buf, OUT_MAX);
	hd_buf_init(&c->out[1].buf, OUT_MAX);
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->nlive++;
	return c;
}

/*
 * The per-address limits of a connection (iplimit.h), for c->ipkey: at
 * accept, or once a proxy named the client (then an earlier count of the
 * connection is released first). Returns true when it may be counted
 * (c->ip holds its address's count), else answers 429 with Retry-After
 * (503 when the address table is full) and returns false.
 */
bool hd_server_conn_admit(struct conn *c)
{
	struct hd_http_server *s = c->srv;
	const char *key = c->ipkey;
	char msg[160], extra[48];
	int64_t retry_ms;

	c->ip_pending = false;
	hd_iplimit_release(s->iplimit, c->ip, (int64_t)hd_mono_ms());
	c->ip = NULL;
	if (!key[0] || !hd_iplimit_on(s->iplimit))
		return true;
	switch (hd_iplimit_admit(s->iplimit, key, (int64_t)hd_mono_ms(), &c->ip, &retry_ms)) {
	case HD_IPLIMIT_OK:
		return true;
	case HD_IPLIMIT_CAP:
		hd_metrics_inc(HD_M_connection_ip_limit_hits_total);
		snprintf(msg, sizeof(msg), "too many connections from this address (at most %u, "
			 "--max-connections-per-ip)", (unsigned)s->lim.max_connections_per_ip);
		break;
	case HD_IPLIMIT_RATE:
		hd_metrics_inc(HD_M_connection_rate_limit_hits_total);
		snprintf(msg, sizeof(msg), "new connections from this address come too fast (at most "
			 "%u a second, --connection-rate-per-ip)",
			 (unsigned)s->lim.connection_rate_per_ip.per_sec);
		break;
	case HD_IPLIMIT_FULL:
	default:
		hd_metrics_inc(HD_M_connection_ip_limit_hits_total);
		hd_server_conn_fail(c, HD_EUNAVAIL, "too many client addresses at once", NULL, true);
		return false;
	}
	snprintf(extra, sizeof(extra), "Retry-After: %lld\r\n",
		 (long long)hd_ratelimit_retry_after_s(retry_ms));
	hd_server_conn_fail(c, HD_ELIMIT, msg, extra, true);
	return false;
}

/* Counts and logs (rate-limited) a connection refused for want of a
 * descriptor. */
static void no_descriptor(struct hd_http_server *s, const char *why)
{
	hd_metrics_inc(HD_M_accept_no_descriptor_total);
	if (hd_log_ratelimited(&s->fd_warn_ms))
		hd_log_warn("http_accept_no_descriptor error=%s open=%zu max_connections=%u "
			    "(raise the open-files limit or lower --max-connections)",
			    why, s->nopen, (unsigned)s->lim.max_connections);
}

/* Whether c's descriptor is among the last few the open-files limit
 * allows. Descriptors are handed out lowest first, so its number is about
 * how many are open: past the ceiling, the rest stay for the store,
 * outgoing connections and refusals, and a storm past the limit gets 503s
 * instead of the resets of EMFILE. */
static bool near_descriptor_limit(struct conn *c)
{
	uv_os_fd_t fd;

	return c->srv->fd_ceiling > 0 && uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0 &&
	       (uint64_t)fd >= c->srv->fd_ceiling;
}

/*
 * Refuses c at once for want of descriptors: one try at a short 503 (plain
 * HTTP only), then the close, so that a storm past the limit never holds
 * more descriptors than the ceiling plus one (a lingering 503 would, and
 * the rest of the storm would then meet EMFILE).
 */
#define NOFD_BODY "{\"error\":{\"code\":\"unavailable\",\"message\":\"the server is out of descriptors\"}}\n"
_Static_assert(sizeof(NOFD_BODY) - 1 == 78, "Content-Length of NOFD_BODY");
static void refuse_now(struct conn *c)
{
	static const char answer[] =
		"HTTP/1.1 503 Service Unavailable\r\nContent-Type: " HD_HTTP_JSON_TYPE "\r\n"
		"Retry-After: 1\r\nConnection: close\r\nContent-Length: 78\r\n\r\n" NOFD_BODY;
	uv_buf_t b = uv_buf_init((char *)answer, sizeof(answer) - 1);

	no_descriptor(c->srv, "near_limit");
	if (!c->tls)
		(void)uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
	hd_server_conn_close(c);
}

static void on_connection(uv_stream_t *listener, int status)
{
	struct hd_http_server *s = listener->data;
	bool tls = listener == (uv_stream_t *)&s->tls_listener;
	struct conn *c;
	bool trusted;

	if (status == UV_EMFILE || status == UV_ENFILE) {
		/* Only when libuv's own reserve descriptor is gone: it
		 * normally accepts and closes such connections itself, which
		 * the descriptor ceiling below keeps from happening. */
		no_descriptor(s, uv_err_name(status));
		return;
	}
	if (status < 0) {
		if (hd_log_ratelimited(&s->warn_ms))
			hd_log_warn("http_accept_failed error=%s", uv_strerror(status));
		return;
	}
	c = conn_new(s);
	if (uv_accept(listener, (uv_stream_t *)&c->tcp)) {
		hd_server_conn_close(c);
		return;
	}
#ifndef __linux__
	uv_tcp_nodelay(&c->tcp, 1); /* Linux: inherited from the listener (listen_on) */
#endif
	trusted = peer_name(c);
	if (tls)
		c->tls = hd_tls_new(s->tls_ctx);
	c->proxy_wait = s->lim.proxy_protocol;
	c->via_proxy = trusted;
	c->ip_pending = c->proxy_wait || c->via_proxy;
	if (s->nopen >= s->lim.max_connections) {
		hd_server_conn_fail(c, HD_EUNAVAIL, NULL, NULL, true);
	} else if (near_descriptor_limit(c)) {
		refuse_now(c);
		return;
	} else if (!c->ip_pending && !hd_server_conn_admit(c)) {
		/* refused: hd_server_conn_admit answered */
	} else {
		c->counted = true;
		s->nopen++;
		hd_metrics_gauge_add(HD_M_connections_open, 1);
		hd_server_arm(c, s->lim.header_timeout_ms);
	}
	hd_server_input_pump(c);
}

/* Binds and listens on host:port with l; *bound is the port. */
static int listen_on(struct hd_http_server *s, uv_tcp_t *l, const char *host, int port,
		     int *bound, const char *what)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	int rc;

	rc = uv_ip4_addr(host, port, (struct sockaddr_in *)&ss);
	if (rc)
		rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss);
	if (rc)
		goto out;
	rc = uv_tcp_bind(l, (const struct sockaddr *)&ss, 0);
	if (rc)
		goto out;
	/* Accepted sockets inherit TCP_NODELAY from the listener on Linux:
	 * one setsockopt less per connection (on_connection sets it
	 * elsewhere). */
	rc = uv_tcp_nodelay(l, 1);
	if (rc)
		goto out;
	rc = uv_listen((uv_stream_t *)l, s->lim.listen_backlog, on_connection);
	if (rc)
		goto out;
	rc = uv_tcp_getsockname(l, (struct sockaddr *)&ss, &len);
	if (rc)
		goto out;
	*bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						: ((struct sockaddr_in *)&ss)->sin_port);
	hd_log_info("%s_listening host=%s port=%d backlog=%d", what, host, *bound,
		    s->lim.listen_backlog);
out:
	if (rc)
		hd_log_error("%s_listen_failed host=%s port=%d error=%s", what, host, port,
			     uv_strerror(rc));
	return rc;
}

int hd_http_server_listen(struct hd_http_server *s, const char *host, int port)
{
	return listen_on(s, &s->listener, host, port, &s->port, "http");
}

int hd_http_server_listen_tls(struct hd_http_server *s, const char *host, int port,
			      struct hd_tls_ctx *ctx)
{
	assert(ctx && !s->tls_ctx && s->nlive == 0 && s->nspare == 0);
	s->tls_ctx = ctx;
	/* Room for the plaintext of a record begun in an earlier read. */
	s->in_size = READ_BUF_SIZE + HD_TLS_READ_SLACK;
	s->tls_scratch = hd_malloc(READ_BUF_SIZE);
	return listen_on(s, &s->tls_listener, host, port, &s->tls_port, "https");
}

void hd_http_server_set_tls(struct hd_http_server *s, struct hd_tls_ctx *ctx)
{
	assert(ctx && s->tls_ctx);
	hd_tls_ctx_free(s->tls_ctx); /* its connections hold their own references */
	s->tls_ctx = ctx;
}

int hd_http_server_port(const struct hd_http_server *s)
{
	return s->port;
}

int hd_http_server_tls_port(const struct hd_http_server *s)
{
	return s->tls_port;
}

size_t hd_http_server_connections(const struct hd_http_server *s)
{
	return s->nopen;
}

static void on_server_handle_close(uv_handle_t *h)
{
	struct hd_http_server *s = h->data;

	s->handles--;
	maybe_done(s);
}

/*
 * The drain deadline passed: every connection still open is closed and its
 * unsent output dropped. One whose request is still in the handler keeps
 * its memory until hd_http_respond, which then drops the response.
 */
static void on_drain_timeout(uv_timer_t *t)
{
	struct hd_http_server *s = t->data;
	size_t n = 0;

	/* hd_server_conn_close only starts closing, so the list stays intact. */
	for (struct conn *c = s->conns; c; c = c->next) {
		if (c->closing)
			continue;
		hd_server_conn_close(c);
		n++;
	}
	hd_log_warn("http_shutdown_deadline timeout_ms=%u closed=%zu", s->lim.shutdown_timeout_ms, n);
}

void hd_http_server_shutdown(struct hd_http_server *s, void (*done)(void *arg), void *arg)
{
	assert(!s->stopping);
	s->stopping = true;
	s->done = done;
	s->done_arg = arg;
	/* From now on stream writes flush at once (hd_http_stream_write). */
	hd_server_output_on_flush(&s->flusher);
	uv_close((uv_handle_t *)&s->flusher, on_server_handle_close);
	uv_close((uv_handle_t *)&s->listener, on_server_handle_close);
	uv_close((uv_handle_t *)&s->tls_listener, on_server_handle_close);
	if (s->lim.shutdown_timeout_ms > 0)
		uv_timer_start(&s->drain, on_drain_timeout, s->lim.shutdown_timeout_ms, 0);
	/* Closing only starts here (close callbacks run later), so the list
	 * stays intact while it is walked. */
	for (struct conn *c = s->conns; c; c = c->next) {
		if (c->closing || c->in_flight || c->state == ST_LINGER)
			continue;
		if (c->writing || c->out[c->fill].buf.len > 0) {
			hd_server_conn_end(c);
			hd_server_input_pump(c);
		} else {
			hd_server_conn_close(c);
		}
	}
}

void hd_http_server_free(struct hd_http_server *s)
{
	if (!s)
		return;
	assert(s->nlive == 0 && s->handles == 0);
	while (s->nspare > 0)
		free(s->spare[--s->nspare]);
	while (s->snode_spare) {
		struct snode *n = s->snode_spare;
		s->snode_spare = n->next;
		free(n);
	}
	hd_tls_ctx_free(s->tls_ctx);
	hd_iplimit_free(s->iplimit);
	free(s->tls_scratch);
	free(s);
}

