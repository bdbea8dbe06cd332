/*
 * load_wait — the queue of requests that arrive before a registry has
 * loaded (webhook subscriptions, the device registry, push subscriptions):
 * they wait, and go through the route table again once the registry says
 * it has loaded, instead of being answered 503 at start.
 * Layer: edge (a helper of webhook_http.c, push_http.c, push_sub_http.c).
 * Loop thread.
 *
 * Bounds: at most HD_LOAD_WAIT_MAX requests wait (more get 503 "<what> is
 * still loading; retry shortly" with Retry-After); one that waited
 * HD_LOAD_WAIT_MS gets the same 503, so nothing waits for a load that never
 * ends (a failed load). A client that leaves while its request waits keeps
 * its slot until then: the server holds the request until it is answered
 * (http/server.h) and drops that answer.
 *
 * Re-dispatch reads the credentials again and runs the row's guard and
 * handler as for a new request (edge/route.h); the handler then sees the
 * registry loaded. HERALD_TEST_LOAD_WAIT_MAX and HERALD_TEST_LOAD_WAIT_MS
 * (read at hd_load_wait_new) lower the bounds for the e2e tests.
 */
#ifndef HD_EDGE_LOAD_WAIT_H
#define HD_EDGE_LOAD_WAIT_H

#include "edge/route.h"
#include "http/server.h"

#include <uv.h>

#define HD_LOAD_WAIT_MAX 1000           /* requests waiting, per registry */
#define HD_LOAD_WAIT_MS 10000           /* the longest a request waits */

struct hd_load_wait;

/* Returns owned (freed by hd_load_wait_close). Borrows loop and t for its
 * life; what (static) names the registry in answers ("the device
 * registry"). */
struct hd_load_wait *hd_load_wait_new(uv_loop_t *loop, const struct hd_route_table *t,
				      const char *what);
/* Takes req, which the caller's handler would answer but the registry has
 * not loaded: it waits, or is answered 503 now (past the bound, or after
 * hd_load_wait_close's stop began). */
void hd_load_wait_hold(struct hd_load_wait *w, struct hd_http_request *req);
/* The registry has loaded: every waiting request is dispatched again
 * through the table, in arrival order. */
void hd_load_wait_loaded(struct hd_load_wait *w);
/* Answers every waiting request 503 "herald is stopping" and frees w once
 * the loop ran its timer's close. w must not be used after. NULL: no-op. */
void hd_load_wait_close(struct hd_load_wait *w);

#endif
