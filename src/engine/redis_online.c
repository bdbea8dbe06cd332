/*
 * redis_online — the Redis engine's users_online count (an HD_REG_ONLINE
 * reg_query, engine.h): how many distinct users hold a connection on a
 * live node.
 * Layer: engine. Loop thread only; redis_presence.c's query hands it the
 * HD_REG_ONLINE queries (hd_redis_online_query), after flushing this
 * node's own writes.
 *
 * herald:online (shard 0) is the hash "NODE\nUSER" → "1" that
 * redis_presence.c writes. A count walks it in HSCAN pages (struct
 * ostate), checks the heartbeat of each node a page names once, counts the
 * distinct users of live nodes and deletes the fields of the others.
 */
#include "engine/redis_impl.h"
#include "core/alloc.h"
#include "core/map.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ONLINE_PAGE "1000"         /* one HSCAN's COUNT over herald:online */
#define ONLINE_USERS_MAX 1000000   /* distinct users an online count tells
				      apart (past it, each field counts) */

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
	hd_redis_presence_strv_free(o->fields, o->nf);
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
		(void)hd_redis_presence_send(p, p->r->shards[0].cmd, (int)(ndead + 2), dead, dlens);
	}
	free(dead);
	free(dlens);
	hd_redis_presence_strv_free(o->fields, o->nf);
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
			free(b); /* known, or past PRESENCE_NODES_MAX: counted as alive */
			continue;
		}
		char key[PRESENCE_KEY_MAX];
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

int hd_redis_online_query(struct hd_redis_presence *p, struct hd_reg_query *q)
{
	q->count = 0;
	struct ostate *o = hd_calloc(1, sizeof(*o));
	o->p = p;
	o->q = q;
	hd_map_init(&o->nodes, PRESENCE_NODES_MAX);
	hd_map_init(&o->users, ONLINE_USERS_MAX);
	const char *argv[] = {"HSCAN", "herald:online", "0", "COUNT", ONLINE_PAGE};
	size_t lens[] = {5, 13, 1, 5, strlen(ONLINE_PAGE)};
	int rc = hd_rconn_command(p->r->shards[0].cmd, online_reply, o, 5, argv, lens);
	if (rc) {
		hd_map_fini(&o->nodes);
		hd_map_fini(&o->users);
		free(o);
	}
	return rc;
}
