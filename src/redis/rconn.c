/*
 * rconn — see rconn.h. One hiredis async context at a time per connection;
 * hiredis frees the context after its disconnect callback, so `ac` is
 * cleared there and a timer brings up the next one.
 *
 * With Sentinels, each attempt first asks one of them (in turn) for the
 * primary's address (SENTINEL get-master-addr-by-name), connects there and
 * checks ROLE: only a server that says "master" makes the connection up.
 * A failover drops the old primary's connections (it dies, or it is made a
 * replica: writes then fail READONLY and the engine calls
 * hd_rconn_reconnect), so the next attempt finds the promoted one.
 *
 * hiredis is tied to the loop by our own few lines (ev_*) rather than its
 * adapters/libuv.h, whose poll callback ignores an error status: libuv
 * stops a poll handle on EPOLLERR (a refused connect), and the context
 * then waited forever. Here an error makes hiredis look at the socket, so
 * it sees the failure and calls back.
 */
#include "redis/rconn.h"
#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"

#include <assert.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 2000

#define SENTINELS_MAX 16

struct hd_rconn {
	struct hd_rconn_opts opts;
	char host[256];
	struct { char host[256]; int port; } sentinels[SENTINELS_MAX];
	unsigned nsentinels, next_sentinel;
	char master_name[128];
	redisAsyncContext *sc;        /* asking a Sentinel */
	char what[64];
	redisAsyncContext *ac;
	uv_timer_t timer;
	uv_timer_t health;            /* PINGs an up connection (opts.health_ms) */
	uint64_t ping_sent_ms;        /* loop time of the PING out, 0 = none */
	int open_timers;
	uint64_t backoff_ms;
	size_t pending;               /* in flight or queued */
	/* Commands sent while the connection is not up yet, in order (RESP
	 * text); sent when it comes up, failed when an attempt fails. */
	struct cmd *queue_head, **queue_tail;
	struct txn *txn;              /* the open MULTI bracket, or NULL */
	size_t held;                  /* callbacks of brackets not answered yet */
	bool up;
	bool freeing;
};

/* One command in flight or queued (not SUBSCRIBEs, which keep their fn). */
struct cmd {
	struct hd_rconn *c;
	hd_rconn_reply_fn fn;
	void *priv;
	struct cmd *next;             /* in the queue */
	char *resp;                   /* queued: the formatted command (hiredis's) */
	long long resp_len;
};

/* A MULTI bracket: its commands' callbacks, in order, until EXEC answers
 * (at most max_pending of them, counted in held). */
struct txn {
	size_t n, cap;
	struct tcall {
		hd_rconn_reply_fn fn;
		void *priv;
	} *calls;
};

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata);

/* Answers every queued command NULL (an attempt to connect failed). */
static void fail_queued(struct hd_rconn *c)
{
	struct cmd *k = c->queue_head;
	c->queue_head = NULL;
	c->queue_tail = &c->queue_head;
	while (k) {
		struct cmd *next = k->next;
		c->pending--;
		redisFreeCommand(k->resp);
		k->fn(c, NULL, k->priv);
		free(k);
		k = next;
	}
}

/* Sends the queued commands, in order, now that the connection is up. */
static void send_queued(struct hd_rconn *c)
{
	struct cmd *k = c->queue_head;
	c->queue_head = NULL;
	c->queue_tail = &c->queue_head;
	while (k) {
		struct cmd *next = k->next;
		char *resp = k->resp;
		k->resp = NULL;
		k->next = NULL;
		if (redisAsyncFormattedCommand(c->ac, on_reply, k, resp, (size_t)k->resp_len) !=
		    REDIS_OK) {
			c->pending--;
			k->fn(c, NULL, k->priv);
			free(k);
		}
		redisFreeCommand(resp);
		k = next;
	}
}

static void start_connect(struct hd_rconn *c);

/* ---- hiredis on the libuv loop ----------------------------------------- */

struct ev {
	uv_poll_t poll;
	redisAsyncContext *ac;        /* NULL once hiredis let go of it */
	int events;                   /* UV_READABLE | UV_WRITABLE wanted */
};

static void ev_poll(uv_poll_t *h, int status, int events)
{
	struct ev *e = h->data;
	if (!e->ac)
		return;
	if (status < 0) {
		/* libuv stopped the handle: let hiredis find the error. */
		if (e->ac->c.flags & REDIS_CONNECTED)
			redisAsyncHandleRead(e->ac);
		else
			redisAsyncHandleWrite(e->ac);
		return;
	}
	if (events & UV_READABLE)
		redisAsyncHandleRead(e->ac);
	if (e->ac && (events & UV_WRITABLE))
		redisAsyncHandleWrite(e->ac);
}

static void ev_update(struct ev *e)
{
	if (e->events)
		uv_poll_start(&e->poll, e->events, ev_poll);
	else
		uv_poll_stop(&e->poll);
}

static void ev_add_read(void *arg)
{
	struct ev *e = arg;
	e->events |= UV_READABLE;
	ev_update(e);
}

static void ev_del_read(void *arg)
{
	struct ev *e = arg;
	e->events &= ~UV_READABLE;
	ev_update(e);
}

static void ev_add_write(void *arg)
{
	struct ev *e = arg;
	e->events |= UV_WRITABLE;
	ev_update(e);
}

static void ev_del_write(void *arg)
{
	struct ev *e = arg;
	e->events &= ~UV_WRITABLE;
	ev_update(e);
}

static void ev_closed(uv_handle_t *h)
{
	free(h->data);
}

static void ev_cleanup(void *arg)
{
	struct ev *e = arg;
	e->ac = NULL;
	uv_close((uv_handle_t *)&e->poll, ev_closed);
}

/* Ties ac to loop. Returns 0 or -1. */
static int ev_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
	struct ev *e = hd_calloc(1, sizeof(*e));
	if (uv_poll_init(loop, &e->poll, ac->c.fd) != 0) {
		free(e);
		return -1;
	}
	e->poll.data = e;
	e->ac = ac;
	ac->ev.data = e;
	ac->ev.addRead = ev_add_read;
	ac->ev.delRead = ev_del_read;
	ac->ev.addWrite = ev_add_write;
	ac->ev.delWrite = ev_del_write;
	ac->ev.cleanup = ev_cleanup;
	return 0;
}

/* ---- connecting --------------------------------------------------------- */

static void on_retry_timer(uv_timer_t *t)
{
	start_connect(t->data);
}

static void retry_later(struct hd_rconn *c)
{
	fail_queued(c);
	if (c->freeing)
		return;
	uv_timer_start(&c->timer, on_retry_timer, c->backoff_ms, 0);
	c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
}

static void on_pong(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct hd_rconn *c = ac->data;
	if (reply)
		c->ping_sent_ms = 0;
}

/* hiredis has no command timeout: a primary that stops answering (SIGSTOP,
 * a partition) would hold every request forever. A PING unanswered for
 * health_ms drops the connection: requests fail (503), the next attempt
 * asks again where the primary is. */
static void on_health(uv_timer_t *t)
{
	struct hd_rconn *c = t->data;
	uint64_t now = uv_now(c->opts.loop);
	if (!c->up || !c->ac) {
		c->ping_sent_ms = 0;
		return;
	}
	if (c->ping_sent_ms) {
		if (now - c->ping_sent_ms >= c->opts.health_ms) {
			hd_log_warn("redis: no answer for %ums, reconnecting what=%s host=%s port=%d",
				    (unsigned)c->opts.health_ms, c->what, c->host, c->opts.port);
			c->ping_sent_ms = 0;
			hd_rconn_drop(c);
		}
		return;
	}
	c->ping_sent_ms = now ? now : 1;
	redisAsyncCommand(c->ac, on_pong, NULL, "PING");
}

static void became_up(struct hd_rconn *c)
{
	hd_log_info("redis: connected what=%s host=%s port=%d", c->what, c->host, c->opts.port);
	c->up = true;
	c->ping_sent_ms = 0;
	c->backoff_ms = BACKOFF_MIN_MS;
	if (c->opts.on_up)
		c->opts.on_up(c, c->opts.arg);
	if (c->up && c->ac)
		send_queued(c);
}

static void on_drop_timer(uv_timer_t *t)
{
	hd_rconn_drop(t->data);
}

/* With Sentinels: the server the Sentinel named must be the primary. */
static void on_role(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct hd_rconn *c = ac->data;
	redisReply *r = reply;
	if (!r || c->freeing)
		return;
	if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
	    r->element[0]->type == REDIS_REPLY_STRING && !strcmp(r->element[0]->str, "master")) {
		became_up(c);
		return;
	}
	hd_log_warn("redis: not the primary what=%s host=%s port=%d", c->what, c->host,
		    c->opts.port);
	uv_timer_start(&c->timer, on_drop_timer, 0, 0); /* not from inside hiredis */
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
	if (c->nsentinels) {
		redisAsyncCommand(c->ac, on_role, NULL, "ROLE");
		return;
	}
	became_up(c);
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

static void connect_primary(struct hd_rconn *c);

static void on_sentinel_gone(const redisAsyncContext *sc, int status)
{
	struct hd_rconn *c = sc->data;
	if (c->sc == sc)
		c->sc = NULL;
}

static void on_sentinel_reply(redisAsyncContext *sc, void *reply, void *privdata)
{
	struct hd_rconn *c = sc->data;
	redisReply *r = reply;
	if (c->freeing)
		return;
	if (!r) {
		hd_log_warn("redis: no answer from the sentinel what=%s error=\"%s\"", c->what,
			    sc->errstr);
		c->sc = NULL; /* it failed: hiredis frees it */
		retry_later(c);
		return;
	}
	redisAsyncDisconnect(sc); /* after this callback */
	c->sc = NULL;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != REDIS_REPLY_STRING || r->element[0]->len >= sizeof(c->host)) {
		hd_log_warn("redis: the sentinel does not know the primary what=%s name=%s", c->what,
			    c->master_name);
		retry_later(c);
		return;
	}
	memcpy(c->host, r->element[0]->str, r->element[0]->len + 1);
	c->opts.port = atoi(r->element[1]->str);
	connect_primary(c);
}

static void on_sentinel_connect(const redisAsyncContext *sc, int status)
{
	struct hd_rconn *c = sc->data;
	if (status != REDIS_OK) {
		hd_log_warn("redis: cannot reach the sentinel what=%s error=\"%s\"", c->what,
			    sc->errstr);
		c->sc = NULL; /* freed by hiredis */
		retry_later(c);
	}
}

static void start_connect(struct hd_rconn *c)
{
	if (!c->nsentinels) {
		connect_primary(c);
		return;
	}
	unsigned i = c->next_sentinel++ % c->nsentinels;
	redisAsyncContext *sc = redisAsyncConnect(c->sentinels[i].host, c->sentinels[i].port);
	if (!sc || sc->err || ev_attach(sc, c->opts.loop) != 0) {
		if (sc)
			redisAsyncFree(sc);
		retry_later(c);
		return;
	}
	sc->data = c;
	c->sc = sc;
	redisAsyncSetConnectCallback(sc, on_sentinel_connect);
	redisAsyncSetDisconnectCallback(sc, on_sentinel_gone);
	redisAsyncCommand(sc, on_sentinel_reply, NULL, "SENTINEL get-master-addr-by-name %s",
			  c->master_name);
}

static void connect_primary(struct hd_rconn *c)
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
	if (ev_attach(ac, c->opts.loop) != 0) {
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
	c->opts.sentinels = NULL;
	c->opts.master_name = NULL;
	for (const char *p = opts->sentinels; p && *p && c->nsentinels < SENTINELS_MAX;) {
		size_t n = strcspn(p, ",");
		const char *colon = memchr(p, ':', n);
		if (colon && (size_t)(colon - p) < sizeof(c->sentinels[0].host)) {
			memcpy(c->sentinels[c->nsentinels].host, p, (size_t)(colon - p));
			c->sentinels[c->nsentinels].port = atoi(colon + 1);
			c->nsentinels++;
		}
		p += n + (p[n] == ',');
	}
	snprintf(c->master_name, sizeof(c->master_name), "%s",
		 opts->master_name ? opts->master_name : "");
	c->backoff_ms = BACKOFF_MIN_MS;
	c->queue_tail = &c->queue_head;
	uv_timer_init(opts->loop, &c->timer);
	c->timer.data = c;
	uv_timer_init(opts->loop, &c->health);
	c->health.data = c;
	c->open_timers = 2;
	if (opts->health_ms) {
		uint64_t every = opts->health_ms / 3 > 100 ? opts->health_ms / 3 : 100;
		uv_timer_start(&c->health, on_health, every, every);
	}
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
	redisReply *r = reply;
	c->pending--;
	if (r && r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "READONLY", 8))
		hd_rconn_reconnect(c); /* a demoted primary: find the new one */
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

/* Sends (or queues, when not up) one command; the caller checked the
 * limits. Returns 0 or HD_EUNAVAIL (fn never runs). */
static int send_cmd(struct hd_rconn *c, hd_rconn_reply_fn fn, void *priv, int argc,
		    const char **argv, const size_t *lens, bool sub)
{
	struct cmd *k = hd_calloc(1, sizeof(*k));
	k->c = c;
	k->fn = fn;
	k->priv = priv;
	if (!c->up || !c->ac) {
		k->resp_len = redisFormatCommandArgv(&k->resp, argc, argv, lens);
		if (k->resp_len < 0) {
			free(k);
			return HD_EUNAVAIL;
		}
		*c->queue_tail = k;
		c->queue_tail = &k->next;
		c->pending++;
		return 0;
	}
	if (redisAsyncCommandArgv(c->ac, sub ? on_sub_reply : on_reply, k, argc, argv, lens) !=
	    REDIS_OK) {
		free(k);
		return HD_EUNAVAIL;
	}
	if (!sub)
		c->pending++;
	return 0;
}

/* A bracket's MULTI, or one of its commands' +QUEUED: nothing to do. A
 * command refused when queued (a READONLY is seen by on_reply) makes the
 * server abort the EXEC, which answers every callback NULL. */
static void txn_swallow(struct hd_rconn *c, redisReply *r, void *priv)
{
	(void)c;
	(void)r;
	(void)priv;
}

/* EXEC's reply: element i answers the bracket's command i. */
static void txn_exec(struct hd_rconn *c, redisReply *r, void *priv)
{
	struct txn *t = priv;
	bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == t->n;
	assert(c->held >= t->n);
	c->held -= t->n;
	for (size_t i = 0; i < t->n; i++) {
		redisReply *e = ok ? r->element[i] : NULL;
		if (e && e->type == REDIS_REPLY_ERROR && !strncmp(e->str, "READONLY", 8))
			hd_rconn_reconnect(c);
		t->calls[i].fn(c, e, t->calls[i].priv);
	}
	free(t->calls);
	free(t);
}

int hd_rconn_command(struct hd_rconn *c, hd_rconn_reply_fn fn, void *priv, int argc,
		     const char **argv, const size_t *lens)
{
	bool sub = argc > 0 && lens[0] == 9 && strncasecmp(argv[0], "SUBSCRIBE", 9) == 0;
	if ((!c->up && sub) || (!sub && c->pending + c->held >= c->opts.max_pending) ||
	    c->freeing)
		return HD_EUNAVAIL;
	struct txn *t = c->txn;
	if (!t || sub)
		return send_cmd(c, fn, priv, argc, argv, lens, sub);
	assert(!sub);
	if (send_cmd(c, txn_swallow, NULL, argc, argv, lens, false))
		return HD_EUNAVAIL;
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->calls = hd_realloc(t->calls, t->cap * sizeof(*t->calls));
	}
	t->calls[t->n++] = (struct tcall){fn, priv};
	c->held++;
	return 0;
}

int hd_rconn_multi_begin(struct hd_rconn *c)
{
	static const char *argv[] = {"MULTI"};
	static const size_t lens[] = {5};
	assert(!c->txn);
	/* Room for MULTI and EXEC. */
	if (c->freeing || c->pending + c->held + 2 > c->opts.max_pending)
		return HD_EUNAVAIL;
	if (send_cmd(c, txn_swallow, NULL, 1, argv, lens, false))
		return HD_EUNAVAIL;
	c->txn = hd_calloc(1, sizeof(*c->txn));
	return 0;
}

void hd_rconn_multi_end(struct hd_rconn *c)
{
	static const char *argv[] = {"EXEC"};
	static const size_t lens[] = {4};
	struct txn *t = c->txn;
	if (!t)
		return;
	c->txn = NULL;
	if (send_cmd(c, txn_exec, t, 1, argv, lens, false)) {
		/* hiredis refused it (the context is going): the connection is
		 * left inside MULTI, drop it; the commands failed. */
		hd_rconn_reconnect(c);
		txn_exec(c, NULL, t);
	}
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
	struct hd_rconn *c = h->data;
	if (--c->open_timers == 0)
		free(c);
}

void hd_rconn_reconnect(struct hd_rconn *c)
{
	if (c->ac && !c->freeing)
		uv_timer_start(&c->timer, on_drop_timer, 0, 0);
}

void hd_rconn_free(struct hd_rconn *c)
{
	c->freeing = true;
	uv_timer_stop(&c->timer);
	if (c->sc)
		redisAsyncFree(c->sc);
	c->sc = NULL;
	if (c->ac)
		redisAsyncFree(c->ac);
	c->ac = NULL;
	c->up = false;
	fail_queued(c);
	assert(!c->txn); /* brackets close in the turn that opened them */
	uv_close((uv_handle_t *)&c->timer, on_timer_closed);
	uv_close((uv_handle_t *)&c->health, on_timer_closed);
}
