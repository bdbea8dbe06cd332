/*
 * group_patterns — pull consumer groups over a topic pattern ("orders.*"):
 * one group that consumes every matching topic, existing when it is created
 * and created later (docs/api.md "Consumer groups", "Topic patterns").
 * Layer: groups. groups/groups.c hands it the group routes whose topic is a
 * pattern (hub/topic_pattern.h), after the access check; loop thread.
 *
 * The model. A pattern group is a set of parts, one per matching topic,
 * each with its own ack state (consume/lease.h), exactly like an exact
 * group of that topic. Dead-letter topics ("….dlq") never match, so a group
 * never consumes its own dead letters. Parts come from the pattern's
 * expansion (consume/pattern.h): a paged topic list under the pattern's
 * prefix (at creation and at load) and a hub prefix watch (topics created
 * later: they start at offset 1, so nothing is missed). A fetch walks the
 * parts round robin, starting one part further on each fetch, and in each
 * part hands out what is due again first, then new events; so a busy topic
 * cannot starve a quiet one. `ordered` keeps one
 * batch in flight per topic. Ack and nack name (topic, offset) pairs.
 *
 * Durable rows (the store's groups table, keyed by (topic, name)):
 *   parent: (pattern, group name): the config; ack_floor 0, acked "";
 *   part:   (matching topic, name "*" 16 hex digits of FNV-1a 64 of the
 *           pattern): that topic's floor and acked offsets. '*' is neither
 *           a topic-name nor a group-name character, so neither row can be
 *           taken for an exact group's, and deleting a topic deletes its
 *           part rows with it. A group name of a pattern group is therefore
 *           at most HD_GROUP_PATTERN_NAME_MAX bytes.
 *
 * Shared leases (hd_hub_glease_shared: several nodes on Redis): each part
 * is the engine's group (matching topic, part rows' name), the parent's
 * config and existence the engine's group (pattern, name); any node fetches,
 * acks and nacks any part, as for a group of one topic
 * (group_patterns_shared.c). Topics created on another node are found within
 * RELIST_MS at worst (5 s; at once through the prefix watch).
 *
 * Limits: HD_GROUP_PATTERNS_MAX pattern groups; HD_GROUP_PATTERN_TOPICS_MAX
 * topics per group (more are skipped, counted and logged); every part's
 * window is HD_GROUP_WINDOW_MAX; GET lists at most
 * HD_GROUP_PATTERN_INFO_TOPICS topics.
 */
#ifndef HD_GROUP_PATTERNS_H
#define HD_GROUP_PATTERNS_H

#include "groups/groups.h"

#define HD_GROUP_PATTERNS_MAX 1000
#define HD_GROUP_PATTERN_TOPICS_MAX 1000
/* Part rows a load reads at most (besides HD_GROUPS_MAX group rows). */
#define HD_GROUP_PARTS_MAX 100000
#define HD_GROUP_PATTERN_NAME_MAX (HD_GROUP_NAME_MAX - 17)
#define HD_GROUP_PATTERN_INFO_TOPICS 100

struct hd_group_patterns;

/* Writes the part rows' name of group name over pattern into out (name,
 * '*', 16 lowercase hex digits of the FNV-1a 64 hash of pattern): pure,
 * stable across versions (it is stored). Returns its length, as snprintf. */
size_t hd_group_patterns_part_name(const char *pattern, const char *name, char *out, size_t out_len);

/* Returns owned. Borrows loop and hub for its life. */
struct hd_group_patterns *hd_group_patterns_new(uv_loop_t *loop, struct hd_hub *hub);

/* Whether row (from the groups table) belongs to a pattern group. */
bool hd_group_patterns_row_is(const struct hd_group_row *row);

/* Restores the pattern groups from the rows of the groups table (borrowed;
 * the others are ignored) and starts their discovery. Once, at load. */
void hd_group_patterns_load(struct hd_group_patterns *pg, const struct hd_group_row *rows, size_t n);

/* Handles one request for group name (checked) of pattern (checked);
 * answers req exactly once, now or later. Loop thread. */
void hd_group_patterns_handle(struct hd_group_patterns *pg, struct hd_http_request *req,
		       enum hd_group_action act, const char *pattern, const char *name,
		       const struct hd_group_cred *cred);
/* hd_groups_recheck for the pattern groups. */
void hd_group_patterns_recheck(struct hd_group_patterns *pg, const struct hd_group_recheck *rc);

/* Calls fn(arg, s) for every pattern group in memory (s borrowed for the
 * call), in no particular order; fn must not create or delete groups. The
 * counters are this node's: with shared leases, the engine's state as its
 * last answer here said. */
void hd_group_patterns_each(struct hd_group_patterns *pg,
			    void (*fn)(void *arg, const struct hd_group_pattern_summary *s), void *arg);

/* Forgets topic's part in every pattern group (the topic is being deleted;
 * the store deletes the part rows with it). */
void hd_group_patterns_drop_topic(struct hd_group_patterns *pg, const char *topic);

/* Answers every held fetch now (empty) and any later request with 503. */
void hd_group_patterns_stop(struct hd_group_patterns *pg);
/* After the loop ran the closes of hd_group_patterns_stop. */
void hd_group_patterns_free(struct hd_group_patterns *pg);

#endif
