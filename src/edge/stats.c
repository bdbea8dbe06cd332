/* stats — see stats.h. */
#include "edge/stats.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/metrics.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define STATS_JSON_MAX 4096

/* How long a count of the users online across nodes is reused. */
#define ONLINE_CACHE_MS 1000

struct hd_stats {
	struct hd_hub *hub;       /* borrowed */
	char *data_dir;           /* owned */
	int64_t started_ms;       /* wall clock, for "started" */
	uint64_t started_mono_ms; /* for "uptime_s" */
	/* users_online across nodes (an engine shared by several nodes): the
	 * last count and when it was taken (0: never). */
	uint64_t online;
	uint64_t online_mono_ms;
};

/* A GET /v1/stats waiting for the count of users online. */
struct stats_req {
	struct hd_stats *s;
	struct hd_http_request *req;
	struct hd_hub_reg q;
};

struct hd_stats *hd_stats_new(struct hd_hub *hub, const char *data_dir)
{
	struct hd_stats *s = hd_calloc(1, sizeof(*s));
	s->hub = hub;
	s->data_dir = hd_strdup(data_dir);
	s->started_ms = hd_now_ms();
	s->started_mono_ms = hd_mono_ms();
	return s;
}

void hd_stats_free(struct hd_stats *s)
{
	if (!s)
		return;
	free(s->data_dir);
	free(s);
}

/* The size of data_dir/name, 0 when it is not there. */
static uint64_t file_size(const char *dir, const char *name)
{
	char path[1100];
	struct stat st;
	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return 0;
	return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static uint64_t counter(enum hd_metric_id id)
{
	int64_t v = hd_metrics_get(id);
	return v > 0 ? (uint64_t)v : 0;
}

/* users_online: the cached count across nodes, else this node's users. */
static uint64_t users_online(const struct hd_stats *s)
{
	if (hd_hub_reg_shared(s->hub) && s->online_mono_ms)
		return s->online;
	return hd_hub_users(s->hub);
}

void hd_stats_json(const struct hd_stats *s, struct hd_buf *b)
{
	char started[40], now[40];
	int64_t now_ms = hd_now_ms();
	const char *node = hd_hub_node(s->hub);

	hd_clock_format_rfc3339(s->started_ms, started, sizeof(started));
	hd_clock_format_rfc3339(now_ms, now, sizeof(now));
	hd_buf_printf(b, "{\"version\":\"%s\",\"node\":\"", HD_VERSION);
	hd_buf_json_escape(b, node, strlen(node));
	hd_buf_printf(b, "\",\"time\":\"%s\",\"started\":\"%s\",\"uptime_s\":%" PRIu64 ",", now, started,
		      (hd_mono_ms() - s->started_mono_ms) / 1000);
	hd_buf_printf(b,
		      "\"publishes_total\":%" PRIu64 ",\"publish_bytes_total\":%" PRIu64
		      ",\"deliveries_total\":%" PRIu64 ",\"reads_total\":%" PRIu64
		      ",\"publish_errors_total\":%" PRIu64 ",",
		      counter(HD_M_publishes_total), counter(HD_M_publish_bytes_total),
		      counter(HD_M_deliveries_total), counter(HD_M_reads_total),
		      counter(HD_M_publish_errors_total));
	hd_buf_printf(b,
		      "\"connections\":{\"open\":%" PRIu64 ",\"websocket\":%" PRIu64 ",\"sse\":%" PRIu64
		      ",\"longpoll\":%" PRIu64 "},\"users_online\":%" PRIu64 ",",
		      counter(HD_M_connections_open), counter(HD_M_ws_sessions),
		      counter(HD_M_sse_streams), counter(HD_M_longpoll_waiting), users_online(s));
	hd_buf_printf(b, "\"topics\":%" PRIu64 ",\"store_bytes\":%" PRIu64 ",", counter(HD_M_topics),
		      file_size(s->data_dir, "herald.db") + file_size(s->data_dir, "herald.db-wal"));
	hd_buf_printf(b,
		      "\"webhooks\":{\"subscriptions\":%" PRIu64 ",\"inflight\":%" PRIu64
		      ",\"deliveries_total\":%" PRIu64 ",\"attempt_failures_total\":%" PRIu64
		      ",\"dead_letters_total\":%" PRIu64 "},",
		      counter(HD_M_webhook_subscriptions), counter(HD_M_webhook_inflight),
		      counter(HD_M_webhook_deliveries_total), counter(HD_M_webhook_attempt_failures_total),
		      counter(HD_M_webhook_dead_letters_total));
	hd_buf_printf(b, "\"slow_consumer_disconnects_total\":%" PRIu64 "}",
		      counter(HD_M_slow_consumer_disconnects_total));
}

static void respond_stats(struct hd_http_request *req, const struct hd_stats *s)
{
	struct hd_buf b;
	hd_buf_init(&b, STATS_JSON_MAX);
	hd_stats_json(s, &b);
	hd_http_respond_json(req, 200, &b);
	hd_buf_fini(&b);
}

/* The count across nodes came: kept for ONLINE_CACHE_MS. On an error the
 * answer carries the last count (or this node's users). */
static void online_done(struct hd_hub_reg *q)
{
	struct stats_req *sr = q->arg;
	if (!q->err) {
		sr->s->online = q->count;
		sr->s->online_mono_ms = hd_mono_ms();
	}
	respond_stats(sr->req, sr->s);
	hd_hub_reg_fini(q);
	free(sr);
}

static void route_stats(struct hd_http_request *req, const struct hd_route_ctx *ctx)
{
	struct hd_stats *s = ctx->row->arg;
	if (!hd_hub_reg_shared(s->hub) ||
	    (s->online_mono_ms && hd_mono_ms() - s->online_mono_ms < ONLINE_CACHE_MS)) {
		respond_stats(req, s);
		return;
	}
	struct stats_req *sr = hd_calloc(1, sizeof(*sr));
	sr->s = s;
	sr->req = req;
	sr->q.kind = HD_REG_ONLINE;
	sr->q.key = "";
	sr->q.done = online_done;
	sr->q.arg = sr;
	if (hd_hub_reg_query(s->hub, &sr->q)) {
		free(sr);
		respond_stats(req, s); /* the engine is down: the last count */
	}
}

/* GET /v1/topics/{topic}/policy: the namespace options that apply to the
 * topic (whether or not it exists yet). */
static void route_policy(struct hd_http_request *req, const struct hd_route_ctx *ctx)
{
	struct hd_stats *s = ctx->row->arg;
	const struct hd_ns_opts *ns = hd_hub_ns(s->hub, ctx->topic);
	const char *colon = strchr(ctx->topic, ':');
	struct hd_buf b;

	hd_buf_init(&b, STATS_JSON_MAX);
	hd_buf_puts(&b, "{\"topic\":\"");
	hd_buf_json_escape(&b, ctx->topic, strlen(ctx->topic));
	hd_buf_puts(&b, "\",\"namespace\":\"");
	hd_buf_json_escape(&b, ctx->topic, colon ? (size_t)(colon - ctx->topic) : 0);
	hd_buf_printf(&b,
		      "\",\"retention_max_age_ms\":%" PRId64 ",\"retention_max_count\":%" PRIu64
		      ",\"dedup_window_ms\":%" PRId64 ",\"max_event_size\":%" PRIu64 ",\"history\":%s}",
		      ns->retention_max_age_ms, ns->retention_max_count, ns->dedup_window_ms,
		      ns->max_event_size, ns->history ? "true" : "false");
	hd_http_respond_json(req, 200, &b);
	hd_buf_fini(&b);
}

void hd_stats_routes(struct hd_stats *s, struct hd_route_table *t)
{
	const struct hd_route rows[] = {
		{HTTP_GET, "/v1/stats", HD_ROUTE_KEY, HD_KEY_ADMIN, route_stats, s, 0, 0},
		{HTTP_GET, "/v1/topics/{topic}/policy", HD_ROUTE_KEY, HD_KEY_ADMIN, route_policy, s, 0, 0},
	};
	hd_route_add_all(t, rows, sizeof(rows) / sizeof(rows[0]));
}
