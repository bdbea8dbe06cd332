/*
 * sse — Server-Sent Events delivery with gap-free resume.
 * Layer: edge. The api routes two GETs here (loop thread); sse talks only to
 * the hub and streams through the HTTP server's streaming API.
 *
 *   GET /v1/topics/{topic}/sse            one topic; the event id is the offset
 *   GET /v1/sse?topic=a&topic=b           up to HD_SSE_TOPICS_MAX topics; the id
 *                                         is a composite cursor "a=5,b=7"
 *
 * Resume: the Last-Event-ID header, else ?after= (an offset, or a composite
 * cursor for /v1/sse); a bad cursor is 400. With neither, a stream starts at
 * the tail (only new events). Each event is
 *     id: <cursor>\nevent: <CloudEvents type>\ndata: <event JSON>\n\n
 * where the "event:"/"data:" part is encoded once per committed event and
 * shared by every stream (a small cache keyed by the event's stored JSON).
 *
 * Gap-free catch-up then live: a stream watches all its topics from the
 * start, then reads each topic from its cursor in pages; a watch fire
 * during catch-up only marks the topic as changed. A topic goes live when a
 * read finds nothing new and either came from memory (it reflects every
 * commit applied on the loop) or no commit of the topic fired while it ran.
 * From then on each fired event with offset > cursor is written. Catch-up
 * pauses while more than half of max-pending-bytes waits to be sent.
 *
 * A read that reports events removed by retention sends
 *     id: <cursor>\nevent: reset\ndata: {"topic":..,"after":N,"first":F}\n\n
 * and continues at F. A client whose unsent output would pass
 * max-pending-bytes is disconnected (slow_consumer_disconnects_total).
 *
 * Access: every topic of a stream must pass hd_access_read (an API key
 * with read scope, or a client token the namespace rules let in; 401/403
 * otherwise). A stream opened with a client token is a connection of the
 * token's user, and ends when the token expires:
 *     event: expired\ndata: {"reason":"token expired"}\n\n
 * then the end of the stream.
 */
#ifndef HD_SSE_H
#define HD_SSE_H

#include "edge/access.h"
#include "edge/route.h"
#include "http/server.h"
#include "hub/hub.h"

#include <stdint.h>
#include <uv.h>

#define HD_SSE_TOPICS_MAX 32

struct hd_sse_opts {
	uint32_t keepalive_ms; /* a ": ka" comment this often */
	uint32_t retry_ms;     /* the retry field of the first chunk */
	size_t max_pending_bytes; /* the HTTP server's limit: catch-up pauses above half */
};

struct hd_sse;

/* Returns owned. Borrows loop and hub for its life; copies opts. */
struct hd_sse *hd_sse_new(uv_loop_t *loop, struct hd_hub *hub, const struct hd_sse_opts *opts);
/* Adds the SSE rows (the two routes below) to t; sse borrowed by t. */
void hd_sse_routes(struct hd_sse *sse, struct hd_route_table *t);
/* GET /v1/topics/{topic}/sse; topic is the decoded, checked name (borrowed),
 * its read already allowed by the route's guard. ac and who (the request's
 * credentials) are borrowed for the call. */
void hd_sse_handle_topic(struct hd_sse *sse, struct hd_http_request *req, const char *topic,
			 const struct hd_access *ac, const struct hd_access_id *who);
/* GET /v1/sse?topic=…; names come from the query. */
void hd_sse_handle_multi(struct hd_sse *sse, struct hd_http_request *req,
			 const struct hd_access *ac, const struct hd_access_id *who);
/* After the API keys were reloaded: every stream opened with a key that is
 * gone, has a new secret, lost its read scope or expired gets
 * `event: revoked` ({"reason":"API key revoked"}) and ends; the others
 * follow their key's expiry as configured now. */
void hd_sse_recheck(struct hd_sse *sse, const struct hd_access *ac);
/* Open streams. */
size_t hd_sse_streams(const struct hd_sse *sse);
/* Ends every stream (their queued output is still sent) and refuses new
 * ones with 503 (shutdown). */
void hd_sse_stop(struct hd_sse *sse);
/* After the HTTP server has shut down and the loop ran the closes. */
void hd_sse_free(struct hd_sse *sse);

#endif
