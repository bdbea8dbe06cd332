/*
 * rconn — see rconn.h. One hiredis async context at a time per connection;
 * hiredis frees the context after its disconnect callback, so `ac` is
 * cleared there and a timer brings up the next one.
 */
#include "redis/rconn.h"
#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"

#include <hiredis/adapters/libuv.h>
#include <stdlib.h>
#include <string.h>

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000

struct hd_rconn {
	struct hd_rconn_opts opts;
	char host[256];
	char what[64];
	redisAsyncContext *ac;
	uv_timer_t timer;
	uint64_t backoff_ms;
	size_t pending;
	bool up;
	bool freeing;
};

/* One command in flight (not SUBSCRIBEs, which keep their fn). */
struct cmd {
	struct hd_rconn *c;
	hd_rconn_reply_fn fn;
	void *priv;
};

static void start_connect(struct hd_rconn *c);

static void on_retry_timer(uv_timer_t *t)
{
	start_connect(t->data);
}

static void retry_later(struct hd_rconn *c)
{
	if (c->freeing)
		return;
	uv_timer_start(&c->timer, on_retry_timer, c->backoff_ms, 0);
	c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct hd_rconn *c = ac->data;
	if (status != REDIS_OK) {
		hd_log_warn("redis: connect failed what=%s host=%s port=%d error=\"%s\"", c->what,
			    c->host, c->opts.port, ac->errstr);
		c->ac = NULL; /* hiredis frees it after this callback */
		retry_later(c);
		return;
	}
	hd_log_info("redis: connected what=%s host=%s port=%d", c->what, c->host, c->opts.port);
	c->up = true;
	c->backoff_ms = BACKOFF_MIN_MS;
	if (c->opts.on_up)
		c->opts.on_up(c, c->opts.arg);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct hd_rconn *c = ac->data;
	bool was_up = c->up;
	c->ac = NULL;
	c->up = false;
	if (!c->freeing)
		hd_log_warn("redis: disconnected what=%s host=%s port=%d error=\"%s\"", c->what,
			    c->host, c->opts.port, status == REDIS_OK ? "" : ac->errstr);
	if (was_up && c->opts.on_down)
		c->opts.on_down(c, c->opts.arg);
	retry_later(c);
}

static void start_connect(struct hd_rconn *c)
{
	redisAsyncContext *ac = redisAsyncConnect(c->host, c->opts.port);
	if (!ac || ac->err) {
		hd_log_warn("redis: cannot connect what=%s host=%s port=%d error=\"%s\"", c->what,
			    c->host, c->opts.port, ac ? ac->errstr : "out of memory");
		if (ac)
			redisAsyncFree(ac);
		retry_later(c);
		return;
	}
	ac->data = c;
	if (redisLibuvAttach(ac, c->opts.loop) != REDIS_OK) {
		redisAsyncFree(ac);
		retry_later(c);
		return;
	}
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	c->ac = ac;
	if (c->opts.db) {
		char db[16];
		snprintf(db, sizeof(db), "%d", c->opts.db);
		redisAsyncCommand(ac, NULL, NULL, "SELECT %s", db);
	}
}

struct hd_rconn *hd_rconn_new(const struct hd_rconn_opts *opts)
{
	struct hd_rconn *c = hd_calloc(1, sizeof(*c));
	c->opts = *opts;
	snprintf(c->host, sizeof(c->host), "%s", opts->host);
	snprintf(c->what, sizeof(c->what), "%s", opts->what ? opts->what : "redis");
	c->opts.host = c->host;
	c->opts.what = c->what;
	c->backoff_ms = BACKOFF_MIN_MS;
	uv_timer_init(opts->loop, &c->timer);
	c->timer.data = c;
	start_connect(c);
	return c;
}

bool hd_rconn_ready(const struct hd_rconn *c)
{
	return c->up;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct cmd *k = privdata;
	struct hd_rconn *c = k->c;
	c->pending--;
	k->fn(c, reply, k->priv);
	free(k);
}

static void on_sub_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct cmd *k = privdata;
	k->fn(k->c, reply, k->priv);
	/* A subscription's callback is called with NULL once, when the
	 * context goes: then its record goes too. */
	if (!reply)
		free(k);
}

int hd_rconn_command(struct hd_rconn *c, hd_rconn_reply_fn fn, void *priv, int argc,
		     const char **argv, const size_t *lens)
{
	bool sub = argc > 0 && lens[0] == 9 && strncasecmp(argv[0], "SUBSCRIBE", 9) == 0;
	if (!c->ac || (!sub && c->pending >= c->opts.max_pending))
		return HD_EUNAVAIL;
	struct cmd *k = hd_malloc(sizeof(*k));
	k->c = c;
	k->fn = fn;
	k->priv = priv;
	if (redisAsyncCommandArgv(c->ac, sub ? on_sub_reply : on_reply, k, argc, argv, lens) !=
	    REDIS_OK) {
		free(k);
		return HD_EUNAVAIL;
	}
	if (!sub)
		c->pending++;
	return 0;
}

void hd_rconn_drop(struct hd_rconn *c)
{
	if (c->ac)
		redisAsyncFree(c->ac); /* on_disconnect runs (when it was connected) */
	if (c->ac) {
		/* Never connected: no disconnect callback. */
		c->ac = NULL;
		c->up = false;
		retry_later(c);
	}
}

static void on_timer_closed(uv_handle_t *h)
{
	free(h->data);
}

void hd_rconn_free(struct hd_rconn *c)
{
	c->freeing = true;
	uv_timer_stop(&c->timer);
	if (c->ac)
		redisAsyncFree(c->ac);
	c->ac = NULL;
	c->up = false;
	uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}
