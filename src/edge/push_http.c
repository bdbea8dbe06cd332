/* push_http — see push_http.h. */
#include "edge/push_http.h"
#include "core/alloc.h"
#include "http/query.h"

#include <http_parser.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>


/* What a row does (its op). */
enum act { ACT_LIST, ACT_GET, ACT_PUT, ACT_DELETE };

struct hd_push_http {
	struct hd_devices *devices;     /* borrowed */
	bool allow_private;
	char vapid_public_key[HD_VAPID_PUBLIC_KEY_LEN + 1]; /* "" = none */
};

/* A change waiting for its records to be durable. */
struct job {
	struct hd_push_http *p;
	struct hd_http_request *req;
	char user[HD_USER_ID_MAX + 1];
	char id[HD_DEVICE_ID_MAX + 1];
	bool created;
};

/* Answers req with v (taken). */
static void respond_json(struct hd_http_request *req, int status, json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT);
	json_decref(v);
	if (!s) {
		hd_http_respond_error(req, HD_EINTERNAL, "the answer could not be encoded");
		return;
	}
	hd_http_respond(req, status, HD_HTTP_JSON_TYPE, NULL, s, strlen(s));
	free(s);
}

/* The {device} segment into id; false after answering 400. */
static bool device_id(struct hd_http_request *req, const struct hd_route_ctx *ctx, char *id)
{
	long n = hd_query_url_decode(ctx->param, ctx->param_len, id, HD_DEVICE_ID_MAX + 1, false);
	if (n < 0 || !hd_devices_id_ok(id, (size_t)n)) {
		hd_http_respond_errorf(req, HD_EINVAL, "a device id must be 1-%d characters of "
				       "[A-Za-z0-9._-]", HD_DEVICE_ID_MAX);
		return false;
	}
	return true;
}

static bool loaded(struct hd_push_http *p, struct hd_http_request *req)
{
	if (hd_devices_loaded(p->devices))
		return true;
	hd_http_respond_error(req, HD_EUNAVAIL, "the device registry is loading; retry shortly");
	return false;
}

static void put_done(void *arg, int err)
{
	struct job *j = arg;
	const struct hd_device *dev = hd_devices_get(j->p->devices, j->user, j->id);

	if (err)
		hd_http_respond_error(j->req, err, "the device could not be stored");
	else if (!dev)
		hd_http_respond_errorf(j->req, HD_ENOTFOUND, "device '%s' of user '%s' was removed "
				       "meanwhile", j->id, j->user);
	else
		respond_json(j->req, j->created ? 201 : 200, hd_devices_json(dev));
	free(j);
}

static void deleted(void *arg, int err)
{
	struct job *j = arg;
	if (err)
		hd_http_respond_error(j->req, err, "the device could not be deleted");
	else
		hd_http_respond(j->req, 204, NULL, NULL, "", 0);
	free(j);
}

/* PUT, GET or DELETE /v1/users/{id}/devices/{device}: the guard let the caller in. */
static void route_one(struct hd_http_request *req, const struct hd_route_ctx *ctx)
{
	struct hd_push_http *p = ctx->row->arg;
	struct hd_devices_parse_opts po = {.allow_private = p->allow_private};
	struct hd_error err = {0};
	struct hd_device *dev;
	char id[HD_DEVICE_ID_MAX + 1];
	struct job *j;
	int rc;

	if (!device_id(req, ctx, id) || !loaded(p, req))
		return;
	if (ctx->row->op == ACT_GET) {
		const struct hd_device *d = hd_devices_get(p->devices, ctx->user, id);
		if (d)
			respond_json(req, 200, hd_devices_json(d));
		else
			hd_http_respond_errorf(req, HD_ENOTFOUND, "user '%s' has no device '%s'",
					       ctx->user, id);
		return;
	}
	j = hd_calloc(1, sizeof(*j));
	j->p = p;
	j->req = req;
	snprintf(j->user, sizeof(j->user), "%s", ctx->user);
	snprintf(j->id, sizeof(j->id), "%s", id);
	if (ctx->row->op == ACT_DELETE) {
		rc = hd_devices_delete(p->devices, ctx->user, id, deleted, j);
		if (rc == HD_ENOTFOUND)
			hd_http_respond_errorf(req, rc, "user '%s' has no device '%s'", ctx->user, id);
		else if (rc)
			hd_http_respond_error(req, rc, "the device registry is stopping; retry shortly");
		if (rc)
			free(j);
		return;
	}
	if (hd_devices_parse(req->body, req->body_len, &po, &dev, &err) ||
	    hd_devices_put(p->devices, ctx->user, id, dev, &j->created, put_done, j, &err)) {
		hd_http_respond_error(req, err.code ? err.code : HD_EINVAL, err.msg);
		free(j);
	}
	/* On success j belongs to put_done, which may have run already. */
}

/* GET /v1/users/{id}/devices[/]. */
static void route_list(struct hd_http_request *req, const struct hd_route_ctx *ctx)
{
	struct hd_push_http *p = ctx->row->arg;
	struct hd_device *const *devs;
	size_t n;

	if (!loaded(p, req))
		return;
	n = hd_devices_of_user(p->devices, ctx->user, &devs);
	json_t *list = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(list, hd_devices_json(devs[i]));
	respond_json(req, 200, json_pack("{s:s, s:o}", "user", ctx->user, "devices", list));
}

/* GET /v1/push/vapid-public-key: open. */
static void route_vapid(struct hd_http_request *req, const struct hd_route_ctx *ctx)
{
	struct hd_push_http *p = ctx->row->arg;
	if (!p->vapid_public_key[0]) {
		hd_http_respond_error(req, HD_ENOTFOUND, "no Web Push key is configured "
				      "(--push-vapid-private-key-file)");
		return;
	}
	respond_json(req, 200, json_pack("{s:s}", "public_key", p->vapid_public_key));
}

void hd_push_http_routes(struct hd_push_http *p, struct hd_route_table *t)
{
	/* Access: the user's own client token, or an admin key. */
	const enum hd_route_guard g = HD_ROUTE_USER;
	const enum hd_key_action k = HD_KEY_ADMIN;
	const struct hd_route rows[] = {
		{HTTP_GET, "/v1/users/{user}/devices", g, k, route_list, p, ACT_LIST, 0},
		{HTTP_GET, "/v1/users/{user}/devices/", g, k, route_list, p, ACT_LIST, 0},
		{HTTP_GET, "/v1/users/{user}/devices/{name}", g, k, route_one, p, ACT_GET, 0},
		{HTTP_PUT, "/v1/users/{user}/devices/{name}", g, k, route_one, p, ACT_PUT, 0},
		{HTTP_DELETE, "/v1/users/{user}/devices/{name}", g, k, route_one, p, ACT_DELETE, 0},
		{HTTP_GET, "/v1/push/vapid-public-key", HD_ROUTE_OPEN, k, route_vapid, p, ACT_GET, 0},
	};
	hd_route_add_all(t, rows, sizeof(rows) / sizeof(rows[0]));
}

struct hd_push_http *hd_push_http_new(struct hd_devices *devices, const struct hd_push_http_opts *o)
{
	struct hd_push_http *p = hd_calloc(1, sizeof(*p));
	p->devices = devices;
	p->allow_private = o->allow_private;
	if (o->vapid_public_key)
		snprintf(p->vapid_public_key, sizeof(p->vapid_public_key), "%s", o->vapid_public_key);
	return p;
}

void hd_push_http_free(struct hd_push_http *p)
{
	free(p);
}
