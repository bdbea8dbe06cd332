/* webhook_http — see webhook_http.h. */
#include "edge/webhook_http.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "edge/load_wait.h"
#include "http/query.h"
#include "webhook/attempts.h"
#include "webhook/signature.h"

#include <jansson.h>

#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_MAX (64u * 1024 * 1024)
#define ANSWER_MAX (1u << 20)

/* What a row does (its op). */
enum op { OP_LIST, OP_CREATE, OP_INFO, OP_DELETE, OP_ATTEMPTS, OP_PAUSE, OP_RESUME, OP_REPLAY,
	  OP_SECRET };

struct hd_webhook_http {
	struct hd_webhooks *w;
	const struct hd_access *access;
	uv_loop_t *loop;                /* borrowed */
	struct hd_load_wait *wait;      /* owned; NULL before the routes and after the stop */
	bool stopping;
};

/* ---- asynchronous answers --------------------------------------------- */

struct answer {
	struct hd_webhook_reply r;
	struct hd_http_request *req;
};

static void answer_done(struct hd_webhook_reply *r)
{
	struct answer *a = r->arg;
	if (r->err) {
		hd_buf_fini(&r->body);
		hd_http_respond_error(a->req, r->err, r->msg[0] ? r->msg : NULL);
	} else if (r->status == 204) {
		hd_buf_fini(&r->body);
		hd_http_respond(a->req, 204, NULL, NULL, "", 0);
	} else {
		hd_http_respond_json(a->req, r->status, &r->body);
	}
	free(a);
}

static struct hd_webhook_reply *answer_new(struct hd_http_request *req)
{
	struct answer *a = hd_calloc(1, sizeof(*a));
	a->req = req;
	a->r.done = answer_done;
	a->r.arg = a;
	hd_buf_init(&a->r.body, ANSWER_MAX);
	return &a->r;
}

/* ---- routes ----------------------------------------------------------- */

static bool permit(struct hd_http_request *req, int rc, const struct hd_error *err)
{
	if (rc)
		hd_access_deny(req, err);
	return rc == 0;
}

static void handle_create(struct hd_webhook_http *e, struct hd_http_request *req,
			  const struct hd_access_id *who)
{
	struct hd_error err = {0};
	struct hd_sub_config cfg;
	struct hd_sub_start start;
	char secret[HD_WHSEC_TEXT_MAX + 1];

	/* Credentials before the body: a caller without a key learns nothing. */
	if (hd_access_keys_on(e->access) && !who->key) {
		hd_error_set(&err, HD_EUNAUTH, "an API key is required (Authorization: Bearer <key>)");
		hd_access_deny(req, &err);
		return;
	}
	if (hd_sub_config_parse(req->body, req->body_len, hd_webhooks_allow_private(e->w), &cfg, &start,
			 secret, sizeof(secret), &err)) {
		hd_http_respond_error(req, err.code, err.msg);
		return;
	}
	if (!permit(req, hd_access_key(e->access, who, HD_KEY_READ, cfg.topic, &err), &err))
		return;
	hd_webhooks_create(e->w, &cfg, &start, secret, answer_new(req));
	memset(secret, 0, sizeof(secret));
}

static void handle_list(struct hd_webhook_http *e, struct hd_http_request *req,
			const struct hd_access_id *who)
{
	struct hd_error err = {0};
	char topic[HD_TOPIC_NAME_MAX + 1];
	struct hd_buf b;
	long n = hd_query_get(req->query, "topic", topic, sizeof(topic));
	if (n == -2 || n == 0) {
		hd_http_respond_errorf(req, HD_EINVAL, "query parameter 'topic' must be a topic name");
		return;
	}
	if (n > 0 ? !permit(req, hd_access_key(e->access, who, HD_KEY_READ, topic, &err), &err)
		  : !permit(req, hd_access_key(e->access, who, HD_KEY_ADMIN, NULL, &err), &err))
		return;
	hd_buf_init(&b, LIST_MAX);
	hd_webhooks_list(e->w, n > 0 ? topic : NULL, &b);
	hd_http_respond_json(req, 200, &b);
}

static int query_limit(const struct hd_http_request *req, size_t *out)
{
	char v[16], *end;
	long n = hd_query_get(req->query, "limit", v, sizeof(v));
	*out = HD_WEBHOOK_HTTP_ATTEMPTS_DEFAULT;
	if (n == -1)
		return 0;
	long x = n > 0 ? strtol(v, &end, 10) : -1;
	if (n <= 0 || *end || x < 1 || x > HD_ATTEMPTS_MAX)
		return -1;
	*out = (size_t)x;
	return 0;
}

static void handle_replay(struct hd_webhook_http *e, struct hd_http_request *req, const char *id)
{
	char from[64], *end, topic[HD_TOPIC_NAME_MAX + 1];
	long n = hd_query_get(req->query, "from", from, sizeof(from));
	long tn = hd_query_get(req->query, "topic", topic, sizeof(topic));
	const char *tp = tn > 0 ? topic : NULL;
	int64_t ms;
	if (tn == 0 || tn < -1) {
		hd_http_respond_errorf(req, HD_EINVAL, "query parameter 'topic' must be a topic name");
		return;
	}
	if (n <= 0) {
		hd_http_respond_errorf(req, HD_EINVAL,
				       "query parameter 'from' is required: an offset (from=N, N >= 1) "
				       "or an RFC 3339 time");
		return;
	}
	if (from[0] >= '0' && from[0] <= '9' && strspn(from, "0123456789") == (size_t)n) {
		unsigned long long off = strtoull(from, &end, 10);
		if (off < 1 || n > 19) {
			hd_http_respond_errorf(req, HD_EINVAL,
					       "query parameter 'from' must be an offset >= 1");
			return;
		}
		hd_webhooks_replay(e->w, id, tp, false, off, 0, answer_new(req));
		return;
	}
	if (hd_clock_parse_rfc3339(from, (size_t)n, &ms)) {
		hd_http_respond_errorf(req, HD_EINVAL,
				       "query parameter 'from' must be an offset (N >= 1) or an RFC "
				       "3339 time");
		return;
	}
	hd_webhooks_replay(e->w, id, tp, true, 0, ms, answer_new(req));
}

static void handle_secret(struct hd_webhook_http *e, struct hd_http_request *req, const char *id)
{
	char secret[HD_WHSEC_TEXT_MAX + 1] = "";
	if (req->body_len) {
		json_error_t jerr;
		json_t *o = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
		json_t *s = json_object_get(o, "secret");
		bool ok = json_is_object(o) && json_object_size(o) <= 1 &&
			  (json_object_size(o) == 0 || s) &&
			  (!s || (json_is_string(s) && json_string_length(s) < sizeof(secret)));
		if (ok && s)
			memcpy(secret, json_string_value(s), json_string_length(s) + 1);
		json_decref(o);
		if (!ok) {
			hd_http_respond_errorf(req, HD_EINVAL,
					       "the body must be empty or {\"secret\": \"whsec_...\"}");
			return;
		}
	}
	hd_webhooks_rotate(e->w, id, secret, answer_new(req));
	memset(secret, 0, sizeof(secret));
}

/* The routes of one subscription: its id, raw from the path. */
static void handle_one(struct hd_webhook_http *e, struct hd_http_request *req, enum op op,
		       const char *raw, size_t len, const struct hd_access_id *who)
{
	struct hd_error err = {0};
	char id[HD_SUB_ID_LEN + 2];
	struct hd_buf b;
	int rc;

	if (len == 0 || len > HD_SUB_ID_LEN) {
		hd_http_respond_errorf(req, HD_ENOTFOUND, "no such subscription");
		return;
	}
	memcpy(id, raw, len);
	id[len] = '\0';
	if (hd_access_keys_on(e->access) && !who->key) {
		hd_error_set(&err, HD_EUNAUTH, "an API key is required (Authorization: Bearer <key>)");
		hd_access_deny(req, &err);
		return;
	}
	const char *topic = hd_webhooks_topic(e->w, id);
	if (!topic) {
		hd_http_respond_errorf(req, HD_ENOTFOUND, "no such subscription");
		return;
	}
	if (!permit(req, hd_access_key(e->access, who, HD_KEY_READ, topic, &err), &err))
		return;
	switch (op) {
	case OP_DELETE:
		hd_webhooks_delete(e->w, id, answer_new(req));
		return;
	case OP_REPLAY:
		handle_replay(e, req, id);
		return;
	case OP_SECRET:
		handle_secret(e, req, id);
		return;
	default:
		break;
	}
	hd_buf_init(&b, ANSWER_MAX);
	if (op == OP_INFO) {
		rc = hd_webhooks_info(e->w, id, &b);
	} else if (op == OP_ATTEMPTS) {
		size_t limit;
		if (query_limit(req, &limit)) {
			hd_buf_fini(&b);
			hd_http_respond_errorf(req, HD_EINVAL,
					       "query parameter 'limit' must be from 1 to %d",
					       HD_ATTEMPTS_MAX);
			return;
		}
		rc = hd_webhooks_attempts(e->w, id, limit, &b);
	} else {
		rc = hd_webhooks_pause(e->w, id, op == OP_PAUSE, &b);
	}
	if (rc) {
		hd_buf_fini(&b);
		hd_http_respond_errorf(req, rc, "no such subscription");
		return;
	}
	hd_http_respond_json(req, 200, &b);
}

/* Runs row's op for req, the subscriptions loaded. */
static void run(struct hd_webhook_http *e, struct hd_http_request *req, const struct hd_route *row,
		const char *id, size_t id_len, const struct hd_access_id *who)
{
	if (e->stopping)
		hd_http_respond_error(req, HD_EUNAVAIL, "herald is stopping");
	else if (row->op == OP_CREATE)
		handle_create(e, req, who);
	else if (row->op == OP_LIST)
		handle_list(e, req, who);
	else
		handle_one(e, req, (enum op)row->op, id, id_len, who);
}

/* Every subscription row: a special case of the route table (HD_ROUTE_SELF),
 * access decided here from the body's topic or the subscription's. Before
 * the subscriptions are loaded the request waits. */
static void route_subscription(struct hd_http_request *req, const struct hd_route_ctx *ctx)
{
	struct hd_webhook_http *e = ctx->row->arg;

	if (hd_webhooks_loaded(e->w) || e->stopping || !e->wait)
		run(e, req, ctx->row, ctx->param, ctx->param_len, ctx->who);
	else
		hd_load_wait_hold(e->wait, req);
}

/* The requests that waited go through the route table again. */
static void on_loaded(void *arg)
{
	struct hd_webhook_http *e = arg;
	if (e->wait)
		hd_load_wait_loaded(e->wait);
}

struct hd_webhook_http *hd_webhook_http_new(uv_loop_t *loop, struct hd_webhooks *w,
					    const struct hd_access *access)
{
	struct hd_webhook_http *e = hd_calloc(1, sizeof(*e));
	e->w = w;
	e->access = access;
	e->loop = loop;
	return e;
}

void hd_webhook_http_start(struct hd_webhook_http *e)
{
	hd_webhooks_start(e->w, on_loaded, e);
}

void hd_webhook_http_stop(struct hd_webhook_http *e)
{
	e->stopping = true;
	hd_load_wait_close(e->wait);
	e->wait = NULL;
}

void hd_webhook_http_free(struct hd_webhook_http *e)
{
	free(e);
}

void hd_webhook_http_routes(struct hd_webhook_http *e, struct hd_route_table *t)
{
	/* Within one path, the order of the rows is the order of Allow. */
	const enum hd_route_guard g = HD_ROUTE_SELF;
	e->wait = hd_load_wait_new(e->loop, t, "webhook subscriptions");
	const hd_route_fn fn = route_subscription;
	const struct hd_route rows[] = {
		{HTTP_GET, "/v1/subscriptions", g, 0, fn, e, OP_LIST, 0},
		{HTTP_POST, "/v1/subscriptions", g, 0, fn, e, OP_CREATE, 0},
		{HTTP_GET, "/v1/subscriptions/", g, 0, fn, e, OP_LIST, 0},
		{HTTP_POST, "/v1/subscriptions/", g, 0, fn, e, OP_CREATE, 0},
		{HTTP_GET, "/v1/subscriptions/{id}", g, 0, fn, e, OP_INFO, 0},
		{HTTP_DELETE, "/v1/subscriptions/{id}", g, 0, fn, e, OP_DELETE, 0},
		{HTTP_GET, "/v1/subscriptions/{id}/attempts", g, 0, fn, e, OP_ATTEMPTS, 0},
		{HTTP_POST, "/v1/subscriptions/{id}/pause", g, 0, fn, e, OP_PAUSE, 0},
		{HTTP_POST, "/v1/subscriptions/{id}/resume", g, 0, fn, e, OP_RESUME, 0},
		{HTTP_POST, "/v1/subscriptions/{id}/replay", g, 0, fn, e, OP_REPLAY, 0},
		{HTTP_POST, "/v1/subscriptions/{id}/secret", g, 0, fn, e, OP_SECRET, 0},
	};
	hd_route_add_all(t, rows, sizeof(rows) / sizeof(rows[0]));
}
