/*
 * engine — the seam between the hub and where events live.
 * Layer: engine. The hub calls it; implementations are engine/local.c (the
 * embedded SQLite store, one node) and, later, a Redis engine (several
 * nodes); engine/engine.c holds what they share (the *_fini clean-ups).
 * The types the requests carry are in engine/engine_types.h. Edges never
 * include this header directly except through hub.h.
 *
 * Every call runs on the loop thread, and every completion callback runs on
 * the loop thread. A call that returns 0 completes later (or, for reads the
 * engine can answer from memory, before it returns) by calling the request's
 * done(); a call that returns a negative HD_E* code never calls done().
 * Requests are owned by the caller and must stay valid until done() runs.
 */
#ifndef HD_ENGINE_H
#define HD_ENGINE_H

#include "core/err.h"
#include "proto/cloudevent.h"
#include "engine/engine_types.h"

#include <stdbool.h>
#include <stdint.h>

/* One event of a publish and its outcome. */
struct hd_pub_item {
	const char *topic;            /* borrowed */
	const struct hd_event *event; /* borrowed */
	int64_t stored_ms;            /* the publish time */
	/* Results: */
	int err;                      /* 0 or HD_E* */
	uint64_t offset;              /* assigned, or the original's for a duplicate */
	bool duplicate;
	char epoch[HD_EPOCH_LEN + 1];
};

struct hd_pub {
	struct hd_pub_item *items;    /* borrowed, n entries */
	size_t n;
	void (*done)(struct hd_pub *p);
	void *arg;                    /* the caller's */
	void *priv;                   /* the engine's */
};

/* A history read: events with offset > after, at most limit. */
struct hd_read {
	const char *topic;            /* borrowed */
	uint64_t after;
	uint32_t limit;
	/* Results: */
	int err;
	struct hd_stored_event *events; /* owned by the request; free with hd_engine_read_fini */
	size_t n;
	bool exists;
	bool truncated;               /* events after `after` were removed by retention */
	uint64_t last;                /* the topic's last offset */
	uint64_t next;                /* the cursor to continue from */
	char epoch[HD_EPOCH_LEN + 1];
	bool from_memory;             /* served by the ring */
	void (*done)(struct hd_read *r);
	void *arg;
	void *priv;
};

void hd_engine_read_fini(struct hd_read *r);

enum hd_topic_op_kind { HD_TOPIC_INFO, HD_TOPIC_LIST, HD_TOPIC_DELETE };

struct hd_topic_op {
	enum hd_topic_op_kind kind;
	const char *topic;            /* INFO, DELETE; borrowed */
	const char *prefix;           /* LIST; borrowed */
	const char *after;            /* LIST: names after this one ("" from the start) */
	size_t limit;                 /* LIST: at most this many (≤ 1000) */
	/* Results: */
	int err;                      /* HD_ENOTFOUND for INFO/DELETE of an unknown topic */
	struct hd_topic_info *topics; /* INFO: 1, LIST: n; owned by the request */
	size_t n;
	void (*done)(struct hd_topic_op *op);
	void *arg;
	void *priv;
};

void hd_engine_topic_op_fini(struct hd_topic_op *op);

/* Durable state of pull consumer groups (struct hd_group_row).
 * PUT: insert or replace `row`, done() after it is durable (like a publish);
 * DELETE: remove row.topic/row.name (err HD_ENOTFOUND when absent);
 * LIST: every group, at most limit, into rows. */
enum hd_group_op_kind { HD_GROUP_PUT, HD_GROUP_DELETE, HD_GROUP_LIST };

struct hd_group_op {
	enum hd_group_op_kind kind;
	struct hd_group_row row;      /* PUT, DELETE; row.acked borrowed until done() */
	size_t limit;                 /* LIST */
	/* Results: */
	int err;
	struct hd_group_row *rows;    /* LIST: n, owned by the request */
	size_t n;
	void (*done)(struct hd_group_op *op);
	void *arg;
	void *priv;
};

/* Frees a LIST's rows. */
void hd_engine_group_op_fini(struct hd_group_op *op);

/* Modules' small durable records (struct hd_record: webhook
 * subscriptions, user cursors). PUT: insert or replace rec, done() after it
 * is durable; DELETE: remove rec.kind/rec.key (err HD_ENOTFOUND when
 * absent); GET: rec.kind/rec.key into recs[0] (n = 1, or err
 * HD_ENOTFOUND); LIST: records of rec.kind whose key starts with prefix and
 * sorts after `after`, in key order, at most limit, into recs. */
enum hd_record_op_kind { HD_RECORD_PUT, HD_RECORD_DELETE, HD_RECORD_GET, HD_RECORD_LIST };

struct hd_record_op {
	enum hd_record_op_kind kind;
	struct hd_record rec;         /* rec.value borrowed until done() (PUT) */
	const char *prefix;           /* LIST; borrowed; NULL = "" */
	const char *after;            /* LIST; borrowed; NULL = "" */
	size_t limit;                 /* LIST */
	/* PUT as a compare-and-set: when expect_set, written only if the
	 * stored value equals expect (NULL: only if there is none); else err
	 * stays 0 and conflict is set. Engines shared by several nodes (redis)
	 * check it atomically; the local engine, whose one node's callers
	 * serialise a key's writes on the loop (edge/cursors.c), skips it. */
	bool expect_set;
	const char *expect;           /* borrowed until done() */
	/* PUT fenced by an ownership lease (struct hd_owner_op): when fence
	 * is set, written only while that lease's fencing token is
	 * fence_token; else err stays 0 and fenced_out is set. The local
	 * engine (one node, no owner_op) ignores it. */
	const char *fence;            /* the lease name, borrowed until done(); NULL = none */
	uint64_t fence_token;
	/* Results: */
	int err;
	bool conflict;                /* PUT with expect_set: not written */
	bool fenced_out;              /* PUT with fence: the lease moved on, not written */
	struct hd_record *recs;       /* GET: 1, LIST: n; owned by the request */
	size_t n;
	void (*done)(struct hd_record_op *op);
	void *arg;
	void *priv;
};

/* Frees a GET's or LIST's records. */
void hd_engine_record_op_fini(struct hd_record_op *op);
/* Clears op and makes it a LIST of kind's records whose key starts with
 * prefix and sorts after `after` (both borrowed until done(); NULL = ""),
 * at most limit, completing into done(op) with op->arg = arg. */
void hd_engine_record_list_init(struct hd_record_op *op, const char *kind, const char *prefix,
				const char *after, size_t limit,
				void (*done)(struct hd_record_op *op), void *arg);

/* Ownership leases between nodes (consume/owner.h): at most one owner
 * string holds lease `name` at a time, for ttl_ms after its last
 * ACQUIRE. ACQUIRE takes a free (or expired) lease with a fencing token
 * greater than every token given before, or renews the owner's own; held
 * says which, token is the current holder's token and holder its owner
 * string. TAKE is ACQUIRE that also asks another holder for the lease:
 * that holder's next ACQUIRE answers held and wanted (it should write what
 * it has, then RELEASE), and until the asker has it, nobody else gets it
 * when it is free. RELEASE drops the lease if owner holds it (owner NULL:
 * whoever holds it). Optional: an engine of one node (local) has none, and there
 * the one node always owns, token 0. */
#define HD_OWNER_NAME_MAX 600
#define HD_OWNER_ID_MAX 200
#define HD_OWNER_BATCH_MAX 500        /* ops of one owner_ops call */
enum hd_owner_op_kind { HD_OWNER_ACQUIRE, HD_OWNER_TAKE, HD_OWNER_RELEASE };

struct hd_owner_op {
	enum hd_owner_op_kind kind;
	char name[HD_OWNER_NAME_MAX + 1];
	const char *owner;            /* borrowed until done() */
	uint32_t ttl_ms;
	/* Results: */
	int err;
	bool held;                    /* ACQUIRE, TAKE: owner holds it now */
	uint64_t token;               /* the holder's fencing token */
	bool wanted;                  /* held, and another owner asked for it (TAKE) */
	char holder[HD_OWNER_ID_MAX + 1]; /* the holder's owner string ("" when free) */
	void (*done)(struct hd_owner_op *op);
	void *arg;
	void *priv;
};

/*
 * The connection registry and presence of engines shared by several nodes
 * (redis; the ops are NULL in the local engine, whose one node answers from
 * the hub's own lists). Soft state: writes are neither durable nor
 * acknowledged, they are queued and sent in batches once per loop turn.
 * An entry is (kind, key, client) → value: HD_REG_USER keys a user's
 * connections (value: the listing JSON of GET /v1/users/{id}/connections),
 * HD_REG_TOPIC a topic's followers (value: {"id","transport","user","node"
 * [,"join_leave":true][,"chan_info"][,"info"]}: an engine that announces a
 * dead node's leaves does so only for "join_leave" entries),
 * HD_REG_ONLINE the users with a connection (key "", client: the user,
 * value "1": one entry per user and node).
 * A query returns the values of every live node's entries of one key; an
 * HD_REG_ONLINE query only counts the distinct users of live nodes (count).
 */
enum hd_reg_kind { HD_REG_USER, HD_REG_TOPIC, HD_REG_ONLINE };

#define HD_REG_QUERY_MAX 10000        /* values a query returns at most */

struct hd_reg_query {
	enum hd_reg_kind kind;
	const char *key;              /* borrowed until done() */
	/* Results: */
	int err;
	char **values;                /* n, each owned by the request */
	size_t n;
	uint64_t count;               /* HD_REG_ONLINE: distinct users (values stay empty) */
	void (*done)(struct hd_reg_query *q);
	void *arg;
	void *priv;
};

/* Pull-group leases kept by the engine, for engines shared by several nodes
 * (redis): any node may fetch, ack or nack any lease, deadlines come from
 * the engine's clock, and the group's ack floor, next offset, leases and
 * counters live there (groups/groups.c "Shared leases"). A group's config
 * (ack_wait_ms, max_deliveries, ordered) lives there too: SET writes it,
 * every answer returns it.
 * FETCH: at most `max` offsets: leases that ended and nacked offsets whose
 *   delay passed (lowest first, within HD_GLEASE_SPAN of the lowest; each
 *   leased again with its deliveries + 1; `dead` when that passes
 *   max_deliveries: the caller dead-letters it and then acks it with
 *   ACK_DEAD), else (ordered: only when nothing is un-acked) new offsets
 *   after `next` up to the topic's visible top, within `window` un-acked
 *   offsets. Creates the group at floor 0 with the defaults when absent.
 * ACK: acks `offsets` (or, with noffsets 0, every handed-out offset <=
 *   up_to); ACK_DEAD: acks offsets and counts them as dead letters; ACK_GONE:
 *   acks offsets whose events do not exist (not counted). NACK: makes leased
 *   offsets due again after delay_ms. `changed` counts those that changed,
 *   `ignored` lists the others. Durable (like a publish) before done().
 * INFO: only the state. SET: (re)creates the group at `floor` with the
 *   config (keep_position: only the config when it exists). DROP: deletes it.
 * Every answer fills the state (floor, next, leased, …) and next_due_ms. A
 * group whose topic was deleted and created again does not exist. */
enum hd_glease_kind {
	HD_GLEASE_FETCH,
	HD_GLEASE_ACK,
	HD_GLEASE_ACK_DEAD,
	HD_GLEASE_ACK_GONE,
	HD_GLEASE_NACK,
	HD_GLEASE_INFO,
	HD_GLEASE_SET,
	HD_GLEASE_DROP,
};

/* Most offsets one FETCH hands out, and how far apart they may be (one
 * history read covers them). */
#define HD_GLEASE_SPAN 1000

struct hd_glease_grant {
	uint64_t offset;
	uint32_t deliveries;          /* including this one */
	bool dead;                    /* past max_deliveries: dead-letter it */
};

struct hd_glease_op {
	enum hd_glease_kind kind;
	const char *topic;            /* borrowed */
	const char *group;            /* borrowed */
	uint32_t max;                 /* FETCH: 1 .. HD_GLEASE_SPAN */
	uint32_t window;              /* FETCH: most un-acked offsets */
	const uint64_t *offsets;      /* ACK*, NACK: borrowed, noffsets (<= HD_GLEASE_SPAN) */
	size_t noffsets;
	uint64_t up_to;               /* ACK with noffsets 0 */
	int64_t delay_ms;             /* NACK */
	uint64_t floor;               /* SET */
	bool keep_position;           /* SET */
	uint32_t ack_wait_ms, max_deliveries; /* SET; the defaults for FETCH's create */
	bool ordered;                 /* SET */
	/* Results: */
	int err;
	struct hd_glease_grant *grants; /* FETCH: ngrants, owned by the request */
	size_t ngrants;
	uint64_t *ignored;            /* ACK*, NACK: nignored, owned by the request */
	size_t nignored;
	size_t changed;
	bool exists;                  /* the group existed (before a FETCH or SET) */
	uint64_t st_floor, st_next, st_leased, st_redeliveries, st_dead_letters;
	uint32_t st_ack_wait_ms, st_max_deliveries;
	bool st_ordered;
	int64_t st_created_ms;
	int64_t next_due_ms;          /* ms until a lease ends or a nack's delay passes; -1: none */
	void (*done)(struct hd_glease_op *op);
	void *arg;
	void *priv;
};

/* Frees a FETCH's grants and an ACK's or NACK's ignored offsets. */
void hd_engine_glease_op_fini(struct hd_glease_op *op);

/* Frees a query's values. */
void hd_engine_reg_query_fini(struct hd_reg_query *q);

/* Runs before each batch of registry writes goes out, with mode:
 * HD_REG_FLUSH_CHANGED: write what changed since the last call;
 * HD_REG_FLUSH_ALL after a reconnect to Redis: write every entry again (a
 * failover may have lost them); HD_REG_FLUSH_REJOIN: the same, and the
 * other nodes swept this node's entries meanwhile (its heartbeat lapsed
 * while it lived on: they announced its clients as left), so announce the
 * joins again (to the other nodes only: the leaves named this node and it
 * dropped them) of the subscriptions reg_left names (all without
 * reg_left); HD_REG_FLUSH_JOINS: only those joins (the next page of them). */
#define HD_REG_FLUSH_CHANGED 0
#define HD_REG_FLUSH_ALL 1
#define HD_REG_FLUSH_REJOIN 2
#define HD_REG_FLUSH_JOINS 3
typedef void (*hd_engine_reg_flush_fn)(void *arg, int mode);

struct hd_engine;

struct hd_engine_ops {
	const char *name;
	int (*publish)(struct hd_engine *e, struct hd_pub *p);
	int (*read)(struct hd_engine *e, struct hd_read *r);
	int (*topic_op)(struct hd_engine *e, struct hd_topic_op *op);
	int (*group_op)(struct hd_engine *e, struct hd_group_op *op);
	int (*record_op)(struct hd_engine *e, struct hd_record_op *op);
	/* NULL in an engine of one node (see struct hd_owner_op). */
	int (*owner_op)(struct hd_engine *e, struct hd_owner_op *op);
	/* Optional: n (1 .. HD_OWNER_BATCH_MAX) ACQUIRE or TAKE ops of one
	 * owner string and ttl, on distinct leases, in one engine call, each with exactly the
	 * result owner_op would give it. Returns 0 and every op's done() runs
	 * later, or a negative HD_E* and none does. The ops array is borrowed
	 * for the call only; each op until its done(). NULL: owner_op each. */
	int (*owner_ops)(struct hd_engine *e, struct hd_owner_op *const *ops, size_t n);
	/* Pull-group leases shared by every node (struct hd_glease_op); NULL
	 * when the groups keep their leases in memory (the local engine). */
	int (*glease_op)(struct hd_engine *e, struct hd_glease_op *op);
	/* Whether the engine can take writes (for /readyz). */
	bool (*ready)(struct hd_engine *e);
	/* Optional: why ready() is false, one line into why (cap bytes,
	 * NUL-terminated), e.g. "redis shard 0 (127.0.0.1:6379) unreachable". */
	void (*why_not_ready)(struct hd_engine *e, char *why, size_t cap);
	/* Finishes every accepted publish (their done() runs), then stops. Blocks briefly. */
	void (*stop)(struct hd_engine *e);
	/* Stops, then frees once every read or look-up still running on the
	 * thread pool has finished (their done() runs, later, on the loop;
	 * calls made from them get HD_EUNAVAIL). The loop must run on until
	 * then. */
	void (*free)(struct hd_engine *e);
	/* The registry (see above); all three NULL in an engine of one node.
	 * reg_put: value (NULL: remove the entry) copied; sent in this loop
	 * turn's batch, a later put of the same entry in the same turn wins.
	 * reg_flush: asks for a batch in this loop turn; fn(arg, …) runs
	 * before it goes out (and before every later batch; the last fn
	 * given wins).
	 * reg_query: engine.h's request contract. */
	void (*reg_put)(struct hd_engine *e, enum hd_reg_kind kind, const char *key,
			const char *client, const char *value);
	void (*reg_flush)(struct hd_engine *e, hd_engine_reg_flush_fn fn, void *arg);
	int (*reg_query)(struct hd_engine *e, struct hd_reg_query *q);
	/* Optional, during a flush fn of mode HD_REG_FLUSH_REJOIN or _JOINS:
	 * whether the other nodes announced client's subscription to topic
	 * as left (so its join is announced again). */
	bool (*reg_left)(struct hd_engine *e, const char *topic, const char *client);
	/* Optional (NULL in an engine of one node): sends msg (len bytes, no
	 * NUL needed; copied) about topic to every other node, whose engine
	 * hands it to its hd_engine_notice_fn; never back to this node. Soft
	 * state: at most once, not acknowledged, dropped while the topic's
	 * shard is unreachable. */
	void (*notice)(struct hd_engine *e, const char *topic, const char *msg, size_t len);
};

struct hd_engine {
	const struct hd_engine_ops *ops;
};

/* Called by an engine for each committed event, on the loop thread, in
 * offset order per topic: the hub's fan-out hook. */
typedef void (*hd_engine_event_fn)(void *arg, const char *topic, const struct hd_stored_event *ev);

/* Called by an engine for another node's notice (the notice op), on the
 * loop thread; topic and msg borrowed for the call (msg: len bytes,
 * NUL-terminated). */
typedef void (*hd_engine_notice_fn)(void *arg, const char *topic, const char *msg, size_t len);

static inline int hd_engine_publish(struct hd_engine *e, struct hd_pub *p) { return e->ops->publish(e, p); }
static inline int hd_engine_read(struct hd_engine *e, struct hd_read *r) { return e->ops->read(e, r); }
static inline int hd_engine_topic_op(struct hd_engine *e, struct hd_topic_op *op) { return e->ops->topic_op(e, op); }
static inline int hd_engine_group_op(struct hd_engine *e, struct hd_group_op *op) { return e->ops->group_op(e, op); }
static inline int hd_engine_record_op(struct hd_engine *e, struct hd_record_op *op) { return e->ops->record_op(e, op); }

#endif
