/*
 * group_part — one topic's share of a pull consumer group: its lease window
 * (consume/lease.h), its durable row in the groups table, the reads that hand
 * its events out, and the dead-lettering of the events that ran out of
 * deliveries. A group of one topic (groups/groups.c) is one part; a group
 * over a topic pattern (groups/group_patterns.c) is a part per matching topic,
 * plus a parent row for its config.
 * Layer: groups; loop thread; talks to the hub and the consume core.
 *
 * Reading. hd_group_part_read prepares one hub read: what is due again
 * (leases that ended, nacked events), lowest first, within
 * HD_GROUP_FETCH_MAX offsets of the first so one read covers them (the rest
 * is given back); only when nothing is due, the new events after the
 * window's `next`: none when the window is full, and for an ordered group
 * none while anything is un-acked. hd_group_part_read_done applies the
 * read: each event handed out goes to the caller's emit; a grant whose
 * event is gone (retention, TTL) is acked; an event due for its
 * (max_deliveries + 1)th delivery is published to {topic}.dlq instead
 * (consume/deadletter.h) and acked once that is committed, which writes the row.
 *
 * Rows. A part's row is (topic, the group's row name) with its floor and
 * acked offsets (lease.h's durable form) and the group's config; a pattern
 * group's parent row is (pattern, name) with floor 0. A write answers its
 * hd_group_part_reply, if any, once it is committed. A part whose topic was
 * deleted (`gone`) is never written again: the store deleted its rows, and
 * writing one back would give a re-created topic this old position.
 *
 * Lifetime: every asynchronous operation (a row write, a dead letter) holds
 * the group and the part through the owner's ops until it ends.
 */
#ifndef HD_GROUP_PART_H
#define HD_GROUP_PART_H

#include "core/buf.h"
#include "consume/lease.h"
#include "groups/group_waiters.h"
#include "http/server.h"
#include "hub/hub.h"

#include <stdbool.h>
#include <stdint.h>

struct hd_group_part;

/* The owner's side; each gets the owner pointer of the conf. */
struct hd_group_part_ops {
	/* Keep the group, and p (NULL: a parent row's write), alive. */
	void (*hold)(void *owner, struct hd_group_part *p);
	/* Let go of what hold kept; may free the group and p. */
	void (*release)(void *owner, struct hd_group_part *p);
};

/* A group's identity and config, which all its parts read. Owned by the
 * group (the strings too), borrowed by each part for its life. */
struct hd_group_conf {
	struct hd_hub *hub;
	const char *name;             /* the group's name */
	const char *pattern;          /* its topic pattern; NULL: a group of one topic */
	const char *row_name;         /* the name of its parts' rows */
	uint32_t ack_wait_ms;
	uint32_t max_deliveries;      /* 0: no limit */
	bool ordered;                 /* one batch in flight per topic */
	int64_t created_ms;
	long long warn_ms;            /* rate limit of the group's warnings */
	struct hd_group_waiters *q;   /* the group's held fetches: woken when a part
					 changes (a dead letter was acked or failed) */
	const struct hd_group_part_ops *ops; /* borrowed */
	void *owner;
	bool shared;                  /* the engine keeps the leases (see "Shared leases") */
};

/* Shared leases: what the engine last said of a part's state (a mirror,
 * refreshed by every glease answer; the engine's copy is the truth). */
struct hd_group_shared {
	uint64_t floor, next, leased, redeliveries, dead_letters;
	int64_t due_at;               /* hd_now_ms time a lease ends; INT64_MAX: none */
};

struct hd_group_part {
	char topic[HD_TOPIC_NAME_MAX + 1];
	struct hd_lease lease;        /* window cap HD_GROUP_WINDOW_MAX */
	uint64_t dead_letters;        /* since load */
	bool gone;                    /* its topic was deleted: never written again */
	struct hd_group_conf *conf;   /* borrowed */
	struct hd_group_shared sh;    /* conf->shared: the engine's state */
};

/* The default config, created now. Borrows hub, the strings, q and ops. */
void hd_group_part_conf_init(struct hd_group_conf *c, struct hd_hub *hub, const char *name,
			     const char *pattern, const char *row_name,
			     struct hd_group_waiters *q, const struct hd_group_part_ops *ops,
			     void *owner);

/* A part of topic with every offset <= floor acknowledged. */
void hd_group_part_init(struct hd_group_part *p, struct hd_group_conf *conf, const char *topic,
			uint64_t floor);
void hd_group_part_fini(struct hd_group_part *p);

/* ---- reading ---- */

/* One hub read of a part. */
struct hd_group_read {
	struct hd_read r;             /* r.done and r.arg are the caller's */
	struct hd_lease_grant *grants; /* owned: the redeliveries read, or NULL */
	size_t ngrants;
};

/* Prepares rd (overwritten) to read what p hands out next, at most want
 * events: what is due again, or (new_only: only) new events up to last
 * (the topic's last offset known; UINT64_MAX when unknown). Returns false
 * when p has nothing to hand out now; else the caller sets r.done and r.arg,
 * calls hd_hub_read and, when it refuses, sets r.err and calls
 * hd_group_part_read_done. */
bool hd_group_part_read(struct hd_group_part *p, struct hd_group_read *rd, size_t want,
			bool new_only, uint64_t last);

/* Called with each event handed out, in offset order; ev is borrowed for
 * the call; deliveries counts this one. */
typedef void (*hd_group_emit_fn)(void *arg, const struct hd_stored_event *ev, uint32_t deliveries);

/* Applies the completed read rd to p (see the top), frees the grants and
 * returns r.err (then every grant is due again at once and nothing is
 * emitted). The caller still calls hd_engine_read_fini. */
int hd_group_part_read_done(struct hd_group_part *p, struct hd_group_read *rd,
			    hd_group_emit_fn emit, void *arg);

/* ---- shared leases ----
 * When the engine keeps the leases (hd_hub_glease_shared: several nodes on
 * Redis), a part's lease window is not used: the engine's FETCH hands
 * offsets out (struct hd_glease_op), the part reads their events and
 * emits them, dead-letters those past max_deliveries and then acks them
 * with ACK_DEAD, and acks with ACK_GONE those whose events no longer
 * exist. conf->shared is set; p->sh mirrors the engine's answers. */

/* Copies op's state (a completed glease op of p's topic) into p->sh and,
 * for a group of one topic, the config into p->conf. */
void hd_group_part_mirror(struct hd_group_part *p, const struct hd_glease_op *op);

/* Prepares rd (overwritten) to read the events of the grants of fop (a
 * completed FETCH with ngrants > 0). The caller sets r.done and r.arg and
 * calls hd_hub_read, as for hd_group_part_read. */
void hd_group_part_shared_read(struct hd_group_part *p, struct hd_group_read *rd,
			       const struct hd_glease_op *fop);

/* Applies the completed read rd (see above); frees the grants and returns
 * r.err (then the grants are nacked: due again at once). */
int hd_group_part_shared_read_done(struct hd_group_part *p, struct hd_group_read *rd,
				   hd_group_emit_fn emit, void *arg);

/* Submits a glease op of kind for p's topic and group over offsets (copied;
 * n <= HD_GLEASE_SPAN) that nobody waits for: done updates the mirror and
 * wakes the group's waiters. */
void hd_group_part_shared_submit(struct hd_group_part *p, enum hd_glease_kind kind,
				 const uint64_t *offsets, size_t n);

/* ---- rows ---- */

/* An answer sent once every row write it waits for is committed: status
 * and body, or the last write error ("the group state could not be
 * stored"). */
struct hd_group_part_reply;

/* Returns owned (NULL when req is NULL), waiting for the caller's own
 * hd_group_part_reply_done; takes body, borrows req until it is answered. */
struct hd_group_part_reply *hd_group_part_reply_new(struct hd_http_request *req, int status,
					  struct hd_buf *body);
/* One awaited write ended with err (0 ok); the last one answers and frees
 * r. NULL is a no-op. */
void hd_group_part_reply_done(struct hd_group_part_reply *r, int err);

/* Writes p's row (not when gone); r (may be NULL) waits for it. */
void hd_group_part_put(struct hd_group_part *p, struct hd_group_part_reply *r);
/* Writes a pattern group's parent row; r (may be NULL) waits for it. */
void hd_group_part_parent_put(struct hd_group_conf *c, struct hd_group_part_reply *r);

/* Deletes the row (topic, name); done(arg, err) runs once, later or before
 * the call returns, with 0 or an HD_E* (HD_ENOTFOUND: there was none). */
void hd_group_part_row_delete(struct hd_hub *hub, const char *topic, const char *name,
			 void (*done)(void *arg, int err), void *arg);

#endif
