/*
 * redis_heal — once per life of a shard's Redis primary, raise the visible
 * top of every topic whose stored events sit above it (docs/cluster.md
 * "What an acknowledgement means": a primary restarted from its own AOF
 * can come back with a top below events it acknowledged, because the
 * confirm's raise reaches the AOF only with a later batch).
 * Layer: engine. Loop thread only; started by redis.c (new, stop) and by
 * redis_deliver.c's command connection up.
 *
 * A life is the primary's `INFO server` run_id: a restart or a failover
 * gives a new one. When a node's command connection comes up it claims the
 * heal of that life with the S_HCLAIM script: HEAL_KEY records the life,
 * the cursor (the last topic name healed) and done; HEAL_LEASE_KEY, "RUNID
 * NODE" expiring after HEAL_LEASE_MS, names the node healing it, which
 * renews it with the cursor after each page. One node heals a life at a
 * time: a node that finds the lease held tries again every HEAL_LEASE_MS,
 * and takes over from the cursor once it expired (its holder died or lost
 * Redis); this node's own lease is taken again after its connection came
 * back. The heal walks the shard's herald:topics after the cursor in
 * pages of HEAL_PAGE names, per page:
 *   1. one S_HEAL 'check' call per topic (each topic is its own slot),
 *      pipelined (at most HEAL_PAGE out): {epoch, last} when last > top;
 *   2. replicated: one `WAIT 1 timeout` on the same connection (timeout at
 *      most HEAL_WAIT_MS: a WAIT with no replica holds the connection; none for
 *      primary and none: a PUB there raised the top itself, and a write's
 *      reply under appendfsync always comes after its fsync). Fewer than
 *      one replica: nothing is raised, the page is checked again after a
 *      backoff (HEAL_BACKOFF_MIN_MS doubling to HEAL_BACKOFF_MAX_MS);
 *   3. one S_HEAL 'raise' call per topic found: the top rises to the last
 *      read in 1 (never lowered, epoch-checked), replicated and written to
 *      the AOF, and the confirm's notice (a message with no events) is
 *      PUBLISHed so that following nodes read the range and deliver it
 *      exactly once, in order (redis_deliver.c on_message).
 * Why 3 is safe, exactly as a confirm is for its own batch: the check in 1
 * reads last and, in the same script, writes the meta (its top unchanged).
 * The replication stream is one ordered log, so that write comes after
 * every write of the events up to last, whichever node made them; a WAIT
 * counts the replicas that acknowledged this connection's last write, so
 * WAIT ≥ 1 means a replica holds every event up to last. And the primary
 * (appendfsync always) fsyncs its AOF before it answers a write, so the
 * check's reply came after those events were fsynced there. Healing a
 * page twice (a takeover after a holder that had done part of the page,
 * or two holders while a renewal was late) is harmless: the check only
 * reports last > top, the raise only moves a top up to a last it read,
 * epoch-checked, so a second raise of the same top finds off <= top and
 * does nothing (no notice either).
 */
#include "engine/redis_impl.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEAL_PAGE 200               /* topic names per page (calls out) */
#define HEAL_BACKOFF_MIN_MS 100u    /* after a WAIT that no replica answered */
#define HEAL_BACKOFF_MAX_MS 5000u
#define HEAL_WAIT_MS 200u         /* the heal's WAIT timeout, at most: while no
					replica answers, a WAIT holds the shard's
					command connection (reads, publishes) */
#define HEAL_LEASE_MS 3000u       /* the heal's lease, renewed per page and per
					backoff; a held lease is asked again after it */
#define RUN_ID_MAX 64

/* A topic whose last is above its top (step 1's answer). */
struct hfound {
	const char *name;             /* borrowed: the page's names */
	char epoch[HD_EPOCH_LEN + 1];
	char last[24];
};

/* Where the heal of one shard stands. */
struct hshard {
	struct hd_redis_heal *h;
	unsigned index;
	unsigned gen;                 /* bumped per (re)start: older replies are dropped */
	bool running;
	char run_id[RUN_ID_MAX + 1];
	char after[HD_TOPIC_NAME_MAX + 1]; /* the last name of the current page */
	char cursor[HD_TOPIC_NAME_MAX + 1]; /* the last name done (saved in HEAL_KEY) */
	bool claimed;                 /* this node holds the lease (else: asking for it) */
	bool hold;                    /* the timer starts the next page (test-only hold) */
	char *names[HEAL_PAGE];       /* owned: the current page */
	size_t nnames;
	bool more;                    /* a full page: another may follow */
	struct hfound found[HEAL_PAGE];
	size_t nfound;
	size_t out;                   /* calls of the current step out */
	size_t checked, healed;
	uint32_t backoff_ms;
	uint64_t started_ms;
	uv_timer_t timer;             /* the backoff after a failed WAIT, the claim's
					retry, or the test-only hold */
};

struct hd_redis_heal {
	struct redis *r;
	bool stopped;
	unsigned open_handles;
	unsigned nshards;
	size_t page;                  /* names per page: HEAL_PAGE (test: fewer) */
	uint32_t hold_ms;             /* test-only: a hold after each page saved */
	struct hshard *shards[HD_REDIS_SHARDS_MAX]; /* owned */
};

/* One call's context: its shard and the generation it was sent in. */
struct hcall {
	struct hshard *hs;
	unsigned gen;
};

static void page_next(struct hshard *hs);
static void page_check(struct hshard *hs);
static void claim_send(struct hshard *hs);
static void lease_renew(struct hshard *hs);

static uint32_t wait_ms(const struct redis *r)
{
	uint32_t t = r->opts.wait_timeout_ms;
	return t && t < HEAL_WAIT_MS ? t : HEAL_WAIT_MS;
}

static struct hcall *call_new(struct hshard *hs)
{
	struct hcall *k = hd_malloc(sizeof(*k));
	k->hs = hs;
	k->gen = hs->gen;
	return k;
}

/* Frees k; its shard when the reply still counts, else NULL. */
static struct hshard *call_take(void *priv)
{
	struct hcall *k = priv;
	struct hshard *hs = k->hs;
	bool live = !hs->h->stopped && k->gen == hs->gen && hs->running;
	free(k);
	return live ? hs : NULL;
}

static struct hd_rconn *conn(struct hshard *hs)
{
	return hs->h->r->shards[hs->index].cmd;
}

static void page_clear(struct hshard *hs)
{
	for (size_t i = 0; i < hs->nnames; i++)
		free(hs->names[i]);
	hs->nnames = 0;
	hs->nfound = 0;
	hs->out = 0;
}

/* Gives up this run (the connection went, or Redis refused): replies still
 * out are dropped; the next connection up claims again. */
static void abandon(struct hshard *hs, const char *why)
{
	if (!hs->running)
		return;
	hd_log_warn("redis heal: shard %u stopped after %zu topics (%s); the next connection up "
		    "claims it again",
		    hs->index, hs->checked, why);
	hs->running = false;
	hs->gen++;
	uv_timer_stop(&hs->timer);
	page_clear(hs);
}

static void done_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	(void)c;
	(void)priv;
	(void)hd_redis_reply_err(rep);
}

static void finish(struct hshard *hs)
{
	struct redis *r = hs->h->r;
	char lease[16];
	snprintf(lease, sizeof(lease), "%u", HEAL_LEASE_MS);
	const char *args[] = {HEAL_KEY, HEAL_LEASE_KEY, hs->run_id, r->node, "done", "", lease};
	size_t lens[] = {strlen(HEAL_KEY), strlen(HEAL_LEASE_KEY), strlen(hs->run_id),
			 strlen(r->node), 4, 0, strlen(lease)};
	(void)hd_redis_script_call(r, conn(hs), S_HCLAIM, done_reply, NULL, 7, args, lens, 2);
	hd_log_info("redis heal: shard %u done: %zu topics checked, %zu healed in %llu ms", hs->index,
		    hs->checked, hs->healed, (unsigned long long)(hd_now_ms() - hs->started_ms));
	hs->running = false;
	page_clear(hs);
}

/* The backoff, the claim's retry, or the test-only hold is over. */
static void timer_fired(uv_timer_t *t)
{
	struct hshard *hs = t->data;
	if (hs->h->stopped || !hs->running)
		return;
	if (!hs->claimed) {
		claim_send(hs);
	} else if (hs->hold) {
		hs->hold = false;
		page_next(hs);
	} else {
		page_check(hs);
	}
}

static void lease_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	(void)c;
	struct hshard *hs = call_take(priv);
	if (!hs)
		return;
	if (hd_redis_reply_err(rep))
		abandon(hs, "renewing the lease failed");
	else if (rep->type != REDIS_REPLY_INTEGER || rep->integer != 1)
		abandon(hs, "another node holds the lease");
}

/* Saves the cursor and renews the lease (its answer comes before the
 * replies of what follows on the connection). */
static void lease_renew(struct hshard *hs)
{
	struct redis *r = hs->h->r;
	char lease[16];
	snprintf(lease, sizeof(lease), "%u", HEAL_LEASE_MS);
	const char *args[] = {HEAL_KEY, HEAL_LEASE_KEY, hs->run_id, r->node, "page", hs->cursor,
			      lease};
	size_t lens[] = {strlen(HEAL_KEY), strlen(HEAL_LEASE_KEY), strlen(hs->run_id),
			 strlen(r->node), 4, strlen(hs->cursor), strlen(lease)};
	struct hcall *k = call_new(hs);
	if (hd_redis_script_call(r, conn(hs), S_HCLAIM, lease_reply, k, 7, args, lens, 2)) {
		free(k);
		abandon(hs, "the connection is going");
	}
}

/* The page is done: the next one (its cursor saved), or the end. */
static void page_done(struct hshard *hs)
{
	hs->checked += hs->nnames;
	hs->backoff_ms = 0;
	page_clear(hs);
	if (!hs->more) {
		finish(hs);
		return;
	}
	memcpy(hs->cursor, hs->after, sizeof(hs->cursor));
	lease_renew(hs);
	if (!hs->running)
		return;
	if (hs->h->hold_ms) {
		hs->hold = true;
		uv_timer_start(&hs->timer, timer_fired, hs->h->hold_ms, 0);
		return;
	}
	page_next(hs);
}

static void raise_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	(void)c;
	struct hshard *hs = call_take(priv);
	if (!hs)
		return;
	if (hd_redis_reply_err(rep)) {
		abandon(hs, "a raise failed");
		return;
	}
	if (rep->type == REDIS_REPLY_INTEGER && rep->integer == 1)
		hs->healed++;
	if (--hs->out == 0)
		page_done(hs);
}

/* Step 3: raise each found topic's top to the last read in step 1. */
static void page_raise(struct hshard *hs)
{
	struct redis *r = hs->h->r;
	size_t n = hs->nfound;
	hs->out = n;
	for (size_t i = 0; i < n; i++) {
		const struct hfound *f = &hs->found[i];
		char kmeta[HD_TOPIC_NAME_MAX + 16];
		snprintf(kmeta, sizeof(kmeta), "{t:%s}:m", f->name);
		struct hd_buf msg;
		hd_buf_init(&msg, 64 + strlen(f->name));
		int rc = hd_redis_deliver_msg_head(&msg, f->epoch, strtoull(f->last, NULL, 10), f->name,
						   0);
		const char *args[] = {kmeta, "raise", f->epoch, f->last, CHANNEL,
				      msg.data ? msg.data : ""};
		size_t lens[] = {strlen(kmeta), 5, strlen(f->epoch), strlen(f->last), strlen(CHANNEL),
				 msg.len};
		struct hcall *k = call_new(hs);
		if (!rc)
			rc = hd_redis_script_call(r, conn(hs), S_HEAL, raise_reply, k, 6, args, lens, 1);
		hd_buf_fini(&msg);
		if (rc) {
			free(k);
			abandon(hs, "the connection is going");
			return;
		}
	}
}


static void wait_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	(void)c;
	struct hshard *hs = call_take(priv);
	if (!hs)
		return;
	if (hd_redis_reply_err(rep)) {
		abandon(hs, "WAIT failed");
		return;
	}
	if (rep->type == REDIS_REPLY_INTEGER && rep->integer >= 1) {
		page_raise(hs);
		return;
	}
	/* No replica holds them yet: raising now would make visible events that
	 * a failover could lose. Check the page again later. */
	hs->backoff_ms = hs->backoff_ms ? hs->backoff_ms * 2 : HEAL_BACKOFF_MIN_MS;
	if (hs->backoff_ms > HEAL_BACKOFF_MAX_MS)
		hs->backoff_ms = HEAL_BACKOFF_MAX_MS;
	hd_log_warn("redis heal: shard %u: no replica acknowledged within %ums; %zu topics wait, "
		    "checked again in %ums",
		    hs->index, (unsigned)wait_ms(hs->h->r), hs->nfound,
		    (unsigned)hs->backoff_ms);
	hs->nfound = 0;
	lease_renew(hs);
	if (hs->running)
		uv_timer_start(&hs->timer, timer_fired, hs->backoff_ms, 0);
}

/* Step 2 (replicated: WAIT; else straight to step 3). */
static void page_wait(struct hshard *hs)
{
	struct redis *r = hs->h->r;
	if (r->opts.durability != HD_REDIS_REPLICATED) {
		page_raise(hs);
		return;
	}
	char tmo[16];
	snprintf(tmo, sizeof(tmo), "%u", (unsigned)wait_ms(r));
	const char *argv[] = {"WAIT", "1", tmo};
	size_t lens[] = {4, 1, strlen(tmo)};
	struct hcall *k = call_new(hs);
	if (hd_rconn_command(conn(hs), wait_reply, k, 3, argv, lens)) {
		free(k);
		abandon(hs, "the connection is going");
	}
}

static void check_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	(void)c;
	struct hcall *k = priv;
	struct hshard *hs = call_take(k);
	if (!hs)
		return;
	if (hd_redis_reply_err(rep)) {
		abandon(hs, "a check failed");
		return;
	}
	if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
	    rep->element[0]->type == REDIS_REPLY_STRING &&
	    rep->element[0]->len <= HD_EPOCH_LEN && rep->element[1]->type == REDIS_REPLY_STRING &&
	    rep->element[1]->len < sizeof(hs->found[0].last) && hs->nfound < hs->nnames) {
		/* The replies come in the order sent: the page's next name. */
		struct hfound *f = &hs->found[hs->nfound++];
		f->name = hs->names[hs->nnames - hs->out];
		memcpy(f->epoch, rep->element[0]->str, rep->element[0]->len);
		f->epoch[rep->element[0]->len] = '\0';
		memcpy(f->last, rep->element[1]->str, rep->element[1]->len);
		f->last[rep->element[1]->len] = '\0';
	}
	if (--hs->out)
		return;
	if (hs->nfound)
		page_wait(hs);
	else
		page_done(hs);
}

/* Step 1: one check per name of the page. */
static void page_check(struct hshard *hs)
{
	struct redis *r = hs->h->r;
	hs->nfound = 0;
	hs->out = hs->nnames;
	for (size_t i = 0; i < hs->nnames; i++) {
		char kmeta[HD_TOPIC_NAME_MAX + 16];
		snprintf(kmeta, sizeof(kmeta), "{t:%s}:m", hs->names[i]);
		const char *args[] = {kmeta, "check"};
		size_t lens[] = {strlen(kmeta), 5};
		struct hcall *k = call_new(hs);
		if (hd_redis_script_call(r, conn(hs), S_HEAL, check_reply, k, 2, args, lens, 1)) {
			free(k);
			abandon(hs, "the connection is going");
			return;
		}
	}
}

static void list_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	(void)c;
	struct hshard *hs = call_take(priv);
	if (!hs)
		return;
	if (hd_redis_reply_err(rep) || rep->type != REDIS_REPLY_ARRAY) {
		abandon(hs, "listing the topics failed");
		return;
	}
	page_clear(hs);
	for (size_t i = 0; i < rep->elements && hs->nnames < hs->h->page; i++) {
		const redisReply *e = rep->element[i];
		if (e->type == REDIS_REPLY_STRING && e->len > 0 && e->len <= HD_TOPIC_NAME_MAX)
			hs->names[hs->nnames++] = hd_strndup(e->str, e->len);
	}
	hs->more = rep->elements >= hs->h->page;
	if (hs->more) {
		const redisReply *e = rep->element[rep->elements - 1];
		if (e->type != REDIS_REPLY_STRING || e->len > HD_TOPIC_NAME_MAX) {
			abandon(hs, "a listed name is not a topic name");
			return;
		}
		memcpy(hs->after, e->str, e->len);
		hs->after[e->len] = '\0';
	}
	if (!hs->nnames)
		page_done(hs);
	else
		page_check(hs);
}

/* The next page of names after hs->after. */
static void page_next(struct hshard *hs)
{
	char min[HD_TOPIC_NAME_MAX + 4], max[8], lim[16];
	hd_redis_lex_range("", hs->after, min, sizeof(min), max, sizeof(max));
	snprintf(lim, sizeof(lim), "%zu", hs->h->page);
	const char *argv[] = {"ZRANGEBYLEX", TOPICS_KEY, min, max, "LIMIT", "0", lim};
	size_t lens[] = {11, strlen(TOPICS_KEY), strlen(min), strlen(max), 5, 1, strlen(lim)};
	struct hcall *k = call_new(hs);
	if (hd_rconn_command(conn(hs), list_reply, k, 7, argv, lens)) {
		free(k);
		abandon(hs, "the connection is going");
	}
}

static void claim_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	(void)c;
	struct hshard *hs = call_take(priv);
	if (!hs)
		return;
	if (hd_redis_reply_err(rep)) {
		abandon(hs, "the claim failed");
		return;
	}
	if (rep->type == REDIS_REPLY_INTEGER && rep->integer == 1) {
		/* Another node holds the lease: ask again once it may have expired. */
		uv_timer_start(&hs->timer, timer_fired, HEAL_LEASE_MS, 0);
		return;
	}
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 1 ||
	    rep->element[0]->type != REDIS_REPLY_STRING ||
	    rep->element[0]->len > HD_TOPIC_NAME_MAX) {
		hs->running = false; /* this life was healed */
		return;
	}
	memcpy(hs->cursor, rep->element[0]->str, rep->element[0]->len);
	hs->cursor[rep->element[0]->len] = '\0';
	hd_log_info("redis heal: shard %u: primary run_id %s claimed by this node, checking its "
		    "topics after '%s'",
		    hs->index, hs->run_id, hs->cursor);
	hs->claimed = true;
	memcpy(hs->after, hs->cursor, sizeof(hs->after));
	hs->checked = hs->healed = 0;
	hs->backoff_ms = 0;
	hs->started_ms = hd_now_ms();
	page_next(hs);
}

static void info_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	(void)c;
	struct hshard *hs = call_take(priv);
	if (!hs)
		return;
	if (hd_redis_reply_err(rep)) {
		abandon(hs, "INFO failed");
		return;
	}
	const char *at = NULL;
	if (rep->type == REDIS_REPLY_STRING)
		at = strstr(rep->str, "run_id:");
	size_t n = 0;
	if (at) {
		at += 7;
		while (n < RUN_ID_MAX && at[n] && at[n] != '\r' && at[n] != '\n' && at[n] != ' ')
			n++;
	}
	if (!n) {
		abandon(hs, "INFO has no run_id");
		return;
	}
	memcpy(hs->run_id, at, n);
	hs->run_id[n] = '\0';
	claim_send(hs);
}

/* Asks for the lease of hs->run_id's heal. */
static void claim_send(struct hshard *hs)
{
	struct redis *r = hs->h->r;
	char lease[16];
	snprintf(lease, sizeof(lease), "%u", HEAL_LEASE_MS);
	const char *args[] = {HEAL_KEY, HEAL_LEASE_KEY, hs->run_id, r->node, "claim", "", lease};
	size_t lens[] = {strlen(HEAL_KEY), strlen(HEAL_LEASE_KEY), strlen(hs->run_id),
			 strlen(r->node), 5, 0, strlen(lease)};
	struct hcall *k = call_new(hs);
	if (hd_redis_script_call(r, conn(hs), S_HCLAIM, claim_reply, k, 7, args, lens, 2)) {
		free(k);
		abandon(hs, "the connection is going");
	}
}

void hd_redis_heal_cmd_up(struct hd_redis_heal *h, unsigned shard)
{
	if (!h || h->stopped || shard >= h->nshards)
		return;
	struct hshard *hs = h->shards[shard];
	/* A new connection: whatever ran on the last one is over. */
	hs->gen++;
	uv_timer_stop(&hs->timer);
	page_clear(hs);
	hs->running = true;
	hs->claimed = hs->hold = false;
	const char *argv[] = {"INFO", "server"};
	size_t lens[] = {4, 6};
	struct hcall *k = call_new(hs);
	if (hd_rconn_command(conn(hs), info_reply, k, 2, argv, lens)) {
		free(k);
		hs->running = false;
	}
}

struct hd_redis_heal *hd_redis_heal_new(struct redis *r)
{
	struct hd_redis_heal *h = hd_calloc(1, sizeof(*h));
	h->r = r;
	h->nshards = r->nshards;
	/* Test-only (no option, no doc): small pages and a hold after each, so
	 * that a test can kill the healing node partway through. */
	const char *env = getenv("HERALD_TEST_HEAL_PAGE");
	h->page = env && atoi(env) > 0 && atoi(env) < HEAL_PAGE ? (size_t)atoi(env) : HEAL_PAGE;
	env = getenv("HERALD_TEST_HEAL_HOLD_MS");
	h->hold_ms = env && atoi(env) > 0 ? (uint32_t)atoi(env) : 0;
	for (unsigned s = 0; s < h->nshards; s++) {
		struct hshard *hs = hd_calloc(1, sizeof(*hs));
		hs->h = h;
		hs->index = s;
		uv_timer_init(r->loop, &hs->timer);
		hs->timer.data = hs;
		h->shards[s] = hs;
	}
	h->open_handles = h->nshards;
	return h;
}

static void on_close(uv_handle_t *t)
{
	struct hshard *hs = t->data;
	struct hd_redis_heal *h = hs->h;
	free(hs);
	if (--h->open_handles == 0)
		free(h);
}

void hd_redis_heal_stop(struct hd_redis_heal *h)
{
	if (!h || h->stopped)
		return;
	h->stopped = true;
	if (!h->nshards) {
		free(h);
		return;
	}
	for (unsigned s = 0; s < h->nshards; s++) {
		struct hshard *hs = h->shards[s];
		hs->running = false;
		page_clear(hs);
		uv_close((uv_handle_t *)&hs->timer, on_close);
	}
}
