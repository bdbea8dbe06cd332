/*
 * redis_records — the Redis engine's durable writes (see redis_impl.h): pull
 * group rows (hash herald:groups) and records ({herald}:r:KIND and its key
 * index), on shard 0, each write followed by a WAIT when replicated; and the
 * ownership leases ({herald}:lease:NAME, engine.h struct hd_owner_op) that
 * fence the records of an owned subscription: a fenced PUT is written only
 * while the lease holds the writer's token (rput_lua).
 * Layer: engine. Called by the hub through engine.h's group_op/record_op.
 */
#include "engine/redis_impl.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/map.h"
#include "core/metrics.h"
#include "core/text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- durable writes: a command, then WAIT when replicated -------------- */

struct dwrite {
	struct redis *r;
	int left;
	int err;
	void (*take)(struct dwrite *w, const redisReply *rep); /* may be NULL */
	void (*finish)(struct dwrite *w);
	void *req;
};

static void dwrite_end(struct dwrite *w)
{
	if (--w->left == 0)
		w->finish(w);
}

static void dwrite_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	struct dwrite *w = priv;
	int err = hd_redis_reply_err(rep);
	if (err && !w->err)
		w->err = err;
	if (!err && w->take)
		w->take(w, rep);
	dwrite_end(w);
}

/* A WAIT's answer: 0 when a replica has the writes before it. */
static int wait_err(redisReply *rep)
{
	int err = hd_redis_reply_err(rep);
	if (!err && (rep->type != REDIS_REPLY_INTEGER || rep->integer < 1))
		err = HD_EUNAVAIL;
	return err;
}

static void dwait_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	struct dwrite *w = priv;
	int err = wait_err(rep);
	if (err && !w->err)
		w->err = err;
	dwrite_end(w);
}

/* Sends argv (or, script >= 0, that script with nkeys) on shard 0, then a
 * WAIT when replicated; w->finish runs once both answered. Returns 0 or
 * HD_EUNAVAIL (w untouched, finish never runs). */
static int dwrite_send(struct dwrite *w, int script, int nkeys, int argc, const char **argv,
		       const size_t *lens, bool wait)
{
	struct redis *r = w->r;
	struct hd_rconn *c = r->shards[0].cmd;
	char tmo[24];
	int rc;
	w->left = 1;
	if (script >= 0)
		rc = hd_redis_script_call(r, c, script, dwrite_reply, w, argc, argv, lens, nkeys);
	else
		rc = hd_rconn_command(c, dwrite_reply, w, argc, argv, lens);
	if (rc)
		return rc;
	if (wait && r->opts.durability == HD_REDIS_REPLICATED) {
		snprintf(tmo, sizeof(tmo), "%u", (unsigned)r->opts.wait_timeout_ms);
		const char *wargv[] = {"WAIT", "1", tmo};
		size_t wlens[] = {4, 1, strlen(tmo)};
		w->left++;
		if (hd_rconn_command(c, dwait_reply, w, 3, wargv, wlens)) {
			w->left--;
			w->err = HD_EUNAVAIL;
		}
	}
	return 0;
}

/* ---- group rows -------------------------------------------------------- */

static void group_take(struct dwrite *w, const redisReply *rep)
{
	struct hd_group_op *op = w->req;
	if (op->kind == HD_GROUP_DELETE && hd_redis_rep_u64(rep) == 0)
		w->err = HD_ENOTFOUND;
}

/* Fills row from the field "TOPIC\nNAME" k and its value v; false when
 * either is malformed (row half-written: not counted). */
static bool group_row_parse(const redisReply *k, const redisReply *v, struct hd_group_row *row)
{
	if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
		return false;
	const char *nl = memchr(k->str, '\n', k->len);
	if (!nl || (size_t)(nl - k->str) > HD_TOPIC_NAME_MAX ||
	    k->len - (size_t)(nl - k->str) - 1 > HD_GROUP_NAME_MAX)
		return false;
	memset(row, 0, sizeof(*row));
	memcpy(row->topic, k->str, (size_t)(nl - k->str));
	memcpy(row->name, nl + 1, k->len - (size_t)(nl - k->str) - 1);
	unsigned long long floor = 0, created = 0;
	unsigned wait = 0, maxd = 0, ordered = 0;
	int used = 0;
	if (sscanf(v->str, "%llu %u %u %u %llu %n", &floor, &wait, &maxd, &ordered, &created,
		   &used) < 5)
		return false;
	row->ack_floor = floor;
	row->ack_wait_ms = wait;
	row->max_deliveries = maxd;
	row->ordered = ordered != 0;
	row->created_ms = (int64_t)created;
	row->acked = hd_strdup(v->str + used);
	return true;
}

/* ---- group listing: HSCAN pages of herald:groups ----------------------- */

#define GROUP_SCAN_COUNT "1000"   /* fields per HSCAN page (a hint to Redis) */
#define GROUP_SCAN_PAGES_MAX 1024 /* pages per listing: then it ends there */

struct glist {
	struct redis *r;
	struct hd_group_op *op;
	struct hd_map seen;           /* fields taken (HSCAN may return one twice) */
	size_t cap;                   /* of op->rows */
	size_t pages;
};

static void glist_finish(struct glist *gl, int err)
{
	struct hd_group_op *op = gl->op;
	hd_map_fini(&gl->seen);
	free(gl);
	if (err) {
		hd_engine_group_op_fini(op);
		op->err = err;
	}
	op->done(op);
}

static int glist_page(struct glist *gl, const char *cursor, size_t len);

/* One page: its rows (at most op->limit in all, each field once), then
 * the next page until the cursor is back at 0 or a bound is reached. */
static void glist_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	(void)c;
	struct glist *gl = priv;
	struct hd_group_op *op = gl->op;
	int err = hd_redis_reply_err(rep);
	if (!err && (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
		     rep->element[0]->type != REDIS_REPLY_STRING ||
		     rep->element[1]->type != REDIS_REPLY_ARRAY))
		err = HD_EINTERNAL;
	if (err) {
		glist_finish(gl, err);
		return;
	}
	const redisReply *kv = rep->element[1];
	for (size_t i = 0; i + 1 < kv->elements && op->n < op->limit; i += 2) {
		const redisReply *k = kv->element[i];
		if (k->type != REDIS_REPLY_STRING || memchr(k->str, '\0', k->len) ||
		    hd_map_get(&gl->seen, k->str))
			continue;
		if (op->n == gl->cap) {
			gl->cap = gl->cap * 2 > op->limit ? op->limit : gl->cap * 2;
			op->rows = hd_realloc(op->rows, gl->cap * sizeof(*op->rows));
		}
		if (!group_row_parse(k, kv->element[i + 1], &op->rows[op->n]))
			continue;
		if (hd_map_put(&gl->seen, k->str, gl)) {
			free(op->rows[op->n].acked);
			continue;
		}
		op->n++;
	}
	const redisReply *cur = rep->element[0];
	bool end = cur->len == 1 && cur->str[0] == '0';
	if (end || op->n >= op->limit || ++gl->pages >= GROUP_SCAN_PAGES_MAX || gl->r->stopped) {
		glist_finish(gl, 0);
		return;
	}
	err = glist_page(gl, cur->str, cur->len);
	if (err)
		glist_finish(gl, err);
}

static int glist_page(struct glist *gl, const char *cursor, size_t len)
{
	const char *argv[] = {"HSCAN", GROUPS_KEY, cursor, "COUNT", GROUP_SCAN_COUNT};
	size_t lens[] = {5, strlen(GROUPS_KEY), len, 5, strlen(GROUP_SCAN_COUNT)};
	return hd_rconn_command(gl->r->shards[0].cmd, glist_reply, gl, 5, argv, lens);
}

/* The LIST group op: every row of herald:groups, read a page at a time
 * (HSCAN), at most op->limit rows and GROUP_SCAN_PAGES_MAX pages. */
static int glist_start(struct redis *r, struct hd_group_op *op)
{
	struct glist *gl = hd_calloc(1, sizeof(*gl));
	gl->r = r;
	gl->op = op;
	gl->cap = op->limit < 64 ? (op->limit ? op->limit : 1) : 64;
	op->rows = hd_calloc(gl->cap, sizeof(*op->rows));
	hd_map_init(&gl->seen, op->limit ? op->limit : 1);
	int rc = glist_page(gl, "0", 1);
	if (rc) {
		hd_map_fini(&gl->seen);
		free(op->rows);
		op->rows = NULL;
		free(gl);
	}
	return rc;
}

static void group_finish(struct dwrite *w)
{
	struct hd_group_op *op = w->req;
	if (w->err) {
		hd_engine_group_op_fini(op);
		op->err = w->err;
	}
	free(w);
	op->done(op);
}

int hd_redis_records_group_op(struct hd_engine *e, struct hd_group_op *op)
{
	struct redis *r = (struct redis *)e;
	op->err = 0;
	op->rows = NULL;
	op->n = 0;
	if (r->stopped)
		return HD_EUNAVAIL;
	if (op->kind == HD_GROUP_LIST)
		return glist_start(r, op);
	struct dwrite *w = hd_calloc(1, sizeof(*w));
	w->r = r;
	w->req = op;
	w->take = group_take;
	w->finish = group_finish;
	char field[HD_TOPIC_NAME_MAX + HD_GROUP_NAME_MAX + 2];
	int fl = snprintf(field, sizeof(field), "%s\n%s", op->row.topic, op->row.name);
	char *value = NULL;
	int rc;
	if (op->kind == HD_GROUP_DELETE) {
		const char *argv[] = {"HDEL", GROUPS_KEY, field};
		size_t lens[] = {4, strlen(GROUPS_KEY), (size_t)fl};
		rc = dwrite_send(w, -1, 0, 3, argv, lens, true);
	} else {
		const char *acked = op->row.acked ? op->row.acked : "";
		size_t cap = strlen(acked) + 128;
		value = hd_malloc(cap);
		snprintf(value, cap, "%llu %u %u %u %lld %s", (unsigned long long)op->row.ack_floor,
			 (unsigned)op->row.ack_wait_ms, (unsigned)op->row.max_deliveries,
			 op->row.ordered ? 1u : 0u, (long long)op->row.created_ms, acked);
		const char *argv[] = {"HSET", GROUPS_KEY, field, value};
		size_t lens[] = {4, strlen(GROUPS_KEY), (size_t)fl, strlen(value)};
		rc = dwrite_send(w, -1, 0, 4, argv, lens, true);
	}
	free(value);
	if (rc)
		free(w);
	return rc;
}

/* ---- records ----------------------------------------------------------- */

static bool record_parse(const redisReply *v, struct hd_record *out)
{
	if (!v || v->type != REDIS_REPLY_STRING)
		return false;
	const char *sp = memchr(v->str, ' ', v->len);
	if (!sp)
		return false;
	out->updated_ms = strtoll(v->str, NULL, 10);
	size_t n = v->len - (size_t)(sp + 1 - v->str);
	out->value = hd_malloc(n + 1);
	memcpy(out->value, sp + 1, n);
	out->value[n] = '\0';
	return true;
}

static void record_take(struct dwrite *w, const redisReply *rep)
{
	struct hd_record_op *op = w->req;
	if (op->kind == HD_RECORD_DELETE && hd_redis_rep_u64(rep) == 0)
		w->err = HD_ENOTFOUND;
	if (op->kind == HD_RECORD_PUT && rep->type == REDIS_REPLY_INTEGER && rep->integer < 0)
		op->fenced_out = true;
	else if (op->kind == HD_RECORD_PUT && op->expect_set && hd_redis_rep_u64(rep) == 0)
		op->conflict = true;
	if (op->kind == HD_RECORD_GET) {
		struct hd_record rec = op->rec;
		if (!record_parse(rep, &rec)) {
			w->err = HD_ENOTFOUND;
			return;
		}
		op->recs = hd_malloc(sizeof(*op->recs));
		op->recs[0] = rec;
		op->n = 1;
	}
	if (op->kind == HD_RECORD_LIST && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2) {
		const redisReply *keys = rep->element[0], *vals = rep->element[1];
		size_t n = keys->elements < vals->elements ? keys->elements : vals->elements;
		op->recs = hd_calloc(n ? n : 1, sizeof(*op->recs));
		for (size_t i = 0; i < n; i++) {
			struct hd_record *rec = &op->recs[op->n];
			const char *prefix = w->req ? ((struct hd_record_op *)w->req)->prefix : NULL;
			if (keys->element[i]->len > HD_RECORD_KEY_MAX)
				continue;
			if (prefix && strncmp(keys->element[i]->str, prefix, strlen(prefix)))
				continue;
			memcpy(rec->kind, op->rec.kind, sizeof(rec->kind));
			memcpy(rec->key, keys->element[i]->str, keys->element[i]->len);
			rec->key[keys->element[i]->len] = '\0';
			if (record_parse(vals->element[i], rec))
				op->n++;
		}
	}
}

static void record_finish(struct dwrite *w)
{
	struct hd_record_op *op = w->req;
	if (w->err) {
		hd_engine_record_op_fini(op);
		op->err = w->err;
	}
	free(w);
	op->done(op);
}

int hd_redis_records_record_op(struct hd_engine *e, struct hd_record_op *op)
{
	struct redis *r = (struct redis *)e;
	op->err = 0;
	op->recs = NULL;
	op->n = 0;
	op->conflict = false;
	op->fenced_out = false;
	if (r->stopped)
		return HD_EUNAVAIL;
	if ((op->fence && strlen(op->fence) > HD_OWNER_NAME_MAX) || !op->rec.kind[0] || (op->kind != HD_RECORD_LIST && !op->rec.key[0]) ||
	    (op->kind == HD_RECORD_PUT && op->rec.value &&
	     strlen(op->rec.value) > HD_RECORD_VALUE_MAX))
		return HD_EINVAL;
	char khash[sizeof(RECORD_PREFIX) + HD_RECORD_KIND_MAX];
	char kidx[sizeof(RECORD_INDEX_PREFIX) + HD_RECORD_KIND_MAX];
	snprintf(khash, sizeof(khash), RECORD_PREFIX "%s", op->rec.kind);
	snprintf(kidx, sizeof(kidx), RECORD_INDEX_PREFIX "%s", op->rec.kind);
	struct dwrite *w = hd_calloc(1, sizeof(*w));
	w->r = r;
	w->req = op;
	w->take = record_take;
	w->finish = record_finish;
	char *value = NULL;
	int rc;
	const char *key = op->rec.key;
	if (op->kind == HD_RECORD_GET) {
		const char *argv[] = {"HGET", khash, key};
		size_t lens[] = {4, strlen(khash), strlen(key)};
		rc = dwrite_send(w, -1, 0, 3, argv, lens, false);
	} else if (op->kind == HD_RECORD_LIST) {
		char min[HD_RECORD_KEY_MAX + 8], max[HD_RECORD_KEY_MAX + 8], lim[24];
		hd_redis_lex_range(op->prefix ? op->prefix : "", op->after ? op->after : "", min, sizeof(min),
			  max, sizeof(max));
		snprintf(lim, sizeof(lim), "%zu", op->limit ? op->limit : 1);
		const char *args[] = {khash, kidx, min, max, lim};
		size_t lens[] = {strlen(khash), strlen(kidx), strlen(min), strlen(max), strlen(lim)};
		rc = dwrite_send(w, S_RLIST, 2, 5, args, lens, false);
	} else if (op->kind == HD_RECORD_DELETE) {
		const char *args[] = {khash, kidx, key};
		size_t lens[] = {strlen(khash), strlen(kidx), strlen(key)};
		rc = dwrite_send(w, S_RDEL, 2, 3, args, lens, true);
	} else {
		const char *v = op->rec.value ? op->rec.value : "";
		size_t cap = strlen(v) + 32;
		value = hd_malloc(cap);
		snprintf(value, cap, "%lld %s", (long long)op->rec.updated_ms, v);
		const char *ex = op->expect ? op->expect : "";
		const char *cas = !op->expect_set ? "" : op->expect ? "1" : "0";
		char lkey[sizeof(LEASE_PREFIX) + HD_OWNER_NAME_MAX], tok[24] = "";
		snprintf(lkey, sizeof(lkey), LEASE_PREFIX "%s", op->fence ? op->fence : "");
		if (op->fence)
			snprintf(tok, sizeof(tok), "%llu", (unsigned long long)op->fence_token);
		const char *args[] = {khash, kidx, lkey, key, value, cas, ex, tok};
		size_t lens[] = {strlen(khash), strlen(kidx), strlen(lkey), strlen(key),
				 strlen(value), strlen(cas), strlen(ex), strlen(tok)};
		rc = dwrite_send(w, S_RPUT, 3, 8, args, lens, true);
	}
	free(value);
	if (rc)
		free(w);
	return rc;
}

/* ---- ownership leases -------------------------------------------------- */

/* Fills op from own_lua's five values e[0..4]; returns whether the lease
 * was newly taken (a new token). */
static bool owner_result(struct hd_owner_op *op, redisReply *const *e)
{
	const redisReply *who = e[2];
	op->held = hd_redis_rep_u64(e[0]) == 1;
	op->token = hd_redis_rep_u64(e[1]);
	op->wanted = op->held && hd_redis_rep_u64(e[4]) == 1;
	if (who->type == REDIS_REPLY_STRING)
		snprintf(op->holder, sizeof(op->holder), "%.*s", (int)who->len, who->str);
	return op->held && hd_redis_rep_u64(e[3]) == 1;
}

/* A lease taken now is acknowledged like any durable write (a replica has
 * it), so that a failover cannot hand its token out again; renewals do
 * not wait. One WAIT (answered into fn) covers every lease of the call.
 * Returns 0, or HD_EUNAVAIL when it could not be sent (fn never runs). */
static int owner_wait(struct dwrite *w, hd_rconn_reply_fn fn)
{
	struct redis *r = w->r;
	if (r->opts.durability != HD_REDIS_REPLICATED)
		return 0;
	char tmo[24];
	snprintf(tmo, sizeof(tmo), "%u", (unsigned)r->opts.wait_timeout_ms);
	const char *wargv[] = {"WAIT", "1", tmo};
	size_t wlens[] = {4, 1, strlen(tmo)};
	w->left++;
	if (hd_rconn_command(r->shards[0].cmd, fn, w, 3, wargv, wlens)) {
		w->left--;
		return HD_EUNAVAIL;
	}
	return 0;
}

static void owner_take(struct dwrite *w, const redisReply *rep)
{
	struct hd_owner_op *op = w->req;
	if (op->kind == HD_OWNER_RELEASE)
		return;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 5) {
		w->err = HD_EUNAVAIL;
		return;
	}
	if (owner_result(op, rep->element) && owner_wait(w, dwait_reply))
		w->err = HD_EUNAVAIL;
}

static void owner_finish(struct dwrite *w)
{
	struct hd_owner_op *op = w->req;
	op->err = w->err;
	if (op->err)
		op->held = false;
	free(w);
	op->done(op);
}

int hd_redis_records_owner_op(struct hd_engine *e, struct hd_owner_op *op)
{
	struct redis *r = (struct redis *)e;
	op->err = 0;
	op->held = false;
	op->token = 0;
	op->wanted = false;
	op->holder[0] = '\0';
	if (r->stopped)
		return HD_EUNAVAIL;
	const char *owner = op->owner ? op->owner : "";
	if (!op->name[0] || strlen(owner) > HD_OWNER_ID_MAX ||
	    (op->kind != HD_OWNER_RELEASE && (!owner[0] || op->ttl_ms == 0)))
		return HD_EINVAL;
	char lkey[sizeof(LEASE_PREFIX) + HD_OWNER_NAME_MAX], ttl[24];
	char wkey[sizeof(LEASE_WANT_PREFIX) + HD_OWNER_NAME_MAX];
	snprintf(lkey, sizeof(lkey), LEASE_PREFIX "%s", op->name);
	snprintf(wkey, sizeof(wkey), LEASE_WANT_PREFIX "%s", op->name);
	snprintf(ttl, sizeof(ttl), "%u", (unsigned)op->ttl_ms);
	struct dwrite *w = hd_calloc(1, sizeof(*w));
	w->r = r;
	w->req = op;
	w->take = owner_take;
	w->finish = owner_finish;
	int rc;
	if (op->kind != HD_OWNER_RELEASE) {
		const char *take = op->kind == HD_OWNER_TAKE ? "1" : "0";
		const char *args[] = {lkey, LEASE_TOKEN_KEY, wkey, owner, ttl, take};
		size_t lens[] = {strlen(lkey), strlen(LEASE_TOKEN_KEY), strlen(wkey),
				 strlen(owner), strlen(ttl), 1};
		rc = dwrite_send(w, S_OWN, 3, 6, args, lens, false);
	} else {
		const char *args[] = {lkey, owner};
		size_t lens[] = {strlen(lkey), strlen(owner)};
		rc = dwrite_send(w, S_UNOWN, 1, 2, args, lens, false);
	}
	if (rc)
		free(w);
	return rc;
}

/* ---- a page of lease operations in one call ---------------------------- */

struct owner_batch {
	size_t n;
	int wait_err;              /* the WAIT's: only the fresh leases fail with it */
	bool *fresh;               /* n: newly taken (a new token) */
	struct hd_owner_op *ops[]; /* n, each until its done() */
};

static void owner_batch_wait(struct hd_rconn *c, redisReply *rep, void *priv)
{
	struct dwrite *w = priv;
	struct owner_batch *b = w->req;
	int err = wait_err(rep);
	if (err && !b->wait_err)
		b->wait_err = err;
	dwrite_end(w);
}

static void owner_batch_take(struct dwrite *w, const redisReply *rep)
{
	struct owner_batch *b = w->req;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 5 * b->n) {
		w->err = HD_EUNAVAIL;
		return;
	}
	bool fresh = false;
	for (size_t i = 0; i < b->n; i++)
		fresh |= b->fresh[i] = owner_result(b->ops[i], rep->element + 5 * i);
	if (fresh && owner_wait(w, owner_batch_wait))
		b->wait_err = HD_EUNAVAIL;
}

static void owner_batch_finish(struct dwrite *w)
{
	struct owner_batch *b = w->req;
	for (size_t i = 0; i < b->n; i++) {
		struct hd_owner_op *op = b->ops[i];
		op->err = w->err ? w->err : b->fresh[i] ? b->wait_err : 0;
		if (op->err)
			op->held = false;
		op->done(op);
	}
	free(b->fresh);
	free(b);
	free(w);
}

int hd_redis_records_owner_ops(struct hd_engine *e, struct hd_owner_op *const *ops, size_t n)
{
	struct redis *r = (struct redis *)e;
	if (r->stopped)
		return HD_EUNAVAIL;
	if (n == 0 || n > HD_OWNER_BATCH_MAX)
		return HD_EINVAL;
	const char *owner = ops[0]->owner ? ops[0]->owner : "";
	uint32_t ttl_ms = ops[0]->ttl_ms;
	if (!owner[0] || strlen(owner) > HD_OWNER_ID_MAX || ttl_ms == 0)
		return HD_EINVAL;
	for (size_t i = 0; i < n; i++) {
		const struct hd_owner_op *op = ops[i];
		if (!op->name[0] || op->kind == HD_OWNER_RELEASE || op->ttl_ms != ttl_ms ||
		    !op->owner || strcmp(op->owner, owner) != 0)
			return HD_EINVAL;
	}
	/* KEYS: the token counter, then lease and want key per op; ARGV:
	 * owner, ttl, the take flags. */
	size_t nargs = 1 + 2 * n + 3;
	const char **args = hd_calloc(nargs, sizeof(*args));
	size_t *lens = hd_calloc(nargs, sizeof(*lens));
	char *keys = hd_malloc(n * 2 * (sizeof(LEASE_WANT_PREFIX) + HD_OWNER_NAME_MAX));
	char *take = hd_malloc(n + 1), ttl[24];
	char *p = keys;
	args[0] = LEASE_TOKEN_KEY;
	lens[0] = strlen(LEASE_TOKEN_KEY);
	for (size_t i = 0; i < n; i++) {
		struct hd_owner_op *op = ops[i];
		op->err = 0;
		op->held = op->wanted = false;
		op->token = 0;
		op->holder[0] = '\0';
		int k = sprintf(p, LEASE_PREFIX "%s", op->name);
		args[1 + 2 * i] = p;
		lens[1 + 2 * i] = (size_t)k;
		p += k;
		k = sprintf(p, LEASE_WANT_PREFIX "%s", op->name);
		args[2 + 2 * i] = p;
		lens[2 + 2 * i] = (size_t)k;
		p += k;
		take[i] = op->kind == HD_OWNER_TAKE ? '1' : '0';
	}
	take[n] = '\0';
	snprintf(ttl, sizeof(ttl), "%u", (unsigned)ttl_ms);
	args[1 + 2 * n] = owner;
	lens[1 + 2 * n] = strlen(owner);
	args[2 + 2 * n] = ttl;
	lens[2 + 2 * n] = strlen(ttl);
	args[3 + 2 * n] = take;
	lens[3 + 2 * n] = n;
	struct owner_batch *b = hd_malloc(sizeof(*b) + n * sizeof(b->ops[0]));
	b->n = n;
	b->wait_err = 0;
	b->fresh = hd_calloc(n, sizeof(*b->fresh));
	memcpy(b->ops, ops, n * sizeof(ops[0]));
	struct dwrite *w = hd_calloc(1, sizeof(*w));
	w->r = r;
	w->req = b;
	w->take = owner_batch_take;
	w->finish = owner_batch_finish;
	w->left = 1;
	int rc = hd_redis_script_call_n(r, r->shards[0].cmd, S_OWNB, dwrite_reply, w, (int)nargs, args, lens,
					(int)(1 + 2 * n));
	if (rc) {
		free(b->fresh);
		free(b);
		free(w);
	}
	free(args);
	free(lens);
	free(keys);
	free(take);
	return rc;
}
