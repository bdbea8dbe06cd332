/*
 * seek — where a consumer starts when it is asked to start at a time: the
 * first offset of a topic stored at or after that time, found by a binary
 * search with one-event reads through the hub (the engine keeps no index by
 * time). Used by a pull group's PUT with start.time and by a webhook's
 * create with start.time and its replay by time.
 * Layer: consume; loop thread.
 *
 * The search runs over [first, last] of the topic (hd_seek_range reads them
 * from an HD_TOPIC_INFO answer). Each step reads the first event after the
 * middle: when it is stored at or after the time, or there is none, nothing
 * in [middle, that event) exists and the answer is at most the middle;
 * otherwise the answer is after that event. About log2(last - first) reads;
 * a read answered from memory completes inside hd_hub_read, so the steps
 * may nest that deep.
 */
#ifndef HD_SEEK_H
#define HD_SEEK_H

#include "hub/hub.h"

#include <stdbool.h>
#include <stdint.h>

struct hd_seek;

/* The search ended: err 0 with k->found set, or the HD_E* of a read that
 * failed (k->cancelled: HD_EUNAVAIL because *cancel became true). May free
 * the struct that holds k. */
typedef void (*hd_seek_done_fn)(struct hd_seek *k, int err);

struct hd_seek {
	/* The caller's, set before hd_seek_start: */
	struct hd_hub *hub;           /* borrowed */
	const char *topic;            /* borrowed until done */
	int64_t time_ms;              /* the first event stored at or after this */
	const bool *cancel;           /* NULL, or checked before each read */
	hd_seek_done_fn done;
	void *arg;
	/* The result: */
	uint64_t found;               /* where to start: every event before it was stored
					 before time_ms, the first at or after it (offsets in
					 between may not exist) at or after; last + 1: none */
	bool cancelled;
	/* Private: */
	uint64_t lo, hi;              /* the answer is in [lo, hi] */
	struct hd_read rd;
};

/* The first and last offsets of a topic from a completed HD_TOPIC_INFO op
 * (borrowed): returns op->err, except 0 for a topic that does not exist
 * (then *last = 0, *first = 1: an empty range). */
int hd_seek_range(const struct hd_topic_op *op, uint64_t *first, uint64_t *last);

/* Searches offsets first .. last of k->topic; k->done runs exactly once,
 * later or before the call returns. */
void hd_seek_start(struct hd_seek *k, uint64_t first, uint64_t last);

#endif
