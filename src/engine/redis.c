/*
 * redis — the Redis engine (see redis.h for the data layout): its shared
 * helpers (sharding, replies, script calls), reads, topic operations and
 * life cycle (new, ready, stop, free), and the URL parser.
 * Layer: engine. Loop thread only; main.c creates it, the hub calls it
 * through engine.h.
 *
 * Publish (redis_publish.c): the PUB script per topic of a batch, then
 * (replicated) one WAIT and the CONFIRM script that raises the topic's
 * visible top. Reads return only offsets at or below the visible top, so
 * an event lost in a failover was never acknowledged, read or delivered.
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
#include "redis/rconn.h"

#include <assert.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

bool hd_redis_shard_ready(const struct shard *sh)
{
	return hd_rconn_ready(sh->cmd) && sh->subscribed;
}

size_t hd_redis_topic_key(char *out, size_t cap, const char *topic, const char *suffix)
{
	int n = snprintf(out, cap, "{t:%s}:%s", topic, suffix);
	return n < 0 ? 0 : (size_t)n >= cap ? cap - 1 : (size_t)n;
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

void hd_redis_logged_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	(void)hd_redis_reply_err(rep);
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

void hd_redis_rep_text(const redisReply *rep, char *out, size_t cap)
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
	hd_redis_rep_text(rep->element[1], rd->epoch, sizeof(rd->epoch));
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
	size_t lm = hd_redis_topic_key(kmeta, sizeof(kmeta), rd->topic, "m");
	size_t ls = hd_redis_topic_key(kstream, sizeof(kstream), rd->topic, "s");
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
	hd_redis_rep_text(v[0], ti->epoch, sizeof(ti->epoch));
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
		size_t lm = hd_redis_topic_key(kmeta, sizeof(kmeta), lj->name, "m");
		size_t ls = hd_redis_topic_key(kstream, sizeof(kstream), lj->name, "s");
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
	size_t lm = hd_redis_topic_key(kmeta, sizeof(kmeta), op->topic, "m");
	size_t ls = hd_redis_topic_key(kstream, sizeof(kstream), op->topic, "s");
	if (op->kind == HD_TOPIC_INFO) {
		const char *args[] = {kmeta, kstream, NOW_AFTER, "1"};
		size_t lens[] = {lm, ls, strlen(NOW_AFTER), 1};
		rc = hd_redis_script_call(r, sh->cmd, S_READ, info_reply, job, 4, args, lens, 2);
	} else {
		/* Unlisted first, then deleted (its keys, one slot): a publish
		 * racing the deletion lists its topic again (send_pubs). */
		char kbounds[HD_TOPIC_NAME_MAX + 16];
		size_t lb = hd_redis_topic_key(kbounds, sizeof(kbounds), op->topic, "b");
		const char *zargv[] = {"ZREM", TOPICS_KEY, op->topic};
		size_t zlens[] = {4, strlen(TOPICS_KEY), strlen(op->topic)};
		const char *args[] = {kmeta, kstream, kbounds};
		size_t lens[] = {lm, ls, lb};
		rc = hd_rconn_command(sh->cmd, hd_redis_logged_reply, NULL, 3, zargv, zlens);
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
		if (!hd_redis_shard_ready(&r->shards[s]))
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
		hd_redis_publish_stop(sh);
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
	.publish = hd_redis_publish,
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
	hd_redis_publish_init(r);
	hd_redis_deliver_init(r);
	for (unsigned s = 0; s < r->nshards; s++) {
		struct shard *sh = &r->shards[s];
		char what[64];
		sh->r = r;
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

