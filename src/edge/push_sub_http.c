/* push_sub_http — see push_sub_http.h. */
#include "edge/push_sub_http.h"
#include "core/alloc.h"
#include "edge/load_wait.h"
#include "http/query.h"

#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ANSWER_MAX (1u << 20)

enum act { ACT_LIST, ACT_CREATE, ACT_INFO, ACT_DELETE, ACT_ATTEMPTS, ACT_PAUSE, ACT_RESUME,
	   ACT_REPLAY };

struct hd_push_sub_http {
	struct hd_push_delivery *d;     /* borrowed */
	uv_loop_t *loop;                /* borrowed */
	struct hd_load_wait *wait;      /* owned; NULL before the routes and after the stop */
	bool stopping;
};

/* The requests that waited go through the route table again. */
static void on_loaded(void *arg)
{
	struct hd_push_sub_http *p = arg;
	if (p->wait)
		hd_load_wait_loaded(p->wait);
}

static void answered(void *arg, int status, const char *body, int err, const char *msg)
{
	struct hd_http_request *req = arg;
	if (err)
		hd_http_respond_error(req, err, msg);
	else if (status == 204)
		hd_http_respond(req, 204, NULL, NULL, "", 0);
	else
		hd_http_respond(req, status, HD_HTTP_JSON_TYPE, NULL, body, strlen(body));
}

static void route_replay(struct hd_push_sub_http *p, struct hd_http_request *req, const char *id)
{
	char from[24], topic[HD_TOPIC_NAME_MAX + 1], *end;
	long n = hd_query_get(req->query, "from", from, sizeof(from));
	long tn = hd_query_get(req->query, "topic", topic, sizeof(topic));
	unsigned long long off = n > 0 ? strtoull(from, &end, 10) : 0;
	if (n <= 0 || *end || off < 1 || strspn(from, "0123456789") != (size_t)n) {
		hd_http_respond_errorf(req, HD_EINVAL,
				       "query parameter 'from' is required: an offset (from=N, N >= 1)");
		return;
	}
	if (tn == 0 || tn < -1) {
		hd_http_respond_errorf(req, HD_EINVAL, "query parameter 'topic' must be a topic name");
		return;
	}
	hd_push_delivery_replay(p->d, id, tn > 0 ? topic : NULL, off, answered, req);
}

static void route(struct hd_http_request *req, const struct hd_route_ctx *ctx)
{
	struct hd_push_sub_http *p = ctx->row->arg;
	char id[HD_PUSH_DELIVERY_ID_LEN + 1] = "";
	struct hd_buf b;
	int rc;

	/* Every row waits for the subscriptions to load. */
	if (!hd_push_delivery_loaded(p->d)) {
		if (p->stopping || !p->wait)
			hd_http_respond_error(req, HD_EUNAVAIL, "herald is stopping");
		else
			hd_load_wait_hold(p->wait, req);
		return;
	}
	if (ctx->param) {
		long n = hd_query_url_decode(ctx->param, ctx->param_len, id, sizeof(id), false);
		if (n <= 0) {
			hd_http_respond_errorf(req, HD_ENOTFOUND, "no push subscription with this id");
			return;
		}
	}
	switch (ctx->row->op) {
	case ACT_CREATE: {
		struct hd_push_sub_config c;
		struct hd_start start;
		struct hd_error err = {0};
		if (hd_push_sub_config_parse(req->body, req->body_len, &c, &start, &err)) {
			hd_http_respond_error(req, err.code ? err.code : HD_EINVAL, err.msg);
			return;
		}
		hd_push_delivery_create(p->d, &c, &start, answered, req);
		return;
	}
	case ACT_DELETE:
		hd_push_delivery_delete(p->d, id, answered, req);
		return;
	case ACT_PAUSE:
	case ACT_RESUME:
		hd_push_delivery_pause(p->d, id, ctx->row->op == ACT_PAUSE, answered, req);
		return;
	case ACT_REPLAY:
		route_replay(p, req, id);
		return;
	default:
		break;
	}
	hd_buf_init(&b, ctx->row->op == ACT_LIST ? HD_PUSH_DELIVERY_LIST_MAX : ANSWER_MAX);
	rc = 0;
	if (ctx->row->op == ACT_LIST)
		hd_push_delivery_list(p->d, &b);
	else if (ctx->row->op == ACT_INFO)
		rc = hd_push_delivery_info(p->d, id, &b);
	else
		rc = hd_push_delivery_attempts(p->d, id, &b);
	if (rc) {
		hd_buf_fini(&b);
		hd_http_respond_errorf(req, rc, "no push subscription '%s'", id);
		return;
	}
	hd_http_respond_json(req, 200, &b);
}

struct hd_push_sub_http *hd_push_sub_http_new(uv_loop_t *loop, struct hd_push_delivery *d)
{
	struct hd_push_sub_http *p = hd_calloc(1, sizeof(*p));
	p->d = d;
	p->loop = loop;
	hd_push_delivery_on_loaded(d, on_loaded, p);
	return p;
}

void hd_push_sub_http_stop(struct hd_push_sub_http *p)
{
	if (!p)
		return;
	p->stopping = true;
	hd_load_wait_close(p->wait);
	p->wait = NULL;
}

void hd_push_sub_http_routes(struct hd_push_sub_http *p, struct hd_route_table *t)
{
	/* Every row: an admin key (HD_ROUTE_KEY of HD_KEY_ADMIN), handled by route(). */
	static const struct {
		int method;
		const char *path;
		enum act op;
	} rows[] = {
		{HTTP_GET, "/v1/push/subscriptions", ACT_LIST},
		{HTTP_POST, "/v1/push/subscriptions", ACT_CREATE},
		{HTTP_GET, "/v1/push/subscriptions/{id}", ACT_INFO},
		{HTTP_DELETE, "/v1/push/subscriptions/{id}", ACT_DELETE},
		{HTTP_GET, "/v1/push/subscriptions/{id}/attempts", ACT_ATTEMPTS},
		{HTTP_POST, "/v1/push/subscriptions/{id}/pause", ACT_PAUSE},
		{HTTP_POST, "/v1/push/subscriptions/{id}/resume", ACT_RESUME},
		{HTTP_POST, "/v1/push/subscriptions/{id}/replay", ACT_REPLAY},
	};
	p->wait = hd_load_wait_new(p->loop, t, "push subscriptions");
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		hd_route_add(t, &(struct hd_route){.method = rows[i].method, .pattern = rows[i].path,
						   .guard = HD_ROUTE_KEY, .scope = HD_KEY_ADMIN,
						   .fn = route, .arg = p, .op = (int)rows[i].op});
}

void hd_push_sub_http_free(struct hd_push_sub_http *p)
{
	free(p);
}
