/*
 * ws_edge — the WebSocket edge: the Centrifugo client protocol (v2, JSON or
 * protobuf) over RFC 6455, so the centrifuge SDKs (npm centrifuge, Go,
 * Python, and the protobuf-only Dart, Swift and Kotlin ones) work against
 * herald unchanged; the same sessions also run over the SDK's emulation
 * transports (HTTP-streaming, SSE; edge/ws_emulation.c reads those
 * requests). docs/websocket.md describes it for users;
 * ../shared/research/protocols.md §1 is the wire reference.
 * Layer: edge. The api routes GET /connection/websocket here (loop thread);
 * the edge talks to the hub, decodes frames with http/websocket.h and commands
 * with proto/centrifuge.h (JSON) or proto/centrifuge_pb.h (protobuf),
 * verifies tokens with auth/jwt.h.
 * Implemented by edge/ws_edge.c (life cycle, carriers, input), ws_output.c,
 * ws_subs.c and ws_commands.c behind edge/ws_edge_impl.h.
 *
 * A session: upgrade → `connect` within connect_timeout (else close 3502)
 * with a JWT (sub = user; exp → expires/ttl, refreshed in-band with
 * `refresh`, closed 3005 past exp + expiry grace; expired → error 109; bad →
 * close 3500); anonymous only when allowed. A user U is subscribed server
 * side to user:U (and to the token's `channels`), reported in connect's
 * `subs` and recovered from connect.subs on reconnect.
 *
 * Permissions: every subscribe, publish, history and presence is checked
 * with auth/acl.h (user:{id} for that user only, then the namespace rule);
 * a subscribe may carry a subscription token (a JWT with sub = the user
 * and channel = the topic). Refusals are error 103, an expired
 * subscription token error 109.
 *
 * Commands of a frame run in order; a command that waits (a publish until
 * durable, a subscribe or history that reads the store) holds the ones
 * behind it. Unhandled input is bounded: past 4 × max_message waiting,
 * reading stops until it drains.
 *
 * subscribe / recovery: the topic is watched before it is read, so no event
 * committed meanwhile is lost; events fired while the read runs are held
 * (at most HD_WS_EDGE_HELD_MAX, else close 3010) and sent after the reply, each
 * offset once (a cursor per subscription). With recover:true the missed
 * events come in the reply, all or nothing: when the gap is longer than
 * recover_max, retention removed some, or the epoch differs, the reply says
 * was_recovering:true without recovered and the client reloads.
 *
 * Each event is encoded once per topic and kind of subscriber (format ×
 * carrier), lazily, into one frame that every such subscriber's write
 * shares. A connection whose unsent output would pass
 * the HTTP server's max_pending_bytes is closed 3008 "slow" and resumes from
 * its offset. Ping: an empty message every ping_interval; no pong within
 * pong_timeout → close 3012. Stop: every session is closed 3001 "shutdown".
 */
#ifndef HD_EDGE_WS_EDGE_H
#define HD_EDGE_WS_EDGE_H

#include "core/ratelimit.h"
#include "edge/route.h"
#include "http/server.h"
#include "hub/hub.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define HD_WS_EDGE_HELD_MAX 4096 /* events held for one subscription while it is read */

struct hd_jwt_keys;
struct hd_cproxy;

struct hd_ws_edge_opts {
	const struct hd_jwt_keys *keys; /* borrowed; NULL = no tokens accepted */
	bool anonymous;                 /* connects without a token allowed */
	uint32_t ping_interval_ms;
	uint32_t pong_timeout_ms;
	uint32_t connect_timeout_ms;
	uint32_t expiry_grace_ms;       /* after a token's exp before closing 3005 */
	size_t max_message;
	uint32_t recover_max;
	uint32_t max_subscriptions;
	/* Publishes a second per connection (per_sec 0 = no limit): beyond,
	 * error 111 "too many requests" (temporary). */
	struct hd_rate publish_rate;
	/* Proxies to the app backend (connect without a token, subscribe,
	 * publish, rpc); borrowed, NULL = none. */
	struct hd_cproxy *cproxy;
	/* A failed sub-refresh proxy call is made again this much later (the
	 * subscription stays meanwhile, as in Centrifugo). */
	uint32_t sub_refresh_retry_ms;
};

struct hd_ws_edge;

/* Returns owned. Borrows loop and hub for its life; copies opts. */
struct hd_ws_edge *hd_ws_edge_new(uv_loop_t *loop, struct hd_hub *hub,
				  const struct hd_ws_edge_opts *opts);
/* Adds the row of GET /connection/websocket to t, e borrowed by t: it
 * upgrades the request (or answers 400/426/503). The row is open: clients
 * authenticate inside the protocol, with connect's token. */
void hd_ws_edge_routes(struct hd_ws_edge *e, struct hd_route_table *t);
/* Open sessions. */
size_t hd_ws_edge_sessions(const struct hd_ws_edge *e);
/* Closes every session with 3001 "shutdown" and refuses new ones (503). */
void hd_ws_edge_stop(struct hd_ws_edge *e);

/*
 * The emulation transports (edge/ws_emulation.c calls these on the loop
 * thread). hd_ws_edge_stream starts a session whose replies go down req's
 * streaming response (HTTP-streaming, or SSE when sse is set; protobuf
 * only for HTTP-streaming) and runs the commands in initial[0, n)
 * (borrowed; JSON lines or delimited protobuf Commands, normally the
 * connect). Its connect reply carries `session`, the secret id the
 * client's later commands name: hd_ws_edge_emulate runs data[0, n) in that
 * session. Both return 0 (stream: req is the session's), or HD_EINVAL
 * (malformed commands), HD_EUNAVAIL (stopping; stream: req must still be
 * answered); emulate also HD_ENOTFOUND (no such live session) and
 * HD_ELIMIT (too much unhandled input).
 */
int hd_ws_edge_stream(struct hd_ws_edge *e, struct hd_http_request *req, bool sse, bool protobuf,
		      const char *initial, size_t n);
int hd_ws_edge_emulate(struct hd_ws_edge *e, const char *session, const char *data, size_t n);
/* After the HTTP server has shut down and the loop ran the closes. */
void hd_ws_edge_free(struct hd_ws_edge *e);

#endif
