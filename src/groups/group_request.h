/*
 * group_request — the checks of a consumer group request that the two kinds
 * of pull group share: groups/groups.c (groups of one topic) and
 * groups/group_patterns.c (groups over a topic pattern) read the same fetch
 * query, the same config members and nack delay (docs/api.md "Consumer
 * groups").
 * Layer: groups; loop thread. Each check that fails answers the request
 * (400, with the message the API documents, http/server.h) and returns
 * false or NULL: the caller then only cleans up.
 */
#ifndef HD_GROUP_REQUEST_H
#define HD_GROUP_REQUEST_H

#include "http/server.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* Returns the request body as a JSON object (owned), {} for an empty body
 * when empty_ok; or answers 400 and returns NULL. */
json_t *hd_group_request_body(struct hd_http_request *req, bool empty_ok);

/* The fetch query: max (1 .. HD_GROUP_FETCH_MAX, default
 * HD_GROUP_FETCH_DEFAULT) and wait (seconds, 0 .. HD_GROUP_WAIT_MAX_S,
 * default 0). Returns true, or false having answered 400. */
bool hd_group_request_fetch_args(struct hd_http_request *req, uint32_t *max, double *wait_s);

/* The config members of a PUT body that are present: ack_wait_ms,
 * max_deliveries, ordered (others are left as they are). Returns true, or
 * false having answered 400. */
bool hd_group_request_config_args(struct hd_http_request *req, json_t *body, uint32_t *ack_wait_ms,
				  uint32_t *max_deliveries, bool *ordered);

/* A nack body's delay_ms, if present (0 .. HD_GROUP_NACK_DELAY_MAX_MS;
 * *delay_ms is left as it is when absent). Returns true, or false having
 * answered 400. */
bool hd_group_request_delay_arg(struct hd_http_request *req, json_t *body, int64_t *delay_ms);

#endif
