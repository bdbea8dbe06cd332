/*
 * server — see server.h.
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
 * handed over from `kick`, an idle handle started by conn_pump, because
 * on_input must not run inside the edge's own calls. While on_input runs,
 * `dispatching` is set: conn_pump waits, and stream writes are batched
 * into one flush after it returns. The state stays HANDLER, so no header
 * or idle timer runs; only the stall guard of stream_flush remains.
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
 * Shutdown closes the listeners and idle connections at once; the others end
 * after their in-flight response as usual (LINGER). The server's drain timer
 * bounds all of that by shutdown_timeout_ms: when it fires, every connection
 * left is closed, so a client that stops reading cannot hold the stop for
 * idle_timeout_ms. Once the last connection is freed the drain timer is
 * closed, and done runs when both server handles' close callbacks have run.
 *
 * Entry points (libuv callbacks, hd_http_respond, shutdown) finish with
 * conn_pump(), which parses and dispatches what it can, flushes output and
 * starts or stops reading; `dispatching` keeps a handler that answers at
 * once from re-entering it.
 */
#include "http/server.h"
#include "core/text.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/rcbuf.h"
#include "http/iplimit.h"
#include "http/request.h"
#include "net/tls.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CORS_HEADER_MAX 320                    /* "Access-Control-Allow-Origin: <origin>" + Vary */
#define READ_BUF_SIZE (16 * 1024)               /* input bytes held per connection */
#define OUT_HIGH_WATER (64 * 1024)              /* pause parsing while this much waits */
#define RESPONSE_MAX (64 * 1024 * 1024)         /* one response; our handlers stay far below */
#define OUT_MAX (OUT_HIGH_WATER + RESPONSE_MAX) /* ceiling of each output buffer */
#define OUT_KEEP_MAX (16 * 1024)                /* bigger output buffers are freed once written */
#define SPARE_MAX 64                            /* idle read buffers kept for reuse */
#define ERROR_BODY_MAX 2048                     /* a JSON error body */
#define LINGER_MS 2000                          /* drain time after the last response */
#define LINGER_BYTES (1024 * 1024)              /* input dropped while lingering */
#define BACKLOG 511
#define TLS_STAGE (16 * 1024)                   /* plaintext gathered into one TLS record */
#define IPLIMIT_IDLE (16 * 1024)                /* idle addresses remembered beyond max_connections */

enum conn_state { ST_IDLE, ST_HEAD, ST_BODY, ST_HANDLER, ST_LINGER };

/* One output buffer and the write request that owns it while it is written. */
struct out {
	uv_write_t req; /* first member: the write callback finds its out from req */
	struct hd_buf buf;
};

struct conn {
	uv_tcp_t tcp;     /* tcp.data = this connection */
	uv_timer_t timer; /* timer.data = this connection */
	/* The state's limit, as a loop time (ms); 0: none. The timer is
	 * lazy: it may be set for earlier (due), and then sets itself again
	 * for the rest, so keep-alive requests cost no timer operations. */
	uint64_t deadline;
	uint64_t due;
	uv_shutdown_t shutdown;
	struct hd_http_server *srv;
	struct conn *prev, *next; /* srv->conns */
	enum conn_state state;
	int handles; /* libuv handles whose close callback has not run */

	char *in; /* owned: READ_BUF_SIZE bytes while input is expected, else NULL */
	size_t in_start, in_len;
	size_t drained; /* bytes dropped while lingering */
	struct hd_request_parser parser;
	struct hd_http_request req;

	struct out out[2];
	int fill;     /* index of the buffer responses are appended to */
	bool writing; /* out[!fill] is being written */

	bool counted;     /* counts toward max_connections and the gauge */
	bool in_flight;   /* req is in the handler */
	bool dispatching; /* conn_pump is running */
	bool reading;
	bool eof;       /* the client sent FIN */
	bool closing;   /* uv_close was called */
	bool shut;      /* uv_shutdown was called */
	bool continued; /* "100 Continue" was sent for this request */
	char remote[64];
	struct hd_iplimit_entry *ip; /* its address's count, while counted; NULL if none */

	/* A streaming response (hd_http_stream_start): the edge owns req until
	 * hd_http_stream_end/abort or, if the client leaves first, until
	 * on_close runs. Its bytes wait in squeue (shared rcbufs) behind what
	 * out[] still holds; one struct swrite is written at a time. */
	bool stream_open;
	bool dirty;             /* in srv->dirty: flush at the end of the iteration */
	struct conn *dprev, *dnext;
	/* The CORS header lines of the response being written (a buffer on
	 * the responding function's stack), NULL for none. */
	const char *cors;
	struct snode *sq_head, *sq_tail;
	struct swrite *swrite;  /* in flight, NULL if none */
	size_t spending;        /* bytes queued plus in flight */
	void (*on_close)(void *arg);
	void (*on_drain)(void *arg); /* one-shot, see hd_http_stream_want_drain */
	void *stream_arg;

	/* An upgraded stream (hd_http_upgrade): input goes to on_input. */
	bool upgraded;
	bool input_on;  /* the edge takes input (hd_http_stream_read) */
	bool kick_init; /* kick was initialised: it counts in handles */
	uv_idle_t kick; /* kick.data = this connection */
	void (*on_input)(void *arg, const char *p, size_t n);

	/* owned: the TLS session of a connection accepted on the HTTPS
	 * listener, NULL for plain HTTP (see "TLS" above). */
	struct hd_tls *tls;
};

/* One queued stream buffer (holds one reference). */
struct snode {
	struct snode *next;
	struct hd_rcbuf *buf;
	size_t off; /* bytes of buf already written */
};

#define SWRITE_BUFS 64 /* buffers per stream write */

/* One stream write in flight; owns one reference to each of its buffers. */
struct swrite {
	uv_write_t req; /* first member */
	size_t n, bytes;
	struct hd_rcbuf *bufs[SWRITE_BUFS];
	uv_buf_t ub[SWRITE_BUFS];
};

struct hd_http_server {
	uv_loop_t *loop;
	struct hd_http_limits lim;
	hd_http_handler handler;
	void *arg;
	uv_tcp_t listener;  /* listener.data = this server */
	uv_tcp_t tls_listener; /* HTTPS; tls_listener.data = this server */
	uv_timer_t drain;   /* the shutdown deadline; drain.data = this server */
	int handles;        /* of the listeners and drain, those whose close callback has not run */
	int port, tls_port;
	struct hd_tls_ctx *tls_ctx; /* owned: what new HTTPS connections use */
	char *tls_scratch;  /* owned: READ_BUF_SIZE bytes, ciphertext of the read in progress */
	size_t in_size;     /* bytes of each input buffer (see "TLS" above) */
	struct conn *conns; /* every connection not yet freed */
	size_t nopen;       /* connections counted toward max_connections */
	struct hd_iplimit *iplimit; /* owned: connections per client address */
	size_t nlive;       /* connections not yet freed */
	bool stopping;
	void (*done)(void *arg);
	void *done_arg;
	time_t date_at;
	char date[64];
	/* The status line, Server and Date of the last response, ready to
	 * copy: most responses in a row share their status (and second). */
	int head_status;
	time_t head_at;
	size_t head_len;
	char head[160];
	long long warn_ms;
	char *spare[SPARE_MAX]; /* owned: read buffers not in use */
	size_t nspare;
	/* Streams written to since the last flush, flushed together by an
	 * idle handle: after the I/O callbacks of one iteration, before the
	 * loop would block again (an active idle handle makes the next poll
	 * not wait). Every event a commit fans out to one subscriber leaves
	 * in one writev. */
	uv_idle_t flusher;      /* flusher.data = this server */
	struct conn *dirty;
};

static void conn_pump(struct conn *c);
static void arm(struct conn *c, uint64_t ms);
static void upgraded_input(struct conn *c);
static bool upgraded_has_work(const struct conn *c);
static void kick_start(struct conn *c);

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
}

/* The Date header's value, formatted once per second. */
static const char *server_date(struct hd_http_server *s)
{
	static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t now = time(NULL);
	struct tm tm;

	if (now != s->date_at && gmtime_r(&now, &tm)) {
		snprintf(s->date, sizeof(s->date), "%s, %02d %s %04d %02d:%02d:%02d GMT",
			 days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900,
			 tm.tm_hour, tm.tm_min, tm.tm_sec);
		s->date_at = now;
	}
	return s->date;
}

/* "HTTP/1.1 <status> <reason>\r\nServer: herald\r\nDate: <date>\r\n" for
 * status, rebuilt when the status or the second changes. */
static const char *status_head(struct hd_http_server *s, int status, size_t *len)
{
	const char *date = server_date(s);

	if (status != s->head_status || s->date_at != s->head_at) {
		int n = snprintf(s->head, sizeof(s->head),
				 "HTTP/1.1 %d %s\r\nServer: herald\r\nDate: %s\r\n", status,
				 http_status_str((enum http_status)status), date);
		/* The longest reason phrase and the date take under 100 bytes. */
		assert(n > 0 && (size_t)n < sizeof(s->head));
		s->head_len = (size_t)n;
		s->head_status = status;
		s->head_at = s->date_at;
	}
	*len = s->head_len;
	return s->head;
}

/* ---- The connection's write path ---------------------------------------- */

static void out_reset(struct conn *c, struct out *o)
{
	/* A streaming connection writes through its queue from now on: its
	 * idle memory should not include a response buffer. */
	if (o->buf.cap > OUT_KEEP_MAX || (c->stream_open && o->buf.cap)) {
		hd_buf_fini(&o->buf);
		hd_buf_init(&o->buf, OUT_MAX);
	}
	hd_buf_reset(&o->buf);
}

/* Appends each string up to a NULL; returns 0 or HD_ETOOBIG. Cheaper than
 * hd_buf_printf on the path every response takes. */
static int put_strs(struct hd_buf *b, ...)
{
	const char *str;
	va_list ap;
	int rc = 0;

	va_start(ap, b);
	while (rc == 0 && (str = va_arg(ap, const char *)))
		rc = hd_buf_puts(b, str);
	va_end(ap);
	return rc;
}

/* Writes v in decimal into out (at least 21 bytes); returns out. */
static const char *decimal(size_t v, char *out)
{
	out[hd_u64_format(v, out)] = '\0';
	return out;
}

static int put_head_body(struct conn *c, int status, const char *ctype, const char *extra,
			 const char *body, size_t len, bool keep, bool head_only, bool stream);

/*
 * Appends one response to the output. Returns 0, or HD_ETOOBIG with the
 * output unchanged. Statuses that have no body get no Content-Length.
 */
static int put_response(struct conn *c, int status, const char *ctype, const char *extra,
			const char *body, size_t len, bool keep, bool head_only)
{
	return put_head_body(c, status, ctype, extra, body, len, keep, head_only, false);
}

/* put_response, or (stream) a head without Content-Length whose body
 * follows until the connection closes. */
static int put_head_body(struct conn *c, int status, const char *ctype, const char *extra,
			 const char *body, size_t len, bool keep, bool head_only, bool stream)
{
	struct hd_buf *b = &c->out[c->fill].buf;
	size_t mark = b->len;
	bool bodiless = status < 200 || status == 204 || status == 304 || stream;
	char num[24];
	size_t head_len;
	const char *head = status_head(c->srv, status, &head_len);
	int rc;

	/* One reserve for the usual head (the extras are short) and body. */
	hd_buf_reserve(b, head_len + 128 + (ctype ? strlen(ctype) : 0) + len);
	rc = hd_buf_append(b, head, head_len);
	if (!rc && ctype)
		rc = put_strs(b, "Content-Type: ", ctype, "\r\n", NULL);
	if (!rc && !bodiless)
		rc = put_strs(b, "Content-Length: ", decimal(len, num), "\r\n", NULL);
	if (!rc)
		rc = hd_buf_puts(b, keep ? "Connection: keep-alive\r\n" : "Connection: close\r\n");
	if (!rc && extra)
		rc = hd_buf_puts(b, extra);
	if (!rc && c->cors)
		rc = hd_buf_puts(b, c->cors);
	if (!rc)
		rc = hd_buf_puts(b, "\r\n");
	if (!rc && !bodiless && !head_only)
		rc = hd_buf_append(b, body, len);
	if (rc) {
		/* Take back the partial response; hd_buf has no truncate. */
		b->len = mark;
		if (b->data)
			b->data[mark] = '\0';
	}
	return rc;
}

/* Fills b (which this initialises) with herald's JSON error body. */
static void error_body(struct hd_buf *b, int code, const char *message)
{
	const char *slug = hd_err_slug(code);

	hd_buf_init(b, ERROR_BODY_MAX);
	if (!message)
		message = hd_err_message(code);
	if (hd_buf_printf(b, "{\"error\":{\"code\":\"%s\",\"message\":\"", slug) == 0 &&
	    hd_buf_json_escape(b, message, strlen(message)) == 0 && hd_buf_puts(b, "\"}}") == 0)
		return;
	/* The message was too long; the table's own message always fits. */
	hd_buf_reset(b);
	(void)hd_buf_printf(b, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", slug,
			    hd_err_message(code));
}

static void on_write(uv_write_t *req, int status);
static void conn_close(struct conn *c);
static void conn_written(struct conn *c);
static void stream_flush(struct conn *c);

/* ---- TLS under the write path -------------------------------------------- */

/* One write of TLS records. The ciphertext is owned here until the
 * callback; user (NULL for records of TLS's own: handshake, alerts,
 * close_notify) is the write the connection asked conn_write for. */
struct tls_write {
	uv_write_t req; /* first member */
	uv_write_t *user;
	uv_write_cb cb;
	char data[];
};

static void on_tls_write(uv_write_t *req, int status)
{
	struct tls_write *w = (struct tls_write *)req;
	uv_stream_t *stream = req->handle;
	struct conn *c = stream->data;
	uv_write_t *user = w->user;
	uv_write_cb cb = w->cb;

	free(w);
	if (user) {
		/* As if libuv had written the caller's plaintext. */
		user->handle = stream;
		cb(user, status);
	} else if (status < 0) {
		conn_close(c);
	}
}

/* Writes the records waiting in c->tls; then cb(user), if user. Returns 0
 * or a libuv error (then close). */
static int tls_send(struct conn *c, uv_write_t *user, uv_write_cb cb)
{
	size_t n = hd_tls_output_pending(c->tls);
	struct tls_write *w;
	uv_buf_t b;
	int rc;

	if (n == 0 && !user)
		return 0;
	w = hd_malloc(sizeof(*w) + n);
	w->user = user;
	w->cb = cb;
	b = uv_buf_init(w->data, (unsigned)hd_tls_output_take(c->tls, w->data, n));
	rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_tls_write);
	if (rc)
		free(w);
	return rc;
}

/*
 * uv_write of the connection's plaintext. Over TLS the plaintext is
 * encrypted now, small buffers gathered into records of up to TLS_STAGE
 * bytes, and cb(req) runs once the ciphertext is written. That is a copy
 * of every byte, shared rcbufs included: each connection has its own keys.
 * The caller keeps bufs until cb as with plain uv_write, so what waits is
 * still counted (in plaintext) against OUT_MAX and max_pending_bytes, and
 * the ciphertext in flight is never more than that plus record overhead.
 */
static int conn_write(struct conn *c, uv_write_t *req, const uv_buf_t *bufs, unsigned n,
		      uv_write_cb cb)
{
	char stage[TLS_STAGE];
	size_t used = 0;

	if (!c->tls)
		return uv_write(req, (uv_stream_t *)&c->tcp, bufs, n, cb);
	for (unsigned i = 0; i <= n; i++) {
		size_t len = i < n ? bufs[i].len : 0;
		if (used > 0 && (i == n || used + len > sizeof(stage))) {
			if (hd_tls_write(c->tls, stage, used))
				return UV_EPROTO;
			used = 0;
		}
		if (len >= sizeof(stage)) {
			if (hd_tls_write(c->tls, bufs[i].base, len))
				return UV_EPROTO;
		} else if (len > 0) {
			memcpy(stage + used, bufs[i].base, len);
			used += len;
		}
	}
	return tls_send(c, req, cb);
}

/* uv_try_write; over TLS nothing goes out this way (conn_write's callback
 * is what keeps the plaintext counted until its ciphertext is written). */
static int conn_try_write(struct conn *c, const uv_buf_t *bufs, unsigned n)
{
	return c->tls ? UV_EAGAIN : uv_try_write((uv_stream_t *)&c->tcp, bufs, n);
}

/* Sends what waits in out[fill]: directly if the socket takes it all,
 * otherwise through uv_write. */
static void conn_flush(struct conn *c)
{
	struct out *o = &c->out[c->fill];
	uv_buf_t b;
	int n;

	if (c->closing || c->writing)
		return;
	if (o->buf.len > 0) {
		b = uv_buf_init(o->buf.data, (unsigned)o->buf.len);
		n = conn_try_write(c, &b, 1);
		if (n == UV_EAGAIN)
			n = 0;
		if (n < 0) {
			conn_close(c);
			return;
		}
		if ((size_t)n < o->buf.len) {
			b = uv_buf_init(o->buf.data + n, (unsigned)(o->buf.len - (size_t)n));
			if (conn_write(c, &o->req, &b, 1, on_write)) {
				conn_close(c);
				return;
			}
			c->writing = true;
			c->fill ^= 1;
			return;
		}
		out_reset(c, o);
	}
	if (c->sq_head || c->swrite) {
		stream_flush(c);
		return; /* conn_written follows the last stream write */
	}
	conn_written(c);
}

static void on_write(uv_write_t *req, int status)
{
	struct conn *c = req->handle->data;
	struct out *o = (struct out *)req;

	c->writing = false;
	out_reset(c, o);
	if (status < 0) {
		conn_close(c);
		return;
	}
	conn_pump(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct conn *c = req->handle->data;

	if (status < 0)
		conn_close(c);
}

/* All output is written. A lingering connection now sends its FIN (or
 * closes, when the client already sent its own). */
static void conn_written(struct conn *c)
{
	if (c->state != ST_LINGER)
		return;
	if (c->eof) {
		conn_close(c);
		return;
	}
	if (c->shut)
		return;
	c->shut = true;
	if (c->tls) {
		hd_tls_close_notify(c->tls);
		if (tls_send(c, NULL, NULL)) {
			conn_close(c);
			return;
		}
	}
	if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown)) {
		conn_close(c);
		return;
	}
	arm(c, LINGER_MS);
}

/* ---- Lifecycle ----------------------------------------------------------- */

static char *inbuf_get(struct hd_http_server *s)
{
	return s->nspare > 0 ? s->spare[--s->nspare] : hd_malloc(s->in_size);
}

/* Gives the read buffer back when it holds nothing. */
static void inbuf_release(struct conn *c)
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

static void dirty_unlink(struct conn *c)
{
	struct hd_http_server *s = c->srv;

	if (!c->dirty)
		return;
	if (c->dprev)
		c->dprev->dnext = c->dnext;
	else
		s->dirty = c->dnext;
	if (c->dnext)
		c->dnext->dprev = c->dprev;
	c->dirty = false;
	c->dprev = c->dnext = NULL;
}

static void on_flush(uv_idle_t *h)
{
	struct hd_http_server *s = h->data;

	while (s->dirty) {
		struct conn *c = s->dirty;
		dirty_unlink(c);
		if (!c->closing && !c->dispatching)
			conn_flush(c);
	}
	uv_idle_stop(h);
}

static void conn_maybe_free(struct conn *c)
{
	struct hd_http_server *s = c->srv;

	if (c->handles > 0 || c->in_flight)
		return;
	dirty_unlink(c);
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
		hd_rcbuf_unref(n->buf);
		free(n);
	}
	c->in_len = 0;
	inbuf_release(c);
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
	conn_maybe_free(c);
}

/* Closes at once, dropping unsent output. Safe to call more than once. */
static void conn_close(struct conn *c)
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
static void conn_end(struct conn *c)
{
	c->state = ST_LINGER;
	c->in_start = c->in_len = 0;
	arm(c, c->srv->lim.idle_timeout_ms);
}

/* Queues the answer to a request the server refuses itself, then ends.
 * message is NULL (the table's message) or borrowed for the call. */
static void conn_fail(struct conn *c, int code, const char *message, const char *extra, bool limit)
{
	struct hd_http_server *s = c->srv;
	int status = hd_err_http_status(code);
	struct hd_buf body;

	assert(!c->in_flight);
	error_body(&body, code, message);
	if (put_response(c, status, "application/json", extra, body.data, body.len, false, false))
		conn_close(c); /* the output is full of unread responses */
	else
		conn_end(c);
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
static void disarm(struct conn *c)
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
		conn_close(c);
		return;
	}
	switch (c->state) {
	case ST_HEAD:
	case ST_BODY:
		conn_fail(c, HD_ETIMEOUT, NULL, NULL, true);
		conn_pump(c);
		break;
	case ST_IDLE:
	case ST_LINGER:
		conn_close(c);
		break;
	case ST_HANDLER:
		break;
	}
}

/* Sets the state's time limit; 0 means none. The timer only moves when it
 * would fire too late (or is not running). */
static void arm(struct conn *c, uint64_t ms)
{
	if (c->closing)
		return;
	if (ms == 0) {
		disarm(c);
		return;
	}
	c->deadline = uv_now(c->timer.loop) + ms;
	if (uv_is_active((uv_handle_t *)&c->timer) && c->due <= c->deadline)
		return;
	c->due = c->deadline;
	uv_timer_start(&c->timer, on_timer, ms, 0);
}

/* ---- Input --------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *c = h->data;

	if (!c->in)
		c->in = inbuf_get(c->srv);
	if (c->in_start > 0) {
		memmove(c->in, c->in + c->in_start, c->in_len);
		c->in_start = 0;
	}
	/* A full buffer gives a zero-length buffer: libuv reports UV_ENOBUFS. */
	if (c->tls) {
		/* Ciphertext goes to the server's scratch buffer, no more than
		 * the plaintext has room for (tls_input decrypts all of it). */
		*buf = uv_buf_init(c->srv->tls_scratch,
				   (unsigned)(c->in_len < READ_BUF_SIZE ? READ_BUF_SIZE - c->in_len : 0));
		return;
	}
	*buf = uv_buf_init(c->in + c->in_len, (unsigned)(READ_BUF_SIZE - c->in_len));
}

/*
 * Ciphertext p[0..n) from the socket: the handshake advances and the
 * plaintext lands in c->in behind in_len (there is room: on_alloc read at
 * most READ_BUF_SIZE - in_len bytes into a buffer of in_size). Records TLS
 * has to send (handshake, alerts, tickets) are written. Returns the
 * plaintext bytes, or UV_EPROTO (then close); *notified when the client
 * sent close_notify after them.
 */
static ssize_t tls_input(struct conn *c, const char *p, size_t n, bool *notified)
{
	size_t end = c->in_start + c->in_len, got = 0;
	int rc = hd_tls_read(c->tls, p, n, c->in + end, c->srv->in_size - end, &got);

	*notified = rc == 1;
	if (tls_send(c, NULL, NULL))
		return UV_EPROTO;
	if (rc < 0) {
		/* The alert, if any, is on its way; uv_write tried at once. */
		hd_log_debug("tls_failed remote=%s reason=\"%s\"", c->remote, hd_tls_error(c->tls));
		return UV_EPROTO;
	}
	return (ssize_t)got;
}

static void conn_input(struct conn *c, ssize_t nread);

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = stream->data;
	bool notified = false;

	if (c->tls && nread > 0) {
		nread = tls_input(c, buf->base, (size_t)nread, &notified);
		if (nread != 0)
			conn_input(c, nread); /* plaintext, or UV_EPROTO: close */
		else if (!notified)
			conn_pump(c);
		if (notified && !c->closing) {
			/* close_notify is the client's EOF, whatever the socket says. */
			uv_read_stop(stream);
			conn_input(c, UV_EOF);
		}
		return;
	}
	conn_input(c, nread);
}

/* Input for the state the connection is in: nread bytes behind in_len
 * (plaintext, whether from TLS or not), or a libuv error or EOF. */
static void conn_input(struct conn *c, ssize_t nread)
{
	if (nread == UV_EOF) {
		c->eof = true;
		c->reading = false;
		if (c->stream_open && !(c->upgraded && c->in_len > 0)) {
			/* A stream's client has nothing more to say: it left. (An
			 * upgraded one first gets what is buffered, see kick.) */
			conn_close(c);
			return;
		}
	} else if (nread > 0 && c->upgraded) {
		c->in_len += (size_t)nread;
		upgraded_input(c);
		return;
	} else if (nread > 0 && c->stream_open) {
		/* Nothing is parsed while streaming; drop input (bounded), but
		 * keep reading to see the client leave. */
		c->drained += (size_t)nread;
		if (c->drained > LINGER_BYTES) {
			conn_close(c);
			return;
		}
		inbuf_release(c);
	} else if (nread == UV_ENOBUFS) {
		/* conn_pump stops reading before this; nothing to do. */
	} else if (nread < 0) {
		conn_close(c);
		return;
	} else if (c->state == ST_LINGER) {
		c->drained += (size_t)nread;
		if (c->drained > LINGER_BYTES) {
			conn_close(c);
			return;
		}
	} else {
		c->in_len += (size_t)nread;
		if (c->state == ST_IDLE) {
			c->state = ST_HEAD;
			arm(c, c->srv->lim.header_timeout_ms);
		}
	}
	conn_pump(c);
}

/* Reads while there is room (and always while lingering, to drain); an
 * upgraded connection only while the edge takes input. */
static void update_reading(struct conn *c)
{
	bool want = !c->eof && (c->state == ST_LINGER || c->in_len < READ_BUF_SIZE);
	uv_stream_t *stream = (uv_stream_t *)&c->tcp;
	int rc;

	if (c->upgraded)
		want = want && c->input_on;
	if (c->closing || want == c->reading)
		return;
	rc = want ? uv_read_start(stream, on_alloc, on_read) : uv_read_stop(stream);
	if (rc) {
		conn_close(c);
		return;
	}
	c->reading = want;
}

/* ---- Requests ------------------------------------------------------------ */

/* After a keep-alive response: the next request, already here or awaited. */
static void conn_next(struct conn *c)
{
	if (c->in_len > 0) {
		c->state = ST_HEAD;
		arm(c, c->srv->lim.header_timeout_ms);
	} else {
		c->state = ST_IDLE;
		arm(c, c->srv->lim.idle_timeout_ms);
		inbuf_release(c);
	}
}

static void dispatch(struct conn *c)
{
	struct hd_http_server *s = c->srv;
	struct hd_http_request *req = &c->req;

	hd_request_get(&c->parser, req);
	/* hd_request_get predates these two fields; the version is what
	 * http-parser read from the request line. */
	req->http_major = c->parser.hp.http_major;
	req->http_minor = c->parser.hp.http_minor;
	req->remote = c->remote;
	req->conn = c;
	if (s->stopping || (c->eof && c->in_len == 0))
		req->keep_alive = false;
	c->state = ST_HANDLER;
	c->in_flight = true;
	c->continued = false;
	disarm(c);
	inbuf_release(c); /* a long-poll may hold the request for long */
	hd_metrics_inc(HD_M_http_requests_total);
	s->handler(req, s->arg);
}

/* The request is incomplete: follow it into its body. */
static void note_partial(struct conn *c)
{
	static const char interim[] = "HTTP/1.1 100 Continue\r\n\r\n";

	if (hd_request_phase(&c->parser) != HD_REQUEST_BODY)
		return;
	c->state = ST_BODY;
	arm(c, c->srv->lim.idle_timeout_ms);
	if (hd_request_expects_continue(&c->parser) && !c->continued) {
		c->continued = true;
		if (hd_buf_append(&c->out[c->fill].buf, interim, sizeof(interim) - 1))
			conn_close(c);
	}
}

/* Parses the buffered input; returns whether a request went to the handler. */
static bool parse_one(struct conn *c)
{
	size_t used;
	int rc = hd_request_feed(&c->parser, c->in + c->in_start, c->in_len, &used);

	c->in_start += used;
	c->in_len -= used;
	if (c->in_len == 0)
		c->in_start = 0;
	if (rc < 0) {
		conn_fail(c, rc, hd_request_error_reason(&c->parser), NULL,
			  rc == HD_EHEADERS || rc == HD_ETOOBIG);
		return false;
	}
	if (rc == HD_REQUEST_MORE) {
		note_partial(c);
		return false;
	}
	dispatch(c);
	return true;
}

static bool output_blocked(const struct conn *c)
{
	return c->writing && c->out[c->fill].buf.len >= OUT_HIGH_WATER;
}

static bool can_parse(const struct conn *c)
{
	if (c->closing || c->in_len == 0)
		return false;
	if (c->state != ST_IDLE && c->state != ST_HEAD && c->state != ST_BODY)
		return false;
	return !output_blocked(c);
}

static void conn_pump(struct conn *c)
{
	if (c->closing || c->dispatching)
		return;
	c->dispatching = true;
	while (can_parse(c) && parse_one(c))
		;
	c->dispatching = false;
	if (c->closing)
		return;
	/* Requests that wait for the client to read its responses are not
	 * slow headers: the idle limit applies to them. */
	if (c->state == ST_HEAD && c->in_len > 0 && output_blocked(c))
		arm(c, c->srv->lim.idle_timeout_ms);
	/* A client that sent FIN with no complete request left is done. */
	if (c->eof && c->in_len == 0 && c->state != ST_HANDLER && c->state != ST_LINGER)
		conn_end(c);
	conn_flush(c);
	update_reading(c);
	if (upgraded_has_work(c))
		kick_start(c);
}

/* ---- The handler's side -------------------------------------------------- */

const char *hd_http_header_get(const struct hd_http_request *req, const char *lname)
{
	size_t n = strlen(lname);

	for (size_t i = 0; i < req->nheaders; i++)
		if (req->headers[i].name_len == n && memcmp(req->headers[i].name, lname, n) == 0)
			return req->headers[i].value;
	return NULL;
}

bool hd_http_request_alive(const struct hd_http_request *req)
{
	const struct conn *c = req->conn;

	return !c->closing;
}

static void count_status(int status)
{
	if (status >= 400)
		hd_metrics_inc(HD_M_http_errors_total);
}

/*
 * Points c->cors at the CORS lines for a response to req (in out, or a
 * constant): with cors_origins "*", any Origin is
 * allowed; otherwise an Origin equal to one of the comma-separated entries
 * is echoed (with Vary: Origin). No Origin, or one not listed: nothing.
 */
static void cors_for(struct conn *c, const struct hd_http_request *req, char out[CORS_HEADER_MAX])
{
	const char *list = c->srv->lim.cors_origins;
	const char *origin;
	size_t olen;

	c->cors = NULL;
	if (!list || !*list || !(origin = hd_http_header_get(req, "origin")))
		return;
	if (strcmp(list, "*") == 0) {
		c->cors = "Access-Control-Allow-Origin: *\r\n";
		return;
	}
	olen = strlen(origin);
	for (const char *p = list;;) {
		const char *comma = strchr(p, ',');
		const char *a = p, *e = comma ? comma : p + strlen(p);
		while (a < e && *a == ' ')
			a++;
		while (e > a && e[-1] == ' ')
			e--;
		if ((size_t)(e - a) == olen && memcmp(a, origin, olen) == 0 &&
		    olen < CORS_HEADER_MAX - 64) {
			snprintf(out, CORS_HEADER_MAX,
				 "Access-Control-Allow-Origin: %s\r\nVary: Origin\r\n", origin);
			c->cors = out;
			return;
		}
		if (!comma)
			return;
		p = comma + 1;
	}
}

void hd_http_respond(struct hd_http_request *req, int status, const char *content_type,
		     const char *extra_headers, const char *body, size_t body_len)
{
	struct conn *c = req->conn;
	bool keep = req->keep_alive && !c->srv->stopping;

	assert(c->in_flight && req == &c->req);
	assert(status >= 100 && status <= 999);
	c->in_flight = false;
	if (c->closing) {
		/* The client left while the handler ran: drop the response. */
		conn_maybe_free(c);
		return;
	}
	char cors[CORS_HEADER_MAX];
	cors_for(c, req, cors);
	int put = put_response(c, status, content_type, extra_headers, body, body_len, keep,
			       req->method == HTTP_HEAD);
	c->cors = NULL;
	if (put == 0) {
		count_status(status);
		if (keep)
			conn_next(c);
		else
			conn_end(c);
	} else {
		hd_log_error("http_response_too_big remote=%s status=%d bytes=%zu", c->remote,
			     status, body_len);
		conn_fail(c, HD_EINTERNAL, NULL, NULL, false);
	}
	conn_pump(c);
}

void hd_http_respond_error(struct hd_http_request *req, int code, const char *message)
{
	struct hd_buf body;

	error_body(&body, code, message);
	hd_http_respond(req, hd_err_http_status(code), "application/json", NULL, body.data,
			body.len);
	hd_buf_fini(&body);
}

/* ---- Streaming responses ------------------------------------------------ */

static void on_swrite(uv_write_t *req, int status)
{
	struct swrite *w = (struct swrite *)req;
	struct conn *c = req->handle->data;
	void (*drain)(void *arg) = NULL;

	for (size_t i = 0; i < w->n; i++)
		hd_rcbuf_unref(w->bufs[i]);
	c->spending -= w->bytes;
	c->swrite = NULL;
	free(w);
	if (status < 0) {
		conn_close(c);
		return;
	}
	disarm(c);
	uv_timer_stop(&c->timer);
	if (c->state == ST_LINGER)
		arm(c, c->srv->lim.idle_timeout_ms);
	if (c->stream_open && c->on_drain && c->spending <= c->srv->lim.max_pending_bytes / 2) {
		drain = c->on_drain;
		c->on_drain = NULL;
	}
	if (drain)
		drain(c->stream_arg); /* may write or end the stream */
	conn_pump(c);
}

/* Writes what the socket takes now; returns false when the connection failed. */
static bool stream_try_write(struct conn *c)
{
	uv_buf_t ub[SWRITE_BUFS];
	unsigned n;
	int done;

	while (c->sq_head) {
		n = 0;
		for (struct snode *q = c->sq_head; q && n < SWRITE_BUFS; q = q->next)
			ub[n++] = uv_buf_init(q->buf->data + q->off, (unsigned)(q->buf->len - q->off));
		done = conn_try_write(c, ub, n);
		if (done == UV_EAGAIN || done == 0)
			return true;
		if (done < 0) {
			conn_close(c);
			return false;
		}
		c->spending -= (size_t)done;
		while (done > 0) {
			struct snode *q = c->sq_head;
			size_t left = q->buf->len - q->off;
			if ((size_t)done < left) {
				q->off += (size_t)done;
				return true; /* the socket is full */
			}
			done -= (int)left;
			c->sq_head = q->next;
			if (!c->sq_head)
				c->sq_tail = NULL;
			hd_rcbuf_unref(q->buf);
			free(q);
		}
	}
	return true;
}

/* Sends the queued stream buffers once out[] is empty: directly while the
 * socket takes them, the rest through one uv_write at a time. */
static void stream_flush(struct conn *c)
{
	struct swrite *w;

	if (c->closing || c->writing || c->swrite || !c->sq_head || c->out[c->fill].buf.len > 0)
		return;
	/* While the edge waits for a drain, go through uv_write so that its
	 * callback (on_swrite) runs on_drain outside the edge's own calls. */
	if (!c->on_drain) {
		if (!stream_try_write(c))
			return;
		if (!c->sq_head) {
			conn_written(c);
			return;
		}
	}
	w = hd_malloc(sizeof(*w));
	w->n = 0;
	w->bytes = 0;
	while (c->sq_head && w->n < SWRITE_BUFS) {
		struct snode *n = c->sq_head;
		c->sq_head = n->next;
		if (!c->sq_head)
			c->sq_tail = NULL;
		w->bufs[w->n] = n->buf; /* the node's reference moves here */
		w->ub[w->n] = uv_buf_init(n->buf->data + n->off, (unsigned)(n->buf->len - n->off));
		w->bytes += n->buf->len - n->off;
		w->n++;
		free(n);
	}
	c->swrite = w;
	if (conn_write(c, &w->req, w->ub, (unsigned)w->n, on_swrite)) {
		for (size_t i = 0; i < w->n; i++)
			hd_rcbuf_unref(w->bufs[i]);
		c->spending -= w->bytes;
		c->swrite = NULL;
		free(w);
		conn_close(c);
		return;
	}
	/* A write that does not complete within the idle limit means the
	 * client stopped reading (on_timer closes). */
	arm(c, c->srv->lim.idle_timeout_ms);
}

int hd_http_stream_start(struct hd_http_request *req, int status, const char *content_type,
			 const char *extra_headers, void (*on_close)(void *arg), void *arg)
{
	struct conn *c = req->conn;

	assert(c->in_flight && req == &c->req && !c->stream_open);
	if (c->closing || c->srv->stopping)
		return HD_EUNAVAIL;
	char cors[CORS_HEADER_MAX];
	cors_for(c, req, cors);
	int put = put_head_body(c, status, content_type, extra_headers, NULL, 0, false, false, true);
	c->cors = NULL;
	if (put)
		return HD_ETOOBIG;
	count_status(status);
	req->keep_alive = false;
	c->stream_open = true;
	c->on_close = on_close;
	c->stream_arg = arg;
	c->drained = 0;
	conn_pump(c);
	return 0;
}

int hd_http_stream_write(struct hd_http_request *req, struct hd_rcbuf *buf)
{
	struct conn *c = req->conn;
	struct snode *n;

	assert(c->stream_open && req == &c->req);
	if (c->closing)
		return HD_EUNAVAIL;
	if (c->spending > 0 && c->spending + buf->len > c->srv->lim.max_pending_bytes) {
		/* Before calling the client slow, hand what waits to the kernel:
		 * a commit may fan out more than the cap in one iteration. */
		if (c->dirty && !c->dispatching) {
			dirty_unlink(c);
			conn_flush(c);
			if (c->closing)
				return HD_EUNAVAIL;
		}
		if (c->spending > 0 && c->spending + buf->len > c->srv->lim.max_pending_bytes)
			return HD_ELIMIT;
	}
	n = hd_malloc(sizeof(*n));
	n->next = NULL;
	n->off = 0;
	n->buf = hd_rcbuf_ref(buf);
	if (c->sq_tail)
		c->sq_tail->next = n;
	else
		c->sq_head = n;
	c->sq_tail = n;
	c->spending += buf->len;
	if (!c->dispatching && !c->dirty) {
		struct hd_http_server *s = c->srv;
		if (!s->dirty && !s->stopping) /* idle handles run before the loop blocks */
			uv_idle_start(&s->flusher, on_flush);
		if (s->stopping) {
			conn_flush(c); /* the check handle may be closed already */
			return 0;
		}
		c->dirty = true;
		c->dprev = NULL;
		c->dnext = s->dirty;
		if (s->dirty)
			s->dirty->dprev = c;
		s->dirty = c;
	}
	return 0;
}

int hd_http_stream_write_copy(struct hd_http_request *req, const char *p, size_t n)
{
	struct hd_rcbuf *b = hd_rcbuf_from(p, n);
	int rc = hd_http_stream_write(req, b);

	hd_rcbuf_unref(b);
	return rc;
}

size_t hd_http_stream_pending(const struct hd_http_request *req)
{
	const struct conn *c = req->conn;

	return c->spending;
}

void hd_http_stream_want_drain(struct hd_http_request *req, void (*on_drain)(void *arg))
{
	struct conn *c = req->conn;

	assert(c->stream_open && req == &c->req);
	c->on_drain = on_drain;
}

/* The edge gives the request back; the connection is no longer a stream. */
static struct conn *stream_release(struct hd_http_request *req)
{
	struct conn *c = req->conn;

	assert(c->stream_open && req == &c->req);
	c->stream_open = false;
	c->on_close = NULL;
	c->on_drain = NULL;
	c->in_flight = false;
	c->upgraded = false;
	c->input_on = false;
	c->on_input = NULL;
	return c;
}

void hd_http_stream_end(struct hd_http_request *req)
{
	struct conn *c = stream_release(req);

	if (c->closing) {
		conn_maybe_free(c);
		return;
	}
	conn_end(c);
	conn_pump(c);
}

void hd_http_stream_abort(struct hd_http_request *req)
{
	struct conn *c = stream_release(req);

	if (c->closing) {
		conn_maybe_free(c);
		return;
	}
	conn_close(c);
}

/* ---- Upgrades ------------------------------------------------------------ */

/* Whether kick has something to do: input to hand over, or the client's
 * EOF to act on once everything before it was handed over. */
static bool upgraded_has_work(const struct conn *c)
{
	if (!c->upgraded || c->closing)
		return false;
	return c->in_len > 0 ? c->input_on : c->eof;
}

/*
 * Hands the buffered input to the edge, whole (on_input takes all of it),
 * then closes if the client sent its EOF. Runs from the read callback and
 * from kick only, never from inside a call the edge made.
 */
static void upgraded_input(struct conn *c)
{
	size_t n = c->in_len;

	if (!c->upgraded || c->closing || c->dispatching)
		return;
	if (n > 0 && c->input_on) {
		const char *p = c->in + c->in_start;

		c->in_start = c->in_len = 0;
		c->dispatching = true;
		c->on_input(c->stream_arg, p, n); /* may write, pause, end or abort */
		c->dispatching = false;
	}
	if (c->upgraded && c->eof && c->in_len == 0) {
		/* The client has nothing more to say: it left. */
		conn_close(c);
		return;
	}
	inbuf_release(c);
	conn_pump(c);
}

static void on_kick(uv_idle_t *h)
{
	struct conn *c = h->data;

	uv_idle_stop(h);
	upgraded_input(c);
}

static void kick_start(struct conn *c)
{
	if (!c->kick_init) {
		uv_idle_init(c->srv->loop, &c->kick);
		c->kick.data = c;
		c->kick_init = true;
		c->handles++;
	}
	uv_idle_start(&c->kick, on_kick);
}

int hd_http_upgrade(struct hd_http_request *req, const char *head, size_t head_len,
		    void (*on_input)(void *arg, const char *p, size_t n),
		    void (*on_close)(void *arg), void *arg)
{
	struct conn *c = req->conn;

	assert(c->in_flight && req == &c->req && !c->stream_open);
	assert(on_input);
	if (c->closing || c->srv->stopping)
		return HD_EUNAVAIL;
	if (hd_buf_append(&c->out[c->fill].buf, head, head_len))
		return HD_ETOOBIG;
	req->keep_alive = false;
	c->stream_open = true;
	c->upgraded = true;
	c->input_on = true;
	c->on_input = on_input;
	c->on_close = on_close;
	c->stream_arg = arg;
	c->drained = 0;
	disarm(c);
	uv_timer_stop(&c->timer);
	/* Nothing of the request is needed any more (the edge copied what it
	 * keeps): an idle upgraded connection holds no parser memory. */
	hd_request_fini(&c->parser);
	hd_request_init(&c->parser, &c->srv->lim);
	req->path = req->query = req->body = "";
	req->path_len = req->body_len = 0;
	req->headers = NULL;
	req->nheaders = 0;
	conn_pump(c);
	return 0;
}

void hd_http_stream_read(struct hd_http_request *req, bool on)
{
	struct conn *c = req->conn;

	assert(c->upgraded && req == &c->req);
	c->input_on = on;
	/* Inside on_input (or the handler) the caller's own pump follows. */
	if (!c->dispatching)
		conn_pump(c);
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
	return s;
}

/* Fills c->remote and key (the iplimit key; "" when the peer is unknown). */
static void peer_name(struct conn *c, char key[HD_IPLIMIT_KEY_MAX])
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	char ip[INET6_ADDRSTRLEN];

	snprintf(c->remote, sizeof(c->remote), "unknown");
	key[0] = '\0';
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len))
		return;
	if (hd_iplimit_key((const struct sockaddr *)&ss, key))
		key[0] = '\0';
	if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
		uv_ip6_name(a, ip, sizeof(ip));
		snprintf(c->remote, sizeof(c->remote), "[%s]:%u", ip, ntohs(a->sin6_port));
	} else if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
		uv_ip4_name(a, ip, sizeof(ip));
		snprintf(c->remote, sizeof(c->remote), "%s:%u", ip, ntohs(a->sin_port));
	}
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
 * The per-address limits of a new connection (iplimit.h). Returns true when
 * it may be counted (c->ip holds its address's count), else answers 429
 * with Retry-After (503 when the address table is full) and returns false.
 */
static bool admit_ip(struct conn *c, const char *key)
{
	struct hd_http_server *s = c->srv;
	char msg[160], extra[48];
	int64_t retry_ms;

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
		conn_fail(c, HD_EUNAVAIL, "too many client addresses at once", NULL, true);
		return false;
	}
	snprintf(extra, sizeof(extra), "Retry-After: %lld\r\n",
		 (long long)hd_retry_after_s(retry_ms));
	conn_fail(c, HD_ELIMIT, msg, extra, true);
	return false;
}

static void on_connection(uv_stream_t *listener, int status)
{
	struct hd_http_server *s = listener->data;
	bool tls = listener == (uv_stream_t *)&s->tls_listener;
	struct conn *c;
	char key[HD_IPLIMIT_KEY_MAX];

	if (status < 0) {
		if (hd_log_ratelimited(&s->warn_ms))
			hd_log_warn("http_accept_failed error=%s", uv_strerror(status));
		return;
	}
	c = conn_new(s);
	if (uv_accept(listener, (uv_stream_t *)&c->tcp)) {
		conn_close(c);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	peer_name(c, key);
	if (tls)
		c->tls = hd_tls_new(s->tls_ctx);
	if (s->nopen >= s->lim.max_connections) {
		conn_fail(c, HD_EUNAVAIL, NULL, NULL, true);
	} else if (!admit_ip(c, key)) {
		/* refused: admit_ip answered */
	} else {
		c->counted = true;
		s->nopen++;
		hd_metrics_gauge_add(HD_M_connections_open, 1);
		arm(c, s->lim.header_timeout_ms);
	}
	conn_pump(c);
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
	rc = uv_listen((uv_stream_t *)l, BACKLOG, on_connection);
	if (rc)
		goto out;
	rc = uv_tcp_getsockname(l, (struct sockaddr *)&ss, &len);
	if (rc)
		goto out;
	*bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						: ((struct sockaddr_in *)&ss)->sin_port);
	hd_log_info("%s_listening host=%s port=%d", what, host, *bound);
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

	/* conn_close only starts closing, so the list stays intact. */
	for (struct conn *c = s->conns; c; c = c->next) {
		if (c->closing)
			continue;
		conn_close(c);
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
	on_flush(&s->flusher);
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
			conn_end(c);
			conn_pump(c);
		} else {
			conn_close(c);
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
	hd_tls_ctx_free(s->tls_ctx);
	hd_iplimit_free(s->iplimit);
	free(s->tls_scratch);
	free(s);
}
