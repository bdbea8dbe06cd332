/*
 * pattern — a topic pattern's expansion into topics: the set of matching
 * topics a consumer follows, found by a paged topic list under the
 * pattern's prefix and by a hub prefix watch (topics created later, and
 * every committed event of a matching topic). Each matching topic the
 * consumer takes has an item of its own (a pull group's part, a webhook
 * subscription's child); the core keeps topic → item and tells the
 * consumer what it finds; the consumer decides the item's start.
 * Layer: consume; loop thread. Used by pattern pull groups
 * (groups/group_patterns.c) and pattern webhook subscriptions.
 *
 * The callbacks (each gets the owner pointer given to init; item is the
 * topic's item, NULL when it has none yet; hd_pattern_add may be called
 * from them):
 *   listed     a matching topic one list page names;
 *   on_watch   a committed event of a matching topic (dead-letter topics
 *              never match: hub/topic_pattern.h);
 *   gone       prune: after a full list, an item whose topic neither the
 *              list nor an event saw since the last prune (its topic was
 *              deleted, maybe while herald was down); the core has already
 *              removed it. NULL: no pruning;
 *   list_done  the list ended: after its last page (err 0), when a page
 *              failed (err), or at the next page after hd_pattern_stop.
 * After hd_pattern_stop only list_done runs.
 *
 * Limits: at most `cap` topics (hd_pattern_admit says whether one more
 * fits, and whether its dead-letter topic's name would); a list page is
 * HD_PATTERN_LIST_PAGE topics.
 */
#ifndef HD_PATTERN_H
#define HD_PATTERN_H

#include "core/map.h"
#include "hub/hub.h"

#include <stdbool.h>
#include <stddef.h>

#define HD_PATTERN_LIST_PAGE 1000

struct hd_pattern_ops {
	void (*listed)(void *owner, void *item, const struct hd_topic_info *t);
	void (*on_watch)(void *owner, void *item, const char *topic, const struct hd_stored_event *ev);
	void (*gone)(void *owner, void *item);
	void (*list_done)(void *owner, int err);
};

struct hd_pattern {
	char pattern[HD_TOPIC_NAME_MAX + 1];
	char prefix[HD_TOPIC_NAME_MAX + 1]; /* the pattern without its '*' */
	struct hd_map topics;         /* topic → the consumer's item (borrowed) */
	bool listing;                 /* a list runs */
	bool watching;                /* the prefix watch is on */
	/* Private: */
	struct hd_hub *hub;
	size_t cap;
	bool stopped;
	struct hd_map seen;           /* with gone: topics seen since the last prune */
	struct hd_watch watch;
	struct hd_topic_op list;
	char after[HD_TOPIC_NAME_MAX + 1];
	const struct hd_pattern_ops *ops; /* borrowed */
	void *owner;
};

/* An empty expansion of pattern (checked; copied), at most cap topics.
 * Borrows hub and ops for its life. */
void hd_pattern_init(struct hd_pattern *pt, struct hd_hub *hub, const char *pattern, size_t cap,
		     const struct hd_pattern_ops *ops, void *owner);
/* Frees the map (not the items). No list may run. */
void hd_pattern_fini(struct hd_pattern *pt);

/* Starts the prefix watch (no-op when on or stopped). Returns 0 or the
 * hub's error (the consumer logs it: new topics are then found only by
 * lists). */
int hd_pattern_watch(struct hd_pattern *pt);

/* Lists every topic under the prefix, HD_PATTERN_LIST_PAGE a page, from
 * the start; no-op while a list runs. */
void hd_pattern_list(struct hd_pattern *pt);

/* No more callbacks but list_done; the watch ends. For a consumer that is
 * deleted or stopping. */
void hd_pattern_stop(struct hd_pattern *pt);

/* Whether topic may get an item: 0, HD_ELIMIT at cap, HD_EBADTOPIC when its
 * dead-letter topic's name would be too long. */
int hd_pattern_admit(const struct hd_pattern *pt, const char *topic);

/* Gives topic its item (borrowed until removed). Returns 0, or HD_ELIMIT at
 * cap. */
int hd_pattern_add(struct hd_pattern *pt, const char *topic, void *item);
/* The item of topic, or NULL. */
void *hd_pattern_get(const struct hd_pattern *pt, const char *topic);
/* Takes topic's item out; returns it or NULL. */
void *hd_pattern_remove(struct hd_pattern *pt, const char *topic);
/* Takes every item out, without callbacks (the consumer let go of them). */
void hd_pattern_clear(struct hd_pattern *pt);

#endif
