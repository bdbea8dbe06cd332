/*
 * server_output — the write path of a connection and streaming responses
 * (see server.c "Output", "Streaming responses" and "TLS"; server_impl.h).
 * Layer: http; loop thread.
 */
#include "http/server_impl.h"
#include "core/alloc.h"
#include "core/err.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

static void on_write(uv_write_t *req, int status);
static void conn_written(struct conn *c);
static void stream_flush(struct conn *c);

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
		hd_server_conn_close(c);
	}
}

/* Writes the records waiting in c->tls; then cb(user), if user. Returns 0
 * or a libuv error (then close). */
int hd_server_output_tls_send(struct conn *c, uv_write_t *user, uv_write_cb cb)
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
	return hd_server_output_tls_send(c, req, cb);
}

/* uv_try_write; over TLS nothing goes out this way (conn_write's callback
 * is what keeps the plaintext counted until its ciphertext is written). */
static int conn_try_write(struct conn *c, const uv_buf_t *bufs, unsigned n)
{
	return c->tls ? UV_EAGAIN : uv_try_write((uv_stream_t *)&c->tcp, bufs, n);
}

/* Sends what waits in out[fill]: directly if the socket takes it all,
 * otherwise through uv_write. */
void hd_server_output_flush(struct conn *c)
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
			hd_server_conn_close(c);
			return;
		}
		if ((size_t)n < o->buf.len) {
			b = uv_buf_init(o->buf.data + n, (unsigned)(o->buf.len - (size_t)n));
			if (conn_write(c, &o->req, &b, 1, on_write)) {
				hd_server_conn_close(c);
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
		hd_server_conn_close(c);
		return;
	}
	hd_server_input_pump(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct conn *c = req->handle->data;

	if (status < 0)
		hd_server_conn_close(c);
}

/* All output is written. A lingering connection now sends its FIN (or
 * closes, when the client already sent its own). */
static void conn_written(struct conn *c)
{
	if (c->state != ST_LINGER)
		return;
	if (c->eof) {
		hd_server_conn_close(c);
		return;
	}
	if (c->shut)
		return;
	c->shut = true;
	if (c->tls) {
		hd_tls_close_notify(c->tls);
		if (hd_server_output_tls_send(c, NULL, NULL)) {
			hd_server_conn_close(c);
			return;
		}
	}
	if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown)) {
		hd_server_conn_close(c);
		return;
	}
	hd_server_arm(c, LINGER_MS);
}

void hd_server_output_dirty_unlink(struct conn *c)
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

void hd_server_output_on_flush(uv_idle_t *h)
{
	struct hd_http_server *s = h->data;

	while (s->dirty) {
		struct conn *c = s->dirty;
		hd_server_output_dirty_unlink(c);
		if (!c->closing && !c->dispatching)
			hd_server_output_flush(c);
	}
	uv_idle_stop(h);
}

/* ---- Streaming responses ------------------------------------------------ */

/* Keeps n (its reference already moved or dropped) for reuse, or frees it. */
static void snode_recycle(struct hd_http_server *s, struct snode *n)
{
	n->buf = NULL;
	if (s->nsnode_spare >= SNODE_SPARE_MAX) {
		free(n);
		return;
	}
	n->next = s->snode_spare;
	s->snode_spare = n;
	s->nsnode_spare++;
}

void hd_server_output_snode_put(struct hd_http_server *s, struct snode *n)
{
	hd_rcbuf_unref(n->buf);
	snode_recycle(s, n);
}

static struct snode *snode_get(struct hd_http_server *s)
{
	struct snode *n = s->snode_spare;
	if (!n)
		return hd_malloc(sizeof(*n));
	s->snode_spare = n->next;
	s->nsnode_spare--;
	return n;
}

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
		hd_server_conn_close(c);
		return;
	}
	hd_server_disarm(c);
	uv_timer_stop(&c->timer);
	if (c->state == ST_LINGER)
		hd_server_arm(c, c->srv->lim.idle_timeout_ms);
	if (c->stream_open && c->on_drain && c->spending <= c->srv->lim.max_pending_bytes / 2) {
		drain = c->on_drain;
		c->on_drain = NULL;
	}
	if (drain)
		drain(c->stream_arg); /* may write or end the stream */
	hd_server_input_pump(c);
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
			hd_server_conn_close(c);
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
			hd_server_output_snode_put(c->srv, q);
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
		snode_recycle(c->srv, n);
	}
	c->swrite = w;
	if (conn_write(c, &w->req, w->ub, (unsigned)w->n, on_swrite)) {
		for (size_t i = 0; i < w->n; i++)
			hd_rcbuf_unref(w->bufs[i]);
		c->spending -= w->bytes;
		c->swrite = NULL;
		free(w);
		hd_server_conn_close(c);
		return;
	}
	/* A write that does not complete within the idle limit means the
	 * client stopped reading (on_timer closes). */
	hd_server_arm(c, c->srv->lim.idle_timeout_ms);
}

int hd_http_stream_start(struct hd_http_request *req, int status, const char *content_type,
			 const char *extra_headers, void (*on_close)(void *arg), void *arg)
{
	struct conn *c = req->conn;

	assert(c->in_flight && req == &c->req && !c->stream_open);
	if (c->closing || c->srv->stopping)
		return HD_EUNAVAIL;
	char cors[CORS_HEADER_MAX];
	hd_server_respond_cors(c, req, cors);
	int put = hd_server_respond_put(c, status, content_type, extra_headers, NULL, 0, false, false,
					true);
	c->cors = NULL;
	if (put)
		return HD_ETOOBIG;
	hd_server_respond_count(status);
	req->keep_alive = false;
	c->stream_open = true;
	c->on_close = on_close;
	c->stream_arg = arg;
	c->drained = 0;
	hd_server_input_pump(c);
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
			hd_server_output_dirty_unlink(c);
			hd_server_output_flush(c);
			if (c->closing)
				return HD_EUNAVAIL;
		}
		if (c->spending > 0 && c->spending + buf->len > c->srv->lim.max_pending_bytes)
			return HD_ELIMIT;
	}
	n = snode_get(c->srv);
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
			uv_idle_start(&s->flusher, hd_server_output_on_flush);
		if (s->stopping) {
			hd_server_output_flush(c); /* the check handle may be closed already */
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

/* The edge gives the request back; the connection is no longer a stream:
 * it ends after its output (end) or closes at once (abort). */
static void stream_release(struct hd_http_request *req, bool end)
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
	if (c->closing) {
		hd_server_conn_maybe_free(c);
	} else if (end) {
		hd_server_conn_end(c);
		hd_server_input_pump(c);
	} else {
		hd_server_conn_close(c);
	}
}

void hd_http_stream_end(struct hd_http_request *req)
{
	stream_release(req, true);
}

void hd_http_stream_abort(struct hd_http_request *req)
{
	stream_release(req, false);
}
