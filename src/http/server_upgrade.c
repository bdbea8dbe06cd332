/*
 * server_upgrade — upgraded connections (hd_http_upgrade): a streaming
 * response whose input goes to the edge's on_input (see server.c
 * "An upgraded connection"; server_impl.h).
 * Layer: http; loop thread.
 */
#include "http/server_impl.h"
#include "core/err.h"

#include <assert.h>

/* ---- Upgrades ------------------------------------------------------------ */

/* Whether kick has something to do: input to hand over, or the client's
 * EOF to act on once everything before it was handed over. */
bool hd_server_upgrade_has_work(const struct conn *c)
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
void hd_server_upgrade_input(struct conn *c)
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
		hd_server_conn_close(c);
		return;
	}
	hd_server_inbuf_release(c);
	hd_server_input_pump(c);
}

static void on_kick(uv_idle_t *h)
{
	struct conn *c = h->data;

	uv_idle_stop(h);
	hd_server_upgrade_input(c);
}

void hd_server_upgrade_kick(struct conn *c)
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
	hd_server_disarm(c);
	uv_timer_stop(&c->timer);
	/* Nothing of the request is needed any more (the edge copied what it
	 * keeps): an idle upgraded connection holds no parser memory. */
	hd_request_fini(&c->parser);
	hd_request_init(&c->parser, &c->srv->lim);
	req->path = req->query = req->body = "";
	req->path_len = req->body_len = 0;
	req->headers = NULL;
	req->nheaders = 0;
	hd_server_input_pump(c);
	return 0;
}

void hd_http_stream_read(struct hd_http_request *req, bool on)
{
	struct conn *c = req->conn;

	assert(c->upgraded && req == &c->req);
	c->input_on = on;
	/* Inside on_input (or the handler) the caller's own pump follows. */
	if (!c->dispatching)
		hd_server_input_pump(c);
}

