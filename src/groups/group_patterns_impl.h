/*
 * group_patterns_impl — the private insides of the pattern groups, shared by
 * their two files:
 *   group_patterns.c         the groups of this node: parts, discovery,
 *                            fetch, ack, create, delete, load, the routes
 *   group_patterns_shared.c  shared leases (several nodes on Redis): the
 *                            same operations as batches of the engine's
 *                            glease ops on the parent and on the parts
 * Layer: groups; loop thread. Nothing outside src/groups/group_patterns*.c
 * includes this header.
 */
#ifndef HD_GROUP_PATTERNS_IMPL_H
#define HD_GROUP_PATTERNS_IMPL_H

#include "consume/pattern.h"
#include "core/buf.h"
#include "core/map.h"
#include "groups/group_part.h"
#include "groups/group_patterns.h"
#include "groups/group_waiters.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct pgroup;

struct part {
	struct hd_group_part base; /* the topic, its lease window and row */
	struct pgroup *g;
	uint64_t last;            /* the topic's highest committed offset known */
	int refs;                 /* the group's list + requests in flight */
	bool dirty;               /* changed by the ack being handled */
};

struct pgroup {
	struct hd_group_patterns *pg;
	char key[HD_GROUP_NAME_MAX + 1];     /* the part rows' name: name "*" hash */
	char name[HD_GROUP_NAME_MAX + 1];
	struct part **parts;      /* nparts, in discovery order */
	size_t nparts;
	/* The pattern's topics (topic → struct part), its paged list
	 * (discovery, at creation and at load) and its prefix watch (events
	 * and new topics, always on). */
	struct hd_pattern pt;
	size_t rr;                /* where the next fetch starts */
	struct hd_group_conf conf; /* row name: key */
	bool latest;              /* created with start "latest" and still discovering */
	uint64_t skipped;         /* matching topics past HD_GROUP_PATTERN_TOPICS_MAX */
	uint64_t redeliveries_gone; /* of parts whose topic was deleted */
	struct hd_http_request *create_req; /* the PUT answered when discovery ends */
	bool deleted;
	int refs;
	struct hd_group_waiters q; /* held fetches; q.busy while a fetch runs */
	int64_t parent_ms;        /* shared: hd_now_ms when the engine last said it exists */
	bool listed_once;         /* a list of its topics ended (fetches wait for the first) */
	bool test_held;           /* test-only: pt.listing set by the relist hold hook */
};

struct hd_group_patterns {
	uv_loop_t *loop;
	struct hd_hub *hub;
	struct hd_map groups;     /* key → struct pgroup */
	size_t parts;             /* parts of every group */
	bool stopping;
	bool shared;              /* the engine keeps the leases */
	uv_timer_t relist;        /* shared: every RELIST_MS, each group lists again */
	bool relist_on;
	bool test_relist_hold;    /* test-only: each re-list is held one period first */
};


/* One fetch being served (the group is q.busy until it finishes). */
struct fetch {
	struct hd_glease_op op;        /* shared leases: a part's FETCH */
	struct hd_group_read rd;
	struct pgroup *g;
	struct hd_group_waiter *w;
	struct part *p;                /* the part being read */
	struct hd_buf b;               /* the answer so far */
	size_t sent;
	size_t pos, visited;
	bool full;                     /* the answer reached HD_READ_BYTES_MAX */
	struct part *again;            /* read its new events next (after its redeliveries) */
	bool reading, sync;
	int err;
};

/* ---- group_patterns.c ------------------------------------------------- */

/* Drops a reference to p; frees it with the last. */
void hd_group_patterns_part_unref(struct part *p);
/* Returns borrowed: g's part of topic, or NULL. */
struct part *hd_group_patterns_part_get(struct pgroup *g, const char *topic);
/* Returns a new group of name over pattern, in pg's map until forgotten,
 * its prefix watch on and its list not started; NULL past
 * HD_GROUP_PATTERNS_MAX. */
struct pgroup *hd_group_patterns_group_new(struct hd_group_patterns *pg, const char *pattern,
					   const char *name);
/* Frees g once it is deleted and nothing holds it (owner: a struct
 * pgroup, also the waiter queue's release). */
void hd_group_patterns_group_release(void *owner);
/* Appends g as the JSON of a GET to b. */
void hd_group_patterns_group_json(struct hd_buf *b, const struct pgroup *g);
/* Writes the parent row; answers req with status and answer (taken) once
 * it is durable. */
void hd_group_patterns_put_parent(struct pgroup *g, struct hd_http_request *req, int status,
				  struct hd_buf *answer);
/* Lets g's held fetches try again. */
void hd_group_patterns_wake(struct pgroup *g);
/* Takes g out of the map: it was deleted (here, or on another node: the
 * engine no longer has it). Freed once idle. */
void hd_group_patterns_forget(struct pgroup *g);
/* Deletes g's rows (parts, then the parent, whose delete answers req). */
void hd_group_patterns_delete_rows(struct pgroup *g, struct hd_http_request *req);
/* The hub read of f's part ended: applies it, then the walk goes on. */
void hd_group_patterns_read_done(struct hd_read *r);
/* Walks the parts from f->pos until the answer is full or every part was
 * visited; one read in flight. */
void hd_group_patterns_fetch_step(struct fetch *f);
/* Answers (or holds again) f's waiter and frees f. */
void hd_group_patterns_fetch_finish(struct fetch *f);
/* Handles a request as hd_group_patterns_handle; probed: the engine was
 * asked about a group this node did not know. */
void hd_group_patterns_dispatch(struct hd_group_patterns *pg, struct hd_http_request *req,
				enum hd_group_action act, const char *pattern, const char *name,
				const struct hd_group_cred *cred, bool probed);

/* ---- group_patterns_shared.c (g->conf.shared) ------------------------- */

/* Starts fetch f: the parent's INFO first, unless heard of lately. */
void hd_group_patterns_shared_fetch_start(struct fetch *f);
/* The engine's FETCH of part p for f; then the read of what it handed out. */
void hd_group_patterns_shared_part_fetch(struct fetch *f, struct part *p);
/* A part of a group being created: the engine's group at floor. */
void hd_group_patterns_shared_part_set(struct pgroup *g, struct part *p, uint64_t floor);
/* The engine's parent: the config (keep: only the config when it exists);
 * then (req, may be NULL) the parent row and the 201. */
void hd_group_patterns_shared_parent_set(struct pgroup *g, bool keep, struct hd_http_request *req);
/* An ack or nack of (topic, offset) pairs (evs, checked, borrowed). */
void hd_group_patterns_shared_ack(struct hd_http_request *req, struct pgroup *g, bool nack,
				  json_t *evs, int64_t delay_ms);
/* A GET: the engine's INFO of the parent and of every part. */
void hd_group_patterns_shared_info(struct pgroup *g, struct hd_http_request *req);
/* A PUT of an existing group: the new config (in g->conf) everywhere. */
void hd_group_patterns_shared_update(struct pgroup *g, struct hd_http_request *req);
/* A DELETE: the group leaves this node at once; the engine's DROPs, then
 * the rows. */
void hd_group_patterns_shared_delete(struct pgroup *g, struct hd_http_request *req);
/* A request for a group this node does not know: asks the engine for the
 * parent, then dispatches req (probed). */
void hd_group_patterns_shared_probe(struct hd_group_patterns *pg, struct hd_http_request *req,
				    enum hd_group_action act, const char *pattern, const char *name,
				    const struct hd_group_cred *cred);

#endif
