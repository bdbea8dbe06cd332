/*
 * redis — the Redis engine (see redis.h for the data layout).
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
 * Reads return only offsets at or below the visible top, so an event lost
 * in a failover was never acknowledged, read or delivered.
 *
 * Live delivery (redis_deliver.c): each node SUBSCRIBEs to every shard's
 * channel and hands events to on_event in offset order per topic; a gap (or
 * a PUB/SUB reconnect, or an epoch change) makes it read the missing range
 * first. The scripts' text is in redis_scripts.c, group rows and records in
 * redis_records.c; redis_impl.h holds what these files share.
 */
#include "engine/redis_impl.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/map.h"
#include "core/metrics.h"
#include "core/siphash.h"
#include "core/text.h"
#include "core/uuid.h"
#include "redis/rconn.h"

#include <assert.h>
#include <openssl/evp.h>
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

/* A script call, kept for an EVAL retry on NOSCRIPT. */
struct scall {
	struct redis *r;
	struct hd_rconn *c;
	int script;
	hd_rconn_reply_fn fn;
	void *priv;
	int argc;                     /* of argv, from EVALSHA/EVAL on */
	const char **argv;            /* owned with lens (one allocation) */
	size_t *lens;
	char data[];
};

/* ---- helpers ----------------------------------------------------------- */

static uint64_t hash_text(const char *s, size_t n)
{
	static const unsigned char key[16] = "herald-shards-01";
	return hd_siphash(key, s, n);
}

static int cmp_point(const void *a, const void *b)
{
	const struct point *x = a, *y = b;
	return x->h < y->h ? -1 : x->h > y->h;
}

struct shard *hd_redis_shard_of(struct redis *r, const char *topic)
{
	if (r->nshards == 1)
		return &r->shards[0];
	uint64_t h = hash_text(topic, strlen(topic));
	size_t lo = 0, hi = r->npoints;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (r->points[mid].h < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	return &r->shards[r->points[lo == r->npoints ? 0 : lo].shard];
}

/* "{t:NAME}:SUFFIX" into out (at least HD_TOPIC_NAME_MAX + 16 bytes). */
static size_t topic_key(char *out, size_t cap, const char *topic, const char *suffix)
{
	int n = snprintf(out, cap, "{t:%s}:%s", topic, suffix);
	return n < 0 ? 0 : (size_t)n >= cap ? cap - 1 : (size_t)n;
}

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

int hd_redis_reply_err(const redisReply *rep)
{
	if (!rep)
		return HD_EUNAVAIL;
	if (rep->type == REDIS_REPLY_ERROR) {
		hd_log_warn("redis: error reply=\"%.*s\"", (int)(rep->len > 200 ? 200 : rep->len),
			    rep->str);
		/* A primary that became a replica, or one loading: retry later. */
		if (!strncmp(rep->str, "READONLY", 8) || !strncmp(rep->str, "LOADING", 7) ||
		    !strncmp(rep->str, "MASTERDOWN", 10) || !strncmp(rep->str, "NOREPLICAS", 10) ||
		    !strncmp(rep->str, "BUSY", 4) || !strncmp(rep->str, "HDCLOCK", 7))
			return HD_EUNAVAIL;
		return HD_EINTERNAL;
	}
	return 0;
}

uint64_t hd_redis_rep_u64(const redisReply *rep)
{
	if (!rep)
		return 0;
	if (rep->type == REDIS_REPLY_INTEGER)
		return rep->integer < 0 ? 0 : (uint64_t)rep->integer;
	if (rep->type == REDIS_REPLY_STRING || rep->type == REDIS_REPLY_STATUS)
		return strtoull(rep->str, NULL, 10);
	return 0;
}

static void rep_text(const redisReply *rep, char *out, size_t cap)
{
	size_t n = 0;
	if (rep && (rep->type == REDIS_REPLY_STRING || rep->type == REDIS_REPLY_STATUS))
		n = rep->len < cap - 1 ? rep->len : cap - 1;
	if (n)
		memcpy(out, rep->str, n);
	out[n] = '\0';
}

/* ---- script calls ------------------------------------------------------ */

static void scall_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	struct scall *k = priv;
	if (rep && rep->type == REDIS_REPLY_ERROR && !strncmp(rep->str, "NOSCRIPT", 8)) {
		/* The server lost its script cache (a restart, SCRIPT FLUSH):
		 * send the script itself. */
		k->argv[0] = "EVAL";
		k->lens[0] = 4;
		k->argv[1] = hd_redis_scripts_text[k->script];
		k->lens[1] = strlen(hd_redis_scripts_text[k->script]);
		if (hd_rconn_command(c, scall_reply, k, k->argc, k->argv, k->lens) == 0)
			return;
		rep = NULL;
	}
	k->fn(c, rep, k->priv);
	free(k->argv);
	free(k);
}

/* hd_redis_script_call without its ARGS_MAX: the publish path's calls
 * carry up to CALL_EVENTS_MAX events. */
static int script_call(struct redis *r, struct hd_rconn *c, int script, hd_rconn_reply_fn fn,
		       void *priv, int nargs, const char **args, const size_t *lens, int nkeys)
{
	/* Every call's KEYS in one Redis Cluster slot (docs/cluster.md). */
	assert(hd_redis_scripts_one_slot(args, lens, nkeys));
	char nk[16];
	size_t nkl = (size_t)snprintf(nk, sizeof(nk), "%d", nkeys), total = nkl;
	for (int i = 0; i < nargs; i++)
		total += lens[i];
	struct scall *k = hd_malloc(sizeof(*k) + total + 1);
	k->argv = hd_malloc((size_t)(3 + nargs) * (sizeof(*k->argv) + sizeof(*k->lens)));
	k->lens = (size_t *)(k->argv + 3 + nargs);
	k->r = r;
	k->c = c;
	k->script = script;
	k->fn = fn;
	k->priv = priv;
	k->argc = 3 + nargs;
	k->argv[0] = "EVALSHA";
	k->lens[0] = 7;
	k->argv[1] = r->sha[script];
	k->lens[1] = 40;
	char *p = k->data;
	memcpy(p, nk, nkl);
	k->argv[2] = p;
	k->lens[2] = nkl;
	p += nkl;
	for (int i = 0; i < nargs; i++) {
		memcpy(p, args[i], lens[i]);
		k->argv[3 + i] = p;
		k->lens[3 + i] = lens[i];
		p += lens[i];
	}
	int rc = hd_rconn_command(c, scall_reply, k, k->argc, k->argv, k->lens);
	if (rc) {
		free(k->argv);
		free(k);
	}
	return rc;
}

/* Runs script on c with nkeys keys then args (texts, lens; copied). fn gets
 * the reply (NULL when the connection failed) exactly once, unless this
 * returns HD_EUNAVAIL. */
int hd_redis_script_call(struct redis *r, struct hd_rconn *c, int script, hd_rconn_reply_fn fn,
			 void *priv, int nargs, const char **args, const size_t *lens, int nkeys)
{
	assert(nargs <= ARGS_MAX);
	return script_call(r, c, script, fn, priv, nargs, args, lens, nkeys);
}

int hd_redis_script_call_n(struct redis *r, struct hd_rconn *c, int script, hd_rconn_reply_fn fn,
			   void *priv, int nargs, const char **args, const size_t *lens, int nkeys)
{
	return script_call(r, c, script, fn, priv, nargs, args, lens, nkeys);
}

static void sha1_hex(const char *text, char out[41])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	static const char hex[] = "0123456789abcdef";
	EVP_Digest(text, strlen(text), md, &n, EVP_sha1(), NULL);
	for (unsigned i = 0; i < 20; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[40] = '\0';
}

/* ---- publish ----------------------------------------------------------- */

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
		rep_text(epoch, out->epoch, sizeof(out->epoch));
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

/* A ZADD or ZREM of the topic list: an error is logged; the next publish
 * lists the topic again. */
static void topics_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	(void)c;
	(void)priv;
	(void)hd_redis_reply_err(rep);
}

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
	lens[0] = topic_key(kmeta, sizeof(kmeta), first->topic, "m");
	args[1] = kstream;
	lens[1] = topic_key(kstream, sizeof(kstream), first->topic, "s");
	args[2] = kbounds;
	lens[2] = topic_key(kbounds, sizeof(kbounds), first->topic, "b");
	/* The dedup buckets around the node's clock: the script picks the
	 * current and previous one by Redis TIME (redis_scripts.c). */
	int64_t b = pol.dedup_window_ms > 0 ? hd_now_ms() / pol.dedup_window_ms : 0;
	for (int k = 0; k < 4; k++) {
		char num[24];
		snprintf(num, sizeof(num), "d:%lld", (long long)(b - 2 + k));
		args[3 + k] = kbucket[k];
		lens[3 + k] = topic_key(kbucket[k], sizeof(kbucket[k]), first->topic, num);
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
	int rc = hd_rconn_command(sh->cmd, topics_reply, NULL, 5, zargv, zlens);
	if (rc == 0)
		rc = script_call(r, sh->cmd, S_PUB, pub_reply, g, (int)nargs, args, lens, 7);
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
	topic_key(kmeta, sizeof(kmeta), topic, "m");
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
	size_t lm = topic_key(kmeta, sizeof(kmeta), first->topic, "m");
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

static void tops_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	(void)hd_redis_reply_err(rep); /* logged; the next confirm writes it again */
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
		(void)script_call(sh->r, sh->cmd, S_TOPS, tops_reply, sh, (int)n, argv, lens, (int)n);
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

static bool shard_ready(const struct shard *sh)
{
	return hd_rconn_ready(sh->cmd) && sh->subscribed;
}

static int redis_publish(struct hd_engine *e, struct hd_pub *p)
{
	struct redis *r = (struct redis *)e;
	if (r->stopped)
		return HD_EUNAVAIL;
	for (size_t i = 0; i < p->n; i++)
		if (!shard_ready(hd_redis_shard_of(r, p->items[i].topic)))
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

/* ---- read -------------------------------------------------------------- */

struct hd_rcbuf *hd_redis_stored_json(const char *topic, uint64_t offset, const char *json,
				      size_t len)
{
	char digits[20];
	size_t nd = hd_u64_format(offset, digits);
	size_t tl = strlen(topic);
	bool empty = true;
	for (size_t i = 1; i + 1 < len; i++)
		if (json[i] != ' ' && json[i] != '\t' && json[i] != '\n' && json[i] != '\r') {
			empty = false;
			break;
		}
	if (len < 2)
		len = 2, json = "{}";
	/* body without '}' + [,]"topic":"T","offset":N} */
	size_t n = len - 1 + (empty ? 0 : 1) + 9 + tl + 11 + nd + 1;
	struct hd_rcbuf *b = hd_rcbuf_new(n);
	char *p = b->data;
	memcpy(p, json, len - 1);
	p += len - 1;
	if (!empty)
		*p++ = ',';
	memcpy(p, "\"topic\":\"", 9);
	p += 9;
	memcpy(p, topic, tl);
	p += tl;
	memcpy(p, "\",\"offset\":", 11);
	p += 11;
	memcpy(p, digits, nd);
	p += nd;
	*p = '}';
	return b;
}

struct rjob {
	struct redis *r;
	struct hd_read *rd;
};

static const redisReply *entry_field(const redisReply *fields, const char *name)
{
	if (!fields || fields->type != REDIS_REPLY_ARRAY)
		return NULL;
	for (size_t i = 0; i + 1 < fields->elements; i += 2)
		if (fields->element[i]->type == REDIS_REPLY_STRING &&
		    !strcmp(fields->element[i]->str, name))
			return fields->element[i + 1];
	return NULL;
}

static void read_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	struct rjob *job = priv;
	struct redis *r = job->r;
	struct hd_read *rd = job->rd;
	struct hd_topic_policy pol = {0};
	int64_t now = hd_now_ms();
	int err = hd_redis_reply_err(rep);

	free(job);
	if (!err && (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1))
		err = HD_EINTERNAL;
	if (err) {
		rd->err = err;
		goto out;
	}
	if (hd_redis_rep_u64(rep->element[0]) == 0 || rep->elements < 7) {
		rd->exists = false;
		rd->next = rd->after;
		goto out;
	}
	r->opts.policy(r->opts.policy_arg, rd->topic, &pol);
	rd->exists = true;
	rep_text(rep->element[1], rd->epoch, sizeof(rd->epoch));
	rd->last = hd_redis_rep_u64(rep->element[2]);
	uint64_t low = hd_redis_rep_u64(rep->element[3]);
	rd->truncated = rd->after + 1 < low && rd->after < rd->last;
	const redisReply *ev = rep->element[6];
	size_t bytes = 0;
	if (ev->type == REDIS_REPLY_ARRAY && ev->elements) {
		rd->events = hd_malloc(ev->elements * sizeof(*rd->events));
		for (size_t i = 0; i < ev->elements && bytes < HD_READ_BYTES_MAX; i++) {
			const redisReply *e = ev->element[i];
			if (e->type != REDIS_REPLY_ARRAY || e->elements != 2)
				continue;
			uint64_t off = hd_redis_rep_u64(e->element[0]);
			const redisReply *j = entry_field(e->element[1], "j");
			int64_t t = (int64_t)hd_redis_rep_u64(entry_field(e->element[1], "t"));
			int64_t x = (int64_t)hd_redis_rep_u64(entry_field(e->element[1], "x"));
			if (!j || j->type != REDIS_REPLY_STRING)
				continue;
			if (pol.max_age_ms && t <= now - pol.max_age_ms) {
				rd->truncated = true;
				continue;
			}
			if (x && x <= now)
				continue;
			struct hd_stored_event *se = &rd->events[rd->n++];
			se->offset = off;
			se->time_ms = t;
			se->expires_ms = x;
			se->json = hd_redis_stored_json(rd->topic, off, j->str, j->len);
			bytes += se->json->len;
		}
	}
	if (rd->n)
		rd->next = rd->events[rd->n - 1].offset;
	else if (ev->type == REDIS_REPLY_ARRAY && ev->elements) /* all skipped */
		rd->next = hd_redis_rep_u64(ev->element[ev->elements - 1]->element[0]);
	else
		rd->next = rd->after > rd->last ? rd->after : rd->last;
out:
	rd->done(rd);
}

int hd_redis_read(struct hd_engine *e, struct hd_read *rd)
{
	struct redis *r = (struct redis *)e;
	struct shard *sh = hd_redis_shard_of(r, rd->topic);
	char kmeta[HD_TOPIC_NAME_MAX + 16], kstream[HD_TOPIC_NAME_MAX + 16], after[24], lim[24];

	hd_metrics_inc(HD_M_reads_total);
	if (r->stopped)
		return HD_EUNAVAIL;
	rd->err = 0;
	rd->events = NULL;
	rd->n = 0;
	rd->exists = false;
	rd->truncated = false;
	rd->last = 0;
	rd->epoch[0] = '\0';
	rd->from_memory = false;
	size_t lm = topic_key(kmeta, sizeof(kmeta), rd->topic, "m");
	size_t ls = topic_key(kstream, sizeof(kstream), rd->topic, "s");
	snprintf(after, sizeof(after), "%llu", (unsigned long long)rd->after);
	snprintf(lim, sizeof(lim), "%u", rd->limit ? (unsigned)rd->limit : 1u);
	if (rd->limit == 0)
		snprintf(after, sizeof(after), "%s", NOW_AFTER);
	const char *args[] = {kmeta, kstream, after, lim};
	size_t lens[] = {lm, ls, strlen(after), strlen(lim)};
	struct rjob *job = hd_malloc(sizeof(*job));
	job->r = r;
	job->rd = rd;
	int rc = hd_redis_script_call(r, sh->cmd, S_READ, read_reply, job, 4, args, lens, 2);
	if (rc)
		free(job);
	return rc;
}

/* ---- topic operations -------------------------------------------------- */

struct tjob {
	struct redis *r;
	struct hd_topic_op *op;
	size_t left;                  /* LIST: shards still to answer */
	int err;
};

static void info_fill(struct hd_topic_info *ti, const char *name, const redisReply *const *v)
{
	snprintf(ti->name, sizeof(ti->name), "%s", name);
	rep_text(v[0], ti->epoch, sizeof(ti->epoch));
	ti->last = hd_redis_rep_u64(v[1]);
	ti->first = hd_redis_rep_u64(v[2]);
	ti->created_ms = (int64_t)hd_redis_rep_u64(v[3]);
	ti->count = hd_redis_rep_u64(v[4]);
	ti->bytes = 0; /* not tracked by this engine */
}

static void info_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	struct tjob *job = priv;
	struct hd_topic_op *op = job->op;
	int err = hd_redis_reply_err(rep);
	free(job);
	if (!err && (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1))
		err = HD_EINTERNAL;
	if (!err && (hd_redis_rep_u64(rep->element[0]) == 0 || rep->elements < 6))
		err = HD_ENOTFOUND;
	if (err) {
		op->err = err;
	} else {
		op->topics = hd_calloc(1, sizeof(*op->topics));
		info_fill(op->topics, op->topic, (const redisReply *const *)rep->element + 1);
		op->n = 1;
	}
	op->done(op);
}

static int cmp_info(const void *a, const void *b)
{
	return strcmp(((const struct hd_topic_info *)a)->name,
		      ((const struct hd_topic_info *)b)->name);
}

static void list_end(struct tjob *job);

/* One listed topic's info on its way (LIST). */
struct ljob {
	struct tjob *job;
	char name[HD_TOPIC_NAME_MAX + 1];
};

/* A listed topic's state (S_READ with no events, as INFO): a name whose
 * topic is gone is skipped. */
static void list_info_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	struct ljob *lj = priv;
	struct tjob *job = lj->job;
	struct hd_topic_op *op = job->op;
	int err = hd_redis_reply_err(rep);
	if (!err && rep->type != REDIS_REPLY_ARRAY)
		err = HD_EINTERNAL;
	if (err) {
		job->err = err;
	} else if (rep->elements >= 6 && hd_redis_rep_u64(rep->element[0]) == 1) {
		size_t limit = op->limit ? op->limit : 1;
		struct hd_topic_info ti = {0};
		info_fill(&ti, lj->name, (const redisReply *const *)rep->element + 1);
		if (op->n < limit) {
			op->topics[op->n++] = ti;
		} else {
			/* Keep the smallest names over all shards. */
			qsort(op->topics, op->n, sizeof(*op->topics), cmp_info);
			if (strcmp(ti.name, op->topics[op->n - 1].name) < 0)
				op->topics[op->n - 1] = ti;
		}
	}
	free(lj);
	list_end(job);
}

/* A shard's page of names (ZRANGEBYLEX herald:topics): then one call per
 * topic, pipelined, for its state (the Redis Cluster rule: a call reads
 * only keys it names, of one slot). */
static void list_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	struct tjob *job = priv;
	int err = hd_redis_reply_err(rep);
	if (!err && rep->type != REDIS_REPLY_ARRAY)
		err = HD_EINTERNAL;
	if (err) {
		job->err = err;
		list_end(job);
		return;
	}
	for (size_t i = 0; i < rep->elements && !job->r->stopped; i++) {
		const redisReply *e = rep->element[i];
		if (e->type != REDIS_REPLY_STRING || e->len > HD_TOPIC_NAME_MAX)
			continue;
		struct ljob *lj = hd_malloc(sizeof(*lj));
		lj->job = job;
		memcpy(lj->name, e->str, e->len);
		lj->name[e->len] = '\0';
		char kmeta[HD_TOPIC_NAME_MAX + 16], kstream[HD_TOPIC_NAME_MAX + 16];
		size_t lm = topic_key(kmeta, sizeof(kmeta), lj->name, "m");
		size_t ls = topic_key(kstream, sizeof(kstream), lj->name, "s");
		const char *args[] = {kmeta, kstream, NOW_AFTER, "1"};
		size_t lens[] = {lm, ls, strlen(NOW_AFTER), 1};
		if (hd_redis_script_call(job->r, c, S_READ, list_info_reply, lj, 4, args, lens, 2)) {
			free(lj);
			job->err = HD_EUNAVAIL;
			break;
		}
		job->left++;
	}
	list_end(job);
}

/* One shard (or the sending itself) finished a LIST. */
static void list_end(struct tjob *job)
{
	struct hd_topic_op *op = job->op;
	if (--job->left == 0) {
		if (job->err) {
			op->err = job->err;
			hd_engine_topic_op_fini(op);
		} else {
			qsort(op->topics, op->n, sizeof(*op->topics), cmp_info);
		}
		free(job);
		op->done(op);
	}
}

static void del_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	struct tjob *job = priv;
	struct hd_topic_op *op = job->op;
	struct redis *r = job->r;
	int err = hd_redis_reply_err(rep);
	free(job);
	if (!err && hd_redis_rep_u64(rep) == 0)
		err = HD_ENOTFOUND;
	op->err = err;
	if (!err && !r->stopped) {
		struct dtopic *t = hd_map_get(&r->topics, op->topic);
		if (t && !t->reading)
			free(hd_map_del(&r->topics, op->topic));
		else if (t)
			t->epoch[0] = '\0'; /* deleted here: no missed deletion to tell */
	}
	op->done(op);
}

/* ZRANGEBYLEX bounds for names starting with prefix, after `after`. */
void hd_redis_lex_range(const char *prefix, const char *after, char *min, size_t mincap, char *max,
			size_t maxcap)
{
	if (after[0] && strcmp(after, prefix) >= 0)
		snprintf(min, mincap, "(%s", after);
	else
		snprintf(min, mincap, "[%s", prefix);
	if (prefix[0])
		snprintf(max, maxcap, "[%s\xff", prefix);
	else
		snprintf(max, maxcap, "+");
}

static int redis_topic_op(struct hd_engine *e, struct hd_topic_op *op)
{
	struct redis *r = (struct redis *)e;
	char kmeta[HD_TOPIC_NAME_MAX + 16], kstream[HD_TOPIC_NAME_MAX + 16];
	op->err = 0;
	op->topics = NULL;
	op->n = 0;
	if (r->stopped)
		return HD_EUNAVAIL;
	struct tjob *job = hd_calloc(1, sizeof(*job));
	job->r = r;
	job->op = op;
	int rc = 0;
	if (op->kind == HD_TOPIC_LIST) {
		const char *prefix = op->prefix ? op->prefix : "", *after = op->after ? op->after : "";
		char min[HD_RECORD_KEY_MAX + 8], max[HD_RECORD_KEY_MAX + 8], lim[24];
		hd_redis_lex_range(prefix, after, min, sizeof(min), max, sizeof(max));
		snprintf(lim, sizeof(lim), "%zu", op->limit ? op->limit : 1);
		op->topics = hd_calloc(op->limit ? op->limit : 1, sizeof(*op->topics));
		for (unsigned s = 0; s < r->nshards; s++)
			if (!hd_rconn_ready(r->shards[s].cmd))
				rc = HD_EUNAVAIL;
		if (rc) {
			hd_engine_topic_op_fini(op);
			free(job);
			return rc;
		}
		job->left = r->nshards + 1;
		for (unsigned s = 0; s < r->nshards; s++) {
			const char *args[] = {"ZRANGEBYLEX", TOPICS_KEY, min, max, "LIMIT", "0", lim};
			size_t lens[] = {11, strlen(TOPICS_KEY), strlen(min), strlen(max), 5, 1, strlen(lim)};
			if (hd_rconn_command(r->shards[s].cmd, list_reply, job, 7, args, lens)) {
				job->err = HD_EUNAVAIL;
				job->left--;
			}
		}
		list_end(job); /* the + 1 */
		return 0;
	}
	struct shard *sh = hd_redis_shard_of(r, op->topic);
	size_t lm = topic_key(kmeta, sizeof(kmeta), op->topic, "m");
	size_t ls = topic_key(kstream, sizeof(kstream), op->topic, "s");
	if (op->kind == HD_TOPIC_INFO) {
		const char *args[] = {kmeta, kstream, NOW_AFTER, "1"};
		size_t lens[] = {lm, ls, strlen(NOW_AFTER), 1};
		rc = hd_redis_script_call(r, sh->cmd, S_READ, info_reply, job, 4, args, lens, 2);
	} else {
		/* Unlisted first, then deleted (its keys, one slot): a publish
		 * racing the deletion lists its topic again (send_pubs). */
		char kbounds[HD_TOPIC_NAME_MAX + 16];
		size_t lb = topic_key(kbounds, sizeof(kbounds), op->topic, "b");
		const char *zargv[] = {"ZREM", TOPICS_KEY, op->topic};
		size_t zlens[] = {4, strlen(TOPICS_KEY), strlen(op->topic)};
		const char *args[] = {kmeta, kstream, kbounds};
		size_t lens[] = {lm, ls, lb};
		rc = hd_rconn_command(sh->cmd, topics_reply, NULL, 3, zargv, zlens);
		if (rc == 0)
			rc = hd_redis_script_call(r, sh->cmd, S_DEL, del_reply, job, 3, args, lens, 3);
	}
	if (rc)
		free(job);
	return rc;
}

/* ---- life cycle -------------------------------------------------------- */

static bool redis_ready(struct hd_engine *e)
{
	struct redis *r = (struct redis *)e;
	if (r->stopped)
		return false;
	for (unsigned s = 0; s < r->nshards; s++)
		if (!shard_ready(&r->shards[s]))
			return false;
	return true;
}

static void redis_why_not_ready(struct hd_engine *e, char *why, size_t cap)
{
	struct redis *r = (struct redis *)e;
	if (r->stopped) {
		snprintf(why, cap, "herald is stopping");
		return;
	}
	for (unsigned s = 0; s < r->nshards; s++) {
		const struct shard *sh = &r->shards[s];
		const char *what = !hd_rconn_ready(sh->cmd) ? "primary unreachable"
				   : !sh->subscribed	  ? "pub/sub connection down"
							  : NULL;
		if (what) {
			if (sh->master[0])
				snprintf(why, cap, "redis shard %u (sentinel master %s): %s", s,
					 sh->master, what);
			else
				snprintf(why, cap, "redis shard %u (%s:%d): %s", s, sh->host, sh->port,
					 what);
			return;
		}
	}
}

static void redis_stop(struct hd_engine *e)
{
	struct redis *r = (struct redis *)e;
	if (r->stopped)
		return;
	r->stopped = true;
	hd_redis_deliver_stop(r);
	hd_redis_presence_stop(r->presence);
	r->presence = NULL;
	hd_redis_heal_stop(r->heal);
	r->heal = NULL;
	/* Replies still out come back NULL: their requests finish (503). */
	for (unsigned s = 0; s < r->nshards; s++) {
		struct shard *sh = &r->shards[s];
		if (sh->sub)
			hd_rconn_free(sh->sub);
		sh->sub = NULL;
		sh->subscribed = false;
		if (sh->cmd)
			hd_rconn_free(sh->cmd);
		sh->cmd = NULL;
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
}

static void free_dtopic(const char *key, void *value, void *arg)
{
	free(value);
}

static void redis_free(struct hd_engine *e)
{
	struct redis *r = (struct redis *)e;
	redis_stop(e);
	hd_map_each(&r->topics, free_dtopic, NULL);
	hd_map_fini(&r->topics);
	free(r->points);
	free(r);
}

static const struct hd_engine_ops redis_ops = {
	.name = "redis",
	.publish = redis_publish,
	.read = hd_redis_read,
	.topic_op = redis_topic_op,
	.group_op = hd_redis_records_group_op,
	.record_op = hd_redis_records_record_op,
	.owner_op = hd_redis_records_owner_op,
	.owner_ops = hd_redis_records_owner_ops,
	.glease_op = hd_redis_groups_op,
	.ready = redis_ready,
	.why_not_ready = redis_why_not_ready,
	.stop = redis_stop,
	.free = redis_free,
	.reg_put = hd_redis_presence_put,
	.reg_flush = hd_redis_presence_flush,
	.reg_query = hd_redis_presence_query,
	.reg_left = hd_redis_presence_left,
	.notice = hd_redis_deliver_notice,
};

int hd_redis_parse_url(const char *url, size_t len, char host[256], int *port, int *db)
{
	static const char scheme[] = "redis://";
	char buf[512];
	if (len >= sizeof(buf) || len < sizeof(scheme) || strncmp(url, scheme, sizeof(scheme) - 1))
		return HD_ECONFIG;
	memcpy(buf, url + sizeof(scheme) - 1, len - (sizeof(scheme) - 1));
	buf[len - (sizeof(scheme) - 1)] = '\0';
	*port = 6379;
	*db = 0;
	char *slash = strchr(buf, '/');
	if (slash) {
		*slash = '\0';
		char *end;
		long d = strtol(slash + 1, &end, 10);
		if (*end || d < 0 || d > 15 || end == slash + 1)
			return HD_ECONFIG;
		*db = (int)d;
	}
	char *colon = strrchr(buf, ':');
	if (colon) {
		*colon = '\0';
		char *end;
		long p = strtol(colon + 1, &end, 10);
		if (*end || p < 1 || p > 65535)
			return HD_ECONFIG;
		*port = (int)p;
	}
	if (!buf[0] || strlen(buf) >= 256)
		return HD_ECONFIG;
	memcpy(host, buf, strlen(buf) + 1);
	return 0;
}

struct hd_engine *hd_redis_engine_new(uv_loop_t *loop, const struct hd_redis_opts *opts,
				      struct hd_error *err)
{
	struct redis *r = hd_calloc(1, sizeof(*r));
	r->base.ops = &redis_ops;
	r->loop = loop;
	r->opts = *opts;
	r->opts.urls = NULL;
	r->opts.sentinels = NULL;
	r->opts.master_names = NULL;
	snprintf(r->node, sizeof(r->node), "%s", opts->node && opts->node[0] ? opts->node : "herald");
	r->opts.node = r->node;
	bool sentinel = opts->sentinels && opts->sentinels[0];
	const char *p = sentinel ? opts->master_names : opts->urls;
	if (sentinel && (!p || !p[0])) {
		hd_error_set(err, HD_ECONFIG, "--redis-sentinel needs --redis-master-name");
		goto fail;
	}
	while (p && *p) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		while (n && (*p == ' ')) {
			p++;
			n--;
		}
		while (n && p[n - 1] == ' ')
			n--;
		if (r->nshards == HD_REDIS_SHARDS_MAX) {
			hd_error_set(err, HD_ECONFIG, "--redis-url: at most %d shards",
				     HD_REDIS_SHARDS_MAX);
			goto fail;
		}
		struct shard *sh = &r->shards[r->nshards];
		if (sentinel) {
			if (!n || n >= sizeof(sh->master)) {
				hd_error_set(err, HD_ECONFIG, "--redis-master-name: bad name '%.*s'",
					     (int)(n > 200 ? 200 : n), p);
				goto fail;
			}
			memcpy(sh->master, p, n);
			memcpy(sh->host, "sentinel:", 9);
			memcpy(sh->host + 9, p, n); /* a log name; its points' id */
		} else if (hd_redis_parse_url(p, n, sh->host, &sh->port, &sh->db)) {
			hd_error_set(err, HD_ECONFIG,
				     "--redis-url: '%.*s' is not redis://HOST:PORT[/DB] (DB 0-15)",
				     (int)(n > 200 ? 200 : n), p);
			goto fail;
		}
		sh->index = r->nshards++;
		if (!comma)
			break;
		p = comma + 1;
	}
	if (!r->nshards) {
		hd_error_set(err, HD_ECONFIG, "--engine redis needs --redis-url");
		goto fail;
	}
	r->npoints = (size_t)r->nshards * POINTS_PER_SHARD;
	r->points = hd_malloc(r->npoints * sizeof(*r->points));
	for (unsigned s = 0; s < r->nshards; s++) {
		for (unsigned j = 0; j < POINTS_PER_SHARD; j++) {
			char id[320];
			int n = snprintf(id, sizeof(id), "%s:%d/%d#%u", r->shards[s].host,
					 r->shards[s].port, r->shards[s].db, j);
			r->points[s * POINTS_PER_SHARD + j] =
				(struct point){hash_text(id, (size_t)n), s};
		}
	}
	qsort(r->points, r->npoints, sizeof(*r->points), cmp_point);
	for (int s = 0; s < S_COUNT; s++)
		sha1_hex(hd_redis_scripts_text[s], r->sha[s]);
	hd_map_init(&r->topics, opts->max_topics_in_memory ? opts->max_topics_in_memory : 1);
	r->presence = hd_redis_presence_new(r, opts->node);
	r->heal = hd_redis_heal_new(r);
	/* Bench/test-only A/B switch, read once at start: HERALD_REDIS_MULTI=1
	 * wraps each publish cycle's writes in MULTI … EXEC (shard_send). */
	const char *multi = getenv("HERALD_REDIS_MULTI");
	r->multi = multi && !strcmp(multi, "1");
	hd_redis_deliver_init(r);
	for (unsigned s = 0; s < r->nshards; s++) {
		struct shard *sh = &r->shards[s];
		char what[64];
		sh->r = r;
		sh->queued_tail = &sh->queued_head;
		snprintf(what, sizeof(what), "shard%u-commands", s);
		struct hd_rconn_opts co = {
			.loop = loop, .host = sh->host, .port = sh->port, .db = sh->db, .what = what,
			.max_pending = MAX_PENDING, .on_up = hd_redis_deliver_cmd_up, .arg = sh,
			.sentinels = sentinel ? opts->sentinels : NULL,
			.master_name = sentinel ? sh->master : NULL,
		};
		/* A WAIT holds the PING behind it for up to its timeout. */
		co.health_ms = opts->wait_timeout_ms + 2000 > 3000 ? opts->wait_timeout_ms + 2000 : 3000;
		sh->cmd = hd_rconn_new(&co);
		snprintf(what, sizeof(what), "shard%u-pubsub", s);
		co.what = what;
		co.health_ms = 0;
		co.on_up = hd_redis_deliver_sub_up;
		co.on_down = hd_redis_deliver_sub_down;
		sh->sub = hd_rconn_new(&co);
	}
	return &r->base;
fail:
	free(r);
	return NULL;
}

