/*
 * redis_presence — the Redis engine's connection registry and presence
 * (engine.h's reg_put / reg_flush / reg_query): which connections every
 * node holds, shared as soft state so that any node can list a user's
 * connections or a topic's followers.
 * Layer: engine. Called by the hub through engine.h; redis.c creates and
 * stops it, redis_deliver.c tells it when a command connection comes up.
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
 * The sweep: every SWEEP_MS, each node sweeps each shard (struct sweep).
 * For each node of herald:nodes whose heartbeat is gone (kill -9, a
 * cut-off or paused node), it removes that node's fields from the hashes
 * of its herald:nodekeys set, in bounded rounds (SSCAN of the set, then
 * step_lua on each hash: HSCAN … MATCH from its cursor, HDEL; about
 * SWEEP_WORK fields per round, the rest on the next round, RETRY_MS
 * later), and step_lua publishes the leave notice of each presence entry
 * it removed that says "join_leave", in the dead node's name. Only the
 * call whose HDEL removed an entry announces it, so each leave is sent
 * once; every node, this one too, hears it on PUB/SUB and pushes it to its
 * subscribers. The clean-up at a node's start walks its own set the same
 * way, to the end, without leaves.
 *
 * A query reads the hash (HGETALL), then the heartbeats of the other nodes
 * named in it (one EXISTS each on shard 0), and drops the fields of nodes
 * whose heartbeat is gone; a user's listing deletes them (HDEL) on the
 * way, a topic's presence leaves them to the sweep (which sends their
 * leaves). An HD_REG_ONLINE query walks herald:online in HSCAN pages
 * (struct ostate), counting the distinct users of live nodes and deleting
 * the fields of the others.
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
#define NODES_MAX 256              /* other nodes a query checks */
#define SWEEP_MS 1000              /* the sweep's period */
#define SWEEP_WORK 2000            /* fields one sweep round looks at or removes
				      (about: a scan's COUNT is a hint) */
#define SWEEP_COUNT "100"          /* one SSCAN's or HSCAN's COUNT in the sweep */
#define REJOIN_PAGE 1000           /* swept entries one beat takes per shard
				      (SPOP): the joins announced per second */
#define LEFT_MAX (REJOIN_PAGE * HD_REDIS_SHARDS_MAX)
#define STEP_KEYS 20               /* hashes a sweep works on at once */
#define ONLINE_PAGE "1000"         /* one HSCAN's COUNT over herald:online */
#define ONLINE_USERS_MAX 1000000   /* distinct users an online count tells
				      apart (past it, each field counts) */
#define SWEPT_TTL "86400000"       /* herald:swept:NODE's PX: a day */
#define KEY_MAX 600

/* One entry write waiting for the next batch. */
struct pend {
	struct pend *next;
	unsigned shard;
	char *mkey;                   /* the queue's map key (owned): kind, key, client */
	char *rkey;                   /* the Redis hash (owned) */
	char *field;                  /* "NODE\nCLIENT" (owned) */
	char *value;                  /* owned; NULL: remove the field */
};

struct hd_redis_presence {
	struct redis *r;
	char node[256];
	char token[64];               /* this process's heartbeat value */
	struct hd_map pending;        /* mkey → struct pend */
	struct pend *head, **tail;
	size_t inflight;              /* writes sent, not answered */
	struct hd_map listed;         /* hashes SADDed to herald:nodekeys (value: p) */
	uv_timer_t flush_timer;
	uv_timer_t beat_timer;
	uv_timer_t sweep_timer;
	bool sweeping[HD_REDIS_SHARDS_MAX]; /* a sweep round is out on the shard */
	bool cleaning[HD_REDIS_SHARDS_MAX]; /* the clean-up at start runs: writes wait */
	int open_handles;
	bool armed;
	bool asked;                   /* reg_flush was called since the last batch */
	bool want_all;                /* write every entry again */
	bool want_rejoin;             /* and announce the joins again (engine.h) */
	bool beaten[HD_REDIS_SHARDS_MAX]; /* a beat's swept check answered on the shard */
	struct beat_ctx {
		struct hd_redis_presence *p;
		unsigned shard;
	} beat_ctx[HD_REDIS_SHARDS_MAX];
	unsigned beat_wait;           /* swept checks of this round not answered */
	bool beat_swept;              /* one of them found swept entries */
	bool rejoining;               /* the last round found some too */
	bool want_joins;              /* announce the joins of `left` */
	struct hd_map left;           /* "TOPIC\nCLIENT" the other nodes announced as
				         left, taken from herald:swept:NODE: the
				         joins of the next flush (values: p) */
	/* The sweep's pace (test-only overrides: HERALD_TEST_SWEEP_COUNT,
	 * _WORK, _RETRY_MS; HERALD_TEST_REJOIN_PAGE). */
	char sweep_count[16];
	long sweep_work;
	uint64_t sweep_retry_ms;
	char rejoin_page[16];
	hd_engine_reg_flush_fn fn;
	void *fn_arg;
	bool up_once[HD_REDIS_SHARDS_MAX];
	bool stopped;
	size_t dropped;
	long long warn_ms;
};

/* A query on its way: the hash's fields, then the heartbeats. */
struct qstate {
	struct hd_redis_presence *p;
	struct hd_reg_query *q;
	unsigned shard;
	char rkey[KEY_MAX];
	char **fields;                /* parallel to q->values */
	const char *nodes[NODES_MAX]; /* other nodes named: the start of a field */
	size_t nlens[NODES_MAX];      /* and their lengths (up to the '\n') */
	size_t nnodes;
	bool alive[NODES_MAX];        /* their heartbeats (EXISTS, one call each) */
	struct bctx {
		struct qstate *st;
		size_t k;
	} bctx[NODES_MAX];
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

/* One command whose reply is only logged when it is an error. */
static int fire_and_forget(struct hd_redis_presence *p, struct hd_rconn *c, int argc,
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
		return fire_and_forget(p, c, 3, argv, lens);
	}
	const char *argv[] = {"HSET", e->rkey, e->field, e->value};
	size_t lens[] = {4, strlen(e->rkey), strlen(e->field), strlen(e->value)};
	int rc = fire_and_forget(p, c, 4, argv, lens);
	if (rc || hd_map_get(&p->listed, e->rkey))
		return rc;
	/* The first write to this hash: list it for the clean-up at start. */
	char set[KEY_MAX];
	snprintf(set, sizeof(set), "herald:nodekeys:%s", p->node);
	const char *sargv[] = {"SADD", set, e->rkey};
	size_t slens[] = {4, strlen(set), strlen(e->rkey)};
	if (fire_and_forget(p, c, 3, sargv, slens) == 0)
		hd_map_put(&p->listed, e->rkey, p); /* full: SADD every time */
	return 0;
}

static void on_flush_timer(uv_timer_t *t);

static void arm(struct hd_redis_presence *p, uint64_t ms)
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
		arm(p, RETRY_MS);
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
	char mkey[KEY_MAX];
	if (!p || p->stopped)
		return;
	snprintf(mkey, sizeof(mkey), "%c%s\n%s", "uto"[kind], key, client);
	struct pend *e = hd_map_get(&p->pending, mkey);
	if (e) {
		free(e->value);
		e->value = value ? hd_strdup(value) : NULL;
		return;
	}
	char rkey[KEY_MAX], field[KEY_MAX];
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
	arm(p, 0);
}

void hd_redis_presence_flush(struct hd_engine *eng, hd_engine_reg_flush_fn fn, void *arg)
{
	struct hd_redis_presence *p = ((struct redis *)eng)->presence;
	if (!p)
		return;
	p->fn = fn;
	p->fn_arg = arg;
	p->asked = true;
	arm(p, 0);
}

/* ---- heartbeat and clean-up --------------------------------------------- */

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
		arm(p, 0);
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
			if (e->type != REDIS_REPLY_STRING || e->len >= KEY_MAX)
				continue;
			char key[KEY_MAX];
			memcpy(key, e->str, e->len);
			key[e->len] = '\0';
			if (!hd_map_get(&p->left, key))
				(void)hd_map_put(&p->left, key, p); /* full: no join */
			p->beat_swept = true;
		}
	}
	if (rep && !p->stopped && rep->type == REDIS_REPLY_ERROR) {
		/* Not a set (an older build's mark, "1"): dropped. */
		char swept[KEY_MAX];
		snprintf(swept, sizeof(swept), "herald:swept:%s", p->node);
		const char *dv[] = {"DEL", swept};
		size_t dl[] = {3, strlen(swept)};
		(void)fire_and_forget(p, c, 2, dv, dl);
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
	arm(p, 0);
}

/* The heartbeat, the swept check and this node's name in herald:nodes, on
 * every shard (a shard's sweep reads only its own keys). */
static void beat(struct hd_redis_presence *p)
{
	char key[KEY_MAX], swept[KEY_MAX];
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
		(void)fire_and_forget(p, c, 4, hargv, hlens);
	}
}

static void on_beat_timer(uv_timer_t *t)
{
	beat(t->data);
}

/* ---- the sweep: the entries of nodes whose heartbeat is gone ------------ */

/*
 * One step over one hash: KEYS[1] the hash. ARGV[1] its HSCAN cursor,
 * ARGV[2] the MATCH pattern of a node's fields ("NODE\n*", escaped),
 * ARGV[3] the COUNT, ARGV[4] NOTICE_CHANNEL, ARGV[5] the node, ARGV[6] the
 * topic when KEYS[1] is its presence hash and leaves are to be announced
 * ('' otherwise). Removes the node's fields the HSCAN page holds; for each
 * removed presence entry that says "join_leave" it publishes the leave
 * notice "NODE\nTOPIC\nleave\nCLIENT\nUSER\nENTRY" in the node's name
 * (every node, the caller too, pushes it to its subscribers; the node, if
 * it lives on, drops it as its own). An entry is announced only by the
 * call whose HDEL removed it, so each leave goes out once even when two
 * nodes sweep the same hash. → {next cursor, fields removed, {the client
 * ids announced as left}}.
 * It reads and writes only KEYS[1] (the Redis Cluster rule).
 */
static const char step_lua[] =
	"local r = redis.call('HSCAN', KEYS[1], ARGV[1], 'MATCH', ARGV[2], 'COUNT', ARGV[3])\n"
	"local fv, removed, left = r[2], 0, {}\n"
	"for i = 1, #fv, 2 do\n"
	"  if redis.call('HDEL', KEYS[1], fv[i]) == 1 then\n"
	"    removed = removed + 1\n"
	"    if ARGV[6] ~= '' then\n"
	"      local ok, o = pcall(cjson.decode, fv[i + 1])\n"
	"      if ok and type(o) == 'table' and o.join_leave == true and type(o.id) == 'string'\n"
	"         and type(o.user) == 'string' then\n"
	"        redis.call('PUBLISH', ARGV[4], ARGV[5] .. '\\n' .. ARGV[6] .. '\\nleave\\n' ..\n"
	"                   o.id .. '\\n' .. o.user .. '\\n' .. fv[i + 1])\n"
	"        left[#left + 1] = o.id\n"
	"      end\n"
	"    end\n"
	"  end\n"
	"end\n"
	"return {r[1], removed, left}\n";

/* EVAL of script with nkeys keys then args on c (every key of one Redis
 * Cluster slot, as script_call asserts for the engine's scripts). */
static int presence_eval(struct hd_rconn *c, hd_rconn_reply_fn fn, void *priv, const char *script,
			 size_t slen, int nkeys, int nargs, const char **args, const size_t *lens)
{
	const char *argv[3 + 8];
	size_t alens[3 + 8];
	char nk[8];
	assert(nargs <= 8 && nkeys <= nargs);
	assert(hd_redis_scripts_one_slot(args, lens, nkeys));
	snprintf(nk, sizeof(nk), "%d", nkeys);
	argv[0] = "EVAL";
	alens[0] = 4;
	argv[1] = script;
	alens[1] = slen;
	argv[2] = nk;
	alens[2] = strlen(nk);
	for (int i = 0; i < nargs; i++) {
		argv[3 + i] = args[i];
		alens[3 + i] = lens[i];
	}
	return hd_rconn_command(c, fn, priv, 3 + nargs, argv, alens);
}

/* One hash of a step, with its cursor. */
struct step {
	struct sweep *s;
	const char *key;              /* borrowed from s->keys */
	char cursor[32];
};

/*
 * A sweep round on one shard (or this node's clean-up at its start),
 * driven from here one key's slot per call: HKEYS herald:nodes; for each
 * node, EXISTS of its heartbeat; for a dead one, SSCAN of its
 * herald:nodekeys set, and for each page's hashes (STEP_KEYS at a time)
 * the cursors (HMGET herald:sweepcur:NODE), then one step_lua per hash,
 * pipelined; a hash finished is SREMed from the set, the others keep their
 * cursor. The round stops when its budget of about SWEEP_WORK fields is
 * spent (the next one goes on RETRY_MS later). The clean-up walks this
 * node's own set to its end, each hash to its end, without leaves.
 */
struct sweep {
	struct hd_redis_presence *p;
	unsigned shard;
	bool cleanup;
	bool failed;
	bool done;                    /* every hash of the node's set finished */
	int more;                     /* work left: again soon */
	long budget;
	char **nodes;                 /* owned */
	size_t nnodes, ni;
	char pat[600];                /* MATCH pattern of the node's fields */
	char set[KEY_MAX], cur[KEY_MAX];
	char sc[32];                  /* the set's SSCAN cursor */
	char **keys;                  /* the set's page (owned) */
	size_t nkeys, ki, nstep;
	size_t out;                   /* steps sent, not answered */
	bool stepped;                 /* a chunk ran this round (one always does) */
	struct step steps[STEP_KEYS];
};

static void on_sweep_timer(uv_timer_t *t);
static void sw_next_node(struct sweep *s);
static void sw_chunk(struct sweep *s);

static struct hd_rconn *sw_conn(const struct sweep *s)
{
	return s->p->r->shards[s->shard].cmd;
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void sw_finish(struct sweep *s)
{
	struct hd_redis_presence *p = s->p;
	strv_free(s->nodes, s->nnodes);
	strv_free(s->keys, s->nkeys);
	if (s->cleanup) {
		p->cleaning[s->shard] = false;
		if (!p->stopped)
			arm(p, 0); /* the writes it held back */
	} else {
		p->sweeping[s->shard] = false;
		if (s->more && !s->failed && !p->stopped)
			uv_timer_start(&p->sweep_timer, on_sweep_timer, p->sweep_retry_ms, SWEEP_MS);
	}
	free(s);
}

static bool sw_bad(struct sweep *s, const redisReply *rep)
{
	return !rep || s->p->stopped || hd_redis_reply_err(rep);
}

static void sw_cmd(struct sweep *s, hd_rconn_reply_fn fn, int argc, const char **argv,
		   const size_t *lens)
{
	if (hd_rconn_command(sw_conn(s), fn, s, argc, argv, lens)) {
		s->failed = true;
		sw_finish(s);
	}
}

/* The node's names: its set, cursors and the pattern of its fields. */
static void sw_node_names(struct sweep *s, const char *node)
{
	snprintf(s->set, sizeof(s->set), "herald:nodekeys:%s", node);
	snprintf(s->cur, sizeof(s->cur), "herald:sweepcur:%s", node);
	size_t o = 0;
	for (const char *c = node; *c && o + 4 < sizeof(s->pat); c++) {
		if (strchr("*?[]\\", *c))
			s->pat[o++] = '\\';
		s->pat[o++] = *c;
	}
	s->pat[o++] = '\n';
	s->pat[o++] = '*';
	s->pat[o] = '\0';
	snprintf(s->sc, sizeof(s->sc), "0");
	s->done = true;
}

static const char *sw_node(const struct sweep *s)
{
	return s->cleanup ? s->p->node : s->nodes[s->ni];
}

static void sw_step_reply(struct hd_rconn *c, redisReply *rep, void *priv);

/* The topic of a presence hash "{t:TOPIC}:presence" into out, or false. */
static bool presence_topic(const char *key, char *out, size_t cap)
{
	size_t kl = strlen(key);
	if (kl <= 13 || strncmp(key, "{t:", 3) || strcmp(key + kl - 10, "}:presence"))
		return false;
	snprintf(out, cap, "%.*s", (int)(kl - 13), key + 3);
	return true;
}

static void sw_step_send(struct step *st)
{
	struct sweep *s = st->s;
	const char *node = sw_node(s);
	char topic[KEY_MAX] = "";
	size_t kl = strlen(st->key);
	if (!s->cleanup)
		(void)presence_topic(st->key, topic, sizeof(topic));
	const char *count = s->p->sweep_count;
	const char *args[] = {st->key, st->cursor, s->pat, count, NOTICE_CHANNEL, node, topic};
	size_t lens[] = {kl, strlen(st->cursor), strlen(s->pat), strlen(count),
			 sizeof(NOTICE_CHANNEL) - 1, strlen(node), strlen(topic)};
	if (presence_eval(sw_conn(s), sw_step_reply, st, step_lua, sizeof(step_lua) - 1, 1, 7, args,
			  lens) == 0)
		s->out++;
	else
		s->failed = true;
}

static void sw_steps_send(struct sweep *s)
{
	for (size_t i = 0; i < s->nstep && !s->failed; i++)
		sw_step_send(&s->steps[i]);
	if (s->out == 0)
		sw_finish(s);
}

/* Leaves announced: "TOPIC\nCLIENT" of each into herald:swept:NODE, so
 * that the node, when it beats again, announces exactly their joins. */
static void sw_record_left(struct sweep *s, const char *key, const redisReply *ids)
{
	char topic[KEY_MAX], swept[KEY_MAX];
	if (!presence_topic(key, topic, sizeof(topic)))
		return;
	snprintf(swept, sizeof(swept), "herald:swept:%s", sw_node(s));
	size_t n = ids->elements;
	const char **argv = hd_malloc((n + 2) * sizeof(*argv));
	size_t *lens = hd_malloc((n + 2) * sizeof(*lens));
	char **vals = hd_calloc(n ? n : 1, sizeof(*vals));
	size_t k = 2;
	argv[0] = "SADD";
	lens[0] = 4;
	argv[1] = swept;
	lens[1] = strlen(swept);
	for (size_t i = 0; i < n; i++) {
		const redisReply *e = ids->element[i];
		if (e->type != REDIS_REPLY_STRING)
			continue;
		vals[i] = hd_malloc(strlen(topic) + e->len + 2);
		size_t tl = strlen(topic);
		memcpy(vals[i], topic, tl);
		vals[i][tl] = '\n';
		memcpy(vals[i] + tl + 1, e->str, e->len);
		argv[k] = vals[i];
		lens[k++] = tl + 1 + e->len;
	}
	struct hd_rconn *c = sw_conn(s);
	if (k > 2 && fire_and_forget(s->p, c, (int)k, argv, lens) == 0) {
		const char *xv[] = {"PEXPIRE", swept, SWEPT_TTL};
		size_t xl[] = {7, strlen(swept), strlen(SWEPT_TTL)};
		(void)fire_and_forget(s->p, c, 3, xv, xl);
	}
	strv_free(vals, n);
	free(argv);
	free(lens);
}

static void sw_step_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	struct step *st = priv;
	struct sweep *s = st->s;
	struct hd_redis_presence *p = s->p;
	s->out--;
	if (sw_bad(s, rep) || rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 ||
	    rep->element[0]->type != REDIS_REPLY_STRING ||
	    rep->element[0]->len >= sizeof(st->cursor)) {
		s->failed = true;
	} else {
		snprintf(st->cursor, sizeof(st->cursor), "%.*s", (int)rep->element[0]->len,
			 rep->element[0]->str);
		bool end = !strcmp(st->cursor, "0");
		if (s->cleanup) {
			if (!end)
				sw_step_send(st); /* the hash to its end */
		} else {
			s->budget -= atol(p->sweep_count) + (long)hd_redis_rep_u64(rep->element[1]);
			const char *kv[] = {end ? "SREM" : "HSET", end ? s->set : s->cur, st->key,
					    st->cursor};
			size_t kl[] = {4, strlen(kv[1]), strlen(st->key), strlen(st->cursor)};
			(void)fire_and_forget(p, c, end ? 3 : 4, kv, kl);
			if (end) {
				const char *hv[] = {"HDEL", s->cur, st->key};
				size_t hl[] = {4, strlen(s->cur), strlen(st->key)};
				(void)fire_and_forget(p, c, 3, hv, hl);
			} else {
				s->done = false;
			}
			if (rep->element[2]->type == REDIS_REPLY_ARRAY && rep->element[2]->elements)
				sw_record_left(s, st->key, rep->element[2]);
		}
	}
	if (s->out > 0)
		return;
	if (s->failed) {
		sw_finish(s);
		return;
	}
	s->ki += s->nstep;
	sw_chunk(s);
}

static void sw_curs_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	struct sweep *s = priv;
	if (sw_bad(s, rep) || rep->type != REDIS_REPLY_ARRAY || rep->elements != s->nstep) {
		s->failed = true;
		sw_finish(s);
		return;
	}
	for (size_t i = 0; i < s->nstep; i++) {
		const redisReply *e = rep->element[i];
		bool ok = e->type == REDIS_REPLY_STRING && e->len < sizeof(s->steps[i].cursor);
		snprintf(s->steps[i].cursor, sizeof(s->steps[i].cursor), "%.*s", ok ? (int)e->len : 1,
			 ok ? e->str : "0");
	}
	sw_steps_send(s);
}

static void sw_node_end(struct sweep *s)
{
	if (s->cleanup) {
		const char *dv[] = {"DEL", s->set};
		size_t dl[] = {3, strlen(s->set)};
		(void)fire_and_forget(s->p, sw_conn(s), 2, dv, dl);
		sw_finish(s);
		return;
	}
	if (s->done && !strcmp(s->sc, "0")) {
		const char *node = sw_node(s);
		const char *dv[] = {"DEL", s->set};
		size_t dl[] = {3, strlen(s->set)};
		const char *cv[] = {"DEL", s->cur};
		size_t cl[] = {3, strlen(s->cur)};
		const char *hv[] = {"HDEL", "herald:nodes", node};
		size_t hl[] = {4, 12, strlen(node)};
		(void)fire_and_forget(s->p, sw_conn(s), 2, dv, dl);
		(void)fire_and_forget(s->p, sw_conn(s), 2, cv, cl);
		(void)fire_and_forget(s->p, sw_conn(s), 3, hv, hl);
	} else {
		s->more = 1;
	}
	s->ni++;
	sw_next_node(s);
}

/* The node lives again (its heartbeat is back): its sweep stops here. */
static void sw_alive_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	struct sweep *s = priv;
	if (sw_bad(s, rep) || rep->type != REDIS_REPLY_INTEGER) {
		s->failed = true;
		sw_finish(s);
		return;
	}
	if (rep->integer == 1) {
		s->ni++;
		sw_next_node(s);
		return;
	}
	const char *argv[2 + STEP_KEYS];
	size_t lens[2 + STEP_KEYS];
	argv[0] = "HMGET";
	lens[0] = 5;
	argv[1] = s->cur;
	lens[1] = strlen(s->cur);
	for (size_t i = 0; i < s->nstep; i++) {
		argv[2 + i] = s->steps[i].key;
		lens[2 + i] = strlen(s->steps[i].key);
	}
	sw_cmd(s, sw_curs_reply, (int)(2 + s->nstep), argv, lens);
}

static void sw_sscan_reply(struct hd_rconn *c, redisReply *rep, void *priv);

static void sw_sscan(struct sweep *s)
{
	strv_free(s->keys, s->nkeys);
	s->keys = NULL;
	s->nkeys = s->ki = 0;
	const char *count = s->p->sweep_count;
	s->budget -= atol(count);
	const char *argv[] = {"SSCAN", s->set, s->sc, "COUNT", count};
	size_t lens[] = {5, strlen(s->set), strlen(s->sc), 5, strlen(count)};
	sw_cmd(s, sw_sscan_reply, 5, argv, lens);
}

/* The next STEP_KEYS hashes of the page, the next page, or the node's end. */
static void sw_chunk(struct sweep *s)
{
	bool spent = !s->cleanup && s->budget <= 0 && s->stepped;
	if (s->ki >= s->nkeys) {
		if (!strcmp(s->sc, "0")) {
			sw_node_end(s);
		} else if (spent) {
			s->done = false;
			sw_node_end(s);
		} else {
			sw_sscan(s);
		}
		return;
	}
	if (spent) {
		s->done = false;
		sw_node_end(s);
		return;
	}
	s->stepped = true;
	s->nstep = s->nkeys - s->ki < STEP_KEYS ? s->nkeys - s->ki : STEP_KEYS;
	for (size_t i = 0; i < s->nstep; i++) {
		s->steps[i] = (struct step){.s = s, .key = s->keys[s->ki + i]};
		snprintf(s->steps[i].cursor, sizeof(s->steps[i].cursor), "0");
	}
	if (s->cleanup) {
		sw_steps_send(s);
		return;
	}
	/* Is the node still dead? (It may have come back since the round began.) */
	char beat_key[KEY_MAX];
	snprintf(beat_key, sizeof(beat_key), "herald:node:%s", sw_node(s));
	const char *argv[] = {"EXISTS", beat_key};
	size_t lens[] = {6, strlen(beat_key)};
	sw_cmd(s, sw_alive_reply, 2, argv, lens);
}

static void sw_sscan_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	struct sweep *s = priv;
	if (sw_bad(s, rep) || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
	    rep->element[0]->type != REDIS_REPLY_STRING || rep->element[0]->len >= sizeof(s->sc) ||
	    rep->element[1]->type != REDIS_REPLY_ARRAY) {
		s->failed = true;
		sw_finish(s);
		return;
	}
	snprintf(s->sc, sizeof(s->sc), "%.*s", (int)rep->element[0]->len, rep->element[0]->str);
	const redisReply *page = rep->element[1];
	s->keys = hd_calloc(page->elements ? page->elements : 1, sizeof(*s->keys));
	for (size_t i = 0; i < page->elements; i++)
		if (page->element[i]->type == REDIS_REPLY_STRING)
			s->keys[s->nkeys++] = hd_strndup(page->element[i]->str, page->element[i]->len);
	sw_chunk(s);
}

static void sw_exists_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	struct sweep *s = priv;
	if (sw_bad(s, rep) || rep->type != REDIS_REPLY_INTEGER) {
		s->failed = true;
		sw_finish(s);
		return;
	}
	if (rep->integer == 1) { /* alive */
		s->ni++;
		sw_next_node(s);
		return;
	}
	sw_node_names(s, sw_node(s));
	sw_sscan(s);
}

static void sw_next_node(struct sweep *s)
{
	if (s->ni >= s->nnodes) {
		sw_finish(s);
		return;
	}
	if (s->budget <= 0) {
		s->more = 1;
		sw_finish(s);
		return;
	}
	char beat_key[KEY_MAX];
	snprintf(beat_key, sizeof(beat_key), "herald:node:%s", s->nodes[s->ni]);
	const char *argv[] = {"EXISTS", beat_key};
	size_t lens[] = {6, strlen(beat_key)};
	sw_cmd(s, sw_exists_reply, 2, argv, lens);
}

static void sw_nodes_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	struct sweep *s = priv;
	if (sw_bad(s, rep) || rep->type != REDIS_REPLY_ARRAY) {
		s->failed = true;
		sw_finish(s);
		return;
	}
	size_t n = rep->elements < NODES_MAX ? rep->elements : NODES_MAX;
	s->nodes = hd_calloc(n ? n : 1, sizeof(*s->nodes));
	for (size_t i = 0; i < n; i++)
		if (rep->element[i]->type == REDIS_REPLY_STRING &&
		    rep->element[i]->len < sizeof(((struct hd_redis_presence *)0)->node))
			s->nodes[s->nnodes++] = hd_strndup(rep->element[i]->str, rep->element[i]->len);
	sw_next_node(s);
}

static struct sweep *sw_new(struct hd_redis_presence *p, unsigned shard, bool cleanup)
{
	struct sweep *s = hd_calloc(1, sizeof(*s));
	s->p = p;
	s->shard = shard;
	s->cleanup = cleanup;
	s->budget = p->sweep_work;
	return s;
}

static void on_sweep_timer(uv_timer_t *t)
{
	struct hd_redis_presence *p = t->data;
	for (unsigned s = 0; s < p->r->nshards; s++) {
		struct hd_rconn *c = p->r->shards[s].cmd;
		if (p->sweeping[s] || !c || !hd_rconn_ready(c))
			continue;
		struct sweep *sw = sw_new(p, s, false);
		const char *argv[] = {"HKEYS", "herald:nodes"};
		size_t lens[] = {5, 12};
		if (hd_rconn_command(c, sw_nodes_reply, sw, 2, argv, lens) == 0)
			p->sweeping[s] = true;
		else
			free(sw);
	}
}

void hd_redis_presence_cmd_up(struct hd_redis_presence *p, unsigned shard)
{
	if (!p || p->stopped)
		return;
	if (!p->up_once[shard]) {
		/* Removes the fields a previous run of this node left in the
		 * hashes it listed, then the list. Sent from on_up; the writes
		 * to this shard wait for its end (pend_send). */
		struct sweep *sw = sw_new(p, shard, true);
		sw_node_names(sw, p->node);
		p->cleaning[shard] = true;
		p->up_once[shard] = true;
		sw_sscan(sw);
	} else {
		/* A failover may have lost the SADDs too: list every hash again. */
		listed_forget(p);
	}
	if (shard == 0)
		beat(p);
	/* Writes queued while it was down were answered NULL, or a failover
	 * may have lost them: write every entry again. */
	p->want_all = true;
	arm(p, 0);
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
	return true; /* past NODES_MAX: not checked */
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
		fire_and_forget(st->p, st->p->r->shards[st->shard].cmd, (int)(ndead + 2), dead,
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
		if (!known && st->nnodes < NODES_MAX && nl) {
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
		char key[KEY_MAX];
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

/* An HD_REG_ONLINE count on its way: herald:online in HSCAN pages of about
 * ONLINE_PAGE fields; the heartbeat of each node a page names is checked
 * once (EXISTS, one call per key); the fields of dead nodes are deleted,
 * the distinct users of live ones counted. */
struct ostate {
	struct hd_redis_presence *p;
	struct hd_reg_query *q;
	char cursor[32];
	struct hd_map nodes;          /* node → &o_alive, &o_dead or &o_asked */
	struct hd_map users;          /* the users counted (values: this state) */
	char **fields;                /* the page (owned) */
	size_t nf;
	size_t out;                   /* heartbeat checks not answered */
	int err;
};

struct obeat {
	struct ostate *o;
	char node[];
};

static char o_alive, o_dead, o_asked;

static void online_end(struct ostate *o, int err)
{
	struct hd_reg_query *q = o->q;
	strv_free(o->fields, o->nf);
	hd_map_fini(&o->nodes);
	hd_map_fini(&o->users);
	free(o);
	q->err = err;
	if (err)
		q->count = 0;
	q->done(q);
}

static void online_scan(struct ostate *o);

/* Every node of the page is known: count it, delete the dead fields. */
static void online_page(struct ostate *o)
{
	struct hd_redis_presence *p = o->p;
	const char **dead = hd_malloc((o->nf + 2) * sizeof(*dead));
	size_t *dlens = hd_malloc((o->nf + 2) * sizeof(*dlens));
	size_t ndead = 0;
	for (size_t i = 0; i < o->nf; i++) {
		char *nl = strchr(o->fields[i], '\n');
		if (!nl)
			continue;
		*nl = '\0';
		const char *st = hd_map_get(&o->nodes, o->fields[i]);
		*nl = '\n';
		if (st == &o_dead) {
			dead[2 + ndead] = o->fields[i];
			dlens[2 + ndead++] = strlen(o->fields[i]);
		} else if (!hd_map_get(&o->users, nl + 1)) {
			(void)hd_map_put(&o->users, nl + 1, o); /* full: counted each time */
			o->q->count++;
		}
	}
	if (ndead) {
		dead[0] = "HDEL";
		dlens[0] = 4;
		dead[1] = "herald:online";
		dlens[1] = 13;
		(void)fire_and_forget(p, p->r->shards[0].cmd, (int)(ndead + 2), dead, dlens);
	}
	free(dead);
	free(dlens);
	strv_free(o->fields, o->nf);
	o->fields = NULL;
	o->nf = 0;
	if (!strcmp(o->cursor, "0"))
		online_end(o, 0);
	else
		online_scan(o);
}

static void online_beat_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	struct obeat *b = priv;
	struct ostate *o = b->o;
	int err = hd_redis_reply_err(rep);
	if (!err && rep->type != REDIS_REPLY_INTEGER)
		err = HD_EINTERNAL;
	if (err && !o->err)
		o->err = err;
	if (!err)
		(void)hd_map_put(&o->nodes, b->node, rep->integer == 1 ? &o_alive : &o_dead);
	free(b);
	if (--o->out > 0)
		return;
	if (o->err || o->p->stopped)
		online_end(o, o->err ? o->err : HD_EUNAVAIL);
	else
		online_page(o);
}

static void online_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	struct ostate *o = priv;
	int err = hd_redis_reply_err(rep);
	if (!err && (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
		     rep->element[0]->type != REDIS_REPLY_STRING ||
		     rep->element[0]->len >= sizeof(o->cursor) ||
		     rep->element[1]->type != REDIS_REPLY_ARRAY))
		err = HD_EINTERNAL;
	if (err || o->p->stopped) {
		online_end(o, err ? err : HD_EUNAVAIL);
		return;
	}
	snprintf(o->cursor, sizeof(o->cursor), "%.*s", (int)rep->element[0]->len,
		 rep->element[0]->str);
	const redisReply *page = rep->element[1];
	o->fields = hd_calloc(page->elements / 2 + 1, sizeof(*o->fields));
	for (size_t i = 0; i + 1 < page->elements; i += 2)
		if (page->element[i]->type == REDIS_REPLY_STRING)
			o->fields[o->nf++] = hd_strndup(page->element[i]->str, page->element[i]->len);
	/* The heartbeats of the nodes this page names first. */
	for (size_t i = 0; i < o->nf && !o->err; i++) {
		const char *f = o->fields[i], *nl = strchr(f, '\n');
		if (!nl)
			continue;
		struct obeat *b = hd_malloc(sizeof(*b) + (size_t)(nl - f) + 1);
		b->o = o;
		memcpy(b->node, f, (size_t)(nl - f));
		b->node[nl - f] = '\0';
		if (hd_map_get(&o->nodes, b->node) || hd_map_put(&o->nodes, b->node, &o_asked)) {
			free(b); /* known, or past NODES_MAX: counted as alive */
			continue;
		}
		char key[KEY_MAX];
		snprintf(key, sizeof(key), "herald:node:%s", b->node);
		const char *argv[] = {"EXISTS", key};
		size_t lens[] = {6, strlen(key)};
		if (hd_rconn_command(c, online_beat_reply, b, 2, argv, lens)) {
			free(b);
			o->err = HD_EUNAVAIL;
			break;
		}
		o->out++;
	}
	if (o->out > 0)
		return;
	if (o->err)
		online_end(o, o->err);
	else
		online_page(o);
}

static void online_scan(struct ostate *o)
{
	const char *argv[] = {"HSCAN", "herald:online", o->cursor, "COUNT", ONLINE_PAGE};
	size_t lens[] = {5, 13, strlen(o->cursor), 5, strlen(ONLINE_PAGE)};
	int rc = hd_rconn_command(o->p->r->shards[0].cmd, online_reply, o, 5, argv, lens);
	if (rc)
		online_end(o, rc);
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
	if (q->kind == HD_REG_ONLINE) {
		q->count = 0;
		struct ostate *o = hd_calloc(1, sizeof(*o));
		o->p = p;
		o->q = q;
		hd_map_init(&o->nodes, NODES_MAX);
		hd_map_init(&o->users, ONLINE_USERS_MAX);
		const char *argv[] = {"HSCAN", "herald:online", "0", "COUNT", ONLINE_PAGE};
		size_t lens[] = {5, 13, 1, 5, strlen(ONLINE_PAGE)};
		int rc = hd_rconn_command(r->shards[0].cmd, online_reply, o, 5, argv, lens);
		if (rc) {
			hd_map_fini(&o->nodes);
			hd_map_fini(&o->users);
			free(o);
		}
		return rc;
	}
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
	char key[KEY_MAX];
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
	/* Test-only (no option, no doc): a slow sweep and small rejoin pages,
	 * so that tests can come back partway through a sweep. */
	const char *env = getenv("HERALD_TEST_SWEEP_COUNT");
	snprintf(p->sweep_count, sizeof(p->sweep_count), "%ld",
		 env && atol(env) > 0 ? atol(env) : atol(SWEEP_COUNT));
	env = getenv("HERALD_TEST_SWEEP_WORK");
	p->sweep_work = env && atol(env) > 0 ? atol(env) : SWEEP_WORK;
	env = getenv("HERALD_TEST_SWEEP_RETRY_MS");
	p->sweep_retry_ms = env && atol(env) > 0 ? (uint64_t)atol(env) : RETRY_MS;
	env = getenv("HERALD_TEST_REJOIN_PAGE");
	snprintf(p->rejoin_page, sizeof(p->rejoin_page), "%d",
		 env && atoi(env) > 0 && atoi(env) < REJOIN_PAGE ? atoi(env) : REJOIN_PAGE);
	uv_timer_init(r->loop, &p->flush_timer);
	uv_timer_init(r->loop, &p->beat_timer);
	uv_timer_init(r->loop, &p->sweep_timer);
	p->flush_timer.data = p->beat_timer.data = p->sweep_timer.data = p;
	p->open_handles = 3;
	uv_timer_start(&p->beat_timer, on_beat_timer, BEAT_MS, BEAT_MS);
	uv_timer_start(&p->sweep_timer, on_sweep_timer, SWEEP_MS, SWEEP_MS);
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
