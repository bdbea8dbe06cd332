/*
 * group_patterns_shared — pattern groups whose leases the engine keeps
 * (hd_hub_glease_shared: several nodes on Redis, engine.h's glease op).
 * Layer: groups; loop thread. group_patterns.c calls the
 * hd_group_patterns_shared_* functions (group_patterns_impl.h) when
 * g->conf.shared; they call back into it for the parts, the rows, the walk
 * of a fetch and the answers.
 *
 * A part keeps no lease window here: each part is the engine's group (its
 * topic, the part rows' name), exactly like a plain group's
 * (groups/groups.c "Shared leases"), and the parent (pattern, name) is the
 * engine's group that holds the config and says whether the group exists.
 * A fetch first asks the engine for the parent (INFO: the config, and
 * whether another node deleted the group; not again within PARENT_FRESH_MS
 * of the last answer), then walks the parts with the engine's FETCH and
 * reads what it handed out; an ack or nack is one engine ACK or NACK per
 * topic named (a topic this node has not discovered yet included); a GET
 * is an INFO of the parent and of every part; a PUT a SET of each, a
 * DELETE a DROP of each (batch_all). A group this node does not know
 * (created on another node) is looked up with the parent's INFO first
 * (a probe).
 *
 * A struct batch is a set of glease ops that run together; its finish runs
 * once every op answered, and holds the group until then.
 */
#include "groups/group_patterns_impl.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "hub/topic_name.h"
#include "hub/topic_pattern.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A fetch reads the parent again (config, existence) when this node last
 * heard of it longer ago. */
#define PARENT_FRESH_MS 1000

/* One glease op of a batch: of a part's topic, or of the parent (pattern). */
struct pop {
	struct hd_glease_op op;
	struct batch *b;
	bool parent;
	char topic[HD_TOPIC_NAME_MAX + 1];
	uint64_t *offsets;             /* ACK, NACK: owned, n of cap */
	size_t n, cap;
};

/* Glease ops that run together; finish runs once every one answered. */
struct batch {
	struct pgroup *g;              /* held */
	struct hd_http_request *req;   /* answered by finish (may be NULL) */
	void (*finish)(struct batch *b);
	struct pop **ops;
	size_t nops;
	int err;                       /* the last op's error */
	bool missing;                  /* the parent's INFO found no group */
	int left;
	/* ACK, NACK: */
	bool nack;
	size_t changed, nign;
	struct hd_buf ign;             /* the "ignored" (topic, offset) objects */
	/* a probe: the request to dispatch once the group is known */
	enum hd_group_action act;
	struct hd_group_cred cred;
	char name[HD_GROUP_NAME_MAX + 1];
	/* a fetch waiting for the parent */
	struct fetch *f;
};

static struct batch *batch_new(struct pgroup *g, struct hd_http_request *req,
			       void (*finish)(struct batch *b))
{
	struct batch *b = hd_calloc(1, sizeof(*b));
	b->g = g;
	b->req = req;
	b->finish = finish;
	g->refs++;
	return b;
}

/* Adds an op of kind on topic's part (NULL: the parent); the caller fills
 * the kind's arguments before batch_run. */
static struct pop *batch_add(struct batch *b, enum hd_glease_kind kind, const char *topic)
{
	struct pgroup *g = b->g;
	struct pop *o = hd_calloc(1, sizeof(*o));
	o->b = b;
	o->parent = topic == NULL;
	snprintf(o->topic, sizeof(o->topic), "%s", topic ? topic : g->pt.pattern);
	o->op = (struct hd_glease_op){
		.kind = kind,
		.topic = o->topic,
		.group = o->parent ? g->name : g->key,
		.ack_wait_ms = g->conf.ack_wait_ms,
		.max_deliveries = g->conf.max_deliveries,
		.ordered = g->conf.ordered,
		.keep_position = true,
	};
	b->ops = hd_realloc(b->ops, (b->nops + 1) * sizeof(*b->ops));
	b->ops[b->nops++] = o;
	return o;
}

static void ignore(struct batch *b, const char *topic, uint64_t offset)
{
	hd_buf_puts(&b->ign, b->nign++ ? ",{\"topic\":\"" : "{\"topic\":\"");
	hd_buf_json_escape(&b->ign, topic, strlen(topic));
	hd_buf_printf(&b->ign, "\",\"offset\":%" PRIu64 "}", offset);
}

/* The parent's config into the group's. */
static void conf_take(struct pgroup *g, const struct hd_glease_op *op)
{
	g->conf.ack_wait_ms = op->st_ack_wait_ms;
	g->conf.max_deliveries = op->st_max_deliveries;
	g->conf.ordered = op->st_ordered;
	if (op->st_created_ms > 0)
		g->conf.created_ms = op->st_created_ms;
}

static void batch_end(struct batch *b)
{
	if (--b->left > 0)
		return;
	struct pgroup *g = b->g;
	if (b->finish)
		b->finish(b);
	else if (b->err && hd_log_ratelimited(&g->conf.warn_ms))
		hd_log_warn("group_lease_write_failed pattern=%s group=%s err=%d", g->pt.pattern,
			    g->name, b->err);
	for (size_t i = 0; i < b->nops; i++) {
		free(b->ops[i]->offsets);
		free(b->ops[i]);
	}
	free(b->ops);
	hd_buf_fini(&b->ign);
	g->refs--;
	hd_group_patterns_group_release(g);
	free(b);
}

static void pop_done(struct hd_glease_op *op)
{
	struct pop *o = op->arg;
	struct batch *b = o->b;
	struct pgroup *g = b->g;
	bool acks = op->kind == HD_GLEASE_ACK || op->kind == HD_GLEASE_NACK;

	if (op->err) {
		b->err = op->err;
	} else if (o->parent) {
		if (op->kind == HD_GLEASE_INFO && !op->exists) {
			b->missing = true;
		} else if (op->kind == HD_GLEASE_INFO || op->kind == HD_GLEASE_SET) {
			conf_take(g, op);
			g->parent_ms = hd_now_ms();
		}
	} else {
		struct part *p = g->deleted ? NULL : hd_group_patterns_part_get(g, o->topic);
		if (p && (op->exists || op->kind == HD_GLEASE_SET))
			hd_group_part_mirror(&p->base, op);
		if (acks && op->exists) {
			b->changed += op->changed;
			for (size_t i = 0; i < op->nignored; i++)
				ignore(b, o->topic, op->ignored[i]);
		} else if (acks) {
			for (size_t i = 0; i < o->n; i++)
				ignore(b, o->topic, o->offsets[i]);
		}
	}
	if (op->err && acks)
		for (size_t i = 0; i < o->n; i++)
			ignore(b, o->topic, o->offsets[i]);
	hd_engine_glease_op_fini(op);
	batch_end(b);
}

/* Submits every op; finish runs once all answered (maybe before this
 * returns). */
static void batch_run(struct batch *b)
{
	b->left = (int)b->nops + 1;
	for (size_t i = 0; i < b->nops; i++) {
		struct pop *o = b->ops[i];
		o->op.offsets = o->offsets;
		o->op.noffsets = o->n;
		o->op.done = pop_done;
		o->op.arg = o;
		int rc = hd_hub_glease_op(b->g->pg->hub, &o->op);
		if (rc) {
			o->op.err = rc;
			pop_done(&o->op);
		}
	}
	batch_end(b);
}

/* Returns a batch (not run yet) of one op of kind on the parent, then the
 * same op on every part this node knows: a PUT's SETs, a DELETE's DROPs, a
 * GET's INFOs. */
static struct batch *batch_all(struct pgroup *g, struct hd_http_request *req,
			       enum hd_glease_kind kind, void (*finish)(struct batch *b))
{
	struct batch *b = batch_new(g, req, finish);
	batch_add(b, kind, NULL);
	for (size_t i = 0; i < g->nparts; i++)
		batch_add(b, kind, g->parts[i]->base.topic);
	return b;
}

/* -- fetch -- */

static void fetch_parent_done(struct batch *b)
{
	struct fetch *f = b->f;
	if (b->err) {
		f->err = b->err;
	} else if (b->missing) {
		f->err = HD_ENOTFOUND; /* deleted on another node */
		hd_group_patterns_forget(b->g);
	}
	if (f->err)
		hd_group_patterns_fetch_finish(f);
	else
		hd_group_patterns_fetch_step(f);
}

/* A fetch starts with the parent's INFO (the config, and whether the group
 * still exists) unless this node heard of it within PARENT_FRESH_MS. */
void hd_group_patterns_shared_fetch_start(struct fetch *f)
{
	if (hd_now_ms() - f->g->parent_ms < PARENT_FRESH_MS) {
		hd_group_patterns_fetch_step(f);
		return;
	}
	struct batch *b = batch_new(f->g, NULL, fetch_parent_done);
	b->f = f;
	batch_add(b, HD_GLEASE_INFO, NULL);
	batch_run(b);
}

/* Whether a part's config in the engine (op's answer) differs from the
 * group's (the parent's). */
static bool part_conf_stale(const struct pgroup *g, const struct hd_glease_op *op)
{
	return op->st_ack_wait_ms != g->conf.ack_wait_ms ||
	       op->st_max_deliveries != g->conf.max_deliveries || op->st_ordered != g->conf.ordered;
}

/* Writes the group's config to part p in the engine (its position kept). */
static void shared_part_conf(struct pgroup *g, struct part *p)
{
	struct batch *b = batch_new(g, NULL, NULL);
	batch_add(b, HD_GLEASE_SET, p->base.topic);
	batch_run(b);
}

static void shared_fetch_done(struct hd_glease_op *op)
{
	struct fetch *f = op->arg;
	struct part *p = f->p;
	bool outer = f->sync;

	if (op->err)
		f->err = op->err;
	else
		hd_group_part_mirror(&p->base, op);
	if (op->err == 0 && !p->base.gone && part_conf_stale(f->g, op))
		shared_part_conf(f->g, p); /* made or changed before the group's last PUT */
	if (op->err == 0 && op->ngrants > 0 && !p->base.gone) {
		hd_group_part_shared_read(&p->base, &f->rd, op);
		hd_engine_glease_op_fini(op);
		f->rd.r.done = hd_group_patterns_read_done;
		f->rd.r.arg = f;
		f->sync = true;
		int rc = hd_hub_read(f->g->pg->hub, &f->rd.r);
		if (rc) {
			f->rd.r.err = rc;
			hd_group_patterns_read_done(&f->rd.r); /* gives the grants back */
		}
		f->sync = outer;
	} else {
		/* A deleted topic's grants end with their leases. */
		hd_engine_glease_op_fini(op);
		f->p = NULL;
		hd_group_patterns_part_unref(p);
		f->reading = false;
	}
	if (!outer && !f->reading)
		hd_group_patterns_fetch_step(f);
}

/* The engine's FETCH of part p for f; then the read of what it handed out. */
void hd_group_patterns_shared_part_fetch(struct fetch *f, struct part *p)
{
	struct pgroup *g = f->g;
	size_t want = f->w->max - f->sent;
	f->p = p;
	p->refs++;
	f->reading = true;
	f->op = (struct hd_glease_op){
		.kind = HD_GLEASE_FETCH,
		.topic = p->base.topic,
		.group = g->key,
		.max = (uint32_t)(want > HD_GLEASE_SPAN ? HD_GLEASE_SPAN : want),
		.window = HD_GROUP_WINDOW_MAX,
		.ack_wait_ms = g->conf.ack_wait_ms,
		.max_deliveries = g->conf.max_deliveries,
		.ordered = g->conf.ordered,
		.done = shared_fetch_done,
		.arg = f,
	};
	f->sync = true;
	int rc = hd_hub_glease_op(g->pg->hub, &f->op);
	if (rc) {
		f->op.err = rc;
		shared_fetch_done(&f->op);
	}
	f->sync = false;
}

/* -- create, config, delete -- */

/* A part of a group being created: the engine's group at floor (a group of
 * that name left over from an earlier one starts again). */
void hd_group_patterns_shared_part_set(struct pgroup *g, struct part *p, uint64_t floor)
{
	struct batch *b = batch_new(g, NULL, NULL);
	struct pop *o = batch_add(b, HD_GLEASE_SET, p->base.topic);
	o->op.keep_position = false;
	o->op.floor = floor;
	batch_run(b);
}

static void parent_set_done(struct batch *b)
{
	struct pgroup *g = b->g;
	if (!b->req) {
		if (b->err && hd_log_ratelimited(&g->conf.warn_ms))
			hd_log_warn("group_lease_write_failed pattern=%s group=%s err=%d",
				    g->pt.pattern, g->name, b->err);
		return;
	}
	if (b->err) {
		hd_http_respond_error(b->req, b->err, "the group state could not be stored");
		return;
	}
	if (g->deleted) {
		hd_http_respond_error(b->req, HD_ENOTFOUND, "the group was deleted");
		return;
	}
	struct hd_buf out;
	hd_buf_init(&out, 64 * 1024);
	hd_group_patterns_group_json(&out, g);
	hd_group_patterns_put_parent(g, b->req, 201, &out);
	hd_group_patterns_wake(g);
}

/* The engine's parent: the config (keep: only the config when it exists);
 * then (req) the parent row and the 201. */
void hd_group_patterns_shared_parent_set(struct pgroup *g, bool keep, struct hd_http_request *req)
{
	struct batch *b = batch_new(g, req, parent_set_done);
	struct pop *o = batch_add(b, HD_GLEASE_SET, NULL);
	o->op.keep_position = keep;
	batch_run(b);
}

static void update_done(struct batch *b)
{
	struct pgroup *g = b->g;
	if (b->err) {
		hd_http_respond_error(b->req, b->err, "the group state could not be stored");
		return;
	}
	struct hd_buf out;
	hd_buf_init(&out, 64 * 1024);
	hd_group_patterns_group_json(&out, g);
	hd_group_patterns_put_parent(g, b->req, 200, &out);
	hd_group_patterns_wake(g);
}

/* A PUT of an existing group: the new config (in g->conf) to the parent
 * and to every part this node knows. */
void hd_group_patterns_shared_update(struct pgroup *g, struct hd_http_request *req)
{
	batch_run(batch_all(g, req, HD_GLEASE_SET, update_done));
}

static void delete_done(struct batch *b)
{
	if (b->err) {
		hd_http_respond_error(b->req, b->err, "the group state could not be stored");
		return;
	}
	hd_group_patterns_delete_rows(b->g, b->req);
}

/* A DELETE: the group leaves this node at once; the engine's DROPs (the
 * parent first: other nodes' fetches then find it gone), then the rows. */
void hd_group_patterns_shared_delete(struct pgroup *g, struct hd_http_request *req)
{
	struct batch *b = batch_all(g, req, HD_GLEASE_DROP, delete_done);
	hd_group_patterns_forget(g);
	batch_run(b);
}

/* -- GET -- */

static void info_done(struct batch *b)
{
	struct pgroup *g = b->g;
	if (b->err) {
		hd_http_respond_error(b->req, b->err, NULL);
	} else if (b->missing) {
		hd_http_respond_errorf(b->req, HD_ENOTFOUND, "no such group");
		hd_group_patterns_forget(g);
	} else {
		struct hd_buf out;
		hd_buf_init(&out, 64 * 1024);
		hd_group_patterns_group_json(&out, g);
		hd_http_respond_json(b->req, 200, &out);
	}
}

/* A GET: the engine's INFO of the parent and of every part. */
void hd_group_patterns_shared_info(struct pgroup *g, struct hd_http_request *req)
{
	batch_run(batch_all(g, req, HD_GLEASE_INFO, info_done));
}

/* -- ack, nack -- */

static void ack_done(struct batch *b)
{
	struct pgroup *g = b->g;
	if (b->err) {
		hd_http_respond_error(b->req, b->err, "the group state could not be stored");
		return;
	}
	hd_buf_printf(&b->ign, "],\"%s\":%zu}", b->nack ? "nacked" : "acked", b->changed);
	hd_http_respond_json(b->req, 200, &b->ign);
	if (b->changed)
		hd_group_patterns_wake(g);
}

/* An ack or nack of (topic, offset) pairs (checked): one engine op per
 * topic, whether or not this node has discovered it; pairs of a topic the
 * pattern does not match are ignored. */
void hd_group_patterns_shared_ack(struct hd_http_request *req, struct pgroup *g, bool nack,
				  json_t *evs, int64_t delay_ms)
{
	struct batch *b = batch_new(g, req, ack_done);
	struct hd_map by_topic;
	size_t i;
	json_t *o;

	b->nack = nack;
	hd_buf_init(&b->ign, 256 * 1024);
	hd_buf_puts(&b->ign, "{\"ignored\":[");
	hd_map_init(&by_topic, HD_GROUP_ACK_OFFSETS_MAX);
	json_array_foreach(evs, i, o)
	{
		const char *topic = json_string_value(json_object_get(o, "topic"));
		uint64_t off = (uint64_t)json_integer_value(json_object_get(o, "offset"));
		if (strlen(topic) > HD_TOPIC_NAME_MAX || !hd_topic_pattern_match(g->pt.pattern, topic)) {
			ignore(b, topic, off);
			continue;
		}
		struct pop *op = hd_map_get(&by_topic, topic);
		if (!op) {
			op = batch_add(b, nack ? HD_GLEASE_NACK : HD_GLEASE_ACK, topic);
			op->op.delay_ms = delay_ms;
			hd_map_put(&by_topic, topic, op); /* at most HD_GROUP_ACK_OFFSETS_MAX */
		}
		if (op->n == op->cap) {
			op->cap = op->cap ? op->cap * 2 : 8;
			op->offsets = hd_realloc(op->offsets, op->cap * sizeof(*op->offsets));
		}
		op->offsets[op->n++] = off;
	}
	hd_map_fini(&by_topic);
	batch_run(b);
}

/* -- a group another node created -- */

static void probe_done(struct batch *b)
{
	struct pgroup *g = b->g;
	struct hd_group_patterns *pg = g->pg;
	if (b->err) {
		hd_http_respond_error(b->req, b->err, NULL);
		hd_group_patterns_forget(g);
		return;
	}
	if (b->missing) {
		hd_group_patterns_forget(g);
		if (b->act != HD_GROUP_ACT_CREATE) {
			hd_http_respond_errorf(b->req, HD_ENOTFOUND,
					       b->act == HD_GROUP_ACT_FETCH
					     ? "no such group; a pattern group is created with PUT"
					     : "no such group");
			return;
		}
	} else {
		hd_pattern_list(&g->pt); /* its parts; a fetch waits for it */
	}
	hd_group_patterns_dispatch(pg, b->req, b->act, g->pt.pattern, b->name, &b->cred, true);
}

/* A request for a group this node does not know: asks the engine for the
 * parent; when it exists, the group joins this node (config from the
 * engine, parts from the pattern's list). */
void hd_group_patterns_shared_probe(struct hd_group_patterns *pg, struct hd_http_request *req,
				    enum hd_group_action act, const char *pattern, const char *name,
				    const struct hd_group_cred *cred)
{
	struct pgroup *g = hd_group_patterns_group_new(pg, pattern, name);
	if (!g) {
		hd_http_respond_errorf(req, HD_ELIMIT, "at most %d pattern groups", HD_GROUP_PATTERNS_MAX);
		return;
	}
	struct batch *b = batch_new(g, req, probe_done);
	b->act = act;
	b->cred = *cred;
	snprintf(b->name, sizeof(b->name), "%s", name);
	batch_add(b, HD_GLEASE_INFO, NULL);
	batch_run(b);
}
