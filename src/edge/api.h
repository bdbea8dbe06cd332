/*
 * api — herald's REST API: publish (CloudEvents), read, topic admin,
 * health and metrics.
 * Layer: edge. The HTTP server calls hd_api_handle for every request (loop
 * thread); the api talks only to the hub. docs/api.md describes every route.
 *
 *   POST   /v1/topics/{topic}/events   publish (structured, binary, batch or raw body)
 *   GET    /v1/topics/{topic}/events   read: ?after=N&limit=M (M ≤ 1000)
 *   GET    /v1/topics                  list: ?prefix=&after=&limit=
 *   GET    /v1/topics/{topic}          one topic
 *   DELETE /v1/topics/{topic}          delete a topic and its events
 *   GET    /healthz /readyz /metrics
 */
#ifndef HD_API_H
#define HD_API_H

#include "http/server.h"
#include "hub/hub.h"

#define HD_API_READ_LIMIT_MAX 1000
#define HD_API_READ_LIMIT_DEFAULT 100
#define HD_API_LIST_LIMIT_MAX 1000

/* The hd_http_handler of herald; arg is the hub (borrowed). */
void hd_api_handle(struct hd_http_request *req, void *hub);

#endif
