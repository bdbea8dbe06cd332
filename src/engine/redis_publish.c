/*
 * redis_publish — the Redis engine's publish (engine.h's publish op): the
 * publish cycle of each shard, batching, the PUB, WAIT, CONFIRM and TOPS
 * calls, folded cycles, the hold, and the MULTI bracket (--redis-transactions).
 * Layer: engine. Loop thread only; called by the hub through engine.h;
 * redis.c starts (hd_redis_publish_init) and stops (hd_redis_publish_stop) it.
 *
 * Publish (on the topic's shard's command connection):
 *   1. the PUB script, one call per topic of a batch (send_pubs; at most
 *      CALL_EVENTS_MAX events, never keys of two topics): the dedup check
 *      of all its events (one HMGET per bucket), their dense offsets, one
 *      XADD LAST-0 holding them all with the retention cap (MINID), one
 *      HSET of their ids; a new epoch for a new topic. With durability
 *      primary or none (no batches: one call per run of one topic's items
 *      in a publish) the same call also raises the visible top and
 *      PUBLISHes its events, and the items are done.
 *   2. replicated: one `WAIT 1 timeout` after a batch of PUB scripts (group
 *      commit: items arriving while a WAIT is out form the next batch);
 *      fewer than one replica → the item fails HD_EUNAVAIL (503), never a
 *      false 201;
 *   3. one CONFIRM script per topic of the batch (send_confirms) raises
 *      the topic's visible top to its highest offset in the batch and
 *      PUBLISHes the batch's events of that topic in one message; its
 *      reply completes those items. Its effects go to the replicas only
 *      (no AOF write of its own); the tops it raised go to the AOF with a
 *      later batch (TOPS, AOF only);
 *   4. folded cycles: when the WAIT answers and items are queued, their
 *      batch (PUB scripts + WAIT) is written right behind the confirms on
 *      the same connection, without waiting for the confirms' replies
 *      (wait_reply). Redis runs one connection's commands in order, so the
 *      tops still rise batch by batch, and a batch is only sent once the
 *      WAIT before it answered (a failed WAIT sends no confirm, so no later
 *      top rises over its offsets before a later WAIT covered them). The
 *      confirms' replies (and the 201s) then come after the next batch's
 *      fsync, but that fsync no longer waits for herald to answer the
 *      last batch and for a hold (measured: docs/cluster.md);
 *   5. nothing queued when the WAIT answers: the next batch is held until
 *      the publishers just answered have published again (or HOLD_MS), so
 *      that they share one fsync and one WAIT (cycle_end).
 * Reads (redis.c) return only offsets at or below the visible top, so an
 * event lost in a failover was never acknowledged, read or delivered.
 */
#include "engine/redis_impl.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/uuid.h"
#include "redis/rconn.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pjob;

/* One item of a publish on its way through the steps above. */
struct pitem {
	struct pjob *job;
	size_t i;
	struct shard *sh;
	struct pitem *next;           /* in the shard's queue or batch */
	bool scripted;                /* the PUB script answered */
	bool late;                    /* its WAIT answered first: it failed */
};

struct pjob {
	struct redis *r;
	struct hd_pub *pub;
	size_t left;
	struct pitem items[];
};

/* A new topic's epoch: a v4 UUID's hex digits but its version digit. */
static void new_epoch(char out[HD_EPOCH_LEN + 1])
{
	char u[37];
	size_t n = 0;
	hd_uuid_v4(u);
	for (size_t i = 0; u[i] && n < HD_EPOCH_LEN; i++)
		if (u[i] != '-' && i != 14) /* skip the version digit */
			out[n++] = u[i];
	out[n] = '\0';
}

static void item_done(struct pitem *it, int err)
{
	struct pjob *job = it->job;
	if (err)
		job->pub->items[it->i].err = err;
	if (--job->left == 0) {
		struct hd_pub *p = job->pub;
		free(job);
		p->done(p);
	}
}

static const struct hd_pub_item *pub_item(const struct pitem *it)
{
	return &it->job->pub->items[it->i];
}

/* One PUB call: items of one topic, in the order they arrived. */
struct pgroup {
	struct redis *r;
	size_t n;
	struct pitem *items[];
};

/* it's part of a PUB reply (err, or its dup flag and offset, and epoch). */
static void pub_item_reply(struct redis *r, struct pitem *it, int err, bool dup, uint64_t off,
			   const redisReply *epoch)
{
	struct hd_pub_item *out = &it->job->pub->items[it->i];
	it->scripted = true;
	if (!err) {
		out->duplicate = dup;
		out->offset = off;
		hd_redis_rep_text(epoch, out->epoch, sizeof(out->epoch));
	}
	if (it->late) {
		item_done(it, HD_EUNAVAIL); /* its WAIT did not cover it */
		return;
	}
	if (err) {
		out->err = err;
		if (r->opts.durability != HD_REDIS_REPLICATED)
			item_done(it, err);
		return; /* replicated: finished when its batch's WAIT answers */
	}
	if (r->opts.durability != HD_REDIS_REPLICATED)
		item_done(it, 0);
}

static void pub_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	struct pgroup *g = priv;
	int err = hd_redis_reply_err(rep);
	/* {epoch, first} when no event was a duplicate, else {epoch, dup,
	 * offset, …} per event (pub_lua) */
	bool compact = !err && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2;
	if (!err && !compact && (rep->type != REDIS_REPLY_ARRAY || rep->elements != 1 + 2 * g->n))
		err = HD_EINTERNAL;
	uint64_t first = compact ? hd_redis_rep_u64(rep->element[1]) : 0;
	if (compact && first == 0)
		err = HD_EINTERNAL;
	for (size_t i = 0; i < g->n; i++) {
		bool dup = false;
		uint64_t off = 0;
		if (!err && compact) {
			off = first + i;
		} else if (!err) {
			dup = hd_redis_rep_u64(rep->element[1 + 2 * i]) == 1;
			off = hd_redis_rep_u64(rep->element[2 + 2 * i]);
		}
		pub_item_reply(g->r, g->items[i], err, dup, off, err ? NULL : rep->element[0]);
	}
	free(g);
}

static void shard_flush(struct shard *sh);
static void shard_send(struct shard *sh, bool in_multi);

/* Sends one PUB call for items[0..n) (one topic, arrival order). Returns 0
 * (pub_reply finishes them) or HD_EUNAVAIL. */
static int send_pubs(struct redis *r, struct shard *sh, struct pitem **items, size_t n)
{
	const struct hd_pub_item *first = pub_item(items[0]);
	struct hd_topic_policy pol = {0};
	char kmeta[HD_TOPIC_NAME_MAX + 16], kstream[HD_TOPIC_NAME_MAX + 16];
	char kbounds[HD_TOPIC_NAME_MAX + 16];
	char kbucket[4][HD_TOPIC_NAME_MAX + 40];
	char win[24], maxlen[24], bucket[24], created[24], epoch[HD_EPOCH_LEN + 1];
	size_t nargs = 7 + 10 + 2 * n;
	const char **args = hd_malloc(nargs * sizeof(*args));
	size_t *lens = hd_malloc(nargs * sizeof(*lens));
	char *nums = hd_malloc(n * 24);  /* each record's length */
	size_t dfbytes = 0, rbytes = 0;
	for (size_t i = 0; i < n; i++) {
		const struct hd_event *ev = pub_item(items[i])->event;
		dfbytes += (ev->source ? strlen(ev->source) : 0) + 1 + (ev->id ? strlen(ev->id) : 0);
		rbytes += 64 + ev->json_len;
	}
	char *dfs = hd_malloc(dfbytes);  /* the dedup fields "SOURCE\0ID" */
	struct hd_buf recs;              /* the records "TIME EXPIRES LEN\nJSON" */
	hd_buf_init(&recs, rbytes);
	hd_buf_reserve(&recs, rbytes);

	r->opts.policy(r->opts.policy_arg, first->topic, &pol);
	args[0] = kmeta;
	lens[0] = hd_redis_topic_key(kmeta, sizeof(kmeta), first->topic, "m");
	args[1] = kstream;
	lens[1] = hd_redis_topic_key(kstream, sizeof(kstream), first->topic, "s");
	args[2] = kbounds;
	lens[2] = hd_redis_topic_key(kbounds, sizeof(kbounds), first->topic, "b");
	/* The dedup buckets around the node's clock: the script picks the
	 * current and previous one by Redis TIME (redis_scripts.c). */
	int64_t b = pol.dedup_window_ms > 0 ? hd_now_ms() / pol.dedup_window_ms : 0;
	for (int k = 0; k < 4; k++) {
		char num[24];
		snprintf(num, sizeof(num), "d:%lld", (long long)(b - 2 + k));
		args[3 + k] = kbucket[k];
		lens[3 + k] = hd_redis_topic_key(kbucket[k], sizeof(kbucket[k]), first->topic, num);
	}
	snprintf(win, sizeof(win), "%lld", (long long)pol.dedup_window_ms);
	snprintf(maxlen, sizeof(maxlen), "%llu", (unsigned long long)pol.max_count);
	snprintf(bucket, sizeof(bucket), "%lld", (long long)b);
	snprintf(created, sizeof(created), "%lld", (long long)first->stored_ms);
	new_epoch(epoch);
	bool confirm = r->opts.durability != HD_REDIS_REPLICATED;
	size_t a = 7;
	const char *fixed[] = {first->topic, win, maxlen, epoch, pol.history ? "1" : "0",
			       confirm ? "1" : "0", CHANNEL, bucket, created};
	for (size_t i = 0; i < 9; i++) {
		args[a] = fixed[i];
		lens[a++] = strlen(fixed[i]);
	}
	size_t arecs = a++;
	char *df = dfs;
	for (size_t i = 0; i < n; i++) {
		const struct hd_pub_item *in = pub_item(items[i]);
		const char *src = in->event->source ? in->event->source : "";
		const char *id = in->event->id ? in->event->id : "";
		size_t sl = strlen(src), il = strlen(id), at = recs.len;
		hd_buf_printf(&recs, "%lld %lld %zu\n", (long long)in->stored_ms,
			      (long long)in->event->expires_ms, in->event->json_len);
		hd_buf_append(&recs, in->event->json, in->event->json_len);
		memcpy(df, src, sl);
		df[sl] = '\0';
		memcpy(df + sl + 1, id, il);
		args[a] = df;
		lens[a++] = sl + 1 + il;
		df += sl + 1 + il;
		args[a] = nums + 24 * i;
		lens[a++] = (size_t)snprintf(nums + 24 * i, 24, "%zu", recs.len - at);
	}
	args[arecs] = recs.data ? recs.data : "";
	lens[arecs] = recs.len;
	struct pgroup *g = hd_malloc(sizeof(*g) + n * sizeof(g->items[0]));
	g->r = r;
	g->n = n;
	memcpy(g->items, items, n * sizeof(*items));
	/* The topic list is not in the topic's slot: listed first (a no-op,
	 * not replicated, once listed), then created by the script. */
	const char *zargv[] = {"ZADD", TOPICS_KEY, "NX", "0", first->topic};
	size_t zlens[] = {4, strlen(TOPICS_KEY), 2, 1, strlen(first->topic)};
	int rc = hd_rconn_command(sh->cmd, hd_redis_logged_reply, NULL, 5, zargv, zlens);
	if (rc == 0)
		rc = hd_redis_script_call_n(r, sh->cmd, S_PUB, pub_reply, g, (int)nargs, args, lens, 7);
	if (rc)
		free(g);
	free(args);
	free(lens);
	free(nums);
	free(dfs);
	hd_buf_fini(&recs);
	return rc;
}

/* How many of items[0..n) (one topic first) go into one PUB or CONFIRM
 * call: the same topic (and same epoch when epochs), at most
 * CALL_EVENTS_MAX events and CALL_BYTES_MAX bytes past the first. */
static size_t call_run(struct pitem *const *items, size_t n, bool epochs)
{
	const struct hd_pub_item *a = pub_item(items[0]);
	size_t b = 1, bytes = a->event->json_len;
	while (b < n && b < CALL_EVENTS_MAX && bytes < CALL_BYTES_MAX) {
		const struct hd_pub_item *x = pub_item(items[b]);
		if (strcmp(a->topic, x->topic) || (epochs && strcmp(a->epoch, x->epoch)))
			break;
		bytes += x->event->json_len;
		b++;
	}
	return b;
}

static void cycle_end(struct shard *sh);

/* Remembers that the confirm of it raised (or kept) its topic's top: the
 * next batch writes that top to the AOF. */
static void tops_add(struct shard *sh, const char *topic)
{
	char kmeta[HD_TOPIC_NAME_MAX + 16];
	hd_redis_topic_key(kmeta, sizeof(kmeta), topic, "m");
	if (sh->ntops && !strcmp(sh->tops[sh->ntops - 1], kmeta))
		return;
	if (sh->ntops == sh->captops) {
		sh->captops = sh->captops ? sh->captops * 2 : 64;
		sh->tops = hd_realloc(sh->tops, sh->captops * sizeof(*sh->tops));
	}
	sh->tops[sh->ntops++] = hd_strdup(kmeta);
}

/* One confirm call: items of one topic and epoch from one batch, in
 * offset order (duplicates too: they raise the top, carry no event). */
struct cgroup {
	struct shard *sh;
	size_t n;
	struct pitem *items[];
};

static void confirm_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	struct cgroup *g = priv;
	struct shard *sh = g->sh;
	int err = hd_redis_reply_err(rep);
	if (!err)
		tops_add(sh, g->items[0]->job->pub->items[g->items[0]->i].topic);
	for (size_t i = 0; i < g->n; i++)
		item_done(g->items[i], err);
	free(g);
	assert(sh->confirming > 0);
	if (--sh->confirming == 0)
		cycle_end(sh);
}

/* Sends one confirm for items[0..n) (one topic and epoch, offset order). */
static void send_confirm(struct redis *r, struct shard *sh, struct pitem **items, size_t n)
{
	const struct hd_pub_item *first = pub_item(items[0]), *last = pub_item(items[n - 1]);
	char kmeta[HD_TOPIC_NAME_MAX + 16], off[24];
	size_t lm = hd_redis_topic_key(kmeta, sizeof(kmeta), first->topic, "m");
	size_t nev = 0, bytes = 64 + strlen(first->topic);
	for (size_t i = 0; i < n; i++) {
		const struct hd_pub_item *in = pub_item(items[i]);
		if (!in->duplicate) {
			nev++;
			bytes += 80 + in->event->json_len;
		}
	}
	struct hd_buf msg;
	hd_buf_init(&msg, bytes);
	hd_buf_reserve(&msg, bytes);
	int rc = hd_redis_deliver_msg_head(&msg, first->epoch, last->offset, first->topic, nev);
	for (size_t i = 0; i < n && !rc; i++) {
		const struct hd_pub_item *in = pub_item(items[i]);
		if (!in->duplicate)
			rc = hd_redis_deliver_msg_add(&msg, in->offset, in->stored_ms,
						      in->event->expires_ms, in->event->json,
						      in->event->json_len);
	}
	struct cgroup *g = hd_malloc(sizeof(*g) + n * sizeof(g->items[0]));
	g->sh = sh;
	g->n = n;
	memcpy(g->items, items, n * sizeof(*items));
	snprintf(off, sizeof(off), "%llu", (unsigned long long)last->offset);
	const char *args[] = {kmeta, off, first->epoch, CHANNEL, msg.data ? msg.data : "",
			      nev ? "1" : "0"};
	size_t lens[] = {lm, strlen(off), strlen(first->epoch), strlen(CHANNEL), msg.len, 1};
	if (rc)
		rc = HD_EINTERNAL; /* the size was counted above: not reached */
	else
		rc = hd_redis_script_call(r, sh->cmd, S_CONFIRM, confirm_reply, g, 6, args, lens, 1);
	hd_buf_fini(&msg);
	if (rc) {
		for (size_t i = 0; i < n; i++)
			item_done(items[i], rc);
		free(g);
		return;
	}
	sh->confirming++;
}

/* Batch order for the confirms: by topic, epoch, offset. */
static int cmp_confirm(const void *a, const void *b)
{
	const struct hd_pub_item *x = pub_item(*(struct pitem *const *)a);
	const struct hd_pub_item *y = pub_item(*(struct pitem *const *)b);
	int c = strcmp(x->topic, y->topic);
	if (!c)
		c = strcmp(x->epoch, y->epoch);
	if (!c)
		c = x->offset < y->offset ? -1 : x->offset > y->offset;
	return c;
}

/* The items of a batch whose WAIT answered: one confirm per topic (and
 * epoch), at most CALL_EVENTS_MAX events or CALL_BYTES_MAX bytes
 * each, sent in offset order. */
static void send_confirms(struct redis *r, struct shard *sh, struct pitem **ok, size_t n)
{
	qsort(ok, n, sizeof(*ok), cmp_confirm);
	for (size_t a = 0; a < n;) {
		size_t k = call_run(ok + a, n - a, true);
		send_confirm(r, sh, ok + a, k);
		a += k;
	}
}

static void wait_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	struct shard *sh = priv;
	struct redis *r = sh->r;
	int err = hd_redis_reply_err(rep);
	if (!err && (rep->type != REDIS_REPLY_INTEGER || rep->integer < 1)) {
		hd_metrics_inc(HD_M_publish_errors_total);
		hd_log_warn("redis: no replica acknowledged the writes within %ums shard=%u",
			    (unsigned)r->opts.wait_timeout_ms, sh->index);
		err = HD_EUNAVAIL;
	}
	struct pitem *it = sh->batch;
	size_t n = 0, nok = 0;
	for (struct pitem *x = it; x; x = x->next)
		n++;
	struct pitem **ok = hd_malloc((n ? n : 1) * sizeof(*ok));
	sh->batch = NULL;
	sh->wait_out = false;
	/* The confirms count as out until all are sent: a NULL reply while
	 * sending (the connection dropping) must not end the cycle early. */
	sh->confirming++;
	/* r->multi: the confirms go in the bracket of the next batch (or in
	 * one of their own): Redis 7.0 writes each script's MULTI/EXEC wrapper
	 * to the AOF even when its effects go to the replicas only, so
	 * confirms sent alone cost an fsync per read of the connection. */
	bool multi = r->multi && hd_rconn_multi_begin(sh->cmd) == 0;
	while (it) {
		struct pitem *next = it->next;
		struct hd_pub_item *out = &it->job->pub->items[it->i];
		if (!it->scripted)
			it->late = true; /* pub_reply finishes it */
		else if (out->err)
			item_done(it, out->err);
		else if (err)
			item_done(it, err);
		else
			ok[nok++] = it;
		it = next;
	}
	send_confirms(r, sh, ok, nok);
	free(ok);
	if (sh->nqueued && !r->stopped) {
		/* Folded: the next batch goes right behind the confirms. */
		sh->hold_for = 0;
		shard_send(sh, multi);
	} else {
		if (multi)
			hd_rconn_multi_end(sh->cmd);
		/* The clients answered now may publish again: hold the next
		 * batch for them. */
		sh->hold_for = nok;
	}
	if (--sh->confirming == 0)
		cycle_end(sh);
}

struct shard_hold {
	uv_timer_t timer;
	struct shard *sh;             /* NULL once the engine stopped */
};

static void hold_closed(uv_handle_t *h)
{
	free(h->data);
}

static void hold_fired(uv_timer_t *t)
{
	struct shard_hold *h = t->data;
	if (!h->sh)
		return;
	h->sh->hold_for = 0;
	shard_flush(h->sh);
}

/* A cycle's confirms are all answered: unless a folded batch is out
 * already (its WAIT's reply goes on), hold the next batch briefly, until
 * hold_for items are queued (the clients just answered publish again) or
 * HOLD_MS passed, so that they share one fsync and one WAIT instead of
 * trickling into two batches. */
static void cycle_end(struct shard *sh)
{
	if (sh->r->stopped || sh->wait_out)
		return;
	if (sh->nqueued < sh->hold_for) {
		if (!sh->hold) {
			sh->hold = hd_calloc(1, sizeof(*sh->hold));
			sh->hold->sh = sh;
			uv_timer_init(sh->r->loop, &sh->hold->timer);
			sh->hold->timer.data = sh->hold;
		}
		uv_timer_start(&sh->hold->timer, hold_fired, HOLD_MS, 0);
		return;
	}
	sh->hold_for = 0;
	shard_flush(sh);
}

static int slot_cmp(const void *a, const void *b)
{
	const char *x = *(char *const *)a, *y = *(char *const *)b;
	unsigned sx = hd_redis_scripts_slot(x, strlen(x)), sy = hd_redis_scripts_slot(y, strlen(y));
	return sx < sy ? -1 : sx > sy;
}

/* Writes the tops the last confirms raised to the AOF: behind the next
 * batch's scripts, ahead of its WAIT, so that the same fsync covers both.
 * (Redis runs what one read of a connection brought in, then writes and
 * fsyncs the AOF before its next read: a TOPS call ahead of a batch larger
 * than one read ran alone in the first read and cost an fsync of its own,
 * measured with strace on the primary: ~2 fsyncs per WAIT.) */
static void tops_flush(struct shard *sh)
{
	size_t at = 0;
	/* One call per Redis Cluster slot (the topics' tags): sorted by slot. */
	if (sh->ntops > 1)
		qsort(sh->tops, sh->ntops, sizeof(*sh->tops), slot_cmp);
	while (at < sh->ntops) {
		const char *argv[TOPS_PER_CALL];
		size_t lens[TOPS_PER_CALL];
		size_t n = 0;
		unsigned slot = hd_redis_scripts_slot(sh->tops[at], strlen(sh->tops[at]));
		while (n < TOPS_PER_CALL && at + n < sh->ntops) {
			argv[n] = sh->tops[at + n];
			lens[n] = strlen(argv[n]);
			if (hd_redis_scripts_slot(argv[n], lens[n]) != slot)
				break;
			n++;
		}
		(void)hd_redis_script_call_n(sh->r, sh->cmd, S_TOPS, hd_redis_logged_reply, sh, (int)n, argv, lens, (int)n);
		at += n;
	}
	for (size_t i = 0; i < sh->ntops; i++)
		free(sh->tops[i]);
	sh->ntops = 0;
}

/* A queued item and its place in the queue: a batch is sorted by topic,
 * keeping each topic's items in arrival order. */
struct qent {
	struct pitem *it;
	size_t seq;
};

static int cmp_qent(const void *a, const void *b)
{
	const struct qent *x = a, *y = b;
	int c = strcmp(pub_item(x->it)->topic, pub_item(y->it)->topic);
	return c ? c : x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Sends the queued items' scripts and one WAIT, unless a WAIT or a
 * confirm is out or the batch is held. */
static void shard_flush(struct shard *sh)
{
	if (sh->wait_out || sh->confirming || (sh->hold_for && sh->nqueued < sh->hold_for))
		return;
	shard_send(sh, false);
}

/* Sends the queued items' scripts and one WAIT (no WAIT is out; confirms
 * may be, ahead of it on the connection). in_multi: a MULTI bracket is
 * open (the confirms' of wait_reply): the writes join it and it is closed
 * here, before the WAIT. */
static void shard_send(struct shard *sh, bool in_multi)
{
	struct redis *r = sh->r;
	char tmo[24];
	assert(!sh->wait_out);
	if (sh->hold_for) {
		sh->hold_for = 0;
		uv_timer_stop(&sh->hold->timer);
	}
	if (!sh->queued_head) {
		bool multi = in_multi || (sh->ntops && r->multi &&
					  hd_rconn_multi_begin(sh->cmd) == 0);
		if (sh->ntops)
			tops_flush(sh);
		if (multi)
			hd_rconn_multi_end(sh->cmd);
		return;
	}
	/* One PUB call per topic (arrival order within it). */
	size_t n = sh->nqueued, k = 0;
	struct qent *q = hd_malloc(n * sizeof(*q));
	for (struct pitem *it = sh->queued_head; it; it = it->next, k++)
		q[k] = (struct qent){it, k};
	assert(k == n);
	sh->queued_head = NULL;
	sh->queued_tail = &sh->queued_head;
	sh->nqueued = 0;
	/* Often already in order (one topic, or publishers of one topic at a
	 * time): a linear check spares the sort's n log n comparisons. */
	size_t run = 1;
	while (run < n && cmp_qent(&q[run - 1], &q[run]) <= 0)
		run++;
	if (run < n)
		qsort(q, n, sizeof(*q), cmp_qent);
	struct pitem **items = hd_malloc(n * sizeof(*items)), **tail = &sh->batch;
	for (size_t i = 0; i < n; i++) {
		items[i] = q[i].it;
		items[i]->next = NULL;
	}
	free(q);
	/* The batch's writes in one MULTI … EXEC (r->multi): Redis writes and
	 * fsyncs them at EXEC, once, instead of once per read of the
	 * connection (~20 KB). */
	bool multi = in_multi || (r->multi && hd_rconn_multi_begin(sh->cmd) == 0);
	for (size_t a = 0; a < n;) {
		size_t m = call_run(items + a, n - a, false);
		if (send_pubs(r, sh, items + a, m)) {
			for (size_t i = a; i < a + m; i++)
				item_done(items[i], HD_EUNAVAIL);
		} else {
			for (size_t i = a; i < a + m; i++) {
				*tail = items[i];
				tail = &items[i]->next;
			}
		}
		a += m;
	}
	free(items);
	if (sh->ntops)
		tops_flush(sh);
	if (multi)
		hd_rconn_multi_end(sh->cmd);
	if (!sh->batch)
		return;
	snprintf(tmo, sizeof(tmo), "%u", (unsigned)r->opts.wait_timeout_ms);
	const char *argv[] = {"WAIT", "1", tmo};
	size_t lens[] = {4, 1, strlen(tmo)};
	sh->wait_out = true;
	if (hd_rconn_command(sh->cmd, wait_reply, sh, 3, argv, lens)) {
		/* The connection is going: its pub replies come back NULL first. */
		sh->wait_out = false;
		struct pitem *it = sh->batch;
		sh->batch = NULL;
		for (struct pitem *next; it; it = next) {
			next = it->next;
			if (it->scripted)
				item_done(it, HD_EUNAVAIL);
			else
				it->late = true;
		}
	}
}

int hd_redis_publish(struct hd_engine *e, struct hd_pub *p)
{
	struct redis *r = (struct redis *)e;
	if (r->stopped)
		return HD_EUNAVAIL;
	for (size_t i = 0; i < p->n; i++)
		if (!hd_redis_shard_ready(hd_redis_shard_of(r, p->items[i].topic)))
			return HD_EUNAVAIL;
	struct pjob *job = hd_calloc(1, sizeof(*job) + p->n * sizeof(job->items[0]));
	job->r = r;
	job->pub = p;
	job->left = p->n + 1; /* + 1 until every item is sent */
	for (size_t i = 0; i < p->n; i++) {
		struct pitem *it = &job->items[i];
		it->job = job;
		it->i = i;
		it->sh = hd_redis_shard_of(r, p->items[i].topic);
		p->items[i].err = 0;
		p->items[i].duplicate = false;
		p->items[i].offset = 0;
		if (r->opts.durability != HD_REDIS_REPLICATED)
			continue;
		*it->sh->queued_tail = it;
		it->sh->queued_tail = &it->next;
		it->sh->nqueued++;
	}
	if (r->opts.durability == HD_REDIS_REPLICATED) {
		for (unsigned s = 0; s < r->nshards; s++)
			shard_flush(&r->shards[s]);
	} else {
		/* One PUB call per run of items of one topic. */
		struct pitem **items = hd_malloc(p->n * sizeof(*items));
		for (size_t i = 0; i < p->n; i++)
			items[i] = &job->items[i];
		for (size_t a = 0; a < p->n;) {
			size_t m = call_run(items + a, p->n - a, false);
			if (send_pubs(r, items[a]->sh, items + a, m))
				for (size_t i = a; i < a + m; i++)
					item_done(items[i], HD_EUNAVAIL);
			a += m;
		}
		free(items);
	}
	job->left--;
	if (job->left == 0) {
		free(job);
		p->done(p);
	}
	return 0;
}

void hd_redis_publish_init(struct redis *r)
{
	for (unsigned s = 0; s < r->nshards; s++)
		r->shards[s].queued_tail = &r->shards[s].queued_head;
	/* --redis-transactions: each publish cycle's writes in MULTI … EXEC
	 * (shard_send). */
	r->multi = r->opts.transactions;
}

void hd_redis_publish_stop(struct shard *sh)
{
	/* Items queued behind a WAIT that never came. */
	struct pitem *it = sh->queued_head;
	sh->queued_head = NULL;
	sh->queued_tail = &sh->queued_head;
	sh->nqueued = 0;
	for (struct pitem *next; it; it = next) {
		next = it->next;
		item_done(it, HD_EUNAVAIL);
	}
	if (sh->hold) {
		sh->hold->sh = NULL;
		uv_timer_stop(&sh->hold->timer);
		uv_close((uv_handle_t *)&sh->hold->timer, hold_closed);
		sh->hold = NULL;
	}
	for (size_t i = 0; i < sh->ntops; i++)
		free(sh->tops[i]);
	free(sh->tops);
	sh->tops = NULL;
	sh->ntops = sh->captops = 0;
}
