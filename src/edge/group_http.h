/*
 * group_http — the request checks and answers that the two kinds of pull
 * consumer group share: groups/groups.c (groups of one topic) and
 * groups/group_patterns.c (groups over a topic pattern) parse the same fetch
 * query, the same config members and nack delay, and answer with the same
 * JSON and error bodies (docs/api.md "Consumer groups").
 * Layer: edge; loop thread. Each check that fails answers the request (400,
 * with the message the API documents) and returns false or NULL: the caller
 * then only cleans up.
 */
#ifndef HD_GROUP_HTTP_H
#define HD_GROUP_HTTP_H

#include "core/buf.h"
#include "http/server.h"
#include "edge/route.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* Answers req with status and b (taken) as application/json. */
void hd_group_http_json(struct hd_http_request *req, int status, struct hd_buf *b);

/* Answers req with the error body of code (an HD_E*) and a printf message
 * (cut at 255 bytes). */
void hd_group_http_error(struct hd_http_request *req, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Returns the request body as a JSON object (owned), {} for an empty body
 * when empty_ok; or answers 400 and returns NULL. */
json_t *hd_group_http_body(struct hd_http_request *req, bool empty_ok);

/* The fetch query: max (1 .. HD_GROUP_FETCH_MAX, default
 * HD_GROUP_FETCH_DEFAULT) and wait (seconds, 0 .. HD_GROUP_WAIT_MAX_S,
 * default 0). Returns true, or false having answered 400. */
bool hd_group_http_fetch_args(struct hd_http_request *req, uint32_t *max, double *wait_s);

/* The config members of a PUT body that are present: ack_wait_ms,
 * max_deliveries, ordered (others are left as they are). Returns true, or
 * false having answered 400. */
bool hd_group_http_config_args(struct hd_http_request *req, json_t *body, uint32_t *ack_wait_ms,
			  uint32_t *max_deliveries, bool *ordered);

/* A nack body's delay_ms, if present (0 .. HD_GROUP_NACK_DELAY_MAX_MS;
 * *delay_ms is left as it is when absent). Returns true, or false having
 * answered 400. */
bool hd_group_http_delay_arg(struct hd_http_request *req, json_t *body, int64_t *delay_ms);

struct hd_groups;
/* Adds the consumer group rows (/v1/topics/{pattern}/groups/{group}[/fetch|
 * /ack|/nack], groups/groups.h) to t, groups borrowed by t. Every group route
 * is a read of the topic; a topic pattern needs a key with read scope. */
void hd_group_http_routes(struct hd_groups *groups, struct hd_route_table *t);

#endif
