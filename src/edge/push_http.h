/*
 * push_http — the REST routes of push: a user's devices (push/devices.h)
 * and the Web Push application server key (docs/api.md "Devices").
 * Layer: edge. Its rows of the route table (edge/route.h) bring these
 * paths here (loop thread); it talks to the device registry only.
 *
 *   PUT    /v1/users/{id}/devices/{device}  register (201 created, 200 replaced)
 *   GET    /v1/users/{id}/devices           every device of the user
 *   GET    /v1/users/{id}/devices/{device}  one device
 *   DELETE /v1/users/{id}/devices/{device}  remove (204)
 *   POST   /v1/users/{id}/devices/{device}/test  one alert now through the
 *          device's provider; answers {"result","status","reason","device"}
 *          once the provider gave its verdict (acted on as any send's:
 *          hd_push_outcome); 503 when the platform's provider is not
 *          configured; at most HD_PUSH_HTTP_TESTS_MAX in flight (429)
 *   GET    /v1/push/vapid-public-key        {"public_key":"B…"}; 404 without a key
 *
 * Access to the device routes: a client token whose sub is {id} (the app
 * registers its own device) or an API key with admin, as for user cursors
 * (HD_ROUTE_USER). The VAPID public key is public (open row): browsers
 * need it to subscribe.
 *
 * A registration past --push-max-devices-per-user (or the registry's other
 * caps) is 429 with a message naming the limit: the user's state must
 * change (a device deleted) before it can succeed. A change is answered
 * once its records are durable.
 *
 * Device requests (the test send too) that arrive before the registry has
 * loaded wait for the load (edge/load_wait.h: bounded in count and time;
 * past that, 503).
 */
#ifndef HD_EDGE_PUSH_HTTP_H
#define HD_EDGE_PUSH_HTTP_H

#include "edge/route.h"
#include "push/devices.h"
#include "push/push.h"

#include <uv.h>

#define HD_PUSH_HTTP_TESTS_MAX 64       /* test sends in flight */

struct hd_push_http_opts {
	bool allow_private;             /* --push-allow-private: http:// endpoints on loopback */
	const char *apns_environment;   /* borrowed: --push-apns-environment, an APNs device's default */
	struct hd_push *push;           /* borrowed for p's life: providers, outcomes, the VAPID key */
	uv_loop_t *loop;                /* borrowed for p's life: the load wait's timer */
};

struct hd_push_http;

/* Returns owned. Borrows devices for its life (and is its on-loaded
 * callback). */
struct hd_push_http *hd_push_http_new(struct hd_devices *devices, const struct hd_push_http_opts *o);
/* Adds the rows above to t (p borrowed by t). Once. */
void hd_push_http_routes(struct hd_push_http *p, struct hd_route_table *t);
/* Answers the requests still waiting for the load (503) and any later one;
 * frees the wait queue once the loop ran. NULL is a no-op. */
void hd_push_http_stop(struct hd_push_http *p);
/* After every request was answered (the HTTP server shut down) and the
 * push module was freed. NULL is a no-op. */
void hd_push_http_free(struct hd_push_http *p);

#endif
