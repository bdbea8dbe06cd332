/*
 * group_http — the REST rows of the pull consumer groups (groups/groups.h,
 * docs/api.md "Consumer groups"): decodes the group name, hands groups the
 * credential that passed the route's access check as plain data, and
 * rechecks held fetches after the API keys were reloaded.
 * Layer: edge; loop thread.
 */
#ifndef HD_GROUP_HTTP_H
#define HD_GROUP_HTTP_H

#include "edge/access.h"
#include "http/server.h"
#include "edge/route.h"

struct hd_groups;
/* Adds the consumer group rows (/v1/topics/{pattern}/groups/{group}[/fetch|
 * /ack|/nack], groups/groups.h) to t, groups borrowed by t. Every group route
 * is a read of the topic; a topic pattern needs a key with read scope.
 * GET /v1/groups (an admin key) lists every group, over a topic pattern too. */
void hd_group_http_routes(struct hd_groups *groups, struct hd_route_table *t);

/* After the API keys were reloaded: held fetches of groups whose key was
 * revoked, lost its read scope or expired are answered 401 (access
 * borrowed for the call). */
void hd_group_http_recheck(struct hd_groups *groups, const struct hd_access *access);

#endif
