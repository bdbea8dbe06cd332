/*
 * redis_presence — the Redis engine's connection registry and presence
 * (engine.h's reg_put / reg_flush / reg_query): which connections every
 * node holds, shared as soft state so that any node can list a user's
 * connections or a topic's followers.
 * Layer: engine. Called by the hub through engine.h; redis.c creates and
 * stops it, redis_deliver.c tells it when a command connection comes up;
 * redis_sweep.c uses its batch (hd_redis_presence_send, _arm).
 * Loop thread only.
 *
 * Keys (a node writes only the fields under its own name):
 *   herald:conns:USER      hash "NODE\nCLIENT" → the connection's listing
 *                          JSON (shard 0)
 *   {t:TOPIC}:presence     hash "NODE\nCLIENT" → {"id","transport","user",
 *                          "node"[,"join_leave"][,"chan_info"][,"info"]}
 *                          (the topic's shard: its hash tag)
 *   herald:online          hash "NODE\nUSER" → "1": the users with a
 *                          connection on NODE (shard 0)
 *   herald:node:NODE       the node's heartbeat: a string with PX 4000,
 *                          set again every second (every shard)
 *   herald:nodes           hash NODE → "1": the nodes that wrote to this
 *                          shard and have not been swept yet (every shard)
 *   herald:nodekeys:NODE   set of the hashes NODE wrote fields to (per
 *                          shard), so that the node's first connection to a
 *                          shard removes the fields a previous run of it
 *                          left behind (kill -9), then empties the set
 *   herald:sweepcur:NODE   hash HASH → HSCAN cursor: where the sweep of a
 *                          dead NODE goes on in each hash (per shard)
 *   herald:swept:NODE      set "TOPIC\nCLIENT" with a day's PX: the
 *                          subscriptions of NODE the sweep announced as
 *                          left; NODE's beat SPOPs a page (per shard)
 *
 * Writes are neither WAITed for nor acknowledged: they are queued, one per
 * entry (a later put of the same entry replaces the queued one), and sent
 * once per loop turn, pipelined, at most BATCH_MAX per turn and
 * INFLIGHT_MAX unanswered (so that a connection storm never fills the
 * connection's cap that publishes share); the queue holds at most
 * PENDING_MAX entries (past it a put is dropped and counted). After a
 * command connection comes up again, and whenever the heartbeat finds its
 * key gone (it lapsed, or a failover lost it), the hub writes every entry
 * again (HD_REG_FLUSH_ALL); when the beat finds swept entries, it also
 * announces their joins again (HD_REG_FLUSH_REJOIN, then _JOINS for the
 * next pages; the hub asks hd_redis_presence_left which ones).
 *
 * Every call names the keys it touches, of one Redis Cluster slot
 * (docs/cluster.md "Every key"): a walk over many keys is driven from
 * here, one key per command or step script.
 *
 * The sweep of dead nodes' entries (their leaves, herald:swept:NODE) and
 * the clean-up at a node's start live in redis_sweep.c; this file starts
 * them (hd_redis_sweep_start, hd_redis_sweep_cleanup).
 *
 * A query reads the hash (HGETALL), then the heartbeats of the other nodes
 * named in it (one EXISTS each on shard 0), and drops the fields of nodes
 * whose heartbeat is gone; a user's listing deletes them (HDEL) on the
 * way, a topic's presence leaves them to the sweep (which sends their
 * leaves). An HD_REG_ONLINE query (users_online) is redis_online.c's.
 */
#include "engine/redis_impl.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/map.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PENDING_MAX 200000         /* queued entry writes */
#define BATCH_MAX 4096             /* entry writes sent per loop turn */
#define INFLIGHT_MAX 8192          /* registry commands awaiting a reply: the
				      rest of the connection's MAX_PENDING stays
				      free for publishes and reads */
#define LISTED_MAX 100000          /* hashes remembered as in herald:nodekeys */
#define RETRY_MS 10                /* when a connection has too much in flight */
#define BEAT_MS 1000               /* the heartbeat's period */
#define BEAT_TTL "4000"            /* and its PX */
#define REJOIN_PAGE 1000           /* swept entries one beat takes per shard
				      (SPOP): the joins announced per second */
#define LEFT_MAX (REJOIN_PAGE * HD_REDIS_SHARDS_MAX)

/* One entry write waiting for the next batch. */
struct pend {
	struct pend *next;
	unsigned shard;
	char *mkey;                   /* the queue's map key (owned): kind, key, client */
	char *rkey;                   /* the Redis hash (owned) */
	char *field;                  /* "NODE\nCLIENT" (owned) */
	char *value;                  /* owned; NULL: remove the field */
};

/* A query on its way: the hash's fields, then the heartbeats. */
struct qstate {
	struct hd_redis_presence *p;
	struct hd_reg_query *q;
	unsigned shard;
	char rkey[PRESENCE_KEY_MAX];
	char **fields;                /* parallel to q->values */
	const char *nodes[PRESENCE_NODES_MAX]; /* other nodes named: the start of
						  a field */
	size_t nlens[PRESENCE_NODES_MAX]; /* and their lengths (up to the '\n') */
	size_t nnodes;
	bool alive[PRESENCE_NODES_MAX]; /* their heartbeats (EXISTS, one call each) */
	struct bctx {
		struct qstate *st;
		size_t k;
	} bctx[PRESENCE_NODES_MAX];
	size_t out;                   /* heartbeat checks not answered */
	int err;
};

static void rkey_of(struct hd_redis_presence *p, enum hd_reg_kind kind, const char *key,
		    char *out, size_t cap, unsigned *shard)
{
	if (kind == HD_REG_USER) {
		snprintf(out, cap, "herald:conns:%s", key);
		*shard = 0;
	} else if (kind == HD_REG_ONLINE) {
		snprintf(out, cap, "herald:online");
		*shard = 0;
	} else {
		snprintf(out, cap, "{t:%s}:presence", key);
		*shard = hd_redis_shard_of(p->r, key)->index;
	}
}

void hd_redis_presence_strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void pend_free(struct pend *e)
{
	free(e->mkey);
	free(e->rkey);
	free(e->field);
	free(e->value);
	free(e);
}

/* ---- the batch ---------------------------------------------------------- */

static void ignore_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	struct hd_redis_presence *p = priv;
	p->inflight--;
	if (rep && rep->type == REDIS_REPLY_ERROR && hd_log_ratelimited(&p->warn_ms))
		hd_log_warn("redis: registry write failed reply=\"%.*s\"",
			    (int)(rep->len > 200 ? 200 : rep->len), rep->str);
}

int hd_redis_presence_send(struct hd_redis_presence *p, struct hd_rconn *c, int argc,
			   const char **argv, const size_t *lens)
{
	int rc = hd_rconn_command(c, ignore_reply, p, argc, argv, lens);
	if (rc == 0)
		p->inflight++;
	return rc;
}

/* Sends e. Returns 0 or HD_EUNAVAIL (too much in flight: try later). */
static int pend_send(struct hd_redis_presence *p, struct pend *e)
{
	struct hd_rconn *c = p->r->shards[e->shard].cmd;
	if (p->inflight + 2 > INFLIGHT_MAX || p->cleaning[e->shard])
		return HD_EUNAVAIL;
	if (!e->value) {
		const char *argv[] = {"HDEL", e->rkey, e->field};
		size_t lens[] = {4, strlen(e->rkey), strlen(e->field)};
		return hd_redis_presence_send(p, c, 3, argv, lens);
	}
	const char *argv[] = {"HSET", e->rkey, e->field, e->value};
	size_t lens[] = {4, strlen(e->rkey), strlen(e->field), strlen(e->value)};
	int rc = hd_redis_presence_send(p, c, 4, argv, lens);
	if (rc || hd_map_get(&p->listed, e->rkey))
		return rc;
	/* The first write to this hash: list it for the clean-up at start. */
	char set[PRESENCE_KEY_MAX];
	snprintf(set, sizeof(set), "herald:nodekeys:%s", p->node);
	const char *sargv[] = {"SADD", set, e->rkey};
	size_t slens[] = {4, strlen(set), strlen(e->rkey)};
	if (hd_redis_presence_send(p, c, 3, sargv, slens) == 0)
		hd_map_put(&p->listed, e->rkey, p); /* full: SADD every time */
	return 0;
}

static void on_flush_timer(uv_timer_t *t);

void hd_redis_presence_arm(struct hd_redis_presence *p, uint64_t ms)
{
	if (p->armed || p->stopped)
		return;
	p->armed = true;
	uv_timer_start(&p->flush_timer, on_flush_timer, ms, 0);
}

/* Asks the hub for its changes, then sends up to BATCH_MAX queued writes. */
static void flush(struct hd_redis_presence *p)
{
	if (p->stopped)
		return;
	if (p->fn && (p->asked || p->want_all || p->want_rejoin || p->want_joins)) {
		bool joins = p->want_rejoin || p->want_joins, all = p->want_rejoin || p->want_all;
		int mode = joins && all ? HD_REG_FLUSH_REJOIN
			   : joins      ? HD_REG_FLUSH_JOINS
			   : all        ? HD_REG_FLUSH_ALL
					: HD_REG_FLUSH_CHANGED;
		p->asked = p->want_all = p->want_rejoin = p->want_joins = false;
		p->fn(p->fn_arg, mode);
		if (joins) { /* announced: hd_redis_presence_left answered them */
			hd_map_fini(&p->left);
			hd_map_init(&p->left, LEFT_MAX);
		}
	}
	for (size_t sent = 0; p->head && sent < BATCH_MAX; sent++) {
		struct pend *e = p->head;
		if (pend_send(p, e))
			break;
		p->head = e->next;
		if (!p->head)
			p->tail = &p->head;
		hd_map_del(&p->pending, e->mkey);
		pend_free(e);
	}
	if (p->head)
		hd_redis_presence_arm(p, RETRY_MS);
}

static void on_flush_timer(uv_timer_t *t)
{
	struct hd_redis_presence *p = t->data;
	p->armed = false;
	flush(p);
}

void hd_redis_presence_put(struct hd_engine *eng, enum hd_reg_kind kind, const char *key,
			   const char *client, const char *value)
{
	struct redis *r = (struct redis *)eng;
	struct hd_redis_presence *p = r->presence;
	char mkey[PRESENCE_KEY_MAX];
	if (!p || p->stopped)
		return;
	snprintf(mkey, sizeof(mkey), "%c%s\n%s", "uto"[kind], key, client);
	struct pend *e = hd_map_get(&p->pending, mkey);
	if (e) {
		free(e->value);
		e->value = value ? hd_strdup(value) : NULL;
		return;
	}
	char rkey[PRESENCE_KEY_MAX], field[PRESENCE_KEY_MAX];
	unsigned shard;
	rkey_of(p, kind, key, rkey, sizeof(rkey), &shard);
	snprintf(field, sizeof(field), "%s\n%s", p->node, client);
	e = hd_calloc(1, sizeof(*e));
	e->shard = shard;
	e->mkey = hd_strdup(mkey);
	e->rkey = hd_strdup(rkey);
	e->field = hd_strdup(field);
	e->value = value ? hd_strdup(value) : NULL;
	if (hd_map_put(&p->pending, e->mkey, e)) {
		p->dropped++;
		if (hd_log_ratelimited(&p->warn_ms))
			hd_log_warn("redis: registry queue full, write dropped limit=%d dropped=%zu",
				    PENDING_MAX, p->dropped);
		pend_free(e);
		return;
	}
	*p->tail = e;
	p->tail = &e->next;
	hd_redis_presence_arm(p, 0);
}

void hd_redis_presence_flush(struct hd_engine *eng, hd_engine_reg_flush_fn fn, void *arg)
{
	struct hd_redis_presence *p = ((struct redis *)eng)->presence;
	if (!p)
		return;
	p->fn = fn;
	p->fn_arg = arg;
	p->asked = true;
	hd_redis_presence_arm(p, 0);
}

/* ---- the heartbeat and the swept check ---------------------------------- */

/* Forgets which hashes herald:nodekeys lists: a sweep or a failover may
 * have emptied it, so the next write to each lists it again. */
static void listed_forget(struct hd_redis_presence *p)
{
	hd_map_fini(&p->listed);
	hd_map_init(&p->listed, LISTED_MAX);
}

static void beat_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	struct hd_redis_presence *p = priv;
	/* SET … GET answers the old value: none means the key lapsed (or this
	 * is the first beat), and readers may have deleted our fields. */
	if (!rep || p->stopped || rep->type == REDIS_REPLY_ERROR)
		return;
	if (rep->type == REDIS_REPLY_NIL) {
		listed_forget(p);
		p->want_all = true;
		hd_redis_presence_arm(p, 0);
	}
}

/* SPOP herald:swept:NODE answered: a page of this node's entries the
 * other nodes announced as left ("TOPIC\nCLIENT": its heartbeat lapsed
 * while it lived on and the sweep removed them). Once every shard of the
 * round answered (the heartbeat is back on each, so no sweep announces
 * more), the joins of exactly those go out again; the first such round
 * also writes every entry again. A page per shard and beat bounds the
 * joins of one second (REJOIN_PAGE): the rest come with the next beats.
 * A process's first beat on a shard only deletes a previous run's set. */
static void swept_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	struct beat_ctx *bc = priv;
	struct hd_redis_presence *p = bc->p;
	p->beat_wait--;
	if (rep && !p->stopped && rep->type == REDIS_REPLY_ARRAY) {
		for (size_t i = 0; i < rep->elements; i++) {
			const redisReply *e = rep->element[i];
			if (e->type != REDIS_REPLY_STRING || e->len >= PRESENCE_KEY_MAX)
				continue;
			char key[PRESENCE_KEY_MAX];
			memcpy(key, e->str, e->len);
			key[e->len] = '\0';
			if (!hd_map_get(&p->left, key))
				(void)hd_map_put(&p->left, key, p); /* full: no join */
			p->beat_swept = true;
		}
	}
	if (rep && !p->stopped && rep->type == REDIS_REPLY_ERROR) {
		/* Not a set (an older build's mark, "1"): dropped. */
		char swept[PRESENCE_KEY_MAX];
		snprintf(swept, sizeof(swept), "herald:swept:%s", p->node);
		const char *dv[] = {"DEL", swept};
		size_t dl[] = {3, strlen(swept)};
		(void)hd_redis_presence_send(p, c, 2, dv, dl);
	}
	if (rep && !p->stopped)
		p->beaten[bc->shard] = true;
	if (p->beat_wait > 0 || p->stopped)
		return;
	if (!p->beat_swept) {
		p->rejoining = false;
		return;
	}
	p->beat_swept = false;
	if (!p->rejoining) {
		hd_log_warn("redis: this node's heartbeat had lapsed and the other nodes announced "
			    "clients of it as left: writing its entries and announcing their joins again");
		listed_forget(p);
		p->want_rejoin = true;
	} else {
		p->want_joins = true;
	}
	p->rejoining = true;
	hd_redis_presence_arm(p, 0);
}

/* The heartbeat, the swept check and this node's name in herald:nodes, on
 * every shard (a shard's sweep reads only its own keys). */
static void beat(struct hd_redis_presence *p)
{
	char key[PRESENCE_KEY_MAX], swept[PRESENCE_KEY_MAX];
	snprintf(key, sizeof(key), "herald:node:%s", p->node);
	snprintf(swept, sizeof(swept), "herald:swept:%s", p->node);
	const char *argv[] = {"SET", key, p->token, "PX", BEAT_TTL, "GET"};
	size_t lens[] = {3, strlen(key), strlen(p->token), 2, strlen(BEAT_TTL), 3};
	const char *sargv[] = {"SPOP", swept, p->rejoin_page};
	size_t slens[] = {4, strlen(swept), strlen(p->rejoin_page)};
	const char *dargv[] = {"DEL", swept};
	size_t dlens[] = {3, strlen(swept)};
	const char *hargv[] = {"HSET", "herald:nodes", p->node, "1"};
	size_t hlens[] = {4, 12, strlen(p->node), 1};
	bool check = p->beat_wait == 0; /* else the last round's checks are still out */
	for (unsigned s = 0; s < p->r->nshards; s++) {
		struct hd_rconn *c = p->r->shards[s].cmd;
		if (!c || !hd_rconn_ready(c))
			continue;
		if (hd_rconn_command(c, beat_reply, p, 6, argv, lens))
			continue;
		p->beat_ctx[s] = (struct beat_ctx){p, s};
		if (check && hd_rconn_command(c, swept_reply, &p->beat_ctx[s],
					      p->beaten[s] ? 3 : 2, p->beaten[s] ? sargv : dargv,
					      p->beaten[s] ? slens : dlens) == 0)
			p->beat_wait++;
		(void)hd_redis_presence_send(p, c, 4, hargv, hlens);
	}
}

static void on_beat_timer(uv_timer_t *t)
{
	beat(t->data);
}


void hd_redis_presence_cmd_up(struct hd_redis_presence *p, unsigned shard)
{
	if (!p || p->stopped)
		return;
	if (!p->up_once[shard]) {
		/* Removes the fields a previous run of this node left in the
		 * hashes it listed, then the list. Sent from on_up; the writes
		 * to this shard wait for its end (pend_send). */
		p->up_once[shard] = true;
		hd_redis_sweep_cleanup(p, shard);
	} else {
		/* A failover may have lost the SADDs too: list every hash again. */
		listed_forget(p);
	}
	if (shard == 0)
		beat(p);
	/* Writes queued while it was down were answered NULL, or a failover
	 * may have lost them: write every entry again. */
	p->want_all = true;
	hd_redis_presence_arm(p, 0);
}

/* ---- queries ------------------------------------------------------------ */

static void query_end(struct qstate *st, int err)
{
	struct hd_reg_query *q = st->q;
	for (size_t i = 0; i < q->n; i++)
		free(st->fields[i]);
	free(st->fields);
	free(st);
	q->err = err;
	if (err)
		hd_engine_reg_query_fini(q);
	q->done(q);
}

static bool node_alive(const struct qstate *st, const char *node, size_t len)
{
	if (len == strlen(st->p->node) && !memcmp(node, st->p->node, len))
		return true;
	for (size_t i = 0; i < st->nnodes; i++)
		if (st->nlens[i] == len && !memcmp(st->nodes[i], node, len))
			return st->alive[i];
	return true; /* past PRESENCE_NODES_MAX: not checked */
}

/* One node's heartbeat answered; the last one ends the query. */
static void beats_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	struct bctx *b = priv;
	struct qstate *st = b->st;
	struct hd_reg_query *q = st->q;
	int err = hd_redis_reply_err(rep);
	if (!err && rep->type != REDIS_REPLY_INTEGER)
		err = HD_EINTERNAL;
	if (err && !st->err)
		st->err = err;
	if (!err)
		st->alive[b->k] = rep->integer == 1;
	if (--st->out > 0)
		return;
	if (st->err || st->p->stopped) {
		query_end(st, st->err ? st->err : HD_EUNAVAIL);
		return;
	}
	const char **dead = hd_malloc((q->n + 2) * sizeof(*dead));
	size_t *dlens = hd_malloc((q->n + 2) * sizeof(*dlens));
	size_t ndead = 0, kept = 0;
	for (size_t i = 0; i < q->n; i++) {
		const char *nl = strchr(st->fields[i], '\n');
		size_t len = nl ? (size_t)(nl - st->fields[i]) : strlen(st->fields[i]);
		if (node_alive(st, st->fields[i], len)) {
			q->values[kept] = q->values[i];
			st->fields[kept++] = st->fields[i];
			continue;
		}
		dead[2 + ndead] = st->fields[i];
		dlens[2 + ndead++] = strlen(st->fields[i]);
		free(q->values[i]);
	}
	if (ndead && q->kind != HD_REG_TOPIC) { /* a topic's: the sweep's, with their leaves */
		dead[0] = "HDEL";
		dlens[0] = 4;
		dead[1] = st->rkey;
		dlens[1] = strlen(st->rkey);
		hd_redis_presence_send(st->p, st->p->r->shards[st->shard].cmd, (int)(ndead + 2), dead,
				dlens);
	}
	for (size_t i = 0; i < ndead; i++)
		free((char *)dead[2 + i]);
	free(dead);
	free(dlens);
	q->n = kept;
	query_end(st, 0);
}

static void hash_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	struct qstate *st = priv;
	struct hd_reg_query *q = st->q;
	int err = hd_redis_reply_err(rep);
	if (!err && rep->type != REDIS_REPLY_ARRAY)
		err = HD_EINTERNAL;
	if (err || st->p->stopped) {
		query_end(st, err ? err : HD_EUNAVAIL);
		return;
	}
	size_t n = rep->elements / 2;
	if (n > HD_REG_QUERY_MAX)
		n = HD_REG_QUERY_MAX;
	q->values = hd_calloc(n ? n : 1, sizeof(*q->values));
	st->fields = hd_calloc(n ? n : 1, sizeof(*st->fields));
	for (size_t i = 0; i < n; i++) {
		const redisReply *f = rep->element[2 * i], *v = rep->element[2 * i + 1];
		if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
			continue;
		st->fields[q->n] = hd_strndup(f->str, f->len);
		q->values[q->n++] = hd_strndup(v->str, v->len);
		const char *field = st->fields[q->n - 1], *nl = strchr(field, '\n');
		size_t len = nl ? (size_t)(nl - field) : strlen(field);
		bool known = len == strlen(st->p->node) && !memcmp(field, st->p->node, len);
		for (size_t k = 0; k < st->nnodes && !known; k++)
			known = st->nlens[k] == len && !memcmp(st->nodes[k], field, len);
		if (!known && st->nnodes < PRESENCE_NODES_MAX && nl) {
			st->nodes[st->nnodes] = field; /* fields outlive the MGET */
			st->nlens[st->nnodes++] = len;
		}
	}
	if (st->nnodes == 0) {
		query_end(st, 0);
		return;
	}
	/* The heartbeat keys of the nodes named: one call per key (each its
	 * own slot). */
	for (size_t k = 0; k < st->nnodes; k++) {
		char key[PRESENCE_KEY_MAX];
		snprintf(key, sizeof(key), "herald:node:%.*s", (int)st->nlens[k], st->nodes[k]);
		const char *argv[] = {"EXISTS", key};
		size_t lens[] = {6, strlen(key)};
		st->bctx[k] = (struct bctx){st, k};
		if (hd_rconn_command(st->p->r->shards[0].cmd, beats_reply, &st->bctx[k], 2, argv,
				     lens)) {
			st->err = HD_EUNAVAIL;
			break;
		}
		st->out++;
	}
	if (st->out == 0)
		query_end(st, st->err ? st->err : HD_EUNAVAIL);
}

int hd_redis_presence_query(struct hd_engine *eng, struct hd_reg_query *q)
{
	struct redis *r = (struct redis *)eng;
	struct hd_redis_presence *p = r->presence;
	if (!p || p->stopped)
		return HD_EUNAVAIL;
	q->err = 0;
	q->values = NULL;
	q->n = 0;
	/* This node's own changes go first on the same connections, so that a
	 * query sees them. */
	flush(p);
	if (q->kind == HD_REG_ONLINE)
		return hd_redis_online_query(p, q);
	struct qstate *st = hd_calloc(1, sizeof(*st));
	st->p = p;
	st->q = q;
	rkey_of(p, q->kind, q->key, st->rkey, sizeof(st->rkey), &st->shard);
	const char *argv[] = {"HGETALL", st->rkey};
	size_t lens[] = {7, strlen(st->rkey)};
	int rc = hd_rconn_command(r->shards[st->shard].cmd, hash_reply, st, 2, argv, lens);
	if (rc)
		free(st);
	return rc;
}

bool hd_redis_presence_left(struct hd_engine *eng, const char *topic, const char *client)
{
	struct hd_redis_presence *p = ((struct redis *)eng)->presence;
	char key[PRESENCE_KEY_MAX];
	if (!p || p->stopped)
		return false;
	snprintf(key, sizeof(key), "%s\n%s", topic, client);
	return hd_map_get(&p->left, key) != NULL;
}

/* ---- life cycle --------------------------------------------------------- */

struct hd_redis_presence *hd_redis_presence_new(struct redis *r, const char *node)
{
	struct hd_redis_presence *p = hd_calloc(1, sizeof(*p));
	p->r = r;
	snprintf(p->node, sizeof(p->node), "%s", node && node[0] ? node : "herald");
	snprintf(p->token, sizeof(p->token), "%ld-%lld", (long)getpid(), (long long)hd_now_ms());
	hd_map_init_borrowed(&p->pending, PENDING_MAX);
	hd_map_init(&p->listed, LISTED_MAX);
	hd_map_init(&p->left, LEFT_MAX);
	p->tail = &p->head;
	/* Test-only (no option, no doc): small rejoin pages, so that tests
	 * can come back partway through a sweep (and hd_redis_sweep_start's). */
	const char *env = getenv("HERALD_TEST_REJOIN_PAGE");
	snprintf(p->rejoin_page, sizeof(p->rejoin_page), "%d",
		 env && atoi(env) > 0 && atoi(env) < REJOIN_PAGE ? atoi(env) : REJOIN_PAGE);
	uv_timer_init(r->loop, &p->flush_timer);
	uv_timer_init(r->loop, &p->beat_timer);
	uv_timer_init(r->loop, &p->sweep_timer);
	p->flush_timer.data = p->beat_timer.data = p->sweep_timer.data = p;
	p->open_handles = 3;
	uv_timer_start(&p->beat_timer, on_beat_timer, BEAT_MS, BEAT_MS);
	hd_redis_sweep_start(p);
	return p;
}

static void on_close(uv_handle_t *h)
{
	struct hd_redis_presence *p = h->data;
	if (--p->open_handles == 0)
		free(p);
}

void hd_redis_presence_stop(struct hd_redis_presence *p)
{
	if (!p || p->stopped)
		return;
	p->stopped = true;
	for (struct pend *e = p->head, *next; e; e = next) {
		next = e->next;
		pend_free(e);
	}
	p->head = NULL;
	p->tail = &p->head;
	hd_map_fini(&p->pending);
	hd_map_fini(&p->listed);
	hd_map_fini(&p->left);
	uv_close((uv_handle_t *)&p->flush_timer, on_close);
	uv_close((uv_handle_t *)&p->beat_timer, on_close);
	uv_close((uv_handle_t *)&p->sweep_timer, on_close);
}
