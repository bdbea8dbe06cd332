/*
 * redis_sweep — the sweep of the Redis engine's registry and presence: the
 * entries of nodes whose heartbeat is gone, their leave notices, the
 * herald:swept:NODE sets that tell a node which of its clients were
 * announced as left, and the clean-up of a node's own leftovers at its
 * start (the same walk). Keys are described in redis_presence.c:
 *   herald:nodes, herald:nodekeys:NODE (read and emptied here),
 *   herald:sweepcur:NODE and herald:swept:NODE (written here).
 * Layer: engine. Called by redis_presence.c (hd_redis_sweep_start from
 * hd_redis_presence_new, hd_redis_sweep_cleanup when a shard's command
 * connection first comes up); its timer runs the rounds. Loop thread only.
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
 * SWEEP_WORK fields per round, the rest on the next round, SWEEP_RETRY_MS
 * later), and step_lua publishes the leave notice of each presence entry
 * it removed that says "join_leave", in the dead node's name. Only the
 * call whose HDEL removed an entry announces it, so each leave is sent
 * once; every node, this one too, hears it on PUB/SUB and pushes it to its
 * subscribers. The clean-up at a node's start walks its own set the same
 * way, to the end, without leaves.
 */
#include "engine/redis_impl.h"
#include "core/alloc.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SWEEP_RETRY_MS 10          /* the next round, when work is left */
#define SWEEP_MS 1000              /* the sweep's period */
#define SWEEP_WORK 2000            /* fields one sweep round looks at or removes
				      (about: a scan's COUNT is a hint) */
#define SWEEP_COUNT "100"          /* one SSCAN's or HSCAN's COUNT in the sweep */
#define STEP_KEYS 20               /* hashes a sweep works on at once */
#define SWEPT_TTL "86400000"       /* herald:swept:NODE's PX: a day */

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
static int sw_eval(struct hd_rconn *c, hd_rconn_reply_fn fn, void *priv, const char *script,
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
 * spent (the next one goes on SWEEP_RETRY_MS later). The clean-up walks this
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
	char set[PRESENCE_KEY_MAX], cur[PRESENCE_KEY_MAX];
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

static void sw_finish(struct sweep *s)
{
	struct hd_redis_presence *p = s->p;
	hd_redis_presence_strv_free(s->nodes, s->nnodes);
	hd_redis_presence_strv_free(s->keys, s->nkeys);
	if (s->cleanup) {
		p->cleaning[s->shard] = false;
		if (!p->stopped)
			hd_redis_presence_arm(p, 0); /* the writes it held back */
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
static bool sw_presence_topic(const char *key, char *out, size_t cap)
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
	char topic[PRESENCE_KEY_MAX] = "";
	size_t kl = strlen(st->key);
	if (!s->cleanup)
		(void)sw_presence_topic(st->key, topic, sizeof(topic));
	const char *count = s->p->sweep_count;
	const char *args[] = {st->key, st->cursor, s->pat, count, NOTICE_CHANNEL, node, topic};
	size_t lens[] = {kl, strlen(st->cursor), strlen(s->pat), strlen(count),
			 sizeof(NOTICE_CHANNEL) - 1, strlen(node), strlen(topic)};
	if (sw_eval(sw_conn(s), sw_step_reply, st, step_lua, sizeof(step_lua) - 1, 1, 7, args,
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
	char topic[PRESENCE_KEY_MAX], swept[PRESENCE_KEY_MAX];
	if (!sw_presence_topic(key, topic, sizeof(topic)))
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
	if (k > 2 && hd_redis_presence_send(s->p, c, (int)k, argv, lens) == 0) {
		const char *xv[] = {"PEXPIRE", swept, SWEPT_TTL};
		size_t xl[] = {7, strlen(swept), strlen(SWEPT_TTL)};
		(void)hd_redis_presence_send(s->p, c, 3, xv, xl);
	}
	hd_redis_presence_strv_free(vals, n);
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
			(void)hd_redis_presence_send(p, c, end ? 3 : 4, kv, kl);
			if (end) {
				const char *hv[] = {"HDEL", s->cur, st->key};
				size_t hl[] = {4, strlen(s->cur), strlen(st->key)};
				(void)hd_redis_presence_send(p, c, 3, hv, hl);
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
		(void)hd_redis_presence_send(s->p, sw_conn(s), 2, dv, dl);
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
		(void)hd_redis_presence_send(s->p, sw_conn(s), 2, dv, dl);
		(void)hd_redis_presence_send(s->p, sw_conn(s), 2, cv, cl);
		(void)hd_redis_presence_send(s->p, sw_conn(s), 3, hv, hl);
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
	hd_redis_presence_strv_free(s->keys, s->nkeys);
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
	char beat_key[PRESENCE_KEY_MAX];
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
	char beat_key[PRESENCE_KEY_MAX];
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
	size_t n = rep->elements < PRESENCE_NODES_MAX ? rep->elements : PRESENCE_NODES_MAX;
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

void hd_redis_sweep_cleanup(struct hd_redis_presence *p, unsigned shard)
{
	struct sweep *sw = sw_new(p, shard, true);
	sw_node_names(sw, p->node);
	p->cleaning[shard] = true;
	sw_sscan(sw);
}

void hd_redis_sweep_start(struct hd_redis_presence *p)
{
	/* Test-only (no option, no doc): a slow sweep, so that tests can come
	 * back partway through it. */
	const char *env = getenv("HERALD_TEST_SWEEP_COUNT");
	snprintf(p->sweep_count, sizeof(p->sweep_count), "%ld",
		 env && atol(env) > 0 ? atol(env) : atol(SWEEP_COUNT));
	env = getenv("HERALD_TEST_SWEEP_WORK");
	p->sweep_work = env && atol(env) > 0 ? atol(env) : SWEEP_WORK;
	env = getenv("HERALD_TEST_SWEEP_RETRY_MS");
	p->sweep_retry_ms = env && atol(env) > 0 ? (uint64_t)atol(env) : SWEEP_RETRY_MS;
	uv_timer_start(&p->sweep_timer, on_sweep_timer, SWEEP_MS, SWEEP_MS);
}
