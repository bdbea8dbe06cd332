/*
 * cursors — per-user server-side cursors: the offset a user last
 * acknowledged on a topic, kept by herald under a consumer name, so that a
 * new device or a reinstalled app resumes where that user stood
 * (docs/api.md "User cursors"; docs/consumers.md says when to use them).
 * Layer: edge. Its rows of the route table (edge/route.h) bring
 * /v1/users/{id}/cursors[/{name}] here (loop thread); cursors talks only to
 * the hub (its durable record ops).
 *
 *   GET    /v1/users/{id}/cursors            list: ?after=<name>&limit=M (M ≤ 1000)
 *   GET    /v1/users/{id}/cursors/{name}     one cursor, with the topic's last offset and lag
 *   POST   /v1/users/{id}/cursors/{name}     set: {"offset":N,"epoch":"…","topic":"…","force":false}
 *   DELETE /v1/users/{id}/cursors/{name}     remove
 *
 * Durable form: one record of kind "cursor" per (user, name), key
 * "<user id>\n<name>" (a user id never holds '\n': it is a topic name part;
 * at most HD_USER_ID_MAX + 1 + HD_CURSOR_NAME_MAX bytes, below
 * HD_RECORD_KEY_MAX), value the JSON object
 *     {"topic":"user:42","offset":17,"epoch":"9f…","updated":"<RFC 3339>"}
 * A name is 1-HD_CURSOR_NAME_MAX bytes of [A-Za-z0-9._-].
 *
 * Forward only: a set moves the cursor only when there is none yet, the
 * offset is greater than the stored one, the topic or the (given) epoch
 * differs from the stored one (the topic was recreated: offsets start
 * again), or "force" is true. Otherwise nothing is written and the answer
 * is the stored cursor with "moved": false, so a stale device acking an
 * older offset never rewinds the user. Sets and deletes of one cursor run
 * one after the other in arrival order (at most HD_CURSOR_QUEUE_MAX wait,
 * beyond that 429); a set is answered after its record is durable.
 * Across nodes (the redis engine) the write is a compare-and-set against
 * the record the decision read: when another node wrote in between, the
 * set reads and decides again (at most CAS_TRIES times, then 503), so
 * concurrent sets from several nodes never move a cursor backwards.
 *
 * Access: a client token whose sub is {id} may use its own cursors (and
 * must be allowed to read the topic it names); an API key needs the admin
 * scope, as for /v1/users/{id}/connections; with no key configured a
 * caller without a token may do everything (development mode).
 */
#ifndef HD_EDGE_CURSORS_H
#define HD_EDGE_CURSORS_H

#include "edge/access.h"
#include "edge/route.h"
#include "http/server.h"
#include "hub/hub.h"

#define HD_CURSOR_NAME_MAX 64
#define HD_CURSOR_BODY_MAX 4096
#define HD_CURSOR_LIST_MAX 1000
#define HD_CURSOR_LIST_DEFAULT 100
/* Sets or deletes waiting behind the running one, per cursor. */
#define HD_CURSOR_QUEUE_MAX 16
/* Cursors with a set or delete running, over all users. */
#define HD_CURSORS_BUSY_MAX 10000

struct hd_cursors;

/* Returns owned. Borrows hub for its life. */
struct hd_cursors *hd_cursors_new(struct hd_hub *hub);

/* Adds the rows of /v1/users/{user}/cursors[/{name}] to t (c borrowed by
 * t). Their guard is HD_ROUTE_USER (the user's own client token, or an
 * admin key); a set also checks that its body's topic may be read. */
void hd_cursors_routes(struct hd_cursors *c, struct hd_route_table *t);
/* After the engine has stopped (every record op has finished). */
void hd_cursors_free(struct hd_cursors *c);

#endif
