/*
 * api — herald's REST API: publish (CloudEvents), read, topic admin,
 * health and metrics.
 * Layer: edge. The HTTP server calls hd_api_handle for every request (loop
 * thread); the api talks only to the hub. docs/api.md describes every route.
 *
 *   POST   /v1/topics/{topic}/events   publish (structured, binary, batch or raw body)
 *   GET    /v1/topics/{topic}/events   read: ?after=N&limit=M (M ≤ 1000)&wait=S (long-poll)
 *   GET    /v1/topics                  list: ?prefix=&after=&limit=
 *   GET    /v1/topics/{topic}          one topic
 *   DELETE /v1/topics/{topic}          delete a topic and its events
 *   POST   /v1/users/{id}/notifications publish to user:{id}
 *   GET    /v1/topics/{topic}/sse      Server-Sent Events of one topic (edge/sse.h)
 *   GET    /v1/sse?topic=a&topic=b     Server-Sent Events of several topics
 *   GET    /v1/topics/{topic}/presence the connections following a topic
 *   PUT|GET|DELETE /v1/topics/{topic}/groups/{group}   a pull consumer group (groups/groups.h)
 *   POST   /v1/topics/{topic}/groups/{group}/fetch|ack|nack
 *   GET    /v1/users/{id}/connections  every live connection of a user
 *   GET|POST|DELETE /v1/users/{id}/cursors[/{name}]  a user's server-side cursors (edge/cursors.h)
 *   POST|GET /v1/subscriptions[/{id}[/…]]  webhook subscriptions (edge/webhook_http.h)
 *   PUT|GET|DELETE /v1/users/{id}/devices[/{device}]  push devices (edge/push_http.h)
 *   GET    /v1/push/vapid-public-key   the Web Push application server key
 *   GET    /connection/websocket       WebSocket, Centrifugo client protocol (edge/ws_edge.h)
 *   GET    /v1/groups                  every pull group (edge/group_http.h)
 *   GET    /v1/stats, /v1/topics/{topic}/policy  the node's overview, a topic's options (edge/stats.h)
 *   GET    /ui[/{file}]                the admin console (edge/ui.h; main.c adds these rows)
 *   GET    /healthz /readyz /metrics
 *
 * Who may call what (edge/access.h; docs/api.md "Authentication"): publish
 * needs a key with publish:NS; reads, SSE and long-poll a key with read or
 * a client token the namespace rules let in; topic delete, presence and
 * connections an admin key; /metrics a metrics (or admin) key; /healthz
 * and /readyz are open. With no key configured only the namespace rules
 * apply (development mode). Each route is a row of the route table
 * (edge/route.h) with its guard: the check runs there, before the handler.
 */
#ifndef HD_API_H
#define HD_API_H

#include "http/server.h"
#include "edge/access.h"
#include "edge/cursors.h"
#include "groups/groups.h"
#include "edge/route.h"
#include "edge/sse.h"
#include "edge/ws_edge.h"
#include "hub/hub.h"
#include "core/map.h"
#include "core/ratelimit.h"

#define HD_API_READ_LIMIT_MAX 1000
#define HD_API_READ_LIMIT_DEFAULT 100
#define HD_API_LIST_LIMIT_MAX 1000

struct hd_longpoll;
struct hd_webhook_http;
struct hd_webhooks;
struct hd_push_http;
struct hd_push_http_opts;
struct hd_devices;

struct hd_api {
	struct hd_hub *hub;             /* borrowed */
	uv_loop_t *loop;                /* borrowed */
	struct hd_longpoll *longpoll;   /* owned */
	struct hd_sse *sse;             /* owned */
	struct hd_ws_edge *ws;          /* owned */
	struct hd_groups *groups;       /* owned */
	struct hd_cursors *cursors;     /* owned */
	struct hd_webhook_http *subs;  /* owned; NULL until hd_api_set_webhooks */
	struct hd_push_http *push;      /* owned; NULL until hd_api_set_push */
	struct hd_push_sub_http *push_subs; /* owned; NULL until hd_api_set_push_subs */
	struct hd_access access;        /* API keys and client token keys, borrowed */
	struct hd_route_table routes;   /* every edge's rows (edge/route.h) */
	struct hd_rate key_rate;        /* events a second per API key (publish) */
	struct hd_map key_buckets;      /* key name → struct hd_bucket (owned) */
	bool stopping;
};

/* Returns owned. Borrows loop and hub for its life; copies the options.
 * The hub's engine must be set: the api loads the consumer groups. */
struct hd_api *hd_api_new(uv_loop_t *loop, struct hd_hub *hub, const struct hd_sse_opts *sse_opts,
			  const struct hd_ws_edge_opts *ws_opts);
/* Sets the API keys (NULL or empty: development mode, see edge/access.h)
 * and the client token keys; both borrowed until replaced or the api is
 * freed. May be called again (a reload) between requests. */
void hd_api_set_keys(struct hd_api *api, const struct hd_keys *keys, const struct hd_jwt_keys *jwt);
/* Sets the publish rate per API key (per_sec 0 = none, the default): a
 * publish whose events would take the key past it gets 429 with
 * Retry-After. Before the first request. */
void hd_api_set_key_rate(struct hd_api *api, const struct hd_rate *rate);
/* Serves the webhook subscription routes from w (borrowed until the api
 * is freed); the caller starts the load (hd_webhook_http_start of
 * api->subs). Before the first request; without it /v1/subscriptions is
 * 404. */
void hd_api_set_webhooks(struct hd_api *api, struct hd_webhooks *w);
/* Serves the device and VAPID key routes from devices (borrowed until the
 * api is freed) with o (copied). Before the first request; without it
 * those paths are 404. */
void hd_api_set_push(struct hd_api *api, struct hd_devices *devices,
		     const struct hd_push_http_opts *o);
/* Serves /v1/push/subscriptions from d (borrowed until the api is freed).
 * Before the first request; without it those paths are 404. */
struct hd_push_delivery;
void hd_api_set_push_subs(struct hd_api *api, struct hd_push_delivery *d);
/* The hd_http_handler of herald; arg is the api. */
void hd_api_handle(struct hd_http_request *req, void *api);
/* Answers every held long-poll now, and any later one at once; ends every
 * SSE stream and WebSocket session and refuses new ones (shutdown). */
void hd_api_stop(struct hd_api *api);
/* After the HTTP server has shut down and the loop ran the closes. */
void hd_api_free(struct hd_api *api);

#endif
