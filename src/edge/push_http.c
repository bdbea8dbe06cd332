/* push_http — see push_http.h. */
#include "edge/push_http.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/rcbuf.h"
#include "core/uuid.h"
#include "edge/load_wait.h"
#include "http/query.h"
#include "push/payload.h"

#include <http_parser.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>


/* What a row does (its op). */
enum act { ACT_LIST, ACT_GET, ACT_PUT, ACT_DELETE, ACT_TEST };

struct test_send;

struct hd_push_http {
	struct hd_devices *devices;     /* borrowed */
	struct hd_push *push;           /* borrowed; NULL = no test sends */
	bool allow_private;
	char apns_environment[16];
	struct test_send *tests;        /* test sends in flight */
	size_t ntests;
	uv_loop_t *loop;                /* borrowed */
	struct hd_load_wait *wait;      /* owned; NULL before the routes and after the stop */
	bool stopping;
};

/* A test send in flight: what it needs once the registry may have changed. */
struct test_send {
	struct hd_push_http *p;
	struct hd_http_request *req;
	struct hd_push_provider *provider; /* borrowed */
	struct hd_push_send send;
	struct hd_push_payload payload;
	struct hd_webpush_crypto_keys keys;
	char *token;                    /* owned copy of the device's token or endpoint */
	char user[HD_USER_ID_MAX + 1];
	char id[HD_DEVICE_ID_MAX + 1];
	struct test_send *prev, *next;
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
/* v is taken; extra: header lines or NULL (as for hd_http_respond). */
static void respond_json_extra(struct hd_http_request *req, int status, json_t *v,
			       const char *extra)
{
	char *s = json_dumps(v, JSON_COMPACT);
	json_decref(v);
	if (!s) {
		hd_http_respond_error(req, HD_EINTERNAL, "the answer could not be encoded");
		return;
	}
	hd_http_respond(req, status, HD_HTTP_JSON_TYPE, extra, s, strlen(s));
	free(s);
}

static void respond_json(struct hd_http_request *req, int status, json_t *v)
{
	respond_json_extra(req, status, v, NULL);
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

/* Whether the registry is loaded; if not, req waits for it (or is answered
 * 503 when herald is stopping or the wait is full). */
static bool loaded(struct hd_push_http *p, struct hd_http_request *req)
{
	if (hd_devices_loaded(p->devices))
		return true;
	if (p->stopping || !p->wait)
		hd_http_respond_error(req, HD_EUNAVAIL, "herald is stopping");
	else
		hd_load_wait_hold(p->wait, req);
	return false;
}

/* The requests that waited go through the route table again. */
static void on_loaded(void *arg)
{
	struct hd_push_http *p = arg;
	if (p->wait)
		hd_load_wait_loaded(p->wait);
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
	struct hd_devices_parse_opts po = {
		.allow_private = p->allow_private,
		.apns_environment = p->apns_environment[0] ? p->apns_environment : NULL,
	};
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
	const char *key = p->push ? hd_push_vapid_public_key(p->push) : NULL;
	if (!key) {
		hd_http_respond_error(req, HD_ENOTFOUND, "no Web Push key is configured "
				      "(--push-vapid-private-key-file)");
		return;
	}
	respond_json(req, 200, json_pack("{s:s}", "public_key", key));
}

/* ---- POST …/devices/{device}/test ------------------------------------------ */

#define TEST_EVENT "{\"specversion\":\"1.0\",\"id\":\"%s\",\"source\":\"/herald/push\"," \
		   "\"type\":\"herald.push.test\",\"pushtitle\":\"herald\"," \
		   "\"pushbody\":\"Test push\",\"data\":{\"test\":true}}"
#define TEST_TOPIC "push.test"

static void test_unlink(struct test_send *t)
{
	struct hd_push_http *p = t->p;

	if (t->prev)
		t->prev->next = t->next;
	else
		p->tests = t->next;
	if (t->next)
		t->next->prev = t->prev;
	p->ntests--;
}

static void test_free(struct test_send *t)
{
	hd_push_payload_fini(&t->payload);
	free(t->token);
	free(t);
}

/* The provider's verdict: acted on (registry, feedback, metrics), then
 * answered with the device as it is now. A client that left meanwhile gets
 * nothing (hd_http_respond drops it); the outcome counts all the same. */
static void test_done(struct hd_push_send *s)
{
	struct test_send *t = s->arg;
	struct hd_push_http *p = t->p;
	const struct hd_device *dev = hd_devices_get(p->devices, t->user, t->id);
	const struct hd_push_verdict *v = &s->verdict;

	test_unlink(t);
	if (dev && strcmp(dev->token, t->token) == 0)
		hd_push_outcome(p->push, dev, v);
	json_t *o = json_pack("{s:s, s:i, s:s}", "result", hd_provider_verdict_name(v->kind),
			      "status", v->status, "reason", v->reason);
	if (s->id[0])
		json_object_set_new(o, "id", json_string(s->id));
	json_object_set_new(o, "device", dev ? hd_devices_json(dev) : json_null());
	respond_json(t->req, 200, o);
	test_free(t);
}

/* The test payload of dev's platform (an alert built like an event's). */
static int test_payload(const struct hd_device *dev, struct test_send *t)
{
	char id[37], json[512];
	struct hd_stored_event ev = {.offset = 0, .time_ms = hd_now_ms()};

	hd_uuid_v4(id);
	int n = snprintf(json, sizeof(json), TEST_EVENT, id);
	ev.json = hd_rcbuf_from(json, (size_t)n);
	struct hd_push_payload_in in = {
		.ev = &ev,
		.topic = TEST_TOPIC,
		.epoch = "",
		.mode = HD_PUSH_SUB_ALERT,
		.platform = dev->platform == HD_DEVICE_APNS  ? HD_PUSH_PAYLOAD_APNS
			    : dev->platform == HD_DEVICE_FCM ? HD_PUSH_PAYLOAD_FCM
							     : HD_PUSH_PAYLOAD_WEBPUSH,
		.now_ms = ev.time_ms,
	};
	enum hd_push_payload_result r = hd_push_payload_build(&in, &t->payload);
	hd_rcbuf_unref(ev.json);
	return r == HD_PUSH_PAYLOAD_OK ? 0 : HD_EINTERNAL;
}

/* POST /v1/users/{id}/devices/{device}/test: one alert now through the
 * device's provider; answered with the verdict once the provider gave it. */
static void route_test(struct hd_http_request *req, const struct hd_route_ctx *ctx)
{
	static const char *const options[] = {"--push-apns-key-file (and -key-id, -team-id, -topic)",
					      "--push-fcm-credentials-file",
					      "--push-vapid-private-key-file"};
	struct hd_push_http *p = ctx->row->arg;
	struct hd_error err = {0};
	char id[HD_DEVICE_ID_MAX + 1];
	struct test_send *t = NULL;
	int rc;

	if (!device_id(req, ctx, id) || !loaded(p, req))
		return;
	const struct hd_device *dev = hd_devices_get(p->devices, ctx->user, id);
	if (!dev) {
		hd_http_respond_errorf(req, HD_ENOTFOUND, "user '%s' has no device '%s'", ctx->user, id);
		return;
	}
	struct hd_push_provider *prov = p->push ? hd_push_provider_for(p->push, dev) : NULL;
	if (!prov) {
		hd_http_respond_errorf(req, HD_EUNAVAIL, "push to %s devices is not configured on this "
				       "server (%s)", dev->platform == HD_DEVICE_APNS ? "APNs"
				       : dev->platform == HD_DEVICE_FCM ? "FCM" : "Web Push",
				       options[dev->platform]);
		return;
	}
	/* A provider-wide pause (FCM's quota) holds test sends too: 429 with the
	 * time left, as the provider itself would answer. */
	int64_t left_ms = prov->paused_until_ms - hd_now_ms();
	if (left_ms > 0) {
		char msg[160], extra[48];
		snprintf(msg, sizeof(msg), "the push provider (%s) asked herald to pause its sends; "
			 "retry after the pause", prov->ops->name);
		snprintf(extra, sizeof(extra), "Retry-After: %lld\r\n", (long long)((left_ms + 999) / 1000));
		respond_json_extra(req, hd_err_http_status(HD_ELIMIT),
				   json_pack("{s:{s:s, s:s}}", "error", "code", hd_err_slug(HD_ELIMIT),
					     "message", msg), extra);
		return;
	}
	if (p->ntests >= HD_PUSH_HTTP_TESTS_MAX) {
		hd_http_respond_errorf(req, HD_ELIMIT, "%d test pushes are in flight, the most herald "
				       "allows; retry shortly", HD_PUSH_HTTP_TESTS_MAX);
		return;
	}
	t = hd_calloc(1, sizeof(*t));
	t->p = p;
	t->req = req;
	t->provider = prov;
	t->token = hd_strdup(dev->token);
	snprintf(t->user, sizeof(t->user), "%s", ctx->user);
	snprintf(t->id, sizeof(t->id), "%s", id);
	if (test_payload(dev, t)) {
		hd_http_respond_error(req, HD_EINTERNAL, "the test payload could not be built");
		goto out;
	}
	if (dev->platform == HD_DEVICE_WEBPUSH) {
		rc = hd_webpush_crypto_keys_parse(dev->p256dh, strlen(dev->p256dh), dev->auth,
						  strlen(dev->auth), &t->keys, &err);
		if (rc) {
			hd_http_respond_error(req, HD_EINVAL, err.msg);
			goto out;
		}
		t->send.to.endpoint = t->token;
		t->send.to.keys = &t->keys;
	} else {
		t->send.to.token = t->token;
	}
	t->send.msg = t->payload.msg;
	t->send.done = test_done;
	t->send.arg = t;
	rc = prov->ops->send(prov, &t->send);
	if (rc == HD_ELIMIT) {
		hd_http_respond_error(req, rc, "the push provider has too many sends in flight; retry "
				      "shortly");
		goto out;
	}
	if (rc) {
		hd_http_respond_error(req, HD_EINVAL, "the provider cannot send to this device");
		goto out;
	}
	t->next = p->tests;
	if (p->tests)
		p->tests->prev = t;
	p->tests = t;
	p->ntests++;
	t = NULL; /* test_done answers */
out:
	if (t)
		test_free(t);
}

void hd_push_http_routes(struct hd_push_http *p, struct hd_route_table *t)
{
	/* Access: the user's own client token, or an admin key. */
	const enum hd_route_guard g = HD_ROUTE_USER;
	const enum hd_key_action k = HD_KEY_ADMIN;
	p->wait = hd_load_wait_new(p->loop, t, "the device registry");
	const struct hd_route rows[] = {
		{HTTP_GET, "/v1/users/{user}/devices", g, k, route_list, p, ACT_LIST, 0},
		{HTTP_GET, "/v1/users/{user}/devices/", g, k, route_list, p, ACT_LIST, 0},
		{HTTP_GET, "/v1/users/{user}/devices/{name}", g, k, route_one, p, ACT_GET, 0},
		{HTTP_PUT, "/v1/users/{user}/devices/{name}", g, k, route_one, p, ACT_PUT, 0},
		{HTTP_DELETE, "/v1/users/{user}/devices/{name}", g, k, route_one, p, ACT_DELETE, 0},
		{HTTP_POST, "/v1/users/{user}/devices/{name}/test", g, k, route_test, p, ACT_TEST, 0},
		{HTTP_GET, "/v1/push/vapid-public-key", HD_ROUTE_OPEN, k, route_vapid, p, ACT_GET, 0},
	};
	hd_route_add_all(t, rows, sizeof(rows) / sizeof(rows[0]));
}

struct hd_push_http *hd_push_http_new(struct hd_devices *devices, const struct hd_push_http_opts *o)
{
	struct hd_push_http *p = hd_calloc(1, sizeof(*p));
	p->devices = devices;
	p->loop = o->loop;
	p->push = o->push;
	p->allow_private = o->allow_private;
	snprintf(p->apns_environment, sizeof(p->apns_environment), "%s",
		 o->apns_environment ? o->apns_environment : "");
	hd_devices_on_loaded(devices, on_loaded, p);
	return p;
}

void hd_push_http_stop(struct hd_push_http *p)
{
	if (!p)
		return;
	p->stopping = true;
	hd_load_wait_close(p->wait);
	p->wait = NULL;
}

void hd_push_http_free(struct hd_push_http *p)
{
	if (!p)
		return;
	/* Only when the server stopped before a provider answered: the
	 * provider was freed first (its sends cancelled, no done()). */
	while (p->tests) {
		struct test_send *t = p->tests;
		test_unlink(t);
		test_free(t);
	}
	free(p);
}
