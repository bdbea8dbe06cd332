/*
 * server_input — reads and the request pump of a connection: bytes from the
 * socket (decrypted when TLS) into the read buffer, parsed into requests
 * that go to the handler one at a time (see server.c; server_impl.h).
 * Layer: http; loop thread.
 */
#include "http/server_impl.h"
#include "core/err.h"
#include "core/log.h"
#include "core/metrics.h"
#include "http/proxyproto.h"

#include <stdio.h>

#include <string.h>

/* ---- Input --------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *c = h->data;

	if (!c->in)
		c->in = hd_server_inbuf_get(c->srv);
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
	if (hd_server_output_tls_send(c, NULL, NULL))
		return UV_EPROTO;
	if (rc < 0) {
		/* The alert, if any, is on its way; uv_write tried at once. */
		hd_log_debug("tls_failed remote=%s reason=\"%s\"", c->remote, hd_tls_error(c->tls));
		return UV_EPROTO;
	}
	return (ssize_t)got;
}

static void conn_input(struct conn *c, ssize_t nread);

static bool proxy_header(struct conn *c);

/*
 * The PROXY header of a TLS connection comes before its TLS records: its
 * bytes (p[0..n), in the scratch buffer) are gathered in c->in as they
 * are. Returns the ciphertext after the header, moved to the front of the
 * scratch buffer (0 if none), or -1 when nothing is left to do here (the
 * header is incomplete, bad, or its client refused).
 */
static ssize_t tls_proxy_input(struct conn *c, const char *p, size_t n)
{
	size_t rest;

	memcpy(c->in + c->in_start + c->in_len, p, n); /* on_alloc left room */
	c->in_len += n;
	if (!proxy_header(c)) {
		hd_server_input_pump(c);
		return -1;
	}
	rest = c->in_len;
	memmove(c->srv->tls_scratch, c->in + c->in_start, rest);
	c->in_start = c->in_len = 0;
	return (ssize_t)rest;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = stream->data;
	bool notified = false;

	if (nread > 0)
		c->heard = true;
	if (c->tls && c->proxy_wait && nread > 0) {
		nread = tls_proxy_input(c, buf->base, (size_t)nread);
		if (nread < 0)
			return;
		if (nread == 0) {
			hd_server_input_pump(c);
			return;
		}
	}
	if (c->tls && nread > 0) {
		nread = tls_input(c, c->srv->tls_scratch, (size_t)nread, &notified);
		if (nread != 0)
			conn_input(c, nread); /* plaintext, or UV_EPROTO: close */
		else if (!notified)
			hd_server_input_pump(c);
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
			hd_server_conn_close(c);
			return;
		}
	} else if (nread > 0 && c->upgraded) {
		c->in_len += (size_t)nread;
		hd_server_upgrade_input(c);
		return;
	} else if (nread > 0 && c->stream_open) {
		/* Nothing is parsed while streaming; drop input (bounded), but
		 * keep reading to see the client leave. */
		c->drained += (size_t)nread;
		if (c->drained > LINGER_BYTES) {
			hd_server_conn_close(c);
			return;
		}
		hd_server_inbuf_release(c);
	} else if (nread == UV_ENOBUFS) {
		/* hd_server_input_pump stops reading before this; nothing to do. */
	} else if (nread < 0) {
		hd_server_conn_close(c);
		return;
	} else if (c->state == ST_LINGER) {
		c->drained += (size_t)nread;
		if (c->drained > LINGER_BYTES) {
			hd_server_conn_close(c);
			return;
		}
	} else {
		c->in_len += (size_t)nread;
		if (c->state == ST_IDLE) {
			c->state = ST_HEAD;
			hd_server_arm(c, c->srv->lim.header_timeout_ms);
		}
	}
	hd_server_input_pump(c);
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
		hd_server_conn_close(c);
		return;
	}
	c->reading = want;
}

/* ---- Requests ------------------------------------------------------------ */

/* After a keep-alive response: the next request, already here or awaited. */
void hd_server_input_next(struct conn *c)
{
	if (c->in_len > 0) {
		c->state = ST_HEAD;
		hd_server_arm(c, c->srv->lim.header_timeout_ms);
	} else {
		c->state = ST_IDLE;
		hd_server_arm(c, c->srv->lim.idle_timeout_ms);
		hd_server_inbuf_release(c);
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
	hd_server_disarm(c);
	hd_server_inbuf_release(c); /* a long-poll may hold the request for long */
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
	hd_server_arm(c, c->srv->lim.idle_timeout_ms);
	if (hd_request_expects_continue(&c->parser) && !c->continued) {
		c->continued = true;
		if (hd_buf_append(&c->out[c->fill].buf, interim, sizeof(interim) - 1))
			hd_server_conn_close(c);
	}
}

/*
 * A connection accepted with --proxy-protocol: reads its PROXY header
 * (plain HTTP: from the pump; TLS: from on_read, before decryption).
 * Returns true once it is consumed (the client address set and admitted),
 * false while more bytes are needed or when the connection was closed (a
 * bad header) or refused (its client is over a per-address limit).
 */
static bool proxy_header(struct conn *c)
{
	struct hd_http_server *s = c->srv;
	struct hd_proxyproto pp;
	int n = hd_proxyproto_parse(c->in + c->in_start, c->in_len, &pp);

	if (n == 0 && !c->eof)
		return false;
	if (n <= 0) {
		hd_metrics_inc(HD_M_proxy_protocol_errors_total);
		if (hd_log_ratelimited(&s->warn_ms))
			hd_log_warn("proxy_protocol_bad remote=%s bytes=%zu", c->remote, c->in_len);
		hd_server_conn_close(c);
		return false;
	}
	c->in_start += (size_t)n;
	c->in_len -= (size_t)n;
	if (c->in_len == 0)
		c->in_start = 0;
	c->proxy_wait = false;
	/* From an untrusted peer, when a list is set, the header is dropped:
	 * anyone may send one. */
	if (pp.has_addr && (s->trusted.n == 0 || c->via_proxy)) {
		hd_server_conn_address(c, (const struct sockaddr *)&pp.src);
		c->via_proxy = hd_forwarded_trusts(&s->trusted, (const struct sockaddr *)&pp.src);
	}
	c->ip_pending = c->via_proxy;
	return c->via_proxy || hd_server_conn_admit(c);
}

/*
 * A request from a trusted proxy: its client is the one its Forwarded /
 * X-Forwarded-For headers name (http/forwarded.h), or the proxy itself
 * when they name none. The per-address limits count that client; a
 * connection that carries requests of another client moves its count.
 * Returns false when the client is refused (answered 429/503).
 */
static bool forwarded_client(struct conn *c)
{
	struct hd_http_server *s = c->srv;
	struct hd_http_request *req = &c->req;
	struct sockaddr_storage ss;
	char before[HD_IPLIMIT_KEY_MAX];

	hd_request_get(&c->parser, req);
	if (hd_forwarded_client(&s->trusted, req->headers, req->nheaders, &ss) != 0) {
		if (!c->ip_pending)
			return true;
		return hd_server_conn_admit(c);
	}
	hd_metrics_inc(HD_M_forwarded_requests_total);
	snprintf(before, sizeof(before), "%s", c->ipkey);
	hd_server_conn_address(c, (const struct sockaddr *)&ss);
	if (!c->ip_pending && strcmp(before, c->ipkey) == 0)
		return true;
	return hd_server_conn_admit(c);
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
		hd_server_conn_fail(c, rc, hd_request_error_reason(&c->parser), NULL,
				    rc == HD_EHEADERS || rc == HD_ETOOBIG);
		return false;
	}
	if (rc == HD_REQUEST_MORE) {
		note_partial(c);
		return false;
	}
	if (c->via_proxy && !forwarded_client(c))
		return false;
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

void hd_server_input_pump(struct conn *c)
{
	if (c->closing || c->dispatching)
		return;
	c->dispatching = true;
	/* A TLS connection's PROXY header is read from on_read, before TLS. */
	while (can_parse(c) && (c->proxy_wait ? !c->tls && proxy_header(c) : parse_one(c)))
		;
	c->dispatching = false;
	if (c->closing)
		return;
	/* Requests that wait for the client to read its responses are not
	 * slow headers: the idle limit applies to them. */
	if (c->state == ST_HEAD && c->in_len > 0 && output_blocked(c))
		hd_server_arm(c, c->srv->lim.idle_timeout_ms);
	/* A client that sent FIN with no complete request left is done. */
	if (c->eof && c->in_len == 0 && c->state != ST_HANDLER && c->state != ST_LINGER)
		hd_server_conn_end(c);
	hd_server_output_flush(c);
	update_reading(c);
	if (hd_server_upgrade_has_work(c))
		hd_server_upgrade_kick(c);
}

