/*
 * relist — the periodic re-list that keeps a node's in-memory view of one
 * kind of records (webhook subscriptions, push subscriptions, devices) true
 * when several nodes share one engine (docs/cluster.md): every HD_RELIST_MS
 * a pass pages through the engine's LIST of that kind, one page in flight
 * at a time, hands each record to the caller (item), and once it has read
 * the whole list says so (done: the caller drops what the list lacked).
 *
 * Generations: gen counts the passes (the first is 1); a caller marks what
 * a pass saw, or what it made itself, with gen to tell at done what the
 * pass did not see. A delete made on this node during a pass
 * (hd_relist_deleted) sets skip_new: the pass's pages may predate it, so
 * the caller must not add a record it lacks (the next pass adds it if it
 * is new).
 *
 * Limits: cfg.page records per request (≤ HD_RELIST_PAGE_MAX), at most
 * HD_RELIST_PAGES_MAX pages per pass; a longer list ends the pass there
 * without done (logged: the list was not whole, so nothing is swept). A
 * failed page ends the pass without done too; the next tick starts over.
 * Layer: consume. Loop thread only. Callers: webhook/own.c,
 * push/push_own.c, push/devices.c.
 */
#ifndef HD_RELIST_H
#define HD_RELIST_H

#include "hub/hub.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define HD_RELIST_MS 2000
#define HD_RELIST_PAGE_MAX 1000       /* records one LIST returns at most (engine.h) */
#define HD_RELIST_PAGES_MAX 10000     /* pages of one pass */

struct hd_relist_cfg {
	const char *name;             /* for the log ("<name>_relist_failed"); borrowed for life */
	const char *kind;             /* the record kind; borrowed for life */
	size_t page;                  /* records per request, 1 .. HD_RELIST_PAGE_MAX */
	/* One record of the pass (rec borrowed during the call). */
	void (*item)(void *arg, const struct hd_record *rec);
	/* The pass has read the whole list (may be NULL). */
	void (*done)(void *arg);
	void *arg;
};

/* Embedded in its caller, which owns it; fields read-only for the caller. */
struct hd_relist {
	struct hd_relist_cfg cfg;
	uint64_t gen;                 /* the pass running or last run; 0 before the first */
	int64_t begun_ms;             /* when that pass began (hd_now_ms); 0 before the first */
	bool skip_new;                /* a delete was made here during this pass */
	bool running;                 /* a pass is under way (until just before done) */
	/* The module's: */
	struct hd_hub *hub;
	uv_timer_t timer;
	struct hd_record_op op;
	char after[HD_RECORD_KEY_MAX + 1];
	size_t pages;
	bool started, stopping;
};

/* Initialises r (its timer on loop); borrows hub and cfg's strings for r's
 * life. Nothing runs until hd_relist_start. */
void hd_relist_init(struct hd_relist *r, uv_loop_t *loop, struct hd_hub *hub,
		    const struct hd_relist_cfg *cfg);
/* Runs a pass every HD_RELIST_MS from now on (a tick while a pass runs is
 * skipped). No-op after hd_relist_stop. */
void hd_relist_start(struct hd_relist *r);
/* Starts a pass now (what a tick does), unless one runs or r is stopped. */
void hd_relist_run(struct hd_relist *r);
/* A record was deleted on this node: the running pass adds nothing new. */
void hd_relist_deleted(struct hd_relist *r);
/* Stops passes for good: a page in flight ends without item or done. r
 * must stay valid until the loop ran the timer's close and that page's
 * done (as every engine request must). Idempotent. */
void hd_relist_stop(struct hd_relist *r);

#endif
