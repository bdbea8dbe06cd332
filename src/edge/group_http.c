/*
 * group_http — see group_http.h.
 */
#include "edge/group_http.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/map.h"
#include "groups/group_waiters.h"
#include "groups/group_patterns.h"
#include "groups/groups.h"
#include "http/query.h"

#include <http_parser.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Decodes the {group} segment and hands the action (row->op) to groups. */
static void route_group(struct hd_http_request *req, const struct hd_route_ctx *ctx)
{
	char name[HD_GROUP_NAME_MAX + 1];
	struct hd_access_cred ac;
	struct hd_group_cred cred;

	if (hd_query_url_decode(ctx->param, ctx->param_len, name, sizeof(name), false) <= 0) {
		hd_http_respond_error(req, HD_EINVAL, "group name must be 1-128 bytes of [A-Za-z0-9._~-]");
		return;
	}
	hd_access_cred_of(ctx->who, &ac);
	cred = (struct hd_group_cred){.expires_ms = ac.expires_ms, .key = ac.key};
	memcpy(cred.key_name, ac.name, sizeof(cred.key_name));
	memcpy(cred.key_hash, ac.hash, sizeof(cred.key_hash));
	hd_groups_handle(ctx->row->arg, req, (enum hd_group_action)ctx->row->op, ctx->topic, name, &cred);
}

/* Room for every group's topic and name as JSON (HD_GROUPS_MAX of them,
 * and HD_GROUP_PATTERNS_MAX over a pattern with their counters). */
#define GROUP_LIST_MAX                                                                             \
	((size_t)(HD_GROUPS_MAX + HD_GROUP_PATTERNS_MAX) * 2 *                                     \
	 (2 * HD_TOPIC_NAME_MAX + HD_GROUP_NAME_MAX + 160))

struct list_walk {
	struct hd_buf *b;
	size_t n;
};

static void list_one(void *arg, const char *topic, const char *name)
{
	struct list_walk *w = arg;
	hd_buf_puts(w->b, w->n++ ? ",{\"topic\":\"" : "{\"topic\":\"");
	hd_buf_json_escape(w->b, topic, strlen(topic));
	hd_buf_puts(w->b, "\",\"group\":\"");
	hd_buf_json_escape(w->b, name, strlen(name));
	hd_buf_puts(w->b, "\"}");
}

/* A pattern group's entry up to its pattern (the object left open). */
static void list_pattern_head(struct list_walk *w, const char *pattern, const char *name)
{
	hd_buf_puts(w->b, w->n++ ? ",{\"topic\":\"" : "{\"topic\":\"");
	hd_buf_json_escape(w->b, pattern, strlen(pattern));
	hd_buf_puts(w->b, "\",\"group\":\"");
	hd_buf_json_escape(w->b, name, strlen(name));
	hd_buf_puts(w->b, "\",\"pattern\":\"");
	hd_buf_json_escape(w->b, pattern, strlen(pattern));
	hd_buf_putc(w->b, '"');
}

static void list_pattern(void *arg, const struct hd_group_pattern_summary *s)
{
	struct list_walk *w = arg;
	list_pattern_head(w, s->pattern, s->name);
	hd_buf_printf(w->b,
		      ",\"topics_count\":%zu,\"pending\":%" PRIu64 ",\"lag\":%" PRIu64
		      ",\"dead_letters\":%" PRIu64 "}",
		      s->topics, s->pending, s->lag, s->dead_letters);
}

/* The local part of GET /v1/groups: the groups in this node's memory. */
static void list_local(struct hd_http_request *req, struct hd_groups *gs)
{
	struct hd_buf b;
	hd_buf_init(&b, GROUP_LIST_MAX);
	struct list_walk w = {.b = &b};
	hd_buf_puts(&b, "{\"groups\":[");
	hd_groups_each(gs, list_one, &w);
	hd_groups_each_pattern(gs, list_pattern, &w);
	hd_buf_printf(&b, "],\"count\":%zu}", w.n);
	hd_http_respond_json(req, 200, &b);
	hd_buf_fini(&b);
}

/* GET /v1/groups through the engine's rows (several nodes on Redis): every
 * node's groups, not only those this node has loaded. */
struct list_req {
	struct hd_http_request *req;
	struct hd_groups *gs;
	struct hd_group_op op;
	struct list_walk w;
	/* The pattern groups this node has loaded, by "PATTERN\nNAME" (each
	 * row looks its own up: linear in rows + patterns). */
	struct hd_map loaded;
	struct hd_group_pattern_summary *sums; /* strings borrowed meanwhile */
	size_t nsums;
};

static void pattern_key(char *out, size_t cap, const char *pattern, const char *name)
{
	snprintf(out, cap, "%s\n%s", pattern, name);
}

static void keep_pattern(void *arg, const struct hd_group_pattern_summary *s)
{
	struct list_req *lr = arg;
	char key[HD_TOPIC_NAME_MAX + HD_GROUP_NAME_MAX + 2];
	if (lr->nsums >= HD_GROUP_PATTERNS_MAX)
		return;
	pattern_key(key, sizeof(key), s->pattern, s->name);
	lr->sums[lr->nsums] = *s;
	if (hd_map_put(&lr->loaded, key, &lr->sums[lr->nsums]) == 0)
		lr->nsums++;
}

static int row_cmp(const void *a, const void *b)
{
	const struct hd_group_row *x = a, *y = b;
	int c = strcmp(x->topic, y->topic);
	return c ? c : strcmp(x->name, y->name);
}

static void list_done(struct hd_group_op *op)
{
	struct list_req *lr = op->arg;
	if (op->err) {
		hd_http_respond_error(lr->req, op->err, NULL);
		goto out;
	}
	struct hd_buf b;
	hd_buf_init(&b, GROUP_LIST_MAX);
	lr->w.b = &b;
	hd_buf_puts(&b, "{\"groups\":[");
	qsort(op->rows, op->n, sizeof(*op->rows), row_cmp);
	lr->sums = hd_calloc(HD_GROUP_PATTERNS_MAX, sizeof(*lr->sums));
	hd_map_init(&lr->loaded, HD_GROUP_PATTERNS_MAX);
	hd_groups_each_pattern(lr->gs, keep_pattern, lr);
	for (size_t i = 0; i < op->n; i++) {
		const struct hd_group_row *row = &op->rows[i];
		if (lr->w.n >= (size_t)HD_GROUPS_MAX + HD_GROUP_PATTERNS_MAX)
			break; /* GROUP_LIST_MAX's room */
		if (strchr(row->name, '*'))
			continue; /* a pattern group's part (group_patterns.h) */
		if (!strchr(row->topic, '*')) {
			list_one(&lr->w, row->topic, row->name);
			continue;
		}
		/* A group over a pattern: its counters where this node has it
		 * loaded; otherwise its name and pattern only. */
		char key[HD_TOPIC_NAME_MAX + HD_GROUP_NAME_MAX + 2];
		pattern_key(key, sizeof(key), row->topic, row->name);
		const struct hd_group_pattern_summary *s = hd_map_get(&lr->loaded, key);
		if (s) {
			list_pattern(&lr->w, s);
			continue;
		}
		list_pattern_head(&lr->w, row->topic, row->name);
		hd_buf_putc(&b, '}');
	}
	hd_map_fini(&lr->loaded);
	free(lr->sums);
	hd_buf_printf(&b, "],\"count\":%zu}", lr->w.n);
	hd_http_respond_json(lr->req, 200, &b);
	hd_buf_fini(&b);
out:
	hd_engine_group_op_fini(op);
	free(lr);
}

/* GET /v1/groups: every pull group, {"groups":[{topic, group}], "count"};
 * a group over a topic pattern also has pattern (its topic),
 * topics_count and pending, lag and dead_letters summed over its topics.
 * With the leases shared (several nodes on Redis), the groups are read
 * from the engine (sorted by topic and name), so that every node's are
 * listed; a pattern group this node has not loaded has no counters. */
static void route_list(struct hd_http_request *req, const struct hd_route_ctx *ctx)
{
	struct hd_groups *gs = ctx->row->arg;
	struct hd_hub *hub = hd_groups_hub(gs);
	if (!hd_hub_glease_shared(hub)) {
		list_local(req, gs);
		return;
	}
	struct list_req *lr = hd_calloc(1, sizeof(*lr));
	lr->req = req;
	lr->gs = gs;
	lr->op.kind = HD_GROUP_LIST;
	lr->op.limit = HD_GROUPS_MAX + HD_GROUP_PATTERNS_MAX + HD_GROUP_PARTS_MAX;
	lr->op.done = list_done;
	lr->op.arg = lr;
	int rc = hd_hub_group_op(hub, &lr->op);
	if (rc) {
		hd_http_respond_error(req, rc, NULL);
		free(lr);
	}
}

void hd_group_http_routes(struct hd_groups *groups, struct hd_route_table *t)
{
	const char *one = "/v1/topics/{pattern}/groups/{group}";
	const enum hd_route_guard g = HD_ROUTE_READ;
	const hd_route_fn fn = route_group;
	const struct hd_route rows[] = {
		{HTTP_GET, "/v1/groups", HD_ROUTE_KEY, HD_KEY_ADMIN, route_list, groups, 0, 0},
		{HTTP_GET, one, g, 0, fn, groups, HD_GROUP_ACT_INFO, 0},
		{HTTP_PUT, one, g, 0, fn, groups, HD_GROUP_ACT_CREATE, 0},
		{HTTP_DELETE, one, g, 0, fn, groups, HD_GROUP_ACT_DELETE, 0},
		{HTTP_POST, "/v1/topics/{pattern}/groups/{group}/fetch", g, 0, fn, groups, HD_GROUP_ACT_FETCH, 0},
		{HTTP_POST, "/v1/topics/{pattern}/groups/{group}/ack", g, 0, fn, groups, HD_GROUP_ACT_ACK, 0},
		{HTTP_POST, "/v1/topics/{pattern}/groups/{group}/nack", g, 0, fn, groups, HD_GROUP_ACT_NACK, 0},
	};
	hd_route_add_all(t, rows, sizeof(rows) / sizeof(rows[0]));
}

/* hd_access_recheck on the plain copy a held fetch keeps. */
static int recheck(void *arg, struct hd_group_cred *c, const char *topic, int64_t now_ms)
{
	struct hd_access_cred ac = {.expires_ms = c->expires_ms, .key = c->key};
	memcpy(ac.name, c->key_name, sizeof(ac.name));
	memcpy(ac.hash, c->key_hash, sizeof(ac.hash));
	int rc = hd_access_recheck(arg, &ac, topic, now_ms);
	if (rc == 0)
		c->expires_ms = ac.expires_ms;
	return rc;
}

void hd_group_http_recheck(struct hd_groups *groups, const struct hd_access *access)
{
	const struct hd_group_recheck rc = {recheck, (void *)access};
	hd_groups_recheck(groups, &rc);
}
