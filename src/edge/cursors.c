/* cursors — see cursors.h. */
#include "edge/cursors.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/map.h"
#include "http/query.h"

#include <http_parser.h>
#include <jansson.h>
#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KIND "cursor"
/* One cursor's answer, and a list page of HD_CURSOR_LIST_MAX of them. */
#define ANSWER_MAX (2u * 1024 * 1024)
/* A set's compare-and-set attempts before it answers 503 (each lost one
 * means another node moved the cursor meanwhile). */
#define CAS_TRIES 16

struct hd_cursors {
	struct hd_hub *hub;       /* borrowed */
	struct hd_map busy;       /* record key → struct slot (owned) */
};

/* What a set asks for. */
struct input {
	char topic[HD_TOPIC_NAME_MAX + 1];
	char epoch[HD_EPOCH_LEN + 1];   /* "" = not given */
	uint64_t offset;
	bool force;
};

/* A stored cursor, parsed. */
struct cursor {
	char topic[HD_TOPIC_NAME_MAX + 1];
	char epoch[HD_EPOCH_LEN + 1];
	char updated[40];
	uint64_t offset;
};

enum act { ACT_GET, ACT_SET, ACT_DELETE, ACT_LIST };

struct job {
	struct hd_cursors *c;
	struct hd_http_request *req;
	enum act act;
	struct input in;
	struct cursor cur;              /* GET: the stored one, SET: the one written */
	bool moved;
	struct hd_record_op rop;
	struct hd_topic_op top;
	char user[HD_USER_ID_MAX + 1];
	char name[HD_CURSOR_NAME_MAX + 1];
	char prefix[HD_USER_ID_MAX + 2];
	char after[HD_RECORD_KEY_MAX + 1];
	size_t limit;
	char *value;                    /* SET: the record written (owned) */
	char *seen;                     /* SET: the stored record it replaces (owned; NULL: none) */
	unsigned tries;                 /* SET: compare-and-set attempts lost to another node */
	struct job *next;               /* in its slot's queue */
};

/* The sets and deletes of one cursor: the head runs, the others wait. */
struct slot {
	struct job *head, **tail;
	size_t n;
};

static void job_free(struct job *j)
{
	hd_engine_record_op_fini(&j->rop);
	free(j->value);
	free(j->seen);
	free(j);
}

static void respond_msg(struct hd_http_request *req, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void respond_msg(struct hd_http_request *req, int code, const char *fmt, ...)
{
	char msg[HD_ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	hd_http_respond_error(req, code, msg);
}

/* Answers req with v (taken). */
static void respond_json(struct hd_http_request *req, int status, json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT);
	json_decref(v);
	if (!s || strlen(s) > ANSWER_MAX) {
		free(s);
		hd_http_respond_error(req, HD_EINTERNAL, "the answer would be too large");
		return;
	}
	hd_http_respond(req, status, HD_HTTP_JSON_TYPE, NULL, s, strlen(s));
	free(s);
}

static bool name_ok(const char *s, size_t n)
{
	if (n == 0 || n > HD_CURSOR_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		      ch == '.' || ch == '_' || ch == '-'))
			return false;
	}
	return true;
}

static bool epoch_ok(const char *s, size_t n)
{
	if (n > HD_EPOCH_LEN)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= '0' && s[i] <= '9')))
			return false;
	return true;
}

/* Parses a stored value; false when it is not one this module wrote. */
static bool cursor_parse(const char *value, struct cursor *out)
{
	json_t *v = json_loads(value, 0, NULL);
	json_t *topic = json_object_get(v, "topic"), *epoch = json_object_get(v, "epoch");
	json_t *off = json_object_get(v, "offset"), *upd = json_object_get(v, "updated");
	bool ok = json_is_string(topic) && json_is_string(epoch) && json_is_integer(off) &&
		  json_integer_value(off) >= 0 && json_is_string(upd) &&
		  json_string_length(topic) <= HD_TOPIC_NAME_MAX &&
		  json_string_length(epoch) <= HD_EPOCH_LEN && json_string_length(upd) < sizeof(out->updated);
	if (ok) {
		snprintf(out->topic, sizeof(out->topic), "%s", json_string_value(topic));
		snprintf(out->epoch, sizeof(out->epoch), "%s", json_string_value(epoch));
		snprintf(out->updated, sizeof(out->updated), "%s", json_string_value(upd));
		out->offset = (uint64_t)json_integer_value(off);
	}
	json_decref(v);
	return ok;
}

/* The answer's form of a cursor (returns owned). */
static json_t *cursor_json(const char *user, const char *name, const struct cursor *cur)
{
	return json_pack("{s:s, s:s, s:s, s:I, s:s, s:s}", "user", user, "name", name, "topic", cur->topic,
			 "offset", (json_int_t)cur->offset, "epoch", cur->epoch, "updated", cur->updated);
}

/* ---- serialising sets and deletes of one cursor ------------------------ */

static void run(struct job *j);

/* Queues j behind the running set or delete of its cursor, or runs it. */
static void enqueue(struct job *j)
{
	struct hd_cursors *c = j->c;
	struct slot *s = hd_map_get(&c->busy, j->rop.rec.key);

	if (s) {
		if (s->n > HD_CURSOR_QUEUE_MAX) {
			respond_msg(j->req, HD_ELIMIT, "too many updates of cursor '%s' at once; retry",
				    j->name);
			job_free(j);
			return;
		}
		*s->tail = j;
		s->tail = &j->next;
		s->n++;
		return;
	}
	s = hd_calloc(1, sizeof(*s));
	if (hd_map_put(&c->busy, j->rop.rec.key, s)) {
		free(s);
		respond_msg(j->req, HD_ELIMIT, "too many cursors are being updated at once; retry");
		job_free(j);
		return;
	}
	s->head = j;
	s->tail = &j->next;
	s->n = 1;
	run(j);
}

/* j (the head of its slot) has answered: frees it and runs the next one. */
static void finish(struct job *j)
{
	struct hd_cursors *c = j->c;
	struct slot *s = hd_map_get(&c->busy, j->rop.rec.key);
	struct job *next = j->next;

	assert(s && s->head == j);
	if (!next)
		free(hd_map_del(&c->busy, j->rop.rec.key));
	job_free(j);
	if (!next)
		return;
	s->head = next;
	s->n--;
	if (!next->next)
		s->tail = &next->next;
	run(next);
}

/* Starts j's record op, or answers the refusal (and finishes j). */
static void start_record_op(struct job *j)
{
	int rc = hd_hub_record_op(j->c->hub, &j->rop);
	if (!rc)
		return;
	hd_http_respond_error(j->req, rc, rc == HD_EUNAVAIL ? "the store is busy or stopping; retry shortly" : NULL);
	if (j->act == ACT_SET || j->act == ACT_DELETE)
		finish(j);
	else
		job_free(j);
}

/* ---- set --------------------------------------------------------------- */

static void set_answer(struct job *j)
{
	json_t *v = cursor_json(j->user, j->name, &j->cur);
	json_object_set_new(v, "moved", json_boolean(j->moved));
	respond_json(j->req, 200, v);
}

static void run(struct job *j);

static void set_written(struct hd_record_op *op)
{
	struct job *j = op->arg;
	if (!op->err && op->conflict) {
		/* Another node wrote the cursor between our read and our write:
		 * read it again and decide again (forward only across nodes). */
		if (++j->tries < CAS_TRIES) {
			free(j->value);
			free(j->seen);
			j->value = j->seen = NULL;
			j->rop.rec.value = NULL;
			run(j);
			return;
		}
		respond_msg(j->req, HD_EUNAVAIL, "the cursor '%s' is being written by other nodes; retry", j->name);
		finish(j);
		return;
	}
	if (op->err)
		hd_http_respond_error(j->req, op->err, NULL);
	else
		set_answer(j);
	finish(j);
}

/* The stored cursor is known (or known absent): move it or not. */
static void set_looked(struct hd_record_op *op)
{
	struct job *j = op->arg;
	struct cursor old = {0};
	bool have = false;

	if (op->err && op->err != HD_ENOTFOUND) {
		hd_http_respond_error(j->req, op->err, NULL);
		finish(j);
		return;
	}
	if (!op->err && op->n == 1) {
		if (!cursor_parse(op->recs[0].value, &old)) {
			respond_msg(j->req, HD_EINTERNAL, "the stored cursor '%s' is unreadable", j->name);
			finish(j);
			return;
		}
		have = true;
		j->seen = hd_strdup(op->recs[0].value);
	}
	hd_engine_record_op_fini(op);
	bool same_stream = have && strcmp(old.topic, j->in.topic) == 0 &&
			   (!j->in.epoch[0] || strcmp(old.epoch, j->in.epoch) == 0);
	j->moved = !same_stream || j->in.force || j->in.offset > old.offset;
	if (!j->moved) {
		j->cur = old;
		set_answer(j);
		finish(j);
		return;
	}
	/* An epoch not given keeps the stored one of the same topic. */
	snprintf(j->cur.topic, sizeof(j->cur.topic), "%s", j->in.topic);
	snprintf(j->cur.epoch, sizeof(j->cur.epoch), "%s",
		 j->in.epoch[0] || !have || strcmp(old.topic, j->in.topic) != 0 ? j->in.epoch : old.epoch);
	hd_clock_format_rfc3339(hd_now_ms(), j->cur.updated, sizeof(j->cur.updated));
	j->cur.offset = j->in.offset;
	json_t *v = json_pack("{s:s, s:I, s:s, s:s}", "topic", j->cur.topic, "offset",
			      (json_int_t)j->cur.offset, "epoch", j->cur.epoch, "updated", j->cur.updated);
	j->value = json_dumps(v, JSON_COMPACT);
	json_decref(v);
	j->rop.kind = HD_RECORD_PUT;
	j->rop.rec.value = j->value;
	j->rop.expect_set = true;
	j->rop.expect = j->seen;
	j->rop.done = set_written;
	start_record_op(j);
}

/* Reads {"offset":N,"epoch":"…","topic":"…","force":bool}; false after answering. */
static bool set_parse(struct job *j, const struct hd_access *ac, const struct hd_access_id *who)
{
	struct hd_http_request *req = j->req;
	struct hd_error err = {0};
	json_error_t jerr;
	json_t *v = NULL, *off, *epoch, *topic, *force;
	const char *key;
	json_t *val;
	bool ok = false;

	if (req->body_len > HD_CURSOR_BODY_MAX) {
		respond_msg(req, HD_ETOOBIG, "the body must be at most %d bytes", HD_CURSOR_BODY_MAX);
		goto out;
	}
	v = json_loadb(req->body ? req->body : "", req->body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(v)) {
		respond_msg(req, HD_EINVAL, "the body must be a JSON object like {\"offset\":17,\"epoch\":\"…\"}");
		goto out;
	}
	json_object_foreach(v, key, val)
	{
		if (strcmp(key, "offset") && strcmp(key, "epoch") && strcmp(key, "topic") &&
		    strcmp(key, "force")) {
			respond_msg(req, HD_EINVAL, "unknown member '%.64s' (use offset, epoch, topic, force)", key);
			goto out;
		}
	}
	off = json_object_get(v, "offset");
	epoch = json_object_get(v, "epoch");
	topic = json_object_get(v, "topic");
	force = json_object_get(v, "force");
	if (!json_is_integer(off) || json_integer_value(off) < 0) {
		respond_msg(req, HD_EINVAL, "'offset' is required and must be a whole number from 0");
		goto out;
	}
	j->in.offset = (uint64_t)json_integer_value(off);
	if (epoch && !json_is_null(epoch)) {
		if (!json_is_string(epoch) || !epoch_ok(json_string_value(epoch), json_string_length(epoch))) {
			respond_msg(req, HD_EINVAL, "'epoch' must be the topic's epoch as reads report it "
				    "(at most %d letters and digits)", HD_EPOCH_LEN);
			goto out;
		}
		snprintf(j->in.epoch, sizeof(j->in.epoch), "%s", json_string_value(epoch));
	}
	if (force && !json_is_boolean(force)) {
		respond_msg(req, HD_EINVAL, "'force' must be true or false");
		goto out;
	}
	j->in.force = json_is_true(force);
	if (topic && !json_is_null(topic)) {
		if (!json_is_string(topic) || json_string_length(topic) > HD_TOPIC_NAME_MAX ||
		    hd_topic_name_check(json_string_value(topic), json_string_length(topic), &err)) {
			respond_msg(req, HD_EBADTOPIC, "'topic' is not a valid topic name%s%s",
				    err.msg[0] ? ": " : "", err.msg);
			goto out;
		}
		snprintf(j->in.topic, sizeof(j->in.topic), "%s", json_string_value(topic));
	} else {
		snprintf(j->in.topic, sizeof(j->in.topic), "user:%s", j->user);
	}
	/* A user keeps cursors only on what they may read. */
	if (who->token && !who->key && hd_access_read(ac, who, j->in.topic, &err)) {
		hd_access_deny(req, &err);
		goto out;
	}
	ok = true;
out:
	json_decref(v);
	return ok;
}

/* ---- get --------------------------------------------------------------- */

static void get_topic_done(struct hd_topic_op *op)
{
	struct job *j = op->arg;
	json_t *v = cursor_json(j->user, j->name, &j->cur);

	/* The topic's position, when it exists: lag only within one epoch. */
	if (!op->err && op->n == 1) {
		const struct hd_topic_info *t = &op->topics[0];
		json_object_set_new(v, "last", json_integer((json_int_t)t->last));
		if (!j->cur.epoch[0] || strcmp(j->cur.epoch, t->epoch) == 0)
			json_object_set_new(v, "lag", json_integer(t->last > j->cur.offset
									  ? (json_int_t)(t->last - j->cur.offset)
									  : 0));
		else
			json_object_set_new(v, "topic_epoch", json_string(t->epoch));
	}
	hd_engine_topic_op_fini(op);
	respond_json(j->req, 200, v);
	job_free(j);
}

static void get_looked(struct hd_record_op *op)
{
	struct job *j = op->arg;

	if (op->err == HD_ENOTFOUND) {
		respond_msg(j->req, HD_ENOTFOUND, "user '%s' has no cursor named '%s'", j->user, j->name);
	} else if (op->err) {
		hd_http_respond_error(j->req, op->err, NULL);
	} else if (op->n != 1 || !cursor_parse(op->recs[0].value, &j->cur)) {
		respond_msg(j->req, HD_EINTERNAL, "the stored cursor '%s' is unreadable", j->name);
	} else {
		j->top.kind = HD_TOPIC_INFO;
		j->top.topic = j->cur.topic;
		j->top.done = get_topic_done;
		j->top.arg = j;
		if (hd_hub_topic_op(j->c->hub, &j->top) == 0)
			return;
		/* No position to add: the cursor alone. */
		respond_json(j->req, 200, cursor_json(j->user, j->name, &j->cur));
	}
	job_free(j);
}

/* ---- delete and list --------------------------------------------------- */

static void deleted(struct hd_record_op *op)
{
	struct job *j = op->arg;
	if (op->err == HD_ENOTFOUND)
		respond_msg(j->req, HD_ENOTFOUND, "user '%s' has no cursor named '%s'", j->user, j->name);
	else if (op->err)
		hd_http_respond_error(j->req, op->err, NULL);
	else
		respond_json(j->req, 200, json_pack("{s:s, s:s, s:b}", "user", j->user, "name", j->name,
						    "deleted", 1));
	finish(j);
}

static void listed(struct hd_record_op *op)
{
	struct job *j = op->arg;
	size_t plen = strlen(j->prefix);

	if (op->err) {
		hd_http_respond_error(j->req, op->err, NULL);
		job_free(j);
		return;
	}
	json_t *list = json_array();
	for (size_t i = 0; i < op->n; i++) {
		struct cursor cur;
		const char *name = op->recs[i].key + plen;
		if (strncmp(op->recs[i].key, j->prefix, plen) == 0 && cursor_parse(op->recs[i].value, &cur))
			json_array_append_new(list, cursor_json(j->user, name, &cur));
	}
	json_t *next = op->n == j->limit && op->n > 0 ? json_string(op->recs[op->n - 1].key + plen)
						       : json_null();
	respond_json(j->req, 200, json_pack("{s:s, s:o, s:o}", "user", j->user, "cursors", list, "next", next));
	job_free(j);
}

/* ---- routing ------------------------------------------------------------ */

static void run(struct job *j)
{
	j->rop.expect_set = true;
	j->rop.expect = NULL;
	j->rop.done = j->act == ACT_SET ? set_looked : deleted;
	j->rop.kind = j->act == ACT_SET ? HD_RECORD_GET : HD_RECORD_DELETE;
	start_record_op(j);
}

static bool list_query(struct job *j)
{
	char v[32];
	char after[HD_CURSOR_NAME_MAX + 1] = "";
	long n = hd_query_get(j->req->query, "limit", v, sizeof(v));
	char *end = v;
	unsigned long lim = HD_CURSOR_LIST_DEFAULT;

	if (n != -1) {
		lim = n > 0 && n <= 4 && strspn(v, "0123456789") == (size_t)n ? strtoul(v, &end, 10) : 0;
		if (lim == 0 || lim > HD_CURSOR_LIST_MAX) {
			respond_msg(j->req, HD_EINVAL, "query parameter 'limit' must be from 1 to %d",
				    HD_CURSOR_LIST_MAX);
			return false;
		}
	}
	n = hd_query_get(j->req->query, "after", after, sizeof(after));
	if (n == -2 || (n >= 0 && !name_ok(after, (size_t)n))) {
		respond_msg(j->req, HD_EINVAL, "query parameter 'after' must be a cursor name");
		return false;
	}
	j->limit = lim;
	snprintf(j->prefix, sizeof(j->prefix), "%s\n", j->user);
	snprintf(j->after, sizeof(j->after), "%s%s", n > 0 ? j->prefix : "", n > 0 ? after : "");
	return true;
}

static struct job *job_new(struct hd_cursors *c, struct hd_http_request *req, const char *user)
{
	struct job *j = hd_calloc(1, sizeof(*j));

	j->c = c;
	j->req = req;
	j->rop.arg = j;
	snprintf(j->user, sizeof(j->user), "%s", user);
	snprintf(j->rop.rec.kind, sizeof(j->rop.rec.kind), KIND);
	return j;
}

/* GET /v1/users/{id}/cursors[/]: the route's guard let the caller in. */
static void route_list(struct hd_http_request *req, const struct hd_route_ctx *ctx)
{
	struct job *j = job_new(ctx->row->arg, req, ctx->user);

	if (!list_query(j)) {
		job_free(j);
		return;
	}
	j->act = ACT_LIST;
	j->rop.kind = HD_RECORD_LIST;
	j->rop.prefix = j->prefix;
	j->rop.after = j->after;
	j->rop.limit = j->limit;
	j->rop.done = listed;
	start_record_op(j);
}

/* GET, POST or DELETE /v1/users/{id}/cursors/{name}: the route's guard let
 * the caller in; a set also checks the topic of its body. */
static void route_one(struct hd_http_request *req, const struct hd_route_ctx *ctx)
{
	struct job *j = job_new(ctx->row->arg, req, ctx->user);
	long n = hd_query_url_decode(ctx->param, ctx->param_len, j->name, sizeof(j->name), false);

	if (n < 0 || !name_ok(j->name, (size_t)n)) {
		respond_msg(req, HD_EINVAL, "a cursor name must be 1-%d characters of [A-Za-z0-9._-]",
			    HD_CURSOR_NAME_MAX);
		job_free(j);
		return;
	}
	snprintf(j->rop.rec.key, sizeof(j->rop.rec.key), "%s\n%s", ctx->user, j->name);
	if (ctx->method == HTTP_GET) {
		j->act = ACT_GET;
		j->rop.kind = HD_RECORD_GET;
		j->rop.done = get_looked;
		start_record_op(j);
		return;
	}
	j->act = ctx->method == HTTP_POST ? ACT_SET : ACT_DELETE;
	if (j->act == ACT_SET && !set_parse(j, ctx->access, ctx->who)) {
		job_free(j);
		return;
	}
	enqueue(j);
}

void hd_cursors_routes(struct hd_cursors *c, struct hd_route_table *t)
{
	/* Access: the user's own client token, or an admin key. */
	const enum hd_route_guard g = HD_ROUTE_USER;
	const enum hd_key_action k = HD_KEY_ADMIN;
	const struct hd_route rows[] = {
		{HTTP_GET, "/v1/users/{user}/cursors", g, k, route_list, c, 0, 0},
		{HTTP_GET, "/v1/users/{user}/cursors/", g, k, route_list, c, 0, 0},
		{HTTP_GET, "/v1/users/{user}/cursors/{name}", g, k, route_one, c, 0, 0},
		{HTTP_POST, "/v1/users/{user}/cursors/{name}", g, k, route_one, c, 0, 0},
		{HTTP_DELETE, "/v1/users/{user}/cursors/{name}", g, k, route_one, c, 0, 0},
	};
	hd_route_add_all(t, rows, sizeof(rows) / sizeof(rows[0]));
}

struct hd_cursors *hd_cursors_new(struct hd_hub *hub)
{
	struct hd_cursors *c = hd_calloc(1, sizeof(*c));
	c->hub = hub;
	hd_map_init(&c->busy, HD_CURSORS_BUSY_MAX);
	return c;
}

static void free_slot(const char *key, void *value, void *arg)
{
	(void)key;
	(void)arg;
	free(value);
}

void hd_cursors_free(struct hd_cursors *c)
{
	if (!c)
		return;
	hd_map_each(&c->busy, free_slot, NULL);
	hd_map_fini(&c->busy);
	free(c);
}
