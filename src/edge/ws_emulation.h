/*
 * ws_emulation — the emulation transports of Centrifugo's client SDKs, the
 * fallbacks where WebSockets are blocked: HTTP-streaming
 * (POST /connection/http_stream) and SSE (GET /connection/sse), with
 * POST /emulation for the client's later commands.
 * Layer: edge, a part of the WebSocket edge (edge/ws_edge.c runs the
 * sessions; this file reads the requests). Loop thread only; registered by
 * hd_ws_edge_routes.
 *
 * The wire, as centrifuge-js 5 speaks it (transport_http_stream.ts,
 * transport_sse.ts):
 *   - HTTP-streaming: the request body is the first commands (the
 *     connect), JSON lines (Content-Type application/json) or delimited
 *     protobuf Commands (application/octet-stream); the response streams
 *     the replies: JSON '\n'-terminated, protobuf delimited.
 *   - SSE: the first commands are the query parameter cf_connect (JSON
 *     lines); each reply is one "data:" event. JSON only.
 *   - /emulation: JSON {"session":"…","node":"…","data":"<command lines>"}
 *     (data a string, as the SDK's JSON.stringify writes it; an object is
 *     taken as one command), or a protobuf EmulationRequest (node 1,
 *     session 2, data 3) with Content-Type application/octet-stream.
 *     Answers 204; 404 when the session is gone (the client reconnects),
 *     400 for a malformed request, 429 when the session has too much
 *     unhandled input.
 * The connect reply carries `session`, a random id the client names in
 * /emulation; it is a secret (unlike the client id, which presence shows).
 */
#ifndef HD_EDGE_WS_EMULATION_H
#define HD_EDGE_WS_EMULATION_H

#include "edge/route.h"

struct hd_ws_edge;

/* Adds the three routes, handled by e's sessions. */
void hd_ws_emulation_routes(struct hd_ws_edge *e, struct hd_route_table *t);

#endif
