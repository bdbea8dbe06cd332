/* api — see api.h. */
#include "edge/api.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/metrics.h"
#include "core/text.h"
#include "edge/group_http.h"
#include "edge/longpoll.h"
#include "edge/webhook_http.h"
#include "edge/push_http.h"
#include "edge/push_sub_http.h"
#include "http/query.h"
#include "proto/cloudevent.h"

#include <http_parser.h>
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * An answer holds one stored event at its ceiling at most
 * (HD_EVENT_REPLY_MAX); a read page stops before the event that would take
 * it past HD_READ_BYTES_MAX (the first event is always sent), so that
 * `limit` large events cannot make it larger; `next` then names the last
 * event sent and the client simply reads on.
 */
#define ERROR_BODY_MAX 1024

/* The message of a publish item's error: the store's HD_ELIMIT is the
 * topic limit, which the table's "too many requests" would not explain. */
static const char *item_message(int err)
{
	if (err == HD_ELIMIT)
		return "no new topic can be created: the store holds --max-topics-total topics "
		       "(existing topics still take events)";
	return hd_err_message(err);
}

static void respond_err(struct hd_http_request *req, const struct hd_error *err)
{
	hd_http_respond_error(req, err->code, err->msg[0] ? err->msg : NULL);
}

/* Parses an unsigned decimal query parameter; absent → def. */
static int query_u64(const struct hd_http_request *req, const char *name, uint64_t def,
		     uint64_t max, uint64_t *out, struct hd_error *err)
{
	char v[32];
	long n = hd_query_get(req->query, name, v, sizeof(v));
	if (n == -1) {
		*out = def;
		return 0;
	}
	/* Digits only: strtoull alone would also take leading white space,
	 * a sign, and wrap values past ULLONG_MAX. */
	char *end = v;
	unsigned long long x = 0;
	if (n > 0 && n <= 20 && strspn(v, "0123456789") == (size_t)n)
		x = strtoull(v, &end, 10);
	if (n <= 0 || *end || x > max)
		return hd_error_set(err, HD_EINVAL,
				    "query parameter '%s' must be a whole number from 0 to %" PRIu64, name, max);
	*out = x;
	return 0;
}

/* ---- publish ---------------------------------------------------------- */

struct publish {
	struct hd_http_request *req;
	struct hd_cloudevent_batch batch;
	struct hd_pub pub;
	struct hd_pub_item *items; /* one per valid batch entry, after topic */
	char topic[HD_TOPIC_NAME_MAX + 1];
};

static void publish_free(struct publish *p)
{
	hd_cloudevent_batch_fini(&p->batch);
	free(p); /* items share the allocation */
}

static void entry_json(struct hd_buf *b, const struct hd_pub_item *it)
{
	if (it->err) {
		hd_buf_printf(b, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", hd_err_slug(it->err),
			      item_message(it->err));
		return;
	}
	/* Formatted by hand: a batch answer has one entry per event. */
	char digits[20];
	hd_buf_puts(b, "{\"offset\":");
	hd_buf_append(b, digits, hd_u64_format(it->offset, digits));
	hd_buf_puts(b, ",\"id\":\"");
	hd_buf_json_escape(b, it->event->id, strlen(it->event->id));
	hd_buf_puts(b, it->duplicate ? "\",\"duplicate\":true}" : "\"}");
}

static void publish_done(struct hd_pub *pub)
{
	struct publish *p = pub->arg;
	struct hd_buf b;
	hd_buf_init(&b, HD_EVENT_REPLY_MAX);

	/* The store counts what it committed (publishes, bytes, duplicates);
	 * the edge counts only what was refused. */
	for (size_t i = 0; i < pub->n; i++)
		if (pub->items[i].err)
			hd_metrics_inc(HD_M_publish_errors_total);
	if (!p->batch.is_batch) {
		const struct hd_pub_item *it = &pub->items[0];
		if (it->err) {
			hd_http_respond_error(p->req, it->err, item_message(it->err));
		} else {
			char digits[20];
			size_t id_len = strlen(it->event->id);
			hd_buf_reserve(&b, 64 + strlen(p->topic) + id_len);
			hd_buf_puts(&b, "{\"topic\":\"");
			hd_buf_puts(&b, p->topic);
			hd_buf_puts(&b, "\",\"offset\":");
			hd_buf_append(&b, digits, hd_u64_format(it->offset, digits));
			hd_buf_puts(&b, ",\"id\":\"");
			hd_buf_json_escape(&b, it->event->id, id_len);
			hd_buf_puts(&b, it->duplicate ? "\",\"duplicate\":true}" : "\"}");
			hd_http_respond_json(p->req, it->duplicate ? 200 : 201, &b);
		}
		hd_buf_fini(&b);
		publish_free(p);
		return;
	}
	size_t failed = 0, next = 0;
	for (size_t i = 0; i < p->batch.n; i++)
		failed += p->batch.errors[i].code != 0;
	for (size_t i = 0; i < pub->n; i++)
		failed += pub->items[i].err != 0;
	/* About 40 bytes an entry: one allocation for most answers. */
	hd_buf_reserve(&b, 32 + p->batch.n * 64);
	hd_buf_printf(&b, "{\"failed_count\":%zu,\"entries\":[", failed);
	for (size_t i = 0; i < p->batch.n; i++) {
		if (i)
			hd_buf_putc(&b, ',');
		if (p->batch.errors[i].code) {
			const struct hd_error *e = &p->batch.errors[i];
			hd_buf_printf(&b, "{\"error\":{\"code\":\"%s\",\"message\":\"", hd_err_slug(e->code));
			hd_buf_json_escape(&b, e->msg, strlen(e->msg));
			hd_buf_puts(&b, "\"}}");
		} else {
			entry_json(&b, &pub->items[next++]);
		}
	}
	hd_buf_puts(&b, "]}");
	hd_http_respond_json(p->req, 200, &b);
	publish_free(p);
}

static void publish_batch_empty(struct publish *p)
{
	/* Every entry failed validation (or the batch was empty): nothing to store. */
	struct hd_pub pub = {.items = NULL, .n = 0, .arg = p};
	publish_done(&pub);
}

/* The bucket of API key k (created full on first use). The map holds at
 * most KEY_BUCKETS_MAX names; when keys were renamed or revoked so often
 * that it fills, every bucket starts over (full), which only forgives. */
#define KEY_BUCKETS_MAX (2 * HD_KEYS_MAX)

static void free_bucket(const char *key, void *value, void *arg)
{
	(void)key;
	(void)arg;
	free(value);
}

static struct hd_bucket *key_bucket(struct hd_api *api, const struct hd_key *k, int64_t now)
{
	struct hd_bucket *b = hd_map_get(&api->key_buckets, k->name);

	if (b)
		return b;
	if (api->key_buckets.count >= KEY_BUCKETS_MAX) {
		hd_map_each(&api->key_buckets, free_bucket, NULL);
		hd_map_fini(&api->key_buckets);
		hd_map_init(&api->key_buckets, KEY_BUCKETS_MAX);
	}
	b = hd_malloc(sizeof(*b));
	hd_ratelimit_init(b, &api->key_rate, now);
	(void)hd_map_put(&api->key_buckets, k->name, b); /* room was made above */
	return b;
}

/* The publish rate of the caller's key: true when n events may go, else
 * answers 429 with Retry-After and returns false. */
static bool key_rate_ok(struct hd_http_request *req, struct hd_api *api,
			const struct hd_access_id *who, size_t n)
{
	char msg[160], extra[48];
	int64_t now = (int64_t)hd_mono_ms(), wait;

	if (!who->key || !hd_ratelimit_on(&api->key_rate))
		return true;
	wait = hd_ratelimit_take(key_bucket(api, who->key, now), &api->key_rate, n, now);
	if (wait == 0)
		return true;
	hd_metrics_inc(HD_M_publish_rate_key_hits_total);
	hd_metrics_add(HD_M_publish_errors_total, n);
	snprintf(msg, sizeof(msg), "API key '%.64s' publishes too fast (at most %u events a second, "
		 "--publish-rate-per-key)", who->key->name, (unsigned)api->key_rate.per_sec);
	snprintf(extra, sizeof(extra), "Retry-After: %lld\r\n",
		 (long long)hd_ratelimit_retry_after_s(wait));
	struct hd_buf b;
	hd_buf_init(&b, ERROR_BODY_MAX);
	hd_buf_printf(&b, "{\"error\":{\"code\":\"%s\",\"message\":\"", hd_err_slug(HD_ELIMIT));
	hd_buf_json_escape(&b, msg, strlen(msg));
	hd_buf_puts(&b, "\"}}");
	hd_http_respond(req, hd_err_http_status(HD_ELIMIT), HD_HTTP_JSON_TYPE, extra, b.data, b.len);
	hd_buf_fini(&b);
	return false;
}

static void handle_publish(struct hd_http_request *req, struct hd_api *api, const char *topic,
			   const struct hd_access_id *who)
{
	struct hd_hub *hub = api->hub;
	struct hd_error err = {0};
	struct hd_cloudevent_batch batch;
	struct publish *p;
	int64_t now = hd_now_ms();
	struct hd_cloudevent_request ce = {
		.topic = topic,
		.now_ms = now,
		.headers = req->headers,
		.nheaders = req->nheaders,
		.body = req->body,
		.body_len = req->body_len,
	};

	if (hd_cloudevent_decode(&ce, &batch, &err)) {
		hd_metrics_inc(HD_M_publish_errors_total);
		if (err.code == HD_ETOOBIG) /* more events in one batch than allowed */
			hd_metrics_inc(HD_M_http_limit_hits_total);
		respond_err(req, &err);
		return;
	}
	/* One allocation for the publish and its items (n known now). */
	p = hd_malloc(sizeof(*p) + (batch.n ? batch.n : 1) * sizeof(p->items[0]));
	p->req = req;
	p->batch = batch;
	p->items = (struct hd_pub_item *)(void *)(p + 1);
	p->pub = (struct hd_pub){0};
	/* The router checked the name: at most HD_TOPIC_NAME_MAX bytes. */
	size_t topic_len = strnlen(topic, sizeof(p->topic) - 1);
	memcpy(p->topic, topic, topic_len);
	p->topic[topic_len] = '\0';
	/* The namespace's max-event-size: a single event is refused whole,
	 * a batch entry gets its own error. */
	for (size_t i = 0; i < p->batch.n; i++) {
		struct hd_error *e = &p->batch.errors[i];
		if (e->code || !hd_hub_event_fits(hub, p->topic, p->batch.events[i].json_len, e))
			continue;
		if (!p->batch.is_batch) {
			hd_metrics_inc(HD_M_publish_errors_total);
			respond_err(req, e);
			publish_free(p);
			return;
		}
	}
	size_t n = 0;
	for (size_t i = 0; i < p->batch.n; i++) {
		if (p->batch.errors[i].code) {
			hd_metrics_inc(HD_M_publish_errors_total);
			continue;
		}
		p->items[n++] = (struct hd_pub_item){
			.topic = p->topic,
			.event = &p->batch.events[i],
			.stored_ms = now,
		};
	}
	if (n == 0) {
		publish_batch_empty(p);
		return;
	}
	if (!key_rate_ok(req, api, who, n)) {
		publish_free(p);
		return;
	}
	p->pub.items = p->items;
	p->pub.n = n;
	p->pub.done = publish_done;
	p->pub.arg = p;
	int rc = hd_hub_publish(hub, &p->pub);
	if (rc) {
		hd_metrics_add(HD_M_publish_errors_total, n);
		hd_http_respond_error(req, rc,
				      rc == HD_EUNAVAIL ? "the store is busy or stopping; retry shortly"
							: NULL);
		publish_free(p);
	}
}

/* ---- read ------------------------------------------------------------- */

struct read {
	struct hd_http_request *req;
	struct hd_api *api;
	uint32_t wait_ms;
	struct hd_access_cred cred;     /* what allowed the read (expiry, key) */
	struct hd_read r;
	char topic[HD_TOPIC_NAME_MAX + 1];
};

/* Sends the page of r (borrowed) as the answer to req. */
static void respond_page(struct hd_http_request *req, struct hd_read *r)
{
	struct hd_buf b;

	if (r->err) {
		hd_http_respond_error(req, r->err, NULL);
		return;
	}
	uint64_t next = r->next;
	size_t n = 0;
	int rc;
	hd_buf_init(&b, HD_EVENT_REPLY_MAX);
	rc = hd_buf_puts(&b, "{\"events\":[");
	for (; n < r->n && rc == 0; n++) {
		const struct hd_rcbuf *json = r->events[n].json;
		if (n > 0 && b.len + 1 + json->len > HD_READ_BYTES_MAX)
			break;
		if (n > 0)
			rc = hd_buf_putc(&b, ',');
		if (rc == 0)
			rc = hd_buf_append(&b, json->data, json->len);
	}
	if (n < r->n && rc == 0)
		next = r->events[n - 1].offset; /* the page was cut short */
	if (rc == 0)
		rc = hd_buf_printf(&b, "],\"next\":%" PRIu64 ",\"epoch\":\"%s\",\"truncated\":%s}",
				   next, r->epoch, r->truncated ? "true" : "false");
	if (rc == 0) {
		hd_http_respond_json(req, 200, &b);
	} else {
		/* Only an event beyond every ceiling gets here; never send
		 * half an answer. */
		hd_buf_fini(&b);
		hd_http_respond_error(req, HD_EINTERNAL, "the answer would be too large");
	}
}

static void read_done(struct hd_read *r)
{
	struct read *rd = r->arg;
	/* Nothing yet and the caller is willing to wait: hold the request
	 * until an event arrives (long-poll). A gap is reported at once. */
	if (!r->err && r->n == 0 && !r->truncated && rd->wait_ms && !rd->api->stopping &&
	    hd_longpoll_wait(rd->api->longpoll, rd->req, rd->topic, r->after, r->limit, rd->wait_ms,
			     &rd->cred, r) == 0) {
		hd_engine_read_fini(r);
		free(rd);
		return;
	}
	respond_page(rd->req, r);
	hd_engine_read_fini(r);
	free(rd);
}

/* Parses ?wait= seconds (a decimal like 0.5 is allowed) into milliseconds. */
static int query_wait(const struct hd_http_request *req, uint32_t *out, struct hd_error *err)
{
	char v[32], *end;
	long n = hd_query_get(req->query, "wait", v, sizeof(v));
	*out = 0;
	if (n == -1)
		return 0;
	double secs = n > 0 && (v[0] >= '0' && v[0] <= '9') ? strtod(v, &end) : -1;
	if (n <= 0 || secs < 0 || *end || secs > HD_LONGPOLL_WAIT_MAX_S)
		return hd_error_set(err, HD_EINVAL,
				    "query parameter 'wait' must be seconds from 0 to %d",
				    HD_LONGPOLL_WAIT_MAX_S);
	*out = (uint32_t)(secs * 1000);
	return 0;
}

static void handle_read(struct hd_http_request *req, struct hd_api *api, const char *topic,
			const struct hd_access_cred *cred)
{
	struct hd_error err = {0};
	uint64_t after, limit;
	uint32_t wait_ms;
	if (query_u64(req, "after", 0, UINT64_MAX - 1, &after, &err) ||
	    query_u64(req, "limit", HD_API_READ_LIMIT_DEFAULT, HD_API_READ_LIMIT_MAX, &limit, &err) ||
	    query_wait(req, &wait_ms, &err)) {
		respond_err(req, &err);
		return;
	}
	if (limit == 0) {
		hd_error_set(&err, HD_EINVAL, "query parameter 'limit' must be from 1 to %d",
			     HD_API_READ_LIMIT_MAX);
		respond_err(req, &err);
		return;
	}
	struct read *rd = hd_calloc(1, sizeof(*rd));
	rd->req = req;
	rd->api = api;
	rd->wait_ms = wait_ms;
	rd->cred = *cred;
	snprintf(rd->topic, sizeof(rd->topic), "%s", topic);
	rd->r.topic = rd->topic;
	rd->r.after = after;
	rd->r.limit = (uint32_t)limit;
	rd->r.done = read_done;
	rd->r.arg = rd;
	int rc = hd_hub_read(api->hub, &rd->r);
	if (rc) {
		hd_http_respond_error(req, rc, NULL);
		free(rd);
	}
}

/* ---- topics ----------------------------------------------------------- */

struct topic_req {
	struct hd_http_request *req;
	struct hd_topic_op op;
	struct hd_hub *hub;
	bool all;                       /* list private topics too (an admin) */
	char topic[HD_TOPIC_NAME_MAX + 1];
	char prefix[HD_TOPIC_NAME_MAX + 1];
	char after[HD_TOPIC_NAME_MAX + 1];
};

static void topic_json(struct hd_buf *b, const struct hd_topic_info *t)
{
	char created[32];
	hd_clock_format_rfc3339(t->created_ms, created, sizeof(created));
	hd_buf_printf(b,
		      "{\"name\":\"%s\",\"epoch\":\"%s\",\"first\":%" PRIu64 ",\"last\":%" PRIu64
		      ",\"count\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"created\":\"%s\"}",
		      t->name, t->epoch, t->first, t->last, t->count, t->bytes, created);
}

static void topic_done(struct hd_topic_op *op)
{
	struct topic_req *tr = op->arg;
	struct hd_buf b;
	hd_buf_init(&b, HD_EVENT_REPLY_MAX);

	if (op->err == HD_ENOTFOUND) {
		hd_buf_printf(&b, "topic '%s' does not exist", tr->topic);
		hd_http_respond_error(tr->req, HD_ENOTFOUND, b.data);
	} else if (op->err) {
		hd_http_respond_error(tr->req, op->err, NULL);
	} else if (op->kind == HD_TOPIC_DELETE) {
		hd_buf_printf(&b, "{\"deleted\":\"%s\"}", tr->topic);
		hd_http_respond_json(tr->req, 200, &b);
	} else if (op->kind == HD_TOPIC_INFO) {
		topic_json(&b, &op->topics[0]);
		hd_http_respond_json(tr->req, 200, &b);
	} else {
		hd_buf_puts(&b, "{\"topics\":[");
		/* Private topics are left out for callers who are not admins;
		 * `next` still follows the page as read, so a page may be short. */
		for (size_t i = 0, shown = 0; i < op->n; i++) {
			const char *name = op->topics[i].name;
			if (!tr->all && !hd_acl_public(hd_hub_ns(tr->hub, name), name))
				continue;
			if (shown++)
				hd_buf_putc(&b, ',');
			topic_json(&b, &op->topics[i]);
		}
		hd_buf_puts(&b, "],\"next\":");
		if (op->n == op->limit && op->n > 0)
			hd_buf_printf(&b, "\"%s\"}", op->topics[op->n - 1].name);
		else
			hd_buf_puts(&b, "null}");
		hd_http_respond_json(tr->req, 200, &b);
	}
	hd_buf_fini(&b);
	hd_engine_topic_op_fini(op);
	free(tr);
}

static void start_topic_op(struct hd_http_request *req, struct hd_hub *hub, struct topic_req *tr)
{
	tr->req = req;
	tr->op.done = topic_done;
	tr->op.arg = tr;
	int rc = hd_hub_topic_op(hub, &tr->op);
	if (rc) {
		hd_http_respond_error(req, rc, NULL);
		free(tr);
	}
}

static void handle_topic(struct hd_http_request *req, struct hd_hub *hub, const char *topic,
			 enum hd_topic_op_kind kind)
{
	struct topic_req *tr = hd_calloc(1, sizeof(*tr));
	snprintf(tr->topic, sizeof(tr->topic), "%s", topic);
	tr->op.kind = kind;
	tr->op.topic = tr->topic;
	start_topic_op(req, hub, tr);
}

static void handle_list(struct hd_http_request *req, struct hd_hub *hub, bool all)
{
	struct hd_error err = {0};
	uint64_t limit;
	struct topic_req *tr = hd_calloc(1, sizeof(*tr));
	tr->hub = hub;
	tr->all = all;

	if (query_u64(req, "limit", 100, HD_API_LIST_LIMIT_MAX, &limit, &err) || limit == 0 ||
	    hd_query_get(req->query, "prefix", tr->prefix, sizeof(tr->prefix)) == -2 ||
	    hd_query_get(req->query, "after", tr->after, sizeof(tr->after)) == -2) {
		if (!err.code)
			hd_error_set(&err, HD_EINVAL, "bad 'prefix', 'after' or 'limit' (1 to %d)",
				     HD_API_LIST_LIMIT_MAX);
		respond_err(req, &err);
		free(tr);
		return;
	}
	tr->op.kind = HD_TOPIC_LIST;
	tr->op.prefix = tr->prefix;
	tr->op.after = tr->after;
	tr->op.limit = limit;
	start_topic_op(req, hub, tr);
}

/* ---- connections and presence ------------------------------------------ */

/* A registry look-up (hub.h) on its way to the answer. */
struct reg_req {
	struct hd_http_request *req;
	struct hd_hub_reg q;
	char key[HD_TOPIC_NAME_MAX + HD_USER_ID_MAX + 2];
};

/* GET /v1/users/{id}/connections: every live connection of the user, on
 * every node (the redis engine) or this one. */
static void connections_done(struct hd_hub_reg *q)
{
	struct reg_req *rr = q->arg;
	struct hd_buf b;
	if (q->err) {
		hd_http_respond_error(rr->req, q->err, NULL);
		goto out;
	}
	hd_buf_init(&b, HD_EVENT_REPLY_MAX);
	hd_buf_puts(&b, "{\"user\":\"");
	hd_buf_json_escape(&b, q->key, strlen(q->key));
	hd_buf_puts(&b, "\",\"connections\":[");
	for (size_t i = 0; i < q->n; i++) {
		if (i)
			hd_buf_putc(&b, ',');
		hd_buf_puts(&b, q->items[i].json);
	}
	hd_buf_puts(&b, "]}");
	hd_http_respond_json(rr->req, 200, &b);
	hd_buf_fini(&b);
out:
	hd_hub_reg_fini(q);
	free(rr);
}

/* GET /v1/topics/{topic}/presence: the connections following topic. */
static void presence_done(struct hd_hub_reg *q)
{
	struct reg_req *rr = q->arg;
	struct hd_buf b;
	size_t users = 0;
	if (q->err) {
		hd_http_respond_error(rr->req, q->err, NULL);
		goto out;
	}
	hd_buf_init(&b, HD_EVENT_REPLY_MAX);
	hd_buf_puts(&b, "{\"topic\":\"");
	hd_buf_json_escape(&b, q->key, strlen(q->key));
	hd_buf_printf(&b, "\",\"subscribers\":%zu,\"clients\":[", q->n);
	for (size_t i = 0; i < q->n; i++) {
		if (i)
			hd_buf_putc(&b, ',');
		hd_buf_puts(&b, q->items[i].json);
	}
	hd_buf_puts(&b, "],\"users\":[");
	for (size_t i = 0; i < q->n; i++) {
		const char *u = q->items[i].user; /* sorted: a user's connections are adjacent */
		if (!u[0] || (i > 0 && strcmp(q->items[i - 1].user, u) == 0))
			continue;
		hd_buf_puts(&b, users++ ? ",\"" : "\"");
		hd_buf_json_escape(&b, u, strlen(u));
		hd_buf_putc(&b, '"');
	}
	hd_buf_puts(&b, "]}");
	hd_http_respond_json(rr->req, 200, &b);
	hd_buf_fini(&b);
out:
	hd_hub_reg_fini(q);
	free(rr);
}

static void start_reg(struct hd_http_request *req, struct hd_hub *hub, enum hd_reg_kind kind,
		      const char *key)
{
	struct reg_req *rr = hd_calloc(1, sizeof(*rr));
	rr->req = req;
	snprintf(rr->key, sizeof(rr->key), "%s", key);
	rr->q.kind = kind;
	rr->q.key = rr->key;
	rr->q.done = kind == HD_REG_USER ? connections_done : presence_done;
	rr->q.arg = rr;
	int rc = hd_hub_reg_query(hub, &rr->q);
	if (rc) {
		hd_http_respond_error(req, rc, NULL);
		free(rr);
	}
}

/* ---- routes ------------------------------------------------------------ */

/*
 * The api's rows of the route table (edge/route.h); sse, the WebSocket
 * edge, cursors, groups and webhook subscriptions add theirs. Each adapter gets its object from
 * ctx->row->arg and its decoded parameters from ctx; the guard has run.
 */

static void handle_metrics(struct hd_http_request *req)
{
	struct hd_buf b;
	hd_buf_init(&b, HD_EVENT_REPLY_MAX);
	hd_metrics_render(&b);
	hd_http_respond(req, 200, "text/plain; version=0.0.4", NULL, b.data, b.len);
	hd_buf_fini(&b);
}

/*
 * OPTIONS: a CORS preflight (the server adds Access-Control-Allow-Origin
 * when the origin is allowed) or a plain question about methods.
 */
static void handle_preflight(struct hd_http_request *req)
{
	char extra[512];
	const char *want = hd_http_header_get(req, "access-control-request-headers");
	bool ok = want && strlen(want) <= 256;
	for (const char *p = want; ok && *p; p++)
		ok = isalnum((unsigned char)*p) || *p == '-' || *p == ',' || *p == ' ' || *p == '_';
	snprintf(extra, sizeof(extra),
		 "Allow: GET, HEAD, POST, PUT, DELETE, OPTIONS\r\n"
		 "Access-Control-Allow-Methods: GET, HEAD, POST, PUT, DELETE\r\n"
		 "%s%s%s"
		 "Access-Control-Max-Age: 600\r\n",
		 ok ? "Access-Control-Allow-Headers: " : "", ok ? want : "", ok ? "\r\n" : "");
	hd_http_respond(req, 204, NULL, extra, "", 0);
}

static void route_healthz(struct hd_http_request *req, const struct hd_route_ctx *ctx)
{
	(void)ctx;
	hd_http_respond(req, 200, HD_HTTP_JSON_TYPE, NULL, "{\"status\":\"ok\"}", 15);
}

static void route_readyz(struct hd_http_request *req, const struct hd_route_ctx *ctx)
{
	struct hd_api *api = ctx->row->arg;
	char why[256] = "herald is stopping";
	if (!api->stopping && hd_hub_ready_why(api->hub, why, sizeof(why)))
		hd_http_respond(req, 200, HD_HTTP_JSON_TYPE, NULL, "{\"status\":\"ready\"}", 18);
	else
		hd_http_respond_error(req, HD_EUNAVAIL, why);
}

static void route_metrics(struct hd_http_request *req, const struct hd_route_ctx *ctx)
{
	(void)ctx;
	handle_metrics(req);
}

static void route_list(struct hd_http_request *req, const struct hd_route_ctx *ctx)
{
	struct hd_api *api = ctx->row->arg;
	handle_list(req, api->hub, hd_access_admin(ctx->access, ctx->who));
}

/* GET or DELETE /v1/topics/{topic}: row->op is the topic op's kind. The
 * topic's groups hear of a delete through the hub (hd_hub_on_topic_deleted). */
static void route_topic(struct hd_http_request *req, const struct hd_route_ctx *ctx)
{
	struct hd_api *api = ctx->row->arg;
	handle_topic(req, api->hub, ctx->topic, (enum hd_topic_op_kind)ctx->row->op);
}

/* POST /v1/topics/{topic}/events, and POST /v1/users/{id}/notifications: a
 * publish to the topic user:{id}, which every connection and device of that
 * user follows. */
static void route_publish(struct hd_http_request *req, const struct hd_route_ctx *ctx)
{
	handle_publish(req, ctx->row->arg, ctx->topic, ctx->who);
}

static void route_read(struct hd_http_request *req, const struct hd_route_ctx *ctx)
{
	struct hd_access_cred cred;
	hd_access_cred_of(ctx->who, &cred);
	handle_read(req, ctx->row->arg, ctx->topic, &cred);
}

static void route_presence(struct hd_http_request *req, const struct hd_route_ctx *ctx)
{
	struct hd_api *api = ctx->row->arg;
	start_reg(req, api->hub, HD_REG_TOPIC, ctx->topic);
}

static void route_connections(struct hd_http_request *req, const struct hd_route_ctx *ctx)
{
	struct hd_api *api = ctx->row->arg;
	start_reg(req, api->hub, HD_REG_USER, ctx->user);
}

/* The api's own rows. Within one pattern the order of the rows is the
 * order of the methods in a 405's Allow header. */
static void add_routes(struct hd_api *api)
{
	struct hd_route_table *t = &api->routes;
	const struct hd_route rows[] = {
		{HD_ROUTE_ANY, "/healthz", HD_ROUTE_OPEN, 0, route_healthz, api, 0, 0},
		{HD_ROUTE_ANY, "/readyz", HD_ROUTE_OPEN, 0, route_readyz, api, 0, 0},
		{HD_ROUTE_ANY, "/metrics", HD_ROUTE_KEY, HD_KEY_METRICS, route_metrics, api, 0, 0},
		/* Publish, the hot path, is near the top of the scan. */
		{HTTP_GET, "/v1/topics/{topic}/events", HD_ROUTE_READ, 0, route_read, api, 0, 0},
		{HTTP_POST, "/v1/topics/{topic}/events", HD_ROUTE_KEY, HD_KEY_PUBLISH, route_publish, api, 0, 0},
		{HTTP_GET, "/v1/topics", HD_ROUTE_KEY, HD_KEY_READ, route_list, api, 0, 0},
		/* The list answers with a trailing '/' too, as it always did. */
		{HTTP_GET, "/v1/topics/", HD_ROUTE_KEY, HD_KEY_READ, route_list, api, 0, 0},
		{HTTP_GET, "/v1/topics/{topic}", HD_ROUTE_READ, 0, route_topic, api, HD_TOPIC_INFO, 0},
		{HTTP_DELETE, "/v1/topics/{topic}", HD_ROUTE_KEY, HD_KEY_ADMIN, route_topic, api,
		 HD_TOPIC_DELETE, 0},
		{HTTP_GET, "/v1/topics/{topic}/presence", HD_ROUTE_KEY, HD_KEY_ADMIN, route_presence, api, 0, 0},
		{HTTP_POST, "/v1/users/{user}/notifications", HD_ROUTE_KEY, HD_KEY_PUBLISH, route_publish, api,
		 0, 0},
		{HTTP_GET, "/v1/users/{user}/connections", HD_ROUTE_KEY, HD_KEY_ADMIN, route_connections, api,
		 0, 0},
	};
	hd_route_add_all(t, rows, sizeof(rows) / sizeof(rows[0]));
}

void hd_api_handle(struct hd_http_request *req, void *arg)
{
	struct hd_api *api = arg;

	if (req->method == HTTP_OPTIONS)
		handle_preflight(req);
	else
		hd_route_dispatch(&api->routes, req);
}

void hd_api_set_keys(struct hd_api *api, const struct hd_keys *keys, const struct hd_jwt_keys *jwt)
{
	api->access.keys = keys;
	api->access.jwt = jwt;
	/* What a revoked key opened ends now, as it would at its expiry. */
	hd_sse_recheck(api->sse, &api->access);
	hd_longpoll_recheck(api->longpoll, &api->access);
	hd_group_http_recheck(api->groups, &api->access);
}

struct hd_api *hd_api_new(uv_loop_t *loop, struct hd_hub *hub, const struct hd_sse_opts *sse_opts,
			  const struct hd_ws_edge_opts *ws_opts)
{
	struct hd_api *api = hd_calloc(1, sizeof(*api));
	api->loop = loop;
	api->hub = hub;
	hd_map_init(&api->key_buckets, KEY_BUCKETS_MAX);
	api->access.hub = hub;
	api->longpoll = hd_longpoll_new(loop, hub, respond_page);
	api->sse = hd_sse_new(loop, hub, sse_opts);
	api->ws = hd_ws_edge_new(loop, hub, ws_opts);
	api->groups = hd_groups_new(loop, hub);
	hd_groups_start(api->groups);
	api->cursors = hd_cursors_new(hub);
	hd_route_init(&api->routes, &api->access);
	add_routes(api);
	hd_sse_routes(api->sse, &api->routes);
	hd_ws_edge_routes(api->ws, &api->routes);
	hd_cursors_routes(api->cursors, &api->routes);
	hd_group_http_routes(api->groups, &api->routes);
	return api;
}

void hd_api_set_webhooks(struct hd_api *api, struct hd_webhooks *w)
{
	api->subs = hd_webhook_http_new(api->loop, w, &api->access);
	hd_webhook_http_routes(api->subs, &api->routes);
}

void hd_api_set_push(struct hd_api *api, struct hd_devices *devices,
		     const struct hd_push_http_opts *o)
{
	struct hd_push_http_opts po = *o;
	po.loop = api->loop;
	api->push = hd_push_http_new(devices, &po);
	hd_push_http_routes(api->push, &api->routes);
}

void hd_api_set_push_subs(struct hd_api *api, struct hd_push_delivery *d)
{
	api->push_subs = hd_push_sub_http_new(api->loop, d);
	hd_push_sub_http_routes(api->push_subs, &api->routes);
}

void hd_api_stop(struct hd_api *api)
{
	api->stopping = true;
	if (api->subs)
		hd_webhook_http_stop(api->subs);
	hd_push_http_stop(api->push);
	hd_push_sub_http_stop(api->push_subs);
	hd_longpoll_release_all(api->longpoll);
	hd_sse_stop(api->sse);
	hd_ws_edge_stop(api->ws);
	hd_groups_stop(api->groups);
}

void hd_api_set_key_rate(struct hd_api *api, const struct hd_rate *rate)
{
	api->key_rate = *rate;
}

void hd_api_free(struct hd_api *api)
{
	hd_map_each(&api->key_buckets, free_bucket, NULL);
	hd_map_fini(&api->key_buckets);
	hd_sse_free(api->sse);
	hd_ws_edge_free(api->ws);
	hd_longpoll_free(api->longpoll);
	hd_groups_free(api->groups);
	hd_cursors_free(api->cursors);
	if (api->subs)
		hd_webhook_http_free(api->subs);
	hd_push_http_free(api->push);
	hd_push_sub_http_free(api->push_subs);
	free(api);
}
