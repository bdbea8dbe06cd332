/*
 * webhook_http — the REST routes of webhook subscriptions (docs/api.md
 * "Webhook subscriptions"); the deliveries themselves are
 * webhook/delivery.h.
 * Layer: edge. Its rows of the route table (edge/route.h) bring every
 * /v1/subscriptions request here (loop thread) with the caller's
 * credentials.
 *
 *   POST   /v1/subscriptions                    create (201, the secret shown once)
 *   GET    /v1/subscriptions[?topic=T]          list (without secrets)
 *   GET    /v1/subscriptions/{id}               one, with its delivery state
 *   DELETE /v1/subscriptions/{id}               delete (204)
 *   POST   /v1/subscriptions/{id}/pause|resume  stop or go on delivering
 *   GET    /v1/subscriptions/{id}/attempts?limit=N   the newest attempts (memory only)
 *   POST   /v1/subscriptions/{id}/replay?from=N|RFC3339[&topic=T]   deliver again from there
 *   POST   /v1/subscriptions/{id}/secret        rotate the signing secret
 *
 * Who may: managing a subscription of topic T (or of a topic pattern: read
 * scope is not per namespace, so it covers every topic a pattern can
 * match) needs an API key with read
 * scope (a client token is not enough: a webhook makes herald call out);
 * the list of every subscription an admin key (with ?topic=T, read scope).
 * In development mode (no key configured) anyone may.
 *
 * Requests that arrive before the subscriptions are loaded wait for the
 * load (edge/load_wait.h: bounded in count and time; past that, 503).
 */
#ifndef HD_EDGE_WEBHOOK_HTTP_H
#define HD_EDGE_WEBHOOK_HTTP_H

#include "edge/access.h"
#include "edge/route.h"
#include "http/server.h"
#include "webhook/delivery.h"

#define HD_WEBHOOK_HTTP_ATTEMPTS_DEFAULT 20

struct hd_webhook_http;

/* Returns owned. Borrows loop, webhooks and access for its life. */
struct hd_webhook_http *hd_webhook_http_new(uv_loop_t *loop, struct hd_webhooks *w,
					    const struct hd_access *access);
/* Starts loading the subscriptions (hd_webhooks_start, with e as the
 * on-loaded callback); after hd_webhook_http_routes. Once. */
void hd_webhook_http_start(struct hd_webhook_http *e);

/* Adds the rows above to t (e borrowed by t). They are a special case of
 * the route table (HD_ROUTE_SELF): access is decided here, from the body's
 * topic, the query's or the stored subscription's. */
void hd_webhook_http_routes(struct hd_webhook_http *e, struct hd_route_table *t);
/* Answers the requests still waiting for the load (503) and any later one;
 * frees the wait queue once the loop ran (before hd_webhook_http_free). */
void hd_webhook_http_stop(struct hd_webhook_http *e);
void hd_webhook_http_free(struct hd_webhook_http *e);

#endif
