/*
 * groups — pull consumer groups: competing consumers that fetch leased
 * batches of a topic's events, acknowledge them, and get them again when
 * they do not (docs/api.md "Consumer groups").
 * Layer: groups (a consumer over consume/, below edge; it answers through
 * http/server.h). edge/group_http.c routes
 * /v1/topics/{topic}/groups/{group}[/fetch|ack|nack] here after the access
 * check (loop thread); groups talks to the hub and the consume core. A
 * topic that is a pattern ("orders.*", hub/topic_pattern.h) goes to
 * groups/group_patterns.h, which owns those groups and their rows.
 *
 * Where state lives:
 *   - durable, through the hub's group ops (the store's groups table): the
 *     group's config and its ack state (floor + acked offsets above it,
 *     consume/lease.h's durable form). Written on create, on every ack that
 *     changes it and by dead-lettering; an ack is answered only after its
 *     state is committed. Loaded once at start (hd_groups_start);
 *     requests that arrive before the load ends wait for it;
 *   - in memory only: leases, delivery counts, the redelivery count and
 *     held fetches. After a restart every un-acked event above the floor is
 *     delivered again, with its delivery count starting from 0.
 *   - with an engine that keeps the leases (hd_hub_glease_shared: Redis,
 *     several nodes), a group keeps its leases, delivery counts, floor and
 *     config there instead, shared by every node (groups.c "Shared
 *     leases"; a group over a pattern: per matching topic,
 *     group_patterns.c); only held fetches stay in memory.
 *
 * Limits: HD_GROUPS_MAX groups; HD_GROUP_WINDOW_MAX un-acked events per
 * group (leased or waiting; a fetch hands out nothing new past it); a
 * fetch returns at most HD_GROUP_FETCH_MAX events and waits at most
 * HD_GROUP_WAIT_MAX_S seconds.
 */
#ifndef HD_GROUPS_H
#define HD_GROUPS_H

#include "groups/group_waiters.h"
#include "http/server.h"
#include "hub/hub.h"

#include <uv.h>

#define HD_GROUPS_MAX 10000
#define HD_GROUP_WINDOW_MAX 10000
#define HD_GROUP_FETCH_MAX 1000
#define HD_GROUP_FETCH_DEFAULT 10
#define HD_GROUP_WAIT_MAX_S 60
#define HD_GROUP_ACK_WAIT_DEFAULT_MS 30000
#define HD_GROUP_ACK_WAIT_MAX_MS (12 * 3600 * 1000)
#define HD_GROUP_MAX_DELIVERIES_DEFAULT 5
#define HD_GROUP_MAX_DELIVERIES_MAX 1000
#define HD_GROUP_NACK_DELAY_MAX_MS (12 * 3600 * 1000)
#define HD_GROUP_ACK_OFFSETS_MAX 1000

struct hd_groups;

/* Returns owned. Borrows loop and hub for its life. */
struct hd_groups *hd_groups_new(uv_loop_t *loop, struct hd_hub *hub);
/* Loads the durable groups (the hub's engine must be set). Loop thread. */
void hd_groups_start(struct hd_groups *g);

enum hd_group_action {
	HD_GROUP_ACT_INFO,    /* GET    …/groups/{group} */
	HD_GROUP_ACT_CREATE,  /* PUT    …/groups/{group} */
	HD_GROUP_ACT_DELETE,  /* DELETE …/groups/{group} */
	HD_GROUP_ACT_FETCH,   /* POST   …/groups/{group}/fetch */
	HD_GROUP_ACT_ACK,     /* POST   …/groups/{group}/ack */
	HD_GROUP_ACT_NACK,    /* POST   …/groups/{group}/nack */
};

/* Handles one request for group `name` (URL-decoded, unchecked) of topic
 * (checked); answers req exactly once, now or later. cred (copied) is the
 * credential that allowed it: a fetch held at its expiry, or when a reload
 * revokes its key (hd_groups_recheck), is answered 401. Loop thread. */
void hd_groups_handle(struct hd_groups *g, struct hd_http_request *req, enum hd_group_action act,
		      const char *topic, const char *name, const struct hd_group_cred *cred);

/* After the API keys were reloaded: held fetches (of every group, pattern
 * groups included) whose key was revoked are answered 401. */
void hd_groups_recheck(struct hd_groups *g, const struct hd_group_recheck *rc);

/* Forgets every group of topic in memory (the topic is being deleted; the
 * store deletes their rows with it). Held fetches get 404. Loop thread.
 * hd_groups_new registers it for the hub's topic-deleted event. */
void hd_groups_drop_topic(struct hd_groups *g, const char *topic);

/* The hub g was made with (borrowed). */
struct hd_hub *hd_groups_hub(const struct hd_groups *g);

/* Calls fn(arg, topic, name) for every group of a plain topic in memory
 * (groups over a topic pattern are not listed), in no particular order.
 * fn must not create or delete groups. Loop thread. */
void hd_groups_each(struct hd_groups *g, void (*fn)(void *arg, const char *topic, const char *name),
		    void *arg);

/* A group over a topic pattern, for a listing (all borrowed). */
struct hd_group_pattern_summary {
	const char *pattern;
	const char *name;
	size_t topics;                /* matching topics it consumes */
	uint64_t pending;             /* leased, summed over its topics */
	uint64_t lag;                 /* committed but not acked, summed */
	uint64_t dead_letters;
};

/* Calls fn(arg, s) for every group over a topic pattern in memory, in no
 * particular order (group_patterns.h hd_group_patterns_each). Loop thread. */
void hd_groups_each_pattern(struct hd_groups *g,
			    void (*fn)(void *arg, const struct hd_group_pattern_summary *s),
			    void *arg);

/* Answers every held fetch now (empty) and any later one at once. */
void hd_groups_stop(struct hd_groups *g);
/* After the loop ran the closes of hd_groups_stop. */
void hd_groups_free(struct hd_groups *g);

#endif
