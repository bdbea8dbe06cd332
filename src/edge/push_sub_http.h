/*
 * push_sub_http — the REST routes of push subscriptions (push/
 * push_delivery.h; docs/api.md "Push subscriptions"), mirroring
 * /v1/subscriptions in paths and statuses.
 * Layer: edge. Its rows of the route table (edge/route.h) bring these paths
 * here (loop thread); it talks to the push delivery only.
 *
 *   POST   /v1/push/subscriptions              create (201 with its JSON)
 *   GET    /v1/push/subscriptions              list
 *   GET    /v1/push/subscriptions/{id}         one
 *   DELETE /v1/push/subscriptions/{id}         remove (204)
 *   GET    /v1/push/subscriptions/{id}/attempts  the last failed sends
 *   POST   /v1/push/subscriptions/{id}/pause   pause (200 with its JSON)
 *   POST   /v1/push/subscriptions/{id}/resume  resume (200 with its JSON)
 *   POST   /v1/push/subscriptions/{id}/replay?from=N[&topic=T]  deliver from offset N again
 *
 * Access: an API key with admin on every row (push subscriptions decide
 * whose phones wake up).
 *
 * Requests that arrive before the subscriptions have loaded wait for the
 * load (edge/load_wait.h: bounded in count and time; past that, 503; a
 * failed load never ends, so they get the 503).
 */
#ifndef HD_EDGE_PUSH_SUB_HTTP_H
#define HD_EDGE_PUSH_SUB_HTTP_H

#include "edge/route.h"
#include "push/push_delivery.h"

struct hd_push_sub_http;

/* Returns owned. Borrows loop and d for its life (and is d's on-loaded
 * callback). */
struct hd_push_sub_http *hd_push_sub_http_new(uv_loop_t *loop, struct hd_push_delivery *d);
/* Adds the rows above to t (p borrowed by t). Once. */
void hd_push_sub_http_routes(struct hd_push_sub_http *p, struct hd_route_table *t);
/* Answers the requests still waiting for the load (503) and any later one;
 * frees the wait queue once the loop ran. NULL is a no-op. */
void hd_push_sub_http_stop(struct hd_push_sub_http *p);
/* After every request was answered. NULL is a no-op. */
void hd_push_sub_http_free(struct hd_push_sub_http *p);

#endif
