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
 *   herald:swept:NODE      "1" with a day's PX: the sweep announced leaves
 *                          of NODE; NODE's beat GETDELs it (per shard)
 *
 * Writes are neither WAITed for nor acknowledged: they are queued, one per
 * entry (a later put of the same entry replaces the queued one), and sent
 * once per loop turn, pipelined, at most BATCH_MAX per turn and
 * INFLIGHT_MAX unanswered (so that a connection storm never fills the
 * connection's cap that publishes share); the queue holds at most
 * PENDING_MAX entries (past it a put is dropped and counted). After a
 * command connection comes up again, and whenever the heartbeat finds its
 * key gone (it lapsed, or a failover lost it), the hub writes every entry
 * again (HD_REG_FLUSH_ALL); when the beat finds the swept mark, it also
 * announces its joins again (HD_REG_FLUSH_REJOIN).
 *
 * The sweep: every SWEEP_MS, each node runs sweep_lua on each shard. For
 * each node of herald:nodes whose heartbeat is gone (kill -9, a cut-off
 * or paused node), it removes that node's fields from the hashes of its
 * herald:nodekeys set, in bounded steps (SSCAN/HSCAN, about SWEEP_WORK
 * fields per call; the rest on the next call, RETRY_MS later), and
 * publishes the leave notice of each removed presence entry that says
 * "join_leave", in the dead node's name. The script is atomic, so each
 * leave is sent exactly once; every node, this one too, hears it on
 * PUB/SUB and pushes it to its subscribers.
 *
 * A query reads the hash (HGETALL), then the heartbeats of the other nodes
 * named in it (MGET on shard 0), and drops the fields of nodes whose
 * heartbeat is gone; a user's listing deletes them (HDEL) on the way, a
 * topic's presence leaves them to the sweep (which sends their leaves). An HD_REG_ONLINE
 * query is one script (online_lua) that counts the distinct users of
 * herald:online whose node's heartbeat is there, deleting the others.
 */
#include "engine/redis_impl.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/map.h"

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
#define SWEEP_WORK "2000"          /* fields one sweep call looks at or removes
				      (about: a scan's COUNT is a hint) */
#define SWEEP_COUNT "100"          /* one SSCAN's or HSCAN's COUNT in the sweep */
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
	bool sweeping[HD_REDIS_SHARDS_MAX]; /* a sweep call is out on the shard */
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
	bool beat_swept;              /* one of them found the mark */
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
	if (p->inflight + 2 > INFLIGHT_MAX)
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
	if (p->fn && (p->asked || p->want_all || p->want_rejoin)) {
		int mode = p->want_rejoin ? HD_REG_FLUSH_REJOIN
			   : p->want_all  ? HD_REG_FLUSH_ALL
					  : HD_REG_FLUSH_CHANGED;
		p->asked = p->want_all = p->want_rejoin = false;
		p->fn(p->fn_arg, mode);
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

/* GETDEL herald:swept:NODE answered: the sweep announced this node's
 * clients as left (its heartbeat lapsed while it lived on). Once every
 * shard of the round answered (the heartbeat is back on each, so no sweep
 * announces more), the joins go out again. A process's first beat on a
 * shard only clears a previous run's mark. */
static void swept_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	struct beat_ctx *bc = priv;
	struct hd_redis_presence *p = bc->p;
	p->beat_wait--;
	if (!rep || p->stopped || rep->type == REDIS_REPLY_ERROR)
		return;
	if (rep->type == REDIS_REPLY_STRING && p->beaten[bc->shard])
		p->beat_swept = true;
	p->beaten[bc->shard] = true;
	if (p->beat_wait == 0 && p->beat_swept) {
		p->beat_swept = false;
		hd_log_warn("redis: this node's heartbeat had lapsed and the other nodes announced its "
			    "clients as left: writing its entries and announcing their joins again");
		listed_forget(p);
		p->want_rejoin = true;
		arm(p, 0);
	}
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
	const char *sargv[] = {"GETDEL", swept};
	size_t slens[] = {6, strlen(swept)};
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
		if (check && hd_rconn_command(c, swept_reply, &p->beat_ctx[s], 2, sargv, slens) == 0)
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
 * ARGV[1] the work one call may do (fields looked at or removed), ARGV[2]
 * the COUNT of one SSCAN or HSCAN, ARGV[3] NOTICE_CHANNEL, ARGV[4] the
 * swept mark's PX. For each node of herald:nodes whose heartbeat is gone:
 * the hashes of herald:nodekeys:NODE (SSCAN), and in each the node's
 * fields (HSCAN … MATCH "NODE\n*", from the cursor a previous call left
 * in herald:sweepcur:NODE), removed. A removed presence entry that says
 * "join_leave" is announced as left right here (PUBLISH of the notice
 * "NODE\nTOPIC\nleave\nCLIENT\nUSER\nENTRY" in the dead node's name: every
 * node, the caller too, pushes it to its subscribers; the dead node, if it
 * lives on, drops it as its own), and herald:swept:NODE is set so that the
 * node, when it beats again, announces its joins again. A hash is taken
 * off the set when its scan ends, the node off herald:nodes when the set
 * is empty. Returns 1 when work is left (call again soon), else 0. Names
 * keys it was not given, like cleanup_lua.
 */
static const char sweep_lua[] =
	"local budget, count, more = tonumber(ARGV[1]), ARGV[2], 0\n"
	"local function sweep_hash(node, k, cur, p)\n"
	"  local pres = string.sub(k, 1, 3) == '{t:' and string.sub(k, -10) == '}:presence'\n"
	"  local pat = string.gsub(p, '[%*%?%[%]\\\\]', '\\\\%0') .. '*'\n"
	"  local r = redis.call('HSCAN', k, redis.call('HGET', cur, k) or '0', 'MATCH', pat,\n"
	"                       'COUNT', count)\n"
	"  local fv = r[2]\n"
	"  budget = budget - tonumber(count) - #fv / 2\n"
	"  for i = 1, #fv, 2 do\n"
	"    redis.call('HDEL', k, fv[i])\n"
	"    if pres then\n"
	"      local ok, o = pcall(cjson.decode, fv[i + 1])\n"
	"      if ok and type(o) == 'table' and o.join_leave == true and type(o.id) == 'string'\n"
	"         and type(o.user) == 'string' then\n"
	"        redis.call('PUBLISH', ARGV[3], node .. '\\n' .. string.sub(k, 4, -11) ..\n"
	"                   '\\nleave\\n' .. o.id .. '\\n' .. o.user .. '\\n' .. fv[i + 1])\n"
	"        redis.call('SET', 'herald:swept:' .. node, '1', 'PX', ARGV[4])\n"
	"      end\n"
	"    end\n"
	"  end\n"
	"  if r[1] == '0' then\n"
	"    redis.call('HDEL', cur, k)\n"
	"    return true\n"
	"  end\n"
	"  redis.call('HSET', cur, k, r[1])\n"
	"  return false\n"
	"end\n"
	"for _, node in ipairs(redis.call('HKEYS', 'herald:nodes')) do\n"
	"  if budget <= 0 then more = 1; break end\n"
	"  if redis.call('EXISTS', 'herald:node:' .. node) == 0 then\n"
	"    local set, cur, p = 'herald:nodekeys:' .. node, 'herald:sweepcur:' .. node, node .. '\\n'\n"
	"    local sc, done = '0', true\n"
	"    repeat\n"
	"      local r = redis.call('SSCAN', set, sc, 'COUNT', count)\n"
	"      sc = r[2] and r[1] or '0'\n"
	"      budget = budget - tonumber(count)\n"
	"      for _, k in ipairs(r[2] or {}) do\n"
	"        if budget <= 0 then done = false; break end\n"
	"        if sweep_hash(node, k, cur, p) then redis.call('SREM', set, k) else done = false end\n"
	"      end\n"
	"    until sc == '0' or budget <= 0\n"
	"    if done and sc == '0' then\n"
	"      redis.call('DEL', set, cur)\n"
	"      redis.call('HDEL', 'herald:nodes', node)\n"
	"    else\n"
	"      more = 1\n"
	"    end\n"
	"  end\n"
	"end\n"
	"return more\n";

struct sweep_call {
	struct hd_redis_presence *p;
	unsigned shard;
};

static void on_sweep_timer(uv_timer_t *t);

static void sweep_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	struct sweep_call *sc = priv;
	struct hd_redis_presence *p = sc->p;
	unsigned shard = sc->shard;
	free(sc);
	p->sweeping[shard] = false;
	if (!rep || p->stopped || hd_redis_reply_err(rep))
		return;
	if (rep->type == REDIS_REPLY_INTEGER && rep->integer == 1) /* more left: again soon */
		uv_timer_start(&p->sweep_timer, on_sweep_timer, RETRY_MS, SWEEP_MS);
}

static void on_sweep_timer(uv_timer_t *t)
{
	struct hd_redis_presence *p = t->data;
	for (unsigned s = 0; s < p->r->nshards; s++) {
		struct hd_rconn *c = p->r->shards[s].cmd;
		if (p->sweeping[s] || !c || !hd_rconn_ready(c))
			continue;
		struct sweep_call *sc = hd_malloc(sizeof(*sc));
		*sc = (struct sweep_call){p, s};
		const char *argv[] = {"EVAL", sweep_lua, "0", SWEEP_WORK, SWEEP_COUNT, NOTICE_CHANNEL,
				      SWEPT_TTL};
		size_t lens[] = {4, sizeof(sweep_lua) - 1, 1, strlen(SWEEP_WORK), strlen(SWEEP_COUNT),
				 sizeof(NOTICE_CHANNEL) - 1, strlen(SWEPT_TTL)};
		if (hd_rconn_command(c, sweep_reply, sc, 7, argv, lens) == 0)
			p->sweeping[s] = true;
		else
			free(sc);
	}
}

/* Removes the fields a previous run of this node left in the hashes it
 * listed, then the list. */
static const char cleanup_lua[] =
	"local p = ARGV[1]\n"
	"for _, k in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
	"  for _, f in ipairs(redis.call('HKEYS', k)) do\n"
	"    if string.sub(f, 1, #p) == p then redis.call('HDEL', k, f) end\n"
	"  end\n"
	"end\n"
	"redis.call('DEL', KEYS[1])\n"
	"return 0\n";

void hd_redis_presence_cmd_up(struct hd_redis_presence *p, unsigned shard)
{
	if (!p || p->stopped)
		return;
	struct hd_rconn *c = p->r->shards[shard].cmd;
	if (!p->up_once[shard]) {
		/* Sent from on_up: ahead of the writes queued meanwhile. */
		char set[KEY_MAX], prefix[300];
		snprintf(set, sizeof(set), "herald:nodekeys:%s", p->node);
		snprintf(prefix, sizeof(prefix), "%s\n", p->node);
		const char *argv[] = {"EVAL", cleanup_lua, "1", set, prefix};
		size_t lens[] = {4, sizeof(cleanup_lua) - 1, 1, strlen(set), strlen(prefix)};
		fire_and_forget(p, c, 5, argv, lens);
		p->up_once[shard] = true;
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

static bool node_alive(const struct qstate *st, const redisReply *rep, const char *node,
		       size_t len)
{
	if (len == strlen(st->p->node) && !memcmp(node, st->p->node, len))
		return true;
	for (size_t i = 0; i < st->nnodes; i++)
		if (st->nlens[i] == len && !memcmp(st->nodes[i], node, len))
			return rep->element[i]->type != REDIS_REPLY_NIL;
	return true; /* past NODES_MAX: not checked */
}

static void beats_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	struct qstate *st = priv;
	struct hd_reg_query *q = st->q;
	int err = hd_redis_reply_err(rep);
	if (!err && (rep->type != REDIS_REPLY_ARRAY || rep->elements != st->nnodes))
		err = HD_EINTERNAL;
	if (err || st->p->stopped) {
		query_end(st, err ? err : HD_EUNAVAIL);
		return;
	}
	const char **dead = hd_malloc((q->n + 2) * sizeof(*dead));
	size_t *dlens = hd_malloc((q->n + 2) * sizeof(*dlens));
	size_t ndead = 0, kept = 0;
	for (size_t i = 0; i < q->n; i++) {
		const char *nl = strchr(st->fields[i], '\n');
		size_t len = nl ? (size_t)(nl - st->fields[i]) : strlen(st->fields[i]);
		if (node_alive(st, rep, st->fields[i], len)) {
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
	/* The heartbeat keys of the nodes named. */
	const char *argv[NODES_MAX + 1];
	size_t lens[NODES_MAX + 1];
	char *keys[NODES_MAX];
	argv[0] = "MGET";
	lens[0] = 4;
	for (size_t k = 0; k < st->nnodes; k++) {
		size_t len = st->nlens[k];
		keys[k] = hd_malloc(len + 13);
		memcpy(keys[k], "herald:node:", 12);
		memcpy(keys[k] + 12, st->nodes[k], len);
		keys[k][12 + len] = '\0';
		argv[k + 1] = keys[k];
		lens[k + 1] = 12 + len;
	}
	int rc = hd_rconn_command(st->p->r->shards[0].cmd, beats_reply, st, (int)st->nnodes + 1,
				  argv, lens);
	for (size_t k = 0; k < st->nnodes; k++)
		free(keys[k]);
	if (rc)
		query_end(st, rc);
}

/* KEYS[1] herald:online. The distinct users of live nodes (a heartbeat
 * key herald:node:NODE), deleting the fields of the others. Names keys it
 * was not given, like cleanup_lua. */
static const char online_lua[] =
	"local alive, seen, n = {}, {}, 0\n"
	"for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do\n"
	"  local i = string.find(f, '\\n', 1, true)\n"
	"  if i then\n"
	"    local node = string.sub(f, 1, i - 1)\n"
	"    local a = alive[node]\n"
	"    if a == nil then\n"
	"      a = redis.call('EXISTS', 'herald:node:' .. node) == 1\n"
	"      alive[node] = a\n"
	"    end\n"
	"    local u = string.sub(f, i + 1)\n"
	"    if not a then redis.call('HDEL', KEYS[1], f)\n"
	"    elseif not seen[u] then seen[u] = true; n = n + 1 end\n"
	"  end\n"
	"end\n"
	"return n\n";

static void online_reply(struct hd_rconn *c, redisReply *rep, void *priv)
{
	struct hd_reg_query *q = priv;
	int err = hd_redis_reply_err(rep);
	if (!err && rep->type != REDIS_REPLY_INTEGER)
		err = HD_EINTERNAL;
	q->err = err;
	if (!err)
		q->count = (uint64_t)rep->integer;
	q->done(q);
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
		const char *argv[] = {"EVAL", online_lua, "1", "herald:online"};
		size_t lens[] = {4, sizeof(online_lua) - 1, 1, 13};
		return hd_rconn_command(r->shards[0].cmd, online_reply, q, 4, argv, lens);
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

/* ---- life cycle --------------------------------------------------------- */

struct hd_redis_presence *hd_redis_presence_new(struct redis *r, const char *node)
{
	struct hd_redis_presence *p = hd_calloc(1, sizeof(*p));
	p->r = r;
	snprintf(p->node, sizeof(p->node), "%s", node && node[0] ? node : "herald");
	snprintf(p->token, sizeof(p->token), "%ld-%lld", (long)getpid(), (long long)hd_now_ms());
	hd_map_init_borrowed(&p->pending, PENDING_MAX);
	hd_map_init(&p->listed, LISTED_MAX);
	p->tail = &p->head;
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
	uv_close((uv_handle_t *)&p->flush_timer, on_close);
	uv_close((uv_handle_t *)&p->beat_timer, on_close);
	uv_close((uv_handle_t *)&p->sweep_timer, on_close);
}
